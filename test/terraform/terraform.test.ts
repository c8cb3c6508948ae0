/**
 * Static tests of the Terraform module in terraform/. Nothing here reaches Google Cloud: the module
 * is parsed with @cdktf/hcl2json into one merged model, and each rule is a pure check
 * `(model) => problems`. Every check must find no problem in the real module, and must find the
 * mistake it exists for in a mutated copy of the model (one mutation test per mistake), so that no
 * check can pass by not looking.
 *
 * The code is the source of truth for names: configuration variables, function targets, the poll
 * time budget and the poller's index are imported from shared/, never copied here.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getReferencesInExpression, parse } from '@cdktf/hcl2json';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLE_NAMES, EMULATOR_VARIABLE_NAMES } from '../../shared/config.js';
import { FUNCTION_TARGETS, POLL_TIME_BUDGET_SECONDS } from '../../shared/function-targets.js';
import { OUTSTANDING_JOBS_INDEX } from '../../shared/job-index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TF_DIR = path.join(ROOT, 'terraform');

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

/** Every .tf file's top-level blocks merged, keyed the way Terraform addresses them. */
interface TfModule {
  terraform: JsonObject[];
  provider: Record<string, JsonObject[]>;
  variable: Record<string, JsonObject>;
  locals: JsonObject;
  resource: Record<string, Record<string, JsonObject>>;
  data: Record<string, Record<string, JsonObject>>;
  output: Record<string, JsonObject>;
  module: Record<string, JsonObject>;
  /** File name → the addresses it declares (`var.x`, `google_x.y`, `data.t.n`, `terraform`, …). */
  files: Record<string, string[]>;
  /** Declared twice, or unknown top-level blocks: Terraform would refuse the module. */
  structure: string[];
}

type Check = (m: TfModule) => string[];

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** hcl2json's answer is untyped: prove it is plain JSON before anything reads it. */
function toJson(v: unknown, where: string): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') {
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toJson(x, `${where}[${i}]`));
  if (typeof v === 'object') {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJson(x, `${where}.${k}`);
    return out;
  }
  throw new Error(`${where}: not JSON (${typeof v})`);
}

/** A block value as hcl2json writes it (a list of bodies), or one body, as a list of bodies. */
function bodies(v: Json | undefined): JsonObject[] {
  if (Array.isArray(v)) return v.filter(isObject);
  return isObject(v) ? [v] : [];
}

/** The first body of a nested block (`service_config`, `event_trigger`, …). */
function block(v: Json | undefined): JsonObject | undefined {
  return bodies(v)[0];
}

/** A value as text for messages and patterns: strings as they are, anything else as JSON. */
function str(v: Json | undefined): string {
  return typeof v === 'string' ? v : JSON.stringify(v ?? null);
}

function emptyModule(): TfModule {
  return {
    terraform: [],
    provider: {},
    variable: {},
    locals: {},
    resource: {},
    data: {},
    output: {},
    module: {},
    files: {},
    structure: [],
  };
}

function mergeFile(m: TfModule, file: string, json: JsonObject): void {
  const declared: string[] = (m.files[file] = []);
  const declare = <T>(into: Record<string, T>, name: string, address: string, value: T): void => {
    if (name in into) m.structure.push(`${file}: ${address} is declared more than once`);
    into[name] = value;
    declared.push(address);
  };
  for (const [kind, value] of Object.entries(json)) {
    if (kind === 'terraform') {
      m.terraform.push(...bodies(value));
      declared.push('terraform');
    } else if (kind === 'locals') {
      for (const body of bodies(value)) {
        for (const [name, v] of Object.entries(body)) declare(m.locals, name, `local.${name}`, v);
      }
    } else if (kind === 'provider' && isObject(value)) {
      for (const [name, v] of Object.entries(value)) {
        (m.provider[name] ??= []).push(...bodies(v));
        declared.push(`provider.${name}`);
      }
    } else if ((kind === 'variable' || kind === 'output' || kind === 'module') && isObject(value)) {
      const prefix = kind === 'variable' ? 'var' : kind;
      for (const [name, v] of Object.entries(value)) {
        for (const body of bodies(v)) declare(m[kind], name, `${prefix}.${name}`, body);
      }
    } else if ((kind === 'resource' || kind === 'data') && isObject(value)) {
      for (const [type, named] of Object.entries(value)) {
        if (!isObject(named)) continue;
        const into = (m[kind][type] ??= {});
        for (const [name, v] of Object.entries(named)) {
          const address = kind === 'data' ? `data.${type}.${name}` : `${type}.${name}`;
          for (const body of bodies(v)) declare(into, name, address, body);
        }
      }
    } else {
      m.structure.push(`${file}: unexpected top-level block ${kind}`);
    }
  }
}

async function parseFile(file: string): Promise<JsonObject> {
  const raw: unknown = await parse(file, readFileSync(path.join(TF_DIR, file), 'utf8'));
  const json = toJson(raw, file);
  if (!isObject(json)) throw new Error(`${file}: hcl2json did not answer an object`);
  return json;
}

function tfFiles(): string[] {
  return readdirSync(TF_DIR)
    .filter((f) => f.endsWith('.tf'))
    .sort();
}

async function loadModule(): Promise<TfModule> {
  const m = emptyModule();
  for (const file of tfFiles()) mergeFile(m, file, await parseFile(file));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Expressions: references, without evaluating anything
// ---------------------------------------------------------------------------------------------

/** Index just past the string literal that opens at `start` (a `"`), nested templates included. */
function skipString(s: string, start: number): number {
  let k = start + 1;
  while (k < s.length) {
    if (s[k] === '\\') k += 2;
    else if (s.startsWith('${', k) || s.startsWith('%{', k)) k = closingBrace(s, k + 2) + 1;
    else if (s[k] === '"') return k + 1;
    else k += 1;
  }
  return s.length;
}

/** Index of the `}` that closes an expression starting at `start`. */
function closingBrace(s: string, start: number): number {
  let depth = 0;
  let k = start;
  while (k < s.length) {
    const c = s[k];
    if (c === '"') {
      k = skipString(s, k);
      continue;
    }
    if (c === '{') depth += 1;
    if (c === '}') {
      if (depth === 0) return k;
      depth -= 1;
    }
    k += 1;
  }
  return s.length;
}

/** The expressions interpolated in a template (`${…}`, `%{…}`; not the `$${` escape). */
function interpolations(template: string): string[] {
  const out: string[] = [];
  let k = 0;
  while (k < template.length) {
    if (template.startsWith('$${', k) || template.startsWith('%%{', k)) k += 3;
    else if (template.startsWith('${', k) || template.startsWith('%{', k)) {
      const end = closingBrace(template, k + 2);
      out.push(template.slice(k + 2, end));
      k = end + 1;
    } else k += 1;
  }
  return out;
}

const TRAVERSAL =
  /(?<![\w.\-\]])[A-Za-z_][\w-]*(?:\s*\[[\s\d*]*\]|\s*\.\s*(?:[A-Za-z_*][\w-]*|\d+))*/g;

/** Traversals (`var.x`, `google_x.y.attr[0].z`, …) in one expression, string literals excluded. */
function traversalsInExpression(expr: string): string[] {
  let code = '';
  const nested: string[] = [];
  let k = 0;
  while (k < expr.length) {
    if (expr[k] === '"') {
      const end = skipString(expr, k);
      nested.push(...interpolations(expr.slice(k + 1, end - 1)));
      code += ' ';
      k = end;
    } else {
      code += expr[k];
      k += 1;
    }
  }
  const found = [...code.matchAll(TRAVERSAL)].map((m) => m[0].replace(/\s+/g, ''));
  return [...found, ...nested.flatMap(traversalsInExpression)];
}

/** Every traversal a template string refers to. */
function traversals(template: string): string[] {
  return interpolations(template).flatMap(traversalsInExpression);
}

/** Names bound by `for` expressions in a template: they are not declarations. */
function forVariables(template: string): string[] {
  return [...template.matchAll(/\bfor\s+([A-Za-z_][\w-]*)(?:\s*,\s*([A-Za-z_][\w-]*))?\s+in\s/g)]
    .flatMap((m) => [m[1], m[2]])
    .filter((x): x is string => x !== undefined);
}

const BUILTIN_ROOTS = new Set(['each', 'count', 'self', 'path', 'terraform']);

/**
 * The declaration a traversal needs (`var.x`, `local.x`, `data.t.n`, `t.n`, `module.m`), or
 * undefined when it names none (iterators, `each`, `path`, …).
 */
function addressOf(
  traversal: string,
  localNames: ReadonlySet<string> = new Set(),
): string | undefined {
  const parts = traversal
    .replace(/\[[^\]]*\]/g, '')
    .split('.')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !p.startsWith('"'));
  const [root, a, b] = parts;
  if (root === undefined || a === undefined) return undefined;
  if (BUILTIN_ROOTS.has(root) || localNames.has(root)) return undefined;
  if (root === 'var' || root === 'local' || root === 'module') return `${root}.${a}`;
  if (root === 'data') return b === undefined ? undefined : `data.${a}.${b}`;
  return root.includes('_') ? `${root}.${a}` : undefined;
}

/** The single traversal an attribute is set to (`x = google_y.z.attr`), or undefined. */
function onlyRef(v: Json | undefined): string | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^\$\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+|\[[^\]]*\])*)\s*\}$/.exec(v);
  return m?.[1];
}

/** The declarations a value refers to. */
function addressesIn(v: Json | undefined): string[] {
  return typeof v === 'string'
    ? traversals(v)
        .map((t) => addressOf(t))
        .filter((a): a is string => a !== undefined)
    : [];
}

function walkStrings(v: Json, where: string, visit: (s: string, where: string) => void): void {
  if (typeof v === 'string') visit(v, where);
  else if (Array.isArray(v)) v.forEach((x, i) => walkStrings(x, `${where}[${i}]`, visit));
  else if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) walkStrings(x, `${where}.${k}`, visit);
  }
}

/** Every declaration with its address: the places expressions live. */
function declarations(m: TfModule): [string, Json][] {
  const out: [string, Json][] = [];
  for (const [n, b] of Object.entries(m.variable)) out.push([`var.${n}`, b]);
  for (const [n, v] of Object.entries(m.locals)) out.push([`local.${n}`, v]);
  for (const [t, named] of Object.entries(m.resource)) {
    for (const [n, b] of Object.entries(named)) out.push([`${t}.${n}`, b]);
  }
  for (const [t, named] of Object.entries(m.data)) {
    for (const [n, b] of Object.entries(named)) out.push([`data.${t}.${n}`, b]);
  }
  for (const [n, b] of Object.entries(m.output)) out.push([`output.${n}`, b]);
  for (const [n, b] of Object.entries(m.module)) out.push([`module.${n}`, b]);
  for (const [n, b] of Object.entries(m.provider)) out.push([`provider.${n}`, b]);
  out.push(['terraform', m.terraform]);
  return out;
}

/** Names of `dynamic` block iterators anywhere in the module (`lifecycle_rule.value`, …). */
function iteratorNames(m: TfModule): Set<string> {
  const names = new Set<string>();
  const visit = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (isObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'dynamic' && isObject(x)) {
          for (const [label, d] of Object.entries(x)) {
            names.add(label);
            for (const body of bodies(d))
              if (typeof body.iterator === 'string') names.add(body.iterator);
          }
        }
        visit(x);
      }
    }
  };
  for (const [, v] of declarations(m)) visit(v);
  return names;
}

function declaredAddresses(m: TfModule): Set<string> {
  const out = new Set<string>();
  for (const [address] of declarations(m)) out.add(address);
  return out;
}

/** Resolves a string to a literal: itself, or a variable's default, or a local, followed through. */
function resolveString(m: TfModule, v: Json | undefined, depth = 0): string | undefined {
  if (typeof v !== 'string' || depth > 5) return undefined;
  if (!v.includes('${')) return v;
  const ref = onlyRef(v);
  if (ref === undefined) return undefined;
  const value = lookup(m, ref);
  return typeof value === 'string' ? resolveString(m, value, depth + 1) : undefined;
}

/** A number literal or a variable's default. */
function resolveNumber(m: TfModule, v: Json | undefined): number | undefined {
  if (typeof v === 'number') return v;
  const ref = onlyRef(v);
  const value = ref === undefined ? undefined : lookup(m, ref);
  return typeof value === 'number' ? value : undefined;
}

/** `var.x` → its default; `local.a.b` → that value in the locals. */
function lookup(m: TfModule, ref: string): Json | undefined {
  const [root, name, ...rest] = ref.split('.');
  if (name === undefined) return undefined;
  let value: Json | undefined =
    root === 'var' ? m.variable[name]?.default : root === 'local' ? m.locals[name] : undefined;
  for (const key of rest) value = isObject(value) ? value[key] : undefined;
  return value;
}

// ---------------------------------------------------------------------------------------------
// Conventions of this module (terraform/iam.tf, service-accounts.tf, buckets.tf, …)
// ---------------------------------------------------------------------------------------------

const SA = {
  submit: 'google_service_account.submit',
  poll: 'google_service_account.poll',
  trigger: 'google_service_account.trigger',
  scheduler: 'google_service_account.scheduler',
} as const;
const GCS_AGENT = 'data.google_storage_project_service_account.gcs';
const VERTEX_AGENT = 'google_project_service_identity.vertex_ai';
const BUCKET = {
  input: 'google_storage_bucket.input',
  output: 'google_storage_bucket.output',
  source: 'google_storage_bucket.source',
} as const;
const TOPIC = 'google_pubsub_topic.completion';
const FUNCTION_TYPE = 'google_cloudfunctions2_function';
const RUN_INVOKER = 'roles/run.invoker';

/** Node.js runtimes Cloud Functions no longer deploys (FACTS.md "Runtimes"). */
const DECOMMISSIONED_RUNTIMES = [6, 8, 10, 12, 14, 16, 18, 20].map((n) => `nodejs${n}`);

const REQUIRED_APIS = [
  'aiplatform',
  'artifactregistry',
  'cloudbuild',
  'cloudfunctions',
  'cloudscheduler',
  'eventarc',
  'firestore',
  'iam',
  'logging',
  'pubsub',
  'run',
  'storage',
].map((s) => `${s}.googleapis.com`);

/** Resource types that take labels: each must carry var.labels. */
const LABELABLE = [
  'google_storage_bucket',
  'google_pubsub_topic',
  'google_pubsub_subscription',
  'google_cloudfunctions2_function',
];

/** One file per entity (STYLE.md): where each kind of declaration lives. */
const LAYOUT: [RegExp, string][] = [
  [/^terraform$/, 'versions.tf'],
  [/^provider\./, 'main.tf'],
  [/^var\./, 'variables.tf'],
  [/^output\./, 'outputs.tf'],
  [/^google_project_service\./, 'apis.tf'],
  [/^google_storage_bucket\./, 'buckets.tf'],
  [/^google_firestore_/, 'firestore.tf'],
  [/^google_pubsub_(topic|subscription)\./, 'pubsub.tf'],
  [
    /^(google_service_account|google_project_service_identity|data\.google_storage_project_service_account)\./,
    'service-accounts.tf',
  ],
  [/_iam_(member|binding|policy)\./, 'iam.tf'],
  [/^(data\.archive_file|google_storage_bucket_object)\./, 'source.tf'],
  [/^google_cloudfunctions2_function\./, 'functions.tf'],
  [/^google_eventarc_trigger\./, 'eventarc.tf'],
  [/^google_cloud_scheduler_job\./, 'scheduler.tf'],
];

interface FunctionInfo {
  address: string;
  body: JsonObject;
  target: string | undefined;
}

function functionsOf(m: TfModule): FunctionInfo[] {
  return Object.entries(m.resource[FUNCTION_TYPE] ?? {}).map(([name, body]) => ({
    address: `${FUNCTION_TYPE}.${name}`,
    body,
    target: resolveString(m, block(body.build_config)?.entry_point),
  }));
}

function functionFor(m: TfModule, target: string): FunctionInfo | undefined {
  return functionsOf(m).find((f) => f.target === target);
}

/** The resource addressed by a value such as `${google_x.y.email}`, or the literal itself. */
function principalOf(member: Json | undefined): string {
  if (typeof member !== 'string') return str(member);
  const [address] = addressesIn(member);
  return address ?? member;
}

function resourcesOf(m: TfModule, type: string): [string, JsonObject][] {
  return Object.entries(m.resource[type] ?? {}).map(([n, b]) => [`${type}.${n}`, b]);
}

function allResources(m: TfModule): [string, string, JsonObject][] {
  return Object.entries(m.resource).flatMap(([type, named]) =>
    Object.entries(named).map(([n, b]): [string, string, JsonObject] => [type, `${type}.${n}`, b]),
  );
}

function sameSet(what: string, actual: readonly string[], expected: readonly string[]): string[] {
  const a = new Set(actual);
  const e = new Set(expected);
  return [
    ...[...e].filter((x) => !a.has(x)).map((x) => `${what}: missing ${x}`),
    ...[...a].filter((x) => !e.has(x)).map((x) => `${what}: unexpected ${x}`),
  ];
}

// ---------------------------------------------------------------------------------------------
// The checks: (model) => problems
// ---------------------------------------------------------------------------------------------

/** No duplicate declarations; every kind of declaration in its own file. */
const checkLayout: Check = (m) => {
  const problems = [...m.structure];
  for (const [file, addresses] of Object.entries(m.files)) {
    for (const address of addresses) {
      const rule = LAYOUT.find(([pattern]) => pattern.test(address));
      if (rule !== undefined && rule[1] !== file) {
        problems.push(`${address} is in ${file}; it belongs in ${rule[1]}`);
      }
    }
  }
  return problems;
};

/** Every var., local., resource, data and module reference names a declaration. */
const checkReferences: Check = (m) => {
  const declared = declaredAddresses(m);
  const iterators = iteratorNames(m);
  const problems: string[] = [];
  for (const [address, value] of declarations(m)) {
    walkStrings(value, address, (s, where) => {
      const local = new Set([...iterators, ...forVariables(s)]);
      for (const t of traversals(s)) {
        const target = addressOf(t, local);
        if (target !== undefined && !declared.has(target)) {
          problems.push(`${where}: ${t} refers to ${target}, which is not declared`);
        }
      }
    });
  }
  return problems;
};

/** Every variable has a type and a description. */
const checkVariables: Check = (m) =>
  Object.entries(m.variable).flatMap(([name, v]) => [
    ...(typeof v.type === 'string' && v.type !== '' ? [] : [`var.${name} has no type`]),
    ...(typeof v.description === 'string' && v.description.trim() !== ''
      ? []
      : [`var.${name} has no description`]),
  ]);

/** Each function's environment is exactly the code's configuration names plus LOG_EXECUTION_ID. */
const checkEnvironment: Check = (m) => {
  const expected = [...CONFIG_VARIABLE_NAMES, 'LOG_EXECUTION_ID'];
  const problems: string[] = [];
  const expressions = new Set<string>();
  for (const fn of functionsOf(m)) {
    const raw = block(fn.body.service_config)?.environment_variables;
    expressions.add(JSON.stringify(raw ?? null));
    const ref = onlyRef(raw);
    const env = isObject(raw) ? raw : ref === undefined ? undefined : lookup(m, ref);
    if (!isObject(env)) {
      problems.push(`${fn.address}: environment_variables must be a literal map or one local`);
      continue;
    }
    const names = Object.keys(env);
    problems.push(...sameSet(`${fn.address} environment`, names, expected));
    for (const name of names.filter((n) =>
      (EMULATOR_VARIABLE_NAMES as readonly string[]).includes(n),
    )) {
      problems.push(`${fn.address}: ${name} points the clients at an emulator`);
    }
    if (env.LOG_EXECUTION_ID !== undefined && env.LOG_EXECUTION_ID !== 'true') {
      problems.push(`${fn.address}: LOG_EXECUTION_ID must be "true"`);
    }
  }
  if (expressions.size > 1) problems.push('the functions do not share one environment map');
  return problems;
};

/** The environment points at this module's own buckets, topic, project and collection. */
const checkEnvironmentWiring: Check = (m) => {
  const fn = functionsOf(m)[0];
  const ref = onlyRef(block(fn?.body.service_config)?.environment_variables);
  const env = ref === undefined ? undefined : lookup(m, ref);
  if (!isObject(env)) return ['no environment map to check'];
  const expect = (name: string, address: string): string[] => {
    const value = env[name];
    return typeof value === 'string' && addressesIn(value).includes(address)
      ? []
      : [`${name} must refer to ${address} (is ${JSON.stringify(value ?? null)})`];
  };
  return [
    ...expect('GOOGLE_CLOUD_PROJECT', 'var.project_id'),
    ...expect('OUTPUT_URI_PREFIX', BUCKET.output),
    ...expect('COMPLETION_TOPIC', TOPIC),
    ...expect('JOBS_COLLECTION', 'var.jobs_collection'),
    ...expect('INPUT_PREFIX', 'var.input_prefix'),
    ...(typeof env.OUTPUT_URI_PREFIX === 'string' && env.OUTPUT_URI_PREFIX.startsWith('gs://')
      ? []
      : ['OUTPUT_URI_PREFIX must start with gs://']),
  ];
};

/** Each entry point is a registered target, and each target is deployed exactly once. */
const checkEntryPoints: Check = (m) => {
  const targets: readonly string[] = Object.values(FUNCTION_TARGETS);
  const fns = functionsOf(m);
  return [
    ...fns
      .filter((f) => f.target === undefined || !targets.includes(f.target))
      .map(
        (f) => `${f.address}: entry point ${String(f.target)} is not one of ${targets.join(', ')}`,
      ),
    ...targets
      .map((t) => [t, fns.filter((f) => f.target === t).length] as const)
      .filter(([, n]) => n !== 1)
      .map(([t, n]) => `target ${t} is deployed ${n} times (expected once)`),
  ];
};

/** The runtime is current, and its variable refuses the decommissioned ones. */
const checkRuntime: Check = (m) => {
  const problems: string[] = [];
  for (const fn of functionsOf(m)) {
    const raw = block(fn.body.build_config)?.runtime;
    const runtime = resolveString(m, raw);
    if (
      runtime === undefined ||
      !/^nodejs\d+$/.test(runtime) ||
      DECOMMISSIONED_RUNTIMES.includes(runtime)
    ) {
      problems.push(`${fn.address}: runtime ${String(runtime)} is not deployable`);
    }
    const ref = onlyRef(raw);
    if (ref?.startsWith('var.')) {
      const name = ref.slice(4);
      const conditions = bodies(m.variable[name]?.validation).map((v) => str(v.condition));
      const refused = conditions.flatMap((c) => {
        const list = new RegExp(
          `!\\s*contains\\(\\s*\\[([^\\]]*)\\]\\s*,\\s*var\\.${name}\\s*\\)`,
        ).exec(c);
        return [...(list?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((x) => x[1] ?? '');
      });
      for (const old of DECOMMISSIONED_RUNTIMES.filter((r) => !refused.includes(r))) {
        problems.push(`var.${name}: the validation does not refuse ${old}`);
      }
    }
  }
  return problems;
};

/** The submit function's trigger: finalized events of the input bucket, retried, own identity. */
const checkTrigger: Check = (m) => {
  const fn = functionFor(m, FUNCTION_TARGETS.submit);
  if (fn === undefined) return [`no function runs ${FUNCTION_TARGETS.submit}`];
  const trigger = block(fn.body.event_trigger);
  if (trigger === undefined) return [`${fn.address} has no event_trigger`];
  const problems: string[] = [];
  if (trigger.event_type !== 'google.cloud.storage.object.v1.finalized') {
    problems.push(`event_type is ${str(trigger.event_type)}`);
  }
  if (trigger.retry_policy !== 'RETRY_POLICY_RETRY') {
    problems.push(`retry_policy is ${str(trigger.retry_policy)}, events would be dropped on error`);
  }
  if (onlyRef(trigger.service_account_email) !== `${SA.trigger}.email`) {
    problems.push(`the trigger must run as ${SA.trigger}`);
  }
  if (!addressesIn(trigger.trigger_region).includes(BUCKET.input)) {
    problems.push(`trigger_region must follow ${BUCKET.input}'s location`);
  }
  const filters = bodies(trigger.event_filters);
  const bucketFilter = filters.find((f) => f.attribute === 'bucket');
  if (onlyRef(bucketFilter?.value) !== `${BUCKET.input}.name`) {
    problems.push(`the bucket filter must be ${BUCKET.input}.name`);
  }
  if (filters.length !== 1) problems.push(`expected one event filter, found ${filters.length}`);
  for (const other of functionsOf(m).filter(
    (f) => f.address !== fn.address && f.body.event_trigger !== undefined,
  )) {
    problems.push(
      `${other.address} has an event_trigger; only the submit function is event-driven`,
    );
  }
  return problems;
};

/** Cloud Scheduler calls the poll function with an OIDC token for that function, as its own SA. */
const checkScheduler: Check = (m) => {
  const poll = functionFor(m, FUNCTION_TARGETS.poll);
  const jobs = resourcesOf(m, 'google_cloud_scheduler_job');
  if (poll === undefined) return [`no function runs ${FUNCTION_TARGETS.poll}`];
  if (jobs.length !== 1) return [`expected one Cloud Scheduler job, found ${jobs.length}`];
  const [address, job] = jobs[0] ?? ['', {}];
  const target = block(job.http_target);
  const oidc = block(target?.oidc_token);
  const pollUris = [`${poll.address}.service_config[0].uri`, `${poll.address}.url`];
  const problems: string[] = [];
  if (target?.http_method !== 'POST') problems.push(`${address}: http_method must be POST`);
  if (!pollUris.includes(onlyRef(target?.uri) ?? '')) {
    problems.push(`${address}: uri must be the poll function's URI`);
  }
  if (!pollUris.includes(onlyRef(oidc?.audience) ?? '')) {
    problems.push(`${address}: the OIDC audience must be the poll function's URI`);
  }
  if (oidc?.audience !== target?.uri) problems.push(`${address}: audience and uri differ`);
  if (onlyRef(oidc?.service_account_email) !== `${SA.scheduler}.email`) {
    problems.push(`${address}: the OIDC token must be minted for ${SA.scheduler}`);
  }
  if (block(job.retry_config) === undefined) problems.push(`${address}: no retry_config`);
  if (job.schedule === undefined || job.time_zone === undefined) {
    problems.push(`${address}: schedule and time_zone must be set`);
  }
  return problems;
};

/** Nobody outside the project's own identities is ever granted anything. */
const checkNoPublicPrincipals: Check = (m) => {
  const problems: string[] = [];
  for (const [address, value] of declarations(m)) {
    walkStrings(value, address, (s, where) => {
      if (/\ballUsers\b|\ballAuthenticatedUsers\b/.test(s)) problems.push(`${where}: ${s}`);
    });
  }
  return problems;
};

/** roles/run.invoker only on one function's service, never on the project. */
const checkRunInvoker: Check = (m) => {
  const serviceLevel = [
    'google_cloud_run_v2_service_iam_member',
    'google_cloud_run_service_iam_member',
  ];
  const functions = new Set(functionsOf(m).map((f) => f.address));
  const problems: string[] = [];
  for (const [type, address, body] of allResources(m)) {
    const grantsInvoker =
      body.role === RUN_INVOKER ||
      (type.endsWith('_iam_policy') && JSON.stringify(body).includes(RUN_INVOKER));
    if (!grantsInvoker) continue;
    if (!serviceLevel.includes(type)) {
      problems.push(`${address} grants ${RUN_INVOKER} wider than one function's service`);
      continue;
    }
    const service = addressesIn(body.name ?? body.service)[0];
    if (service === undefined || !functions.has(service)) {
      problems.push(
        `${address} grants ${RUN_INVOKER} on something other than a function's service`,
      );
    }
  }
  return problems;
};

/** Each function runs as its own service account. */
const checkFunctionIdentities: Check = (m) => {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const [key, target] of Object.entries(FUNCTION_TARGETS)) {
    const fn = functionFor(m, target);
    const ref = onlyRef(block(fn?.body.service_config)?.service_account_email);
    const sa = ref === undefined ? undefined : addressOf(ref);
    const own = SA[key as keyof typeof FUNCTION_TARGETS];
    if (sa !== own) problems.push(`${target} runs as ${String(sa)}, not ${own}`);
    if (sa !== undefined && seen.has(sa))
      problems.push(`${target} shares ${sa} with ${seen.get(sa)}`);
    if (sa !== undefined) seen.set(sa, target);
    if (sa !== undefined && !(m.resource.google_service_account ?? {})[sa.split('.')[1] ?? '']) {
      problems.push(`${target} runs as ${sa}, which is not a declared service account`);
    }
  }
  return problems;
};

/** The poller's composite index: OUTSTANDING_JOBS_INDEX, on the collection the functions use. */
const checkIndex: Check = (m) => {
  const expected = OUTSTANDING_JOBS_INDEX.fields.map((f) => `${f.fieldPath} ${f.order}`);
  const indexes = resourcesOf(m, 'google_firestore_index');
  const matches = indexes.filter(([, body]) => {
    const fields = bodies(body.fields).map((f) => `${str(f.field_path)} ${str(f.order)}`);
    return (
      body.query_scope === OUTSTANDING_JOBS_INDEX.queryScope &&
      JSON.stringify(fields) === JSON.stringify(expected) &&
      onlyRef(body.collection) === 'var.jobs_collection' &&
      (body.database === undefined || body.database === '(default)')
    );
  });
  return matches.length === 1
    ? []
    : [
        `expected one google_firestore_index on var.jobs_collection (${OUTSTANDING_JOBS_INDEX.queryScope}: ${expected.join(', ')}), found ${matches.length} among ${indexes.length}`,
      ];
};

/** A duration setting (number of seconds) and the lower bound its variable's validation enforces. */
function secondsProblems(m: TfModule, what: string, raw: Json | undefined): string[] {
  const budget = POLL_TIME_BUDGET_SECONDS;
  const literal = typeof raw === 'string' ? /^(\d+)s$/.exec(raw) : null;
  const varName = typeof raw === 'string' ? /^\$\{var\.([\w-]+)\}s?$/.exec(raw)?.[1] : undefined;
  const value =
    typeof raw === 'number'
      ? raw
      : literal?.[1] !== undefined
        ? Number(literal[1])
        : varName === undefined
          ? undefined
          : resolveNumber(m, `\${var.${varName}}`);
  const problems: string[] = [];
  if (value === undefined || !(value > budget)) {
    problems.push(`${what} (${String(value)}) must exceed the poll time budget (${budget} s)`);
  }
  if (varName !== undefined) {
    const bounded = bodies(m.variable[varName]?.validation).some((v) => {
      const b = new RegExp(`var\\.${varName}\\s*(>=?)\\s*(\\d+)`).exec(str(v.condition));
      return (
        b?.[2] !== undefined && (b[1] === '>' ? Number(b[2]) >= budget : Number(b[2]) > budget)
      );
    });
    if (!bounded) problems.push(`var.${varName}: the validation must refuse ${budget} s and less`);
  }
  return problems;
}

/** The poll's timeout and Scheduler's attempt deadline both exceed POLL_TIME_BUDGET_SECONDS. */
const checkPollDeadlines: Check = (m) => {
  const poll = functionFor(m, FUNCTION_TARGETS.poll);
  const [, job] = resourcesOf(m, 'google_cloud_scheduler_job')[0] ?? [];
  return [
    ...secondsProblems(
      m,
      'poll timeout_seconds',
      block(poll?.body.service_config)?.timeout_seconds,
    ),
    ...secondsProblems(m, 'scheduler attempt_deadline', job?.attempt_deadline),
  ];
};

/** The grants are exactly FACTS.md "IAM" (+ the submit function's rejection events, + CMEK). */
const checkGrants: Check = (m) => {
  const submitFn = functionFor(m, FUNCTION_TARGETS.submit)?.address ?? '<submit function>';
  const pollFn = functionFor(m, FUNCTION_TARGETS.poll)?.address ?? '<poll function>';
  const expected = [
    `${GCS_AGENT} roles/pubsub.publisher project`,
    `${SA.trigger} roles/eventarc.eventReceiver project`,
    `${SA.trigger} roles/run.invoker ${submitFn}`,
    `${SA.submit} roles/aiplatform.user project`,
    `${SA.submit} roles/datastore.user project`,
    `${SA.submit} roles/storage.objectViewer ${BUCKET.input}`,
    // Rejection reports (rejection.json) under the job's output prefix.
    `${SA.submit} roles/storage.objectCreator ${BUCKET.output}`,
    // CONTRACT §1: the submit function publishes `input.rejected` itself.
    `${SA.submit} roles/pubsub.publisher ${TOPIC}`,
    `${SA.poll} roles/aiplatform.user project`,
    `${SA.poll} roles/datastore.user project`,
    `${SA.poll} roles/pubsub.publisher ${TOPIC}`,
    `${SA.poll} roles/storage.objectViewer ${BUCKET.output}`,
    // Queued and interrupted submissions: read the input, write a rejection report.
    `${SA.poll} roles/storage.objectViewer ${BUCKET.input}`,
    `${SA.poll} roles/storage.objectCreator ${BUCKET.output}`,
    `${SA.scheduler} roles/run.invoker ${pollFn}`,
    `${VERTEX_AGENT} roles/storage.objectViewer ${BUCKET.input}`,
    `${VERTEX_AGENT} roles/storage.objectCreator ${BUCKET.output}`,
    `${GCS_AGENT} roles/cloudkms.cryptoKeyEncrypterDecrypter key:var.kms_key_name`,
  ];
  const problems: string[] = [];
  const actual: string[] = [];
  for (const [type, address, body] of allResources(m)) {
    if (/_iam_(binding|policy)$/.test(type)) {
      problems.push(
        `${address}: authoritative IAM would remove grants made by others; use _iam_member`,
      );
      continue;
    }
    if (!type.endsWith('_iam_member')) continue;
    const scope =
      type === 'google_project_iam_member'
        ? 'project'
        : type === 'google_storage_bucket_iam_member'
          ? addressesIn(body.bucket)[0]
          : type === 'google_pubsub_topic_iam_member'
            ? addressesIn(body.topic)[0]
            : type === 'google_cloud_run_v2_service_iam_member'
              ? addressesIn(body.name)[0]
              : type === 'google_cloud_run_service_iam_member'
                ? addressesIn(body.service)[0]
                : type === 'google_kms_crypto_key_iam_member'
                  ? `key:${addressesIn(body.crypto_key_id)[0] ?? str(body.crypto_key_id)}`
                  : type;
    actual.push(`${principalOf(body.member)} ${str(body.role)} ${String(scope)}`);
  }
  return [...problems, ...sameSet('grants', actual, expected)];
};

/** Buckets: uniform access, public access prevention, optional CMEK, optional output lifecycle. */
const checkBuckets: Check = (m) => {
  const buckets = resourcesOf(m, 'google_storage_bucket');
  const problems = sameSet(
    'buckets',
    buckets.map(([a]) => a),
    Object.values(BUCKET),
  );
  for (const [address, body] of buckets) {
    if (body.uniform_bucket_level_access !== true) {
      problems.push(`${address}: uniform_bucket_level_access must be true`);
    }
    if (body.public_access_prevention !== 'enforced') {
      problems.push(`${address}: public_access_prevention must be "enforced"`);
    }
    const encryption = block(block(body.dynamic)?.encryption);
    if (!addressesIn(encryption?.for_each).includes('var.kms_key_name')) {
      problems.push(`${address}: encryption must follow var.kms_key_name`);
    }
  }
  const output = m.resource.google_storage_bucket?.output;
  const lifecycle = block(block(output?.dynamic)?.lifecycle_rule);
  if (!addressesIn(lifecycle?.for_each).includes('var.output_retention_days')) {
    problems.push(`${BUCKET.output}: lifecycle_rule must follow var.output_retention_days`);
  }
  return problems;
};

/** Everything that takes labels carries var.labels. */
const checkLabels: Check = (m) => {
  const carriesVarLabels = (v: Json | undefined, depth = 0): boolean => {
    const addresses = addressesIn(v);
    if (addresses.includes('var.labels')) return true;
    return (
      depth < 3 &&
      addresses.some((a) => a.startsWith('local.') && carriesVarLabels(lookup(m, a), depth + 1))
    );
  };
  return LABELABLE.flatMap((type) =>
    resourcesOf(m, type)
      .filter(([, body]) => !carriesVarLabels(body.labels))
      .map(([address]) => `${address}: labels must include var.labels`),
  );
};

/** The required APIs are enabled and stay enabled on destroy. */
const checkApis: Check = (m) => {
  const services: string[] = [];
  const problems: string[] = [];
  for (const [address, body] of resourcesOf(m, 'google_project_service')) {
    if (body.disable_on_destroy !== false)
      problems.push(`${address}: disable_on_destroy must be false`);
    if (typeof body.service === 'string' && !body.service.includes('${'))
      services.push(body.service);
    for (const ref of addressesIn(body.for_each).filter((a) => a.startsWith('local.'))) {
      const list = lookup(m, ref);
      if (Array.isArray(list))
        services.push(...list.filter((s): s is string => typeof s === 'string'));
    }
  }
  return [
    ...problems,
    ...REQUIRED_APIS.filter((s) => !services.includes(s)).map((s) => `API ${s} is not enabled`),
  ];
};

/** Every provider is bounded on both sides. */
const checkProviders: Check = (m) => {
  const required = Object.assign(
    {},
    ...m.terraform.flatMap((t) => bodies(t.required_providers)),
  ) as JsonObject;
  const problems: string[] = [];
  for (const name of ['google', 'archive']) {
    if (!(name in required)) problems.push(`provider ${name} is not required`);
  }
  for (const [name, spec] of Object.entries(required)) {
    const version = isObject(spec) ? spec.version : undefined;
    const v = typeof version === 'string' ? version : '';
    const lower = /(>=|>|~>)\s*\d/.test(v);
    const upper = /(<=|<(?!=)|~>)\s*\d/.test(v);
    if (!lower || !upper)
      problems.push(`provider ${name}: version "${v}" must be bounded on both sides`);
  }
  return problems;
};

/** Outputs are described, derived from resources, and include the first-upload command. */
const checkOutputs: Check = (m) => {
  const required = [
    'input_bucket',
    'output_bucket',
    'completion_topic',
    'submit_function_uri',
    'poll_function_uri',
    'service_account_emails',
    'upload_command',
  ];
  const problems = required.filter((o) => !(o in m.output)).map((o) => `output ${o} is missing`);
  for (const [name, body] of Object.entries(m.output)) {
    if (typeof body.description !== 'string' || body.description === '') {
      problems.push(`output ${name} has no description`);
    }
    const values: string[] = [];
    walkStrings(body.value ?? null, name, (s) => values.push(s));
    const fromResources = values.some((s) =>
      addressesIn(s).some((a) => !a.startsWith('var.') && !a.startsWith('local.')),
    );
    if (!fromResources) problems.push(`output ${name} is not derived from a resource`);
  }
  const upload = m.output.upload_command?.value;
  if (
    typeof upload !== 'string' ||
    !/^gcloud storage cp \S+ gs:\/\//.test(upload) ||
    !addressesIn(upload).includes(BUCKET.input) ||
    !addressesIn(upload).includes('var.input_prefix')
  ) {
    problems.push(
      'output upload_command must be `gcloud storage cp FILE gs://<input bucket>/<input_prefix>`',
    );
  }
  return problems;
};

/** The source archive is the staged artifact, named by its hash, and both functions deploy it. */
const checkSource: Check = (m) => {
  const problems: string[] = [];
  const archives = Object.entries(m.data.archive_file ?? {});
  if (archives.length !== 1) return [`expected one archive_file, found ${archives.length}`];
  const [archiveName, archive] = archives[0] ?? ['', {}];
  if (
    typeof archive.source_dir !== 'string' ||
    !/artifact/.test(JSON.stringify(m.locals) + archive.source_dir)
  ) {
    problems.push('archive_file must zip the staged artifact/ directory');
  }
  const objects = resourcesOf(m, 'google_storage_bucket_object');
  const hashed = objects.filter(([, body]) =>
    traversals(str(body.name)).some((t) =>
      new RegExp(
        `^data\\.archive_file\\.${archiveName}\\.output_(md5|sha|sha256|base64sha256)$`,
      ).test(t),
    ),
  );
  if (hashed.length !== 1) problems.push('the source object name must contain the archive hash');
  const [objectAddress] = hashed[0] ?? ['<source object>'];
  for (const fn of functionsOf(m)) {
    const storage = block(block(block(fn.body.build_config)?.source)?.storage_source);
    if (onlyRef(storage?.object) !== `${objectAddress}.name`) {
      problems.push(`${fn.address}: build source must be ${objectAddress}`);
    }
    if (onlyRef(storage?.bucket) !== `${BUCKET.source}.name`) {
      problems.push(`${fn.address}: build source bucket must be ${BUCKET.source}`);
    }
  }
  return problems;
};

/** terraform/README.md documents every input and output (a reader deploys from it alone). */
const checkDocumented =
  (readme: string): Check =>
  (m) =>
    [
      ...Object.keys(m.variable).map((n) => ['input', n] as const),
      ...Object.keys(m.output).map((n) => ['output', n] as const),
    ]
      .filter(([, n]) => !new RegExp(`^\\|\\s*\`${n}\`\\s*\\|`, 'm').test(readme))
      .map(([kind, n]) => `terraform/README.md has no table row for the ${kind} ${n}`);

const CHECKS = {
  layout: checkLayout,
  references: checkReferences,
  variables: checkVariables,
  environment: checkEnvironment,
  environmentWiring: checkEnvironmentWiring,
  entryPoints: checkEntryPoints,
  runtime: checkRuntime,
  trigger: checkTrigger,
  scheduler: checkScheduler,
  noPublicPrincipals: checkNoPublicPrincipals,
  runInvoker: checkRunInvoker,
  functionIdentities: checkFunctionIdentities,
  index: checkIndex,
  pollDeadlines: checkPollDeadlines,
  grants: checkGrants,
  buckets: checkBuckets,
  labels: checkLabels,
  apis: checkApis,
  providers: checkProviders,
  outputs: checkOutputs,
  source: checkSource,
  documented: checkDocumented(readFileSync(path.join(TF_DIR, 'README.md'), 'utf8')),
} satisfies Record<string, Check>;

type CheckName = keyof typeof CHECKS;

// ---------------------------------------------------------------------------------------------
// Mutation helpers: they throw when the module changed shape, so a mutation never silently no-ops
// ---------------------------------------------------------------------------------------------

function res(m: TfModule, address: string): JsonObject {
  const [type = '', name = ''] = address.split('.');
  const body = m.resource[type]?.[name];
  if (body === undefined) throw new Error(`mutation: no resource ${address}`);
  return body;
}

function sub(body: JsonObject | undefined, key: string): JsonObject {
  const b = block(body?.[key]);
  if (b === undefined) throw new Error(`mutation: no block ${key}`);
  return b;
}

function fnBody(m: TfModule, target: string): JsonObject {
  const fn = functionFor(m, target);
  if (fn === undefined) throw new Error(`mutation: no function for ${target}`);
  return fn.body;
}

function variable(m: TfModule, name: string): JsonObject {
  const v = m.variable[name];
  if (v === undefined) throw new Error(`mutation: no variable ${name}`);
  return v;
}

function envMap(m: TfModule): JsonObject {
  const env = m.locals.function_environment;
  if (!isObject(env)) throw new Error('mutation: no local.function_environment map');
  return env;
}

function addResource(m: TfModule, type: string, name: string, body: JsonObject): void {
  (m.resource[type] ??= {})[name] = body;
}

const serviceAccountMember = (sa: string): string => `serviceAccount:\${${sa}.email}`;

interface Mutation {
  check: CheckName;
  what: string;
  pattern: RegExp;
  mutate: (m: TfModule) => void;
}

/** A mistake, the check that must catch it, and what its report must say. */
function mutation(
  check: CheckName,
  what: string,
  pattern: RegExp,
  mutate: (m: TfModule) => void,
): Mutation {
  return { check, what, pattern, mutate };
}

const MUTATIONS: Mutation[] = [
  mutation('documented', 'a new variable not in the README', /the input new_setting/, (m) => {
    m.variable.new_setting = { type: '${string}', description: 'New.' };
  }),
  mutation('documented', 'a new output not in the README', /the output new_output/, (m) => {
    m.output.new_output = { description: 'New.', value: '${google_storage_bucket.input.id}' };
  }),
  mutation('layout', 'a variable declared in main.tf', /var\.region is in main\.tf/, (m) => {
    m.files['main.tf']?.push('var.region');
  }),
  mutation('layout', 'a resource declared twice', /declared more than once/, (m) => {
    m.structure.push('buckets.tf: google_storage_bucket.input is declared more than once');
  }),
  mutation('references', 'an undeclared variable', /var\.undeclared/, (m) => {
    res(m, BUCKET.input).name = '${var.undeclared}-input';
  }),
  mutation('references', 'an undeclared local', /local\.nope/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.poll), 'service_config').environment_variables = '${local.nope}';
  }),
  mutation('references', 'an undeclared resource', /google_storage_bucket\.nope/, (m) => {
    res(m, 'google_storage_bucket_iam_member.submit_reads_input').bucket =
      '${google_storage_bucket.nope.name}';
  }),
  mutation('references', 'an undeclared data source', /data\.google_project\.missing/, (m) => {
    m.output.extra = { value: '${data.google_project.missing.number}' };
  }),
  mutation(
    'references',
    'a reference nested in a string inside a function call',
    /var\.ghost/,
    (m) => {
      m.locals.labels = '${merge({ a = "${var.ghost}" }, var.labels)}';
    },
  ),
  mutation(
    'variables',
    'a variable without a description',
    /var\.region has no description/,
    (m) => {
      delete variable(m, 'region').description;
    },
  ),
  mutation('variables', 'a variable without a type', /var\.prefix has no type/, (m) => {
    delete variable(m, 'prefix').type;
  }),
  mutation('environment', 'an extra environment variable', /unexpected EXTRA_SETTING/, (m) => {
    envMap(m).EXTRA_SETTING = 'x';
  }),
  mutation('environment', 'a configuration variable left out', /missing LOG_LEVEL/, (m) => {
    delete envMap(m).LOG_LEVEL;
  }),
  mutation('environment', 'LOG_EXECUTION_ID left out', /missing LOG_EXECUTION_ID/, (m) => {
    delete envMap(m).LOG_EXECUTION_ID;
  }),
  mutation('environment', 'LOG_EXECUTION_ID not "true"', /must be "true"/, (m) => {
    envMap(m).LOG_EXECUTION_ID = 'false';
  }),
  mutation('environment', 'an emulator variable deployed', /emulator/, (m) => {
    envMap(m).FIRESTORE_EMULATOR_HOST = 'localhost:8080';
  }),
  mutation(
    'environment',
    'a function with its own, different map',
    /share one environment map|missing/,
    (m) => {
      const env = { ...envMap(m) };
      delete env.DEFAULT_MODEL;
      sub(fnBody(m, FUNCTION_TARGETS.poll), 'service_config').environment_variables = env;
    },
  ),
  mutation(
    'environmentWiring',
    'OUTPUT_URI_PREFIX pointing at the input bucket',
    /OUTPUT_URI_PREFIX/,
    (m) => {
      envMap(m).OUTPUT_URI_PREFIX = `gs://\${${BUCKET.input}.name}`;
    },
  ),
  mutation('environmentWiring', 'COMPLETION_TOPIC as a literal', /COMPLETION_TOPIC/, (m) => {
    envMap(m).COMPLETION_TOPIC = 'completions';
  }),
  mutation('entryPoints', 'a misspelt entry point', /submitBatchJobs is not one of/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.submit), 'build_config').entry_point = 'submitBatchJobs';
  }),
  mutation(
    'entryPoints',
    'one target deployed twice, the other not at all',
    /pollBatchJobs is deployed 0 times/,
    (m) => {
      sub(fnBody(m, FUNCTION_TARGETS.poll), 'build_config').entry_point = FUNCTION_TARGETS.submit;
    },
  ),
  mutation(
    'runtime',
    'the default runtime set to nodejs20',
    /runtime nodejs20 is not deployable/,
    (m) => {
      variable(m, 'runtime').default = 'nodejs20';
    },
  ),
  mutation(
    'runtime',
    'a validation that lets nodejs20 through',
    /does not refuse nodejs20/,
    (m) => {
      const validation = sub(variable(m, 'runtime'), 'validation');
      validation.condition = str(validation.condition).replace(', "nodejs20"', '');
    },
  ),
  mutation(
    'runtime',
    'a literal decommissioned runtime',
    /runtime nodejs18 is not deployable/,
    (m) => {
      sub(fnBody(m, FUNCTION_TARGETS.poll), 'build_config').runtime = 'nodejs18';
    },
  ),
  mutation('trigger', 'the wrong event type', /event_type/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.submit), 'event_trigger').event_type =
      'google.cloud.storage.object.v1.deleted';
  }),
  mutation('trigger', 'the bucket filter on the output bucket', /bucket filter/, (m) => {
    const trigger = sub(fnBody(m, FUNCTION_TARGETS.submit), 'event_trigger');
    sub(trigger, 'event_filters').value = `\${${BUCKET.output}.name}`;
  }),
  mutation('trigger', 'no retry policy', /retry_policy/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.submit), 'event_trigger').retry_policy =
      'RETRY_POLICY_DO_NOT_RETRY';
  }),
  mutation('trigger', 'the trigger running as the function', /must run as/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.submit), 'event_trigger').service_account_email =
      `\${${SA.submit}.email}`;
  }),
  mutation('trigger', 'a hard-coded trigger region', /trigger_region/, (m) => {
    sub(fnBody(m, FUNCTION_TARGETS.submit), 'event_trigger').trigger_region = 'us-central1';
  }),
  mutation('trigger', 'no event trigger at all', /no event_trigger/, (m) => {
    delete fnBody(m, FUNCTION_TARGETS.submit).event_trigger;
  }),
  mutation('scheduler', 'the audience pointing elsewhere', /OIDC audience/, (m) => {
    const target = sub(res(m, 'google_cloud_scheduler_job.poll'), 'http_target');
    sub(target, 'oidc_token').audience = 'https://example.com/';
  }),
  mutation('scheduler', 'the audience of the submit function', /OIDC audience/, (m) => {
    const target = sub(res(m, 'google_cloud_scheduler_job.poll'), 'http_target');
    const submit = functionFor(m, FUNCTION_TARGETS.submit)?.address ?? '';
    sub(target, 'oidc_token').audience = `\${${submit}.service_config[0].uri}`;
  }),
  mutation('scheduler', 'the token minted for the poll function SA', /minted for/, (m) => {
    const target = sub(res(m, 'google_cloud_scheduler_job.poll'), 'http_target');
    sub(target, 'oidc_token').service_account_email = `\${${SA.poll}.email}`;
  }),
  mutation('scheduler', 'a GET instead of POST', /POST/, (m) => {
    sub(res(m, 'google_cloud_scheduler_job.poll'), 'http_target').http_method = 'GET';
  }),
  mutation('noPublicPrincipals', 'allUsers as a bucket reader', /allUsers/, (m) => {
    addResource(m, 'google_storage_bucket_iam_member', 'public', {
      bucket: `\${${BUCKET.output}.name}`,
      role: 'roles/storage.objectViewer',
      member: 'allUsers',
    });
  }),
  mutation(
    'noPublicPrincipals',
    'allAuthenticatedUsers as poll invoker',
    /allAuthenticatedUsers/,
    (m) => {
      res(m, 'google_cloud_run_v2_service_iam_member.scheduler_invokes_poll').member =
        'allAuthenticatedUsers';
    },
  ),
  mutation(
    'runInvoker',
    'run.invoker granted on the project',
    /wider than one function's service/,
    (m) => {
      addResource(m, 'google_project_iam_member', 'scheduler_invokes_everything', {
        project: '${var.project_id}',
        role: RUN_INVOKER,
        member: serviceAccountMember(SA.scheduler),
      });
    },
  ),
  mutation(
    'runInvoker',
    'the scheduler grant moved to the project',
    /wider than one function's service/,
    (m) => {
      const grant = res(m, 'google_cloud_run_v2_service_iam_member.scheduler_invokes_poll');
      delete m.resource.google_cloud_run_v2_service_iam_member?.scheduler_invokes_poll;
      addResource(m, 'google_project_iam_member', 'scheduler_invokes_poll', {
        project: '${var.project_id}',
        role: RUN_INVOKER,
        member: grant.member ?? '',
      });
    },
  ),
  mutation(
    'runInvoker',
    'run.invoker on something that is not a function',
    /other than a function's service/,
    (m) => {
      res(m, 'google_cloud_run_v2_service_iam_member.scheduler_invokes_poll').name =
        'some-other-service';
    },
  ),
  mutation(
    'functionIdentities',
    'both functions sharing one service account',
    /shares google_service_account\.submit/,
    (m) => {
      sub(fnBody(m, FUNCTION_TARGETS.poll), 'service_config').service_account_email =
        `\${${SA.submit}.email}`;
    },
  ),
  mutation(
    'functionIdentities',
    'a function running as the scheduler SA',
    /runs as google_service_account\.scheduler/,
    (m) => {
      sub(fnBody(m, FUNCTION_TARGETS.poll), 'service_config').service_account_email =
        `\${${SA.scheduler}.email}`;
    },
  ),
  mutation(
    'functionIdentities',
    'a function on the default compute SA',
    /runs as undefined/,
    (m) => {
      delete sub(fnBody(m, FUNCTION_TARGETS.submit), 'service_config').service_account_email;
    },
  ),
  mutation('index', 'the index removed', /found 0 among 0/, (m) => {
    delete m.resource.google_firestore_index;
  }),
  mutation('index', 'the index fields in the wrong order', /found 0/, (m) => {
    const index = res(m, 'google_firestore_index.outstanding_jobs');
    index.fields = bodies(index.fields).reverse();
  }),
  mutation('index', 'a descending createTime', /found 0/, (m) => {
    const fields = bodies(res(m, 'google_firestore_index.outstanding_jobs').fields);
    const last = fields[fields.length - 1];
    if (last) last.order = 'DESCENDING';
  }),
  mutation('index', 'the index on another collection', /found 0/, (m) => {
    res(m, 'google_firestore_index.outstanding_jobs').collection = 'jobs';
  }),
  mutation(
    'pollDeadlines',
    'a poll timeout below the budget',
    /poll timeout_seconds \(60\)/,
    (m) => {
      variable(m, 'poll_timeout_seconds').default = 60;
    },
  ),
  mutation(
    'pollDeadlines',
    'a validation that admits the budget itself',
    /validation must refuse/,
    (m) => {
      const v = sub(variable(m, 'poll_timeout_seconds'), 'validation');
      v.condition = str(v.condition).replace(/> \d+/, '>= 60');
    },
  ),
  mutation(
    'pollDeadlines',
    'an attempt deadline below the budget',
    /attempt_deadline \(100\)/,
    (m) => {
      variable(m, 'scheduler_attempt_deadline_seconds').default = 100;
    },
  ),
  mutation('pollDeadlines', 'a literal attempt deadline of 60s', /attempt_deadline \(60\)/, (m) => {
    res(m, 'google_cloud_scheduler_job.poll').attempt_deadline = '60s';
  }),
  mutation(
    'grants',
    'an extra project-level role',
    /unexpected google_service_account\.poll roles\/storage\.admin project/,
    (m) => {
      addResource(m, 'google_project_iam_member', 'poll_storage_admin', {
        project: '${var.project_id}',
        role: 'roles/storage.admin',
        member: serviceAccountMember(SA.poll),
      });
    },
  ),
  mutation(
    'grants',
    'a bucket grant widened to the project',
    /missing google_service_account\.submit roles\/storage\.objectViewer google_storage_bucket\.input/,
    (m) => {
      delete m.resource.google_storage_bucket_iam_member?.submit_reads_input;
      addResource(m, 'google_project_iam_member', 'submit_reads_everything', {
        project: '${var.project_id}',
        role: 'roles/storage.objectViewer',
        member: serviceAccountMember(SA.submit),
      });
    },
  ),
  mutation(
    'grants',
    'the Vertex AI agent unable to write results',
    /missing google_project_service_identity\.vertex_ai roles\/storage\.objectCreator/,
    (m) => {
      delete m.resource.google_storage_bucket_iam_member?.vertex_writes_output;
    },
  ),
  mutation('grants', 'an authoritative binding', /authoritative IAM/, (m) => {
    addResource(m, 'google_pubsub_topic_iam_binding', 'publishers', {
      topic: `\${${TOPIC}.name}`,
      role: 'roles/pubsub.publisher',
      members: [serviceAccountMember(SA.poll)],
    });
  }),
  mutation('buckets', 'uniform access turned off', /uniform_bucket_level_access/, (m) => {
    res(m, BUCKET.output).uniform_bucket_level_access = false;
  }),
  mutation('buckets', 'public access prevention inherited', /public_access_prevention/, (m) => {
    res(m, BUCKET.input).public_access_prevention = 'inherited';
  }),
  mutation('buckets', 'no lifecycle on the outputs', /lifecycle_rule/, (m) => {
    const dyn = res(m, BUCKET.output).dynamic;
    if (isObject(dyn)) delete dyn.lifecycle_rule;
  }),
  mutation('labels', 'a topic without labels', /google_pubsub_topic\.completion: labels/, (m) => {
    delete res(m, TOPIC).labels;
  }),
  mutation('labels', 'labels that ignore var.labels', /labels must include var\.labels/, (m) => {
    m.locals.labels = { application: 'batch-courier' };
  }),
  mutation('apis', 'Vertex AI not enabled', /aiplatform\.googleapis\.com is not enabled/, (m) => {
    const list = m.locals.services;
    if (Array.isArray(list))
      m.locals.services = list.filter((s) => s !== 'aiplatform.googleapis.com');
  }),
  mutation('apis', 'APIs disabled on destroy', /disable_on_destroy/, (m) => {
    res(m, 'google_project_service.apis').disable_on_destroy = true;
  }),
  mutation(
    'providers',
    'an unbounded google provider',
    /provider google: version ">= 6\.0"/,
    (m) => {
      const required = sub(m.terraform[0], 'required_providers');
      required.google = { source: 'hashicorp/google', version: '>= 6.0' };
    },
  ),
  mutation('outputs', 'an output echoing a variable', /output region is not derived/, (m) => {
    m.output.region = { description: 'The region.', value: '${var.region}' };
  }),
  mutation('outputs', 'no upload command', /upload_command is missing/, (m) => {
    delete m.output.upload_command;
  }),
  mutation('source', 'a fixed source object name', /archive hash/, (m) => {
    res(m, 'google_storage_bucket_object.source').name = 'source.zip';
  }),
  mutation('source', 'a function built from another object', /build source must be/, (m) => {
    const build = sub(fnBody(m, FUNCTION_TARGETS.poll), 'build_config');
    sub(sub(build, 'source'), 'storage_source').object = 'old.zip';
  }),
];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/** No binary can be installed on some machines (FACTS.md): only the fmt test depends on one. */
const hasTerraform = spawnSync('terraform', ['version'], { stdio: 'ignore' }).status === 0;

describe('terraform module (static)', () => {
  let model: TfModule;

  beforeAll(async () => {
    model = await loadModule();
  });

  it('parses every .tf file, in the layout of STYLE.md', async () => {
    const files = tfFiles();
    for (const required of ['versions.tf', 'main.tf', 'variables.tf', 'outputs.tf']) {
      expect(files).toContain(required);
    }
    for (const file of files) expect(Object.keys(await parseFile(file)).length).toBeGreaterThan(0);
  });

  it.each(Object.keys(CHECKS) as CheckName[])('check %s finds no problem in the module', (name) => {
    expect(CHECKS[name](model)).toEqual([]);
  });

  it.each(MUTATIONS)('check $check catches $what', ({ check, pattern, mutate }) => {
    const mutant = structuredClone(model);
    mutate(mutant);
    const problems = CHECKS[check](mutant);
    expect(problems.join('\n')).toMatch(pattern);
  });

  it('has a mutation test for every check', () => {
    const mutated = new Set(MUTATIONS.map((x) => x.check));
    expect(Object.keys(CHECKS).filter((c) => !mutated.has(c as CheckName))).toEqual([]);
  });

  it('finds the same references as the HCL parser in every expression', async () => {
    const iterators = iteratorNames(model);
    const mismatches: string[] = [];
    let compared = 0;
    for (const [address, value] of declarations(model)) {
      const strings: [string, string][] = [];
      walkStrings(value, address, (s, where) => {
        if (s.includes('${')) strings.push([s, where]);
      });
      for (const [s, where] of strings) {
        compared += 1;
        const local = new Set([...iterators, ...forVariables(s)]);
        const ours = [...new Set(traversals(s).map((t) => addressOf(t, local)))]
          .filter(Boolean)
          .sort();
        const refs = await getReferencesInExpression('module.tf', s);
        const theirs = [...new Set(refs.map((r) => addressOf(r.value, local)))]
          .filter(Boolean)
          .sort();
        if (JSON.stringify(ours) !== JSON.stringify(theirs)) {
          mismatches.push(`${where}: ${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(50);
  });

  // Skipped, not failed, where no terraform binary is on PATH: the formatter is the only part of
  // these tests that needs one, and FACTS.md says some machines cannot have it.
  it.skipIf(!hasTerraform)(
    `terraform fmt -check -recursive terraform${hasTerraform ? '' : ' (skipped: no terraform binary on PATH)'}`,
    () => {
      const run = spawnSync('terraform', ['fmt', '-check', '-recursive', 'terraform'], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(run.stdout, 'files terraform fmt would rewrite').toBe('');
      expect(run.status).toBe(0);
    },
  );
});
