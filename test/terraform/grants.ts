/**
 * The module's IAM grants, each read as one line `principal | role | on [| with variable]` in the
 * words of terraform/README.md's IAM table, so that iam.test.ts and readme.test.ts compare the same
 * thing: the principal and the scope are what the grant's expressions refer to.
 */
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import {
  addressesIn,
  allResources,
  astOf,
  functionFor,
  refs,
  str,
  type JsonObject,
  type TfModule,
} from './tf-module.js';

/** Who a member expression names, by what it refers to. */
const PRINCIPALS: Record<string, string> = {
  'data.google_storage_project_service_account.gcs': 'Cloud Storage service agent',
  'google_project_service_identity.vertex_ai': 'Vertex AI service agent',
  'google_service_account.trigger': 'trigger SA',
  'google_service_account.submit': 'submit SA',
  'google_service_account.poll': 'poll SA',
  'google_service_account.scheduler': 'scheduler SA',
  'local.build_service_account_email': 'build service account',
};

/** Google-managed accounts named by a literal domain rather than by a resource. */
const AGENT_DOMAINS: [RegExp, string][] = [
  [/@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/, 'Pub/Sub service agent'],
];

/** Which attribute of each IAM resource type names the resource the role is granted on. */
const SCOPE_ATTRIBUTE: Record<string, string | undefined> = {
  google_project_iam_member: undefined,
  google_storage_bucket_iam_member: 'bucket',
  google_pubsub_topic_iam_member: 'topic',
  google_cloud_run_v2_service_iam_member: 'name',
  google_service_account_iam_member: 'service_account_id',
  google_kms_crypto_key_iam_member: 'crypto_key_id',
  google_bigquery_dataset_iam_member: 'dataset_id',
};

/** The scope of a grant made for each element of a `for_each`, by the reference it is named by. */
const EACH_SCOPES: Record<string, string> = {
  'each.value.dataset': 'each dataset',
};

export interface Grant {
  address: string;
  /**
   * `principal | role | on`, plus `| with <variable>` for a grant that exists only when it is set
   * (`count`), or once for each of its elements (`for_each`).
   */
  line: string;
  /** The count expression, when the grant is conditional. */
  count: string | undefined;
}

/** Resources that would replace others' grants (`*_iam_binding`, `*_iam_policy`). */
export function authoritativeIam(m: TfModule): string[] {
  return allResources(m)
    .filter(([type]) => /_iam_(binding|policy)$/.test(type))
    .map(([, address]) => address);
}

async function principalOf(member: unknown): Promise<string> {
  const text = typeof member === 'string' ? member : JSON.stringify(member);
  const agent = AGENT_DOMAINS.find(([pattern]) => pattern.test(text));
  if (agent) return agent[1];
  const [address] = await addressesIn(text);
  return (address === undefined ? undefined : PRINCIPALS[address]) ?? address ?? text;
}

async function scopeOf(m: TfModule, type: string, body: JsonObject): Promise<string> {
  if (!(type in SCOPE_ATTRIBUTE)) return `(unknown IAM type ${type})`;
  const attribute = SCOPE_ATTRIBUTE[type];
  if (attribute === undefined) return 'project';
  const [ref] = await refs(body[attribute]);
  const [address] = await addressesIn(body[attribute]);
  const submit = functionFor(m, FUNCTION_TARGETS.submit)?.address;
  const poll = functionFor(m, FUNCTION_TARGETS.poll)?.address;
  const names: Record<string, string> = {
    'google_storage_bucket.input': 'input bucket',
    'google_storage_bucket.output': 'output bucket',
    'google_pubsub_topic.completion': 'completion topic',
    'google_service_account.trigger': 'trigger SA',
    [submit ?? '(submit)']: "submit function's service",
    [poll ?? '(poll)']: "poll function's service",
  };
  if (ref === 'var.buckets.kms_key_name') return 'the key';
  if (ref !== undefined && ref in EACH_SCOPES) return EACH_SCOPES[ref] ?? ref;
  return (
    (address === undefined ? undefined : names[address]) ?? ref ?? JSON.stringify(body[attribute])
  );
}

/** Every `*_iam_member` of the module as a grant line. */
export async function grantsOf(m: TfModule): Promise<Grant[]> {
  const grants: Grant[] = [];
  for (const [type, address, body] of allResources(m)) {
    if (!type.endsWith('_iam_member')) continue;
    const parts = [await principalOf(body.member), str(body.role), await scopeOf(m, type, body)];
    const count =
      typeof body.count === 'string' ? (await astOf(body.count))?.meta.value : undefined;
    // A local (`for_each = local.bigquery_datasets`) is named like the variable it is made of.
    for (const condition of [body.count, body.for_each]) {
      if (condition === undefined) continue;
      const [variable] = await refs(condition);
      parts.push(`with ${variable?.replace(/^(var|local)\./, '') ?? str(condition)}`);
    }
    grants.push({ address, line: parts.join(' | '), count });
  }
  return grants;
}
