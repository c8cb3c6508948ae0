/**
 * The completion event (docs/events.md): one definition from which the TypeScript type, the runtime
 * validation and the JSON Schema file (`schema/completion-event.schema.json`) are all derived.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { JobRecord } from './jobs.js';

const rfc3339 = z.iso.datetime({ offset: true });
const nullableTime = rfc3339.nullable();

/** The event types. */
export const EVENT_TYPES = ['job.completed', 'input.rejected'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The `state` of a rejected input (Vertex's terminal states are used for jobs). */
export const INPUT_REJECTED_STATE = 'INPUT_REJECTED';

/** The schema of the event data. */
export const CompletionEventSchema = z
  .object({
    schemaVersion: z.literal(1).describe('Version of this payload'),
    eventId: z
      .string()
      .min(1)
      .describe(
        'Stable for the outcome: a redelivery carries the same id, so consumers can dedupe',
      ),
    eventType: z.enum(EVENT_TYPES).describe('job.completed or input.rejected'),
    jobId: z
      .string()
      .regex(/^[a-z0-9_-]{1,63}$/)
      .describe('Our id, derived from bucket, object name and generation'),
    state: z
      .enum([
        'JOB_STATE_SUCCEEDED',
        'JOB_STATE_PARTIALLY_SUCCEEDED',
        'JOB_STATE_FAILED',
        'JOB_STATE_CANCELLED',
        'JOB_STATE_EXPIRED',
        INPUT_REJECTED_STATE,
      ])
      .describe('The Vertex terminal state, or INPUT_REJECTED'),
    model: z.string().min(1).describe('Full model resource name'),
    input: z
      .object({
        bucket: z.string().min(1),
        name: z.string().min(1),
        generation: z.string().regex(/^\d+$/).describe('int64 as a string'),
        uri: z
          .string()
          .regex(/^(gs|bq):\/\//)
          .describe(
            'gs://bucket/object; for a manifest (README "Manifests"), its source: a bq:// table or its gs:// URIs joined by ","',
          ),
        requestCount: z
          .number()
          .int()
          .nonnegative()
          .nullable()
          .describe('Lines in the input, when known'),
      })
      .strict()
      .describe('The input object generation'),
    vertexJob: z
      .string()
      .nullable()
      .describe('projects/.../batchPredictionJobs/...; null when rejected before create'),
    output: z
      .object({
        uriPrefix: z
          .string()
          .regex(/^(gs|bq):\/\//)
          .describe(
            "<OUTPUT_URI_PREFIX>/<jobId>/, or a manifest's destination (gs:// prefix or bq:// dataset or table)",
          ),
        directory: z
          .string()
          .nullable()
          .describe(
            "Vertex's outputInfo.gcsOutputDirectory, or its output table as bq://project.dataset.table (null when Vertex wrote none; a rejected input's rejection.json is under uriPrefix)",
          ),
      })
      .strict()
      .nullable(),
    stats: z
      .object({
        successfulCount: z.number().int(),
        failedCount: z.number().int(),
        incompleteCount: z.number().int().describe('-1 when Vertex does not know'),
      })
      .strict()
      .nullable(),
    error: z
      .object({
        code: z
          .string()
          .min(1)
          .describe('Our code (INPUT.INVALID_JSONL, …) or a canonical status name'),
        message: z.string(),
      })
      .strict()
      .nullable(),
    results: z
      .object({
        rows: z
          .object({
            succeeded: z.number().int().nonnegative(),
            failed: z.number().int().nonnegative(),
            missing: z.number().int().nonnegative().describe('Input requests with no output line'),
          })
          .strict(),
        summaryUri: z
          .string()
          .regex(/^gs:\/\//)
          .describe('summary.json under the job prefix'),
        resultsUri: z
          .string()
          .regex(/^(gs|bq):\/\//)
          .describe(
            'results.jsonl: one line per input request, in input order; for a BigQuery destination, the output table (bq://project.dataset.table)',
          ),
        failedRowsUri: z
          .string()
          .regex(/^gs:\/\//)
          .nullable()
          .describe('failed.jsonl: the failed input lines, byte for byte; null when none failed'),
      })
      .strict()
      .nullable()
      .describe('The results digest; null when the job wrote no output or the input was rejected'),
    usage: z
      .object({
        inputTokens: z.number().int().nonnegative(),
        outputTokens: z.number().int().nonnegative(),
        thinkingTokens: z.number().int().nonnegative(),
        cachedTokens: z.number().int().nonnegative(),
      })
      .strict()
      .nullable()
      .describe('Token totals over all output lines; null when there was no output'),
    cost: z
      .object({
        currency: z.literal('USD'),
        estimatedUsd: z
          .number()
          .nonnegative()
          .nullable()
          .describe('Upper bound computed before submit; null when the model has no price'),
        actualUsd: z
          .number()
          .nonnegative()
          .nullable()
          .describe('From usage at batch prices; null until known or when the model has no price'),
        pricing: z.string().min(1).describe('The price table used, named by its date'),
      })
      .strict()
      .nullable()
      .describe('Null only when the input was rejected before its size was known'),
    attempts: z
      .array(
        z
          .object({
            vertexJob: z.string().nullable(),
            state: z.string().min(1).describe("The attempt job's terminal state"),
            rows: z
              .object({
                succeeded: z.number().int().nonnegative(),
                failed: z.number().int().nonnegative(),
              })
              .strict(),
          })
          .strict(),
      )
      .describe(
        'The Vertex jobs of the input in order: one when nothing was retried, one more per retry of failed rows; [] for input.rejected',
      ),
    createTime: nullableTime,
    startTime: nullableTime,
    endTime: nullableTime,
    publishTime: rfc3339.describe('When we published'),
  })
  .strict()
  .describe('batch-courier completion event (Pub/Sub message data)');

/** The completion event's data. */
export type CompletionEvent = z.infer<typeof CompletionEventSchema>;

/** The Pub/Sub attributes of an event (all strings), for filtering without parsing. */
export interface EventAttributes {
  eventType: EventType;
  state: string;
  jobId: string;
  model: string;
  schemaVersion: '1';
  [key: string]: string;
}

/** The JSON Schema of the event data (draft 2020-12), as written to the repository. */
export function completionEventJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://github.com/batch-courier/batch-courier/schema/completion-event.schema.json',
    ...z.toJSONSchema(CompletionEventSchema, { target: 'draft-2020-12' }),
  };
}

/** The id of an outcome: the same job and state always give the same id. */
export function eventIdFor(jobId: string, state: string): string {
  return createHash('sha256').update(`${jobId}\u0000${state}`).digest('hex').slice(0, 32);
}

/** The event's `cost`: null only when neither an estimate nor a digest exists. */
export function costOf(record: Pick<JobRecord, 'estimate' | 'digest'>): CompletionEvent['cost'] {
  const { estimate, digest } = record;
  const pricing = digest?.pricing ?? estimate?.pricing;
  if (pricing === undefined) return null;
  return {
    currency: 'USD',
    estimatedUsd: estimate?.usd ?? null,
    actualUsd: digest?.actualUsd ?? null,
    pricing,
  };
}

type Stats = NonNullable<JobRecord['stats']>;
type Rows = { succeeded: number; failed: number };

/** The event's `attempts`: the input's Vertex jobs in order. */
export function attemptsOf(record: JobRecord): CompletionEvent['attempts'] {
  if (record.status !== 'COMPLETED') return [];
  const rowsOf = (digest: JobRecord['digest'], stats: JobRecord['stats']): Rows => {
    const rows = digest?.results?.rows;
    return rows
      ? { succeeded: rows.succeeded, failed: rows.failed + rows.missing }
      : { succeeded: stats?.successfulCount ?? 0, failed: Math.max(0, stats?.failedCount ?? 0) };
  };
  if (record.attempts.length === 0) {
    return [
      {
        vertexJob: record.vertexJob,
        state: record.vertexState ?? 'JOB_STATE_FAILED',
        rows: rowsOf(record.digest, record.stats),
      },
    ];
  }
  return record.attempts.map((a) => ({
    vertexJob: a.vertexJob,
    state: a.state,
    rows: rowsOf(a.digest, a.stats),
  }));
}

const TERMINAL = new Set([
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_EXPIRED',
]);

/**
 * The state announced for a finished job: Vertex's, or, when failed rows were sent again, the
 * outcome of every row in the end (all succeeded: SUCCEEDED; some: PARTIALLY_SUCCEEDED; none:
 * the last attempt's state, or FAILED).
 */
export function finalStateOf(record: JobRecord): string {
  if (record.attempts.length <= 1) return record.vertexState ?? '';
  const rows = record.digest?.results?.rows;
  if (rows && rows.failed + rows.missing === 0) return 'JOB_STATE_SUCCEEDED';
  if (rows && rows.succeeded > 0) return 'JOB_STATE_PARTIALLY_SUCCEEDED';
  // Rows unknown (the merge was given up): some succeeded if any attempt says so.
  const anySucceeded = record.attempts.some(
    (a) => (a.digest.results?.rows.succeeded ?? a.stats?.successfulCount ?? 0) > 0,
  );
  if (!rows && anySucceeded) return 'JOB_STATE_PARTIALLY_SUCCEEDED';
  const last = record.attempts[record.attempts.length - 1]?.state ?? '';
  return TERMINAL.has(last) && last !== 'JOB_STATE_SUCCEEDED' ? last : 'JOB_STATE_FAILED';
}

/** The event's `stats`: Vertex's, summed over the attempts when rows were sent again. */
function statsOf(record: JobRecord): JobRecord['stats'] {
  if (record.attempts.length <= 1) return record.stats;
  const sum: Stats = { successfulCount: 0, failedCount: 0, incompleteCount: 0 };
  for (const a of record.attempts) {
    sum.successfulCount += a.stats?.successfulCount ?? 0;
    sum.failedCount += Math.max(0, a.stats?.failedCount ?? 0);
    sum.incompleteCount += Math.max(0, a.stats?.incompleteCount ?? 0);
  }
  return sum;
}

/** Builds (and validates) the event announcing a record's outcome. */
export function buildCompletionEvent(record: JobRecord, publishTime: Date): CompletionEvent {
  const rejected = record.status !== 'COMPLETED';
  const state = rejected ? INPUT_REJECTED_STATE : finalStateOf(record);
  const event = {
    schemaVersion: 1,
    eventId: eventIdFor(record.jobId, state),
    eventType: rejected ? 'input.rejected' : 'job.completed',
    jobId: record.jobId,
    state,
    model: record.model,
    input: {
      bucket: record.bucket,
      name: record.object,
      generation: record.generation,
      uri: record.inputUri,
      requestCount: record.requestCount,
    },
    vertexJob: record.vertexJob,
    // A rejected input's report (rejection.json) lives under the job's prefix; a job refused by
    // Vertex has no output at all.
    output:
      record.vertexJob === null && record.status !== 'REJECTED'
        ? null
        : {
            uriPrefix:
              record.status === 'REJECTED'
                ? record.outputUriPrefix
                : (record.manifest?.destination ?? record.outputUriPrefix),
            directory: record.outputDirectory,
          },
    stats: statsOf(record),
    error: record.error,
    results: record.digest?.results ?? null,
    usage: record.digest?.usage ?? null,
    cost: costOf(record),
    attempts: attemptsOf(record),
    createTime: record.vertexCreateTime,
    startTime: record.vertexStartTime,
    endTime: record.vertexEndTime,
    publishTime: publishTime.toISOString(),
  };
  return CompletionEventSchema.parse(event);
}

/**
 * The most bytes (UTF-8) of one Pub/Sub attribute value; keys may have 256. The service refuses a
 * longer one with INVALID_ARGUMENT (the emulators do not), which would make the event unpublishable
 * on every attempt (https://cloud.google.com/pubsub/quotas#resource_limits).
 */
export const MAX_ATTRIBUTE_VALUE_BYTES = 1024;

/** Ends a value that was cut to fit an attribute. */
export const TRUNCATION_MARKER = '…';

/**
 * `value` if it fits in `maxBytes` bytes of UTF-8; otherwise its longest prefix that fits together
 * with {@link TRUNCATION_MARKER}, cut between characters (never inside one).
 */
export function capUtf8(value: string, maxBytes: number = MAX_ATTRIBUTE_VALUE_BYTES): string {
  if (Buffer.byteLength(value, 'utf8') <= maxBytes) return value;
  const room = maxBytes - Buffer.byteLength(TRUNCATION_MARKER, 'utf8');
  let used = 0;
  let end = 0;
  for (const char of value) {
    const bytes = Buffer.byteLength(char, 'utf8');
    if (used + bytes > room) break;
    used += bytes;
    end += char.length;
  }
  return `${value.slice(0, end)}${TRUNCATION_MARKER}`;
}

/**
 * The attributes of an event, every value capped at {@link MAX_ATTRIBUTE_VALUE_BYTES} bytes (the
 * data keeps the full values).
 */
export function eventAttributes(event: CompletionEvent): EventAttributes {
  return {
    eventType: event.eventType,
    state: capUtf8(event.state),
    jobId: capUtf8(event.jobId),
    model: capUtf8(event.model),
    schemaVersion: '1',
  };
}
