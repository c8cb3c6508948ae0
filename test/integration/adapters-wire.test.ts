/**
 * The Pub/Sub publisher and the Cloud Storage reader over the wire, with the unmodified Google
 * clients pointed at emulators through the standard *_EMULATOR_HOST variables: the builtin
 * emulators everywhere, and the official Pub/Sub emulator where gcloud is installed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createGcsObjectReader, createGcsObjectWriter } from '../../shared/adapters/gcs-objects.js';
import { createPubSubPublisher } from '../../shared/adapters/pubsub-publisher.js';
import { PermanentError } from '../../shared/errors.js';
import { buildCompletionEvent, CompletionEventSchema } from '../../shared/events.js';
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
});
