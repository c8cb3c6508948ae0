/**
 * Announcing an outcome: publish the completion event once, then mark the record announced.
 * Shared by the submit function (rejections) and the poller (finished jobs, retried announcements).
 */
import { buildCompletionEvent } from './events.js';
import { leaseFor, leaseFree, logFields, OUTCOME_STATUSES, type JobRecord } from './jobs.js';
import type { Logger } from './logger.js';
import type { Clock, EventPublisher, JobStore } from './ports.js';

/** How long a claim to publish lasts; after it, another run may publish (with the same eventId). */
export const PUBLISH_LEASE_SECONDS = 60;

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
 * outcome yet, or another caller holds the claim). Throws (transient) when publishing fails;
 * the record then stays outstanding and is announced by a later call.
 */
export async function announce(jobId: string, owner: string, deps: AnnounceDeps): Promise<boolean> {
  const now = deps.clock();
  // Why a claim in a transaction: concurrent poll runs (and a submit retry) may all see the same
  // unannounced outcome; only the one that takes the claim publishes.
  const claimed = await deps.jobs.update(jobId, (current) =>
    current.outstanding && OUTCOME_STATUSES.has(current.status) && leaseFree(current, now, owner)
      ? {
          ...current,
          lease: leaseFor(owner, now, PUBLISH_LEASE_SECONDS),
          updateTime: now.toISOString(),
        }
      : undefined,
  );
  if (!claimed) return false;

  const event = buildCompletionEvent(claimed, deps.clock());
  let messageId: string;
  try {
    messageId = await deps.publisher.publish(event);
  } catch (err) {
    await releaseClaim(jobId, owner, deps).catch((releaseErr: unknown) =>
      deps.log.warning('event.release_failed', 'Could not release the publish claim', {
        jobId,
        error: releaseErr,
      }),
    );
    throw err;
  }

  // Why publish-then-mark: marking first would lose the event if the publish then failed. If we
  // crash between publish and mark, the claim expires and a later run publishes again; consumers
  // dedupe that rare redelivery by the stable eventId (same job + state → same id).
  await deps.jobs.update(jobId, (current) =>
    current.outstanding
      ? {
          ...current,
          outstanding: false,
          lease: null,
          eventId: event.eventId,
          publishedAt: event.publishTime,
          updateTime: deps.clock().toISOString(),
        }
      : undefined,
  );
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

async function releaseClaim(jobId: string, owner: string, deps: AnnounceDeps): Promise<void> {
  await deps.jobs.update(jobId, (current: JobRecord) =>
    current.lease?.owner === owner ? { ...current, lease: null } : undefined,
  );
}
