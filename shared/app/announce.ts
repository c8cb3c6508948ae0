/**
 * Announcing an outcome: digest a finished job's output, publish the completion event once, then
 * mark the record announced. Shared by the submit function (rejections) and the poller (finished
 * jobs, retried announcements).
 */
import type { DigestDeps } from './digest.js';
import { settleInput, settleRetry } from './settle.js';
import { PermanentError } from '../core/errors.js';
import { buildCompletionEvent } from '../core/events.js';
import { logFields } from '../core/jobs.js';
import type { Clock, EventPublisher, JobStore } from '../ports.js';
import { claimAnnouncement, markAnnounced, needsDigest, release } from '../core/transitions.js';

/** What {@link announce} needs. */
export interface AnnounceDeps extends DigestDeps {
  jobs: JobStore;
  publisher: EventPublisher;
  clock: Clock;
  /** Tuning of the digest (tests). */
  digest?: { timeLimitMs?: number; partBytes?: number };
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
  let claimed = await deps.jobs.update(jobId, claimAnnouncement(owner, deps.clock()));
  if (!claimed) return false;

  // Why the digest comes first, under the same claim: the event carries its figures, so it waits
  // for them; a crash mid-digest leaves the claim to expire and a later run digests again (the
  // files are the same), and only the holder of the claim records the digest and publishes.
  // A retry of an input's failed rows hands its outcome to the input instead: no event of its own.
  if (claimed.retryOf !== null) {
    await settleRetry(claimed, owner, deps);
    return false;
  }
  if (needsDigest(claimed)) {
    // Undefined: rows are being sent again (the input waits for them), or the claim ran out
    // meanwhile (its new holder carries on).
    const settled = await settleInput(claimed, owner, deps);
    if (!settled) return false;
    claimed = settled;
  }

  let messageId: string;
  const current = claimed;
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
        ...logFields(current),
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
      ...(event.error ? { errorCode: event.error.code } : {}),
      ...(event.results ? { rows: event.results.rows } : {}),
      ...(event.cost
        ? { estimatedUsd: event.cost.estimatedUsd, actualUsd: event.cost.actualUsd }
        : {}),
    },
  );
  return true;
}
