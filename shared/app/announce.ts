/**
 * Announcing an outcome: digest a finished job's output, publish the completion event once, then
 * mark the record announced. Shared by the submit function (rejections) and the poller (finished
 * jobs, retried announcements).
 */
import { digestJob, recordedDigest, type DigestDeps } from './digest.js';
import { PermanentError, TransientError } from '../core/errors.js';
import { buildCompletionEvent } from '../core/events.js';
import { logFields, type Digest, type JobRecord } from '../core/jobs.js';
import { pricingName } from '../core/pricing.js';
import type { Clock, EventPublisher, JobStore } from '../ports.js';
import {
  claimAnnouncement,
  DIGEST_TIME_LIMIT_SECONDS,
  markAnnounced,
  MAX_DIGEST_ATTEMPTS,
  needsDigest,
  release,
  toDigested,
} from '../core/transitions.js';
import { formatSeconds, withTimeLimit } from '../time-limit.js';

/** How long a digest that ran out of time is waited for before its claim is released. */
const ABANDON_GRACE_MS = 15_000;

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
  if (needsDigest(claimed)) {
    const digest = await digestOrGiveUp(claimed, owner, deps);
    const digested = await deps.jobs.update(jobId, toDigested(owner, deps.clock(), digest));
    if (!digested) return false; // the claim ran out meanwhile: its new holder publishes
    claimed = digested;
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

/**
 * Digests the job's output within {@link DIGEST_TIME_LIMIT_SECONDS}. A failure that may pass
 * releases the claim and throws (a later run tries again); after {@link MAX_DIGEST_ATTEMPTS}
 * attempts, or a failure that cannot pass, the event goes out without a digest (`results` null),
 * logged at ERROR: the outcome is never held back for good.
 */
async function digestOrGiveUp(
  record: JobRecord,
  owner: string,
  deps: AnnounceDeps,
): Promise<Digest> {
  const fields = { ...logFields(record), vertexJob: record.vertexJob };
  const giveUp = (why: string, error?: unknown): Digest => {
    deps.log.error('digest.failed', 'No results digest: the event goes out without one', {
      ...fields,
      attempts: record.digestAttempts,
      reason: why,
      ...(error === undefined ? {} : { error }),
      fix: 'check that the poll function may read and write the output bucket; the output files stay in place',
    });
    return {
      results: null,
      usage: null,
      actualUsd: null,
      pricing: pricingName(deps.config.PRICE_TABLE),
      note: why,
    };
  };
  if (record.digestAttempts > MAX_DIGEST_ATTEMPTS) {
    // The last attempt may have finished its files and died before recording them.
    const finished = await recordedDigest(record, deps).catch(() => undefined);
    if (finished) return finished;
    return giveUp(`the digest was started ${MAX_DIGEST_ATTEMPTS} times and never finished`);
  }
  const limitMs = deps.digest?.timeLimitMs ?? DIGEST_TIME_LIMIT_SECONDS * 1000;
  const stop = new AbortController();
  const started = performance.now();
  const work = digestJob(record, deps, {
    workId: `${owner}-${record.digestAttempts}`,
    signal: stop.signal,
    ...(deps.digest?.partBytes ? { partBytes: deps.digest.partBytes } : {}),
  });
  try {
    const digest = await withTimeLimit(work, limitMs, () => {
      stop.abort();
      return new TransientError(
        'DEADLINE.EXCEEDED',
        `the digest did not finish within ${formatSeconds(limitMs)}`,
      );
    });
    deps.log.info('job.digested', 'Results digest written', {
      ...fields,
      ...(digest.results ? { rows: digest.results.rows } : { note: digest.note }),
      usage: digest.usage,
      actualUsd: digest.actualUsd,
      ms: Math.round(performance.now() - started),
    });
    return digest;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof PermanentError || record.digestAttempts >= MAX_DIGEST_ATTEMPTS) {
      return giveUp(`the digest failed after ${record.digestAttempts} attempts: ${message}`, err);
    }
    // A digest that ran out of time stops at its next line; the claim is released once it has
    // (or after a grace period), so that no second digest runs beside it on this instance.
    await withTimeLimit(work, ABANDON_GRACE_MS, () => new Error('still running')).catch(
      () => undefined,
    );
    await deps.jobs.update(record.jobId, release(owner)).catch(() => undefined);
    deps.log.warning('digest.failed', 'The digest failed; a later poll run tries again', {
      ...fields,
      attempts: record.digestAttempts,
      error: err,
    });
    throw err;
  }
}
