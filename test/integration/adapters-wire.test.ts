/**
 * The Pub/Sub publisher and the Cloud Storage reader over the wire, with the unmodified Google
 * clients pointed at emulators through the standard *_EMULATOR_HOST variables: the builtin
 * emulators everywhere, and the official Pub/Sub emulator where gcloud is installed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createGcsObjectReader, createGcsObjectWriter } from '../../shared/adapters/gcs-objects.js';
import { createPubSubPublisher } from '../../shared/adapters/pubsub-publisher.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import {
  buildCompletionEvent,
  CompletionEventSchema,
  MAX_ATTRIBUTE_VALUE_BYTES,
} from '../../shared/core/events.js';
import { startPubSubEmulator, type PubSubEmulator } from '../../local/pubsub-emulator.js';
import { startStorageEmulator, type StorageEmulator } from '../../local/storage-emulator.js';
import { completedRecord } from '../records.js';

const record = completedRecord();

function publisherSuite(name: string, host: () => string): void {
  describe(`Pub/Sub publisher over the wire: ${name}`, () => {
    let pubsub: PubSub;
    beforeAll(async () => {
      process.env.PUBSUB_EMULATOR_HOST = host();
      pubsub = new PubSub({ projectId: 'demo-batch-courier' });
      const [topic] = await pubsub.createTopic(`events-${Date.now()}`);
      await topic.createSubscription('sub');
    });
    afterAll(async () => {
      await pubsub.close();
      delete process.env.PUBSUB_EMULATOR_HOST;
    });

    it('publishes JSON data with the contract attributes', async () => {
      const [topics] = await pubsub.getTopics();
      const topicName = topics[0]!.name;
      const publisher = createPubSubPublisher(pubsub, topicName);
      const event = buildCompletionEvent(record, new Date('2026-11-26T10:05:00Z'));
      const messageId = await publisher.publish(event);
      expect(messageId).toMatch(/\S/);
      const [subs] = await pubsub.topic(topicName).getSubscriptions();
      const [pulled] = await new (await import('@google-cloud/pubsub')).v1.SubscriberClient({
        servicePath: host().split(':')[0],
        port: Number(host().split(':')[1]),
        sslCreds: (await import('@grpc/grpc-js')).credentials.createInsecure(),
      }).pull({ subscription: subs[0]!.name, maxMessages: 10 });
      const msgs = pulled.receivedMessages ?? [];
      expect(msgs).toHaveLength(1);
      const message = msgs[0]!.message!;
      expect(message.attributes).toEqual({
        eventType: 'job.completed',
        state: 'JOB_STATE_SUCCEEDED',
        jobId: record.jobId,
        model: record.model,
        schemaVersion: '1',
      });
      const data = JSON.parse(Buffer.from(message.data as Uint8Array).toString('utf8')) as unknown;
      expect(CompletionEventSchema.parse(data)).toEqual(event);
    });

    it('attribute limit: a 5,000-character multibyte model goes out capped at 1,024 bytes, whole in the data', async () => {
      const [topics] = await pubsub.getTopics();
      const topicName = topics[0]!.name;
      const [sub] = await pubsub.topic(topicName).createSubscription(`long-${Date.now()}`);
      const model = 'modèle-日本-😀'.repeat(500);
      const event = buildCompletionEvent(
        completedRecord({ status: 'REJECTED', vertexJob: null, model }),
        new Date(),
      );
      await createPubSubPublisher(pubsub, topicName).publish(event);
      const [pulled] = await new (await import('@google-cloud/pubsub')).v1.SubscriberClient({
        servicePath: host().split(':')[0],
        port: Number(host().split(':')[1]),
        sslCreds: (await import('@grpc/grpc-js')).credentials.createInsecure(),
      }).pull({ subscription: sub.name, maxMessages: 10 });
      const message = pulled.receivedMessages?.[0]?.message;
      const attribute = message?.attributes?.model ?? '';
      expect(Buffer.byteLength(attribute, 'utf8')).toBeLessThanOrEqual(MAX_ATTRIBUTE_VALUE_BYTES);
      expect(attribute.endsWith('…')).toBe(true);
      expect(model.startsWith(attribute.slice(0, -1))).toBe(true);
      const data = JSON.parse(Buffer.from(message!.data as Uint8Array).toString('utf8')) as {
        model: string;
      };
      expect(data.model).toBe(model);
    });

    it('a topic that does not exist is a permanent error (the topic is never created here)', async () => {
      const publisher = createPubSubPublisher(pubsub, 'no-such-topic');
      await expect(
        publisher.publish(buildCompletionEvent(record, new Date())),
      ).rejects.toBeInstanceOf(PermanentError);
      const [topics] = await pubsub.getTopics();
      expect(topics.map((t) => t.name)).not.toContain(
        'projects/demo-batch-courier/topics/no-such-topic',
      );
    });
  });
}

let builtin: PubSubEmulator;
beforeAll(async () => {
  builtin = await startPubSubEmulator();
});
afterAll(() => builtin.close());
publisherSuite('builtin Pub/Sub emulator', () => builtin.host);
const official = inject('gcloudPubSubEmulatorHost');
if (official) publisherSuite(`official Pub/Sub emulator at ${official}`, () => official);

describe('Cloud Storage reader over the wire (builtin storage emulator)', () => {
  let emulator: StorageEmulator;
  let storage: Storage;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'bc-storage-'));
    emulator = await startStorageEmulator({ root });
    process.env.STORAGE_EMULATOR_HOST = emulator.url;
    storage = new Storage({ projectId: 'demo-batch-courier' });
    await emulator.createBucket('acme-in');
    await emulator.createBucket('acme-out');
  });
  afterAll(async () => {
    delete process.env.STORAGE_EMULATOR_HOST;
    await emulator.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('streams exactly the requested generation; an overwritten generation is INPUT.NOT_FOUND', async () => {
    const file = storage.bucket('acme-in').file('inputs/a.jsonl');
    await file.save('{"request":{}}\n'.repeat(20_000), { resumable: false });
    const [meta] = await file.getMetadata();
    const reader = createGcsObjectReader(storage);
    let bytes = 0;
    let chunks = 0;
    for await (const chunk of reader.read('acme-in', 'inputs/a.jsonl', String(meta.generation))) {
      bytes += chunk.length;
      chunks++;
    }
    expect(bytes).toBe(15 * 20_000);
    expect(chunks).toBeGreaterThan(1);

    await file.save('{"request":{}}\n', { resumable: false });
    const read = async () => {
      for await (const _ of reader.read('acme-in', 'inputs/a.jsonl', String(meta.generation)))
        void _;
    };
    await expect(read()).rejects.toMatchObject({ code: 'INPUT.NOT_FOUND' });
  });

  it('writes a report once: a second write of the same report keeps the first (create only)', async () => {
    const writer = createGcsObjectWriter(storage);
    const uri = 'gs://acme-in/results/job-1/rejection.json';
    await writer.write(uri, '{"n":1}\n', 'application/json');
    await writer.write(uri, '{"n":2}\n', 'application/json');
    const [content] = await storage
      .bucket('acme-in')
      .file('results/job-1/rejection.json')
      .download();
    expect(content.toString('utf8')).toBe('{"n":1}\n');
  });

  it('copy: copies exactly the given generation, server side', async () => {
    const file = storage.bucket('acme-in').file('inputs/c.jsonl');
    await file.save('{"request":{"v":1}}\n', { resumable: false });
    const [meta] = await file.getMetadata();
    await file.save('{"request":{"v":2}}\n', { resumable: false }); // a newer upload
    const [fresh] = await file.getMetadata();
    const writer = createGcsObjectWriter(storage);
    await writer.copy(
      { bucket: 'acme-in', name: 'inputs/c.jsonl', generation: String(fresh.generation) },
      'gs://acme-out/results/job-c/input.jsonl',
    );
    const [copied] = await storage.bucket('acme-out').file('results/job-c/input.jsonl').download();
    expect(copied.toString('utf8')).toBe('{"request":{"v":2}}\n');
    expect(meta.generation).not.toBe(fresh.generation);
  });

  it('copy: a destination that exists already is kept, without an error', async () => {
    const file = storage.bucket('acme-in').file('inputs/d.jsonl');
    await file.save('{"request":{"v":1}}\n', { resumable: false });
    const [meta] = await file.getMetadata();
    const source = {
      bucket: 'acme-in',
      name: 'inputs/d.jsonl',
      generation: String(meta.generation),
    };
    const writer = createGcsObjectWriter(storage);
    await writer.copy(source, 'gs://acme-out/results/job-d/input.jsonl');
    const target = storage.bucket('acme-out').file('results/job-d/input.jsonl');
    const [first] = await target.getMetadata();
    await expect(writer.copy(source, 'gs://acme-out/results/job-d/input.jsonl')).resolves.toBe(
      undefined,
    );
    const [second] = await target.getMetadata();
    expect(second.generation).toBe(first.generation);
  });

  it('copy: a generation that was overwritten is PermanentError INPUT.NOT_FOUND, saying replaced or deleted', async () => {
    const file = storage.bucket('acme-in').file('inputs/e.jsonl');
    await file.save('{"request":{"v":1}}\n', { resumable: false });
    const [old] = await file.getMetadata();
    await file.save('{"request":{"v":2}}\n', { resumable: false });
    const err = await createGcsObjectWriter(storage)
      .copy(
        { bucket: 'acme-in', name: 'inputs/e.jsonl', generation: String(old.generation) },
        'gs://acme-out/results/job-e/input.jsonl',
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'INPUT.NOT_FOUND', status: 404 });
    expect((err as Error).message).toMatch(/replaced by a newer upload or deleted/);
    const [exists] = await storage.bucket('acme-out').file('results/job-e/input.jsonl').exists();
    expect(exists).toBe(false);
  });

  it('copy: a destination bucket that does not exist is TransientError, not a rejected input', async () => {
    const file = storage.bucket('acme-in').file('inputs/f.jsonl');
    await file.save('{"request":{"v":1}}\n', { resumable: false });
    const [meta] = await file.getMetadata();
    const err = await createGcsObjectWriter(storage)
      .copy(
        { bucket: 'acme-in', name: 'inputs/f.jsonl', generation: String(meta.generation) },
        'gs://no-such-output-bucket/results/job-f/input.jsonl',
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect((err as Error).message).toMatch(/destination bucket was not found/);
  });
});

describe('copy: Cloud Storage answering 403 (a grant missing or still propagating)', () => {
  let server: Server;
  let requests = 0;
  let previous: string | undefined;
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      req.resume();
      const body = JSON.stringify({
        error: {
          code: 403,
          message: 'caller does not have storage.objects.get access',
          errors: [{ reason: 'forbidden', message: 'forbidden' }],
        },
      });
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    previous = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (previous === undefined) delete process.env.STORAGE_EMULATOR_HOST;
    else process.env.STORAGE_EMULATOR_HOST = previous;
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('copy: a read answered 403 is TransientError STORAGE.PERMISSION_DENIED (retried, never a rejection)', async () => {
    const storage = new Storage({ projectId: 'demo-batch-courier' });
    const reader = createGcsObjectReader(storage);
    const err = await (async () => {
      for await (const _ of reader.read('acme-in', 'inputs/a.jsonl', '1')) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.PERMISSION_DENIED', status: 403 });
    expect((err as Error).message).toMatch(
      /no permission to read gs:\/\/acme-in\/inputs\/a\.jsonl#1/,
    );
    expect(requests).toBeGreaterThan(0);
  });

  it('copy: a copy answered 403 is TransientError STORAGE.PERMISSION_DENIED', async () => {
    const storage = new Storage({ projectId: 'demo-batch-courier' });
    const err = await createGcsObjectWriter(storage)
      .copy(
        { bucket: 'acme-in', name: 'inputs/a.jsonl', generation: '1' },
        'gs://acme-out/results/job-a/input.jsonl',
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.PERMISSION_DENIED', status: 403 });
    expect((err as Error).message).toMatch(/no permission to copy/);
  });
});
