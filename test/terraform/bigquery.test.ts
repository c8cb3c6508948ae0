/**
 * BigQuery (manifests): var.bigquery_datasets and everything made of it. The datasets become the
 * functions' ALLOWED_BIGQUERY_DATASETS (parity.test.ts checks its form) and, per dataset, the
 * grants of iam.tf (iam.test.ts lists them); with an empty list nothing of BigQuery exists.
 *
 * Read statically (hcl2json, on every machine): each dataset grant is made for_each of
 * local.bigquery_datasets, on that dataset in its own project; every BigQuery resource and role
 * exists only with datasets, and so does the BigQuery API; no role is broader than those of iam.tf;
 * the validation patterns refuse what BigQuery refuses.
 *
 * Evaluated by Terraform (where a terraform binary is on PATH, as fmt.test.ts; skipped, and saying
 * so, elsewhere): variables.tf, the locals the checks need and the for_each or count of every
 * BigQuery resource are copied into a module of their own, without providers or resources, which
 * Terraform plans with sample lists. Terraform's own validation refuses the bad ids (its regex is
 * RE2, not JavaScript's), the environment variable is one the code reads as the datasets, and the
 * grants and the API are exactly those of the datasets, none with an empty list.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.js';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import {
  addressesIn,
  allResources,
  appendTo,
  astOf,
  describeChecks,
  environmentOf,
  expressionSource,
  functionFor,
  isObject,
  loadModule,
  refs,
  replaceIn,
  str,
  type Ast,
  type Check,
  type Edit,
  type Json,
  type JsonObject,
  type Mutation,
  type TfModule,
} from './tf-module.js';

const VARIABLE = 'var.bigquery_datasets';
const LOCAL = 'local.bigquery_datasets';
/** How every dataset grant is repeated, as hcl2json gives it. */
const FOR_EACH = '${local.bigquery_datasets}';
/** How every project-level BigQuery grant is made conditional. */
const COUNT = 'length(var.bigquery_datasets) > 0 ? 1 : 0';
const API = 'bigquery.googleapis.com';

const SUBMIT = 'google_service_account.submit';
const POLL = 'google_service_account.poll';
const VERTEX = 'google_project_service_identity.vertex_ai';

/**
 * Every BigQuery role the module may grant, where, and to whom: read on each dataset for the
 * functions; read and write on each dataset, and jobs and read sessions on the project, for the
 * Vertex AI service agent. Anything else (dataOwner, admin, user, data roles on the project) is
 * broader than the pipeline needs.
 */
const ALLOWED_ROLES: Record<'dataset' | 'project', Record<string, string[]>> = {
  dataset: {
    'roles/bigquery.dataViewer': [SUBMIT, POLL],
    'roles/bigquery.dataEditor': [VERTEX],
  },
  project: {
    'roles/bigquery.jobUser': [VERTEX],
    'roles/bigquery.readSessionUser': [VERTEX],
  },
};

/** The module's BigQuery resources: of a google_bigquery_* type, or granting a BigQuery role. */
function bigqueryResources(m: TfModule): [string, string, JsonObject][] {
  return allResources(m).filter(
    ([type, , body]) =>
      type.startsWith('google_bigquery_') || /^roles\/bigquery\./.test(str(body.role)),
  );
}

/** The source text of a count expression, or undefined. */
async function countOf(body: JsonObject): Promise<string | undefined> {
  return typeof body.count === 'string' ? (await astOf(body.count))?.meta.value : undefined;
}

// --- Static checks ---------------------------------------------------------------------------------

/**
 * Each dataset grant is made for_each of local.bigquery_datasets, on each.value.dataset of
 * each.value.project (a dataset of another project is granted there, not in the deployment's).
 */
const checkPerDataset: Check = async (m) => {
  const problems: string[] = [];
  const grants = Object.entries(m.resource.google_bigquery_dataset_iam_member ?? {});
  if (grants.length === 0) problems.push('no google_bigquery_dataset_iam_member');
  for (const [name, body] of grants) {
    const at = `google_bigquery_dataset_iam_member.${name}`;
    if (body.for_each !== FOR_EACH) problems.push(`${at}: for_each must be ${LOCAL}`);
    if (body.project !== '${each.value.project}') {
      problems.push(`${at}: project must be each.value.project (the dataset's own project)`);
    }
    if (body.dataset_id !== '${each.value.dataset}') {
      problems.push(`${at}: dataset_id must be each.value.dataset`);
    }
  }
  if (!(await refs(m.locals.bigquery_datasets)).includes(VARIABLE)) {
    problems.push(`${LOCAL} must be made of ${VARIABLE}`);
  }
  return problems;
};

/**
 * True when every `bigquery.googleapis.com` under `node` is in the true branch of a conditional
 * whose condition reads the dataset list.
 */
async function guarded(node: Ast, inside: boolean): Promise<boolean> {
  if (node.type === 'literalValue') return node.meta.value !== API || inside;
  if (node.type === 'conditional') {
    const [condition, yes, no] = node.children;
    const found = condition === undefined ? [] : await refs(`\${${condition.meta.value}}`);
    const onList = found.includes(VARIABLE) || found.includes(LOCAL);
    for (const [child, within] of [
      [condition, inside],
      [yes, inside || onList],
      [no, inside],
    ] as const) {
      if (child !== undefined && !(await guarded(child, within))) return false;
    }
    return true;
  }
  for (const child of node.children) if (!(await guarded(child, inside))) return false;
  return true;
}

/**
 * Nothing of BigQuery exists without datasets: each BigQuery resource is made for_each of the
 * datasets or with count on the list, and the API is named only under a condition on the list.
 */
const checkOnlyWithDatasets: Check = async (m) => {
  const problems: string[] = [];
  for (const [, address, body] of bigqueryResources(m)) {
    if (body.for_each !== FOR_EACH && (await countOf(body)) !== COUNT) {
      problems.push(
        `${address} exists without datasets: make it for_each of ${LOCAL} or count = ${COUNT}`,
      );
    }
  }
  const places: [string, Json][] = [
    ...Object.entries(m.locals).map(([n, v]): [string, Json] => [`local.${n}`, v]),
    ...allResources(m).map(([, a, b]): [string, Json] => [a, b]),
  ];
  for (const [where, value] of places) {
    const strings = JSON.stringify(value).includes(API) ? collectStrings(value) : [];
    for (const text of strings.filter((s) => s.includes(API))) {
      const ast = text.startsWith('${') ? await astOf(text) : undefined;
      if (ast === undefined || !(await guarded(ast, false))) {
        problems.push(`${where} enables ${API} whatever bigquery_datasets holds`);
      }
    }
  }
  return problems;
};

function collectStrings(v: Json): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(collectStrings);
  if (isObject(v)) return Object.values(v).flatMap(collectStrings);
  return [];
}

/** Every BigQuery role is one of ALLOWED_ROLES, on its scope, for its principals. */
const checkNothingBroader: Check = async (m) => {
  const problems: string[] = [];
  for (const [type, address, body] of allResources(m)) {
    const role = str(body.role);
    if (!role.startsWith('roles/bigquery.')) continue;
    const scope =
      type === 'google_bigquery_dataset_iam_member'
        ? 'dataset'
        : type === 'google_project_iam_member'
          ? 'project'
          : undefined;
    if (scope === undefined) {
      problems.push(`${address}: ${role} granted with ${type}; only datasets and the project`);
      continue;
    }
    const allowed = ALLOWED_ROLES[scope][role];
    const [member = str(body.member)] = await addressesIn(body.member);
    if (allowed === undefined) {
      problems.push(
        `${address}: ${role} on the ${scope} is broader than the pipeline needs (on the ${scope}: ${Object.keys(ALLOWED_ROLES[scope]).join(', ')})`,
      );
    } else if (!allowed.includes(member)) {
      problems.push(
        `${address}: ${role} on the ${scope} for ${member}; only for ${allowed.join(', ')}`,
      );
    }
  }
  return problems;
};

/** Dataset ids BigQuery accepts and refuses (letters, digits and underscores, at most 1024). */
const DATASET_IDS = {
  valid: ['results', 'Batch_2026', '_staging', 'a'.repeat(1024)],
  invalid: ['my-dataset', 'a.b', 'a b', '', 'a'.repeat(1025), 'données'],
};
/** Project ids, as var.project_id and the code's configuration read them. */
const PROJECT_IDS = {
  valid: ['data-project', 'my-project-42'],
  invalid: ['My-Project', 'abc', 'my_project', 'data-project-', 'example.com:data'],
};

/** The largest repeat count RE2, the regex engine of Terraform's regex(), accepts. */
const RE2_MAX_REPEAT = 1000;

/** The `regex("…", <of>)` patterns and `length(<of>) <= n` bounds of some conditions. */
async function patternsOf(conditions: Json[], of: string) {
  const patterns: string[] = [];
  const bounds: number[] = [];
  const visit = (node: Ast): void => {
    if (node.type === 'function' && node.meta.name === 'regex') {
      const [pattern, subject] = node.children;
      const literal = pattern?.children[0];
      if (subject?.meta.value === of && literal?.type === 'literalValue') {
        patterns.push(literal.meta.value);
      }
    }
    if (
      node.type === 'binaryOp' &&
      node.meta.operator === 'lessThanOrEqual' &&
      node.meta.lhsExpression.trim() === `length(${of})`
    ) {
      bounds.push(Number(node.meta.rhsExpression));
    }
    node.children.forEach(visit);
  };
  for (const condition of conditions) {
    const ast = await astOf(condition);
    if (ast) visit(ast);
  }
  return {
    patterns,
    accepts: (id: string) =>
      patterns.every((p) => new RegExp(p, 'u').test(id)) && bounds.every((n) => id.length <= n),
  };
}

/**
 * The validation of var.bigquery_datasets, read in JavaScript: its patterns for dataset and
 * project accept and refuse the ids above. Every regex of variables.tf stays within RE2's repeat
 * limit: above it Terraform's regex() fails, can() turns that into false, and the validation
 * refuses every value.
 */
const checkValidation: Check = async (m) => {
  const problems: string[] = [];
  const validation = m.variable.bigquery_datasets?.validation;
  const conditions = (Array.isArray(validation) ? validation : [validation])
    .filter(isObject)
    .map((v) => v.condition ?? null);
  for (const [field, ids] of [
    ['d.dataset', DATASET_IDS],
    ['d.project', PROJECT_IDS],
  ] as const) {
    const { patterns, accepts } = await patternsOf(conditions, field);
    if (patterns.length === 0) {
      problems.push(`var.bigquery_datasets: no validation regex for ${field}`);
      continue;
    }
    const show = (id: string) =>
      JSON.stringify(id.length > 40 ? `${id.slice(0, 8)}… (${id.length})` : id);
    for (const id of ids.valid.filter((x) => !accepts(x))) {
      problems.push(`var.bigquery_datasets: ${field} ${show(id)} is refused`);
    }
    for (const id of ids.invalid.filter((x) => accepts(x))) {
      problems.push(`var.bigquery_datasets: ${field} ${show(id)} is accepted`);
    }
  }
  const text = m.text['variables.tf'] ?? '';
  for (const [, pattern = ''] of text.matchAll(/regex\("((?:[^"\\]|\\.)*)"/g)) {
    for (const [, low = '0', high] of pattern.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
      if (Math.max(Number(low), Number(high ?? 0)) > RE2_MAX_REPEAT) {
        problems.push(
          `variables.tf: regex "${pattern}" repeats more than ${RE2_MAX_REPEAT} times, which RE2 refuses: every value would be refused`,
        );
      }
    }
  }
  return problems;
};

const CHECKS = {
  perDataset: checkPerDataset,
  onlyWithDatasets: checkOnlyWithDatasets,
  nothingBroader: checkNothingBroader,
  validation: checkValidation,
} satisfies Record<string, Check>;

const API_CONDITION = 'length(var.bigquery_datasets) > 0 ? ["bigquery.googleapis.com"] : []';

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: "a dataset grant without the dataset's project",
    check: 'perDataset',
    edit: replaceIn(
      'iam.tf',
      '  project    = each.value.project\n  dataset_id = each.value.dataset\n  role       = "roles/bigquery.dataViewer"\n  member     = "serviceAccount:${google_service_account.submit.email}"',
      '  dataset_id = each.value.dataset\n  role       = "roles/bigquery.dataViewer"\n  member     = "serviceAccount:${google_service_account.submit.email}"',
    ),
    report: /submit_reads_datasets: project must be each\.value\.project/,
  },
  {
    what: 'a project-level BigQuery grant made unconditional',
    check: 'onlyWithDatasets',
    edit: replaceIn(
      'iam.tf',
      '  count = length(var.bigquery_datasets) > 0 ? 1 : 0\n\n  project = var.project_id\n  role    = "roles/bigquery.jobUser"',
      '  project = var.project_id\n  role    = "roles/bigquery.jobUser"',
    ),
    report: /vertex_runs_bigquery_jobs exists without datasets/,
  },
  {
    what: 'the BigQuery API enabled without datasets',
    check: 'onlyWithDatasets',
    edit: replaceIn('apis.tf', API_CONDITION, '["bigquery.googleapis.com"]'),
    report: /local\.bigquery_services enables bigquery\.googleapis\.com whatever/,
  },
  {
    what: 'roles/bigquery.user on the project instead of jobUser',
    check: 'nothingBroader',
    edit: replaceIn(
      'iam.tf',
      'role    = "roles/bigquery.jobUser"',
      'role    = "roles/bigquery.user"',
    ),
    report: /vertex_runs_bigquery_jobs: roles\/bigquery\.user on the project is broader/,
  },
  {
    what: 'write access for the poll SA',
    check: 'nothingBroader',
    edit: appendTo(
      'iam.tf',
      '# Writes.\nresource "google_bigquery_dataset_iam_member" "poll_writes_datasets" {\n  for_each   = local.bigquery_datasets\n  project    = each.value.project\n  dataset_id = each.value.dataset\n  role       = "roles/bigquery.dataEditor"\n  member     = "serviceAccount:${google_service_account.poll.email}"\n}',
    ),
    report:
      /poll_writes_datasets: roles\/bigquery\.dataEditor on the dataset for google_service_account\.poll/,
  },
  {
    what: 'a dataset pattern that admits hyphens',
    check: 'validation',
    edit: replaceIn('variables.tf', '"^[A-Za-z0-9_]+$"', '"^[A-Za-z0-9_-]+$"'),
    report: /d\.dataset "my-dataset" is accepted/,
  },
  {
    what: 'a repeat count RE2 refuses',
    check: 'validation',
    edit: replaceIn(
      'variables.tf',
      'can(regex("^[A-Za-z0-9_]+$", d.dataset)) && length(d.dataset) <= 1024',
      'can(regex("^[A-Za-z0-9_]{1,1024}$", d.dataset))',
    ),
    report: /repeats more than 1000 times, which RE2 refuses/,
  },
];

describeChecks('terraform: BigQuery datasets', CHECKS, MUTATIONS);

// --- Evaluated by Terraform -------------------------------------------------------------------------

const hasTerraform = spawnSync('terraform', ['version'], { stdio: 'ignore' }).status === 0;

const PROJECT = 'my-project';

/** What the evaluation module answers for one list of datasets, or Terraform's refusal. */
type Outcome =
  | {
      refused: false;
      environment: Json;
      apis: Json;
      /** Per BigQuery resource: `{ key: { project, dataset_id, role } }`, or `{ count }`. */
      resources: Json;
    }
  | { refused: true; message: string };

/** Each occurrence of `each.value` / `each.key` renamed to the variables of a `for` expression. */
function unEach(source: string): string {
  return source.replace(/\beach\.(value|key)\b/g, 'each_$1');
}

/**
 * The module Terraform can evaluate without providers: variables.tf as it is; the locals that the
 * outputs need (and those they need); the outputs `environment` (ALLOWED_BIGQUERY_DATASETS),
 * `apis` (the for_each of google_project_service.apis) and `resources` (each BigQuery resource's
 * for_each instances with project, dataset_id and role, or its count).
 */
async function evaluationModule(m: TfModule): Promise<Record<string, string>> {
  const fn = functionFor(m, FUNCTION_TARGETS.submit);
  const environment = fn === undefined ? undefined : await environmentOf(m, fn);
  const apis = m.resource.google_project_service?.apis?.for_each;
  const resources: string[] = [];
  for (const [, address, body] of bigqueryResources(m)) {
    if (body.for_each !== undefined) {
      const item = `{ project = ${unEach(expressionSource(body.project))}, dataset_id = ${unEach(expressionSource(body.dataset_id))}, role = ${expressionSource(body.role)} }`;
      resources.push(
        `"${address}" = { for each_key, each_value in ${expressionSource(body.for_each)} : each_key => ${item} }`,
      );
    } else {
      resources.push(`"${address}" = { count = ${expressionSource(body.count ?? 1)} }`);
    }
  }
  const outputs = {
    environment: expressionSource(environment?.ALLOWED_BIGQUERY_DATASETS),
    apis: expressionSource(apis),
    resources: `{\n${resources.join('\n')}\n}`,
  };
  // The locals the outputs need, and those these need in turn.
  const locals = new Map<string, string>();
  const pending = [...Object.values(outputs)];
  while (pending.length > 0) {
    const source = pending.pop() ?? '';
    for (const ref of await refs(`\${${source}}`)) {
      const name = /^local\.(\w+)/.exec(ref)?.[1];
      if (name === undefined || locals.has(name) || !(name in m.locals)) continue;
      const local = expressionSource(m.locals[name]);
      locals.set(name, local);
      pending.push(local);
    }
  }
  const file = [
    'locals {',
    ...[...locals].map(([name, source]) => `  ${name} = ${source}`),
    '}',
    ...Object.entries(outputs).map(
      ([name, source]) => `output "${name}" {\n  value = ${source}\n}`,
    ),
  ].join('\n');
  return { 'variables.tf': m.text['variables.tf'] ?? '', 'evaluate.tf': `${file}\n` };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Terraform, offline: no version check, no CLI configuration of the machine. */
function terraform(dir: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('terraform', args, {
      cwd: dir,
      env: {
        ...process.env,
        CHECKPOINT_DISABLE: '1',
        TF_IN_AUTOMATION: '1',
        TF_CLI_CONFIG_FILE: path.join(dir, 'terraformrc'),
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Plans at once, at most this many (each is one terraform process of about 0.5 s). */
const PARALLEL_PLANS = 6;

/** Plans the evaluation module once per list of datasets (null: the variable left unset). */
async function evaluate(m: TfModule, lists: Json[]): Promise<Outcome[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bigquery-tf-'));
  try {
    writeFileSync(path.join(dir, 'terraformrc'), '');
    for (const [name, text] of Object.entries(await evaluationModule(m))) {
      writeFileSync(path.join(dir, name), text);
    }
    const init = await terraform(dir, ['init', '-backend=false', '-input=false', '-no-color']);
    if (init.status !== 0) throw new Error(`terraform init: ${init.stderr}`);
    const planOne = async (list: Json, i: number): Promise<Outcome> => {
      const vars: JsonObject = { project_id: PROJECT };
      if (list !== null) vars.bigquery_datasets = list;
      writeFileSync(path.join(dir, `case${i}.tfvars.json`), JSON.stringify(vars));
      const plan = await terraform(dir, [
        'plan',
        '-input=false',
        '-no-color',
        '-lock=false',
        `-var-file=case${i}.tfvars.json`,
        `-out=case${i}.plan`,
      ]);
      if (plan.status !== 0) return { refused: true, message: `${plan.stderr}${plan.stdout}` };
      const show = await terraform(dir, ['show', '-json', `case${i}.plan`]);
      const outputs = (JSON.parse(show.stdout) as { planned_values: { outputs: JsonObject } })
        .planned_values.outputs;
      const value = (name: string): Json => {
        const output = outputs[name];
        return isObject(output) ? (output.value ?? null) : null;
      };
      return {
        refused: false,
        environment: value('environment'),
        apis: value('apis'),
        resources: value('resources'),
      };
    };
    const outcomes: Outcome[] = new Array<Outcome>(lists.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < lists.length) {
        const i = next++;
        outcomes[i] = await planOne(lists[i] ?? null, i);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_PLANS }, worker));
    return outcomes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A list with one dataset in the deployment's project (named twice) and one elsewhere. */
const SOME: Json = [
  { dataset: 'results' },
  { dataset: 'sources', project: 'data-project' },
  { dataset: 'results', project: PROJECT },
];
/** Its datasets, as the grants and the environment must name them. */
const SOME_DATASETS: Record<string, { project: string; dataset: string }> = {
  'data-project.sources': { project: 'data-project', dataset: 'sources' },
  'my-project.results': { project: PROJECT, dataset: 'results' },
};

/** The ids of DATASET_IDS and PROJECT_IDS, one list each. */
const VALID_LISTS: Json[] = [
  ...DATASET_IDS.valid.map((dataset) => [{ dataset }]),
  ...PROJECT_IDS.valid.map((project) => [{ dataset: 'results', project }]),
];
const INVALID_LISTS: Json[] = [
  ...DATASET_IDS.invalid.map((dataset) => [{ dataset }]),
  ...PROJECT_IDS.invalid.map((project) => [{ dataset: 'results', project }]),
];

const label = (list: Json): string => {
  const text = JSON.stringify(list);
  return text.length > 80 ? `${text.slice(0, 60)}… (${text.length} characters)` : text;
};

/** The datasets' keys and, per key, project and dataset_id, from one resource's instances. */
function instancesOf(
  resource: Json | undefined,
): Record<string, { project: Json; dataset_id: Json }> {
  const out: Record<string, { project: Json; dataset_id: Json }> = {};
  for (const [key, item] of Object.entries(isObject(resource) ? resource : {})) {
    if (isObject(item))
      out[key] = { project: item.project ?? null, dataset_id: item.dataset_id ?? null };
  }
  return out;
}

/** Instances as text that does not depend on the order of their keys. */
function canonical(instances: Record<string, { project: Json; dataset_id: Json }>): string {
  return JSON.stringify(
    Object.keys(instances)
      .sort()
      .map((k) => [k, instances[k]?.project ?? null, instances[k]?.dataset_id ?? null]),
  );
}

/**
 * Terraform's answers for no list, SOME, the valid and the invalid ids: the problems, in words.
 */
const checkEvaluated: Check = async (m) => {
  const problems: string[] = [];
  const [none, some, ...rest] = await evaluate(m, [null, SOME, ...VALID_LISTS, ...INVALID_LISTS]);
  const valid = rest.slice(0, VALID_LISTS.length);
  const invalid = rest.slice(VALID_LISTS.length);

  if (none === undefined || none.refused) {
    problems.push(`no datasets: refused (${none?.refused ? none.message : 'no answer'})`);
  } else {
    if (none.environment !== '') {
      problems.push(
        `no datasets: ALLOWED_BIGQUERY_DATASETS is ${JSON.stringify(none.environment)}, not ""`,
      );
    }
    if (JSON.stringify(none.apis).includes(API)) problems.push(`no datasets: ${API} is enabled`);
    for (const [address, resource] of Object.entries(
      isObject(none.resources) ? none.resources : {},
    )) {
      const count = isObject(resource) && 'count' in resource ? resource.count : undefined;
      const instances =
        count === undefined ? Object.keys(instancesOf(resource)).length : Number(count);
      if (instances !== 0) problems.push(`no datasets: ${address} has ${instances} instance(s)`);
    }
  }

  if (some === undefined || some.refused) {
    problems.push(`${label(SOME)}: refused (${some?.refused ? some.message : 'no answer'})`);
  } else {
    const expected = Object.keys(SOME_DATASETS).sort();
    const environment = str(some.environment);
    let read: unknown;
    try {
      read = loadConfig({
        GOOGLE_CLOUD_PROJECT: PROJECT,
        OUTPUT_URI_PREFIX: 'gs://my-output-bucket',
        COMPLETION_TOPIC: 'completions',
        ALLOWED_BIGQUERY_DATASETS: environment,
      }).ALLOWED_BIGQUERY_DATASETS;
    } catch (err) {
      read = String(err);
    }
    if (JSON.stringify(read) !== JSON.stringify(expected)) {
      problems.push(
        `${label(SOME)}: ALLOWED_BIGQUERY_DATASETS is ${JSON.stringify(environment)}, which the code reads as ${JSON.stringify(read)}, not ${JSON.stringify(expected)}`,
      );
    }
    if (!JSON.stringify(some.apis).includes(`"${API}"`)) {
      problems.push(`${label(SOME)}: ${API} is not enabled`);
    }
    const resources = isObject(some.resources) ? some.resources : {};
    if (Object.keys(resources).length === 0) problems.push(`${label(SOME)}: no BigQuery resource`);
    for (const [address, resource] of Object.entries(resources)) {
      if (isObject(resource) && 'count' in resource) {
        if (resource.count !== 1)
          problems.push(`${label(SOME)}: ${address} has count ${str(resource.count)}, not 1`);
        continue;
      }
      const instances = instancesOf(resource);
      const wanted = Object.fromEntries(
        Object.entries(SOME_DATASETS).map(([k, d]) => [
          k,
          { project: d.project, dataset_id: d.dataset },
        ]),
      );
      if (canonical(instances) !== canonical(wanted)) {
        problems.push(
          `${label(SOME)}: ${address} is made for ${JSON.stringify(instances)}, not ${JSON.stringify(wanted)}`,
        );
      }
    }
  }

  valid.forEach((outcome, i) => {
    if (outcome.refused) {
      problems.push(
        `${label(VALID_LISTS[i] ?? null)} is refused: ${outcome.message.split('\n').find((l) => l.includes('bigquery_datasets')) ?? outcome.message}`,
      );
    }
  });
  invalid.forEach((outcome, i) => {
    if (!outcome.refused) problems.push(`${label(INVALID_LISTS[i] ?? null)} is accepted`);
    else if (!outcome.message.includes('bigquery_datasets')) {
      problems.push(
        `${label(INVALID_LISTS[i] ?? null)} is refused, but not by the variable's validation: ${outcome.message}`,
      );
    }
  });
  return problems;
};

const EVALUATED_MUTATIONS: { what: string; edit: Edit; report: RegExp }[] = [
  {
    what: 'a dataset pattern that admits dots',
    edit: replaceIn('variables.tf', '"^[A-Za-z0-9_]+$"', '"^[A-Za-z0-9_.]+$"'),
    report: /\[\{"dataset":"a\.b"\}\] is accepted/,
  },
  {
    what: 'a repeat count RE2 refuses',
    edit: replaceIn(
      'variables.tf',
      'can(regex("^[A-Za-z0-9_]+$", d.dataset)) && length(d.dataset) <= 1024',
      'can(regex("^[A-Za-z0-9_]{1,1024}$", d.dataset))',
    ),
    report: /\[\{"dataset":"results"\}\] is refused/,
  },
  {
    what: "every dataset put in the deployment's project",
    edit: replaceIn(
      'locals.tf',
      '        project = coalesce(d.project, var.project_id)',
      '        project = var.project_id',
    ),
    report: /submit_reads_datasets is made for .*"data-project\.sources":\{"project":"my-project"/,
  },
  {
    what: 'the BigQuery API enabled without datasets',
    edit: replaceIn('apis.tf', API_CONDITION, '["bigquery.googleapis.com"]'),
    report: /no datasets: bigquery\.googleapis\.com is enabled/,
  },
];

describe('terraform: BigQuery datasets, evaluated by terraform', () => {
  let model: TfModule;
  beforeAll(async () => {
    model = await loadModule();
  });
  const note = hasTerraform ? '' : ' (skipped: no terraform binary on PATH)';

  it.skipIf(!hasTerraform)(
    `no problem in the module${note}`,
    async () => {
      expect(await checkEvaluated(model)).toEqual([]);
    },
    120_000,
  );

  it.skipIf(!hasTerraform).each(EVALUATED_MUTATIONS)(
    `catches $what${note}`,
    async ({ edit, report }) => {
      const problems = await checkEvaluated(await loadModule(edit));
      expect(problems.join('\n')).toMatch(report);
    },
    120_000,
  );
});
