/**
 * Deadlines over the wire: every adapter, with its unmodified Google client pointed at a black
 * hole (a TCP server that accepts connections and never answers) through the standard
 * *_EMULATOR_HOST variables, rejects with a TransientError within its deadline. Runs the same on
 * machines with and without gcloud: no emulator is involved.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Firestore } from '@google-cloud/firestore';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createFirestoreJobStore,
  firestoreClientConfig,
} from '../../shared/adapters/firestore-job-store.js';
import { createGcsObjectReader, createGcsObjectWriter } from '../../shared/adapters/gcs-objects.js';
import {
  createPubSubPublisher,
  PUBLISH_TIMEOUT_MS,
} from '../../shared/adapters/pubsub-publisher.js';
import { createVertexClient } from '../../shared/adapters/vertex-rest-client.js';
import { TransientError } from '../../shared/core/errors.js';
import { buildCompletionEvent } from '../../shared/core/events.js';
import { buildBatchJobRequest, jobIdFilter } from '../../shared/core/vertex.js';
import { startPubSubEmulator } from '../../local/pubsub-emulator.js';
import { crc32cBase64 } from '../../local/storage-emulator.js';
import { completedRecord, submittingRecord } from '../records.js';
import { startBlackHole, type BlackHole } from './black-hole.js';

let hole: BlackHole;
beforeAll(async () => {
  hole = await startBlackHole();
});
afterAll(() => hole.close());

const saved: Record<string, string | undefined> = {};
function setEnv(name: string, value: string): void {
  if (!(name in saved)) saved[name] = process.env[name];
  process.env[name] = value;
}
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
    delete saved[name];
  }
});

/** How a call ended and how long it took. */
async function timed(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await call().then(
    () => undefined,
    (err: unknown) => err,
  );
  return { error, ms: performance.now() - started };
}

/** Gives a client's close a moment, without letting a hung close fail the test. */
async function closeQuietly(close: () => Promise<unknown>): Promise<void> {
  await Promise.race([close().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
}

describe('item 8: the Firestore job store against a Firestore that never answers', () => {
  it('item 8: every operation rejects with TransientError JOBS.UNAVAILABLE within deadlineMs', async () => {
    setEnv('FIRESTORE_EMULATOR_HOST', hole.host);
    const db = new Firestore({ projectId: 'demo-batch-courier', ...firestoreClientConfig(800) });
    const store = createFirestoreJobStore(db, 'jobs', { deadlineMs: 800 });
    const ops: [string, () => Promise<unknown>][] = [
      ['createIfAbsent', () => store.createIfAbsent(submittingRecord('a'))],
      ['get', () => store.get('a')],
      ['update', () => store.update('a', (cur) => ({ ...cur, createAttempts: 1 }))],
      ['countWaiting', () => store.countWaiting('q')],
      ['reserveSlot', () => store.reserveSlot('anthropic', 'a', 4)],
      ['releaseSlot', () => store.releaseSlot('anthropic', 'a')],
      ['listOutstanding', () => store.listOutstanding(10)],
    ];
    const results = await Promise.all(ops.map(async ([name, op]) => [name, await timed(op)]));
    for (const [name, { error, ms }] of results as [string, { error: unknown; ms: number }][]) {
      expect(error, name).toBeInstanceOf(TransientError);
      expect(error, name).toMatchObject({ code: 'JOBS.UNAVAILABLE' });
      expect((error as Error).message, name).toMatch(/Firestore did not answer within 0\.8 s/);
      expect(ms, name).toBeGreaterThanOrEqual(700);
      expect(ms, name).toBeLessThan(2000);
    }
    expect(hole.accepted()).toBeGreaterThan(0);
    // Not terminated: the client still retries the abandoned calls in the background, and a
    // terminate under them makes the client itself reject where nobody listens.
  });
});

describe('item 8: Cloud Storage that never answers, or answers slowly', () => {
  it('item 8: a read that receives no bytes fails with TransientError STORAGE.UNAVAILABLE after the stall timeout', async () => {
    setEnv('STORAGE_EMULATOR_HOST', hole.url);
    const storage = new Storage({ projectId: 'demo-batch-courier' });
    const reader = createGcsObjectReader(storage, { stallTimeoutMs: 500 });
    const { error, ms } = await timed(async () => {
      for await (const _ of reader.read('acme-in', 'inputs/a.jsonl', '1')) void _;
    });
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect((error as Error).message).toMatch(/sent no bytes for 0\.5 s/);
    expect(ms).toBeLessThan(1500);
  });

  it('item 8: a write and a copy that get no answer fail with TransientError STORAGE.UNAVAILABLE within deadlineMs', async () => {
    setEnv('STORAGE_EMULATOR_HOST', hole.url);
    const storage = new Storage({ projectId: 'demo-batch-courier' });
    const writer = createGcsObjectWriter(storage, { deadlineMs: 600 });
    const results = await Promise.all([
      timed(() => writer.write('gs://acme-out/r/rejection.json', '{}', 'application/json')),
      timed(() =>
        writer.copy(
          { bucket: 'acme-in', name: 'inputs/a.jsonl', generation: '1' },
          'gs://acme-out/r/input.jsonl',
        ),
      ),
    ]);
    for (const { error, ms } of results) {
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
      expect((error as Error).message).toMatch(/did not answer within 0\.6 s/);
      expect(ms).toBeLessThan(1500);
    }
  });

  describe('a server that sends a large object slowly, a chunk every 150 ms', () => {
    let server: Server;
    const chunk = Buffer.from('{"request":{}}\n'.repeat(100));
    const chunks = 12;
    const body = Buffer.concat(Array.from({ length: chunks }, () => chunk));
    beforeAll(async () => {
      server = createServer((req, res) => {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'x-goog-hash': `crc32c=${crc32cBase64(body)}`,
          'x-goog-generation': '1',
          'x-goog-stored-content-encoding': 'identity',
        });
        let sent = 0;
        const timer = setInterval(() => {
          res.write(chunk);
          if (++sent === chunks) {
            clearInterval(timer);
            res.end();
          }
        }, 150);
        req.on('close', () => clearInterval(timer));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('item 8: is read to the end: the stall timeout and the request timeout do not cut a read that keeps moving', async () => {
      setEnv('STORAGE_EMULATOR_HOST', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      // The request timeout (as functions/dependencies.ts sets one) bounds the wait for headers only.
      const storage = new Storage({ projectId: 'demo-batch-courier', timeout: 500 });
      const reader = createGcsObjectReader(storage, { stallTimeoutMs: 500 });
      let bytes = 0;
      const started = performance.now();
      for await (const c of reader.read('acme-in', 'inputs/slow.jsonl', '1')) bytes += c.length;
      expect(bytes).toBe(body.length);
      expect(performance.now() - started).toBeGreaterThan(1500); // longer than either timeout
    });
  });
});

describe('item 8: Vertex AI that never answers', () => {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600_000 });
  const name = 'projects/1/locations/us-central1/batchPredictionJobs/2';
  const request = buildBatchJobRequest({
    jobId: 'a',
    model: 'publishers/google/models/gemini-2.5-flash',
    inputUri: 'gs://acme-in/a.jsonl',
    outputUriPrefix: 'gs://acme-out/a/',
  });

  it('item 8: create and cancel (one request each) reject with TransientError VERTEX.UNAVAILABLE after timeoutMs', async () => {
    const client = createVertexClient({
      project: 'demo-project',
      auth,
      emulatorHost: hole.host,
      timeoutMs: 400,
      totalTimeoutMs: 5000,
    });
    const before = hole.accepted();
    const results = await Promise.all([
      timed(() => client.create('us-central1', request)),
      timed(() => client.cancel(name)),
    ]);
    for (const { error, ms } of results) {
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'VERTEX.UNAVAILABLE' });
      expect((error as Error).message).toMatch(/no answer within 0\.4 s/);
      expect(ms).toBeLessThan(1000);
    }
    expect(hole.accepted() - before).toBe(2); // never retried
  });

  it('item 8: get and list retry, but all their attempts together end within totalTimeoutMs', async () => {
    const client = createVertexClient({
      project: 'demo-project',
      auth,
      emulatorHost: hole.host,
      timeoutMs: 1000,
      totalTimeoutMs: 2500,
    });
    const before = hole.accepted();
    const results = await Promise.all([
      timed(() => client.get(name)),
      timed(() => client.list('us-central1', { filter: jobIdFilter(['a']) })),
    ]);
    for (const { error, ms } of results) {
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'VERTEX.UNAVAILABLE' });
      expect(ms).toBeLessThanOrEqual(2700);
    }
    expect(hole.accepted() - before).toBeGreaterThan(2); // retried
  });

  it('item 8: the defaults are at most 20 s per request and 25 s per read', async () => {
    const { DEFAULT_VERTEX_REQUEST_TIMEOUT_MS, DEFAULT_VERTEX_TOTAL_TIMEOUT_MS } =
      await import('../../shared/adapters/vertex-rest-client.js');
    expect(DEFAULT_VERTEX_REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(20_000);
    expect(DEFAULT_VERTEX_TOTAL_TIMEOUT_MS).toBeLessThanOrEqual(25_000);
  });
});

describe('item 8: Pub/Sub that never answers', () => {
  it(
    'deadline: a publish rejects with TransientError EVENTS.UNAVAILABLE within PUBLISH_TIMEOUT_MS',
    async () => {
      setEnv('PUBSUB_EMULATOR_HOST', hole.host);
      const pubsub = new PubSub({ projectId: 'demo-batch-courier' });
      const publisher = createPubSubPublisher(pubsub, 'events');
      const { error, ms } = await timed(() =>
        publisher.publish(buildCompletionEvent(completedRecord(), new Date())),
      );
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'EVENTS.UNAVAILABLE' });
      expect(ms).toBeLessThan(PUBLISH_TIMEOUT_MS + 1000);
      await closeQuietly(() => pubsub.close());
    },
    PUBLISH_TIMEOUT_MS + 10_000,
  );

  it(
    'deadline: a publish to a Pub/Sub that refuses connections (stopped) rejects within PUBLISH_TIMEOUT_MS',
    async () => {
      const emulator = await startPubSubEmulator({ log: () => undefined });
      setEnv('PUBSUB_EMULATOR_HOST', emulator.host);
      const pubsub = new PubSub({ projectId: 'demo-batch-courier' });
      await pubsub.createTopic('events');
      const publisher = createPubSubPublisher(pubsub, 'events');
      const event = buildCompletionEvent(completedRecord(), new Date());
      await publisher.publish(event);
      await emulator.close();
      // The client's own retries took 16 s, then 30 s, for these two publishes.
      for (let i = 0; i < 2; i++) {
        const { error, ms } = await timed(() => publisher.publish(event));
        expect(error).toBeInstanceOf(TransientError);
        expect(error).toMatchObject({ code: 'EVENTS.UNAVAILABLE' });
        expect(ms).toBeLessThan(PUBLISH_TIMEOUT_MS + 1000);
      }
      await closeQuietly(() => pubsub.close());
    },
    3 * PUBLISH_TIMEOUT_MS + 10_000,
  );
});
