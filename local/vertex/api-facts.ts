/**
 * Facts of the Vertex AI REST v1 `batchPredictionJobs` API, as the emulator's own copy: it does not
 * import them from the product, so a mistake in the product's copy shows up as a disagreement.
 * Source: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs
 * and the `JobState`, `google.rpc.Code` and label pages it links.
 */
import { HttpError } from '../http.js';

/** The 12 values of `JobState`. */
export const JOB_STATES = [
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
export type JobState = (typeof JOB_STATES)[number];

/** The states a job never leaves. */
const TERMINAL: ReadonlySet<JobState> = new Set<JobState>([
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_EXPIRED',
]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL.has(state);
}

/** google.rpc.Code numbers a job's `error` carries. */
export const RPC = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
};

/** The google.rpc status name Google's HTTP mapping gives each HTTP status. */
const STATUS_OF_HTTP: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  413: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/** An error answer: `{"error": {"code", "message", "status"}}`. */
export function apiError(code: number, message: string, status = STATUS_OF_HTTP[code]): HttpError {
  return new HttpError(code, message, { status: status ?? 'UNKNOWN' });
}

export const invalid = (message: string): HttpError => apiError(400, message);

const words = (text: string): string[] => text.split(/\s+/).filter(Boolean);

/** Fields the service computes: a create request that sets one is refused. */
export const OUTPUT_ONLY_FIELDS: ReadonlySet<string> = new Set(
  words(`name state error partialFailures createTime startTime endTime updateTime completionStats
    outputInfo resourcesConsumed modelVersionId satisfiesPzs satisfiesPzi`),
);

/** Custom-model serving fields, meaningless for publisher models. */
export const CUSTOM_MODEL_FIELDS: ReadonlySet<string> = new Set(
  words(`unmanagedContainerModel dedicatedResources manualBatchTuningParameters
    generateExplanation explanationSpec`),
);

/** Settable fields of a publisher-model job, in the order the service renders them. */
export const SETTABLE_FIELDS = words(`displayName model inputConfig instanceConfig modelParameters
  outputConfig serviceAccount encryptionSpec disableContainerLogging labels`);

export const MAX_DISPLAY_NAME_CHARS = 128;

/** Labels: at most 64; keys start with a lowercase letter; keys and values up to 63 characters. */
export const MAX_LABELS = 64;
export const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
export const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Model name forms: `publishers/P/models/M`, or the same (or a tuned `models/M`) under a project and location. */
const MODEL_ID = '[A-Za-z0-9][A-Za-z0-9._@-]*';
export const PUBLISHER_MODEL = new RegExp(`^publishers/(google|anthropic)/models/${MODEL_ID}$`);
export const PROJECT_MODEL = new RegExp(
  `^projects/[^/]+/locations/([^/]+)/(?:publishers/(google|anthropic)/)?models/${MODEL_ID}$`,
);

/** `gs://bucket/object` and `gs://bucket[/prefix]`. */
export const GCS_OBJECT = /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]\/.+$/;
export const GCS_PREFIX = /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?$/;

/** Unfinished Claude batch jobs per project; one more create answers 429 RESOURCE_EXHAUSTED. */
export const ANTHROPIC_CONCURRENT_JOBS = 4;

/** `list` page sizes: the default, and the most one page holds. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** The messages the service gives with a bare status. */
export const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'Request contains an invalid argument.',
  403: 'Permission denied on resource (or it may not exist).',
  404: 'The requested resource was not found.',
  429: 'Quota exceeded: too many requests. Please retry later.',
  500: 'Internal error encountered.',
  503: 'The service is currently unavailable.',
};
