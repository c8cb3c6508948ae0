/**
 * The job record: one Firestore document per input object generation, the tracking number of the
 * courier. Our own status wraps Vertex's 12 job states; every change of it is one of the pure
 * transitions of `shared/core/transitions.ts`, and the state diagram is in docs/architecture.md.
 *
 * `outstanding` stays true until the completion event is published: the poller's query is
 * `outstanding == true`, so an unannounced outcome is never forgotten.
 */
import type { Provider } from './models.js';
import type { CostEstimate, Usage } from './pricing.js';

/** Our status of an input. */
export type JobStatus =
  'SUBMITTING' | 'WAITING' | 'SUBMITTED' | 'COMPLETED' | 'RETRYING' | 'REJECTED' | 'SUBMIT_FAILED';

/** A short exclusive claim on a record, so that one worker at a time creates or announces. */
export interface Lease {
  /** Who holds it (a random id per invocation). */
  owner: string;
  /** RFC 3339; after it the lease is free to take. */
  until: string;
}

/** `{code, message}` as in the completion event. */
export interface JobError {
  code: string;
  message: string;
}

/** One bad line of a rejected input (the first 100 are kept on the record). */
export interface LineError {
  line: number;
  message: string;
}

/** Where a job's results digest is and what it counted (the event's `results`). */
export interface ResultsSummary {
  rows: { succeeded: number; failed: number; missing: number };
  summaryUri: string;
  resultsUri: string;
  /** Null when no row failed or was missing. */
  failedRowsUri: string | null;
}

/** The outcome of digesting a finished job's output (README "Results and cost"). */
export interface Digest {
  /** Null when there was nothing to digest (no prediction file) or the digest was given up. */
  results: ResultsSummary | null;
  /** Token totals over every output line; null when there was no output. */
  usage: Usage | null;
  /** The cost of `usage` at batch prices; null without usage or without a price for the model. */
  actualUsd: number | null;
  /** The price table used. */
  pricing: string;
  /** Why `results` is null, when it is. */
  note: string | null;
  /**
   * The rows this attempt sends again (README "Failed rows"): the next attempt's input file and
   * its number of requests; null when nothing is retried. Absent in digests of earlier versions.
   */
  retry?: { inputUri: string; requests: number } | null;
}

/** One attempt of an input: its first Vertex job, or a retry of its failed rows. */
export interface Attempt {
  /** The record of the attempt (the input's own for the first). */
  jobId: string;
  vertexJob: string | null;
  /** Vertex's terminal state, or INPUT_REJECTED for a retry that never ran. */
  state: string;
  stats: JobRecord['stats'];
  /** The attempt's own digest (its files are under its own folder). */
  digest: Digest;
}

/** A retry's link to the input it retries. */
export interface RetryOf {
  /** The input's record. */
  jobId: string;
  /** 2 for the first retry. */
  attempt: number;
  /** RFC 3339: when the input's first job was created (MAX_JOB_AGE_HOURS counts from it). */
  since: string;
}

/** One Cloud Storage file a manifest's job reads, validated and pinned. */
export interface SourceFile {
  /** `gs://bucket/name` as matched. */
  uri: string;
  /** The generation validated (int64 as a string). */
  generation: string;
  /** Its requests. */
  requests: number;
  /** The pinned copy the Vertex job reads. */
  pinnedUri: string;
}

/** What a manifest asked for (README "Manifests"), on the record of the manifest object. */
export interface ManifestRecord {
  /** `bq://p.d.t`, or the `gs://` URIs as written (patterns included). */
  source: { kind: 'bigquery'; uri: string } | { kind: 'gcs'; uris: string[] };
  /** `bq://p.d[.t]` or `gs://bucket/prefix/`; null: the job's own prefix. */
  destination: string | null;
  /** Cloud Storage sources: the files read, in order, once validated and pinned; [] before. */
  files: SourceFile[];
  /** BigQuery sources: the table's `lastModifiedTime` when it was validated; null before. */
  tableModified: string | null;
  /**
   * BigQuery sources: the fingerprint of the rows validated (`RowFingerprint`); null before, and
   * absent on records of earlier versions (then the digest does not compare).
   */
  tableFingerprint?: string | null;
}

/** The Firestore document of one input object generation. Every field is always present. */
export interface JobRecord {
  /** Our id (also the document id and the `job-id` label). */
  jobId: string;
  /** Our status. */
  status: JobStatus;
  /** Input bucket. */
  bucket: string;
  /** Input object name. */
  object: string;
  /** Input object generation (int64 as a string). */
  generation: string;
  /** `gs://bucket/object`. */
  inputUri: string;
  /** Full model resource name, or the raw requested name when it could not be resolved. */
  model: string;
  /** Who serves the model. */
  provider: Provider;
  /** Vertex region of the job. */
  location: string;
  /** The admission queue: `<model>@<location>`. Inputs of one queue are submitted in order. */
  queue: string;
  /** `<OUTPUT_URI_PREFIX>/<jobId>/`. */
  outputUriPrefix: string;
  /** For a manifest (`.batch.json`): its source and destination, once read; null otherwise. */
  manifest: ManifestRecord | null;
  /** Number of requests (lines) in the input, once validated. */
  requestCount: number | null;
  /** The cost estimate made while validating (an upper bound); null before. */
  estimate: CostEstimate | null;
  /** `projects/.../batchPredictionJobs/...` once created. */
  vertexJob: string | null;
  /** The last Vertex state seen. */
  vertexState: string | null;
  /** Why it was rejected or failed. */
  error: JobError | null;
  /** The first bad lines of a rejected input. */
  lineErrors: LineError[];
  /** Completion counts, once terminal. */
  stats: { successfulCount: number; failedCount: number; incompleteCount: number } | null;
  /** Vertex's `outputInfo.gcsOutputDirectory`. */
  outputDirectory: string | null;
  /** Times from Vertex (RFC 3339). */
  vertexCreateTime: string | null;
  vertexStartTime: string | null;
  vertexEndTime: string | null;
  /** How many creates were sent: above 0, a lost answer is looked for by label first. */
  createAttempts: number;
  /** How many times Vertex answered 429 while this input waited. */
  waitAttempts: number;
  /** RFC 3339: a WAITING input is not tried before this (backoff after a 429); null: any time. */
  nextAttemptAt: string | null;
  /** RFC 3339: when the input first had to wait for capacity (MAX_QUEUE_HOURS counts from it). */
  waitingSince: string | null;
  /** RFC 3339: when we asked Vertex to cancel the job (MAX_JOB_AGE_HOURS); null: never. */
  cancelRequestedAt: string | null;
  /** The results digest of a finished job, once made; null before (and for rejections). */
  digest: Digest | null;
  /** Digests started (a run that died mid-digest counts): after a few, the event goes without. */
  digestAttempts: number;
  /** The attempts digested so far, first one first ([] until the first is digested). */
  attempts: Attempt[];
  /** While RETRYING: the record of the attempt under way. */
  retryJobId: string | null;
  /** A retry's link to its input; null for an input's own record. */
  retryOf: RetryOf | null;
  /** The current claim, if any. */
  lease: Lease | null;
  /** True until the completion event is published. */
  outstanding: boolean;
  /** The published event's id. */
  eventId: string | null;
  /** When the event was published. */
  publishedAt: string | null;
  /** When the record was created / last changed (RFC 3339). */
  createTime: string;
  updateTime: string;
}

/** The fields of a record nothing has happened to yet: no job, no outcome, no claim, outstanding. */
export type BlankFields = Omit<
  JobRecord,
  | 'jobId'
  | 'status'
  | 'bucket'
  | 'object'
  | 'generation'
  | 'inputUri'
  | 'model'
  | 'provider'
  | 'location'
  | 'queue'
  | 'outputUriPrefix'
>;

/** {@link BlankFields} of a record created at `now`. */
export function blankFields(now: Date): BlankFields {
  const iso = now.toISOString();
  return {
    manifest: null,
    requestCount: null,
    estimate: null,
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
    waitAttempts: 0,
    nextAttemptAt: null,
    waitingSince: null,
    cancelRequestedAt: null,
    digest: null,
    digestAttempts: 0,
    attempts: [],
    retryJobId: null,
    retryOf: null,
    lease: null,
    outstanding: true,
    eventId: null,
    publishedAt: null,
    createTime: iso,
    updateTime: iso,
  };
}

/**
 * A stored record in today's shape: fields added since it was written get their initial values
 * (a record written by an earlier version of the functions stays readable and moves on).
 */
export function upgradeRecord(stored: JobRecord): JobRecord {
  const partial = stored as Partial<JobRecord> & JobRecord;
  return {
    ...stored,
    manifest: partial.manifest ?? null,
    estimate: partial.estimate ?? null,
    digest: partial.digest ?? null,
    digestAttempts: partial.digestAttempts ?? 0,
    attempts: partial.attempts ?? [],
    retryJobId: partial.retryJobId ?? null,
    retryOf: partial.retryOf ?? null,
  };
}

/**
 * The admission queue of a model in a location: one per model whatever its spelling (a
 * `projects/P/locations/L/` prefix and an `@version` suffix name the same quota), per region.
 */
export function queueOf(model: string, location: string): string {
  const base = model
    .replace(/^projects\/[^/]+\/locations\/[^/]+\/(?=publishers\/)/, '')
    .replace(/@[^/]*$/, '');
  return `${base}@${location}`;
}

/** The fields that identify a record in log lines: job id and the input object generation. */
export function logFields(record: Pick<JobRecord, 'jobId' | 'bucket' | 'object' | 'generation'>): {
  jobId: string;
  bucket: string;
  object: string;
  generation: string;
} {
  return {
    jobId: record.jobId,
    bucket: record.bucket,
    object: record.object,
    generation: record.generation,
  };
}
