/**
 * Deadlines end to end over HTTP: both functions, composed exactly as deployed
 * (functions/dependencies.ts with the real adapters and their default deadlines) and served by the
 * functions framework, answer 500 within 30 s when a dependency accepts connections but never
 * answers (a black hole), instead of hanging on the clients' own retries for a minute or more.
 * Needs no emulator from gcloud: it runs the same on every machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDependencies, type Dependencies } from '../../functions/dependencies.js';
import { registerPollBatchJobs } from '../../functions/poll-batch-jobs/index.js';
import { registerSubmitBatchJob } from '../../functions/submit-batch-job/index.js';
import { createMemoryJobStore } from '../../shared/adapters/memory-job-store.js';
import { loadConfig } from '../../shared/config.js';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { createLogger } from '../../shared/logger.js';
import { startStorageEmulator, type StorageEmulator } from '../../local/storage-emulator.js';
import { finalizeEvent, GEMINI_LINES } from '../fakes.js';
import { startBlackHole, type BlackHole } from '../integration/black-hole.js';

const BUCKET = 'acme-batch-input';
const NAME = 'inputs/customer-reviews.jsonl';
/** What the task requires of every function answer while a dependency is down. */
const LIMIT_MS = 30_000;

let hole: BlackHole;
let current: Dependencies | undefined;
const logs: Record<string, unknown>[] = [];

beforeAll(async () => {
  hole = await startBlackHole();
  const deps = (): Dependencies => {
    if (!current) throw new Error('no dependencies for this test');
    return current;
  };
  registerSubmitBatchJob(() => deps().submit());
  registerPollBatchJobs(() => deps().poll());
});
afterAll(() => hole.close());

const EMULATOR_VARIABLES = [
  'FIRESTORE_EMULATOR_HOST',
  'STORAGE_EMULATOR_HOST',
  'PUBSUB_EMULATOR_HOST',
  'VERTEX_AI_EMULATOR_HOST',
] as const;
const saved = Object.fromEntries(EMULATOR_VARIABLES.map((v) => [v, process.env[v]]));
afterEach(() => {
  current = undefined;
  logs.length = 0;
  for (const v of EMULATOR_VARIABLES) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
});

/**
 * Dependencies as functions/index.ts builds them, with every endpoint set by `hosts` (the clients
 * read the standard variables when they are built: built here, while the variables are set).
 */
async function compose(
  hosts: Record<(typeof EMULATOR_VARIABLES)[number], string>,
  inMemoryJobs = false,
): Promise<Dependencies> {
  for (const v of EMULATOR_VARIABLES) process.env[v] = hosts[v];
  const config = loadConfig({
    GOOGLE_CLOUD_PROJECT: 'demo-batch-courier',
    OUTPUT_URI_PREFIX: 'gs://acme-batch-output/results',
    COMPLETION_TOPIC: 'batch-courier-events',
    INPUT_PREFIX: 'inputs/',
    LOG_LEVEL: 'debug',
    ...hosts,
  });
  const log = createLogger('debug', (line) =>
    logs.push(JSON.parse(line) as Record<string, unknown>),
  );
  const deps = createDependencies(config, {
    log,
    ...(inMemoryJobs ? { jobs: createMemoryJobStore() } : {}),
  });
  await Promise.all([deps.submit(), deps.poll()]);
  return deps;
}

/** A binary-mode delivery, as Eventarc sends it. */
function deliver(overrides: Parameters<typeof finalizeEvent>[0] = {}) {
  const ev = finalizeEvent({
    bucket: BUCKET,
    name: NAME,
    time: new Date().toISOString(),
    ...overrides,
  });
  return supertest(getTestServer(FUNCTION_TARGETS.submit))
    .post('/')
    .set('content-type', 'application/json')
    .set('ce-specversion', '1.0')
    .set('ce-id', ev.id ?? '1')
    .set('ce-type', ev.type ?? '')
    .set('ce-source', ev.source ?? '')
    .set('ce-subject', ev.subject ?? '')
    .set('ce-time', ev.time ?? '')
    .send(JSON.stringify(ev.data));
}

/** Runs a request and measures it. */
async function timed<T>(request: PromiseLike<T>): Promise<{ res: T; ms: number }> {
  const started = performance.now();
  const res = await request;
  return { res, ms: performance.now() - started };
}

describe('item 8: both functions answer 500 within 30 s when a dependency never answers', () => {
  it(
    'deadline: Firestore never answers: submit and poll each answer 500 within 30 s',
    async () => {
      current = await compose({
        FIRESTORE_EMULATOR_HOST: hole.host,
        STORAGE_EMULATOR_HOST: hole.url,
        PUBSUB_EMULATOR_HOST: hole.host,
        VERTEX_AI_EMULATOR_HOST: hole.host,
      });
      const [submit, poll] = await Promise.all([
        timed(deliver()),
        timed(supertest(getTestServer(FUNCTION_TARGETS.poll)).post('/')),
      ]);
      expect(submit.res.status).toBe(500);
      expect(submit.ms).toBeLessThan(LIMIT_MS);
      expect(poll.res.status).toBe(500);
      expect(poll.ms).toBeLessThan(LIMIT_MS);
      expect(poll.res.body).toMatchObject({
        error: { code: 'JOBS.UNAVAILABLE', message: expect.stringMatching(/did not answer/) },
      });
      expect(hole.accepted()).toBeGreaterThan(0);
    },
    LIMIT_MS + 15_000,
  );

  it(
    'deadline: Cloud Storage never answers: submit answers 500 within 30 s',
    async () => {
      current = await compose(
        {
          FIRESTORE_EMULATOR_HOST: hole.host,
          STORAGE_EMULATOR_HOST: hole.url,
          PUBSUB_EMULATOR_HOST: hole.host,
          VERTEX_AI_EMULATOR_HOST: hole.host,
        },
        true,
      );
      const submit = await timed(deliver());
      expect(submit.res.status).toBe(500);
      expect(submit.ms).toBeLessThan(LIMIT_MS);
      expect(logs).toContainEqual(
        expect.objectContaining({
          event: 'submit.retry',
          error: expect.objectContaining({ code: 'STORAGE.UNAVAILABLE' }),
        }),
      );
    },
    LIMIT_MS + 15_000,
  );

  describe('with the input in a storage emulator', () => {
    let storage: StorageEmulator;
    let root: string;
    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'bc-deadlines-'));
      storage = await startStorageEmulator({ root, log: () => undefined });
      await storage.createBucket(BUCKET);
      await storage.createBucket('acme-batch-output');
    });
    afterAll(async () => {
      await storage.close();
      rmSync(root, { recursive: true, force: true });
    });

    it(
      'deadline: Vertex AI never answers: submit answers 500 within 30 s',
      async () => {
        current = await compose(
          {
            FIRESTORE_EMULATOR_HOST: hole.host,
            STORAGE_EMULATOR_HOST: storage.url,
            PUBSUB_EMULATOR_HOST: hole.host,
            VERTEX_AI_EMULATOR_HOST: hole.host,
          },
          true,
        );
        const file = new Storage({ projectId: 'demo-batch-courier' }).bucket(BUCKET).file(NAME);
        await file.save(GEMINI_LINES, { resumable: false, contentType: 'application/jsonl' });
        const [meta] = await file.getMetadata();
        const submit = await timed(
          deliver({ generation: String(meta.generation), size: String(meta.size) }),
        );
        expect(submit.res.status).toBe(500);
        expect(submit.ms).toBeLessThan(LIMIT_MS);
        expect(logs).toContainEqual(
          expect.objectContaining({
            event: 'submit.retry',
            error: expect.objectContaining({
              code: 'VERTEX.UNAVAILABLE',
              message: expect.stringMatching(/no answer within 20 s/),
            }),
          }),
        );
      },
      LIMIT_MS + 15_000,
    );
  });
});
