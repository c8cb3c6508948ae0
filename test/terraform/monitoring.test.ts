/**
 * Monitoring: every log-based metric counts log events the code really logs (shared/log-events.ts,
 * and a logger call in shared/ or functions/), from the functions' own entries; every alert
 * condition and every dashboard chart names a metric the module defines, and only its labels;
 * every metric is charted and every alert policy shown.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_EVENT_NAMES } from '../../shared/log-events.js';
import { loggedEvents, loggedEventsIn } from './logged-events.js';
import {
  checkAlerts,
  checkExtractors,
  checkSource,
  dashboardCheck,
  eventsCheck,
  eventsOf,
} from './monitoring.js';
import { describeChecks, loadModule, replaceIn, TF_DIR, type Mutation } from './tf-module.js';

const LOGGED = loggedEvents();
const DASHBOARD = readFileSync(path.join(TF_DIR, 'dashboards', 'pipeline.json'), 'utf8');

const CHECKS = {
  events: eventsCheck(LOGGED),
  source: checkSource,
  extractors: checkExtractors,
  alerts: checkAlerts,
  dashboard: dashboardCheck(DASHBOARD),
};

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: 'a metric of an event that does not exist',
    check: 'events',
    edit: replaceIn(
      'metrics.tf',
      'jsonPayload.event=\\"input.received\\"',
      'jsonPayload.event=\\"input.recieved\\"',
    ),
    report:
      /google_logging_metric\.inputs_received: input\.recieved is not a log event of shared\/log-events\.ts/,
  },
  {
    what: 'one of several events misspelt',
    check: 'events',
    edit: replaceIn('metrics.tf', '\\"poll.job_failed\\" OR', '\\"poll.jobs_failed\\" OR'),
    report: /google_logging_metric\.poll_errors: poll\.jobs_failed is not a log event/,
  },
  {
    what: 'a metric reading every Cloud Run service',
    check: 'source',
    edit: replaceIn(
      'metrics.tf',
      '"${local.function_logs_filter} AND jsonPayload.event=\\"input.received\\""',
      '"resource.type=\\"cloud_run_revision\\" AND jsonPayload.event=\\"input.received\\""',
    ),
    report:
      /google_logging_metric\.inputs_received: its filter does not select the functions' logs/,
  },
  {
    what: "metrics reading only the submit function's logs",
    check: 'source',
    edit: replaceIn(
      'metrics.tf',
      '(\\"${google_cloudfunctions2_function.submit.name}\\" OR \\"${google_cloudfunctions2_function.poll.name}\\")',
      '\\"${google_cloudfunctions2_function.submit.name}\\"',
    ),
    report:
      /google_logging_metric\.poll_runs: .*missing google_cloudfunctions2_function\.poll\.name/,
  },
  {
    what: 'a label extractor without its descriptor label',
    check: 'extractors',
    edit: replaceIn(
      'metrics.tf',
      '    error_code = "EXTRACT(jsonPayload.errorCode)"\n',
      '    error_code = "EXTRACT(jsonPayload.errorCode)"\n    job_id     = "EXTRACT(jsonPayload.jobId)"\n',
    ),
    report: /google_logging_metric\.inputs_rejected label extractors: unexpected job_id/,
  },
  {
    what: 'a distribution without its value extractor',
    check: 'extractors',
    edit: replaceIn('metrics.tf', '  value_extractor = "EXTRACT(jsonPayload.waiting)"\n', ''),
    report:
      /google_logging_metric\.queue_waiting: a value_extractor goes with value_type DISTRIBUTION/,
  },
  {
    what: 'an alert on a metric the module does not define',
    check: 'alerts',
    edit: replaceIn(
      'alerts.tf',
      'google_logging_metric.jobs_finished.name',
      'google_logging_metric.jobs_done.name',
    ),
    report: /google_monitoring_alert_policy\.jobs_failed: .*\(jobs_done is not defined\)/,
  },
  {
    what: 'an alert on a label the metric does not have',
    check: 'alerts',
    edit: replaceIn(
      'alerts.tf',
      'AND metric.label.state=one_of(',
      'AND metric.label.status=one_of(',
    ),
    report:
      /google_monitoring_alert_policy\.jobs_failed: status is not a label of google_logging_metric\.jobs_finished/,
  },
  {
    what: 'an alert that notifies nobody',
    check: 'alerts',
    edit: replaceIn(
      'alerts.tf',
      '  severity              = "WARNING"\n  notification_channels = var.monitoring.notification_channels',
      '  severity              = "WARNING"\n  notification_channels = []',
    ),
    report:
      /google_monitoring_alert_policy\.rejections: notification_channels must be var\.monitoring\.notification_channels/,
  },
  {
    what: 'a comparison the service refuses',
    check: 'alerts',
    edit: replaceIn(
      'alerts.tf',
      'comparison              = "COMPARISON_GT"\n      threshold_value         = 0',
      'comparison              = "COMPARISON_GE"\n      threshold_value         = 0',
    ),
    report:
      /google_monitoring_alert_policy\.jobs_failed: the service supports only COMPARISON_GT and COMPARISON_LT/,
  },
  {
    what: 'a dashboard placeholder without its metric',
    check: 'dashboard',
    edit: replaceIn(
      'dashboard.tf',
      '    digests              = "logging.googleapis.com/user/${google_logging_metric.digests.name}"\n',
      '',
    ),
    report:
      /\$\{metric\.digests\} is not a template variable[\s\S]*google_logging_metric\.digests is not charted/,
  },
  {
    what: 'a dashboard metric the module does not define',
    check: 'dashboard',
    edit: replaceIn(
      'dashboard.tf',
      'google_logging_metric.digests.name',
      'google_logging_metric.digest.name',
    ),
    report: /\$\{metric\.digests\} is not a log-based metric of this module/,
  },
];

describeChecks('terraform: monitoring', CHECKS, MUTATIONS);

describe('terraform: monitoring, against the code and the dashboard file', () => {
  it('every catalogued event is logged by the code (the events check relies on it)', () => {
    expect(LOG_EVENT_NAMES.filter((e) => !LOGGED.has(e))).toEqual([]);
  });

  it('the events check reports a metric of an event no code logs', async () => {
    const without = new Set([...LOGGED].filter((e) => e !== 'input.received'));
    expect(await eventsCheck(without)(await loadModule())).toEqual([
      'google_logging_metric.inputs_received: no code logs input.received',
    ]);
  });

  it('reads events from logger calls, either branch, element access and LogEvent helpers only', () => {
    const source = [
      "log.info('a.one', 'm');",
      "deps.log.warning(ok ? 'a.two' : 'a.three', 'm');",
      "run.deps.log[level]('a.four', 'm');",
      'function failed(run: Run, what: LogEvent): void {}',
      "failed(run, 'a.five');",
      "const event = { eventType: 'a.six' };",
      "other('a.seven');",
    ].join('\n');
    expect([...loggedEventsIn('x.ts', source)].sort()).toEqual([
      'a.five',
      'a.four',
      'a.one',
      'a.three',
      'a.two',
    ]);
  });

  it('reads the events of a filter', () => {
    expect(eventsOf('x AND jsonPayload.event="a.b"')).toEqual(['a.b']);
    expect(eventsOf('jsonPayload.event=("a.b" OR "c.d")')).toEqual(['a.b', 'c.d']);
    expect(eventsOf('severity>=ERROR')).toEqual([]);
  });

  const broken: [string, (json: string) => string, RegExp][] = [
    [
      'a chart of a metric type written out',
      (t) =>
        t.replace(
          'metric.type=\\"${metric.poll_runs}\\"',
          'metric.type=\\"logging.googleapis.com/user/other\\"',
        ),
      /does not chart a metric of this module[\s\S]*google_logging_metric\.poll_runs is not charted/,
    ],
    [
      'an unknown placeholder',
      (t) => t.replace('${metric.poll_runs_truncated}', '${metric.truncated_runs}'),
      /\$\{metric\.truncated_runs\} is not a template variable/,
    ],
    [
      'a label the metric does not have',
      (t) => t.replace('"metric.label.error_code"', '"metric.label.errorCode"'),
      /errorCode is not a label of google_logging_metric\.inputs_rejected/,
    ],
    [
      'a missing alert chart',
      (t) => t.replace('"${alert.queue_age}"', '"projects/p/alertPolicies/1"'),
      /google_monitoring_alert_policy\.queue_age has no alert chart/,
    ],
    [
      'text that is not JSON',
      (t) => t.replace('"mosaicLayout": {', '"mosaicLayout": {,'),
      /is not JSON/,
    ],
  ];
  it.each(broken)('the dashboard check catches %s', async (_what, edit, report) => {
    const text = edit(DASHBOARD);
    expect(text).not.toBe(DASHBOARD);
    expect((await dashboardCheck(text)(await loadModule())).join('\n')).toMatch(report);
  });
});
