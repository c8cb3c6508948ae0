/**
 * submitBatchJob: a finalized object becomes exactly one Vertex AI batch prediction job.
 *
 * Returns an outcome (the framework acknowledges with 204) for everything final, including bad
 * input; throws for anything that may pass (the framework answers 500 and Eventarc retries).
 */
import { announce } from './announce.js';
import { isRetryable, TransientError } from '../core/errors.js';
import { deriveJobId } from '../core/job-id.js';
import { blankFields, logFields, queueOf, type JobRecord } from '../core/jobs.js';
import { leaseFor, SUBMIT_LEASE_SECONDS } from '../core/transitions.js';
import { locationInModel, normalizeModel, providerOf } from '../core/models.js';
import {
  eventAgeSeconds,
  ignoreReason,
  parseFinalizeEvent,
  type FinalizedObject,
  type IncomingCloudEvent,
} from '../core/storage-event.js';
import {
  claimForSubmission,
  releaseClaim,
  runSubmission,
  type SubmissionDeps,
  type SubmissionOutcome,
} from './submission.js';
import { withTimeLimit } from '../time-limit.js';

/** How long a failed delivery spends giving its claim back before it answers. */
const RELEASE_TIMEOUT_MS = 3_000;

/** Everything the submit use case needs. */
export interface SubmitDeps extends SubmissionDeps {
  /** A fresh id for this invocation's claims. */
  newOwner: () => string;
}

/** What happened to one delivery. */
export type SubmitOutcome =
  | { outcome: 'unsupported' }
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'stale'; ageSeconds: number }
  | SubmissionOutcome;

/** Handles one storage CloudEvent. */
export async function handleStorageEvent(
  event: IncomingCloudEvent,
  deps: SubmitDeps,
): Promise<SubmitOutcome> {
  const { config, log } = deps;
  const parsed = parseFinalizeEvent(event);
  if ('problem' in parsed) {
    log.warning('event.unsupported', 'Not a Cloud Storage finalize event; ignored', {
      problem: parsed.problem,
      eventType: event.type,
      eventId: event.id,
    });
    return { outcome: 'unsupported' };
  }
  const object = parsed;
  const where = { bucket: object.bucket, object: object.name, generation: object.generation };

  const reason = ignoreReason(object, config);
  if (reason) {
    log.debug('input.ignored', 'Object is not an input', { ...where, reason });
    return { outcome: 'ignored', reason };
  }

  const now = deps.clock();
  const age = eventAgeSeconds(object, now);
  if (age !== undefined && age > config.MAX_EVENT_AGE_SECONDS) {
    log.warning('event.stale', 'Event older than MAX_EVENT_AGE_SECONDS; dropped', {
      ...where,
      eventId: object.eventId,
      ageSeconds: Math.round(age),
      maxAgeSeconds: config.MAX_EVENT_AGE_SECONDS,
    });
    return { outcome: 'stale', ageSeconds: age };
  }

  const jobId = deriveJobId(object.bucket, object.name, object.generation);
  const owner = deps.newOwner();
  const fields = { ...where, jobId };
  log.info('input.received', 'Input received', { ...fields, eventId: object.eventId });

  // Why create-if-absent before anything else: the record is the idempotency key. Every delivery
  // of this generation (duplicates, retries, concurrent ones) meets the same document.
  const { created, record } = await deps.jobs.createIfAbsent(
    initialRecord(jobId, object, owner, deps),
  );
  let current = record;
  if (!created) {
    const settled = await settleExisting(record, owner, deps);
    if (settled) return settled;
    current = (await deps.jobs.get(jobId)) ?? record;
  }

  try {
    return await runSubmission(current, owner, deps, {
      size: object.size,
      contentEncoding: object.contentEncoding,
    });
  } catch (err) {
    // Let the next delivery take over at once instead of waiting for the claim to expire; bounded,
    // since the store may be what failed (the delivery must still answer within 30 s).
    await withTimeLimit(releaseClaim(jobId, owner, deps.jobs), RELEASE_TIMEOUT_MS, () => {
      return new Error('release timed out');
    }).catch(() => undefined);
    if (isRetryable(err)) {
      if (err instanceof TransientError && err.code === 'STORAGE.PERMISSION_DENIED') {
        // Not the uploader's fault and not passing by itself unless IAM is fixed or propagates.
        log.error(
          'input.read_denied',
          'No permission to read the input; the event will be retried',
          {
            ...fields,
            error: err,
            fix: "grant the submit function's service account roles/storage.objectViewer on the input bucket",
          },
        );
      } else {
        log.warning('submit.retry', 'Transient failure; the event will be retried', {
          ...fields,
          error: err,
        });
      }
    }
    throw err;
  }
}

function initialRecord(
  jobId: string,
  object: FinalizedObject,
  owner: string,
  deps: SubmitDeps,
): JobRecord {
  const now = deps.clock();
  const { config } = deps;
  // Custom metadata may hold up to 8 KiB: keep enough to say what was asked, never more.
  const requested = (object.metadata.model?.trim() || config.DEFAULT_MODEL).slice(0, 512);
  let model = requested;
  try {
    model = normalizeModel(requested);
  } catch {
    // Recorded as given; submit() rejects it with the reason.
  }
  const provider = providerOf(model);
  const location =
    object.metadata.location?.trim().slice(0, 64) ||
    locationInModel(model) ||
    (provider === 'anthropic' ? config.ANTHROPIC_LOCATION : config.VERTEX_LOCATION);
  return {
    ...blankFields(now),
    jobId,
    status: 'SUBMITTING',
    bucket: object.bucket,
    object: object.name,
    generation: object.generation,
    inputUri: `gs://${object.bucket}/${object.name}`,
    model,
    provider,
    location,
    queue: queueOf(model, location),
    outputUriPrefix: `${config.OUTPUT_URI_PREFIX}/${jobId}/`,
    lease: leaseFor(owner, now, SUBMIT_LEASE_SECONDS),
  };
}

/**
 * A record already exists for this generation. Returns the outcome when there is nothing left to
 * do; undefined when this delivery took the claim and must carry on submitting.
 */
async function settleExisting(
  record: JobRecord,
  owner: string,
  deps: SubmitDeps,
): Promise<SubmitOutcome | undefined> {
  const { jobId } = record;
  const fields = logFields(record);
  if (record.status === 'REJECTED' || record.status === 'SUBMIT_FAILED') {
    // A previous delivery recorded the outcome but may have failed to publish it.
    if (record.outstanding) await announce(jobId, owner, deps);
    deps.log.info('input.duplicate', 'Duplicate delivery of a rejected input', fields);
    return { outcome: 'rejected', jobId, code: record.error?.code ?? 'UNKNOWN' };
  }
  if (record.status !== 'SUBMITTING') {
    deps.log.info('input.duplicate', 'Duplicate delivery; the job exists already', {
      ...fields,
      status: record.status,
      vertexJob: record.vertexJob,
    });
    return { outcome: 'duplicate', jobId, status: record.status };
  }
  // SUBMITTING: another delivery is at work, or crashed: one of them takes the claim.
  if (await claimForSubmission(jobId, owner, ['SUBMITTING'], deps)) return undefined;
  const latest = await deps.jobs.get(jobId);
  if (latest && latest.status !== 'SUBMITTING') return settleExisting(latest, owner, deps);
  // Another delivery holds a live claim and is submitting it now. Acknowledge: if that worker
  // dies, its claim expires and the poller finishes the submission (STALE_SUBMITTING_SECONDS).
  deps.log.info('input.duplicate', 'Duplicate delivery; another delivery is submitting it', {
    ...fields,
    status: 'SUBMITTING',
  });
  return { outcome: 'duplicate', jobId, status: 'SUBMITTING' };
}
