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
import type { PollDeps } from '../shared/app/poll.js';
import type { SubmitDeps } from '../shared/app/submit.js';

/** How long a Cloud Storage request waits for an answer (the client's default is 60 s). */
const STORAGE_REQUEST_TIMEOUT_MS = 15_000;

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
    const [{ Firestore }, { createFirestoreJobStore, firestoreClientConfig }] = await Promise.all([
      import('@google-cloud/firestore'),
      import('../shared/adapters/firestore-job-store.js'),
    ]);
    // Every job store operation is bounded (15 s by default); the settings also shorten the
    // attempts of the client's own reads, which would otherwise linger after the deadline.
    return createFirestoreJobStore(
      new Firestore({ projectId: config.GOOGLE_CLOUD_PROJECT, ...firestoreClientConfig() }),
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
    // Bounded: 20 s per request, 25 s for a read with its retries (the client's defaults).
    return createVertexClient({ project: config.GOOGLE_CLOUD_PROJECT, auth, emulatorHost });
  });

  const objects = once(async (): Promise<{ reader: ObjectReader; reports: ObjectWriter }> => {
    const [{ Storage }, { createGcsObjectReader, createGcsObjectWriter }] = await Promise.all([
      import('@google-cloud/storage'),
      import('../shared/adapters/gcs-objects.js'),
    ]);
    // `timeout` bounds the wait for each answer's headers (not the body of a long read: the
    // reader's stall timeout watches that); the retries of a write or copy are cut by the
    // writer's deadline.
    const storage = new Storage({
      projectId: config.GOOGLE_CLOUD_PROJECT,
      timeout: STORAGE_REQUEST_TIMEOUT_MS,
    });
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
