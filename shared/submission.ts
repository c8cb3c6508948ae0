/**
 * Submitting one input: validate it, admit it (or queue it while the provider has no capacity),
 * create its Vertex job exactly once, and record the outcome. Run by submitBatchJob for a new
 * delivery, and by pollBatchJobs for queued inputs and for submissions whose function died.
 */
import { announce } from './announce.js';
import type { Config } from './config.js';
import { BatchCourierError, PermanentError, TransientError } from './errors.js';
import {
  leaseFor,
  leaseFree,
  logFields,
  type JobError,
  type JobRecord,
  type JobStatus,
} from './jobs.js';
import { MAX_INPUT_BYTES, validateJsonl, type ValidationResult } from './jsonl.js';
import type { Logger } from './logger.js';
import { normalizeModel } from './models.js';
import type {
  Clock,
  EventPublisher,
  JobStore,
  ObjectReader,
  ObjectWriter,
  VertexJobs,
} from './ports.js';
import { buildBatchJobRequest, jobIdFilter, type VertexBatchJob } from './vertex.js';

/** What a submission needs. */
export interface SubmissionDeps {
  config: Config;
  jobs: JobStore;
  reader: ObjectReader;
  /** Writes rejection reports under the job's output prefix. */
  reports: ObjectWriter;
  vertex: VertexJobs;
  publisher: EventPublisher;
  log: Logger;
  clock: Clock;
}

/** What the event told about the object (absent when resuming from a record). */
export interface ObjectHints {
  size?: number | undefined;
  contentEncoding?: string | undefined;
  /** True when the queue (the poller) runs it: it is the head of the queue, not a newcomer. */
  fromQueue?: boolean;
}

/** How a submission ended. */
export type SubmissionOutcome =
  | { outcome: 'duplicate'; jobId: string; status: string }
  | { outcome: 'submitted'; jobId: string; vertexJob: string; recovered: boolean }
  | { outcome: 'rejected'; jobId: string; code: string }
  | { outcome: 'waiting'; jobId: string; reason: string };

/** How long a submit claim lasts: longer than validating a 1 GB file plus a create. */
export const SUBMIT_LEASE_SECONDS = 540;

/** Backoff of a queued input after a 429: 30 s, doubling, at most 30 min. */
export function waitBackoffSeconds(attempts: number): number {
  return Math.min(30 * 2 ** Math.max(0, attempts), 1800);
}

/**
 * Claims a record in one of `from` statuses for submitting: status SUBMITTING with a lease for
 * `owner`. Undefined when another worker holds it or its status moved on.
 */
export async function claimForSubmission(
  jobId: string,
  owner: string,
  from: readonly JobStatus[],
  deps: Pick<SubmissionDeps, 'jobs' | 'clock'>,
): Promise<JobRecord | undefined> {
  const now = deps.clock();
  // Why a claim in a transaction: of several workers (deliveries, poll runs) exactly one may go
  // on to create the Vertex job.
  return deps.jobs.update(jobId, (cur) =>
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

/** Releases `owner`'s claim so the next worker can take over at once (best effort). */
export async function releaseClaim(jobId: string, owner: string, jobs: JobStore): Promise<void> {
  await jobs
    .update(jobId, (cur) => (cur.lease?.owner === owner ? { ...cur, lease: null } : undefined))
    .catch(() => undefined);
}

/**
 * Why the provider cannot take another job now, or undefined. Anthropic models allow
 * ANTHROPIC_MAX_CONCURRENT_JOBS running batch jobs per project. A newcomer also waits while older
 * inputs of its provider wait, so the queue stays first-in first-out.
 */
async function capacityProblem(
  record: JobRecord,
  deps: SubmissionDeps,
  fromQueue: boolean,
): Promise<string | undefined> {
  if (!fromQueue && (await deps.jobs.countWaiting(record.queue)) > 0) {
    return `older ${record.provider} inputs are waiting for capacity`;
  }
  const cap = deps.config.ANTHROPIC_MAX_CONCURRENT_JOBS;
  if (record.provider === 'anthropic' && cap > 0) {
    if (!(await deps.jobs.reserveSlot('anthropic', record.jobId, cap)))
      return `${cap} Anthropic batch jobs are running (ANTHROPIC_MAX_CONCURRENT_JOBS=${cap})`;
  }
  return undefined;
}

async function recordWaiting(
  record: JobRecord,
  owner: string,
  requestCount: number,
  reason: string,
  throttled: boolean,
  deps: SubmissionDeps,
): Promise<SubmissionOutcome> {
  const now = deps.clock();
  const written = await deps.jobs.update(record.jobId, (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status: 'WAITING',
          requestCount,
          lease: null,
          waitAttempts: cur.waitAttempts + (throttled ? 1 : 0),
          // After a 429, back off; a capacity wait is looked at on every poll run.
          nextAttemptAt: throttled
            ? new Date(now.getTime() + waitBackoffSeconds(cur.waitAttempts) * 1000).toISOString()
            : null,
          updateTime: now.toISOString(),
        }
      : undefined,
  );
  if (!written) throw lostClaim();
  deps.log.info('input.waiting', 'Input queued until the provider has capacity', {
    ...logFields(record),
    provider: record.provider,
    reason,
    nextAttemptAt: written.nextAttemptAt,
  });
  return { outcome: 'waiting', jobId: record.jobId, reason };
}

/**
 * Runs a claimed submission to its next resting state: rejected (with report and event), waiting
 * for capacity, or submitted. Throws (transient) when a dependency fails; the caller releases the
 * claim and the work is retried (Eventarc redelivery, or the next poll run).
 */
export async function runSubmission(
  record: JobRecord,
  owner: string,
  deps: SubmissionDeps,
  hints: ObjectHints = {},
): Promise<SubmissionOutcome> {
  const { jobId } = record;
  const fields = logFields(record);

  // 1. What can be refused without reading the file.
  const refusal = refuseBeforeReading(record, hints);
  if (refusal) return reject(record, owner, deps, refusal, undefined);

  // 2. Validate the bytes of exactly this generation, as a stream.
  let requestCount = record.requestCount;
  if (requestCount === null) {
    let result;
    try {
      result = await validateJsonl(
        deps.reader.read(record.bucket, record.object, record.generation),
        { provider: record.provider, model: record.model },
      );
    } catch (err) {
      if (err instanceof PermanentError)
        return reject(record, owner, deps, errorOf(err), undefined);
      throw err;
    }
    if (result.code !== undefined) {
      const first = result.errors[0];
      const message = first
        ? `${record.object} line ${first.line}: ${first.message}`
        : `${record.object}: invalid input`;
      return reject(record, owner, deps, { code: result.code, message }, result);
    }
    requestCount = result.requestCount;
    deps.log.info('input.validated', 'Input is valid', {
      ...fields,
      requestCount,
      bytes: result.bytes,
    });
  }

  // 3. A create whose answer was lost may have made a job: look for it by label first.
  if (record.createAttempts > 0) {
    const found = await findByLabel(record, deps);
    if (found) return recordSubmitted(record, owner, found, requestCount, true, deps);
  }

  // 4. Admission: wait (acknowledged, not retried) while the provider has no capacity.
  const full = await capacityProblem(record, deps, hints.fromQueue === true);
  if (full) return recordWaiting(record, owner, requestCount, full, false, deps);

  const counted = await deps.jobs.update(jobId, (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          requestCount,
          createAttempts: cur.createAttempts + 1,
          updateTime: deps.clock().toISOString(),
        }
      : undefined,
  );
  if (!counted) throw lostClaim();

  let job: VertexBatchJob;
  try {
    job = await deps.vertex.create(
      record.location,
      buildBatchJobRequest({
        jobId,
        model: record.model,
        inputUri: record.inputUri,
        outputUriPrefix: record.outputUriPrefix,
      }),
    );
  } catch (err) {
    if (err instanceof PermanentError) {
      return reject(counted, owner, deps, errorOf(err), undefined, 'SUBMIT_FAILED');
    }
    if (err instanceof TransientError && err.code === 'VERTEX.RESOURCE_EXHAUSTED') {
      // Vertex has no capacity now: wait in the queue instead of Eventarc retrying for hours.
      return recordWaiting(
        counted,
        owner,
        requestCount,
        'Vertex AI answered 429 RESOURCE_EXHAUSTED',
        true,
        deps,
      );
    }
    throw err;
  }
  return recordSubmitted(counted, owner, job, requestCount, false, deps);
}

async function findByLabel(
  record: JobRecord,
  deps: SubmissionDeps,
): Promise<VertexBatchJob | undefined> {
  const page = await deps.vertex.list(record.location, {
    filter: jobIdFilter([record.jobId]),
    pageSize: 10,
  });
  const job = page.jobs[0];
  if (job) {
    deps.log.info('job.recovered', 'Found the job of an earlier create whose answer was lost', {
      jobId: record.jobId,
      vertexJob: job.name,
    });
  }
  return job;
}

async function recordSubmitted(
  record: JobRecord,
  owner: string,
  job: VertexBatchJob,
  requestCount: number,
  recovered: boolean,
  deps: SubmissionDeps,
): Promise<SubmissionOutcome> {
  const now = deps.clock().toISOString();
  const written = await deps.jobs.update(record.jobId, (cur) =>
    cur.status === 'SUBMITTING'
      ? {
          ...cur,
          status: 'SUBMITTED',
          requestCount,
          vertexJob: job.name,
          vertexState: job.state ?? 'JOB_STATE_PENDING',
          vertexCreateTime: job.createTime ?? null,
          lease: null,
          updateTime: now,
        }
      : undefined,
  );
  if (!written) {
    // Another delivery recorded it meanwhile (its claim had expired): nothing is lost.
    const latest = await deps.jobs.get(record.jobId);
    if (latest?.vertexJob && latest.vertexJob !== job.name) {
      deps.log.error('job.duplicate_created', 'A second Vertex job exists for one input', {
        jobId: record.jobId,
        vertexJob: job.name,
        recordedVertexJob: latest.vertexJob,
      });
    }
    return { outcome: 'duplicate', jobId: record.jobId, status: latest?.status ?? 'UNKNOWN' };
  }
  deps.log.info('job.submitted', 'Vertex AI batch job created', {
    ...logFields(record),
    vertexJob: job.name,
    model: record.model,
    location: record.location,
    requestCount,
    recovered,
    owner,
  });
  return { outcome: 'submitted', jobId: record.jobId, vertexJob: job.name, recovered };
}

async function reject(
  record: JobRecord,
  owner: string,
  deps: SubmissionDeps,
  error: JobError,
  found: Pick<ValidationResult, 'errors' | 'complete' | 'requestCount'> | undefined,
  status: 'REJECTED' | 'SUBMIT_FAILED' = 'REJECTED',
): Promise<SubmissionOutcome> {
  const lineErrors = (found?.errors ?? [])
    .slice(0, 100)
    .map(({ line, message }) => ({ line, message }));
  if (status === 'REJECTED') {
    // The report first: if writing it fails, the delivery is retried before anything is recorded.
    const uri = `${record.outputUriPrefix}${REJECTION_REPORT}`;
    await deps.reports.write(
      uri,
      rejectionReport(record, error, found, deps.clock()),
      'application/json',
    );
    error = { ...error, message: `${error.message} (report: ${uri})` };
  }
  const written = await deps.jobs.update(record.jobId, (cur) =>
    cur.status === 'SUBMITTING' && cur.lease?.owner === owner
      ? {
          ...cur,
          status,
          error,
          lineErrors,
          lease: null,
          updateTime: deps.clock().toISOString(),
        }
      : undefined,
  );
  if (!written) throw lostClaim();
  deps.log.warning(
    status === 'REJECTED' ? 'input.invalid' : 'job.create_refused',
    'Input rejected',
    {
      ...logFields(record),
      errorCode: error.code,
      reason: error.message,
    },
  );
  await announce(record.jobId, owner, deps);
  return { outcome: 'rejected', jobId: record.jobId, code: error.code };
}

/** The checks that need only the event: model, region, encoding, size. */
function refuseBeforeReading(record: JobRecord, object: ObjectHints): JobError | undefined {
  try {
    normalizeModel(record.model);
  } catch (err) {
    return errorOf(err);
  }
  if (!/^[a-z]+(?:-[a-z0-9]+)+$|^global$/.test(record.location)) {
    return {
      code: 'INPUT.INVALID_LOCATION',
      message: `custom metadata location "${record.location.slice(0, 64)}" is not a Vertex AI region`,
    };
  }
  if (object.contentEncoding && object.contentEncoding !== 'identity') {
    // Vertex reads the stored bytes; a compressed object would fail as invalid JSONL hours later.
    return {
      code: 'INPUT.UNSUPPORTED_ENCODING',
      message: `${record.object} is stored with contentEncoding "${object.contentEncoding.slice(0, 32)}": Vertex AI batch input must be uncompressed JSONL; upload it without compression`,
    };
  }
  if (object.size !== undefined && object.size > MAX_INPUT_BYTES) {
    return {
      code: 'INPUT.TOO_LARGE',
      message: `${record.object} is ${object.size} bytes: the limit is ${MAX_INPUT_BYTES} bytes per file; split it`,
    };
  }
  if (object.size === 0) {
    return { code: 'INPUT.EMPTY', message: `${record.object} line 1: the file is empty` };
  }
  return undefined;
}

/** Name of the report written under the job's output prefix when an input is rejected. */
export const REJECTION_REPORT = 'rejection.json';

/** The rejection report: every problem found (up to 1,000) with line, reason and a short excerpt. */
function rejectionReport(
  record: JobRecord,
  error: JobError,
  found: Pick<ValidationResult, 'errors' | 'complete' | 'requestCount'> | undefined,
  now: Date,
): string {
  const errors = found?.errors ?? [];
  return (
    JSON.stringify(
      {
        schemaVersion: 1,
        jobId: record.jobId,
        input: {
          bucket: record.bucket,
          name: record.object,
          generation: record.generation,
          uri: record.inputUri,
        },
        model: record.model,
        error,
        requestCount: found?.requestCount ?? null,
        errorCount: errors.length,
        /** True when reading stopped early: there may be more problems than listed. */
        truncated: found ? !found.complete : false,
        errors,
        createTime: now.toISOString(),
      },
      null,
      2,
    ) + '\n'
  );
}

function errorOf(err: unknown): JobError {
  if (err instanceof BatchCourierError) return { code: err.code, message: err.message };
  return { code: 'UNKNOWN', message: err instanceof Error ? err.message : String(err) };
}

function lostClaim(): TransientError {
  return new TransientError(
    'JOBS.CONFLICT',
    'the submit claim on this record was taken over by another delivery; retry later',
  );
}
