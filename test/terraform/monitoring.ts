/**
 * Checks of the Cloud Monitoring side of the module (metrics.tf, alerts.tf, dashboard.tf and
 * dashboards/pipeline.json): log-based metrics count events the code logs, from the functions' own
 * log entries; alerts and the dashboard name only metrics (and metric labels) the module defines.
 */
import { LOG_EVENT_NAMES } from '../../shared/log-events.js';
import {
  addressesIn,
  astOf,
  block,
  functionsOf,
  isObject,
  refs,
  sameSet,
  str,
  type Check,
  type Json,
  type JsonObject,
  type TfModule,
} from './tf-module.js';

const CATALOGUE = new Set<string>(LOG_EVENT_NAMES);

/** The log events a Logging filter selects: `jsonPayload.event="a"` or `=("a" OR "b")`. */
export function eventsOf(filter: string): string[] {
  return [...filter.matchAll(/jsonPayload\.event=(?:"([^"]+)"|\(([^)]*)\))/g)].flatMap(
    ([, one, many]) =>
      one !== undefined ? [one] : [...(many ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? ''),
  );
}

export function logMetrics(m: TfModule): [string, JsonObject][] {
  return Object.entries(m.resource.google_logging_metric ?? {});
}

/** The label keys of a log-based metric's descriptor. */
export function labelsOf(metric: JsonObject | undefined): string[] {
  const labels = block(metric?.metric_descriptor)?.labels;
  return (Array.isArray(labels) ? labels : []).filter(isObject).map((l) => str(l.key));
}

/** Each metric counts events of shared/log-events.ts that the code logs (`logged`). */
export function eventsCheck(logged: ReadonlySet<string>): Check {
  return async (m) =>
    logMetrics(m).flatMap(([name, metric]) => {
      const address = `google_logging_metric.${name}`;
      const events = eventsOf(str(metric.filter));
      if (events.length === 0) return [`${address}: its filter names no jsonPayload.event`];
      return events.flatMap((e) =>
        !CATALOGUE.has(e)
          ? [`${address}: ${e} is not a log event of shared/log-events.ts`]
          : !logged.has(e)
            ? [`${address}: no code logs ${e}`]
            : [],
      );
    });
}

/**
 * Each metric reads the functions' own entries: Cloud Run revisions (gen2 functions) whose service
 * is one of the module's functions, directly or through a local of the filter.
 */
export const checkSource: Check = async (m) => {
  const problems: string[] = [];
  const functions = functionsOf(m).map((f) => `${f.address}.name`);
  for (const [name, metric] of logMetrics(m)) {
    const locals = (await addressesIn(metric.filter)).filter((a) => a.startsWith('local.'));
    const parts = [metric.filter, ...locals.map((l) => m.locals[l.slice('local.'.length)])];
    const text = parts
      .map((p) => str(p))
      .join(' ')
      .replace(/\\"/g, '"');
    const named = (await Promise.all(parts.map(refs))).flat();
    const missing = functions.filter((f) => !named.includes(f));
    if (
      !text.includes('resource.type="cloud_run_revision"') ||
      !text.includes('resource.labels.service_name') ||
      missing.length > 0
    ) {
      problems.push(
        `google_logging_metric.${name}: its filter does not select the functions' logs (resource.type="cloud_run_revision" and resource.labels.service_name of ${functions.join(', ')}${missing.length > 0 ? `; missing ${missing.join(', ')}` : ''})`,
      );
    }
  }
  return problems;
};

/** Label extractors match the descriptor's labels; a value extractor exactly for distributions. */
export const checkExtractors: Check = async (m) =>
  logMetrics(m).flatMap(([name, metric]) => {
    const address = `google_logging_metric.${name}`;
    const descriptor = block(metric.metric_descriptor);
    const extractors = isObject(metric.label_extractors) ? metric.label_extractors : {};
    const distribution = descriptor?.value_type === 'DISTRIBUTION';
    const extractor = /^EXTRACT\(jsonPayload\.\w+\)$/;
    return [
      ...sameSet(`${address} label extractors`, Object.keys(extractors), labelsOf(metric)),
      ...Object.entries(extractors)
        .filter(([, e]) => !extractor.test(str(e)))
        .map(
          ([k, e]) => `${address}: label ${k} extracts ${str(e)}, not EXTRACT(jsonPayload.<field>)`,
        ),
      ...(descriptor?.metric_kind === 'DELTA' ? [] : [`${address}: a log-based metric is DELTA`]),
      ...(distribution === (metric.value_extractor !== undefined)
        ? []
        : [`${address}: a value_extractor goes with value_type DISTRIBUTION, and only there`]),
      ...(metric.value_extractor === undefined || extractor.test(str(metric.value_extractor))
        ? []
        : [`${address}: value_extractor must be EXTRACT(jsonPayload.<field>)`]),
      ...(distribution && metric.bucket_options === undefined
        ? [`${address}: a distribution needs bucket_options`]
        : []),
    ];
  });

/** `metric.label.x` / `metric.labels.x` names in a filter or group_by_fields. */
function labelNames(values: Json[]): string[] {
  return values.flatMap((v) =>
    [...str(v).matchAll(/metric\.labels?\.(\w+)/g)].map((x) => x[1] ?? ''),
  );
}

const METRIC_TYPE =
  /metric\.type="logging\.googleapis\.com\/user\/\$\{google_logging_metric\.(\w+)\.name\}"/;

/**
 * Every alert condition names a log-based metric of the module by reference, the resource type,
 * only labels that metric has, and a comparison the service supports; every policy notifies
 * monitoring.notification_channels.
 */
export const checkAlerts: Check = async (m) => {
  const metrics = m.resource.google_logging_metric ?? {};
  const problems: string[] = [];
  for (const [name, policy] of Object.entries(m.resource.google_monitoring_alert_policy ?? {})) {
    const address = `google_monitoring_alert_policy.${name}`;
    if (
      !(await refs(policy.notification_channels)).includes('var.monitoring.notification_channels')
    ) {
      problems.push(
        `${address}: notification_channels must be var.monitoring.notification_channels`,
      );
    }
    const conditions = (Array.isArray(policy.conditions) ? policy.conditions : []).filter(isObject);
    for (const condition of conditions) {
      const kinds = ['condition_threshold', 'condition_absent'].filter((k) => k in condition);
      if (kinds.length !== 1) {
        problems.push(`${address}: each condition is one condition_threshold or condition_absent`);
        continue;
      }
      const body = block(condition[kinds[0] ?? '']);
      const filter = str(body?.filter);
      const metric = METRIC_TYPE.exec(filter)?.[1];
      if (metric === undefined || metrics[metric] === undefined) {
        problems.push(
          `${address}: its filter must name a log-based metric of this module as metric.type="logging.googleapis.com/user/\${google_logging_metric.<name>.name}"${metric ? ` (${metric} is not defined)` : ''}`,
        );
        continue;
      }
      if (!filter.includes('resource.type='))
        problems.push(`${address}: its filter names no resource.type`);
      const aggregations = (Array.isArray(body?.aggregations) ? body.aggregations : []).filter(
        isObject,
      );
      const used = labelNames([
        filter,
        ...aggregations.flatMap((a) => (Array.isArray(a.group_by_fields) ? a.group_by_fields : [])),
      ]);
      const defined = labelsOf(metrics[metric]);
      for (const label of used.filter((l) => !defined.includes(l))) {
        problems.push(`${address}: ${label} is not a label of google_logging_metric.${metric}`);
      }
      if (
        body?.comparison !== undefined &&
        !['COMPARISON_GT', 'COMPARISON_LT'].includes(str(body.comparison))
      ) {
        problems.push(`${address}: the service supports only COMPARISON_GT and COMPARISON_LT`);
      }
    }
    if (conditions.length === 0) problems.push(`${address}: no condition`);
  }
  return problems;
};

/** The template variables of a `templatefile(path, { … })` value: name → source. */
async function templateVariables(
  value: Json | undefined,
): Promise<{ path: string; vars: Record<string, string> } | undefined> {
  const ast = await astOf(value);
  if (ast?.type !== 'function' || ast.meta.name !== 'templatefile') return undefined;
  const [template, object] = ast.children;
  if (template === undefined || object?.type !== 'object' || !('meta' in template))
    return undefined;
  return { path: template.meta.value, vars: object.meta.items };
}

/** A local map whose values each refer to one resource of `type`: key → resource name. */
async function localTargets(
  m: TfModule,
  source: string | undefined,
  type: string,
): Promise<Map<string, string | undefined>> {
  const local = /^local\.(\w+)$/.exec(source ?? '')?.[1];
  const map = local === undefined ? undefined : m.locals[local];
  const targets = new Map<string, string | undefined>();
  for (const [key, v] of Object.entries(isObject(map) ? map : {})) {
    const found = (await refs(v)).map((r) => new RegExp(`^${type}\\.(\\w+)\\.name$`).exec(r)?.[1]);
    targets.set(key, found.length === 1 ? found[0] : undefined);
  }
  return targets;
}

/** Every string inside a JSON value, with the object it belongs to and its key. */
function* strings(
  v: unknown,
  parent?: Record<string, unknown>,
  key?: string,
): Generator<[string, Record<string, unknown> | undefined, string | undefined]> {
  if (typeof v === 'string') yield [v, parent, key];
  else if (Array.isArray(v)) for (const x of v) yield* strings(x, parent, key);
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) yield* strings(x, v as Record<string, unknown>, k);
  }
}

/**
 * The dashboard is `templatefile("…/dashboards/pipeline.json", {…})` of `template` (its text): its
 * placeholders are template variables; `metric` and `alert` are locals mapping keys to the
 * module's log-based metrics and alert policies. Every chart's filter names a metric through
 * `${metric.<key>}` and only labels that metric has; every metric is charted and every alert
 * policy has its alert chart.
 */
export function dashboardCheck(template: string): Check {
  return async (m) => {
    const dashboards = Object.entries(m.resource.google_monitoring_dashboard ?? {});
    if (dashboards.length !== 1)
      return [`expected one google_monitoring_dashboard, found ${dashboards.length}`];
    const [name, dashboard] = dashboards[0] ?? ['', {}];
    const address = `google_monitoring_dashboard.${name}`;
    const call = await templateVariables(dashboard.dashboard_json);
    if (call === undefined || !call.path.endsWith('/dashboards/pipeline.json"')) {
      return [
        `${address}: dashboard_json must be templatefile("\${path.module}/dashboards/pipeline.json", {…})`,
      ];
    }
    const metrics = await localTargets(m, call.vars.metric, 'google_logging_metric');
    const alerts = await localTargets(m, call.vars.alert, 'google_monitoring_alert_policy');
    const definedMetrics = m.resource.google_logging_metric ?? {};
    const definedAlerts = m.resource.google_monitoring_alert_policy ?? {};
    const problems: string[] = [];
    for (const [key, target] of metrics) {
      if (target === undefined || definedMetrics[target] === undefined) {
        problems.push(`${address}: \${metric.${key}} is not a log-based metric of this module`);
      }
    }
    for (const [key, target] of alerts) {
      if (target === undefined || definedAlerts[target] === undefined) {
        problems.push(`${address}: \${alert.${key}} is not an alert policy of this module`);
      }
    }

    let parsed: unknown;
    try {
      parsed = JSON.parse(template);
    } catch (err) {
      return [...problems, `dashboards/pipeline.json is not JSON: ${String(err)}`];
    }
    if (/%\{/.test(template))
      problems.push('dashboards/pipeline.json: no template directives (%{…})');
    const charted = new Set<string>();
    const alertCharts = new Set<string>();
    for (const [text, parent, key] of strings(parsed)) {
      for (const [, placeholder = ''] of text.matchAll(/\$\{([^}]*)\}/g)) {
        const [root = '', member] = placeholder.split('.');
        const known =
          root === 'metric'
            ? metrics.has(member ?? '')
            : root === 'alert'
              ? alerts.has(member ?? '')
              : member === undefined && root in call.vars;
        if (!known)
          problems.push(
            `dashboards/pipeline.json: \${${placeholder}} is not a template variable of ${address}`,
          );
      }
      if (key === 'filter') {
        const metric = /metric\.type="\$\{metric\.(\w+)\}"/.exec(text)?.[1];
        const target = metric === undefined ? undefined : metrics.get(metric);
        if (target === undefined) {
          problems.push(
            `dashboards/pipeline.json: filter ${text} does not chart a metric of this module as metric.type="\${metric.<key>}"`,
          );
          continue;
        }
        charted.add(target);
        const aggregation = parent?.aggregation;
        const groupBy =
          typeof aggregation === 'object' && aggregation !== null && 'groupByFields' in aggregation
            ? aggregation.groupByFields
            : [];
        const defined = labelsOf(definedMetrics[target]);
        for (const label of labelNames([
          text,
          ...(Array.isArray(groupBy) ? groupBy.map(String) : []),
        ])) {
          if (!defined.includes(label))
            problems.push(
              `dashboards/pipeline.json: ${label} is not a label of google_logging_metric.${target}`,
            );
        }
      }
      if (
        key === 'name' &&
        parent !== undefined &&
        'name' in parent &&
        text.startsWith('${alert.')
      ) {
        const target = alerts.get(text.slice('${alert.'.length, -1));
        if (target !== undefined) alertCharts.add(target);
      }
    }
    for (const metric of Object.keys(definedMetrics).filter((x) => !charted.has(x))) {
      problems.push(`google_logging_metric.${metric} is not charted on the dashboard`);
    }
    for (const policy of Object.keys(definedAlerts).filter((x) => !alertCharts.has(x))) {
      problems.push(`google_monitoring_alert_policy.${policy} has no alert chart on the dashboard`);
    }
    return problems;
  };
}
