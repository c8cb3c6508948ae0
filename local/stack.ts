/**
 * The offline stack: every service of the pipeline on one machine. Cloud Storage (builtin, on disk
 * under `.local/storage`, with Eventarc-like delivery), Pub/Sub (builtin, or the official emulator),
 * Firestore (the official emulator where gcloud is installed, else an in-memory job store),
 * BigQuery (builtin, in memory: Google ships no emulator), the Vertex AI batch emulator, and both
 * functions served by the functions framework over HTTP.
 */
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { PubSub, type Message, type Subscription } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { createDependencies } from '../functions/dependencies.js';
import type { PollSummary } from '../shared/app/poll.js';
import { registerPollBatchJobs } from '../functions/poll-batch-jobs/index.js';
import { registerSubmitBatchJob } from '../functions/submit-batch-job/index.js';
import { createMemoryJobStore } from '../shared/adapters/memory-job-store.js';
import { loadConfig } from '../shared/config.js';
import { CompletionEventSchema, type CompletionEvent } from '../shared/core/events.js';
import { FUNCTION_TARGETS } from '../shared/function-targets.js';
import { createLogger } from '../shared/logger.js';
import { createEventarcDelivery, type EventarcStats } from './storage/eventarc.js';
import {
  cloudSdkRoot,
  resolveEmulatorMode,
  startFirestoreEmulator,
  startPubSubEmulator as startOfficialPubSub,
  type RunningEmulator,
} from './gcloud-emulators.js';
import { startBigQueryEmulator } from './bigquery/server.js';
import { startPubSubEmulator } from './pubsub/server.js';
import { startStorageEmulator, type ObjectResource } from './storage/server.js';
import { startVertexEmulator, type BlobStore, type VertexEmulator } from './vertex/server.js';

export const PROJECT = 'demo-batch-courier';
export const INPUT_BUCKET = 'batch-courier-input';
export const OUTPUT_BUCKET = 'batch-courier-output';
export const INPUT_PREFIX = 'inputs/';
export const TOPIC = 'batch-courier-events';
/** The BigQuery dataset manifests may use: created empty at start, in the Gemini jobs' location. */
export const BIGQUERY_DATASET = 'reviews';
export const BIGQUERY_LOCATION = 'us-central1';

/** Options of {@link startStack}. */
export interface StackOptions {
  /** `BATCH_COURIER_EMULATORS`: auto | gcloud | builtin. */
  emulators?: string | undefined;
  /** Folder for objects on disk (`.local`). */
  root: string;
  /** How often the poller is called, like Cloud Scheduler (0: never; call `poll()`). */
  pollIntervalMs: number;
  /** Vertex emulator timing. */
  vertexTiming?: { pendingMs?: number; runningMs?: number };
  /** Every log line of the functions, parsed. */
  onLog?: (line: Record<string, unknown>) => void;
  /** Every completion event received on the topic. */
  onEvent?: (event: CompletionEvent) => void;
  /** Eventarc retry delays (tests use short ones). */
  eventarcRetry?: { initialDelayMs?: number; maxDelayMs?: number; maxAttempts?: number };
}

/** The services {@link Stack.stopService} can stop. */
export type StackService = 'vertex' | 'pubsub' | 'firestore';

/** A running stack. */
export type Stack = Awaited<ReturnType<typeof start>>;

/** Serves a function on a free loopback port until the stack stops; resolves with its URL. */
function listen(server: Server, stops: (() => Promise<void> | void)[]): Promise<string> {
  stops.push(() => new Promise<void>((r) => server.close(() => r())));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`),
    );
  });
}

/** Starts every service and both functions. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const stops: (() => Promise<void> | void)[] = [];
  const stopAll = async (): Promise<void> => {
    // Each part gets a few seconds to stop; a client that hangs on close must not keep the stack up.
    for (const stop of stops.reverse()) {
      await Promise.race([
        Promise.resolve(stop()).catch(() => undefined),
        new Promise((r) => setTimeout(r, 3000).unref()),
      ]);
    }
    stops.length = 0;
  };
  try {
    return await start(options, stops, stopAll);
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function start(
  options: StackOptions,
  stops: (() => Promise<void> | void)[],
  stopAll: () => Promise<void>,
) {
  const wanted = (options.emulators ?? 'auto').trim().toLowerCase() || 'auto';
  const mode = resolveEmulatorMode(wanted);
  mkdirSync(options.root, { recursive: true });

  // Firestore: the official emulator where installed, else the in-memory job store.
  let firestore: RunningEmulator | undefined;
  if (mode === 'gcloud') {
    firestore = await startFirestoreEmulator();
    // The latest process: a stopped one's stop() does nothing.
    stops.push(() => firestore?.stop());
  }
  // Pub/Sub: builtin unless gcloud's is asked for explicitly.
  const official = wanted === 'gcloud' ? await startOfficialPubSub() : undefined;
  let builtinPubSub = official ? undefined : await startPubSubEmulator();
  stops.push(() => official?.stop() ?? builtinPubSub?.close());
  const pubsubHost = official?.host ?? builtinPubSub?.host ?? '';
  const pubsubLabel = `${official ? 'official' : 'builtin'} emulator at ${pubsubHost}`;

  // Cloud Storage, with finalize events delivered to the submit function once it listens.
  let deliver: (o: ObjectResource) => void = () => undefined;
  const finalized = new Map<string, ObjectResource>();
  const storageEmulator = await startStorageEmulator({
    root: join(options.root, 'storage'),
    onFinalize: (object) => {
      finalized.set(`${object.bucket}/${object.name}`, object);
      deliver(object);
    },
    log: () => undefined,
  });
  stops.push(() => storageEmulator.close());

  // The SDK clients find the emulators through the standard variables, in this process too.
  const hosts: Record<string, string> = {
    STORAGE_EMULATOR_HOST: storageEmulator.url,
    PUBSUB_EMULATOR_HOST: pubsubHost,
    ...(firestore ? { FIRESTORE_EMULATOR_HOST: firestore.host } : {}),
  };
  delete process.env.FIRESTORE_EMULATOR_HOST;
  Object.assign(process.env, hosts);
  process.env.METADATA_SERVER_DETECTION ??= 'none';

  const storage = new Storage({ projectId: PROJECT });
  await storageEmulator.createBucket(INPUT_BUCKET);
  await storageEmulator.createBucket(OUTPUT_BUCKET);

  const file = (uri: string) => {
    const [, bucket = '', name = ''] = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri) ?? [];
    return storage.bucket(bucket).file(name);
  };
  const blobs: BlobStore = {
    read: async (uri) => (await file(uri).download())[0],
    write: (uri, data, contentType = 'application/jsonl') =>
      file(uri).save(data, { resumable: false, contentType }),
  };
  // BigQuery: always the builtin emulator. Vertex jobs reach it over HTTP, as the service would.
  const bigquery = await startBigQueryEmulator();
  stops.push(() => bigquery.close());
  bigquery.store.createDataset(PROJECT, BIGQUERY_DATASET, BIGQUERY_LOCATION);
  hosts.BIGQUERY_EMULATOR_HOST = process.env.BIGQUERY_EMULATOR_HOST = bigquery.host;

  let vertex = await startVertexEmulator({
    blobs,
    timing: options.vertexTiming ?? {},
    bigqueryHost: bigquery.host,
  });
  const vertexPort = Number(vertex.host.split(':')[1]);
  stops.push(() => vertex.close());
  hosts.VERTEX_AI_EMULATOR_HOST = process.env.VERTEX_AI_EMULATOR_HOST = vertex.host;

  // The topic Terraform would create, and a subscription that shows the events.
  const pubsub = new PubSub({ projectId: PROJECT });
  stops.push(() => pubsub.close());
  const events: CompletionEvent[] = [];
  const listeners = new Set<(event: CompletionEvent) => void>();
  let subscription: Subscription | undefined;
  const subscribe = async (): Promise<void> => {
    const [topic] = await pubsub.createTopic(TOPIC);
    [subscription] = await topic.createSubscription(`${TOPIC}-local`);
    subscription.on('message', (message: Message) => {
      message.ack();
      const event = CompletionEventSchema.parse(JSON.parse(message.data.toString('utf8')));
      events.push(event);
      options.onEvent?.(event);
      for (const listener of listeners) listener(event);
    });
    subscription.on('error', () => undefined);
  };
  await subscribe();
  stops.push(() => subscription?.close());

  // Both functions, configured exactly as Terraform configures them.
  const env: Record<string, string> = {
    GOOGLE_CLOUD_PROJECT: PROJECT,
    VERTEX_LOCATION: 'us-central1',
    ANTHROPIC_LOCATION: 'us-east5',
    OUTPUT_URI_PREFIX: `gs://${OUTPUT_BUCKET}/results`,
    INPUT_PREFIX,
    COMPLETION_TOPIC: TOPIC,
    JOBS_COLLECTION: 'batchJobs',
    ALLOWED_BIGQUERY_DATASETS: `${PROJECT}.${BIGQUERY_DATASET}`,
    LOG_LEVEL: 'debug',
    ...hosts,
  };
  const config = loadConfig(env);
  const log = createLogger('debug', (line) => {
    options.onLog?.(JSON.parse(line) as Record<string, unknown>);
  });
  const deps = createDependencies(config, {
    log,
    ...(firestore ? {} : { jobs: createMemoryJobStore() }),
  });
  registerSubmitBatchJob(deps.submit);
  registerPollBatchJobs(deps.poll);
  const submitUrl = await listen(getTestServer(FUNCTION_TARGETS.submit), stops);
  const pollUrl = await listen(getTestServer(FUNCTION_TARGETS.poll), stops);

  const eventarc = createEventarcDelivery({
    targetUrl: submitUrl,
    bucket: INPUT_BUCKET,
    retry: { initialDelayMs: 1000, maxDelayMs: 10_000, ...options.eventarcRetry },
  });
  stops.unshift(() => eventarc.close());
  deliver = (object) => eventarc.deliver(object);

  const poll = async (): Promise<PollSummary> => {
    const res = await fetch(pollUrl, { method: 'POST' });
    const body = (await res.json()) as PollSummary;
    if (!res.ok) throw new Error(`pollBatchJobs answered ${res.status}: ${JSON.stringify(body)}`);
    return body;
  };
  if (options.pollIntervalMs > 0) {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      poll()
        .catch(() => undefined)
        .finally(() => {
          running = false;
        });
    }, options.pollIntervalMs);
    stops.unshift(() => clearInterval(timer));
  }

  const sdk = cloudSdkRoot();
  return {
    /** Which Firestore and Pub/Sub are in use, for the banner and test output. */
    services: {
      firestore: firestore
        ? `official emulator at ${firestore.host}`
        : `in-memory job store (lower fidelity${sdk ? '' : ': gcloud is not installed'})`,
      pubsub: pubsubLabel,
      storage: `builtin emulator at ${storageEmulator.url} (files under ${storageEmulator.root})`,
      vertex: `builtin emulator at ${vertex.host}`,
      bigquery: `builtin emulator at ${bigquery.host} (in memory; dataset ${PROJECT}.${BIGQUERY_DATASET} in ${BIGQUERY_LOCATION})`,
    },
    /** The environment the functions run with (the variables Terraform sets, plus emulator hosts). */
    env,
    storage,
    get vertex(): VertexEmulator {
      return vertex;
    },
    /** The BigQuery emulator: `host`, and `store` to seed tables and read what jobs wrote. */
    bigquery,
    submitUrl,
    pollUrl,
    /** Events received so far. */
    events,
    /** Uploads an input to the input bucket (which fires the finalize event). */
    async upload(
      name: string,
      content: string | Buffer,
      metadata?: Record<string, string>,
    ): Promise<ObjectResource> {
      const file = storage.bucket(INPUT_BUCKET).file(name);
      await file.save(content, {
        resumable: false,
        contentType: 'application/jsonl',
        ...(metadata ? { metadata: { metadata } } : {}),
      });
      const object = finalized.get(`${INPUT_BUCKET}/${name}`);
      if (!object) throw new Error(`no finalize event for ${name}`);
      return object;
    },
    /** Delivers the finalize event of an uploaded object once more (a duplicate delivery). */
    redeliver(name: string): void {
      const object = finalized.get(`${INPUT_BUCKET}/${name}`);
      if (!object) throw new Error(`never uploaded: ${name}`);
      eventarc.deliver(object);
    },
    /** Calls the poller once, like Cloud Scheduler. */
    poll,
    /** Resolves with the first event (already received or future) that matches. */
    waitForEvent(
      match: (e: CompletionEvent) => boolean,
      timeoutMs: number,
    ): Promise<CompletionEvent> {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const settle = (event?: CompletionEvent): void => {
          clearTimeout(timer);
          listeners.delete(listener);
          if (event) resolve(event);
          else reject(new Error(`no matching completion event within ${timeoutMs} ms`));
        };
        const listener = (event: CompletionEvent): void => {
          if (match(event)) settle(event);
        };
        const timer = setTimeout(settle, timeoutMs);
        listeners.add(listener);
      });
    },
    /**
     * Stops a service (an outage), and starts it again on the same port: the Vertex emulator, the
     * builtin Pub/Sub emulator, or the official Firestore emulator (not the in-memory job store). A
     * restarted emulator starts empty: the Vertex emulator forgets its jobs, Firestore its records;
     * the Pub/Sub topic and the stack's subscription are created again, as Terraform would have them.
     */
    async stopService(name: StackService): Promise<void> {
      if (name === 'vertex') return vertex.close();
      if (name === 'firestore') {
        if (!firestore) throw new Error('the in-memory job store cannot be stopped');
        return firestore.stop();
      }
      if (!builtinPubSub) throw new Error('only the builtin Pub/Sub emulator can be stopped');
      await subscription?.close();
      await builtinPubSub.close();
    },
    async startService(name: StackService): Promise<void> {
      if (name === 'vertex') {
        vertex = await startVertexEmulator({
          blobs,
          port: vertexPort,
          timing: options.vertexTiming ?? {},
          bigqueryHost: bigquery.host,
        });
        return;
      }
      if (name === 'firestore') {
        if (!firestore) throw new Error('the in-memory job store cannot be restarted');
        firestore = await startFirestoreEmulator({ port: Number(firestore.host.split(':')[1]) });
        return;
      }
      if (!builtinPubSub) throw new Error('only the builtin Pub/Sub emulator can be restarted');
      builtinPubSub = await startPubSubEmulator({ port: builtinPubSub.port });
      await subscribe();
    },
    /** Waits until Eventarc has nothing in flight. */
    deliveriesIdle: () => eventarc.idle(),
    /** Eventarc's counters: delivered, retried, failed (dropped after its last attempt). */
    deliveryStats: (): EventarcStats => ({ ...eventarc.stats }),
    stop: stopAll,
  };
}
