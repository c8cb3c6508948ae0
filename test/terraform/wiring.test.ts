/**
 * Wiring: what connects to what. Every reference names a declaration (no `terraform validate`
 * here); uploads of the input bucket trigger the submit function, retried; Cloud Scheduler calls
 * the poll function with an OIDC token for it; each function is built from its own staged bundle,
 * named by its hash, as the chosen build account.
 */
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import {
  addressesIn,
  addressOf,
  allResources,
  block,
  describeChecks,
  functionFor,
  functionsOf,
  isObject,
  objectAttributes,
  refs,
  replaceIn,
  str,
  type Check,
  type Json,
  type Mutation,
} from './tf-module.js';

/**
 * Every reference names a declaration, and `var.x.attr` an attribute of object variable x.
 * (hcl2json does not look inside a `for` expression's result, only its collection and condition.)
 */
const checkReferences: Check = async (m) => {
  const places: [string, Json][] = [
    ...Object.entries(m.variable).map(([n, b]): [string, Json] => [`var.${n}`, b]),
    ...Object.entries(m.locals).map(([n, v]): [string, Json] => [`local.${n}`, v]),
    ...allResources(m).map(([, a, b]): [string, Json] => [a, b]),
    ...Object.entries(m.data).flatMap(([t, named]) =>
      Object.entries(named).map(([n, b]): [string, Json] => [`data.${t}.${n}`, b]),
    ),
    ...Object.entries(m.output).map(([n, b]): [string, Json] => [`output.${n}`, b]),
  ];
  const declared = new Set(places.map(([address]) => address));
  const problems: string[] = [];
  for (const [where, value] of places) {
    for (const ref of await refs(value)) {
      const address = addressOf(ref);
      if (address === undefined) continue;
      if (!declared.has(address)) {
        problems.push(`${where}: ${ref} refers to ${address}, which is not declared`);
        continue;
      }
      const [root, name, attr] = ref.split('.');
      const attributes =
        root === 'var' ? await objectAttributes(m.variable[name ?? '']) : undefined;
      if (attr !== undefined && attributes !== undefined && !attributes.has(attr)) {
        problems.push(`${where}: ${ref}: var.${name} has no attribute ${attr}`);
      }
    }
  }
  return problems;
};

/** Finalized objects of the input bucket trigger the submit function, retried, as the trigger SA. */
const checkTrigger: Check = async (m) => {
  const fn = functionFor(m, FUNCTION_TARGETS.submit);
  const trigger = block(fn?.body.event_trigger);
  if (trigger === undefined)
    return [`the ${FUNCTION_TARGETS.submit} function has no event_trigger`];
  const filters = (Array.isArray(trigger.event_filters) ? trigger.event_filters : []).filter(
    isObject,
  );
  const problems: string[] = [];
  if (trigger.event_type !== 'google.cloud.storage.object.v1.finalized') {
    problems.push(`event_type is ${str(trigger.event_type)}`);
  }
  if (trigger.retry_policy !== 'RETRY_POLICY_RETRY') {
    problems.push('retry_policy must be RETRY_POLICY_RETRY: a failed delivery would be dropped');
  }
  const bucket =
    filters.length === 1 && filters[0]?.attribute === 'bucket' ? filters[0].value : undefined;
  if ((await addressesIn(bucket)).join() !== 'google_storage_bucket.input') {
    problems.push('the one event filter must be bucket = the input bucket');
  }
  if (!(await addressesIn(trigger.trigger_region)).includes('google_storage_bucket.input')) {
    problems.push("trigger_region must follow the input bucket's location");
  }
  for (const other of functionsOf(m).filter(
    (f) => f.address !== fn?.address && f.body.event_trigger !== undefined,
  )) {
    problems.push(
      `${other.address} has an event_trigger; only the submit function is event-driven`,
    );
  }
  return problems;
};

/** Cloud Scheduler POSTs to the poll function's URI with an OIDC token whose audience is that URI. */
const checkScheduler: Check = async (m) => {
  const poll = functionFor(m, FUNCTION_TARGETS.poll);
  const jobs = Object.values(m.resource.google_cloud_scheduler_job ?? {});
  if (poll === undefined || jobs.length !== 1)
    return ['expected one poll function and one Cloud Scheduler job'];
  const target = block(jobs[0]?.http_target);
  const oidc = block(target?.oidc_token);
  const problems: string[] = [];
  if (target?.http_method !== 'POST') problems.push('the scheduler must POST');
  if (
    !/\.service_config\[0\]\.uri\}$/.test(str(target?.uri)) ||
    (await addressesIn(target?.uri)).join() !== poll.address
  ) {
    problems.push("the scheduler's uri must be the poll function's URI");
  }
  if (oidc?.audience !== target?.uri)
    problems.push("the OIDC audience must be the poll function's URI");
  return problems;
};

/**
 * Each function is built from its own staged bundle (`artifact/<entry point>/`), uploaded under a
 * name that contains the hash of that bundle's archive.
 */
const checkSource: Check = async (m) => {
  const archive = m.data.archive_file?.source;
  const object = m.resource.google_storage_bucket_object?.source;
  const problems: string[] = [];
  if (
    !JSON.stringify(m.locals.artifact_dir ?? '').includes('/artifact') ||
    !(await addressesIn(archive?.source_dir)).includes('local.artifact_dir') ||
    !str(archive?.source_dir).endsWith('/${each.key}')
  ) {
    problems.push(
      'the archive must zip the staged artifact/<entry point>/ directory of each function',
    );
  }
  const bundles = str(m.locals.function_bundles);
  for (const target of Object.values(FUNCTION_TARGETS)) {
    if (!bundles.includes(`"${target}"`)) problems.push(`local.function_bundles lacks ${target}`);
  }
  for (const [what, body] of [
    ['archive', archive],
    ['source object', object],
  ] as const) {
    if (str(body?.for_each) !== '${local.function_bundles}') {
      problems.push(`the ${what} must be made for_each of local.function_bundles`);
    }
  }
  if (!/data\.archive_file\.source\[each\.key\]\.output_(md5|sha256)/.test(str(object?.name))) {
    problems.push(
      "the source object's name must contain its archive's hash, so that new code redeploys",
    );
  }
  for (const fn of functionsOf(m)) {
    const storage = block(block(block(fn.body.build_config)?.source)?.storage_source);
    const objectRefs = await refs(storage?.object);
    if (
      objectRefs.join() !== `google_storage_bucket_object.source."${fn.entryPoint}".name` ||
      (await addressesIn(storage?.bucket)).join() !== 'google_storage_bucket.source'
    ) {
      problems.push(
        `${fn.address} must be built from the source object of its own entry point (${fn.entryPoint}) in the source bucket`,
      );
    }
  }
  return problems;
};

/** The builds run as build.service_account when set, and the builder grant goes to that account. */
const checkBuildAccount: Check = async (m) => {
  const problems: string[] = [];
  for (const local of ['build_service_account', 'build_service_account_email']) {
    if (!(await refs(m.locals[local])).includes('var.build.service_account')) {
      problems.push(`local.${local} must follow var.build.service_account`);
    }
  }
  for (const fn of functionsOf(m)) {
    if (
      (await addressesIn(block(fn.body.build_config)?.service_account)).join() !==
      'local.build_service_account'
    ) {
      problems.push(
        `${fn.address}: build_config.service_account must be local.build_service_account`,
      );
    }
  }
  return problems;
};

const CHECKS = {
  references: checkReferences,
  trigger: checkTrigger,
  scheduler: checkScheduler,
  source: checkSource,
  buildAccount: checkBuildAccount,
} satisfies Record<string, Check>;

const MUTATIONS: Mutation<keyof typeof CHECKS>[] = [
  {
    what: 'a misspelt attribute',
    check: 'references',
    edit: replaceIn('locals.tf', 'var.pipeline.max_queue_hours', 'var.pipeline.max_queue_hour'),
    report: /var\.pipeline has no attribute max_queue_hour/,
  },
  {
    what: 'the trigger listening to the output bucket',
    check: 'trigger',
    edit: replaceIn(
      'functions.tf',
      'value     = google_storage_bucket.input.name',
      'value     = google_storage_bucket.output.name',
    ),
    report: /bucket = the input bucket/,
  },
  {
    what: 'the poll function built from the submit bundle',
    check: 'source',
    edit: replaceIn(
      'functions.tf',
      'object = google_storage_bucket_object.source["pollBatchJobs"].name',
      'object = google_storage_bucket_object.source["submitBatchJob"].name',
    ),
    report:
      /google_cloudfunctions2_function\.poll must be built from the source object of its own entry point \(pollBatchJobs\)/,
  },
  {
    what: 'a source object named without its hash',
    check: 'source',
    edit: replaceIn(
      'source.tf',
      'name         = "${each.key}-${data.archive_file.source[each.key].output_md5}.zip"',
      'name         = "${each.key}.zip"',
    ),
    report: /must contain its archive's hash/,
  },
  {
    what: 'the OIDC audience of the submit function',
    check: 'scheduler',
    edit: replaceIn(
      'scheduler.tf',
      'audience              = google_cloudfunctions2_function.poll.service_config[0].uri',
      'audience              = google_cloudfunctions2_function.submit.service_config[0].uri',
    ),
    report: /OIDC audience/,
  },
];

describeChecks('terraform: wiring', CHECKS, MUTATIONS);
