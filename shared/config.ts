/**
 * Configuration: every environment variable (README "Configuration"), validated once at cold start.
 * Handlers never read the environment themselves; they receive the frozen {@link Config}.
 */
import { z } from 'zod';
import { priceTableSchema, priceTableWith } from './core/pricing.js';

/** Log levels, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warning', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const REGION = /^[a-z]+(?:-[a-z0-9]+)+$|^global$/;
const HOST_PORT = /^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/;

const gcsPrefix = z
  .string()
  .regex(/^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?$/, 'must be gs://bucket[/prefix]')
  .transform((v) => v.replace(/\/+$/, ''));

const topic = z
  .string()
  .regex(
    /^(projects\/[a-z][a-z0-9-]{4,28}[a-z0-9]\/topics\/)?[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/,
    'must be a topic id or projects/P/topics/T',
  );

const emptyAsUndefined = (v: unknown): unknown => (v === '' ? undefined : v);

const optionalString = (schema: z.ZodString) => z.preprocess(emptyAsUndefined, schema.optional());

/** A comma-separated list (blanks dropped); empty or unset gives `[]`. */
const commaList = (item: z.ZodString) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter((x) => x !== '')
        : [],
    z.array(item),
  );

/**
 * The schema of the configuration, keyed by environment variable name. Its keys are the single list
 * of configuration names: Terraform sets exactly the first group (a test compares both).
 */
const deployedSchema = {
  /** Project id for Vertex AI, Firestore and Pub/Sub. */
  GOOGLE_CLOUD_PROJECT: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a project id'),
  /** Region of batch jobs; `global` uses the global endpoint host. */
  VERTEX_LOCATION: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(REGION, 'must be a region such as us-central1, or global')
      .default('us-central1'),
  ),
  /** Model for inputs that do not name one. */
  DEFAULT_MODEL: z.preprocess(
    emptyAsUndefined,
    z.string().min(1).default('publishers/google/models/gemini-2.5-flash'),
  ),
  /** Region for `publishers/anthropic/...` models. */
  ANTHROPIC_LOCATION: z.preprocess(
    emptyAsUndefined,
    z.string().regex(REGION, 'must be a region such as us-east5').default('us-east5'),
  ),
  /** `gs://bucket[/prefix]`; each job writes under `<prefix>/<jobId>/`. */
  OUTPUT_URI_PREFIX: gcsPrefix,
  /** Only objects whose name starts with it are inputs (empty: the whole bucket). */
  INPUT_PREFIX: z.preprocess((v) => (v === undefined ? '' : v), z.string()),
  /** Pub/Sub topic id, or `projects/P/topics/T`, for completion events. */
  COMPLETION_TOPIC: topic,
  /** Firestore collection of job records. */
  JOBS_COLLECTION: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,100}$/, 'must be a collection id (letters, digits, _ and -)')
      .default('batchJobs'),
  ),
  /** Events older than this are dropped with a log line. */
  MAX_EVENT_AGE_SECONDS: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int().positive('must be a positive whole number of seconds').default(86400),
  ),
  /** Running Claude batch jobs allowed at once (Vertex's default quota is 4); 0: no limit. */
  ANTHROPIC_MAX_CONCURRENT_JOBS: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int().min(0, 'must be 0 (no limit) or a positive whole number').default(4),
  ),
  /**
   * Ask Vertex to cancel a job not finished this many hours after it was created (paused time
   * counts); the outcome is announced when Vertex reports it. 0: off.
   */
  MAX_JOB_AGE_HOURS: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().min(0, 'must be 0 (off) or a positive number of hours').default(96),
  ),
  /** A queued input waiting longer than this is rejected with `CAPACITY.EXHAUSTED`. */
  MAX_QUEUE_HOURS: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().positive('must be a positive number of hours').default(72),
  ),
  /**
   * Models an input may name (comma-separated; short names accepted; an entry without `@version`
   * allows every version). Empty: DEFAULT_MODEL plus the short list of `DEFAULT_ALLOWED_MODELS`.
   * `*`: any model.
   */
  ALLOWED_MODELS: commaList(
    z.string().regex(/^[A-Za-z0-9*][A-Za-z0-9._@/*-]*$/, 'must be model names separated by commas'),
  ),
  /**
   * Regions an input may pick with its `location` metadata (comma-separated). Empty:
   * VERTEX_LOCATION, ANTHROPIC_LOCATION and `DEFAULT_ALLOWED_LOCATIONS`. `*`: any region.
   */
  ALLOWED_LOCATIONS: commaList(
    z.string().regex(/^(\*|global|[a-z]+(?:-[a-z0-9]+)+)$/, 'must be regions separated by commas'),
  ),
  /**
   * Where a Gemini request's `fileData.fileUri` may point (comma-separated `gs://` or `https://`
   * prefixes). Empty: the input's own bucket only. `*`: anywhere.
   */
  ALLOWED_FILE_URI_PREFIXES: commaList(
    z
      .string()
      .regex(
        /^(\*|gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?|https:\/\/\S+)$/,
        'must be gs:// or https:// prefixes separated by commas',
      ),
  ),
  /**
   * BigQuery datasets a manifest may read from and write to (comma-separated `project.dataset`;
   * README "Manifests"). Empty: none (manifests over Cloud Storage files still work). `*`: any.
   */
  ALLOWED_BIGQUERY_DATASETS: commaList(
    z
      .string()
      .regex(
        /^(\*|[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024})$/,
        'must be project.dataset names separated by commas',
      ),
  ),
  /**
   * Reject an input whose estimated cost (an upper bound, README "Results and cost") is above this
   * many US dollars, before anything is spent (`INPUT.OVER_BUDGET`). 0: no limit.
   */
  MAX_ESTIMATED_COST_USD: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().min(0, 'must be 0 (no limit) or a positive amount of US dollars').default(0),
  ),
  /**
   * Prices replacing or adding models of the built-in table (`shared/core/prices.json`): JSON of
   * the same shape, `{"date": "YYYY-MM-DD", "models": {"<model id>": {"input": …, "output": …}}}`.
   * Empty: the built-in table.
   */
  PRICE_TABLE: z.preprocess(
    (v) => {
      if (typeof v !== 'string' || v === '') return undefined;
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return v; // not JSON: refused by the schema below, with its message
      }
    },
    z
      .object(priceTableSchema.shape, {
        error: 'must be JSON: {"date": "YYYY-MM-DD", "models": {"<model id>": {"input": …}}}',
      })
      .optional()
      .transform(priceTableWith),
  ),
  /**
   * How many more times the rows of a job that failed for a transient reason (quota, internal,
   * unavailable, deadline) are sent again, as a new Vertex job over just those lines (README
   * "Failed rows"). 0: never.
   */
  RETRY_FAILED_ROWS: z.preprocess(
    emptyAsUndefined,
    z.coerce
      .number()
      .int()
      .min(0, 'must be 0 (never) or a small whole number of retries')
      .max(5, 'must be at most 5')
      .default(1),
  ),
  /** `debug`, `info`, `warning` or `error`. */
  LOG_LEVEL: z.preprocess(
    (v) => (typeof v === 'string' && v !== '' ? v.toLowerCase() : undefined),
    z.enum(LOG_LEVELS).default('info'),
  ),
} as const;

const emulatorSchema = {
  /** `http://host:port` of a Cloud Storage emulator (JSON API). */
  STORAGE_EMULATOR_HOST: optionalString(
    z.string().regex(/^https?:\/\/[^/\s]+\/?$/, 'must be http://host:port'),
  ),
  /** `host:port` of a Firestore emulator. */
  FIRESTORE_EMULATOR_HOST: optionalString(z.string().regex(HOST_PORT, 'must be host:port')),
  /** `host:port` of a Pub/Sub emulator. */
  PUBSUB_EMULATOR_HOST: optionalString(z.string().regex(HOST_PORT, 'must be host:port')),
  /** `host:port` or `http://host:port` of a BigQuery emulator (plain HTTP, production paths). */
  BIGQUERY_EMULATOR_HOST: optionalString(
    z.string().regex(/^(https?:\/\/)?[A-Za-z0-9.\-[\]:]+:\d{1,5}\/?$/, 'must be host:port'),
  ),
  /** `host:port` of a Vertex AI emulator (plain HTTP, production paths). */
  VERTEX_AI_EMULATOR_HOST: optionalString(z.string().regex(HOST_PORT, 'must be host:port')),
} as const;

/** The variables a deployment sets (README "Configuration"): Terraform sets exactly these names. */
export const CONFIG_VARIABLE_NAMES = Object.freeze(
  Object.keys(deployedSchema) as (keyof typeof deployedSchema)[],
);

/** The variables that point the clients at emulators and local endpoints (never set in Terraform). */
export const EMULATOR_VARIABLE_NAMES = Object.freeze(
  Object.keys(emulatorSchema) as (keyof typeof emulatorSchema)[],
);

const configSchema = z.object({ ...deployedSchema, ...emulatorSchema });

/** The validated configuration, keyed by environment variable name. */
export type Config = Readonly<z.infer<typeof configSchema>>;

/** A missing or malformed configuration: names every bad variable at once. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG.INVALID';
  /** `NAME: reason` for each bad variable. */
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/**
 * Validates the environment and returns a frozen configuration, or throws one {@link ConfigError}
 * that names every missing or malformed variable.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(configSchema.shape)) picked[key] = env[key];
  const result = configSchema.safeParse(picked);
  if (!result.success) {
    const problems = new Map<string, string>();
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? '(config)');
      if (problems.has(key)) continue;
      const missing = picked[key] === undefined || picked[key] === '';
      // Inside a structured value (PRICE_TABLE), say where: `models.gemini-2.5-flash.input`.
      const inner = issue.path.slice(1).map(String).join('.');
      const reason = missing ? 'is required' : inner ? `${inner}: ${issue.message}` : issue.message;
      problems.set(key, `${key}: ${reason}`);
    }
    throw new ConfigError([...problems.values()]);
  }
  return Object.freeze(result.data);
}
