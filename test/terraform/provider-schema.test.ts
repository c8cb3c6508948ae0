/**
 * The module checked against the real provider schemas (test/terraform/provider-schema.json, see
 * provider-schema.ts): no misspelt type, argument or block, nothing at the wrong depth, nothing
 * required left out. Each mutation feeds the check a broken HCL snippet and expects its report.
 * Then the extract itself: its pinned providers are those terraform/versions.tf admits, and where
 * the bindings are installed it is exactly what scripts/terraform-schema.mjs extracts from them.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parse } from '@cdktf/hcl2json';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { extractProvider, installedManifest, PINS } from '../../scripts/terraform-schema.mjs';
import { loadExtract, schemaCheck } from './provider-schema.js';
import { appendTo, describeChecks, replaceIn, ROOT, TF_DIR, type Mutation } from './tf-module.js';

const EXTRACT = loadExtract();
const CHECKS = { schema: schemaCheck(EXTRACT) };

const MUTATIONS: Mutation<'schema'>[] = [
  {
    what: 'a misspelt argument',
    check: 'schema',
    edit: replaceIn(
      'metrics.tf',
      'value_extractor = "EXTRACT(jsonPayload.waiting)"',
      'value_extracter = "EXTRACT(jsonPayload.waiting)"',
    ),
    report:
      /google_logging_metric\.queue_waiting: no argument or block "value_extracter" here \(hashicorp\/google 6\.50\.0\); did you mean value_extractor\?/,
  },
  {
    what: 'a missing required argument',
    check: 'schema',
    edit: replaceIn(
      'metrics.tf',
      '  filter      = "${local.function_logs_filter} AND jsonPayload.event=\\"input.received\\""\n',
      '',
    ),
    report: /google_logging_metric\.inputs_received: missing required argument filter/,
  },
  {
    what: 'a missing required argument in a nested block',
    check: 'schema',
    edit: appendTo(
      'alerts.tf',
      'resource "google_monitoring_alert_policy" "broken" {\n  display_name = "x"\n  combiner     = "OR"\n  conditions {\n    display_name = "y"\n    condition_absent {\n      filter = "z"\n    }\n  }\n}',
    ),
    report:
      /google_monitoring_alert_policy\.broken\.conditions\.condition_absent: missing required argument duration/,
  },
  {
    what: 'a block at the wrong depth (oidc_token outside http_target)',
    check: 'schema',
    edit: appendTo(
      'scheduler.tf',
      'resource "google_cloud_scheduler_job" "broken" {\n  name = "x"\n  http_target {\n    uri = "https://example.com"\n  }\n  oidc_token {\n    service_account_email = "a@b.iam.gserviceaccount.com"\n  }\n}',
    ),
    report:
      /google_cloud_scheduler_job\.broken: no argument or block "oidc_token" here \(hashicorp\/google 6\.50\.0\); it belongs in http_target/,
  },
  {
    what: 'a block one level too deep (aggregations inside trigger)',
    check: 'schema',
    edit: replaceIn(
      'alerts.tf',
      '      trigger {\n        count = 1\n      }\n    }\n  }\n\n  alert_strategy {\n    auto_close = "86400s"\n  }\n\n  documentation {\n    subject   = "${var.prefix}: more than',
      '      trigger {\n        count = 1\n        aggregations {\n          alignment_period = "60s"\n        }\n      }\n    }\n  }\n\n  alert_strategy {\n    auto_close = "86400s"\n  }\n\n  documentation {\n    subject   = "${var.prefix}: more than',
    ),
    report:
      /google_monitoring_alert_policy\.rejections\.conditions\.condition_threshold\.trigger: no argument or block "aggregations" here .*; it belongs in conditions\.condition_absent or conditions\.condition_threshold/,
  },
  {
    what: 'a missing required block',
    check: 'schema',
    edit: appendTo(
      'alerts.tf',
      'resource "google_monitoring_alert_policy" "broken" {\n  display_name = "x"\n  combiner     = "OR"\n}',
    ),
    report: /google_monitoring_alert_policy\.broken: missing required block conditions/,
  },
  {
    what: 'a misspelt resource type',
    check: 'schema',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metrics" "broken" {\n  name   = "x"\n  filter = "y"\n}',
    ),
    report:
      /google_logging_metrics\.broken: google 6\.50\.0 has no resource type google_logging_metrics; did you mean google_logging_metric\?/,
  },
  {
    what: 'a beta-only resource without the beta provider',
    check: 'schema',
    edit: replaceIn('service-accounts.tf', '  provider = google-beta\n', ''),
    report:
      /google_project_service_identity\.vertex_ai: google 6\.50\.0 has no resource type google_project_service_identity; google-beta has it/,
  },
  {
    what: 'an argument written as a block',
    check: 'schema',
    edit: replaceIn(
      'pubsub.tf',
      '  labels                     = local.labels\n\n  depends_on',
      '  labels {\n    team = "data"\n  }\n\n  depends_on',
    ),
    report:
      /google_pubsub_topic\.completion\.labels is an argument \(map\(string\)\): write labels = …/,
  },
  {
    what: 'a block written as an argument',
    check: 'schema',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metric" "broken" {\n  name   = "x"\n  filter = "y"\n  metric_descriptor = {\n    metric_kind = "DELTA"\n    value_type  = "INT64"\n  }\n}',
    ),
    report:
      /google_logging_metric\.broken\.metric_descriptor is a block: write metric_descriptor \{ … \}/,
  },
  {
    what: 'a single block written twice',
    check: 'schema',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metric" "broken" {\n  name   = "x"\n  filter = "y"\n  metric_descriptor {\n    metric_kind = "DELTA"\n    value_type  = "INT64"\n  }\n  metric_descriptor {\n    metric_kind = "DELTA"\n    value_type  = "INT64"\n  }\n}',
    ),
    report: /google_logging_metric\.broken: 2 metric_descriptor blocks; at most one is allowed/,
  },
  {
    what: 'a dynamic block the resource does not have',
    check: 'schema',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metric" "broken" {\n  name   = "x"\n  filter = "y"\n  dynamic "label" {\n    for_each = ["a"]\n    content {\n      key = label.value\n    }\n  }\n}',
    ),
    report: /google_logging_metric\.broken: no argument or block dynamic "label" here/,
  },
  {
    what: 'a misspelt argument inside a dynamic block',
    check: 'schema',
    edit: appendTo(
      'metrics.tf',
      'resource "google_logging_metric" "broken" {\n  name   = "x"\n  filter = "y"\n  metric_descriptor {\n    metric_kind = "DELTA"\n    value_type  = "INT64"\n    dynamic "labels" {\n      for_each = ["a"]\n      content {\n        kee = labels.value\n      }\n    }\n  }\n}',
    ),
    report:
      /google_logging_metric\.broken\.metric_descriptor\.labels: no argument or block "kee" here .*did you mean key\?[\s\S]*metric_descriptor\.labels: missing required argument key/,
  },
  {
    what: 'a misspelt data source argument',
    check: 'schema',
    edit: replaceIn(
      'main.tf',
      '  project_id = var.project_id\n}',
      '  projectid = var.project_id\n}',
    ),
    report:
      /data\.google_project\.this: no argument or block "projectid" here .*did you mean project_id\?/,
  },
  {
    what: 'a misspelt provider argument',
    check: 'schema',
    edit: replaceIn(
      'main.tf',
      'provider "google" {\n  project = var.project_id',
      'provider "google" {\n  projct = var.project_id',
    ),
    report:
      /provider\.google: no argument or block "projct" here \(hashicorp\/google 6\.50\.0\); did you mean project\?/,
  },
  {
    what: 'a value the provider does not admit',
    check: 'schema',
    edit: replaceIn(
      'alerts.tf',
      'per_series_aligner   = "ALIGN_PERCENTILE_99"',
      'per_series_aligner   = "ALIGN_PERCENTILE_90"',
    ),
    report:
      /google_monitoring_alert_policy\.queue_age\.conditions\.condition_threshold\.aggregations\.per_series_aligner: "ALIGN_PERCENTILE_90" is not one of the values the provider admits; did you mean ALIGN_PERCENTILE_99\?/,
  },
  {
    what: 'an unknown lifecycle setting',
    check: 'schema',
    edit: replaceIn(
      'alerts.tf',
      '  lifecycle {\n    precondition {',
      '  lifecycle {\n    prevent_destroyed = true\n    precondition {',
    ),
    report:
      /google_monitoring_alert_policy\.poll_stalled\.lifecycle: no "prevent_destroyed" in lifecycle/,
  },
];

describeChecks('terraform: provider schema', CHECKS, MUTATIONS);

// --- The extract ---------------------------------------------------------------------------------

const REQUIRED_PROVIDERS = z.object({
  terraform: z.array(
    z.object({
      required_providers: z.array(
        z.record(z.string(), z.object({ source: z.string(), version: z.string() })),
      ),
    }),
  ),
});

/** Whether `version` meets one Terraform constraint like `>= 6.0` or `~> 2.4`. */
function meets(version: string, constraint: string): boolean {
  const m = /^\s*(>=|<=|!=|~>|>|<|=)?\s*([0-9.]+)\s*$/.exec(constraint);
  if (!m) throw new Error(`unreadable constraint ${constraint}`);
  const [, op = '=', bound = ''] = m;
  const v = version.split('.').map(Number);
  const b = bound.split('.').map(Number);
  const cmp = (x: number[], y: number[]): number => {
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = (x[i] ?? 0) - (y[i] ?? 0);
      if (d !== 0) return Math.sign(d);
    }
    return 0;
  };
  const c = cmp(v, b);
  switch (op) {
    case '>=':
      return c >= 0;
    case '>':
      return c > 0;
    case '<=':
      return c <= 0;
    case '<':
      return c < 0;
    case '!=':
      return c !== 0;
    case '~>': {
      // ~> 2.4 admits 2.x from 2.4; ~> 2.4.1 admits 2.4.x from 2.4.1.
      const prefix = b.slice(0, Math.max(1, b.length - 1));
      return c >= 0 && cmp(v.slice(0, prefix.length), prefix) === 0;
    }
    default:
      return c === 0;
  }
}

describe('terraform: provider schema extract', () => {
  it('reads version constraints as Terraform does', () => {
    expect(meets('6.50.0', '>= 6.0')).toBe(true);
    expect(meets('8.0.0', '< 8.0')).toBe(false);
    expect(meets('2.7.1', '~> 2.4')).toBe(true);
    expect(meets('3.0.0', '~> 2.4')).toBe(false);
    expect(meets('2.5.0', '~> 2.4.1')).toBe(false);
  });

  it('pins, for every provider of terraform/versions.tf, bindings of a version it admits', async () => {
    const text = readFileSync(path.join(TF_DIR, 'versions.tf'), 'utf8');
    const [required = {}] =
      REQUIRED_PROVIDERS.parse(await parse('versions.tf', text)).terraform[0]?.required_providers ??
      [];
    expect(Object.keys(required).sort()).toEqual(PINS.map((p) => p.provider).sort());
    for (const pin of PINS) {
      const wanted = required[pin.provider];
      expect(wanted?.source, pin.provider).toBe(pin.source);
      for (const constraint of wanted?.version.split(',') ?? []) {
        expect(meets(pin.version, constraint), `${pin.provider} ${pin.version} ${constraint}`).toBe(
          true,
        );
      }
      expect(EXTRACT.providers[pin.provider]).toMatchObject({
        source: pin.source,
        version: pin.version,
        package: `${pin.package}@${pin.packageVersion}`,
      });
    }
  });

  const resolves = (name: string): boolean => {
    try {
      createRequire(path.join(ROOT, 'package.json')).resolve(`${name}/package.json`);
      return true;
    } catch {
      return false;
    }
  };
  for (const pin of PINS) {
    const installed = resolves(pin.package);
    // The bindings are not dependencies (640 MB for the two Google ones); install them without
    // saving (npm install --no-save <package>@<version>) to run this comparison.
    it.skipIf(!installed)(
      `is what ${pin.package}@${pin.packageVersion} gives${installed ? '' : ' (skipped: not installed)'}`,
      () => {
        const committed = EXTRACT.providers[pin.provider];
        const fresh = extractProvider(installedManifest(pin), pin, {
          resources: Object.keys(committed?.resources ?? {}),
          dataSources: Object.keys(committed?.dataSources ?? {}),
        });
        expect(fresh).toEqual(committed);
      },
    );
  }
});
