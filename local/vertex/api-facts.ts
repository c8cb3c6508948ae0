/**
 * Facts of the Vertex AI REST v1 `batchPredictionJobs` API, as the emulator's own copy: it does not
 * import them from the product, so a mistake in the product's copy shows up as a disagreement.
 * Source: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs
 * and the `JobState`, `google.rpc.Code` and label pages it links; for BigQuery sources and
 * destinations, the `BigQuerySource`, `BigQueryDestination` and `OutputInfo` messages of
 * `google/cloud/aiplatform/v1` (`io.proto`, `batch_prediction_job.proto`).
 */
import { z } from 'zod';
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
const TERMINAL: ReadonlySet<string> = new Set(
  ['SUCCEEDED', 'PARTIALLY_SUCCEEDED', 'FAILED', 'CANCELLED', 'EXPIRED'].map(
    (s) => `JOB_STATE_${s}`,
  ),
);

export function isTerminal(state: JobState): boolean {
  return TERMINAL.has(state);
}

/** google.rpc.Code numbers a job's `error` carries. */
export const RPC = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
};

/** A google.rpc.Status: a job's `error`. */
export interface RpcStatus {
  code: number;
  message: string;
}

/** Google's HTTP mapping: the google.rpc status of each HTTP status, and the service's bare message. */
const HTTP: Record<number, [status: string, message: string]> = {
  400: ['INVALID_ARGUMENT', 'Request contains an invalid argument.'],
  403: ['PERMISSION_DENIED', 'Permission denied on resource (or it may not exist).'],
  404: ['NOT_FOUND', 'The requested resource was not found.'],
  429: ['RESOURCE_EXHAUSTED', 'Quota exceeded: too many requests. Please retry later.'],
  500: ['INTERNAL', 'Internal error encountered.'],
  503: ['UNAVAILABLE', 'The service is currently unavailable.'],
};

/** An error answer: `{"error": {"code", "message", "status"}}`. */
export function apiError(code: number, message?: string, status?: string): HttpError {
  const [name = 'UNKNOWN', bare = 'Error.'] = HTTP[code] ?? [];
  return new HttpError(code, message ?? bare, { status: status ?? name });
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

/** Model names: `publishers/P/models/M`, or that (or a tuned `models/M`) in a project and location. */
const MODEL_ID = '[A-Za-z0-9][A-Za-z0-9._@-]*';
export const PUBLISHER_MODEL = new RegExp(`^publishers/(google|anthropic)/models/${MODEL_ID}$`);
export const PROJECT_MODEL = new RegExp(
  `^projects/[^/]+/locations/([^/]+)/(?:publishers/(google|anthropic)/)?models/${MODEL_ID}$`,
);

const format = z.enum(['jsonl', 'bigquery'], 'jsonl or bigquery for publisher models');
const gcs = (pattern: RegExp) => z.string().regex(pattern, `not a ${pattern.source} URI`);

/** `bq://project.dataset[.table]`, up to 2,000 characters: the forms BigQuery URIs take. */
export const BIGQUERY_URI =
  /^bq:\/\/([a-z][a-z0-9-]{4,28}[a-z0-9])\.([A-Za-z0-9_]{1,1024})(?:\.([\p{L}\p{M}\p{N}_-]{1,1024}))?$/u;
const bigqueryUri = z.string().max(2000, 'at most 2,000 characters');

/**
 * The settable fields of a publisher-model job, in the order the service renders them (unknown
 * fields are refused): labels are at most 64, keys start with a lowercase letter, keys and values
 * hold up to 63 lowercase letters, digits, `_` or `-`; a display name holds up to 128 characters.
 * Which source and destination go with which format is checked after (`request.ts`).
 */
export const CREATE_REQUEST = z.strictObject({
  displayName: z.string().refine((s) => s !== '' && [...s].length <= 128, '1 to 128 characters'),
  model: z.string(),
  inputConfig: z.strictObject({
    instancesFormat: format,
    gcsSource: z
      .strictObject({
        uris: z.array(gcs(/^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]\/.+$/)).min(1),
      })
      .optional(),
    bigquerySource: z.strictObject({ inputUri: bigqueryUri }).optional(),
  }),
  instanceConfig: z.record(z.string(), z.unknown()).optional(),
  modelParameters: z.unknown().optional(),
  outputConfig: z.strictObject({
    predictionsFormat: format,
    gcsDestination: z
      .strictObject({
        outputUriPrefix: gcs(/^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?$/),
      })
      .optional(),
    bigqueryDestination: z.strictObject({ outputUri: bigqueryUri }).optional(),
  }),
  serviceAccount: z.string().optional(),
  encryptionSpec: z.strictObject({ kmsKeyName: z.string().min(1) }).optional(),
  disableContainerLogging: z.boolean().optional(),
  labels: z
    .record(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/), z.string().regex(/^[a-z0-9_-]{0,63}$/))
    .refine((labels) => Object.keys(labels).length <= 64, 'at most 64 labels')
    .optional(),
});

/** Unfinished Claude batch jobs per project; one more create answers 429 RESOURCE_EXHAUSTED. */
export const ANTHROPIC_CONCURRENT_JOBS = 4;

/** `list` page sizes: the default, and the most one page holds. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
