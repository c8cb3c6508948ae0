/**
 * Announcing an outcome: publish the completion event once, then mark the record announced.
 * Shared by the submit function (rejections) and the poller (finished jobs, retried announcements).
 */
import { PermanentError } from '../core/errors.js';
import { buildCompletionEvent } from '../core/events.js';
import { logFields } from '../core/jobs.js';
import type { Logger } from '../logger.js';
import type { Clock, EventPublisher, JobStore } from '../ports.js';
import { claimAnnouncement, markAnnounced, release } from '../core/transitions.js';

/** What {@link announce} needs. */
export interface AnnounceDeps {
  jobs: JobStore;
  publisher: EventPublisher;
  log: Logger;
  clock: Clock;
}

/**
 * Publishes the event of an outcome that is known but not yet announced, exactly once across
 * concurrent callers. Returns false when there was nothing to do (already announced, not an
 * outcome yet, another caller holds the claim) or when Pub/Sub refused the event for good (logged
 * at ERROR; the record stays outstanding, so it is announced once the cause is fixed, and no other
 * record waits for it). Throws (transient) when publishing fails for a reason that may pass; the
 * record then stays outstanding and is announced by a later call.
 */
export async function announce(jobId: string, owner: string, deps: AnnounceDeps): Promise<boolean> {
  // Why a claim in a transaction: concurrent poll runs (and a submit retry) may all see the same
  // unannounced outcome; only the one that takes the claim publishes.
  const claimed = await deps.jobs.update(jobId, claimAnnouncement(owner, deps.clock()));
  if (!claimed) return false;

  let messageId: string;
  const event = buildCompletionEvent(claimed, deps.clock());
  try {
    messageId = await deps.publisher.publish(event);
  } catch (err) {
    await deps.jobs.update(jobId, release(owner)).catch((releaseErr: unknown) =>
      deps.log.warning('event.release_failed', 'Could not release the publish claim', {
        jobId,
        error: releaseErr,
      }),
    );
    if (err instanceof PermanentError) {
      deps.log.error('event.unpublishable', 'Pub/Sub refused the completion event', {
        ...logFields(claimed),
        eventId: event.eventId,
        error: err,
        fix: 'check that COMPLETION_TOPIC exists and the function may publish to it',
      });
      return false;
    }
    throw err;
  }

  // Why publish-then-mark: marking first would lose the event if the publish then failed. If we
  // crash between publish and mark, the claim expires and a later run publishes again; consumers
  // dedupe that rare redelivery by the stable eventId (same job + state → same id).
  await deps.jobs.update(jobId, markAnnounced(deps.clock(), event.eventId, event.publishTime));
  deps.log.info(
    event.eventType === 'job.completed' ? 'job.completed' : 'input.rejected',
    event.eventType === 'job.completed'
      ? 'Completion event published'
      : 'Rejection event published',
    {
      ...logFields(claimed),
      eventId: event.eventId,
      messageId,
      state: event.state,
      vertexJob: event.vertexJob,
    },
  );
  return true;
}
