/**
 * Every change of a job record, in one place: pure functions that take what the caller knows and
 * return a {@link RecordChange} for `jobs.update(jobId, change)`. Each change has its guard: it
 * returns undefined (nothing is written) when the record is not in a state where it applies, for
 * example when another worker took the claim. The store may run a change more than once (on
 * contention), so none of them has side effects.
 *
 * The state diagram is drawn in docs/architecture.md.
 */
import type { Attempt, Digest, JobError, JobRecord, JobStatus, Lease, LineError } from './jobs.js';
import type { CostEstimate } from './pricing.js';
import type { RecordChange } from '../ports.js';
import type { VertexBatchJob } from './vertex.js';

/** The name of each transition (crash points and traces name them). */
export type TransitionName =
  | 'claim'
  | 'release'
  | 'toManifest'
  | 'toCreating'
  | 'toWaiting'
  | 'toSubmitted'
  | 'toRejected'
  | 'toStateSeen'
  | 'toCancelRequested'
  | 'toCompleted'
  | 'claimAnnouncement'
  | 'toDigested'
  | 'toRetrying'
  | 'toAttemptDone'
  | 'toHandedOver'
  | 'markAnnounced';

/** A change that knows which transition it is. */
export type Transition = RecordChange & { readonly transition: TransitionName };

function named(transition: TransitionName, change: RecordChange): Transition {
  return Object.assign(change, { transition });
}

/** How long a submit claim lasts: longer than validating a 1 GB file plus a create. */
export const SUBMIT_LEASE_SECONDS = 540;
/**
 * The fence before a create: the claim must still be ours and is renewed to a full lease, so the
 * create (bounded at well under a minute) ends long before anyone else may take over.
 */
export const CREATE_LEASE_SECONDS = SUBMIT_LEASE_SECONDS;
/** How long a claim to publish lasts; after it, another run may publish (with the same eventId). */
export const PUBLISH_LEASE_SECONDS = 60;
/**
 * How long a digest may run (README "Results and cost"): the poll function's timeout must cover
 * the poll's time budget plus this (Terraform checks).
 */
export const DIGEST_TIME_LIMIT_SECONDS = 150;
/** A claim to digest and then publish: longer than a digest may run, so no one else starts one. */
export const DIGEST_LEASE_SECONDS = DIGEST_TIME_LIMIT_SECONDS + PUBLISH_LEASE_SECONDS + 30;
/** Digests started per finished job before its event goes out without one (`results` null). */
export const MAX_DIGEST_ATTEMPTS = 3;
/** A SUBMITTING record with no live claim and no change for this long belongs to a submit that died. */
export const STALE_SUBMITTING_SECONDS = 900;
/** After a cancel request, how long Vertex may take to report a final state before we stop waiting. */
export const CANCEL_CONFIRM_HOURS = 24;

/** Statuses whose outcome is final and only waits to be announced. */
export const OUTCOME_STATUSES: ReadonlySet<JobStatus> = new Set([
  'COMPLETED',
  'REJECTED',
  'SUBMIT_FAILED',
]);

/**
 * True while a record may have a Vertex job running, so its capacity slot (Claude) is still in
 * use: being submitted, submitted, or queued again after a create whose outcome is unknown (a lost
 * answer: the job may exist and be adopted by its label later).
 */
export function holdsCapacity(record: Pick<JobRecord, 'status' | 'createAttempts'>): boolean {
  return (
    record.status === 'SUBMITTING' ||
    record.status === 'SUBMITTED' ||
    (record.status === 'WAITING' && record.createAttempts > 0)
  );
}

/** True when the record's lease is absent, expired, or held by `owner`. */
export function leaseFree(record: JobRecord, now: Date, owner?: string): boolean {
  return (
    record.lease === null ||
    record.lease.owner === owner ||
    Date.parse(record.lease.until) <= now.getTime()
  );
}

/** True when `owner` holds a lease on the record that has not expired. */
export function holdsLease(record: JobRecord, owner: string, now: Date): boolean {
  return record.lease?.owner === owner && Date.parse(record.lease.until) > now.getTime();
}

/** A lease for `owner` that ends `seconds` from now. */
export function leaseFor(owner: string, now: Date, seconds: number): Lease {
  return { owner, until: new Date(now.getTime() + seconds * 1000).toISOString() };
}

/** Backoff of a queued input after a 429 or a failed attempt: 30 s, doubling, at most 30 min. */
export function waitBackoffSeconds(attempts: number): number {
  return Math.min(30 * 2 ** Math.max(0, attempts), 1800);
}

/** True when a SUBMITTING record was abandoned by the submit that claimed it. */
export function isStaleSubmitting(record: JobRecord, now: Date): boolean {
  return (
    record.status === 'SUBMITTING' &&
    leaseFree(record, now) &&
    now.getTime() - Date.parse(record.updateTime) >= STALE_SUBMITTING_SECONDS * 1000
  );
}

/**
 * Claim for submitting: a record in one of `from` statuses whose lease is free becomes
 * SUBMITTING with a lease for `owner`. Of several workers (deliveries, poll runs) exactly one
 * takes it, because the store applies the change atomically.
 */
export function claim(owner: string, now: Date, from: readonly JobStatus[]): Transition {
  return named('claim', (cur) =>
    from.includes(cur.status) && leaseFree(cur, now, owner)
      ? {
          ...cur,
          status: 'SUBMITTING',
          lease: leaseFor(owner, now, SUBMIT_LEASE_SECONDS),
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** Releases `owner`'s claim, so that the next worker can take over at once. */
export function release(owner: string): Transition {
  return named('release', (cur) =>
    cur.lease?.owner === owner ? { ...cur, lease: null } : undefined,
  );
}

/**
 * A claimed manifest's record learns what the manifest says (its model, region and source) or,
 * once its files are validated and pinned, which files they are.
 */
export function toManifest(
  owner: string,
  now: Date,
  fields: Pick<JobRecord, 'manifest' | 'model' | 'provider' | 'location' | 'queue' | 'inputUri'> &
    Partial<Pick<JobRecord, 'requestCount' | 'estimate'>>,
): Transition {
  return named('toManifest', (cur) =>
    cur.status === 'SUBMITTING' && holdsLease(cur, owner, now)
      ? { ...cur, ...fields, updateTime: now.toISOString() }
      : undefined,
  );
}

/**
 * The fence immediately before a create: only the holder of a live claim may create, and its
 * claim is renewed to a full lease; the attempt is counted first, so that a create whose answer
 * is lost is looked for by label before any second create.
 */
export function toCreating(
  owner: string,
  now: Date,
  requestCount: number,
  estimate: CostEstimate | null = null,
): Transition {
  return named('toCreating', (cur) =>
    cur.status === 'SUBMITTING' && holdsLease(cur, owner, now)
      ? {
          ...cur,
          requestCount,
          estimate: estimate ?? cur.estimate,
          createAttempts: cur.createAttempts + 1,
          lease: leaseFor(owner, now, CREATE_LEASE_SECONDS),
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/**
 * Into the queue: no capacity now (`throttled`: Vertex said 429, or an attempt failed, so back
 * off; otherwise it is looked at on every poll run). The record keeps its place (its createTime).
 */
export function toWaiting(
  owner: string,
  now: Date,
  opts: { requestCount: number | null; throttled: boolean; estimate?: CostEstimate | null },
): Transition {
  return named('toWaiting', (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status: 'WAITING',
          requestCount: opts.requestCount ?? cur.requestCount,
          estimate: opts.estimate ?? cur.estimate,
          lease: null,
          waitAttempts: cur.waitAttempts + (opts.throttled ? 1 : 0),
          nextAttemptAt: opts.throttled
            ? new Date(now.getTime() + waitBackoffSeconds(cur.waitAttempts) * 1000).toISOString()
            : null,
          waitingSince: cur.waitingSince ?? now.toISOString(),
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** The job exists: recorded only by the holder of the claim (a worker that lost it is fenced). */
export function toSubmitted(
  owner: string,
  now: Date,
  job: VertexBatchJob,
  requestCount: number,
): Transition {
  return named('toSubmitted', (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status: 'SUBMITTED',
          requestCount,
          vertexJob: job.name,
          vertexState: job.state ?? 'JOB_STATE_PENDING',
          vertexCreateTime: job.createTime ?? null,
          lease: null,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** Refused: bad input (REJECTED) or refused by Vertex (SUBMIT_FAILED), by the claim's holder. */
export function toRejected(
  owner: string,
  now: Date,
  status: 'REJECTED' | 'SUBMIT_FAILED',
  error: JobError,
  lineErrors: LineError[],
  estimate: CostEstimate | null = null,
): Transition {
  return named('toRejected', (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status,
          error,
          lineErrors,
          estimate: estimate ?? cur.estimate,
          lease: null,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** A new Vertex state of a running job (only from the state the caller saw). */
export function toStateSeen(now: Date, seenState: string | null, job: VertexBatchJob): Transition {
  return named('toStateSeen', (cur) =>
    cur.status === 'SUBMITTED' && cur.vertexState === seenState
      ? {
          ...cur,
          vertexState: job.state ?? cur.vertexState,
          vertexStartTime: job.startTime ?? cur.vertexStartTime,
          vertexCreateTime: job.createTime ?? cur.vertexCreateTime,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** We asked Vertex to cancel the job (too old); its outcome is still the one Vertex reports. */
export function toCancelRequested(now: Date): Transition {
  return named('toCancelRequested', (cur) =>
    cur.status === 'SUBMITTED' && cur.cancelRequestedAt === null
      ? { ...cur, cancelRequestedAt: now.toISOString(), updateTime: now.toISOString() }
      : undefined,
  );
}

/** The fields of a terminal outcome. */
export type TerminalFields = Pick<
  JobRecord,
  | 'vertexState'
  | 'stats'
  | 'error'
  | 'outputDirectory'
  | 'vertexCreateTime'
  | 'vertexStartTime'
  | 'vertexEndTime'
>;

/** The job reached a terminal state (recorded once, by whichever run sees it first). */
export function toCompleted(now: Date, outcome: TerminalFields): Transition {
  return named('toCompleted', (cur) =>
    cur.status === 'SUBMITTED'
      ? {
          ...cur,
          ...outcome,
          vertexCreateTime: outcome.vertexCreateTime ?? cur.vertexCreateTime,
          vertexStartTime: outcome.vertexStartTime ?? cur.vertexStartTime,
          status: 'COMPLETED',
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** True when a finished job's output is still to be digested before its event. */
export function needsDigest(record: Pick<JobRecord, 'status' | 'digest'>): boolean {
  return record.status === 'COMPLETED' && record.digest === null;
}

/**
 * Claim to publish an outcome that is known and not yet announced. A finished job not yet
 * digested gets a claim long enough to digest first, and the attempt is counted (a run that dies
 * mid-digest counts too, so a digest that can never finish does not hold the event forever).
 */
export function claimAnnouncement(owner: string, now: Date): Transition {
  return named('claimAnnouncement', (cur) => {
    if (!(cur.outstanding && OUTCOME_STATUSES.has(cur.status) && leaseFree(cur, now, owner)))
      return undefined;
    const digesting = needsDigest(cur);
    return {
      ...cur,
      digestAttempts: cur.digestAttempts + (digesting ? 1 : 0),
      lease: leaseFor(owner, now, digesting ? DIGEST_LEASE_SECONDS : PUBLISH_LEASE_SECONDS),
      updateTime: now.toISOString(),
    };
  });
}

/**
 * The digest is written: recorded once, by the holder of a live claim (a worker whose claim ran
 * out meanwhile is fenced: another one digests, with the same files), with a fresh claim to publish.
 */
export function toDigested(
  owner: string,
  now: Date,
  digest: Digest,
  attempts?: Attempt[],
): Transition {
  return named('toDigested', (cur) =>
    cur.outstanding && needsDigest(cur) && holdsLease(cur, owner, now)
      ? {
          ...cur,
          digest,
          attempts: attempts ?? cur.attempts,
          lease: leaseFor(owner, now, PUBLISH_LEASE_SECONDS),
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/**
 * Some rows are sent again (README "Failed rows"): the input waits for the attempt under way,
 * `retryJobId` (created just before), with the attempts digested so far. Only the holder of the
 * claim; the digest count starts again for the next digest.
 */
export function toRetrying(
  owner: string,
  now: Date,
  attempts: Attempt[],
  retryJobId: string,
): Transition {
  return named('toRetrying', (cur) =>
    cur.status === 'COMPLETED' && cur.digest === null && holdsLease(cur, owner, now)
      ? {
          ...cur,
          status: 'RETRYING',
          attempts,
          retryJobId,
          digestAttempts: 0,
          lease: null,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/**
 * The attempt under way ended and was digested: the input is a finished job again, to be retried
 * once more or announced with every attempt (once: only from the attempt it waited for).
 */
export function toAttemptDone(retryJobId: string, attempt: Attempt, now: Date): Transition {
  return named('toAttemptDone', (cur) =>
    cur.status === 'RETRYING' && cur.retryJobId === retryJobId
      ? {
          ...cur,
          status: 'COMPLETED',
          attempts: [...cur.attempts, attempt],
          retryJobId: null,
          digestAttempts: 0,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}

/** A retry handed its outcome to its input: it leaves the outstanding list, with no event. */
export function toHandedOver(owner: string, now: Date): Transition {
  return named('toHandedOver', (cur) =>
    cur.outstanding && cur.retryOf !== null && cur.lease?.owner === owner
      ? { ...cur, outstanding: false, lease: null, updateTime: now.toISOString() }
      : undefined,
  );
}

/** The event was published: the record leaves the outstanding list. */
export function markAnnounced(now: Date, eventId: string, publishTime: string): Transition {
  return named('markAnnounced', (cur) =>
    cur.outstanding
      ? {
          ...cur,
          outstanding: false,
          lease: null,
          eventId,
          publishedAt: publishTime,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
}
