/**
 * Vertex AI batch prediction: the request we send, the job we read back, and its state model
 * (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs).
 */

/** All 12 Vertex job states. */
export const VERTEX_JOB_STATES = [
  'JOB_STATE_UNSPECIFIED',
  'JOB_STATE_QUEUED',
  'JOB_STATE_PENDING',
  'JOB_STATE_RUNNING',
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLING',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_PAUSED',
  'JOB_STATE_EXPIRED',
  'JOB_STATE_UPDATING',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
] as const;
export type VertexJobState = (typeof VERTEX_JOB_STATES)[number];

/** The five states after which a job never changes. Every other state is outstanding. */
export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_EXPIRED',
]);

/** True for SUCCEEDED, PARTIALLY_SUCCEEDED, FAILED, CANCELLED, EXPIRED. */
export function isTerminalState(state: string): boolean {
  return TERMINAL_STATES.has(state);
}

/** The body of `batchPredictionJobs.create`: API fields only. */
export interface BatchJobRequest {
  displayName: string;
  model: string;
  inputConfig:
    | { instancesFormat: 'jsonl'; gcsSource: { uris: string[] } }
    | { instancesFormat: 'bigquery'; bigquerySource: { inputUri: string } };
  outputConfig:
    | { predictionsFormat: 'jsonl'; gcsDestination: { outputUriPrefix: string } }
    | { predictionsFormat: 'bigquery'; bigqueryDestination: { outputUri: string } };
  labels: Record<string, string>;
}

/** google.rpc.Status as Vertex returns it. */
export interface RpcStatus {
  code?: number;
  message?: string;
}

/** The fields of a BatchPredictionJob we read back (int64 counts are strings; zeros omitted). */
export interface VertexBatchJob {
  name: string;
  displayName?: string;
  model?: string;
  state?: string;
  error?: RpcStatus;
  completionStats?: { successfulCount?: string; failedCount?: string; incompleteCount?: string };
  outputInfo?: {
    gcsOutputDirectory?: string;
    /** `bq://project.dataset` of the output table. */
    bigqueryOutputDataset?: string;
    /** The output table's name (`predictions_<timestamp>`), in that dataset. */
    bigqueryOutputTable?: string;
  };
  labels?: Record<string, string>;
  createTime?: string;
  startTime?: string;
  endTime?: string;
  updateTime?: string;
}

/**
 * Label marking a job as ours. Label keys may hold `-`, but the keys appear in `list` filters too,
 * where `-` is also AIP-160's negation operator (https://google.aip.dev/160): underscores keep the
 * filter unambiguous.
 */
export const OWNER_LABEL = 'batch_courier';
/** Its value: the label schema version. */
export const OWNER_LABEL_VALUE = 'v1';
/** Label carrying the job id, used to find a job whose create answer was lost. */
export const JOB_ID_LABEL = 'job_id';

/**
 * At most this many job ids in one `list` filter (ORed `labels.job_id="…"` terms). The API
 * documents `labels.key=value` with `AND`/`OR` but no limit on filter length or terms
 * (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs/list):
 * a short filter stays far from any undocumented limit, a refused one costs little (its jobs are
 * read with `get` instead), and 10 ids still divide the calls of a large poll run by ten.
 */
export const MAX_IDS_PER_LIST = 10;

/** The labels of one of our jobs. */
export function jobLabels(jobId: string): Record<string, string> {
  return { [OWNER_LABEL]: OWNER_LABEL_VALUE, [JOB_ID_LABEL]: jobId };
}

/**
 * The `list` filter that finds the job(s) created for these job ids (at most
 * {@link MAX_IDS_PER_LIST} of them per call). Never the only way to find a job: when a `list`
 * fails, read the jobs by name with `get`.
 */
export function jobIdFilter(jobIds: readonly string[]): string {
  const terms = jobIds.map((id) => `labels.${JOB_ID_LABEL}=${quoteFilterValue(id)}`);
  const ids = terms.length === 1 ? terms[0] : `(${terms.join(' OR ')})`;
  return `labels.${OWNER_LABEL}=${quoteFilterValue(OWNER_LABEL_VALUE)} AND ${ids}`;
}

/** A string literal of a filter (AIP-160): double quotes, with `\` and `"` escaped. */
function quoteFilterValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The create request for one input: `inputUri` is the JSONL file(s) (`gs://`) or a BigQuery
 * table (`bq://project.dataset.table`); `outputUriPrefix` a `gs://` prefix or a BigQuery dataset
 * or table (`bq://project.dataset[.table]`).
 */
export function buildBatchJobRequest(input: {
  jobId: string;
  model: string;
  inputUri: string | readonly string[];
  outputUriPrefix: string;
}): BatchJobRequest {
  const uris = typeof input.inputUri === 'string' ? [input.inputUri] : [...input.inputUri];
  const table = uris.length === 1 && uris[0]?.startsWith('bq://') ? uris[0] : undefined;
  return {
    displayName: input.jobId,
    model: input.model,
    inputConfig: table
      ? { instancesFormat: 'bigquery', bigquerySource: { inputUri: table } }
      : { instancesFormat: 'jsonl', gcsSource: { uris } },
    outputConfig: input.outputUriPrefix.startsWith('bq://')
      ? { predictionsFormat: 'bigquery', bigqueryDestination: { outputUri: input.outputUriPrefix } }
      : { predictionsFormat: 'jsonl', gcsDestination: { outputUriPrefix: input.outputUriPrefix } },
    labels: jobLabels(input.jobId),
  };
}

/** The `gs://` files a create request reads, or its `bq://` table. */
export function requestInputUris(request: BatchJobRequest): string[] {
  const input = request.inputConfig;
  return 'gcsSource' in input ? input.gcsSource.uris : [input.bigquerySource.inputUri];
}

/** The `gs://` prefix or `bq://` dataset or table a create request writes to. */
export function requestOutputUri(request: BatchJobRequest): string {
  const output = request.outputConfig;
  return 'gcsDestination' in output
    ? output.gcsDestination.outputUriPrefix
    : output.bigqueryDestination.outputUri;
}

/**
 * Where a finished job's output is: Vertex's `gcsOutputDirectory`, or its output table as
 * `bq://project.dataset.table`; null when it reported neither.
 */
export function outputLocationOf(job: VertexBatchJob): string | null {
  const info = job.outputInfo;
  if (info?.gcsOutputDirectory) return info.gcsOutputDirectory;
  if (info?.bigqueryOutputDataset && info.bigqueryOutputTable) {
    return `${info.bigqueryOutputDataset.replace(/\/+$/, '')}.${info.bigqueryOutputTable}`;
  }
  return null;
}

/** Canonical google.rpc.Code names, by number. */
export const RPC_CODE_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** An int64 count as Vertex sends it (a string, possibly absent = 0, possibly -1 = unknown). */
export function countOf(value: string | number | undefined): number {
  if (value === undefined || value === '') return 0;
  const n = typeof value === 'number' ? value : Number.parseInt(value, 10);
  return Number.isFinite(n) ? n : 0;
}
