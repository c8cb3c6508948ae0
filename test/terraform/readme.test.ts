/**
 * terraform/README.md cannot drift from the module: its inputs table has one row per variable with
 * the type and default (for an object, every attribute with its default), its outputs table one
 * row per output, its IAM table exactly the grants.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { grantsOf } from './grants.js';
import {
  appendTo,
  describeChecks,
  literal,
  objectAttributes,
  replaceIn,
  sameSet,
  str,
  TF_DIR,
  type Check,
  type Mutation,
} from './tf-module.js';

const README = readFileSync(path.join(TF_DIR, 'README.md'), 'utf8');

/** The rows of the first table under `## heading`, as trimmed cells (header and rule dropped). */
function tableRows(heading: string): string[][] {
  const section = README.split(/^## /m).find((s) => s.startsWith(`${heading}\n`)) ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .slice(2)
    .map((line) =>
      line
        .slice(1, -1)
        .split(/ \| /)
        .map((cell) => cell.trim()),
    );
}

const code = (cell: string | undefined): string => (cell ?? '').replace(/^`(.*)`$/, '$1');

/** Inputs: one row per variable; its type; its default, or every attribute's default. */
const checkInputs: Check = async (m) => {
  const rows = tableRows('Inputs');
  const problems = sameSet(
    'inputs table',
    rows.map((r) => code(r[0])),
    Object.keys(m.variable),
  );
  for (const [cell, typeCell = '', defaultCell = '', description = ''] of rows) {
    const name = code(cell);
    const variable = m.variable[name];
    if (variable === undefined) continue;
    const attributes = await objectAttributes(variable);
    const type = attributes ? 'object' : str(variable.type).replace(/^\$\{(.*)\}$/, '$1');
    if (code(typeCell) !== type) problems.push(`${name}: type ${typeCell}, not \`${type}\``);
    if (attributes === undefined) {
      const documented =
        defaultCell === '**required**' ? undefined : await literal(code(defaultCell));
      if (JSON.stringify(documented) !== JSON.stringify(variable.default)) {
        problems.push(
          `${name}: default ${defaultCell}, not ${JSON.stringify(variable.default ?? 'required')}`,
        );
      }
      continue;
    }
    const documented = new Map<string, string>();
    for (const entry of defaultCell.split('<br>')) {
      const [, attr = entry, value = ''] = /^`(\w+) = (.+)`$/.exec(entry) ?? [];
      documented.set(attr, value);
    }
    problems.push(...sameSet(`${name} attributes`, [...documented.keys()], [...attributes.keys()]));
    for (const [attr, { default: fallback }] of attributes) {
      const value = documented.get(attr);
      if (
        value !== undefined &&
        JSON.stringify(await literal(value)) !== JSON.stringify(fallback)
      ) {
        problems.push(`${name}.${attr}: default ${value}, not ${JSON.stringify(fallback)}`);
      }
      if (!description.includes(`\`${attr}\`:`)) problems.push(`${name}.${attr} is not described`);
    }
  }
  return problems;
};

const checkOutputs: Check = async (m) =>
  sameSet(
    'outputs table',
    tableRows('Outputs').map((r) => code(r[0])),
    Object.keys(m.output),
  );

/** The IAM table lists exactly the module's grants (a conditional one says `(with variable)`). */
const checkIam: Check = async (m) => {
  const documented = tableRows('IAM').map(([principal = '', role = '', on = '']) => {
    const [, who = principal, variable] = /^(.*?) \(with `([\w.]+)`\)$/.exec(principal) ?? [];
    return [who, code(role), on, ...(variable ? [`with ${variable}`] : [])].join(' | ');
  });
  return sameSet(
    'IAM table',
    documented,
    (await grantsOf(m)).map((g) => g.line),
  );
};

const CHECKS = {
  inputs: checkInputs,
  outputs: checkOutputs,
  iam: checkIam,
} satisfies Record<string, Check>;

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: 'a changed default',
    check: 'inputs',
    edit: replaceIn(
      'variables.tf',
      'memory           = optional(string, "512Mi")',
      'memory           = optional(string, "1Gi")',
    ),
    report: /submit_function\.memory: default "512Mi", not "1Gi"/,
  },
  {
    what: 'a new attribute',
    check: 'inputs',
    edit: replaceIn(
      'variables.tf',
      '    retry_count              = optional(number, 1)\n',
      '    retry_count              = optional(number, 1)\n    paused                   = optional(bool, false)\n',
    ),
    report: /poll_schedule attributes: missing paused/,
  },
  {
    what: 'a grant the table does not list',
    check: 'iam',
    edit: appendTo(
      'iam.tf',
      'resource "google_project_iam_member" "poll_logs" {\n  project = var.project_id\n  role    = "roles/logging.viewer"\n  member  = "serviceAccount:${google_service_account.poll.email}"\n}',
    ),
    report: /IAM table: missing poll SA \| roles\/logging\.viewer \| project/,
  },
];

describeChecks('terraform: README', CHECKS, MUTATIONS);
