/**
 * submitBatchJob: a finalized object becomes exactly one Vertex AI batch prediction job.
 *
 * Returns an outcome (the framework acknowledges with 204) for everything final, including bad
 * input; throws for anything that may pass (the framework answers 500 and Eventarc retries).
 */
import { announce } from '../../shared/announce.js';
import type { Config } from '../../shared/config.js';
import {
  BatchCourierError,
  PermanentError,
  TransientError,
  isRetryable,
} from '../../shared/errors.js';
import { deriveJobId } from '../../shared/job-id.js';
import {
  leaseFor,
  leaseFree,
  logFields,
  type JobError,
  type JobRecord,
} from '../../shared/jobs.js';
import { MAX_INPUT_BYTES, validateJsonl, type ValidationResult } from '../../shared/jsonl.js';
import type { Logger } from '../../shared/logger.js';
import { locationInModel, normalizeModel, providerOf } from '../../shared/models.js';
import type {
  Clock,
  EventPublisher,
  JobStore,
  ObjectReader,
  ObjectWriter,
  VertexJobs,
} from '../../shared/ports.js';
import {
  eventAgeSeconds,
  ignoreReason,
  parseFinalizeEvent,
  type FinalizedObject,
  type IncomingCloudEvent,
} from '../../shared/storage-event.js';
import { buildBatchJobRequest, jobIdFilter, type VertexBatchJob } from '../../shared/vertex.js';

/** Everything the submit use case needs. */
export interface SubmitDeps {
  config: Config;
  jobs: JobStore;
  reader: ObjectReader;
  /** Writes rejection reports under the job's output prefix. */
  reports: ObjectWriter;
  vertex: VertexJobs;
  publisher: EventPublisher;
  log: Logger;
  clock: Clock;
  /** A fresh id for this invocation's claims. */
  newOwner: () => string;
}

/** What happened to one delivery. */
export type SubmitOutcome =
  | { outcome: 'unsupported' }
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'stale'; ageSeconds: number }
  | { outcome: 'duplicate'; jobId: string; status: string }
  | { outcome: 'submitted'; jobId: string; vertexJob: string; recovered: boolean }
  | { outcome: 'rejected'; jobId: string; code: string };

/** How long a submit claim lasts: longer than validating a 1 GB file plus a create. */
export const SUBMIT_LEASE_SECONDS = 540;

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
    return await submit(current, object, owner, deps);
  } catch (err) {
    if (isRetryable(err)) {
      // Let the next delivery take over at once instead of waiting for the claim to expire.
      await deps.jobs
        .update(jobId, (cur) => (cur.lease?.owner === owner ? { ...cur, lease: null } : undefined))
        .catch(() => undefined);
      log.warning('submit.retry', 'Transient failure; the event will be retried', {
        ...fields,
        error: err,
      });
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
  const requested = object.metadata.model?.trim() || config.DEFAULT_MODEL;
  let model = requested;
  try {
    model = normalizeModel(requested);
  } catch {
    // Recorded as given; submit() rejects it with the reason.
  }
  const provider = providerOf(model);
  const location =
    object.metadata.location?.trim() ||
    locationInModel(model) ||
    (provider === 'anthropic' ? config.ANTHROPIC_LOCATION : config.VERTEX_LOCATION);
  const iso = now.toISOString();
  return {
    jobId,
    status: 'SUBMITTING',
    bucket: object.bucket,
    object: object.name,
    generation: object.generation,
    inputUri: `gs://${object.bucket}/${object.name}`,
    model,
    provider,
    location,
    outputUriPrefix: `${config.OUTPUT_URI_PREFIX}/${jobId}/`,
    requestCount: null,
    vertexJob: null,
    vertexState: null,
    error: null,
    lineErrors: [],
    stats: null,
    outputDirectory: null,
    vertexCreateTime: null,
    vertexStartTime: null,
    vertexEndTime: null,
    createAttempts: 0,
    lease: leaseFor(owner, now, SUBMIT_LEASE_SECONDS),
    outstanding: true,
    eventId: null,
    publishedAt: null,
    createTime: iso,
    updateTime: iso,
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
  // SUBMITTING: another delivery is at work, or crashed. Why a claim in a transaction: of several
  // concurrent deliveries exactly one may go on to create the Vertex job.
  const now = deps.clock();
  const claimed = await deps.jobs.update(jobId, (cur) =>
    cur.status === 'SUBMITTING' && leaseFree(cur, now, owner)
      ? { ...cur, lease: leaseFor(owner, now, SUBMIT_LEASE_SECONDS), updateTime: now.toISOString() }
      : undefined,
  );
  if (claimed) return undefined;
  const latest = await deps.jobs.get(jobId);
  if (latest && latest.status !== 'SUBMITTING') return settleExisting(latest, owner, deps);
  throw new TransientError(
    'SUBMIT.IN_PROGRESS',
    'another delivery of this object generation is being submitted; retry later',
  );
}

async function submit(
  record: JobRecord,
  object: FinalizedObject,
  owner: string,
  deps: SubmitDeps,
): Promise<SubmitOutcome> {
  const { jobId } = record;
  const fields = logFields(record);

  // 1. What can be refused without reading the file.
  const refusal = refuseBeforeReading(record, object);
  if (refusal) return reject(record, owner, deps, refusal, undefined);

  // 2. Validate the bytes of exactly this generation, as a stream.
  let requestCount = record.requestCount;
  if (requestCount === null) {
    let result;
    try {
      result = await validateJsonl(
        deps.reader.read(object.bucket, object.name, object.generation),
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
        ? `${object.name} line ${first.line}: ${first.message}`
        : `${object.name}: invalid input`;
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
    throw err;
  }
  return recordSubmitted(counted, owner, job, requestCount, false, deps);
}

async function findByLabel(
  record: JobRecord,
  deps: SubmitDeps,
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
  deps: SubmitDeps,
): Promise<SubmitOutcome> {
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
  deps: SubmitDeps,
  error: JobError,
  found: Pick<ValidationResult, 'errors' | 'complete' | 'requestCount'> | undefined,
  status: 'REJECTED' | 'SUBMIT_FAILED' = 'REJECTED',
): Promise<SubmitOutcome> {
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
function refuseBeforeReading(record: JobRecord, object: FinalizedObject): JobError | undefined {
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
      message: `${object.name} is stored with contentEncoding "${object.contentEncoding.slice(0, 32)}": Vertex AI batch input must be uncompressed JSONL; upload it without compression`,
    };
  }
  if (object.size !== undefined && object.size > MAX_INPUT_BYTES) {
    return {
      code: 'INPUT.TOO_LARGE',
      message: `${object.name} is ${object.size} bytes: the limit is ${MAX_INPUT_BYTES} bytes per file; split it`,
    };
  }
  if (object.size === 0) {
    return { code: 'INPUT.EMPTY', message: `${object.name} line 1: the file is empty` };
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
