/**
 * The cloud-only checks of `batch-courier doctor`, over the Google REST APIs with
 * google-auth-library (Application Default Credentials): who the caller is, which APIs are enabled
 * (Service Usage), which permissions the caller holds on the project, the buckets and the topic
 * (`testIamPermissions`), whether the topic and the buckets exist, the Firestore database and its
 * composite indexes. Nothing here is meaningful against the emulators; the doctor skips it there.
 *
 * Every call is one bounded request; an answer other than 2xx is a {@link CloudCheckError} that
 * carries the HTTP status and Google's own message (which names the API to enable, the permission
 * that is missing, and so on).
 */
import type { gaxios } from 'google-auth-library';
import type { RequestClient } from './vertex-rest-client.js';
import { withTimeLimit } from '../time-limit.js';

/** How long one check request may take. */
export const CHECK_TIMEOUT_MS = 15_000;

/** The REST endpoints, overridable for tests against a local server. */
export interface CheckEndpoints {
  serviceUsage: string;
  resourceManager: string;
  storage: string;
  pubsub: string;
  firestore: string;
  userinfo: string;
}

export const GOOGLE_ENDPOINTS: CheckEndpoints = Object.freeze({
  serviceUsage: 'https://serviceusage.googleapis.com',
  resourceManager: 'https://cloudresourcemanager.googleapis.com',
  storage: 'https://storage.googleapis.com',
  pubsub: 'https://pubsub.googleapis.com',
  firestore: 'https://firestore.googleapis.com',
  userinfo: 'https://openidconnect.googleapis.com',
});

/** A resource whose permissions can be tested. */
export type IamResource =
  { kind: 'project' } | { kind: 'bucket'; bucket: string } | { kind: 'topic'; topic: string };

/** A Firestore composite index as the Admin API lists it (`__name__` fields dropped). */
export interface ListedIndex {
  queryScope: string;
  fields: { fieldPath: string; order: string }[];
  /** `READY`, `CREATING`, `NEEDS_REPAIR`. */
  state: string;
}

/** The cloud checks. */
export interface CloudChecks {
  /** The caller's e-mail (a service account or a user), when the credentials tell it. */
  identity(): Promise<string | undefined>;
  /** Those of `services` (`aiplatform.googleapis.com`, …) that are not enabled in the project. */
  disabledServices(services: readonly string[]): Promise<string[]>;
  /** Those of `permissions` the caller does not hold on `resource`. */
  missingPermissions(resource: IamResource, permissions: readonly string[]): Promise<string[]>;
  topicExists(topic: string): Promise<boolean>;
  bucketExists(bucket: string): Promise<boolean>;
  /** The `(default)` database, or undefined when the project has none. */
  firestoreDatabase(): Promise<{ type: string; locationId: string } | undefined>;
  /** The composite indexes of a collection group. */
  firestoreIndexes(collection: string): Promise<ListedIndex[]>;
}

/** A check request that failed: the HTTP status (0: no answer) and Google's message. */
export class CloudCheckError extends Error {
  override readonly name = 'CloudCheckError';
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What the checks need of an auth client (`GoogleAuth` fits; `getCredentials` is optional). */
export interface CheckAuth extends RequestClient {
  getCredentials?: () => Promise<{ client_email?: string | null }>;
}

/** Options of {@link createCloudChecks}. */
export interface CloudChecksOptions {
  project: string;
  auth: CheckAuth;
  endpoints?: CheckEndpoints;
  timeoutMs?: number;
}

/** `projects/P/topics/T` for a topic id or full name. */
export function topicName(project: string, topic: string): string {
  return topic.startsWith('projects/') ? topic : `projects/${project}/topics/${topic}`;
}

/** Creates the checks over one auth client. */
export function createCloudChecks(options: CloudChecksOptions): CloudChecks {
  const e = options.endpoints ?? GOOGLE_ENDPOINTS;
  const timeoutMs = options.timeoutMs ?? CHECK_TIMEOUT_MS;
  const project = encodeURIComponent(options.project);

  async function call<T>(opts: gaxios.GaxiosOptions): Promise<{ status: number; data: T }> {
    const abort = new AbortController();
    const answered = options.auth
      .request<T>({ responseType: 'json', retry: false, ...opts, signal: abort.signal })
      .then((res) => ({ status: res.status, data: res.data }))
      .catch((err: unknown) => {
        const res = (err as { response?: { status?: number; data?: unknown } }).response;
        if (res?.status) return { status: res.status, data: res.data as T };
        throw new CloudCheckError(
          0,
          `${opts.method ?? 'GET'} ${String(opts.url)}: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      });
    return withTimeLimit(answered, timeoutMs, () => {
      abort.abort();
      return new CloudCheckError(0, `${String(opts.url)}: no answer within ${timeoutMs / 1000} s`);
    });
  }

  /** The answer's data when 2xx; a CloudCheckError with Google's message otherwise. */
  async function ok<T>(opts: gaxios.GaxiosOptions): Promise<T> {
    const { status, data } = await call<T>(opts);
    if (status >= 200 && status < 300) return data;
    throw new CloudCheckError(status, googleMessage(status, data));
  }

  /** True on 2xx, false on 404; a CloudCheckError otherwise. */
  async function exists(url: string): Promise<boolean> {
    const { status, data } = await call<unknown>({ url });
    if (status === 404) return false;
    if (status >= 200 && status < 300) return true;
    throw new CloudCheckError(status, googleMessage(status, data));
  }

  return {
    async identity() {
      const creds = await options.auth.getCredentials?.().catch(() => undefined);
      if (creds?.client_email) return creds.client_email;
      // User credentials do not name their account: ask whom the token belongs to.
      const info = await ok<{ email?: string }>({ url: `${e.userinfo}/v1/userinfo` }).catch(
        () => undefined,
      );
      return info?.email;
    },

    async disabledServices(services) {
      const names = repeated(
        'names',
        services.map((s) => `projects/${options.project}/services/${s}`),
      );
      const data = await ok<{ services?: { name?: string; state?: string }[] }>({
        url: `${e.serviceUsage}/v1/projects/${project}/services:batchGet?${names}`,
      });
      const enabled = new Set(
        (data.services ?? [])
          .filter((s) => s.state === 'ENABLED')
          .map((s) => (s.name ?? '').split('/').pop()),
      );
      return services.filter((s) => !enabled.has(s));
    },

    async missingPermissions(resource, permissions) {
      let granted: string[];
      if (resource.kind === 'bucket') {
        const data = await ok<{ permissions?: string[] }>({
          url: `${e.storage}/storage/v1/b/${encodeURIComponent(resource.bucket)}/iam/testPermissions?${repeated('permissions', permissions)}`,
        });
        granted = data.permissions ?? [];
      } else {
        const url =
          resource.kind === 'project'
            ? `${e.resourceManager}/v1/projects/${project}:testIamPermissions`
            : `${e.pubsub}/v1/${topicName(options.project, resource.topic)}:testIamPermissions`;
        const data = await ok<{ permissions?: string[] }>({
          url,
          method: 'POST',
          data: { permissions },
        });
        granted = data.permissions ?? [];
      }
      return permissions.filter((p) => !granted.includes(p));
    },

    topicExists: (topic) => exists(`${e.pubsub}/v1/${topicName(options.project, topic)}`),

    bucketExists: (bucket) => exists(`${e.storage}/storage/v1/b/${encodeURIComponent(bucket)}`),

    async firestoreDatabase() {
      const url = `${e.firestore}/v1/projects/${project}/databases/(default)`;
      const { status, data } = await call<{ type?: string; locationId?: string }>({ url });
      if (status === 404) return undefined;
      if (status < 200 || status >= 300) {
        throw new CloudCheckError(status, googleMessage(status, data));
      }
      return { type: data.type ?? '', locationId: data.locationId ?? '' };
    },

    async firestoreIndexes(collection) {
      const indexes: ListedIndex[] = [];
      let pageToken: string | undefined;
      do {
        const data = await ok<{
          indexes?: {
            queryScope?: string;
            state?: string;
            fields?: { fieldPath?: string; order?: string }[];
          }[];
          nextPageToken?: string;
        }>({
          url: `${e.firestore}/v1/projects/${project}/databases/(default)/collectionGroups/${encodeURIComponent(collection)}/indexes`,
          params: pageToken ? { pageToken } : {},
        });
        for (const index of data.indexes ?? []) {
          indexes.push({
            queryScope: index.queryScope ?? '',
            state: index.state ?? '',
            fields: (index.fields ?? [])
              .filter((f) => f.fieldPath !== '__name__' && f.order !== undefined)
              .map((f) => ({ fieldPath: f.fieldPath ?? '', order: f.order ?? '' })),
          });
        }
        pageToken = data.nextPageToken || undefined;
      } while (pageToken);
      return indexes;
    },
  };
}

/** `key=a&key=b`: a repeated query parameter, as the Google APIs take lists in a GET. */
function repeated(key: string, values: readonly string[]): string {
  return values.map((v) => `${key}=${encodeURIComponent(v)}`).join('&');
}

/** Google's error message from a JSON error answer, or the status. */
function googleMessage(status: number, data: unknown): string {
  const error = (data as { error?: { message?: unknown; status?: unknown } } | null)?.error;
  const message = typeof error?.message === 'string' ? error.message : '';
  const name = typeof error?.status === 'string' ? `${error.status}: ` : '';
  return `HTTP ${status}${message ? ` ${name}${message}` : ''}`;
}
