/**
 * Terraform against the code: the functions' environment is exactly the code's configuration
 * names, each defaulted setting comes from the Terraform attribute of the same name whose default
 * is the code's own default, entry points are the registered targets, the Firestore index is the
 * poller's, and the poll's deadlines exceed its time budget. Names and defaults are read from
 * shared/, never copied here.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  CONFIG_VARIABLE_NAMES,
  ConfigError,
  loadConfig,
  type Config,
} from '../../shared/config.js';
import {
  FUNCTION_NODE_OPTIONS,
  FUNCTION_TARGETS,
  POLL_TIME_BUDGET_SECONDS,
} from '../../shared/function-targets.js';
import { DIGEST_TIME_LIMIT_SECONDS } from '../../shared/core/transitions.js';
import { OUTSTANDING_JOBS_INDEX } from '../../shared/adapters/job-index.js';
import {
  addressesIn,
  astOf,
  environmentOf,
  block,
  defaultOf,
  describeChecks,
  functionFor,
  functionsOf,
  isObject,
  objectAttributes,
  refs,
  replaceIn,
  sameSet,
  str,
  type Ast,
  type Check,
  type Json,
  type JsonObject,
  type Mutation,
  type TfModule,
} from './tf-module.js';

/** Settings the code cannot run without, and the resource (or input) Terraform takes each from. */
const FROM_RESOURCES: Record<string, string> = {
  GOOGLE_CLOUD_PROJECT: 'var.project_id',
  OUTPUT_URI_PREFIX: 'google_storage_bucket.output',
  COMPLETION_TOPIC: 'google_pubsub_topic.completion',
};

/**
 * Settings made from a Terraform variable of their own rather than copied from an attribute: the
 * setting is `join(",", keys(<local>))`, that local is made of the variable, and the variable's
 * default makes the setting read as the code's default. ALLOWED_BIGQUERY_DATASETS lists the
 * datasets that iam.tf grants access to, from the same local (bigquery.test.ts evaluates it).
 */
const FROM_LISTS: Record<string, { local: string; variable: string }> = {
  ALLOWED_BIGQUERY_DATASETS: {
    local: 'local.bigquery_datasets',
    variable: 'var.bigquery_datasets',
  },
};

/** The names loadConfig reports as required when the environment is empty. */
function requiredByCode(): string[] {
  try {
    loadConfig({});
  } catch (err) {
    if (err instanceof ConfigError) {
      return err.problems.filter((p) => p.endsWith(': is required')).map((p) => p.split(':')[0]!);
    }
    throw err;
  }
  throw new Error('loadConfig accepted an empty environment');
}

/** The code's defaults: the configuration with only the required settings given. */
const REQUIRED_ENV = {
  GOOGLE_CLOUD_PROJECT: 'my-project-id',
  OUTPUT_URI_PREFIX: 'gs://my-output-bucket',
  COMPLETION_TOPIC: 'completions',
};
const CODE_DEFAULTS: Config = loadConfig(REQUIRED_ENV);

/**
 * True when the code reads `value` of variable `name` as it reads the variable unset: the same
 * default (an empty PRICE_TABLE is the built-in table, as an unset one).
 */
function readsAsDefault(name: keyof Config, value: string): boolean {
  try {
    const read = loadConfig({ ...REQUIRED_ENV, [name]: value })[name];
    return isDeepStrictEqual(read, CODE_DEFAULTS[name]);
  } catch {
    return false;
  }
}

/** A value as an environment variable: lists comma-separated, like the code reads them. */
function asEnv(v: unknown): string {
  return Array.isArray(v) ? v.map(String).join(',') : String(v);
}

/** A function's Node options in the code (FUNCTION_NODE_OPTIONS), by its entry point. */
function nodeOptionsOf(entryPoint: string | undefined): string | undefined {
  if (entryPoint === FUNCTION_TARGETS.submit) return FUNCTION_NODE_OPTIONS.submit;
  if (entryPoint === FUNCTION_TARGETS.poll) return FUNCTION_NODE_OPTIONS.poll;
  return undefined;
}

/**
 * Each function's environment is exactly CONFIG_VARIABLE_NAMES plus LOG_EXECUTION_ID=true, and
 * NODE_OPTIONS where the code's FUNCTION_NODE_OPTIONS gives the function some (the options the
 * benchmarks measure it with); apart from NODE_OPTIONS, both functions get the same settings.
 */
const checkEnvironmentNames: Check = async (m) => {
  const problems: string[] = [];
  const shared = new Set<string>();
  for (const fn of functionsOf(m)) {
    const env = await environmentOf(m, fn);
    if (env === undefined) {
      problems.push(
        `${fn.address}: environment_variables must be a map, one local map or a merge of local maps`,
      );
      continue;
    }
    const options = nodeOptionsOf(fn.entryPoint);
    const expected = [
      ...CONFIG_VARIABLE_NAMES,
      'LOG_EXECUTION_ID',
      ...(options ? ['NODE_OPTIONS'] : []),
    ];
    problems.push(...sameSet(`${fn.address} environment`, Object.keys(env), expected));
    if (env.LOG_EXECUTION_ID !== 'true')
      problems.push(`${fn.address}: LOG_EXECUTION_ID must be "true"`);
    if (options && env.NODE_OPTIONS !== options)
      problems.push(`${fn.address}: NODE_OPTIONS must be "${options}"`);
    const { NODE_OPTIONS: _, ...settings } = env;
    shared.add(JSON.stringify(settings));
  }
  if (shared.size > 1) problems.push('the two functions do not share one environment map');
  return problems;
};

/**
 * Required settings come from the module's own resources; every other one from the attribute
 * named like it (MAX_QUEUE_HOURS ← var.<object>.max_queue_hours) whose default is the code's, and
 * a list attribute is joined with commas.
 */
const checkEnvironmentSources: Check = async (m) => {
  const fn = functionsOf(m)[0];
  const env = fn === undefined ? undefined : await environmentOf(m, fn);
  if (env === undefined) return ['no environment map'];
  const problems = sameSet(
    'settings the code requires',
    requiredByCode(),
    Object.keys(FROM_RESOURCES),
  );
  for (const [name, value] of Object.entries(env)) {
    if (name === 'LOG_EXECUTION_ID' || name === 'NODE_OPTIONS') continue;
    const source = FROM_RESOURCES[name];
    if (source !== undefined) {
      if (!(await addressesIn(value)).includes(source))
        problems.push(`${name} must come from ${source}`);
      // The code reads OUTPUT_URI_PREFIX as gs://bucket[/prefix].
      if (name === 'OUTPUT_URI_PREFIX' && !str(value).startsWith('gs://'))
        problems.push(`${name} must start with gs://`);
      continue;
    }
    const list = FROM_LISTS[name];
    if (list !== undefined) {
      problems.push(...(await fromList(m, name, value, list)));
      continue;
    }
    const found = await refs(value);
    const ref = found.find((r) => r.split('.').at(-1) === name.toLowerCase());
    if (found.length !== 1 || ref === undefined || !/^var\.\w+\.\w+$/.test(ref)) {
      problems.push(
        `${name} must be set from one attribute var.<object>.${name.toLowerCase()} (refers to ${found.join(', ') || 'nothing'})`,
      );
      continue;
    }
    const [, variable, attr] = ref.split('.') as [string, string, string];
    const attribute = (await objectAttributes(m.variable[variable]))?.get(attr);
    const tfDefault = await defaultOf(m, ref);
    if (attribute === undefined || tfDefault === undefined) {
      problems.push(`${name}: ${ref} is not a declared attribute`);
      continue;
    }
    const codeDefault = asEnv(CODE_DEFAULTS[name as keyof Config]);
    if (!readsAsDefault(name as keyof Config, asEnv(tfDefault))) {
      problems.push(
        `${name}: Terraform's default ${JSON.stringify(asEnv(tfDefault))} is not the code's ${JSON.stringify(codeDefault)}`,
      );
    }
    if (attribute.type.startsWith('list(')) {
      const ast = await astOf(value);
      const [separator, list] = ast?.type === 'function' ? ast.children : [];
      const joined =
        ast?.type === 'function' &&
        ast.meta.name === 'join' &&
        separator?.meta.value === '","' &&
        list?.meta.value === ref;
      if (!joined) problems.push(`${name}: a list must be set as join(",", ${ref})`);
    }
  }
  return problems;
};

/** A FROM_LISTS setting: `join(",", keys(<local>))`, the local made of the variable, its default. */
async function fromList(
  m: TfModule,
  name: string,
  value: Json,
  { local, variable }: { local: string; variable: string },
): Promise<string[]> {
  const problems: string[] = [];
  const ast = await astOf(value);
  const [separator, list] = ast?.type === 'function' ? ast.children : [];
  const joined =
    ast?.type === 'function' &&
    ast.meta.name === 'join' &&
    separator?.meta.value === '","' &&
    list?.meta.value === `keys(${local})`;
  if (!joined) problems.push(`${name} must be set as join(",", keys(${local}))`);
  const made = await refs(m.locals[local.replace(/^local\./, '')]);
  if (!made.includes(variable)) problems.push(`${local} must be made of ${variable}`);
  const fallback = await defaultOf(m, variable);
  if (!Array.isArray(fallback) || fallback.length > 0) {
    problems.push(`${variable} must default to [] (got ${JSON.stringify(fallback ?? null)})`);
  } else if (!readsAsDefault(name as keyof Config, '')) {
    problems.push(`${name}: an empty list is not the code's default`);
  }
  return problems;
}

/** Each entry point is a registered target, and each target is deployed exactly once. */
const checkEntryPoints: Check = async (m) => {
  const targets: readonly string[] = Object.values(FUNCTION_TARGETS);
  const deployed = functionsOf(m).map((f) => f.entryPoint);
  return [
    ...deployed
      .filter((t) => !targets.includes(t))
      .map((t) => `entry point ${t} is not a registered target`),
    ...targets
      .filter((t) => deployed.filter((d) => d === t).length !== 1)
      .map((t) => `target ${t} must be deployed once`),
  ];
};

/** The poller's composite index, on the collection the functions are told to use. */
const checkIndex: Check = async (m) => {
  const fn = functionsOf(m)[0];
  const env = fn === undefined ? undefined : await environmentOf(m, fn);
  const collection = JSON.stringify(await refs(env?.JOBS_COLLECTION));
  const expected = JSON.stringify(OUTSTANDING_JOBS_INDEX.fields.map((f) => [f.fieldPath, f.order]));
  const indexes = Object.values(m.resource.google_firestore_index ?? {});
  let matches = 0;
  for (const index of indexes) {
    const fields = (Array.isArray(index.fields) ? index.fields : []).filter(isObject);
    if (
      index.query_scope === OUTSTANDING_JOBS_INDEX.queryScope &&
      JSON.stringify(fields.map((f) => [f.field_path, f.order])) === expected &&
      JSON.stringify(await refs(index.collection)) === collection
    ) {
      matches += 1;
    }
  }
  return matches === 1
    ? []
    : [`expected one index ${expected} on the JOBS_COLLECTION collection, found ${matches}`];
};

/** Every `lhs > n` / `lhs >= n` bound in a validation condition, on the given path. */
async function lowerBounds(
  condition: Json | undefined,
  lhs: string,
): Promise<{ n: number; strict: boolean }[]> {
  const bounds: { n: number; strict: boolean }[] = [];
  const visit = (node: Ast): void => {
    if (node.type === 'binaryOp' && node.meta.lhsExpression.trim() === lhs) {
      const strict = node.meta.operator === 'greaterThan';
      if (strict || node.meta.operator === 'greaterThanOrEqual') {
        bounds.push({ n: Number(node.meta.rhsExpression), strict });
      }
    }
    node.children.forEach(visit);
  };
  const ast = await astOf(condition);
  if (ast) visit(ast);
  return bounds;
}

/** All validation conditions of a variable. */
function validations(variable: JsonObject | undefined): Json[] {
  const v = variable?.validation;
  return (Array.isArray(v) ? v : [v]).filter(isObject).map((x) => x.condition ?? null);
}

/** A deadline set from one variable: its default exceeds the budget, and its validation refuses it. */
async function exceedsBudget(
  m: TfModule,
  what: string,
  raw: Json | undefined,
): Promise<[number | undefined, string[]]> {
  // A run starts no new work after its budget, but a digest started just before may run its time.
  const budget = POLL_TIME_BUDGET_SECONDS + DIGEST_TIME_LIMIT_SECONDS;
  const [ref, ...others] = await refs(raw);
  const value = ref === undefined ? undefined : await defaultOf(m, ref);
  if (ref === undefined || others.length > 0 || typeof value !== 'number') {
    return [undefined, [`${what} must be set from one variable with a default`]];
  }
  const problems =
    value > budget ? [] : [`${what}: default ${value} s must exceed the budget (${budget} s)`];
  const conditions = validations(m.variable[ref.split('.')[1] ?? '']);
  const bounds = (await Promise.all(conditions.map((c) => lowerBounds(c, ref)))).flat();
  if (!bounds.some((b) => (b.strict ? b.n >= budget : b.n > budget))) {
    problems.push(`${what}: the validation of ${ref} must refuse ${budget} s and less`);
  }
  return [value, problems];
}

/**
 * The poll's timeout and Cloud Scheduler's attempt deadline both exceed POLL_TIME_BUDGET_SECONDS
 * plus DIGEST_TIME_LIMIT_SECONDS.
 */
const checkPollBudget: Check = async (m) => {
  const poll = functionFor(m, FUNCTION_TARGETS.poll);
  const job = Object.values(m.resource.google_cloud_scheduler_job ?? {})[0];
  const [timeout, a] = await exceedsBudget(
    m,
    'poll timeout',
    block(poll?.body.service_config)?.timeout_seconds,
  );
  const [deadline, b] = await exceedsBudget(m, 'scheduler attempt_deadline', job?.attempt_deadline);
  const order =
    timeout !== undefined && deadline !== undefined && deadline < timeout
      ? [
          `the scheduler's attempt deadline (${deadline} s) is shorter than the poll timeout (${timeout} s)`,
        ]
      : [];
  return [...a, ...b, ...order];
};

const CHECKS = {
  environmentNames: checkEnvironmentNames,
  environmentSources: checkEnvironmentSources,
  entryPoints: checkEntryPoints,
  index: checkIndex,
  pollBudget: checkPollBudget,
} satisfies Record<string, Check>;

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: 'an environment variable renamed',
    check: 'environmentNames',
    edit: replaceIn('locals.tf', 'MAX_QUEUE_HOURS     ', 'MAX_QUEUE_HOUR      '),
    report: /missing MAX_QUEUE_HOURS/,
  },
  {
    what: 'Node options other than those measured',
    check: 'environmentNames',
    edit: replaceIn(
      'locals.tf',
      JSON.stringify(FUNCTION_NODE_OPTIONS.submit),
      '"--max-old-space-size=64"',
    ),
    report: new RegExp(`NODE_OPTIONS must be "${FUNCTION_NODE_OPTIONS.submit}"`),
  },
  {
    what: 'the poll function given the Node options measured for submit only',
    check: 'environmentNames',
    edit: replaceIn(
      'functions.tf',
      'environment_variables          = local.function_environment',
      'environment_variables          = merge(local.function_environment, local.submit_runtime_environment)',
    ),
    report: /google_cloudfunctions2_function\.poll environment: unexpected NODE_OPTIONS/,
  },
  {
    what: 'a default that is not the code’s',
    check: 'environmentSources',
    edit: replaceIn('variables.tf', 'optional(number, 96)', 'optional(number, 0)'),
    report: /MAX_JOB_AGE_HOURS: Terraform's default "0" is not the code's "96"/,
  },
  {
    what: 'a list not joined',
    check: 'environmentSources',
    edit: replaceIn(
      'locals.tf',
      'join(",", var.pipeline.allowed_models)',
      'tostring(var.pipeline.allowed_models)',
    ),
    report: /ALLOWED_MODELS: a list must be set as join/,
  },
  {
    what: 'the BigQuery datasets joined with another separator',
    check: 'environmentSources',
    edit: replaceIn(
      'locals.tf',
      'join(",", keys(local.bigquery_datasets))',
      'join(";", keys(local.bigquery_datasets))',
    ),
    report:
      /ALLOWED_BIGQUERY_DATASETS must be set as join\(",", keys\(local\.bigquery_datasets\)\)/,
  },
  {
    what: 'the BigQuery datasets defaulting to one dataset',
    check: 'environmentSources',
    edit: replaceIn(
      'variables.tf',
      '  default     = []\n  nullable    = false\n\n  # Terraform',
      '  default     = [{ dataset = "results" }]\n  nullable    = false\n\n  # Terraform',
    ),
    report: /var\.bigquery_datasets must default to \[\]/,
  },
  {
    what: 'a validation that admits a poll timeout below the budget',
    check: 'pollBudget',
    edit: replaceIn('variables.tf', 'timeout_seconds > 270', 'timeout_seconds >= 60'),
    report: /validation of var\.poll_function\.timeout_seconds must refuse/,
  },
];

describeChecks('terraform: parity with the code', CHECKS, MUTATIONS);
