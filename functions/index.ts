/**
 * The composition root of the deployable package (`package.json` `main`): validates the
 * configuration once at cold start and registers both function targets. Adapters are built on
 * first use and only those a target needs are loaded: the SDKs cost ~0.1–0.35 s each to import.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../shared/config.js';
import { FUNCTION_TARGETS } from '../shared/function-targets.js';
import { createLogger } from '../shared/logger.js';
import type { EventPublisher, JobStore, ObjectReader, VertexJobs } from '../shared/ports.js';
import { registerPollBatchJobs } from './poll-batch-jobs/index.js';
import { registerSubmitBatchJob } from './submit-batch-job/index.js';

const config: Config = loadConfig(process.env);
const log = createLogger(config.LOG_LEVEL);
const clock = (): Date => new Date();
const newOwner = (): string => randomUUID();

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

const jobStore = once(async (): Promise<JobStore> => {
  const [{ Firestore }, { createFirestoreJobStore }] = await Promise.all([
    import('@google-cloud/firestore'),
    import('../shared/adapters/firestore-job-store.js'),
  ]);
  return createFirestoreJobStore(
    new Firestore({ projectId: config.GOOGLE_CLOUD_PROJECT }),
    config.JOBS_COLLECTION,
  );
});

const vertex = once(async (): Promise<VertexJobs> => {
  const [{ GoogleAuth, OAuth2Client }, { createVertexClient }] = await Promise.all([
    import('google-auth-library'),
    import('../shared/adapters/vertex-rest-client.js'),
  ]);
  const emulatorHost = config.VERTEX_AI_EMULATOR_HOST;
  let auth;
  if (emulatorHost) {
    // No credentials with an emulator: a static token, never refreshed.
    const client = new OAuth2Client();
    client.setCredentials({
      access_token: 'emulator',
      expiry_date: Date.now() + 10 * 365 * 86400e3,
    });
    auth = client;
  } else {
    auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
  }
  return createVertexClient({ project: config.GOOGLE_CLOUD_PROJECT, auth, emulatorHost });
});

const reader = once(async (): Promise<ObjectReader> => {
  const [{ Storage }, { createGcsObjectReader }] = await Promise.all([
    import('@google-cloud/storage'),
    import('../shared/adapters/gcs-object-reader.js'),
  ]);
  return createGcsObjectReader(new Storage({ projectId: config.GOOGLE_CLOUD_PROJECT }));
});

const publisher = once(async (): Promise<EventPublisher> => {
  const [{ PubSub }, { createPubSubPublisher }] = await Promise.all([
    import('@google-cloud/pubsub'),
    import('../shared/adapters/pubsub-publisher.js'),
  ]);
  return createPubSubPublisher(
    new PubSub({ projectId: config.GOOGLE_CLOUD_PROJECT }),
    config.COMPLETION_TOPIC,
  );
});

/**
 * The publisher is only needed when an input is rejected: the submit function gets a publisher
 * that loads the Pub/Sub client on its first publish, so accepted inputs never pay for it.
 */
const lazyPublisher: EventPublisher = {
  publish: async (event) => (await publisher()).publish(event),
};

registerSubmitBatchJob(
  once(async () => ({
    config,
    log,
    clock,
    newOwner,
    publisher: lazyPublisher,
    ...(await awaitAll({ jobs: jobStore(), reader: reader(), vertex: vertex() })),
  })),
);

registerPollBatchJobs(
  once(async () => ({
    config,
    log,
    clock,
    newOwner,
    ...(await awaitAll({ jobs: jobStore(), vertex: vertex(), publisher: publisher() })),
  })),
);

async function awaitAll<T extends Record<string, Promise<unknown>>>(
  parts: T,
): Promise<{ [K in keyof T]: Awaited<T[K]> }> {
  const entries = await Promise.all(
    Object.entries(parts).map(async ([k, v]) => [k, await v] as const),
  );
  return Object.fromEntries(entries) as { [K in keyof T]: Awaited<T[K]> };
}

// Start loading this target's clients during cold start, before the first request arrives.
const target = process.env.FUNCTION_TARGET;
if (target === FUNCTION_TARGETS.submit)
  void Promise.all([jobStore(), reader(), vertex()]).catch(() => undefined);
if (target === FUNCTION_TARGETS.poll)
  void Promise.all([jobStore(), vertex(), publisher()]).catch(() => undefined);
