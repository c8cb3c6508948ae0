/**
 * Composition: builds the adapters of each target from the configuration, on first use, loading
 * only the SDKs that target needs (each costs ~0.1–0.35 s to import). Used by the deployable entry
 * (`functions/index.ts`) and by the offline stack (which may bring its own job store).
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../shared/config.js';
import { FUNCTION_TARGETS } from '../shared/function-targets.js';
import { createLogger, type Logger } from '../shared/logger.js';
import type {
  EventPublisher,
  JobStore,
  ObjectReader,
  ObjectWriter,
  VertexJobs,
} from '../shared/ports.js';
import type { PollDeps } from './poll-batch-jobs/handler.js';
import type { SubmitDeps } from './submit-batch-job/handler.js';

/** Replacements for the default adapters (the offline stack's in-memory job store). */
export interface DependencyOverrides {
  jobs?: JobStore;
  log?: Logger;
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

/** Builds the dependencies of both targets from a validated configuration. */
export function createDependencies(
  config: Config,
  overrides: DependencyOverrides = {},
): Dependencies {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL);
  const clock = (): Date => new Date();
  const newOwner = (): string => randomUUID();

  const jobStore = once(async (): Promise<JobStore> => {
    if (overrides.jobs) return overrides.jobs;
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

  const objects = once(async (): Promise<{ reader: ObjectReader; reports: ObjectWriter }> => {
    const [{ Storage }, { createGcsObjectReader, createGcsObjectWriter }] = await Promise.all([
      import('@google-cloud/storage'),
      import('../shared/adapters/gcs-objects.js'),
    ]);
    const storage = new Storage({ projectId: config.GOOGLE_CLOUD_PROJECT });
    return { reader: createGcsObjectReader(storage), reports: createGcsObjectWriter(storage) };
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

  // The submit function publishes only when it rejects an input: its publisher loads the Pub/Sub
  // client on the first publish, so accepted inputs never pay for it.
  const lazyPublisher: EventPublisher = {
    publish: async (event) => (await publisher()).publish(event),
  };
  const base = { config, log, clock, newOwner };

  return {
    submit: once(async () => {
      const [jobs, { reader, reports }, vx] = await Promise.all([jobStore(), objects(), vertex()]);
      return { ...base, jobs, reader, reports, vertex: vx, publisher: lazyPublisher };
    }),
    poll: once(async () => {
      const [jobs, { reader, reports }, vx, pub] = await Promise.all([
        jobStore(),
        objects(),
        vertex(),
        publisher(),
      ]);
      return { ...base, jobs, reader, reports, vertex: vx, publisher: pub };
    }),
    prewarm(target) {
      const warm =
        target === FUNCTION_TARGETS.submit
          ? Promise.all([jobStore(), objects(), vertex()])
          : target === FUNCTION_TARGETS.poll
            ? Promise.all([jobStore(), objects(), vertex(), publisher()])
            : undefined;
      warm?.catch(() => undefined); // a failure here is retried, and reported, on first use
    },
  };
}
