/**
 * A local Vertex AI batch prediction emulator: the REST v1 `batchPredictionJobs` surface on the
 * production paths (`/v1/projects/{P}/locations/{L}/batchPredictionJobs...`), plain HTTP on
 * 127.0.0.1, so the code under test only swaps its endpoint (`VERTEX_AI_EMULATOR_HOST`).
 *
 * What it models, because our code depends on it:
 * - create validation strict enough to catch our bugs (output-only or unknown fields, labels, URIs);
 * - the job lifecycle PENDING → RUNNING → SUCCEEDED | PARTIALLY_SUCCEEDED | FAILED, cancel
 *   (CANCELLING → CANCELLED), delete of finished jobs only, and forced EXPIRED/FAILED/... outcomes;
 * - Google's JSON conventions: camelCase, int64 as strings, zero counts omitted, google.rpc errors;
 * - list filters (AIP-160 subset) with paging, newest first;
 * - the 4-concurrent-jobs limit of Claude batch jobs per project (429 RESOURCE_EXHAUSTED);
 * - real output files (`prediction-model-<createTime>/predictions.jsonl`) written through a
 *   {@link BlobStore}, with answers from a tiny deterministic sentiment model.
 *
 * Fault injection works programmatically ({@link VertexEmulator.inject}) and over HTTP
 * (`POST /emulator/v1/faults`, same JSON shape), so a test can drive an emulator in another process.
 * `POST /emulator/v1/reset` clears jobs, faults and request counters; `GET /emulator/v1/requests`
 * returns the counters. The emulator never logs: prompts and answers are customer data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { analyzeSentiment, estimateTokens } from './sentiment-model.js';
import {
  isTerminalState,
  VERTEX_JOB_STATES as JOB_STATES,
  type VertexJobState,
} from '../shared/core/vertex.js';

/** Where the emulator reads inputs and writes outputs (the local stack backs it with the storage emulator). */
export interface BlobStore {
  /** Reads a whole object; rejects with an error whose `code` is 404 when it does not exist. */
  read(uri: string): Promise<Buffer>;
  /** Writes (creates or replaces) an object. */
  write(uri: string, data: Buffer | string, contentType?: string): Promise<void>;
}

// The job state model is the product's own (shared/core/vertex.ts): one list of the 12 states.
export {
  VERTEX_JOB_STATES as JOB_STATES,
  isTerminalState,
  type VertexJobState,
} from '../shared/core/vertex.js';
/** A `BatchPredictionJob` as the REST API renders it (only the fields this emulator produces). */
export interface VertexJobJson {
  /** `projects/{projectNumber}/locations/{L}/batchPredictionJobs/{19-digit id}`. */
  name: string;
  displayName: string;
  model: string;
  inputConfig: { instancesFormat: string; gcsSource: { uris: string[] } };
  /** Echoed when the create request set it. */
  instanceConfig?: Record<string, unknown>;
  /** Echoed when the create request set it. */
  modelParameters?: unknown;
  outputConfig: { predictionsFormat: string; gcsDestination: { outputUriPrefix: string } };
  /** Echoed when the create request set it. */
  serviceAccount?: string;
  /** Echoed when the create request set it. */
  encryptionSpec?: { kmsKeyName: string };
  /** Echoed when the create request set it. */
  disableContainerLogging?: boolean;
  /** Set when the job finished processing its input (also for CANCELLED jobs that had). */
  outputInfo?: { gcsOutputDirectory: string };
  state: VertexJobState;
  /** google.rpc.Status: FAILED (3, 5, 7 or 13) and CANCELLED (1) jobs. */
  error?: { code: number; message: string };
  /** int64 counts as strings; zero counts are omitted, as Vertex does. */
  completionStats?: { successfulCount?: string; failedCount?: string; incompleteCount?: string };
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
  /** Omitted when the job has none. */
  labels?: Record<string, string>;
}

/** The request kinds that are counted and can be faulted. */
export type VertexOp = 'create' | 'get' | 'list' | 'cancel' | 'delete';

/**
 * A fault to inject.
 * - `{op, status}`: the next `times` (default 1) requests of that kind answer `status` with a
 *   google.rpc error body and have no other effect.
 * - `{op: 'create', loseAnswer: true}`: the next `times` creates that succeed DO create the job,
 *   but the client gets a 503 UNAVAILABLE instead of the job (the socket is not destroyed).
 *   A create rejected by validation does not use the fault up.
 * - `{outcome}`: the next `times` created jobs that match (`displayName` equal, or any label value
 *   equal to `labelValue`; no `match` = any job) end that way: FAILED (error 13 INTERNAL, no
 *   output), EXPIRED (straight from PENDING, no error), PARTIALLY_SUCCEEDED (the input is
 *   processed and its last successful row is turned into a failed one), CANCELLED (runs, then
 *   CANCELLING → CANCELLED without output).
 * - `{latencyMs}`: added to every `/v1/...` request until reset (`0` removes it; the last one wins).
 * - `{refuseList: true}`: every `list` request answers 400 INVALID_ARGUMENT (with `message`, or
 *   Google's generic one) until reset or `{refuseList: false}`; the last one wins. With
 *   `maxOrTerms` and/or `hyphenatedLabelKeys`, only the lists whose filter has more than
 *   `maxOrTerms` terms joined by OR, or names a label key containing `-` (`labels.job-id=…`), are
 *   refused. The service documents no such limits; this lets a test check that callers do not
 *   depend on `list` alone.
 */
export type VertexFault =
  | {
      op: VertexOp;
      status: 429 | 500 | 503 | 404 | 400 | 403;
      times?: number;
      message?: string;
    }
  | { op: 'create'; loseAnswer: true; times?: number }
  | {
      outcome: 'FAILED' | 'EXPIRED' | 'PARTIALLY_SUCCEEDED' | 'CANCELLED';
      match?: { displayName?: string; labelValue?: string };
      times?: number;
      /** The error message of a forced FAILED job. */
      message?: string;
    }
  | { latencyMs: number }
  | {
      refuseList: boolean;
      maxOrTerms?: number;
      hyphenatedLabelKeys?: boolean;
      message?: string;
    };

/** Options of {@link startVertexEmulator}. */
export interface VertexEmulatorOptions {
  /** Input and output objects. */
  blobs: BlobStore;
  /** TCP port on 127.0.0.1; 0 or absent lets the OS choose. */
  port?: number;
  /** The numeric project number used in job names (default `"123456789012"`). */
  projectNumber?: string;
  /**
   * How long jobs stay in each state, in ms. `Infinity` means "until {@link VertexEmulator.advance}".
   * Defaults: pending 500, running 1000, cancelling min(100, runningMs).
   */
  timing?: { pendingMs?: number; runningMs?: number; cancellingMs?: number };
  /** Non-terminal Claude (`publishers/anthropic/...`) jobs allowed per project (default 4). */
  anthropicConcurrency?: number;
}

/** A running emulator. */
export interface VertexEmulator {
  /** `127.0.0.1:port`, the `VERTEX_AI_EMULATOR_HOST` form. */
  readonly host: string;
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Adds a fault (see {@link VertexFault}); throws on a malformed one. */
  inject(fault: VertexFault): void;
  /** Forgets all jobs, faults and request counters, and stops all job timers. */
  reset(): void;
  /** Snapshots of all jobs, oldest first (deleted jobs excluded). */
  jobs(): VertexJobJson[];
  /** Requests received per kind (also the faulted ones); live, zeroed by reset. */
  readonly requests: Record<VertexOp, number>;
  /**
   * Moves one job (name or numeric id), or every unfinished job, one step now: PENDING → RUNNING
   * (or EXPIRED), RUNNING → its outcome (after processing), CANCELLING → CANCELLED.
   */
  advance(name?: string): Promise<void>;
  /** Advances every job until none is unfinished (for manual timing). */
  settle(): Promise<void>;
  /**
   * Resolves when no job is unfinished, or the emulator closes (never otherwise, with `Infinity`
   * timings and no advance).
   */
  whenIdle(): Promise<void>;
  /**
   * Resolves with the job once it is, or has been, in one of `states`; rejects when it finishes,
   * is deleted or the emulator closes without that happening.
   */
  waitForState(name: string, states: VertexJobState | VertexJobState[]): Promise<VertexJobJson>;
  /** Stops the server and every timer. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Errors and small helpers

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  413: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

const DEFAULT_FAULT_MESSAGES: Record<number, string> = {
  400: 'Request contains an invalid argument.',
  403: 'Permission denied on resource (or it may not exist).',
  404: 'The requested resource was not found.',
  429: 'Quota exceeded: too many requests. Please retry later.',
  500: 'Internal error encountered.',
  503: 'The service is currently unavailable.',
};

/** An answer in the google.rpc error form. */
class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    readonly status: string = STATUS_NAMES[httpStatus] ?? 'UNKNOWN',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const invalid = (message: string): ApiError => new ApiError(400, message);

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `code` of an error (a number or a string), as storage clients set it. */
function errorCode(err: unknown): number | undefined {
  const code =
    typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const n = typeof code === 'string' ? Number(code) : code;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

let lastMicros = 0;

/**
 * An RFC 3339 UTC timestamp with microseconds, like Vertex's, strictly increasing within the
 * process so that creation order, `createTime` filters and output folder names are unambiguous.
 */
function timestamp(): { text: string; micros: number } {
  const micros = Math.max(Date.now() * 1000, lastMicros + 1);
  lastMicros = micros;
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return { text: `${iso.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`, micros };
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Microseconds since the epoch of an RFC 3339 timestamp, or undefined when malformed. */
function parseTimestampMicros(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const n = (i: number): number => Number(m[i] ?? '0');
  const ms = Date.UTC(n(1), n(2) - 1, n(3), n(4), n(5), n(6));
  if (Number.isNaN(ms) || n(2) < 1 || n(2) > 12 || n(3) < 1 || n(3) > 31) return undefined;
  const offsetMinutes = m[9] ? (m[9] === '-' ? -1 : 1) * (n(10) * 60 + n(11)) : 0;
  const fraction = Number((m[7] ?? '').padEnd(6, '0').slice(0, 6));
  return (ms - offsetMinutes * 60_000) * 1000 + fraction;
}

/** A random 19-digit numeric id below 2^63, the form of Vertex job and operation ids. */
function numericId(): string {
  const random = randomBytes(8).readBigUInt64BE();
  return (1_000_000_000_000_000_000n + (random % 8_000_000_000_000_000_000n)).toString();
}

function lastSegment(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

// ---------------------------------------------------------------------------------------------
// Create validation

/** Fields Vertex computes; a create that sets one is a bug on our side. */
const OUTPUT_ONLY_FIELDS: ReadonlySet<string> = new Set([
  'name',
  'state',
  'error',
  'partialFailures',
  'createTime',
  'startTime',
  'endTime',
  'updateTime',
  'completionStats',
  'outputInfo',
  'resourcesConsumed',
  'modelVersionId',
  'satisfiesPzs',
  'satisfiesPzi',
]);

/** Settable fields that make no sense for publisher models (custom-model serving options). */
const UNSUPPORTED_FIELDS: ReadonlySet<string> = new Set([
  'unmanagedContainerModel',
  'dedicatedResources',
  'manualBatchTuningParameters',
  'generateExplanation',
  'explanationSpec',
]);

const SETTABLE_FIELDS: ReadonlySet<string> = new Set([
  'displayName',
  'model',
  'inputConfig',
  'instanceConfig',
  'modelParameters',
  'outputConfig',
  'serviceAccount',
  'encryptionSpec',
  'disableContainerLogging',
  'labels',
]);

const MODEL_ID = '[A-Za-z0-9][A-Za-z0-9._@-]*';
const PUBLISHER_MODEL = new RegExp(`^publishers/(google|anthropic)/models/${MODEL_ID}$`);
const PROJECT_PUBLISHER_MODEL = new RegExp(
  `^projects/[^/]+/locations/([^/]+)/publishers/(google|anthropic)/models/${MODEL_ID}$`,
);
const PROJECT_MODEL = new RegExp(`^projects/[^/]+/locations/([^/]+)/models/${MODEL_ID}$`);
const GCS_OBJECT = /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]\/.+$/;
const GCS_PREFIX = /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** What a valid create request carries. */
interface CreateRequest {
  displayName: string;
  model: string;
  anthropic: boolean;
  inputUris: string[];
  outputUriPrefix: string;
  labels: Record<string, string>;
  /** The request's fields as sent, echoed in the job. */
  body: Json;
}

function requireObject(value: unknown, field: string): Json {
  if (value === undefined) throw invalid(`Required field is not set: ${field}.`);
  if (!isObject(value)) throw invalid(`Invalid value at '${field}': expected an object.`);
  return value;
}

function requireString(value: unknown, field: string): string {
  if (value === undefined || value === '') throw invalid(`Required field is not set: ${field}.`);
  if (typeof value !== 'string') throw invalid(`Invalid value at '${field}': expected a string.`);
  return value;
}

function checkKnownFields(obj: Json, allowed: readonly string[], prefix: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw invalid(
        `Invalid JSON payload received. Unknown name "${key}" at '${prefix}': Cannot find field.`,
      );
    }
  }
}

function validateCreate(body: unknown, location: string): CreateRequest {
  if (!isObject(body)) throw invalid('Invalid JSON payload received. Expected an object.');
  for (const key of Object.keys(body)) {
    if (OUTPUT_ONLY_FIELDS.has(key)) {
      throw invalid(`Field '${key}' is output only and must not be set in a create request.`);
    }
    if (UNSUPPORTED_FIELDS.has(key)) {
      throw invalid(`Field '${key}' is not supported for batch prediction with publisher models.`);
    }
    if (!SETTABLE_FIELDS.has(key)) {
      throw invalid(`Invalid JSON payload received. Unknown name "${key}": Cannot find field.`);
    }
  }

  const displayName = requireString(body.displayName, 'displayName');
  if ([...displayName].length > 128) {
    throw invalid('displayName must be at most 128 characters.');
  }

  const model = requireString(body.model, 'model');
  let anthropic: boolean;
  const publisher = PUBLISHER_MODEL.exec(model);
  const projectPublisher = PROJECT_PUBLISHER_MODEL.exec(model);
  const projectModel = PROJECT_MODEL.exec(model);
  if (publisher) {
    anthropic = publisher[1] === 'anthropic';
  } else if (projectPublisher) {
    if (projectPublisher[1] !== location) {
      throw invalid(`Model ${model} is not in location ${location}.`);
    }
    anthropic = projectPublisher[2] === 'anthropic';
  } else if (projectModel) {
    if (projectModel[1] !== location) {
      throw invalid(`Model ${model} is not in location ${location}.`);
    }
    anthropic = false;
  } else {
    throw invalid(
      `Invalid model resource name "${model}": expected publishers/{google|anthropic}/models/{id} or projects/{project}/locations/{location}/...`,
    );
  }

  const inputConfig = requireObject(body.inputConfig, 'inputConfig');
  checkKnownFields(inputConfig, ['instancesFormat', 'gcsSource', 'bigquerySource'], 'inputConfig');
  const instancesFormat = requireString(inputConfig.instancesFormat, 'inputConfig.instancesFormat');
  if (instancesFormat !== 'jsonl') {
    throw invalid(`inputConfig.instancesFormat "${instancesFormat}" is not supported: use jsonl.`);
  }
  if (inputConfig.bigquerySource !== undefined) {
    throw invalid('inputConfig.bigquerySource cannot be used with instancesFormat jsonl.');
  }
  const gcsSource = requireObject(inputConfig.gcsSource, 'inputConfig.gcsSource');
  checkKnownFields(gcsSource, ['uris'], 'inputConfig.gcsSource');
  const uris = gcsSource.uris;
  if (!Array.isArray(uris) || uris.length === 0) {
    throw invalid('Required field is not set: inputConfig.gcsSource.uris.');
  }
  const inputUris = uris.map((uri, i) => {
    if (typeof uri !== 'string' || !GCS_OBJECT.test(uri)) {
      throw invalid(`inputConfig.gcsSource.uris[${i}] is not a gs://bucket/object URI.`);
    }
    return uri;
  });

  const outputConfig = requireObject(body.outputConfig, 'outputConfig');
  checkKnownFields(
    outputConfig,
    ['predictionsFormat', 'gcsDestination', 'bigqueryDestination'],
    'outputConfig',
  );
  const predictionsFormat = requireString(
    outputConfig.predictionsFormat,
    'outputConfig.predictionsFormat',
  );
  if (predictionsFormat !== 'jsonl') {
    throw invalid(
      `outputConfig.predictionsFormat "${predictionsFormat}" is not supported: use jsonl.`,
    );
  }
  if (outputConfig.bigqueryDestination !== undefined) {
    throw invalid('outputConfig.bigqueryDestination cannot be used with predictionsFormat jsonl.');
  }
  const gcsDestination = requireObject(outputConfig.gcsDestination, 'outputConfig.gcsDestination');
  checkKnownFields(gcsDestination, ['outputUriPrefix'], 'outputConfig.gcsDestination');
  const outputUriPrefix = requireString(
    gcsDestination.outputUriPrefix,
    'outputConfig.gcsDestination.outputUriPrefix',
  );
  if (!GCS_PREFIX.test(outputUriPrefix)) {
    throw invalid('outputConfig.gcsDestination.outputUriPrefix is not a gs://bucket[/prefix] URI.');
  }

  const labels: Record<string, string> = {};
  if (body.labels !== undefined) {
    if (!isObject(body.labels)) throw invalid("Invalid value at 'labels': expected a map.");
    const entries = Object.entries(body.labels);
    if (entries.length > 64) throw invalid('At most 64 labels are allowed.');
    for (const [key, value] of entries) {
      if (!LABEL_KEY.test(key)) {
        throw invalid(
          `Label key "${key}" is invalid: 1-63 lowercase letters, digits, '_' or '-', starting with a letter.`,
        );
      }
      if (typeof value !== 'string' || !LABEL_VALUE.test(value)) {
        throw invalid(
          `Label value of "${key}" is invalid: at most 63 lowercase letters, digits, '_' or '-'.`,
        );
      }
      labels[key] = value;
    }
  }

  if (body.serviceAccount !== undefined && typeof body.serviceAccount !== 'string') {
    throw invalid("Invalid value at 'serviceAccount': expected a string.");
  }
  if (body.encryptionSpec !== undefined) {
    const spec = requireObject(body.encryptionSpec, 'encryptionSpec');
    checkKnownFields(spec, ['kmsKeyName'], 'encryptionSpec');
    requireString(spec.kmsKeyName, 'encryptionSpec.kmsKeyName');
  }
  if (body.instanceConfig !== undefined) requireObject(body.instanceConfig, 'instanceConfig');
  if (
    body.disableContainerLogging !== undefined &&
    typeof body.disableContainerLogging !== 'boolean'
  ) {
    throw invalid("Invalid value at 'disableContainerLogging': expected a boolean.");
  }

  return { displayName, model, anthropic, inputUris, outputUriPrefix, labels, body };
}

// ---------------------------------------------------------------------------------------------
// List filter: the AIP-160 subset Vertex documents for batchPredictionJobs.list

/** The job fields a filter looks at. */
interface FilterTarget {
  state: VertexJobState;
  displayName: string;
  createMicros: number;
  labels: Record<string, string>;
}

type Predicate = (job: FilterTarget) => boolean;
type Comparator = '=' | '!=' | '<' | '<=' | '>' | '>=' | ':';
type Token =
  | { kind: '(' | ')' }
  | { kind: 'op'; value: Comparator }
  | { kind: 'string'; value: string }
  | { kind: 'word'; value: string };

const WORD_CHAR = /[A-Za-z0-9_.*@/-]/;

function tokenize(filter: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < filter.length) {
    const c = filter.charAt(i);
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c });
      i += 1;
    } else if (c === '"' || c === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= filter.length)
          throw invalid(`Invalid filter: unterminated string in "${filter}".`);
        const d = filter.charAt(i);
        if (d === c) break;
        if (d === '\\') {
          i += 1;
          value += filter.charAt(i);
        } else {
          value += d;
        }
        i += 1;
      }
      i += 1;
      tokens.push({ kind: 'string', value });
    } else if ('<>!=:'.includes(c)) {
      const two = filter.slice(i, i + 2);
      if (two === '<=' || two === '>=' || two === '!=') {
        tokens.push({ kind: 'op', value: two });
        i += 2;
      } else if (c === '!') {
        throw invalid(`Invalid filter: unexpected '!' in "${filter}".`);
      } else {
        tokens.push({ kind: 'op', value: c as Comparator });
        i += 1;
      }
    } else if (WORD_CHAR.test(c)) {
      let j = i;
      while (j < filter.length && WORD_CHAR.test(filter.charAt(j))) j += 1;
      tokens.push({ kind: 'word', value: filter.slice(i, j) });
      i = j;
    } else {
      throw invalid(`Invalid filter: unexpected character '${c}' in "${filter}".`);
    }
  }
  return tokens;
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 's');
}

function compileRestriction(field: string, op: Comparator, arg: string, filter: string): Predicate {
  const unsupported = (): ApiError =>
    invalid(`Invalid filter "${filter}": operator '${op}' is not supported for field '${field}'.`);
  if (field === 'state') {
    if (!(JOB_STATES as readonly string[]).includes(arg)) {
      throw invalid(`Invalid filter "${filter}": "${arg}" is not a JobState.`);
    }
    if (op === '=') return (job) => job.state === arg;
    if (op === '!=') return (job) => job.state !== arg;
    throw unsupported();
  }
  if (field === 'displayName' || field === 'display_name') {
    if (op === '=') return (job) => job.displayName === arg;
    if (op === '!=') return (job) => job.displayName !== arg;
    if (op === ':') {
      const pattern = globToRegExp(arg);
      return (job) => pattern.test(job.displayName);
    }
    throw unsupported();
  }
  if (field === 'createTime' || field === 'create_time') {
    const micros = parseTimestampMicros(arg);
    if (micros === undefined) {
      throw invalid(`Invalid filter "${filter}": "${arg}" is not an RFC 3339 timestamp.`);
    }
    switch (op) {
      case '=':
        return (job) => job.createMicros === micros;
      case '!=':
        return (job) => job.createMicros !== micros;
      case '<':
        return (job) => job.createMicros < micros;
      case '<=':
        return (job) => job.createMicros <= micros;
      case '>':
        return (job) => job.createMicros > micros;
      case '>=':
        return (job) => job.createMicros >= micros;
      default:
        throw unsupported();
    }
  }
  if (field === 'labels') {
    // `labels:key`: the map has that key.
    if (op === ':') return (job) => Object.hasOwn(job.labels, arg);
    throw unsupported();
  }
  if (field.startsWith('labels.') && field.length > 'labels.'.length) {
    const key = field.slice('labels.'.length);
    if (op === ':' && arg === '*') return (job) => Object.hasOwn(job.labels, key);
    if (op === '=' || op === ':') return (job) => job.labels[key] === arg;
    if (op === '!=') return (job) => job.labels[key] !== arg;
    throw unsupported();
  }
  throw invalid(`Invalid filter "${filter}": unsupported field '${field}'.`);
}

/** An injected refusal of `list` calls (see {@link VertexFault}). */
type ListRefusal = Extract<VertexFault, { refuseList: boolean }>;

/**
 * True when `refusal` refuses a list with this filter: always without conditions, else when the
 * filter has more than `maxOrTerms` OR-joined terms or (with `hyphenatedLabelKeys`) names a label
 * key containing `-`. A filter that does not even tokenize is left to the filter's own checks.
 */
function refusesList(refusal: ListRefusal, filter: string): boolean {
  if (refusal.maxOrTerms === undefined && !refusal.hyphenatedLabelKeys) return true;
  let tokens: Token[];
  try {
    tokens = tokenize(filter);
  } catch {
    return false;
  }
  const words = tokens.flatMap((t) => (t.kind === 'word' ? [t.value] : []));
  const orTerms = words.filter((w) => w === 'OR').length + 1;
  if (refusal.maxOrTerms !== undefined && orTerms > refusal.maxOrTerms) return true;
  return (
    refusal.hyphenatedLabelKeys === true &&
    words.some((w) => w.startsWith('labels.') && w.slice('labels.'.length).includes('-'))
  );
}

/**
 * Compiles a list filter. Grammar (AIP-160, where OR binds tighter than AND):
 * `expression = sequence {AND sequence}`, `sequence = factor {factor}` (juxtaposition is AND),
 * `factor = term {OR term}`, `term = [NOT] (restriction | '(' expression ')')`,
 * `restriction = field comparator value`. Anything else is INVALID_ARGUMENT.
 */
export function compileFilter(filter: string): Predicate {
  const tokens = tokenize(filter);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isKeyword = (t: Token | undefined, word: string): boolean =>
    t?.kind === 'word' && t.value === word;
  const fail = (what: string): ApiError => invalid(`Invalid filter "${filter}": ${what}.`);

  const expression = (): Predicate => {
    const parts = [sequence()];
    while (isKeyword(peek(), 'AND')) {
      pos += 1;
      parts.push(sequence());
    }
    return parts.length === 1 ? (parts[0] as Predicate) : (job) => parts.every((p) => p(job));
  };
  const startsTerm = (t: Token | undefined): boolean =>
    t !== undefined &&
    (t.kind === '(' ||
      (t.kind === 'word' && t.value !== 'AND' && t.value !== 'OR') ||
      t.kind === 'string');
  const sequence = (): Predicate => {
    const parts = [factor()];
    while (startsTerm(peek())) parts.push(factor());
    return parts.length === 1 ? (parts[0] as Predicate) : (job) => parts.every((p) => p(job));
  };
  const factor = (): Predicate => {
    const parts = [term()];
    while (isKeyword(peek(), 'OR')) {
      pos += 1;
      parts.push(term());
    }
    return parts.length === 1 ? (parts[0] as Predicate) : (job) => parts.some((p) => p(job));
  };
  const term = (): Predicate => {
    if (isKeyword(peek(), 'NOT')) {
      pos += 1;
      const inner = simple();
      return (job) => !inner(job);
    }
    return simple();
  };
  const simple = (): Predicate => {
    const t = peek();
    if (t === undefined) throw fail('unexpected end');
    if (t.kind === '(') {
      pos += 1;
      const inner = expression();
      if (peek()?.kind !== ')') throw fail("missing ')'");
      pos += 1;
      return inner;
    }
    if (t.kind !== 'word') throw fail('expected a field name');
    pos += 1;
    const op = peek();
    if (op?.kind !== 'op')
      throw fail(`'${t.value}' is not a comparison (free text is unsupported)`);
    pos += 1;
    const arg = peek();
    if (arg?.kind !== 'word' && arg?.kind !== 'string') throw fail('expected a value');
    pos += 1;
    return compileRestriction(t.value, op.value, arg.value, filter);
  };

  if (tokens.length === 0) return () => true;
  const predicate = expression();
  if (pos !== tokens.length) throw fail('unexpected trailing input');
  return predicate;
}

// ---------------------------------------------------------------------------------------------
// Processing: input lines → output lines

interface Row {
  ok: boolean;
  line: string;
}

function badRequest(message: string): string {
  return `Bad Request: ${JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT' } })}`;
}

function anthropicError(message: string): string {
  return JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message } });
}

function processedTime(): string {
  return new Date().toISOString().replace('Z', '+00:00');
}

function geminiRow(text: string, modelId: string): Row {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const status = badRequest(`Invalid JSON payload received. ${errorMessage(err)}`);
    return { ok: false, line: JSON.stringify({ status, processed_time: processedTime() }) };
  }
  const request = isObject(parsed) ? parsed.request : undefined;
  const failed = (message: string): Row => ({
    ok: false,
    line: JSON.stringify({
      status: badRequest(message),
      processed_time: processedTime(),
      ...(request === undefined ? {} : { request }),
    }),
  });
  if (!isObject(request)) return failed('Each line must be a JSON object with a "request" object.');
  const contents = request.contents;
  if (!Array.isArray(contents) || contents.length === 0) {
    return failed('Unable to submit request because it has an empty contents field.');
  }
  const userTurn = contents
    .filter(isObject)
    .filter((c) => c.role === undefined || c.role === 'user')
    .at(-1);
  if (userTurn === undefined || !Array.isArray(userTurn.parts)) {
    return failed('Unable to submit request because it has no user content with parts.');
  }
  const prompt = userTurn.parts
    .filter(isObject)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .join('');
  const { label, score } = analyzeSentiment(prompt);
  const promptTokenCount = estimateTokens(prompt);
  const response = {
    candidates: [
      {
        content: { role: 'model', parts: [{ text: label }] },
        finishReason: 'STOP',
        avgLogprobs: -Number((0.01 + 0.1 / (1 + Math.abs(score))).toFixed(4)),
      },
    ],
    usageMetadata: {
      promptTokenCount,
      candidatesTokenCount: 1,
      totalTokenCount: promptTokenCount + 1,
    },
    modelVersion: modelId,
  };
  return {
    ok: true,
    line: JSON.stringify({ status: '', processed_time: processedTime(), request, response }),
  };
}

function anthropicRow(text: string, modelId: string, messageId: string): Row {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const status = anthropicError(`Invalid JSON: ${errorMessage(err)}`);
    return { ok: false, line: JSON.stringify({ status }) };
  }
  const customId = isObject(parsed) ? parsed.custom_id : undefined;
  const request = isObject(parsed) ? parsed.request : undefined;
  const failed = (message: string): Row => ({
    ok: false,
    line: JSON.stringify({
      ...(customId === undefined ? {} : { custom_id: customId }),
      ...(request === undefined ? {} : { request }),
      status: anthropicError(message),
    }),
  });
  if (!isObject(request)) return failed('Each line must be a JSON object with a "request" object.');
  const messages = request.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    return failed('messages: field required');
  }
  if (typeof request.anthropic_version !== 'string') {
    return failed('anthropic_version: field required');
  }
  const maxTokens = request.max_tokens;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return failed('max_tokens: field required (a positive integer)');
  }
  const userTurn = messages.filter(isObject).findLast((m) => m.role === 'user');
  if (userTurn === undefined) return failed('messages: at least one user message is required');
  const content = userTurn.content;
  let prompt: string;
  if (typeof content === 'string') {
    prompt = content;
  } else if (Array.isArray(content)) {
    prompt = content
      .filter(isObject)
      .map((b) => (b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
      .join('');
  } else {
    return failed('messages: content must be a string or a list of content blocks');
  }
  const { label } = analyzeSentiment(prompt);
  const response = {
    id: messageId,
    type: 'message',
    role: 'assistant',
    model: modelId,
    content: [{ type: 'text', text: label }],
    stop_reason: 'end_turn',
    usage: { input_tokens: estimateTokens(prompt), output_tokens: 1 },
  };
  return {
    ok: true,
    line: JSON.stringify({
      ...(customId === undefined ? {} : { custom_id: customId }),
      request,
      response,
      status: '',
    }),
  };
}

/** The lines of a JSONL file: a final newline (LF or CRLF) does not make an extra line. */
function splitLines(data: Buffer): string[] {
  let text = data.toString('utf8');
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  if (text === '') return [];
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** How processing the input of a job went. */
type ProcessResult =
  | { kind: 'error'; code: number; message: string }
  | { kind: 'done'; successful: number; failed: number; outputDirectory: string };

// ---------------------------------------------------------------------------------------------
// The emulator

type Outcome = Extract<VertexFault, { outcome: string }>;
type RequestFault = Extract<VertexFault, { op: VertexOp }>;

interface JobEntry {
  id: string;
  /** The project as given in the create URL (id or number). */
  project: string;
  location: string;
  seq: number;
  createMicros: number;
  request: CreateRequest;
  state: VertexJobState;
  history: VertexJobState[];
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
  error?: { code: number; message: string };
  outputInfo?: { gcsOutputDirectory: string };
  completionStats?: VertexJobJson['completionStats'];
  outcome?: Outcome;
  timer?: NodeJS.Timeout;
  processing?: Promise<ProcessResult>;
  removed: boolean;
}

interface StateWaiter {
  states: ReadonlySet<VertexJobState>;
  resolve: (job: VertexJobJson) => void;
  reject: (err: Error) => void;
}

const faultSchema = z.union([
  z.strictObject({
    op: z.literal('create'),
    loseAnswer: z.literal(true),
    times: z.number().int().positive().optional(),
  }),
  z.strictObject({
    op: z.enum(['create', 'get', 'list', 'cancel', 'delete']),
    status: z.union([
      z.literal(429),
      z.literal(500),
      z.literal(503),
      z.literal(404),
      z.literal(400),
      z.literal(403),
    ]),
    times: z.number().int().positive().optional(),
    message: z.string().optional(),
  }),
  z.strictObject({
    outcome: z.enum(['FAILED', 'EXPIRED', 'PARTIALLY_SUCCEEDED', 'CANCELLED']),
    match: z
      .strictObject({ displayName: z.string().optional(), labelValue: z.string().optional() })
      .optional(),
    times: z.number().int().positive().optional(),
    message: z.string().optional(),
  }),
  z.strictObject({ latencyMs: z.number().int().nonnegative() }),
  z.strictObject({
    refuseList: z.boolean(),
    maxOrTerms: z.number().int().positive().optional(),
    hyphenatedLabelKeys: z.boolean().optional(),
    message: z.string().optional(),
  }),
]);

/** Validates a fault (for the HTTP control endpoint and {@link VertexEmulator.inject}). */
export function parseVertexFault(input: unknown): VertexFault {
  const result = faultSchema.safeParse(input);
  if (!result.success) {
    throw invalid(`Invalid fault: ${z.prettifyError(result.error).replace(/\n/g, ' ')}`);
  }
  return result.data;
}

const JOBS_PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/batchPredictionJobs$/;
const JOB_PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/batchPredictionJobs\/([^/:]+)$/;
const CANCEL_PATH =
  /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/batchPredictionJobs\/([^/:]+):cancel$/;
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

function checkDuration(value: number | undefined, fallback: number, name: string): number {
  const ms = value ?? fallback;
  if (Number.isNaN(ms) || ms < 0) throw new Error(`timing.${name} must be >= 0 (got ${ms})`);
  return ms;
}

/** Starts an emulator on 127.0.0.1 (see the module comment). */
export async function startVertexEmulator(options: VertexEmulatorOptions): Promise<VertexEmulator> {
  const { blobs } = options;
  const projectNumber = options.projectNumber ?? '123456789012';
  if (!/^\d+$/.test(projectNumber)) throw new Error('projectNumber must be a numeric string');
  const pendingMs = checkDuration(options.timing?.pendingMs, 500, 'pendingMs');
  const runningMs = checkDuration(options.timing?.runningMs, 1000, 'runningMs');
  const cancellingMs = checkDuration(
    options.timing?.cancellingMs,
    Math.min(100, runningMs),
    'cancellingMs',
  );
  const anthropicConcurrency = options.anthropicConcurrency ?? 4;

  const entries = new Map<string, JobEntry>();
  const requests: Record<VertexOp, number> = { create: 0, get: 0, list: 0, cancel: 0, delete: 0 };
  let requestFaults: { fault: RequestFault; left: number }[] = [];
  let outcomeFaults: { fault: Outcome; left: number }[] = [];
  let latencyMs = 0;
  let listRefusal: ListRefusal | undefined;
  const latencyTimers = new Map<NodeJS.Timeout, () => void>();
  const stateWaiters = new Map<string, StateWaiter[]>();
  let idleWaiters: (() => void)[] = [];
  let seq = 0;
  let closed = false;

  // --- rendering and state changes

  const jobName = (e: JobEntry): string =>
    `projects/${projectNumber}/locations/${e.location}/batchPredictionJobs/${e.id}`;

  function render(e: JobEntry): VertexJobJson {
    const b = e.request.body;
    const job: VertexJobJson = {
      name: jobName(e),
      displayName: e.request.displayName,
      model: e.request.model,
      inputConfig: structuredClone(b.inputConfig) as VertexJobJson['inputConfig'],
      outputConfig: structuredClone(b.outputConfig) as VertexJobJson['outputConfig'],
      state: e.state,
      createTime: e.createTime,
      updateTime: e.updateTime,
    };
    if (b.instanceConfig !== undefined) {
      job.instanceConfig = structuredClone(b.instanceConfig) as Record<string, unknown>;
    }
    if (b.modelParameters !== undefined) job.modelParameters = structuredClone(b.modelParameters);
    if (typeof b.serviceAccount === 'string') job.serviceAccount = b.serviceAccount;
    if (b.encryptionSpec !== undefined) {
      job.encryptionSpec = structuredClone(b.encryptionSpec) as { kmsKeyName: string };
    }
    if (typeof b.disableContainerLogging === 'boolean') {
      job.disableContainerLogging = b.disableContainerLogging;
    }
    if (e.outputInfo) job.outputInfo = { ...e.outputInfo };
    if (e.error) job.error = { ...e.error };
    if (e.completionStats) job.completionStats = { ...e.completionStats };
    if (e.startTime) job.startTime = e.startTime;
    if (e.endTime) job.endTime = e.endTime;
    if (Object.keys(e.request.labels).length > 0) job.labels = { ...e.request.labels };
    // Key order as Vertex renders it, for readable fixtures.
    const order: (keyof VertexJobJson)[] = [
      'name',
      'displayName',
      'model',
      'inputConfig',
      'instanceConfig',
      'modelParameters',
      'outputConfig',
      'serviceAccount',
      'encryptionSpec',
      'disableContainerLogging',
      'outputInfo',
      'state',
      'error',
      'completionStats',
      'createTime',
      'startTime',
      'endTime',
      'updateTime',
      'labels',
    ];
    return Object.fromEntries(
      order.filter((k) => job[k] !== undefined).map((k) => [k, job[k]]),
    ) as unknown as VertexJobJson;
  }

  function clearTimer(e: JobEntry): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
  }

  /** Runs `step` after `ms`; `Infinity` leaves it to advance(). */
  function schedule(e: JobEntry, ms: number, step: () => void): void {
    clearTimer(e);
    if (Number.isFinite(ms)) {
      e.timer = setTimeout(() => {
        e.timer = undefined;
        step();
      }, ms);
    }
  }

  function setState(e: JobEntry, state: VertexJobState): void {
    const now = timestamp().text;
    e.state = state;
    e.updateTime = now;
    if (state === 'JOB_STATE_RUNNING') e.startTime = now;
    if (isTerminalState(state)) {
      e.endTime = now;
      clearTimer(e);
    }
    e.history.push(state);
    notify(e);
    checkIdle();
  }

  function notify(e: JobEntry): void {
    const waiters = stateWaiters.get(e.id);
    if (!waiters) return;
    const remaining = waiters.filter((w) => {
      if (e.history.some((s) => w.states.has(s))) {
        w.resolve(render(e));
        return false;
      }
      if (isTerminalState(e.state)) {
        w.reject(new Error(`job ${e.id} ended ${e.state} without reaching the awaited state`));
        return false;
      }
      return true;
    });
    if (remaining.length > 0) stateWaiters.set(e.id, remaining);
    else stateWaiters.delete(e.id);
  }

  function rejectWaiters(id: string, reason: string): void {
    for (const w of stateWaiters.get(id) ?? []) w.reject(new Error(reason));
    stateWaiters.delete(id);
  }

  function isIdle(): boolean {
    return [...entries.values()].every((e) => isTerminalState(e.state));
  }

  function checkIdle(): void {
    if (!isIdle()) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  // --- lifecycle steps

  function startRunning(e: JobEntry): void {
    if (e.removed || closed || e.state !== 'JOB_STATE_PENDING') return;
    if (e.outcome?.outcome === 'EXPIRED') {
      setState(e, 'JOB_STATE_EXPIRED');
      return;
    }
    setState(e, 'JOB_STATE_RUNNING');
    // Forced FAILED and CANCELLED jobs end without output, so they read nothing.
    if (e.outcome?.outcome !== 'FAILED' && e.outcome?.outcome !== 'CANCELLED') {
      e.processing = processInput(e);
    }
    schedule(e, runningMs, () => void finishRunning(e));
  }

  async function finishRunning(e: JobEntry): Promise<void> {
    if (e.state !== 'JOB_STATE_RUNNING') return;
    clearTimer(e);
    const result = await e.processing;
    if (e.removed || closed || e.state !== 'JOB_STATE_RUNNING') return;
    const forced = e.outcome?.outcome;
    if (forced === 'CANCELLED') {
      startCancelling(e);
      return;
    }
    if (forced === 'FAILED') {
      e.error = {
        code: 13,
        message: e.outcome?.message ?? 'Internal error encountered (injected by the emulator).',
      };
      setState(e, 'JOB_STATE_FAILED');
      return;
    }
    if (result === undefined || result.kind === 'error') {
      e.error = result
        ? { code: result.code, message: result.message }
        : { code: 13, message: 'Internal error encountered.' };
      setState(e, 'JOB_STATE_FAILED');
      return;
    }
    applyResult(e, result);
    if (forced === 'PARTIALLY_SUCCEEDED') {
      setState(e, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    } else if (result.failed === 0) {
      setState(e, 'JOB_STATE_SUCCEEDED');
    } else if (result.successful > 0) {
      setState(e, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    } else {
      e.error = {
        code: 3,
        message: `All ${result.failed} requests failed. See the status field of each line under ${result.outputDirectory}.`,
      };
      setState(e, 'JOB_STATE_FAILED');
    }
  }

  function applyResult(e: JobEntry, result: Extract<ProcessResult, { kind: 'done' }>): void {
    e.outputInfo = { gcsOutputDirectory: result.outputDirectory };
    const stats: NonNullable<JobEntry['completionStats']> = {};
    if (result.successful > 0) stats.successfulCount = String(result.successful);
    if (result.failed > 0) stats.failedCount = String(result.failed);
    e.completionStats = stats;
  }

  function startCancelling(e: JobEntry): void {
    setState(e, 'JOB_STATE_CANCELLING');
    schedule(e, cancellingMs, () => void finishCancelling(e));
  }

  async function finishCancelling(e: JobEntry): Promise<void> {
    if (e.state !== 'JOB_STATE_CANCELLING') return;
    clearTimer(e);
    // Cancelling is best effort: output already written is kept and reported.
    const result = await e.processing;
    if (e.removed || closed || e.state !== 'JOB_STATE_CANCELLING') return;
    if (result?.kind === 'done') applyResult(e, result);
    e.error = { code: 1, message: 'CANCELED' };
    setState(e, 'JOB_STATE_CANCELLED');
  }

  async function advanceEntry(e: JobEntry): Promise<void> {
    switch (e.state) {
      case 'JOB_STATE_PENDING':
        clearTimer(e);
        startRunning(e);
        return;
      case 'JOB_STATE_RUNNING':
        await finishRunning(e);
        return;
      case 'JOB_STATE_CANCELLING':
        await finishCancelling(e);
        return;
      default:
        return;
    }
  }

  async function processInput(e: JobEntry): Promise<ProcessResult> {
    try {
      return await readAndPredict(e);
    } catch (err) {
      return { kind: 'error', code: 13, message: `Internal error: ${errorMessage(err)}` };
    }
  }

  async function readAndPredict(e: JobEntry): Promise<ProcessResult> {
    const lines: string[] = [];
    for (const uri of e.request.inputUris) {
      let data: Buffer;
      try {
        data = await blobs.read(uri);
      } catch (err) {
        const code = errorCode(err);
        if (code === 404) {
          return { kind: 'error', code: 5, message: `Input file not found: ${uri}.` };
        }
        if (code === 403) {
          return { kind: 'error', code: 7, message: `Permission denied reading ${uri}.` };
        }
        return {
          kind: 'error',
          code: 13,
          message: `Failed to read ${uri}: ${errorMessage(err)}`,
        };
      }
      lines.push(...splitLines(data));
    }
    if (lines.length === 0) {
      return {
        kind: 'error',
        code: 3,
        message: `The input is empty: ${e.request.inputUris.join(', ')}.`,
      };
    }
    const modelId = lastSegment(e.request.model);
    const rows = lines.map((line, i) =>
      e.request.anthropic
        ? anthropicRow(line, modelId, messageId(e.id, i))
        : geminiRow(line, modelId),
    );
    if (e.outcome?.outcome === 'PARTIALLY_SUCCEEDED') {
      const victim = rows.findLastIndex((r) => r.ok);
      const row = rows[victim];
      if (row) {
        const status = 'Internal error encountered (injected by the emulator).';
        const original = JSON.parse(row.line) as Json;
        const failedLine = e.request.anthropic
          ? { custom_id: original.custom_id, request: original.request, status }
          : { status, processed_time: original.processed_time, request: original.request };
        rows[victim] = { ok: false, line: JSON.stringify(failedLine) };
      }
    }
    const successful = rows.filter((r) => r.ok).length;
    const outputDirectory = `${e.request.outputUriPrefix.replace(/\/+$/, '')}/prediction-model-${e.createTime}`;
    try {
      await blobs.write(
        `${outputDirectory}/predictions.jsonl`,
        rows.map((r) => `${r.line}\n`).join(''),
        'application/jsonl',
      );
    } catch (err) {
      const code = errorCode(err) === 403 ? 7 : 13;
      return {
        kind: 'error',
        code,
        message: `Failed to write the output to ${outputDirectory}: ${errorMessage(err)}`,
      };
    }
    return { kind: 'done', successful, failed: rows.length - successful, outputDirectory };
  }

  function messageId(jobId: string, line: number): string {
    const digest = createHash('sha256').update(`${jobId}:${line}`).digest('base64url');
    return `msg_vrtx_${digest.replace(/[-_]/g, '').slice(0, 24)}`;
  }

  // --- the API operations

  /** The project number aliases every project id (one emulator, one project number). */
  const sameProject = (e: JobEntry, project: string): boolean =>
    project === projectNumber || e.project === project || e.project === projectNumber;

  function findEntry(project: string, location: string, id: string): JobEntry {
    if (!/^\d+$/.test(id)) {
      throw invalid(`Invalid BatchPredictionJob resource name: id "${id}" is not numeric.`);
    }
    const e = entries.get(id);
    if (!e || e.location !== location || !sameProject(e, project)) {
      throw new ApiError(
        404,
        `The BatchPredictionJob projects/${project}/locations/${location}/batchPredictionJobs/${id} does not exist.`,
      );
    }
    return e;
  }

  function createJob(project: string, location: string, body: unknown): JobEntry {
    const request = validateCreate(body, location);
    if (request.anthropic) {
      const running = [...entries.values()].filter(
        (e) => e.request.anthropic && sameProject(e, project) && !isTerminalState(e.state),
      ).length;
      if (running >= anthropicConcurrency) {
        throw new ApiError(
          429,
          `Quota exceeded for aiplatform.googleapis.com/anthropic_batch_prediction_jobs: at most ${anthropicConcurrency} concurrent Claude batch prediction jobs per project.`,
        );
      }
    }
    let id = numericId();
    while (entries.has(id)) id = numericId();
    const created = timestamp();
    const e: JobEntry = {
      id,
      project,
      location,
      seq: (seq += 1),
      createMicros: created.micros,
      request,
      state: 'JOB_STATE_PENDING',
      history: ['JOB_STATE_PENDING'],
      createTime: created.text,
      updateTime: created.text,
      removed: false,
    };
    const labelValues = Object.values(request.labels);
    const outcome = outcomeFaults.find(
      ({ fault }) =>
        (fault.match?.displayName === undefined ||
          fault.match.displayName === request.displayName) &&
        (fault.match?.labelValue === undefined || labelValues.includes(fault.match.labelValue)),
    );
    if (outcome) {
      e.outcome = outcome.fault;
      outcome.left -= 1;
      outcomeFaults = outcomeFaults.filter((o) => o.left > 0);
    }
    entries.set(id, e);
    schedule(e, pendingMs, () => startRunning(e));
    return e;
  }

  function listJobs(project: string, location: string, query: URLSearchParams): Json {
    const filter = query.get('filter') ?? '';
    const predicate = compileFilter(filter);
    const rawSize = query.get('pageSize');
    let pageSize = DEFAULT_PAGE_SIZE;
    if (rawSize !== null && rawSize !== '') {
      const n = Number(rawSize);
      if (!Number.isInteger(n) || n < 0) throw invalid(`Invalid pageSize "${rawSize}".`);
      pageSize = n === 0 ? DEFAULT_PAGE_SIZE : Math.min(n, MAX_PAGE_SIZE);
    }
    let before = Number.POSITIVE_INFINITY;
    const token = query.get('pageToken');
    if (token) {
      let decoded: unknown;
      try {
        decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      } catch {
        decoded = undefined;
      }
      if (!isObject(decoded) || typeof decoded.s !== 'number' || typeof decoded.f !== 'string') {
        throw invalid('Invalid page token.');
      }
      if (decoded.f !== filter) throw invalid('The page token does not match the filter.');
      before = decoded.s;
    }
    const matching = [...entries.values()]
      .filter((e) => e.location === location && sameProject(e, project) && e.seq < before)
      .sort((a, b) => b.seq - a.seq)
      .filter((e) =>
        predicate({
          state: e.state,
          displayName: e.request.displayName,
          createMicros: e.createMicros,
          labels: e.request.labels,
        }),
      );
    const page = matching.slice(0, pageSize);
    const answer: Json = {};
    if (page.length > 0) answer.batchPredictionJobs = page.map(render);
    const last = page.at(-1);
    if (matching.length > pageSize && last) {
      answer.nextPageToken = Buffer.from(JSON.stringify({ f: filter, s: last.seq })).toString(
        'base64url',
      );
    }
    return answer;
  }

  function cancelJob(e: JobEntry): Json {
    if (isTerminalState(e.state)) {
      throw new ApiError(
        400,
        `Cannot cancel BatchPredictionJob ${jobName(e)}: it is in state ${e.state}.`,
        'FAILED_PRECONDITION',
      );
    }
    if (e.state !== 'JOB_STATE_CANCELLING') {
      clearTimer(e);
      startCancelling(e);
    }
    return {};
  }

  function deleteJob(e: JobEntry): Json {
    if (!isTerminalState(e.state)) {
      throw new ApiError(
        400,
        `BatchPredictionJob ${jobName(e)} is in state ${e.state} and cannot be deleted. Cancel it first.`,
        'FAILED_PRECONDITION',
      );
    }
    e.removed = true;
    entries.delete(e.id);
    rejectWaiters(e.id, `job ${e.id} was deleted`);
    const now = timestamp().text;
    return {
      name: `projects/${projectNumber}/locations/${e.location}/operations/${numericId()}`,
      metadata: {
        '@type': 'type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata',
        genericMetadata: { createTime: now, updateTime: now },
      },
      done: true,
      response: { '@type': 'type.googleapis.com/google.protobuf.Empty' },
    };
  }

  // --- faults, reset

  function inject(input: VertexFault): void {
    const fault = parseVertexFault(input);
    if ('latencyMs' in fault) {
      latencyMs = fault.latencyMs;
    } else if ('refuseList' in fault) {
      listRefusal = fault.refuseList ? fault : undefined;
    } else if ('outcome' in fault) {
      outcomeFaults.push({ fault, left: fault.times ?? 1 });
    } else {
      requestFaults.push({ fault, left: fault.times ?? 1 });
    }
  }

  /** The first fault queued for `op`, used up unless it is a lost answer (see handleCreate). */
  function takeRequestFault(op: VertexOp): RequestFault | undefined {
    const slot = requestFaults.find((f) => f.fault.op === op);
    if (!slot) return undefined;
    if ('status' in slot.fault) {
      slot.left -= 1;
      requestFaults = requestFaults.filter((f) => f.left > 0);
    }
    return slot.fault;
  }

  function useLostAnswer(fault: RequestFault): void {
    const slot = requestFaults.find((f) => f.fault === fault);
    if (slot) slot.left -= 1;
    requestFaults = requestFaults.filter((f) => f.left > 0);
  }

  function reset(): void {
    for (const e of entries.values()) {
      clearTimer(e);
      e.removed = true;
      rejectWaiters(e.id, 'the emulator was reset');
    }
    entries.clear();
    requestFaults = [];
    outcomeFaults = [];
    latencyMs = 0;
    listRefusal = undefined;
    for (const op of Object.keys(requests) as VertexOp[]) requests[op] = 0;
    checkIdle();
  }

  // --- HTTP

  function send(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const text = `${JSON.stringify(body, null, 2)}\n`;
    res.writeHead(status, {
      'content-type': 'application/json; charset=UTF-8',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  function sendError(res: ServerResponse, err: ApiError): void {
    send(res, err.httpStatus, {
      error: { code: err.httpStatus, message: err.message, status: err.status },
    });
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new ApiError(413, 'Request payload too large.');
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw invalid(`Invalid JSON payload received. ${errorMessage(err)}`);
    }
  }

  async function delay(ms: number): Promise<void> {
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        latencyTimers.delete(timer);
        resolve();
      }, ms);
      latencyTimers.set(timer, resolve);
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      throw invalid('Malformed URL.');
    }
    const method = req.method ?? 'GET';

    if (path === '/' && method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('Ok');
      return;
    }
    if (path === '/emulator/v1/reset' && method === 'POST') {
      reset();
      send(res, 200, {});
      return;
    }
    if (path === '/emulator/v1/faults' && method === 'POST') {
      const body = await readJson(req);
      const faults = (Array.isArray(body) ? body : [body]).map(parseVertexFault);
      for (const fault of faults) inject(fault);
      send(res, 200, {});
      return;
    }
    if (path === '/emulator/v1/requests' && method === 'GET') {
      send(res, 200, requests);
      return;
    }

    const collection = JOBS_PATH.exec(path);
    const single = JOB_PATH.exec(path);
    const cancel = CANCEL_PATH.exec(path);
    let op: VertexOp;
    let match: RegExpExecArray;
    if (collection && (method === 'POST' || method === 'GET')) {
      op = method === 'POST' ? 'create' : 'list';
      match = collection;
    } else if (single && (method === 'GET' || method === 'DELETE')) {
      op = method === 'GET' ? 'get' : 'delete';
      match = single;
    } else if (cancel && method === 'POST') {
      op = 'cancel';
      match = cancel;
    } else {
      throw new ApiError(404, `The requested URL ${method} ${path} was not found.`);
    }
    const project = match[1] ?? '';
    const location = match[2] ?? '';
    const id = match[3] ?? '';

    requests[op] += 1;
    await delay(latencyMs);
    const body = op === 'create' || op === 'cancel' ? await readJson(req) : undefined;
    const fault = takeRequestFault(op);
    if (fault && 'status' in fault) {
      throw new ApiError(
        fault.status,
        fault.message ?? DEFAULT_FAULT_MESSAGES[fault.status] ?? 'Injected fault.',
      );
    }

    switch (op) {
      case 'create': {
        const e = createJob(project, location, body);
        if (fault && 'loseAnswer' in fault) {
          useLostAnswer(fault);
          throw new ApiError(503, 'The service is currently unavailable.');
        }
        send(res, 200, render(e));
        return;
      }
      case 'list':
        if (listRefusal && refusesList(listRefusal, url.searchParams.get('filter') ?? '')) {
          throw invalid(listRefusal.message ?? DEFAULT_FAULT_MESSAGES[400] ?? 'Invalid argument.');
        }
        send(res, 200, listJobs(project, location, url.searchParams));
        return;
      case 'get':
        send(res, 200, render(findEntry(project, location, id)));
        return;
      case 'cancel':
        if (!isObject(body)) throw invalid('The cancel request body must be an object.');
        send(res, 200, cancelJob(findEntry(project, location, id)));
        return;
      case 'delete':
        send(res, 200, deleteJob(findEntry(project, location, id)));
        return;
    }
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      sendError(
        res,
        err instanceof ApiError ? err : new ApiError(500, `Internal error: ${errorMessage(err)}`),
      );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('the emulator has no address');
  const host = `127.0.0.1:${address.port}`;

  function resolveEntry(name: string): JobEntry {
    const e = entries.get(lastSegment(name));
    if (!e) throw new Error(`no such job: ${name}`);
    return e;
  }

  return {
    host,
    url: `http://${host}`,
    requests,
    inject(fault) {
      inject(fault);
    },
    reset,
    jobs() {
      return [...entries.values()].sort((a, b) => a.seq - b.seq).map(render);
    },
    async advance(name) {
      const targets = name === undefined ? [...entries.values()] : [resolveEntry(name)];
      await Promise.all(targets.map(advanceEntry));
    },
    async settle() {
      while (!closed && !isIdle()) {
        await Promise.all([...entries.values()].map(advanceEntry));
      }
    },
    async whenIdle() {
      if (closed || isIdle()) return;
      await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    async waitForState(name, states) {
      const e = resolveEntry(name);
      const wanted = new Set(Array.isArray(states) ? states : [states]);
      return new Promise<VertexJobJson>((resolve, reject) => {
        const list = stateWaiters.get(e.id) ?? [];
        list.push({ states: wanted, resolve, reject });
        stateWaiters.set(e.id, list);
        notify(e);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const e of entries.values()) {
        clearTimer(e);
        rejectWaiters(e.id, 'the emulator was closed');
      }
      for (const [timer, resolve] of latencyTimers) {
        clearTimeout(timer);
        resolve();
      }
      latencyTimers.clear();
      // Nobody can make progress any more; let whoever waits for idleness go.
      for (const resolve of idleWaiters) resolve();
      idleWaiters = [];
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((err) => (err ? reject(err) : resolve())),
      );
    },
  };
}
