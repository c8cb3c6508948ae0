/**
 * IAM: exactly these grants, each least-privilege on the narrowest resource that works, each with
 * its reason written beside it in iam.tf; every workload on its own service account; the two
 * grants only some projects need exist only when their variable is set.
 */
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { authoritativeIam, grantsOf } from './grants.js';
import {
  addressesIn,
  allResources,
  appendTo,
  block,
  defaultOf,
  describeChecks,
  functionFor,
  removeBlock,
  replaceIn,
  sameSet,
  type Check,
  type Json,
  type Mutation,
} from './tf-module.js';

/**
 * The grants, in terraform/README.md's words. Storage: the functions read the input bucket and only
 * create in the output bucket (the pinned copy <jobId>/input.jsonl and rejection reports); nothing
 * of ours reads the output bucket but Vertex AI, which reads the pinned copy. BigQuery (only with
 * bigquery_datasets): both functions read each listed dataset, Vertex AI reads and writes it, and
 * runs its BigQuery jobs and read sessions in the project (bigquery.test.ts checks the rest).
 */
const EXPECTED = [
  'Cloud Storage service agent | roles/pubsub.publisher | project',
  'trigger SA | roles/eventarc.eventReceiver | project',
  "trigger SA | roles/run.invoker | submit function's service",
  'Pub/Sub service agent | roles/iam.serviceAccountTokenCreator | trigger SA | with grant_pubsub_token_creator',
  'build service account | roles/cloudbuild.builds.builder | project | with build.grant_builder_role',
  'submit SA | roles/aiplatform.user | project',
  'submit SA | roles/datastore.user | project',
  'submit SA | roles/storage.objectViewer | input bucket',
  'submit SA | roles/storage.objectCreator | output bucket',
  'submit SA | roles/pubsub.publisher | completion topic',
  'poll SA | roles/aiplatform.user | project',
  'poll SA | roles/datastore.user | project',
  'poll SA | roles/pubsub.publisher | completion topic',
  'poll SA | roles/storage.objectViewer | input bucket',
  'poll SA | roles/storage.objectUser | output bucket',
  "scheduler SA | roles/run.invoker | poll function's service",
  'Vertex AI service agent | roles/storage.objectViewer | input bucket',
  'Vertex AI service agent | roles/storage.objectViewer | output bucket',
  'Vertex AI service agent | roles/storage.objectCreator | output bucket',
  'submit SA | roles/bigquery.dataViewer | each dataset | with bigquery_datasets',
  'poll SA | roles/bigquery.dataViewer | each dataset | with bigquery_datasets',
  'Vertex AI service agent | roles/bigquery.dataEditor | each dataset | with bigquery_datasets',
  'Vertex AI service agent | roles/bigquery.jobUser | project | with bigquery_datasets',
  'Vertex AI service agent | roles/bigquery.readSessionUser | project | with bigquery_datasets',
  'Cloud Storage service agent | roles/cloudkms.cryptoKeyEncrypterDecrypter | the key | with buckets.kms_key_name',
];

/** Grants that some projects need and others must not get: off unless their variable is true. */
const OPT_IN = ['var.grant_pubsub_token_creator', 'var.build.grant_builder_role'];

/** The module grants exactly EXPECTED, additively. */
const checkGrants: Check = async (m) => [
  ...authoritativeIam(m).map((a) => `${a}: authoritative IAM would remove grants made by others`),
  ...sameSet(
    'grants',
    (await grantsOf(m)).map((g) => g.line),
    EXPECTED,
  ),
];

/** Each opt-in grant is `count = var.x ? 1 : 0` with x false by default. */
const checkOptIn: Check = async (m) => {
  const problems: string[] = [];
  const grants = await grantsOf(m);
  for (const variable of OPT_IN) {
    const matching = grants.filter((g) => g.count === `${variable} ? 1 : 0`);
    if (matching.length !== 1)
      problems.push(
        `expected one grant with count = ${variable} ? 1 : 0, found ${matching.length}`,
      );
    if ((await defaultOf(m, variable)) !== false)
      problems.push(`${variable} must default to false`);
  }
  return problems;
};

/** Every IAM resource is in iam.tf with a comment just above it that says why. */
const checkReasons: Check = async (m) => {
  const problems = allResources(m)
    .filter(([type]) => /_iam_/.test(type))
    .filter(
      ([type, address]) =>
        !(m.text['iam.tf'] ?? '').includes(`resource "${type}" "${address.split('.')[1]}"`),
    )
    .map(([, address]) => `${address} is not in iam.tf`);
  const lines = (m.text['iam.tf'] ?? '').split('\n');
  lines.forEach((line, i) => {
    if (/^resource "\w+_iam_\w+"/.test(line) && !(lines[i - 1] ?? '').startsWith('#')) {
      problems.push(`iam.tf:${i + 1}: ${line} has no comment saying why`);
    }
  });
  return problems;
};

/** Each function, the trigger and the scheduler run as their own service account. */
const checkIdentities: Check = async (m) => {
  const submit = functionFor(m, FUNCTION_TARGETS.submit)?.body;
  const poll = functionFor(m, FUNCTION_TARGETS.poll)?.body;
  const job = Object.values(m.resource.google_cloud_scheduler_job ?? {})[0];
  const identities: [string, Json | undefined, string][] = [
    ['submit function', block(submit?.service_config)?.service_account_email, 'submit'],
    ['poll function', block(poll?.service_config)?.service_account_email, 'poll'],
    ['Eventarc trigger', block(submit?.event_trigger)?.service_account_email, 'trigger'],
    [
      'scheduler OIDC token',
      block(block(job?.http_target)?.oidc_token)?.service_account_email,
      'scheduler',
    ],
  ];
  const problems: string[] = [];
  for (const [who, value, account] of identities) {
    const expected = `google_service_account.${account}`;
    const actual = await addressesIn(value);
    if (actual.join() !== expected)
      problems.push(`${who} runs as ${actual.join() || 'the default'}, not ${expected}`);
  }
  return problems;
};

const CHECKS = {
  grants: checkGrants,
  optIn: checkOptIn,
  reasons: checkReasons,
  identities: checkIdentities,
} satisfies Record<string, Check>;

const POLL_READS_OUTPUT = `# Lists the results.
resource "google_storage_bucket_iam_member" "poll_reads_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:\${google_service_account.poll.email}"
}`;

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: "the poll SA's read of the output bucket added back",
    check: 'grants',
    edit: appendTo('iam.tf', POLL_READS_OUTPUT),
    report: /unexpected poll SA \| roles\/storage\.objectViewer \| output bucket/,
  },
  {
    what: "the Vertex AI agent's read of the pinned copy removed",
    check: 'grants',
    edit: removeBlock(
      'iam.tf',
      'resource "google_storage_bucket_iam_member" "vertex_reads_output" {',
    ),
    report: /missing Vertex AI service agent \| roles\/storage\.objectViewer \| output bucket/,
  },
  {
    what: "the submit SA's BigQuery read granted on the whole project",
    check: 'grants',
    edit: appendTo(
      'iam.tf',
      '# Reads tables.\nresource "google_project_iam_member" "submit_reads_bigquery" {\n  count   = length(var.bigquery_datasets) > 0 ? 1 : 0\n  project = var.project_id\n  role    = "roles/bigquery.dataViewer"\n  member  = "serviceAccount:${google_service_account.submit.email}"\n}',
    ),
    report:
      /unexpected submit SA \| roles\/bigquery\.dataViewer \| project \| with bigquery_datasets/,
  },
  {
    what: "the Vertex AI agent's dataset grant made broader",
    check: 'grants',
    edit: replaceIn(
      'iam.tf',
      'role       = "roles/bigquery.dataEditor"',
      'role       = "roles/bigquery.dataOwner"',
    ),
    report: /missing Vertex AI service agent \| roles\/bigquery\.dataEditor \| each dataset/,
  },
  {
    what: 'the Cloud Build grant made unconditional',
    check: 'optIn',
    edit: replaceIn('iam.tf', '  count = var.build.grant_builder_role ? 1 : 0\n', ''),
    report: /count = var\.build\.grant_builder_role \? 1 : 0, found 0/,
  },
  {
    what: 'a grant without its reason',
    check: 'reasons',
    edit: replaceIn('iam.tf', '# Announces every outcome on the completion topic.\n', ''),
    report: /poll_publishes_completions" \{ has no comment/,
  },
  {
    what: 'the poll function running as the submit SA',
    check: 'identities',
    edit: replaceIn(
      'functions.tf',
      'google_service_account.poll.email',
      'google_service_account.submit.email',
    ),
    report: /poll function runs as google_service_account\.submit/,
  },
];

describeChecks('terraform: IAM', CHECKS, MUTATIONS);
