/**
 * terraform/README.md cannot drift from the module: its inputs table has one row per variable with
 * the type and default (for an object, every attribute with its default), its outputs table one
 * row per output, its IAM table exactly the grants, its monitoring tables every log-based metric
 * (its events and labels) and every alert policy (its metric).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { grantsOf } from './grants.js';
import { eventsOf, labelsOf } from './monitoring.js';
import {
  addressesIn,
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

/** The rows of the table under `## heading` (or `### heading`), as trimmed cells (header and rule dropped). */
function tableRows(heading: string): string[][] {
  const section = README.split(/^###? /m).find((s) => s.startsWith(`${heading}\n`)) ?? '';
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

/** A cell of names, `a`, `b`, as a sorted list. */
const names = (cell: string | undefined): string[] =>
  (cell ?? '')
    .split(',')
    .map((c) => code(c.trim()))
    .filter((c) => c !== '')
    .sort();

/** Log-based metrics: one row per metric, with the events its filter names and its labels. */
const checkMetrics: Check = async (m) => {
  const rows = tableRows('Log-based metrics');
  const metrics = m.resource.google_logging_metric ?? {};
  const problems = sameSet(
    'metrics table',
    rows.map((r) => code(r[0])),
    Object.keys(metrics),
  );
  for (const [cell, events, , labels] of rows) {
    const metric = metrics[code(cell)];
    if (metric === undefined) continue;
    const expected = [...new Set(eventsOf(str(metric.filter)))].sort();
    if (names(events).join() !== expected.join()) {
      problems.push(`${code(cell)}: events ${events ?? ''}, not ${expected.join(', ')}`);
    }
    if (names(labels).join() !== [...labelsOf(metric)].sort().join()) {
      problems.push(`${code(cell)}: labels ${labels ?? ''}, not ${labelsOf(metric).join(', ')}`);
    }
  }
  return problems;
};

/** Alert policies: one row per policy, with the metric its condition reads. */
const checkAlerts: Check = async (m) => {
  const rows = tableRows('Alert policies');
  const policies = m.resource.google_monitoring_alert_policy ?? {};
  const problems = sameSet(
    'alert policies table',
    rows.map((r) => code(r[0])),
    Object.keys(policies),
  );
  for (const [cell, metric] of rows) {
    const policy = policies[code(cell)];
    if (policy === undefined) continue;
    const read = (await addressesIn(policy.conditions))
      .filter((a) => a.startsWith('google_logging_metric.'))
      .map((a) => a.slice('google_logging_metric.'.length));
    if (read.join() !== code(metric)) {
      problems.push(`${code(cell)}: metric ${metric ?? ''}, not ${read.join(', ')}`);
    }
  }
  return problems;
};

const CHECKS = {
  inputs: checkInputs,
  outputs: checkOutputs,
  iam: checkIam,
  metrics: checkMetrics,
  alerts: checkAlerts,
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
  {
    what: 'a metric the table does not list',
    check: 'metrics',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metric" "inputs_duplicate" {\n  name   = "x"\n  filter = "jsonPayload.event=\\"input.duplicate\\""\n}',
    ),
    report: /metrics table: missing inputs_duplicate/,
  },
  {
    what: "a metric's events changed",
    check: 'metrics',
    edit: replaceIn(
      'metrics.tf',
      'jsonPayload.event=\\"job.finished\\"',
      'jsonPayload.event=\\"job.state_changed\\"',
    ),
    report: /jobs_finished: events `job\.finished`, not job\.state_changed/,
  },
  {
    what: "an alert's metric changed",
    check: 'alerts',
    edit: replaceIn(
      'alerts.tf',
      'google_logging_metric.inputs_rejected.name',
      'google_logging_metric.inputs_received.name',
    ),
    report: /rejections: metric `inputs_rejected`, not inputs_received/,
  },
];

describeChecks('terraform: README', CHECKS, MUTATIONS);
