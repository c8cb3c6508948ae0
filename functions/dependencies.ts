/**
 * Composition: builds the adapters from the configuration. Every port is handed out at once, but
 * its SDK is imported and its client built on the port's first call, so a code path that does not
 * reach a dependency never loads it (an ignored upload loads no SDK; a poll run with nothing
 * finished never loads Pub/Sub). Each SDK costs ~0.1–0.35 s to import.
 *
 * Used by the deployed entries (`functions/entries/<function>/index.ts`, one bundle per function:
 * each uses only its own target's builder), by `functions/index.ts` (both targets in one process)
 * and by the offline stack (which may bring its own job store).
 */
import { randomUUID } from 'node:crypto';
import type { Firestore, Settings as FirestoreSettings } from '@google-cloud/firestore';
import type { ClientConfig as PubSubOptions } from '@google-cloud/pubsub';
import type { Storage, StorageOptions } from '@google-cloud/storage';
import type { OAuth2Client } from 'google-auth-library';
import type { Config } from '../shared/config.js';
import { FUNCTION_TARGETS } from '../shared/function-targets.js';
import { createLogger, type Logger } from '../shared/logger.js';
import type {
  BigQueryTables,
  EventPublisher,
  JobStore,
  ObjectReader,
  ObjectWriter,
  VertexJobs,
} from '../shared/ports.js';
import type { PollDeps } from '../shared/app/poll.js';
import type { SubmitDeps } from '../shared/app/submit.js';

/** How long a Cloud Storage request waits for an answer (the client's default is 60 s). */
const STORAGE_REQUEST_TIMEOUT_MS = 15_000;

/** Replacements for the default adapters (the offline stack's in-memory job store). */
export interface DependencyOverrides {
  jobs?: JobStore;
  log?: Logger;
}

/** The dependencies of one target: handed to its handler per invocation. */
export interface TargetDependencies<T> {
  /** The target's dependencies (its ports load their SDKs on first use). */
  get: () => Promise<T>;
  /** Starts loading the SDKs every invocation of this target needs, during cold start. */
  prewarm(): void;
}

/** Lazily built dependencies of both targets. */
export interface Dependencies {
  submit: () => Promise<SubmitDeps>;
  poll: () => Promise<PollDeps>;
  /** Starts loading one target's clients now (during cold start). */
  prewarm(target: string | undefined): void;
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= make().catch((err: unknown) => {
      value = undefined; // a failed construction is retried on the next invocation
      throw err;
    });
    return value;
  };
}

/**
 * A port whose adapter is built by `load` on the first call of any of its methods. Every method
 * of a port returns a promise, except those named in `streams`, which return an async iterable
 * (the adapter's is iterated once it is built). `then` is not forwarded, so awaiting the port
 * itself does not call the adapter.
 */
function deferred<T extends object>(load: () => Promise<T>, streams: readonly (keyof T)[] = []): T {
  const call = (port: T, key: string, args: unknown[]): unknown =>
    Reflect.apply(Reflect.get(port, key) as (...a: unknown[]) => unknown, port, args);
  return new Proxy({} as T, {
    get(_, key) {
      if (typeof key !== 'string' || key === 'then') return undefined;
      if ((streams as readonly (string | number | symbol)[]).includes(key)) {
        return (...args: unknown[]) =>
          (async function* () {
            yield* call(await load(), key, args) as AsyncIterable<unknown>;
          })();
      }
      return (...args: unknown[]) => load().then((port) => call(port, key, args));
    },
  });
}

/**
 * Settings of the Firestore client: bounded calls, over gRPC. Not over REST (`preferRest`): with
 * this client (8.7) a refused write comes back over REST as its HTTP status (409, 400) instead of
 * ALREADY_EXISTS or FAILED_PRECONDITION, which the job store and the client's own transaction
 * retries tell apart; the job store's contract suite fails 4 of its 12 cases over REST.
 */
function firestoreSettings(
  config: Config,
  clientConfig: Record<string, unknown>,
): FirestoreSettings {
  return { projectId: config.GOOGLE_CLOUD_PROJECT, ...clientConfig };
}

/**
 * Settings of the Pub/Sub client: REST in the cloud, gRPC with an emulator. (`fallback` is passed
 * on to the generated clients, whose options declare it; the wrapper's type does not.)
 */
export function pubsubOptions(config: Config): PubSubOptions & { fallback?: 'rest' } {
  // One message per invocation (a rejection, a completion) does not pay for a gRPC channel: REST.
  // The Pub/Sub emulator of this repository speaks gRPC only (the official one takes both), so
  // with an emulator the client stays on gRPC.
  return config.PUBSUB_EMULATOR_HOST
    ? { projectId: config.GOOGLE_CLOUD_PROJECT }
    : { projectId: config.GOOGLE_CLOUD_PROJECT, fallback: 'rest' };
}

/** An OAuth2 client with a static token, never refreshed: for emulators, which check none. */
async function staticTokenClient(token: string): Promise<OAuth2Client> {
  const { OAuth2Client } = (await import('google-auth-library')).default;
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token, expiry_date: Date.now() + 10 * 365 * 86400e3 });
  return client;
}

/**
 * The four adapters of both targets, each built on first use and shared by both. The CommonJS SDKs
 * (Firestore, Pub/Sub, google-auth-library) are read from `default` (their `module.exports`): Node
 * offers their names there too, but a bundle's on-demand import of CommonJS offers only `default`.
 * `@google-cloud/storage` is an ES module, imported by name.
 */
function createAdapters(config: Config, overrides: DependencyOverrides) {
  const jobStore = once(async (): Promise<JobStore> => {
    if (overrides.jobs) return overrides.jobs;
    const [{ default: firestore }, { createFirestoreJobStore, firestoreClientConfig }] =
      await Promise.all([
        import('@google-cloud/firestore'),
        import('../shared/adapters/firestore-job-store.js'),
      ]);
    // Every job store operation is bounded (15 s by default); the settings also shorten the
    // attempts of the client's own reads, which would otherwise linger after the deadline.
    const db: Firestore = new firestore.Firestore(
      firestoreSettings(config, firestoreClientConfig()),
    );
    return createFirestoreJobStore(db, config.JOBS_COLLECTION);
  });

  const vertex = once(async (): Promise<VertexJobs> => {
    const emulatorHost = config.VERTEX_AI_EMULATOR_HOST;
    const [{ default: authLibrary }, { createVertexClient }] = await Promise.all([
      import('google-auth-library'),
      import('../shared/adapters/vertex-rest-client.js'),
    ]);
    // No credentials with an emulator: a static token, never refreshed.
    const auth = emulatorHost
      ? await staticTokenClient('emulator')
      : new authLibrary.GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
    // Bounded: 20 s per request, 25 s for a read with its retries (the client's defaults).
    return createVertexClient({ project: config.GOOGLE_CLOUD_PROJECT, auth, emulatorHost });
  });

  // BigQuery (manifests over a table): REST through google-auth-library like Vertex AI, three
  // read calls that do not pay for a client library of their own.
  const bigquery = once(async (): Promise<BigQueryTables> => {
    const emulatorHost = config.BIGQUERY_EMULATOR_HOST;
    const [{ default: authLibrary }, { createBigQueryClient }] = await Promise.all([
      import('google-auth-library'),
      import('../shared/adapters/bigquery-rest-client.js'),
    ]);
    const auth = emulatorHost
      ? await staticTokenClient('emulator')
      : new authLibrary.GoogleAuth({
          scopes: ['https://www.googleapis.com/auth/bigquery.readonly'],
        });
    return createBigQueryClient({ auth, emulatorHost });
  });

  const objects = once(async (): Promise<{ reader: ObjectReader; reports: ObjectWriter }> => {
    const [{ Storage }, { createGcsObjectReader, createGcsObjectWriter }, { fastCrc32cGenerator }] =
      await Promise.all([
        import('@google-cloud/storage'),
        import('../shared/adapters/gcs-objects.js'),
        import('../shared/adapters/crc32c.js'),
      ]);
    const options: StorageOptions = {
      projectId: config.GOOGLE_CLOUD_PROJECT,
      // `timeout` bounds the wait for each answer's headers (not the body of a long read: the
      // reader's stall timeout watches that); the retries of a write or copy are cut by the
      // writer's deadline.
      timeout: STORAGE_REQUEST_TIMEOUT_MS,
      // Every download is checked against the object's CRC32C; the client's own implementation
      // would cost more than the read itself.
      crc32cGenerator: fastCrc32cGenerator,
    };
    const storage: Storage = new Storage(options);
    return { reader: createGcsObjectReader(storage), reports: createGcsObjectWriter(storage) };
  });

  const publisher = once(async (): Promise<EventPublisher> => {
    const [{ default: pubsub }, { createPubSubPublisher }] = await Promise.all([
      import('@google-cloud/pubsub'),
      import('../shared/adapters/pubsub-publisher.js'),
    ]);
    return createPubSubPublisher(new pubsub.PubSub(pubsubOptions(config)), config.COMPLETION_TOPIC);
  });

  const log = overrides.log ?? createLogger(config.LOG_LEVEL);
  return {
    jobStore,
    vertex,
    objects,
    publisher,
    /** The ports of a target; each loads its SDK on its first call. */
    ports: {
      config,
      log,
      clock: (): Date => new Date(),
      newOwner: (): string => randomUUID(),
      jobs: overrides.jobs ?? deferred(jobStore),
      reader: deferred(async () => (await objects()).reader, ['read']),
      reports: deferred(async () => (await objects()).reports),
      vertex: deferred(vertex),
      bigquery: deferred(bigquery, ['rows']),
      publisher: deferred(publisher),
    } satisfies SubmitDeps & PollDeps,
  };
}

type Adapters = ReturnType<typeof createAdapters>;

/**
 * Starts loading what every invocation of a target reaches: the job store; for submit also Cloud
 * Storage and the Vertex client (an input is read, then submitted). Pub/Sub (submit publishes
 * only rejections) and, for poll, what only some runs reach, load on first use.
 */
function prewarmTarget(adapters: Adapters, target: 'submit' | 'poll'): void {
  const warm =
    target === 'submit'
      ? Promise.all([adapters.jobStore(), adapters.objects(), adapters.vertex()])
      : adapters.jobStore();
  warm.catch(() => undefined); // a failure here is retried, and reported, on first use
}

/** The submit target's dependencies alone (its deployed bundle holds nothing of poll's). */
export function createSubmitDependencies(
  config: Config,
  overrides: DependencyOverrides = {},
): TargetDependencies<SubmitDeps> {
  const adapters = createAdapters(config, overrides);
  return {
    get: async () => adapters.ports,
    prewarm: () => prewarmTarget(adapters, 'submit'),
  };
}

/** The poll target's dependencies alone (its deployed bundle holds nothing of submit's). */
export function createPollDependencies(
  config: Config,
  overrides: DependencyOverrides = {},
): TargetDependencies<PollDeps> {
  const adapters = createAdapters(config, overrides);
  return {
    get: async () => adapters.ports,
    prewarm: () => prewarmTarget(adapters, 'poll'),
  };
}

/** Builds the dependencies of both targets from a validated configuration, sharing the clients. */
export function createDependencies(
  config: Config,
  overrides: DependencyOverrides = {},
): Dependencies {
  const adapters = createAdapters(config, overrides);
  return {
    submit: async () => adapters.ports,
    poll: async () => adapters.ports,
    prewarm(target) {
      if (target === FUNCTION_TARGETS.submit) prewarmTarget(adapters, 'submit');
      else if (target === FUNCTION_TARGETS.poll) prewarmTarget(adapters, 'poll');
    },
  };
}
