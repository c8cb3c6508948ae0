/**
 * `batch-courier doctor`: is everything wired? One line per check, each failure with its fix:
 * the configuration, the credentials, the APIs, the caller's permissions on the project, the
 * buckets and the topic, the topic itself, the Firestore database and the composite indexes the
 * poller and `jobs` need, the buckets, and Vertex AI. Against the emulators, checks that have no
 * meaning there (APIs, IAM, indexes) say "skipped: emulator".
 */
import { OUTSTANDING_JOBS_INDEX } from '../../shared/adapters/job-index.js';
import { RECENT_JOBS_INDEX } from '../../shared/adapters/recent-jobs-index.js';
import type { CloudChecks, IamResource, ListedIndex } from '../../shared/adapters/cloud-checks.js';
import type { Config } from '../../shared/config.js';
import { describeError } from '../../shared/core/errors.js';
import type { Context } from '../context.js';
import { emulatorHosts } from '../dependencies.js';
import { CliError } from '../options.js';
import { splitPrefix } from '../records.js';

/** The outcome of one check. */
export interface CheckResult {
  name: string;
  status: 'ok' | 'fail' | 'warn' | 'skipped';
  detail: string;
  fix?: string;
}

/** The APIs the pipeline uses at run time (terraform/apis.tf enables them with the rest). */
export const RUNTIME_APIS = Object.freeze([
  'aiplatform.googleapis.com',
  'firestore.googleapis.com',
  'pubsub.googleapis.com',
  'storage.googleapis.com',
]);

/** What this command does in the project, and the roles that grant it. */
const PROJECT_PERMISSIONS = Object.freeze([
  'datastore.entities.get',
  'datastore.entities.list',
  'aiplatform.batchPredictionJobs.get',
  'aiplatform.batchPredictionJobs.list',
  'aiplatform.batchPredictionJobs.cancel',
]);
const OUTPUT_PERMISSIONS = Object.freeze(['storage.objects.get', 'storage.objects.list']);
const INPUT_PERMISSIONS = Object.freeze(['storage.objects.list', 'storage.objects.create']);
const TOPIC_PERMISSIONS = Object.freeze(['pubsub.topics.publish']);

const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
const fail = (name: string, detail: string, fix?: string): CheckResult => ({
  name,
  status: 'fail',
  detail,
  ...(fix ? { fix } : {}),
});
const skipped = (name: string, why: string): CheckResult => ({
  name,
  status: 'skipped',
  detail: `skipped: ${why}`,
});

/** Options of {@link doctorCommand}. */
export interface DoctorOptions {
  /** The input bucket to check (the functions' configuration does not name it). */
  inputBucket?: string;
}

/** Runs `check`, turning a throw into a failed line. */
async function guarded(
  name: string,
  check: () => Promise<CheckResult | CheckResult[]>,
  fix?: string,
): Promise<CheckResult[]> {
  try {
    const r = await check();
    return Array.isArray(r) ? r : [r];
  } catch (err) {
    return [fail(name, describeError(err).message, fix)];
  }
}

/** True when `listed` has an index with exactly `wanted`'s fields; its state, if so. */
function indexState(
  listed: ListedIndex[],
  wanted: typeof OUTSTANDING_JOBS_INDEX | typeof RECENT_JOBS_INDEX,
): string | undefined {
  const key = (fields: readonly { fieldPath: string; order: string }[]): string =>
    fields.map((f) => `${f.fieldPath}:${f.order}`).join(',');
  return listed.find(
    (i) => i.queryScope === wanted.queryScope && key(i.fields) === key(wanted.fields),
  )?.state;
}

/** The `gcloud` command that creates an index. */
function indexCommand(
  config: Config,
  index: typeof OUTSTANDING_JOBS_INDEX | typeof RECENT_JOBS_INDEX,
): string {
  const fields = index.fields
    .map((f) => `--field-config=field-path=${f.fieldPath},order=${f.order.toLowerCase()}`)
    .join(' ');
  return `gcloud firestore indexes composite create --project=${config.GOOGLE_CLOUD_PROJECT} --collection-group=${config.JOBS_COLLECTION} ${fields}`;
}

async function permissionCheck(
  cloud: CloudChecks,
  name: string,
  resource: IamResource,
  permissions: readonly string[],
  role: string,
  where: string,
  who: string,
): Promise<CheckResult> {
  const missing = await cloud.missingPermissions(resource, permissions);
  if (missing.length === 0) return ok(name, `${permissions.join(', ')}`);
  return fail(name, `missing ${missing.join(', ')}`, `grant ${who} ${role} on ${where}`);
}

async function cloudChecks(
  config: Config,
  cloud: CloudChecks,
  inputBucket: string | undefined,
): Promise<CheckResult[]> {
  const project = config.GOOGLE_CLOUD_PROJECT;
  const identity = await cloud.identity().catch((err: unknown) => err);
  const credentials =
    typeof identity === 'string'
      ? ok('credentials', `Application Default Credentials of ${identity}`)
      : identity instanceof Error
        ? fail(
            'credentials',
            identity.message,
            'gcloud auth application-default login (or set GOOGLE_APPLICATION_CREDENTIALS)',
          )
        : ok('credentials', 'Application Default Credentials (their account is not named)');
  if (credentials.status === 'fail') return [credentials];
  const who = typeof identity === 'string' ? identity : 'your account';
  const [bucket] = splitPrefix(config.OUTPUT_URI_PREFIX);
  const topic = config.COMPLETION_TOPIC;
  const results = await Promise.all([
    guarded(
      'APIs',
      async () => {
        const disabled = await cloud.disabledServices(RUNTIME_APIS);
        return disabled.length === 0
          ? ok('APIs', `enabled: ${RUNTIME_APIS.join(', ')}`)
          : fail(
              'APIs',
              `not enabled: ${disabled.join(', ')}`,
              `gcloud services enable ${disabled.join(' ')} --project=${project} (terraform/apis.tf enables them)`,
            );
      },
      `grant ${who} roles/serviceusage.serviceUsageViewer on project ${project}, or check the APIs in the console`,
    ),
    guarded('IAM: project', () =>
      permissionCheck(
        cloud,
        'IAM: project',
        { kind: 'project' },
        PROJECT_PERMISSIONS,
        'roles/datastore.viewer and roles/aiplatform.user',
        `project ${project}`,
        who,
      ),
    ),
    guarded('IAM: output bucket', () =>
      permissionCheck(
        cloud,
        'IAM: output bucket',
        { kind: 'bucket', bucket },
        OUTPUT_PERMISSIONS,
        'roles/storage.objectViewer',
        `gs://${bucket}`,
        who,
      ),
    ),
    inputBucket
      ? guarded('IAM: input bucket', () =>
          permissionCheck(
            cloud,
            'IAM: input bucket',
            { kind: 'bucket', bucket: inputBucket },
            INPUT_PERMISSIONS,
            'roles/storage.objectViewer and roles/storage.objectCreator',
            `gs://${inputBucket}`,
            who,
          ),
        )
      : Promise.resolve([]),
    guarded('IAM: topic', () =>
      permissionCheck(
        cloud,
        'IAM: topic',
        { kind: 'topic', topic },
        TOPIC_PERMISSIONS,
        'roles/pubsub.publisher',
        `topic ${topic}`,
        who,
      ),
    ),
    guarded('Firestore database', async () => {
      const db = await cloud.firestoreDatabase();
      if (!db) {
        return fail(
          'Firestore database',
          `project ${project} has no (default) database`,
          `gcloud firestore databases create --project=${project} --location=<region> (or terraform with firestore.create_database = true)`,
        );
      }
      return db.type === 'FIRESTORE_NATIVE'
        ? ok('Firestore database', `(default), Native mode, ${db.locationId}`)
        : fail(
            'Firestore database',
            `(default) is in ${db.type}, not Native mode`,
            'batch-courier needs a Firestore database in Native mode',
          );
    }),
    guarded(
      'Firestore indexes',
      async () => {
        const listed = await cloud.firestoreIndexes(config.JOBS_COLLECTION);
        const wanted: [string, typeof OUTSTANDING_JOBS_INDEX | typeof RECENT_JOBS_INDEX][] = [
          ['poller (outstanding, createTime)', OUTSTANDING_JOBS_INDEX],
          ['jobs --status (status, createTime desc)', RECENT_JOBS_INDEX],
        ];
        return wanted.map(([label, idx]): CheckResult => {
          const name = `index: ${label}`;
          const state = indexState(listed, idx);
          if (state === 'READY') return ok(name, `on ${config.JOBS_COLLECTION}, ready`);
          if (state) {
            return {
              name,
              status: 'warn',
              detail: `on ${config.JOBS_COLLECTION}, ${state}`,
              fix: 'wait until it is READY (building an index takes minutes)',
            };
          }
          return fail(
            name,
            `missing on ${config.JOBS_COLLECTION}`,
            `terraform apply (terraform/firestore.tf), or: ${indexCommand(config, idx)}`,
          );
        });
      },
      `grant ${who} roles/datastore.indexAdmin or roles/datastore.viewer on project ${project}`,
    ),
    guarded('output bucket', async () =>
      (await cloud.bucketExists(bucket))
        ? ok('output bucket', `gs://${bucket} exists`)
        : fail(
            'output bucket',
            `gs://${bucket} does not exist`,
            'check OUTPUT_URI_PREFIX, or create the bucket (terraform/buckets.tf)',
          ),
    ),
    inputBucket
      ? guarded('input bucket', async () =>
          (await cloud.bucketExists(inputBucket))
            ? ok('input bucket', `gs://${inputBucket} exists`)
            : fail('input bucket', `gs://${inputBucket} does not exist`, 'check --input-bucket'),
        )
      : Promise.resolve([]),
  ]);
  return [credentials, ...results.flat()];
}

export async function doctorCommand(ctx: Context, options: DoctorOptions): Promise<number> {
  const checks: CheckResult[] = [];
  let config: Config;
  try {
    config = ctx.config();
  } catch (err) {
    const e = err instanceof CliError ? err : undefined;
    checks.push(fail('configuration', describeError(err).message, e?.fix));
    return report(ctx, checks);
  }
  const hosts = emulatorHosts(config);
  const emulated = Object.keys(hosts).length > 0;
  checks.push(
    ok(
      'configuration',
      `project ${config.GOOGLE_CLOUD_PROJECT}, Vertex AI ${config.VERTEX_LOCATION} (Claude ${config.ANTHROPIC_LOCATION}), output ${config.OUTPUT_URI_PREFIX}/, topic ${config.COMPLETION_TOPIC}, collection ${config.JOBS_COLLECTION}, inputs ${config.INPUT_PREFIX === '' ? 'anywhere in the bucket' : `under ${config.INPUT_PREFIX}`}`,
    ),
  );
  if (emulated) {
    const missing = [
      'STORAGE_EMULATOR_HOST',
      'FIRESTORE_EMULATOR_HOST',
      'PUBSUB_EMULATOR_HOST',
      'VERTEX_AI_EMULATOR_HOST',
    ].filter((n) => !hosts[n]);
    checks.push(
      missing.length === 0
        ? ok(
            'emulators',
            Object.entries(hosts)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          )
        : fail(
            'emulators',
            `${missing.join(', ')} not set while other emulators are: those calls would go to the cloud`,
            'set -a; . .local/env; set +a (written by npm start) sets all four',
          ),
    );
  }

  const deps = await ctx.deps();
  const [bucket, path] = splitPrefix(config.OUTPUT_URI_PREFIX);
  let inputBucket = options.inputBucket;
  const store = await guarded(
    'job store',
    async () => {
      const [newest] = await deps.jobs.listRecent({ limit: 1 });
      inputBucket ??= newest?.bucket;
      return ok(
        'job store',
        `${emulated ? `Firestore emulator at ${config.FIRESTORE_EMULATOR_HOST}` : 'Firestore'}, collection ${config.JOBS_COLLECTION}: ${newest ? `newest job ${newest.jobId} (${newest.createTime})` : 'no jobs yet'}`,
      );
    },
    emulated
      ? 'is `npm start` running? its .local/env names the emulators of the running stack'
      : `check the Firestore database of project ${config.GOOGLE_CLOUD_PROJECT} (below) and roles/datastore.viewer`,
  );
  checks.push(...store);

  const locations = [...new Set([config.VERTEX_LOCATION, config.ANTHROPIC_LOCATION])];
  const common = await Promise.all([
    guarded(
      'topic',
      async () =>
        (await deps.topicExists())
          ? ok('topic', `${config.COMPLETION_TOPIC} exists`)
          : fail(
              'topic',
              `${config.COMPLETION_TOPIC} does not exist in project ${config.GOOGLE_CLOUD_PROJECT}`,
              emulated
                ? 'restart `npm start` (it creates the topic)'
                : `terraform apply (terraform/pubsub.tf), or: gcloud pubsub topics create ${config.COMPLETION_TOPIC} --project=${config.GOOGLE_CLOUD_PROJECT}`,
            ),
      emulated ? 'is `npm start` running?' : `check COMPLETION_TOPIC and roles/pubsub.viewer`,
    ),
    ...locations.map((location) =>
      guarded(
        `Vertex AI ${location}`,
        async () => {
          await deps.vertex.list(location, { pageSize: 1 });
          return ok(`Vertex AI ${location}`, 'batch prediction jobs can be listed');
        },
        emulated
          ? 'is `npm start` running?'
          : `enable aiplatform.googleapis.com and grant roles/aiplatform.user on project ${config.GOOGLE_CLOUD_PROJECT}`,
      ),
    ),
    emulated
      ? guarded('output bucket', async () => {
          await deps.reader.list(bucket, path);
          return ok('output bucket', `gs://${bucket} answers (storage emulator)`);
        })
      : Promise.resolve([]),
    emulated && inputBucket
      ? guarded('input bucket', async () => {
          await deps.reader.list(inputBucket ?? '', config.INPUT_PREFIX);
          return ok('input bucket', `gs://${inputBucket ?? ''} answers (storage emulator)`);
        })
      : Promise.resolve([]),
  ]);
  checks.push(...common.flat());

  if (emulated) {
    checks.push(
      skipped('credentials', 'emulator'),
      skipped('APIs', 'emulator'),
      skipped('IAM', 'emulator'),
      skipped('Firestore indexes', 'emulator (it needs no composite index)'),
    );
  } else {
    const cloud = await deps.cloud();
    if (cloud) checks.push(...(await cloudChecks(config, cloud, inputBucket)));
  }
  if (!inputBucket) {
    checks.push(skipped('input bucket', 'not known (no job yet): pass --input-bucket to check it'));
  }
  return report(ctx, checks);
}

function report(ctx: Context, checks: CheckResult[]): number {
  const failed = checks.filter((c) => c.status === 'fail').length;
  if (ctx.json) {
    ctx.printJson({ ok: failed === 0, checks });
    return failed === 0 ? 0 : 1;
  }
  const { c } = ctx;
  const mark = {
    ok: c.green('✓'),
    fail: c.red('✗'),
    warn: c.yellow('!'),
    skipped: c.dim('-'),
  };
  const width = Math.max(...checks.map((x) => x.name.length));
  for (const x of checks) {
    ctx.say(
      `${mark[x.status]} ${x.name.padEnd(width)}  ${x.status === 'skipped' ? c.dim(x.detail) : x.detail}`,
    );
    if (x.fix && x.status !== 'ok') ctx.say(`  ${' '.repeat(width)}  ${c.cyan(`fix: ${x.fix}`)}`);
  }
  ctx.say(
    failed === 0
      ? c.green('\neverything checked is wired')
      : c.red(`\n${failed} check${failed === 1 ? '' : 's'} failed`),
  );
  return failed === 0 ? 0 : 1;
}
