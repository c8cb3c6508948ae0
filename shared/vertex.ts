/**
 * Vertex AI batch prediction: the request we send, the job we read back, and its state model
 * (FACTS.md "Vertex AI batch prediction").
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
  inputConfig: { instancesFormat: 'jsonl'; gcsSource: { uris: string[] } };
  outputConfig: { predictionsFormat: 'jsonl'; gcsDestination: { outputUriPrefix: string } };
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
  outputInfo?: { gcsOutputDirectory?: string };
  labels?: Record<string, string>;
  createTime?: string;
  startTime?: string;
  endTime?: string;
  updateTime?: string;
}

/** Label marking a job as ours. */
export const OWNER_LABEL = 'batch-courier';
/** Its value: the label schema version. */
export const OWNER_LABEL_VALUE = 'v1';
/** Label carrying the job id, used to find a job whose create answer was lost. */
export const JOB_ID_LABEL = 'job-id';

/** The labels of one of our jobs. */
export function jobLabels(jobId: string): Record<string, string> {
  return { [OWNER_LABEL]: OWNER_LABEL_VALUE, [JOB_ID_LABEL]: jobId };
}

/** The `list` filter that finds the job(s) created for these job ids. */
export function jobIdFilter(jobIds: readonly string[]): string {
  const terms = jobIds.map((id) => `labels.${JOB_ID_LABEL}="${id}"`);
  const ids = terms.length === 1 ? terms[0] : `(${terms.join(' OR ')})`;
  return `labels.${OWNER_LABEL}="${OWNER_LABEL_VALUE}" AND ${ids}`;
}

/** The create request for one input. */
export function buildBatchJobRequest(input: {
  jobId: string;
  model: string;
  inputUri: string;
  outputUriPrefix: string;
}): BatchJobRequest {
  return {
    displayName: input.jobId,
    model: input.model,
    inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: [input.inputUri] } },
    outputConfig: {
      predictionsFormat: 'jsonl',
      gcsDestination: { outputUriPrefix: input.outputUriPrefix },
    },
    labels: jobLabels(input.jobId),
  };
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
