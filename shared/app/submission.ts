/**
 * Submitting one input: validate it, pin the validated bytes, admit it (or queue it while its
 * model has no capacity), create its Vertex job exactly once, and record the outcome. Run by
 * submitBatchJob for a new delivery, and by pollBatchJobs for queued inputs and for submissions
 * whose function died.
 */
import {
  allowedLocations,
  allowedModels,
  fileUriRule,
  isLocationAllowed,
  isModelAllowed,
} from '../core/allow-lists.js';
import { announce } from './announce.js';
import {
  manifestInputUris,
  readManifest,
  tableChanged,
  validateSources,
  type ManifestFields,
  type SourceProblem,
} from './sources.js';
import type { Config } from '../config.js';
import { BatchCourierError, PermanentError, TransientError } from '../core/errors.js';
import { logFields, type JobError, type JobRecord, type ManifestRecord } from '../core/jobs.js';
import { isManifestName } from '../core/manifest.js';
import { MAX_INPUT_BYTES, validateJsonl, type ValidationResult } from '../core/jsonl.js';
import type { Logger } from '../logger.js';
import { locationInModel, normalizeModel } from '../core/models.js';
import { estimateCost, type CostEstimate } from '../core/pricing.js';
import type {
  Clock,
  EventPublisher,
  JobStore,
  ObjectReader,
  BigQueryTables,
  ObjectWriter,
  VertexJobs,
} from '../ports.js';
import {
  claim,
  release,
  toCreating,
  toManifest,
  toRejected,
  toSubmitted,
  toWaiting,
} from '../core/transitions.js';
import {
  buildBatchJobRequest,
  jobIdFilter,
  JOB_ID_LABEL,
  type VertexBatchJob,
} from '../core/vertex.js';

/** What a submission needs. */
export interface SubmissionDeps {
  config: Config;
  jobs: JobStore;
  reader: ObjectReader;
  /** Writes rejection reports and the pinned input copy under the job's output prefix. */
  reports: ObjectWriter;
  vertex: VertexJobs;
  /** BigQuery, for manifests that name a table or dataset (README "Manifests"). */
  bigquery?: BigQueryTables | undefined;
  publisher: EventPublisher;
  log: Logger;
  clock: Clock;
  /** Waits between retries of a failed `list` (default: real time). */
  sleep?: (ms: number) => Promise<void>;
  /** Tuning of the results digest (tests and benchmarks). */
  digest?: { timeLimitMs?: number; partBytes?: number };
}

/** What the event told about the object (absent when resuming from a record). */
export interface ObjectHints {
  size?: number | undefined;
  contentEncoding?: string | undefined;
  /** True when the queue (the poller) runs it: it is the head of its queue, not a newcomer. */
  fromQueue?: boolean;
}

/** How a submission ended. */
export type SubmissionOutcome =
  | { outcome: 'duplicate'; jobId: string; status: string }
  | { outcome: 'submitted'; jobId: string; vertexJob: string; recovered: boolean }
  | { outcome: 'rejected'; jobId: string; code: string }
  | { outcome: 'waiting'; jobId: string; reason: string };

/** The capacity pool of Claude batch jobs (a per-project quota on Vertex). */
export const ANTHROPIC_POOL = 'anthropic';

/** Name of the pinned copy of the validated input, under the job's output prefix. */
export const PINNED_INPUT = 'input.jsonl';

/** Name of the report written under the job's output prefix when an input is rejected. */
export const REJECTION_REPORT = 'rejection.json';

/** A create is not sent later than this before the claim renewed by the fence runs out. */
const CREATE_MARGIN_MS = 60_000;

/** How many times a failing `list` is tried before a create that may have been lost. */
const LIST_TRIES = 3;
/**
 * A failed `list` is tried again only while little time has passed: the client already retries a
 * `list` that does not answer for up to 25 s, and the delivery must fail within 30 s.
 */
const LIST_RETRY_WINDOW_MS = 4_000;

/**
 * Claims a record in one of `from` statuses for submitting. Undefined when another worker holds
 * it or its status moved on.
 */
export function claimForSubmission(
  jobId: string,
  owner: string,
  from: JobRecord['status'][],
  deps: Pick<SubmissionDeps, 'jobs' | 'clock'>,
): Promise<JobRecord | undefined> {
  return deps.jobs.update(jobId, claim(owner, deps.clock(), from));
}

/** Releases `owner`'s claim so the next worker can take over at once (best effort). */
export async function releaseClaim(jobId: string, owner: string, jobs: JobStore): Promise<void> {
  await jobs.update(jobId, release(owner)).catch(() => undefined);
}

/**
 * Puts a claimed record back in its queue with a backoff (its place is kept): used when an
 * attempt failed for a reason that may pass. Best effort: if the store is down too, the claim
 * expires and the poller finds the record as an abandoned submission.
 */
export async function requeue(
  record: JobRecord,
  owner: string,
  deps: Pick<SubmissionDeps, 'jobs' | 'clock'>,
): Promise<boolean> {
  const written = await deps.jobs
    .update(record.jobId, toWaiting(owner, deps.clock(), { requestCount: null, throttled: true }))
    .catch(() => undefined);
  return written !== undefined;
}

/**
 * Why the input cannot be submitted now, or undefined (then, for Claude, a slot is reserved for
 * it). A newcomer waits while older inputs of its queue wait, so each queue (model and region)
 * stays first-in first-out; Claude models share ANTHROPIC_MAX_CONCURRENT_JOBS slots per project.
 */
async function capacityProblem(
  record: JobRecord,
  deps: SubmissionDeps,
  fromQueue: boolean,
): Promise<string | undefined> {
  if (!fromQueue && (await deps.jobs.countWaiting(record.queue)) > 0) {
    return `older inputs for ${record.model} in ${record.location} are waiting for capacity`;
  }
  const cap = deps.config.ANTHROPIC_MAX_CONCURRENT_JOBS;
  // Why a slot reserved in a transaction: counting running jobs and then creating lets a burst
  // of concurrent deliveries all see room and all create.
  if (record.provider === 'anthropic' && cap > 0) {
    if (!(await deps.jobs.reserveSlot(ANTHROPIC_POOL, record.jobId, cap)))
      return `${cap} Anthropic batch jobs are running (ANTHROPIC_MAX_CONCURRENT_JOBS=${cap})`;
  }
  return undefined;
}

/** Frees the capacity slot of a record that will not run (best effort: a lost release heals). */
export async function freeSlot(record: JobRecord, deps: SubmissionDeps): Promise<void> {
  if (record.provider !== 'anthropic') return;
  await deps.jobs.releaseSlot(ANTHROPIC_POOL, record.jobId).catch((err: unknown) =>
    deps.log.warning('slot.release_failed', 'Could not free a capacity slot; it frees itself', {
      ...logFields(record),
      error: err,
    }),
  );
}

async function recordWaiting(
  record: JobRecord,
  owner: string,
  requestCount: number,
  reason: string,
  throttled: boolean,
  deps: SubmissionDeps,
  estimate: CostEstimate | null = null,
): Promise<SubmissionOutcome> {
  const written = await deps.jobs.update(
    record.jobId,
    toWaiting(owner, deps.clock(), { requestCount, throttled, estimate }),
  );
  if (!written) throw lostClaim();
  deps.log.info('input.waiting', 'Input queued until its model has capacity', {
    ...logFields(record),
    provider: record.provider,
    queue: record.queue,
    reason,
    nextAttemptAt: written.nextAttemptAt,
  });
  return { outcome: 'waiting', jobId: record.jobId, reason };
}

/**
 * Runs a claimed submission to its next resting state: rejected (with report and event), waiting
 * for capacity, or submitted. Throws (transient) when a dependency fails; the caller releases the
 * claim (or requeues it) and the work is retried (Eventarc redelivery, or the next poll run).
 */
export async function runSubmission(
  claimed: JobRecord,
  owner: string,
  deps: SubmissionDeps,
  hints: ObjectHints = {},
): Promise<SubmissionOutcome> {
  let record = claimed;
  const { jobId } = record;
  const fields = logFields(record);

  // 0. A manifest names the model, the region and the source: read it first (once).
  if (isManifestName(record.object) && record.manifest === null) {
    let read;
    try {
      read = await readManifest(record, deps);
    } catch (err) {
      if (err instanceof PermanentError)
        return reject(record, owner, deps, errorOf(err), undefined);
      throw err;
    }
    if ('code' in read) return reject(record, owner, deps, read, undefined);
    const written = await deps.jobs.update(jobId, toManifest(owner, deps.clock(), read));
    if (!written) throw lostClaim();
    record = written;
  }

  // 1. A create whose answer was lost may have made a job: look for it by label first, before
  // anything could refuse the input (a billed job is never left untracked behind a rejection).
  if (record.createAttempts > 0 && record.requestCount !== null) {
    const found = await findByLabel(record, deps);
    if (found) return recordSubmitted(record, owner, found, record.requestCount, true, deps);
  }

  // 2. What can be refused without reading the file.
  const refusal = refuseBeforeReading(record, hints, deps.config);
  if (refusal) return reject(record, owner, deps, refusal, undefined);

  // 3. Validate the bytes of exactly this generation, as a stream, then pin them: the job reads a
  // copy of exactly the validated generation, never a later upload of the same name. A BigQuery
  // table cannot be pinned: one that changed since it was validated is validated again.
  let requestCount = record.requestCount;
  let estimate = record.estimate;
  if (requestCount === null || (await tableChanged(record, deps))) {
    let checked;
    try {
      checked = record.manifest
        ? await validateSources(record, deps)
        : await validateJsonlInput(record, deps);
    } catch (err) {
      if (err instanceof PermanentError)
        return reject(record, owner, deps, errorOf(err), undefined);
      throw err;
    }
    if ('error' in checked) return reject(record, owner, deps, checked.error, checked.found);
    // 3b. The estimate (an upper bound), and the budget: refused before anything is spent.
    estimate = estimateCost(deps.config.PRICE_TABLE, record.model, checked.sizing);
    const over = overBudget(record, estimate, deps);
    if (over) {
      const found = { errors: [], complete: true, requestCount: checked.requestCount };
      return reject(record, owner, deps, over, found, 'REJECTED', estimate);
    }
    try {
      if (checked.manifest) {
        record = await pinSources(record, owner, checked, estimate, deps);
      } else {
        await deps.reports.copy(
          { bucket: record.bucket, name: record.object, generation: record.generation },
          pinnedInputUri(record),
        );
      }
    } catch (err) {
      if (err instanceof PermanentError)
        return reject(record, owner, deps, errorOf(err), undefined);
      throw err;
    }
    requestCount = checked.requestCount;
    deps.log.info('input.validated', 'Input is valid', {
      ...fields,
      requestCount,
      bytes: checked.bytes,
      ...(record.manifest
        ? { source: record.inputUri, files: record.manifest.files.length }
        : { pinnedInput: pinnedInputUri(record) }),
      estimatedUsd: estimate.usd,
      estimatedInputTokens: estimate.inputTokens,
      estimatedOutputTokens: estimate.outputTokens,
    });
  }

  // 4. Admission: wait (acknowledged, not retried) while the model has no capacity.
  const full = await capacityProblem(record, deps, hints.fromQueue === true);
  if (full) return recordWaiting(record, owner, requestCount, full, false, deps, estimate);

  // 5. The fence: only the holder of a live claim creates, with a renewed lease.
  const counted = await deps.jobs.update(
    jobId,
    toCreating(owner, deps.clock(), requestCount, estimate),
  );
  if (!counted) throw lostClaim();

  // The claim renewed by the fence must still be live when the request goes out: an instance
  // frozen after its fence sends nothing once another worker may have taken over.
  const notAfter = new Date(Date.parse(counted.lease?.until ?? '') - CREATE_MARGIN_MS);
  let job: VertexBatchJob;
  try {
    job = await deps.vertex.create(
      record.location,
      buildBatchJobRequest({
        jobId,
        model: record.model,
        inputUri: record.manifest ? manifestInputUris(record.manifest) : pinnedInputUri(record),
        outputUriPrefix: record.manifest?.destination ?? record.outputUriPrefix,
      }),
      { notAfter },
    );
  } catch (err) {
    if (err instanceof PermanentError) {
      await freeSlot(record, deps);
      return reject(counted, owner, deps, errorOf(err), undefined, 'SUBMIT_FAILED');
    }
    if (err instanceof TransientError && err.code === 'VERTEX.RESOURCE_EXHAUSTED') {
      // Vertex has no capacity now: wait in the queue instead of Eventarc retrying for hours.
      // Its create was refused, so no job exists and the slot is free again.
      await freeSlot(record, deps);
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

/** Validates a JSONL input: its own bytes, as the delivery found them. */
async function validateJsonlInput(
  record: JobRecord,
  deps: SubmissionDeps,
): Promise<SourceProblem | (ValidationResult & { manifest?: undefined })> {
  const result = await validateJsonl(
    deps.reader.read(record.bucket, record.object, record.generation),
    {
      provider: record.provider,
      model: record.model,
      ...optional('fileUriAllowed', fileUriRule(deps.config, record.bucket)),
    },
  );
  if (result.code === undefined) return result;
  const first = result.errors[0];
  const message = first
    ? `${record.object} line ${first.line}: ${first.message}`
    : `${record.object}: invalid input`;
  return { error: { code: result.code, message }, found: result };
}

/**
 * Copies a manifest's validated files next to the job (the job reads those copies) and records
 * which they are, with their request count and estimate, so that a later attempt (after a crash)
 * creates the job over the same copies instead of expanding the patterns again.
 */
async function pinSources(
  record: JobRecord,
  owner: string,
  { manifest, requestCount }: { manifest: ManifestRecord; requestCount: number },
  estimate: CostEstimate,
  deps: SubmissionDeps,
): Promise<JobRecord> {
  for (const file of manifest.files) {
    const at = /^gs:\/\/([^/]+)\/(.+)$/.exec(file.uri);
    await deps.reports.copy(
      { bucket: at?.[1] ?? '', name: at?.[2] ?? '', generation: file.generation },
      file.pinnedUri,
    );
  }
  const written = await deps.jobs.update(
    record.jobId,
    toManifest(owner, deps.clock(), { ...pick(record), manifest, requestCount, estimate }),
  );
  if (!written) throw lostClaim();
  return written;
}

function pick(record: JobRecord): Omit<ManifestFields, 'manifest'> {
  const { model, provider, location, queue, inputUri } = record;
  return { model, provider, location, queue, inputUri };
}

/**
 * Ends a queued input that waited too long: rejected (`error`), unless an earlier create whose
 * answer was lost did make its job, which is then adopted (a live, billed job is never left
 * untracked behind a rejection).
 */
export async function expireQueued(
  record: JobRecord,
  owner: string,
  deps: SubmissionDeps,
  error: JobError,
): Promise<SubmissionOutcome> {
  if (record.createAttempts > 0 && record.requestCount !== null) {
    const found = await findByLabel(record, deps);
    if (found) return recordSubmitted(record, owner, found, record.requestCount, true, deps);
  }
  return reject(record, owner, deps, error, undefined);
}

/** The pinned copy of the validated input that the Vertex job reads. */
export function pinnedInputUri(record: Pick<JobRecord, 'outputUriPrefix'>): string {
  return `${record.outputUriPrefix}${PINNED_INPUT}`;
}

/** Our jobs labelled with this record's id (a failing `list` is tried again, a few times). */
async function listByLabel(record: JobRecord, deps: SubmissionDeps): Promise<VertexBatchJob[]> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      const page = await deps.vertex.list(record.location, {
        filter: jobIdFilter([record.jobId]),
        pageSize: 10,
      });
      // Only jobs that really carry our label count, whatever the filter did.
      return page.jobs.filter((j) => j.labels?.[JOB_ID_LABEL] === record.jobId);
    } catch (err) {
      // Without knowing whether a lost create made a job, creating again could bill twice: wait
      // and retry a little, then fail this attempt (it is retried later as a whole).
      const pause = 250 * 2 ** attempt;
      if (attempt >= LIST_TRIES || performance.now() - started + pause > LIST_RETRY_WINDOW_MS) {
        throw new TransientError(
          'VERTEX.UNAVAILABLE',
          `could not look for the job of an earlier create (list failed ${attempt} times): ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      await sleep(pause);
    }
  }
}

async function findByLabel(
  record: JobRecord,
  deps: SubmissionDeps,
): Promise<VertexBatchJob | undefined> {
  const jobs = await listByLabel(record, deps);
  // The oldest is kept; any other is cancelled once the record names the kept one.
  const job = [...jobs].sort((a, b) => (a.createTime ?? '').localeCompare(b.createTime ?? ''))[0];
  if (job) {
    deps.log.info('job.recovered', 'Found the job of an earlier create whose answer was lost', {
      jobId: record.jobId,
      vertexJob: job.name,
    });
  }
  return job;
}

/**
 * Cancels every job labelled with this record's id except the recorded one: a worker that lost
 * its claim mid-create (a frozen instance) may have created a second job.
 */
export async function cancelStrays(
  record: JobRecord,
  kept: string,
  deps: SubmissionDeps,
): Promise<void> {
  const jobs = await listByLabel(record, deps);
  for (const stray of jobs.filter((j) => j.name !== kept)) {
    await cancelDuplicate(record, stray.name, kept, deps);
  }
}

async function cancelDuplicate(
  record: JobRecord,
  duplicate: string,
  kept: string,
  deps: SubmissionDeps,
): Promise<void> {
  try {
    await deps.vertex.cancel(duplicate);
  } catch (err) {
    // Already finished or gone: nothing more to stop.
    if (!(err instanceof PermanentError)) throw err;
  }
  deps.log.error('job.duplicate_cancelled', 'A second Vertex job for one input was cancelled', {
    ...logFields(record),
    vertexJob: duplicate,
    recordedVertexJob: kept,
  });
}

async function recordSubmitted(
  record: JobRecord,
  owner: string,
  job: VertexBatchJob,
  requestCount: number,
  recovered: boolean,
  deps: SubmissionDeps,
): Promise<SubmissionOutcome> {
  const written = await deps.jobs.update(
    record.jobId,
    toSubmitted(owner, deps.clock(), job, requestCount),
  );
  if (!written) {
    // Fenced: our claim was taken over (this worker stalled past its lease). The holder records
    // its own job, or adopts ours through the label; a job of ours it did not adopt is cancelled
    // here, or by the holder's sweep when the holder records later.
    const latest = await deps.jobs.get(record.jobId);
    if (latest?.vertexJob && latest.vertexJob !== job.name) {
      await cancelDuplicate(record, job.name, latest.vertexJob, deps);
    } else if (!latest?.vertexJob) {
      deps.log.warning('job.fenced', 'Lost the claim during the create; the holder decides', {
        ...logFields(record),
        vertexJob: job.name,
        holder: latest?.lease?.owner ?? null,
      });
    }
    return { outcome: 'duplicate', jobId: record.jobId, status: latest?.status ?? 'UNKNOWN' };
  }
  // More than one create was sent for this record: any job other than the recorded one is a stray.
  if (written.createAttempts > 1) {
    await cancelStrays(written, job.name, deps).catch((err: unknown) =>
      deps.log.warning('job.stray_check_failed', 'Could not check for a second job', {
        ...logFields(record),
        error: err,
      }),
    );
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

/**
 * Records a refusal (with its report, for REJECTED) and announces it. Exported for the poller,
 * which rejects inputs that waited longer than MAX_QUEUE_HOURS.
 */
export async function reject(
  record: JobRecord,
  owner: string,
  deps: SubmissionDeps,
  error: JobError,
  found: Pick<ValidationResult, 'errors' | 'complete' | 'requestCount'> | undefined,
  status: 'REJECTED' | 'SUBMIT_FAILED' = 'REJECTED',
  estimate: CostEstimate | null = null,
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
  const written = await deps.jobs.update(
    record.jobId,
    toRejected(owner, deps.clock(), status, error, lineErrors, estimate),
  );
  if (!written) throw lostClaim();
  await freeSlot(record, deps);
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

/**
 * `INPUT.OVER_BUDGET` when the estimate exceeds MAX_ESTIMATED_COST_USD. A model without a price
 * cannot be held to a budget: it passes, with a warning.
 */
function overBudget(
  record: JobRecord,
  estimate: CostEstimate,
  deps: SubmissionDeps,
): JobError | undefined {
  const limit = deps.config.MAX_ESTIMATED_COST_USD;
  if (estimate.usd === null) {
    deps.log.warning('cost.unpriced', 'No price for this model: no estimate, no budget check', {
      ...logFields(record),
      model: record.model,
      pricing: estimate.pricing,
      fix: 'add the model to PRICE_TABLE (README "Results and cost")',
    });
    return undefined;
  }
  if (limit <= 0 || estimate.usd <= limit) return undefined;
  return {
    code: 'INPUT.OVER_BUDGET',
    message: `${record.object}: the estimated cost is $${estimate.usd.toFixed(2)}, above MAX_ESTIMATED_COST_USD $${limit.toFixed(2)} (${estimate.inputTokens} input tokens estimated from the bytes, at most ${estimate.outputTokens} output tokens from each request's maximum, at ${estimate.pricing} prices); lower max tokens, split the file, or raise the limit`,
  };
}

/** The checks that need only the event: model, region, encoding, size. */
function refuseBeforeReading(
  record: JobRecord,
  object: ObjectHints,
  config: Config,
): JobError | undefined {
  // A manifest names its model and region in its fields; a JSONL file in its custom metadata.
  const origin = record.manifest ? '"model"' : 'custom metadata model';
  const region = record.manifest ? '"location"' : 'custom metadata location';
  let model: string;
  try {
    model = normalizeModel(record.model);
  } catch (err) {
    return errorOf(err);
  }
  if (!isModelAllowed(config, model)) {
    const allowed = allowedModels(config).map((m) => m.split('/').pop());
    return {
      code: 'INPUT.MODEL_NOT_ALLOWED',
      message: `${record.object}: ${origin} "${model.slice(0, 128)}" is not allowed in this deployment; allowed: ${allowed.join(', ')} (ALLOWED_MODELS)`,
    };
  }
  const named = locationInModel(model);
  if (named !== undefined && named !== record.location) {
    return {
      code: 'INPUT.INVALID_LOCATION',
      message: `${record.object}: model ${model.slice(0, 128)} names region ${named}, but the input would run in ${record.location.slice(0, 64)}: drop the location metadata or name the same region`,
    };
  }
  if (!/^[a-z]+(?:-[a-z0-9]+)+$|^global$/.test(record.location)) {
    return {
      code: 'INPUT.INVALID_LOCATION',
      message: `${record.object}: ${region} "${record.location.slice(0, 64)}" is not a Vertex AI region`,
    };
  }
  if (!isLocationAllowed(config, record.location)) {
    return {
      code: 'INPUT.LOCATION_NOT_ALLOWED',
      message: `${record.object}: location "${record.location}" is not allowed in this deployment; allowed: ${allowedLocations(config).join(', ')} (ALLOWED_LOCATIONS)`,
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

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** `{code, message}` of an error, for the record and the event. */
export function errorOf(err: unknown): JobError {
  if (err instanceof BatchCourierError) return { code: err.code, message: err.message };
  return { code: 'UNKNOWN', message: err instanceof Error ? err.message : String(err) };
}

function lostClaim(): TransientError {
  return new TransientError(
    'JOBS.CONFLICT',
    'the submit claim on this record was taken over by another worker; retry later',
  );
}
