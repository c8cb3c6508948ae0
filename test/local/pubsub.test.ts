/**
 * The builtin Pub/Sub emulator, driven by the unmodified `@google-cloud/pubsub` client: the
 * handwritten surface (topics, subscriptions, StreamingPull via `subscription.on('message')`) and
 * the generated `v1` clients (Pull, raw StreamingPull) where a test needs determinism.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PubSub, v1, type Message, type Subscription, type protos } from '@google-cloud/pubsub';
import { startPubSubEmulator, type PubSubEmulator } from '../../local/pubsub/server.js';

type ReceivedMessage = protos.google.pubsub.v1.IReceivedMessage;
type StreamingPullRequest = protos.google.pubsub.v1.IStreamingPullRequest;
type RawStream = ReturnType<v1.SubscriberClient['streamingPull']>;

const PROJECT = 'test-project';
const topicPath = (id: string): string => `projects/${PROJECT}/topics/${id}`;
const subPath = (id: string): string => `projects/${PROJECT}/subscriptions/${id}`;

let emulator: PubSubEmulator;
let pubsub: PubSub;
const rawClients: (v1.SubscriberClient | v1.PublisherClient)[] = [];

beforeEach(async () => {
  emulator = await startPubSubEmulator();
  pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: emulator.host, emulatorMode: true });
});

afterEach(async () => {
  await Promise.all(rawClients.splice(0).map((c) => c.close()));
  await pubsub.close();
  await emulator.close();
});

/** The handwritten client's settings (emulator endpoint, insecure credentials) for a v1 client. */
async function v1Options(): Promise<ConstructorParameters<typeof v1.SubscriberClient>[0]> {
  // ClientConfig types `port` as string | number; the generated clients want a number.
  const { port, ...rest } = await pubsub.getClientConfig();
  return { ...rest, port: port === undefined ? undefined : Number(port) };
}

async function subscriberClient(): Promise<v1.SubscriberClient> {
  const client = new v1.SubscriberClient(await v1Options());
  rawClients.push(client);
  return client;
}

async function publisherClient(): Promise<v1.PublisherClient> {
  const client = new v1.PublisherClient(await v1Options());
  rawClients.push(client);
  return client;
}

async function topicWithSubscription(id: string): Promise<void> {
  await pubsub.createTopic(id);
  await pubsub.createSubscription(id, id);
}

const text = (m: ReceivedMessage): string => Buffer.from(m.message?.data ?? '').toString('utf8');

async function pull(subscription: string, maxMessages = 10): Promise<ReceivedMessage[]> {
  const [res] = await (await subscriberClient()).pull({ subscription, maxMessages });
  return res.receivedMessages ?? [];
}

/** Resolves with the first `count` messages a subscription delivers; `onMessage` acks or nacks. */
function collect(
  subscription: Subscription,
  count: number,
  onMessage: (m: Message, index: number) => void,
): Promise<Message[]> {
  return new Promise((resolve, reject) => {
    const seen: Message[] = [];
    subscription.on('error', reject);
    subscription.on('message', (m: Message) => {
      seen.push(m);
      onMessage(m, seen.length - 1);
      if (seen.length === count) resolve(seen);
    });
  });
}

/** A raw StreamingPull stream whose received messages can be awaited one by one. */
function openStream(
  client: v1.SubscriberClient,
  first: StreamingPullRequest,
): { stream: RawStream; next: () => Promise<ReceivedMessage>; ended: Promise<unknown> } {
  const stream = client.streamingPull();
  const queue: ReceivedMessage[] = [];
  const waiting: ((m: ReceivedMessage) => void)[] = [];
  stream.on('data', (res: protos.google.pubsub.v1.IStreamingPullResponse) => {
    for (const m of res.receivedMessages ?? []) {
      const waiter = waiting.shift();
      if (waiter) waiter(m);
      else queue.push(m);
    }
  });
  const ended = new Promise<unknown>((resolve) => {
    stream.on('error', resolve);
    stream.on('end', () => resolve(undefined));
  });
  stream.write(first);
  return {
    stream,
    ended,
    next: () => {
      const m = queue.shift();
      return m ? Promise.resolve(m) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

describe('admin RPCs', () => {
  it('creates and lists topics', async () => {
    const [topic] = await pubsub.createTopic({ name: 'orders', labels: { team: 'x' } });
    expect(topic.name).toBe(topicPath('orders'));
    await expect(pubsub.createTopic('orders')).rejects.toMatchObject({ code: 6 });
    await expect(pubsub.createTopic('a')).rejects.toMatchObject({ code: 3 });
    for (const id of ['t-1', 't-2']) await pubsub.createTopic(id);
    const [all] = await pubsub.getTopics();
    expect(all.map((t) => t.name)).toEqual(['orders', 't-1', 't-2'].map(topicPath));
  });

  it('creates subscriptions with clamped ack deadlines and lists those of a topic', async () => {
    await pubsub.createTopic('events');
    const deadline = async (id: string, ackDeadlineSeconds?: number) =>
      (await pubsub.createSubscription('events', id, { ackDeadlineSeconds }))[1].ackDeadlineSeconds;
    expect(await deadline('plain')).toBe(10);
    expect(await deadline('short', 3)).toBe(10);
    expect(await deadline('long', 900)).toBe(600);
    await expect(pubsub.createSubscription('events', 'plain')).rejects.toMatchObject({ code: 6 });
    await expect(pubsub.createSubscription('nowhere', 'orphan')).rejects.toMatchObject({
      code: 5,
    });
    const [subs] = await pubsub.topic('events').getSubscriptions();
    expect(subs.map((s) => s.name).sort()).toEqual(['long', 'plain', 'short'].map(subPath));
  });

  it('refuses subscription features it does not implement, and other RPCs, with UNIMPLEMENTED', async () => {
    await pubsub.createTopic('input');
    for (const options of [
      { filter: 'attributes.k = "v"' },
      { deadLetterPolicy: { deadLetterTopic: topicPath('input'), maxDeliveryAttempts: 5 } },
      { enableMessageOrdering: true },
      { pushConfig: { pushEndpoint: 'https://example.com/push' } },
    ]) {
      await expect(pubsub.createSubscription('input', 'sub', options)).rejects.toMatchObject({
        code: 12,
      });
    }
    await expect(pubsub.topic('input').getMetadata()).rejects.toMatchObject({ code: 12 });
    await expect(pubsub.topic('input').delete()).rejects.toMatchObject({ code: 12 });
  });
});

describe('Publish', () => {
  it('publishing to a missing topic fails with NOT_FOUND', async () => {
    await expect(
      pubsub.topic('missing').publishMessage({ data: Buffer.from('x') }),
    ).rejects.toMatchObject({ code: 5 });
  });

  it('rejects a message with neither data nor attributes (INVALID_ARGUMENT)', async () => {
    await pubsub.createTopic('strict');
    const publisher = await publisherClient();
    await expect(
      publisher.publish({ topic: topicPath('strict'), messages: [{}] }),
    ).rejects.toMatchObject({ code: 3 });
    const [ok] = await publisher.publish({
      topic: topicPath('strict'),
      messages: [{ attributes: { only: 'attributes' } }, { data: Buffer.from('d') }],
    });
    expect(ok.messageIds).toHaveLength(2);
    for (const id of ok.messageIds ?? []) expect(id).toMatch(/^\d+$/);
    expect(new Set(ok.messageIds).size).toBe(2);
  });

  it('delivers to each subscription only what was published after it was created', async () => {
    await pubsub.createTopic('fanout');
    await pubsub.createSubscription('fanout', 'early');
    await pubsub.topic('fanout').publishMessage({ data: Buffer.from('before') });
    await pubsub.createSubscription('fanout', 'late');
    await pubsub.topic('fanout').publishMessage({ data: Buffer.from('after') });
    const early = await pull(subPath('early'));
    expect(early.map(text)).toEqual(['before', 'after']);
    expect((await pull(subPath('late'))).map(text)).toEqual(['after']);
    expect(Number(early[0]?.message?.publishTime?.seconds)).toBeGreaterThan(1_700_000_000);
  });
});

describe('StreamingPull with the client library', () => {
  it('delivers attributes and JSON data; an acked message is not redelivered', async () => {
    await topicWithSubscription('jobs');
    const subscription = pubsub.subscription('jobs');
    const received = collect(subscription, 1, () => undefined);
    const id = await pubsub
      .topic('jobs')
      .publishMessage({ json: { jobId: 'j-1', n: 2 }, attributes: { kind: 'done' } });
    const [message] = await received;
    expect(message?.id).toBe(id);
    expect(JSON.parse(message?.data.toString('utf8') ?? '')).toEqual({ jobId: 'j-1', n: 2 });
    expect(message?.attributes).toEqual({ kind: 'done' });
    expect(message?.publishTime.getTime()).toBeGreaterThan(Date.now() - 60_000);
    await message?.ackWithResponse();
    await subscription.close();
    expect(await pull(subPath('jobs'))).toEqual([]);
  });

  it('redelivers a nacked message', async () => {
    await topicWithSubscription('retry');
    const subscription = pubsub.subscription('retry', { batching: { maxMilliseconds: 10 } });
    const received = collect(subscription, 2, (m, index) => {
      if (index === 0) m.nack();
      else m.ack();
    });
    await pubsub.topic('retry').publishMessage({ data: Buffer.from('again') });
    const [first, second] = await received;
    expect(second?.id).toBe(first?.id);
    expect(second?.ackId).not.toBe(first?.ackId);
    expect(second?.data.toString('utf8')).toBe('again');
    await subscription.close();
  });
});

describe('Pull, leases and acknowledgements', () => {
  it('redelivers a message whose lease expired; a stale ack id is ignored', async () => {
    await topicWithSubscription('lease');
    const subscriber = await subscriberClient();
    const subscription = subPath('lease');
    await pubsub.topic('lease').publishMessage({ data: Buffer.from('slow') });
    const [first] = await pull(subscription);
    // Shorten the lease to one second and do not extend it.
    await subscriber.modifyAckDeadline({
      subscription,
      ackIds: [first?.ackId ?? ''],
      ackDeadlineSeconds: 1,
    });
    expect(await pull(subscription)).toEqual([]);
    await new Promise((r) => setTimeout(r, 1100));
    const [second] = await pull(subscription);
    expect(second?.message?.messageId).toBe(first?.message?.messageId);
    expect(second?.ackId).not.toBe(first?.ackId);
    await subscriber.acknowledge({ subscription, ackIds: [first?.ackId ?? ''] });
    // The stale ack left the current lease alone: a nack of it redelivers the message.
    await subscriber.modifyAckDeadline({
      subscription,
      ackIds: [second?.ackId ?? ''],
      ackDeadlineSeconds: 0,
    });
    const [third] = await pull(subscription);
    expect(third?.message?.messageId).toBe(first?.message?.messageId);
    await subscriber.acknowledge({ subscription, ackIds: [third?.ackId ?? ''] });
    await expect(
      subscriber.modifyAckDeadline({ subscription, ackIds: ['x'], ackDeadlineSeconds: 601 }),
    ).rejects.toMatchObject({ code: 3 });
    expect(await pull(subscription)).toEqual([]);
  });

  it('rejects Pull and Acknowledge on a missing subscription (NOT_FOUND)', async () => {
    const subscriber = await subscriberClient();
    await expect(
      subscriber.pull({ subscription: subPath('ghost'), maxMessages: 1 }),
    ).rejects.toMatchObject({ code: 5 });
    await expect(
      subscriber.acknowledge({ subscription: subPath('ghost'), ackIds: ['1-1'] }),
    ).rejects.toMatchObject({ code: 5 });
  });
});

describe('raw StreamingPull', () => {
  it('spreads messages round robin over the open streams, and takes acks and nacks', async () => {
    await topicWithSubscription('spread');
    const subscriber = await subscriberClient();
    const first = { subscription: subPath('spread'), streamAckDeadlineSeconds: 60 };
    const a = openStream(subscriber, first);
    const b = openStream(subscriber, first);
    // Both streams reached the emulator once a message published now goes to each of them.
    const publisher = await publisherClient();
    await publisher.publish({
      topic: topicPath('spread'),
      messages: ['m1', 'm2', 'm3', 'm4'].map((d) => ({ data: Buffer.from(d) })),
    });
    const got = await Promise.all([a.next(), a.next(), b.next(), b.next()]);
    expect(got.map(text).sort()).toEqual(['m1', 'm2', 'm3', 'm4']);
    // modifyDeadlineSeconds 0 is a nack: the message comes straight back; acked ones do not.
    a.stream.write({
      ackIds: [got[1].ackId!, got[2].ackId!, got[3].ackId!],
      modifyDeadlineAckIds: [got[0].ackId!],
      modifyDeadlineSeconds: [0],
    });
    const again = await Promise.race([a.next(), b.next()]);
    expect(again.message?.messageId).toBe(got[0].message?.messageId);
    a.stream.end();
    b.stream.end();
    expect(await a.ended).toBeUndefined();
    expect(await b.ended).toBeUndefined();
  });

  it('ends a stream on a missing subscription with NOT_FOUND', async () => {
    const missing = openStream(await subscriberClient(), {
      subscription: subPath('ghost'),
      streamAckDeadlineSeconds: 10,
    });
    expect(await missing.ended).toMatchObject({ code: 5 });
  });
});

it('close ends open streams and refuses connections; a new emulator can take the same port', async () => {
  await topicWithSubscription('closing');
  const open = openStream(await subscriberClient(), {
    subscription: subPath('closing'),
    streamAckDeadlineSeconds: 10,
  });
  await pubsub.topic('closing').publishMessage({ data: Buffer.from('x') });
  await open.next();
  await emulator.close();
  expect(await open.ended).toMatchObject({ code: expect.any(Number) as unknown });
  const { port } = emulator;
  emulator = await startPubSubEmulator({ port });
  expect(emulator.port).toBe(port);
  await expect(pubsub.createTopic('closing')).resolves.toBeDefined();
});
