/**
 * The builtin Pub/Sub emulator, driven by the unmodified `@google-cloud/pubsub` client: the
 * handwritten surface (topics, subscriptions, StreamingPull via `subscription.on('message')`) and
 * the generated `v1` clients (Pull, raw StreamingPull) where a test needs determinism.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { PubSub, v1, type Message, type Subscription, type protos } from '@google-cloud/pubsub';
import {
  compileFilter,
  startPubSubEmulator,
  type PubSubEmulator,
} from '../../local/pubsub-emulator.js';

type ReceivedMessage = protos.google.pubsub.v1.IReceivedMessage;
type StreamingPullRequest = protos.google.pubsub.v1.IStreamingPullRequest;
type RawStream = ReturnType<v1.SubscriberClient['streamingPull']>;

const PROJECT = 'test-project';
/** For conditions with no event to await (a stream reaching the emulator). */
const WAIT = { timeout: 5000, interval: 20 };
const topicPath = (id: string): string => `projects/${PROJECT}/topics/${id}`;
const subPath = (id: string): string => `projects/${PROJECT}/subscriptions/${id}`;

let emulator: PubSubEmulator;
let pubsub: PubSub;
const rawClients: Array<v1.SubscriberClient | v1.PublisherClient> = [];

beforeAll(async () => {
  emulator = await startPubSubEmulator();
});

afterAll(async () => {
  await emulator.close();
});

beforeEach(() => {
  emulator.reset();
  pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: emulator.host, emulatorMode: true });
});

afterEach(async () => {
  await Promise.all(rawClients.splice(0).map((c) => c.close()));
  await pubsub.close();
});

/** The handwritten client's settings (emulator endpoint, insecure credentials) for a v1 client. */
async function v1Options(
  client: PubSub,
): Promise<ConstructorParameters<typeof v1.SubscriberClient>[0]> {
  // ClientConfig types `port` as string | number; the generated clients want a number.
  const { port, ...rest } = await client.getClientConfig();
  return { ...rest, port: port === undefined ? undefined : Number(port) };
}

async function subscriberClient(): Promise<v1.SubscriberClient> {
  const client = new v1.SubscriberClient(await v1Options(pubsub));
  rawClients.push(client);
  return client;
}

async function publisherClient(): Promise<v1.PublisherClient> {
  const client = new v1.PublisherClient(await v1Options(pubsub));
  rawClients.push(client);
  return client;
}

/** Creates a topic and one subscription to it (with the given subscription options). */
async function topicWithSubscription(
  id: string,
  options: Parameters<PubSub['createSubscription']>[2] = {},
): Promise<void> {
  await pubsub.createTopic(id);
  await pubsub.createSubscription(id, id, options);
}

/** Pulls until `want` messages came back or `rounds` Pulls (each waits ≤ 0.5 s) answered. */
async function pullMessages(
  client: v1.SubscriberClient,
  subscription: string,
  want: number,
  rounds = 10,
): Promise<ReceivedMessage[]> {
  const got: ReceivedMessage[] = [];
  for (let i = 0; i < rounds && got.length < want; i += 1) {
    const [res] = await client.pull({ subscription, maxMessages: want - got.length });
    got.push(...(res.receivedMessages ?? []));
  }
  return got;
}

const text = (m: ReceivedMessage): string => Buffer.from(m.message?.data ?? '').toString('utf8');

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
  const waiting: Array<(m: ReceivedMessage) => void> = [];
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

describe('HTTP endpoints', () => {
  it('answers GET / with Ok and 404 elsewhere', async () => {
    const ok = await fetch(`http://${emulator.host}/`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('Ok');
    const missing = await fetch(`http://${emulator.host}/nope`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
  });

  it('POST /reset drops every topic, subscription and message', async () => {
    await topicWithSubscription('reset-me');
    await pubsub.topic('reset-me').publishMessage({ data: Buffer.from('x') });
    expect(emulator.stats()).toMatchObject({ topics: 1, subscriptions: 1, published: 1 });

    const res = await fetch(`http://${emulator.host}/reset`, { method: 'POST' });
    expect(res.status).toBe(200);
    await res.arrayBuffer();

    expect(emulator.stats()).toMatchObject({ topics: 0, subscriptions: 0, published: 0 });
    const [topics] = await pubsub.getTopics();
    expect(topics).toEqual([]);
    const [exists] = await pubsub.subscription('reset-me').exists();
    expect(exists).toBe(false);
  });
});

describe('admin RPCs', () => {
  it('creates, gets, lists and deletes topics', async () => {
    const [topic] = await pubsub.createTopic({ name: 'orders', labels: { team: 'x' } });
    expect(topic.name).toBe(topicPath('orders'));
    await expect(pubsub.createTopic('orders')).rejects.toMatchObject({ code: 6 });
    await pubsub.createTopic('audit');

    const [metadata] = await pubsub.topic('orders').getMetadata();
    expect(metadata.labels).toEqual({ team: 'x' });
    const [topics] = await pubsub.getTopics();
    expect(topics.map((t) => t.name).sort()).toEqual([topicPath('audit'), topicPath('orders')]);

    await pubsub.topic('audit').delete();
    await expect(pubsub.topic('audit').getMetadata()).rejects.toMatchObject({ code: 5 });
    await expect(pubsub.topic('audit').delete()).rejects.toMatchObject({ code: 5 });
    await expect(pubsub.createTopic('a')).rejects.toMatchObject({ code: 3 });
  });

  it('pages through ListTopics', async () => {
    for (const id of ['t-1', 't-2', 't-3']) await pubsub.createTopic(id);
    const publisher = await publisherClient();
    const [first, , firstPage] = await publisher.listTopics(
      { project: `projects/${PROJECT}`, pageSize: 2 },
      { autoPaginate: false },
    );
    expect(first.map((t) => t.name)).toEqual([topicPath('t-1'), topicPath('t-2')]);
    const [second] = await publisher.listTopics(
      { project: `projects/${PROJECT}`, pageSize: 2, pageToken: firstPage?.nextPageToken ?? '' },
      { autoPaginate: false },
    );
    expect(second.map((t) => t.name)).toEqual([topicPath('t-3')]);
  });

  it('creates subscriptions with defaults and clamped ack deadlines, lists and deletes them', async () => {
    await pubsub.createTopic('events');
    await pubsub.createSubscription('events', 'plain');
    await pubsub.createSubscription('events', 'short', { ackDeadlineSeconds: 3 });
    await pubsub.createSubscription('events', 'long', { ackDeadlineSeconds: 900 });

    const [plain] = await pubsub.subscription('plain').getMetadata();
    expect(plain).toMatchObject({ topic: topicPath('events'), ackDeadlineSeconds: 10 });
    const [short] = await pubsub.subscription('short').getMetadata();
    expect(short.ackDeadlineSeconds).toBe(10);
    const [long] = await pubsub.subscription('long').getMetadata();
    expect(long.ackDeadlineSeconds).toBe(600);

    await expect(pubsub.createSubscription('events', 'plain')).rejects.toMatchObject({ code: 6 });
    await expect(pubsub.createSubscription('nowhere', 'orphan')).rejects.toMatchObject({
      code: 5,
    });
    const [subs] = await pubsub.getSubscriptions();
    expect(subs.map((s) => s.name).sort()).toEqual(['long', 'plain', 'short'].map(subPath).sort());
    const [topicSubs] = await pubsub.topic('events').getSubscriptions();
    expect(topicSubs).toHaveLength(3);

    await pubsub.subscription('long').delete();
    await expect(pubsub.subscription('long').getMetadata()).rejects.toMatchObject({ code: 5 });
    expect(emulator.stats().subscriptions).toBe(2);

    // Deleting the topic detaches its subscriptions, as the real service does.
    await pubsub.topic('events').delete();
    const [detached] = await pubsub.subscription('plain').getMetadata();
    expect(detached.topic).toBe('_deleted-topic_');
  });

  it('rejects invalid filters and dead-letter policies', async () => {
    await pubsub.createTopic('input');
    await pubsub.createTopic('dead');
    await expect(
      pubsub.createSubscription('input', 'bad-filter', { filter: 'attributes.k = ' }),
    ).rejects.toMatchObject({ code: 3 });
    await expect(
      pubsub.createSubscription('input', 'bad-dlq', {
        deadLetterPolicy: { deadLetterTopic: topicPath('dead'), maxDeliveryAttempts: 2 },
      }),
    ).rejects.toMatchObject({ code: 3 });
    await expect(
      pubsub.createSubscription('input', 'missing-dlq', {
        deadLetterPolicy: { deadLetterTopic: topicPath('nope'), maxDeliveryAttempts: 5 },
      }),
    ).rejects.toMatchObject({ code: 5 });
  });

  it('answers UNIMPLEMENTED for RPCs it does not implement', async () => {
    await topicWithSubscription('seekable');
    const subscriber = await subscriberClient();
    await expect(
      subscriber.seek({ subscription: subPath('seekable'), time: { seconds: 1 } }),
    ).rejects.toMatchObject({ code: 12 });
    await expect(
      subscriber.createSnapshot({
        name: `projects/${PROJECT}/snapshots/s`,
        subscription: subPath('seekable'),
      }),
    ).rejects.toMatchObject({ code: 12 });
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

    const subscriber = await subscriberClient();
    const early = await pullMessages(subscriber, subPath('early'), 2);
    expect(early.map(text)).toEqual(['before', 'after']);
    const [late] = await subscriber.pull({ subscription: subPath('late'), maxMessages: 10 });
    expect((late.receivedMessages ?? []).map(text)).toEqual(['after']);
    const first = early[0]?.message;
    expect(Number(first?.publishTime?.seconds)).toBeGreaterThan(1_700_000_000);
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
    expect(message?.deliveryAttempt).toBe(1);
    expect(message?.publishTime.getTime()).toBeGreaterThan(Date.now() - 60_000);
    await message?.ackWithResponse();
    // The client opens five streams per subscription; all of them reach the emulator.
    await vi.waitFor(() => expect(emulator.stats().streams).toBe(5), WAIT);
    await subscription.close();

    const subscriber = await subscriberClient();
    const [again] = await subscriber.pull({ subscription: subPath('jobs'), maxMessages: 10 });
    expect(again.receivedMessages ?? []).toEqual([]);
    expect(emulator.stats()).toMatchObject({
      published: 1,
      delivered: 1,
      acked: 1,
      redelivered: 0,
    });
  });

  it('redelivers a nacked message with deliveryAttempt 2', async () => {
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
    expect(first?.deliveryAttempt).toBe(1);
    expect(second?.deliveryAttempt).toBe(2);
    expect(second?.data.toString('utf8')).toBe('again');
    await subscription.close();
    expect(emulator.stats()).toMatchObject({ delivered: 2, redelivered: 1 });
  });

  it('delivers messages with the same ordering key in publish order', async () => {
    await topicWithSubscription('ordered', { enableMessageOrdering: true });
    const topic = pubsub.topic('ordered', { messageOrdering: true });
    const subscription = pubsub.subscription('ordered', { batching: { maxMilliseconds: 10 } });
    const received = collect(subscription, 12, (m) => m.ack());
    const published: Array<Promise<string>> = [];
    for (let i = 0; i < 6; i += 1) {
      for (const key of ['a', 'b']) {
        published.push(topic.publishMessage({ data: Buffer.from(`${key}${i}`), orderingKey: key }));
      }
    }
    await Promise.all(published);

    const messages = await received;
    const byKey = (key: string): string[] =>
      messages.filter((m) => m.orderingKey === key).map((m) => m.data.toString('utf8'));
    expect(byKey('a')).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
    expect(byKey('b')).toEqual(['b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
    await subscription.close();
  });
});

describe('Pull, leases and acknowledgements', () => {
  it('redelivers a message whose lease expired; a stale ack id is ignored', async () => {
    await topicWithSubscription('lease');
    const subscriber = await subscriberClient();
    const subscription = subPath('lease');
    await pubsub.topic('lease').publishMessage({ data: Buffer.from('slow') });

    const [first] = await pullMessages(subscriber, subscription, 1);
    expect(first?.deliveryAttempt).toBe(1);
    // Shorten the lease to one second and do not extend it.
    await subscriber.modifyAckDeadline({
      subscription,
      ackIds: [first?.ackId ?? ''],
      ackDeadlineSeconds: 1,
    });
    const [leased] = await subscriber.pull({
      subscription,
      maxMessages: 1,
      returnImmediately: true,
    });
    expect(leased.receivedMessages ?? []).toEqual([]);

    const [second] = await pullMessages(subscriber, subscription, 1);
    expect(second?.message?.messageId).toBe(first?.message?.messageId);
    expect(second?.deliveryAttempt).toBe(2);
    expect(second?.ackId).not.toBe(first?.ackId);

    await subscriber.acknowledge({ subscription, ackIds: [first?.ackId ?? ''] });
    expect(emulator.stats().acked).toBe(0);
    await subscriber.acknowledge({ subscription, ackIds: [second?.ackId ?? ''] });
    expect(emulator.stats()).toMatchObject({ acked: 1, delivered: 2, redelivered: 1 });
  });

  it('holds back the next message of an ordering key while an earlier one is outstanding', async () => {
    await topicWithSubscription('keys', { enableMessageOrdering: true });
    const publisher = await publisherClient();
    await publisher.publish({
      topic: topicPath('keys'),
      messages: [
        { data: Buffer.from('a1'), orderingKey: 'a' },
        { data: Buffer.from('a2'), orderingKey: 'a' },
        { data: Buffer.from('b1'), orderingKey: 'b' },
        { data: Buffer.from('none') },
      ],
    });
    const subscriber = await subscriberClient();
    const subscription = subPath('keys');
    const [res] = await subscriber.pull({ subscription, maxMessages: 10 });
    const batch = res.receivedMessages ?? [];
    expect(batch.map(text)).toEqual(['a1', 'b1', 'none']);

    // A nacked a1 comes back before a2.
    await subscriber.modifyAckDeadline({
      subscription,
      ackIds: [batch[0]?.ackId ?? ''],
      ackDeadlineSeconds: 0,
    });
    const [again] = await pullMessages(subscriber, subscription, 1);
    expect(again && text(again)).toBe('a1');
    expect(again?.deliveryAttempt).toBe(2);

    await subscriber.acknowledge({ subscription, ackIds: [again?.ackId ?? ''] });
    const [next] = await pullMessages(subscriber, subscription, 1);
    expect(next && text(next)).toBe('a2');
  });

  it('applies attribute filters (unlike the official emulator)', async () => {
    await pubsub.createTopic('mixed');
    await pubsub.createSubscription('mixed', 'wanted', { filter: 'attributes.kind = "keep"' });
    const topic = pubsub.topic('mixed');
    await topic.publishMessage({ data: Buffer.from('drop'), attributes: { kind: 'other' } });
    await topic.publishMessage({ data: Buffer.from('keep'), attributes: { kind: 'keep' } });
    await topic.publishMessage({ data: Buffer.from('bare') });

    const subscriber = await subscriberClient();
    const [res] = await subscriber.pull({ subscription: subPath('wanted'), maxMessages: 10 });
    expect((res.receivedMessages ?? []).map(text)).toEqual(['keep']);
  });

  it('forwards a message to the dead-letter topic after maxDeliveryAttempts', async () => {
    await pubsub.createTopic('work');
    await pubsub.createTopic('work-dead');
    await pubsub.createSubscription('work-dead', 'work-dead');
    await pubsub.createSubscription('work', 'work', {
      deadLetterPolicy: { deadLetterTopic: topicPath('work-dead'), maxDeliveryAttempts: 5 },
    });
    await pubsub.topic('work').publishMessage({ data: Buffer.from('poison') });
    const subscriber = await subscriberClient();

    for (let attempt = 1; attempt <= 5; attempt += 1) {
      const [m] = await pullMessages(subscriber, subPath('work'), 1);
      expect(m?.deliveryAttempt).toBe(attempt);
      await subscriber.modifyAckDeadline({
        subscription: subPath('work'),
        ackIds: [m?.ackId ?? ''],
        ackDeadlineSeconds: 0,
      });
    }
    const [dead] = await pullMessages(subscriber, subPath('work-dead'), 1);
    expect(dead && text(dead)).toBe('poison');
    expect(dead?.message?.attributes).toMatchObject({
      CloudPubSubDeadLetterSourceDeliveryCount: '5',
      CloudPubSubDeadLetterSourceSubscription: 'work',
    });
    const [left] = await subscriber.pull({
      subscription: subPath('work'),
      maxMessages: 1,
      returnImmediately: true,
    });
    expect(left.receivedMessages ?? []).toEqual([]);
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
  it('honours maxOutstandingMessages per stream, spreads messages, and takes acks and nacks', async () => {
    await topicWithSubscription('flow');
    const publisher = await publisherClient();
    await publisher.publish({
      topic: topicPath('flow'),
      messages: ['m1', 'm2', 'm3'].map((d) => ({ data: Buffer.from(d) })),
    });
    const subscriber = await subscriberClient();
    const first = { subscription: subPath('flow'), streamAckDeadlineSeconds: 60 };
    const a = openStream(subscriber, { ...first, maxOutstandingMessages: 1 });
    const fromA = await a.next();
    const b = openStream(subscriber, { ...first, maxOutstandingMessages: 1 });
    const fromB = await b.next();
    expect([fromA, fromB].map(text)).toEqual(['m1', 'm2']);
    // m3 waits: both streams are at their limit.
    expect(emulator.stats()).toMatchObject({ delivered: 2, streams: 2 });

    a.stream.write({ ackIds: [fromA.ackId ?? ''] });
    const third = await a.next();
    expect(text(third)).toBe('m3');

    // modifyDeadlineSeconds 0 is a nack: m2 comes straight back, on the only stream with room.
    b.stream.write({ modifyDeadlineAckIds: [fromB.ackId ?? ''], modifyDeadlineSeconds: [0] });
    const redelivered = await b.next();
    expect(text(redelivered)).toBe('m2');
    expect(redelivered.deliveryAttempt).toBe(2);
    expect(emulator.stats()).toMatchObject({ acked: 1, delivered: 4, redelivered: 1 });

    a.stream.end();
    b.stream.end();
    expect(await a.ended).toBeUndefined();
    expect(await b.ended).toBeUndefined();
  });

  it('spreads messages round-robin over the open streams', async () => {
    await topicWithSubscription('spread');
    const subscriber = await subscriberClient();
    const first = { subscription: subPath('spread'), streamAckDeadlineSeconds: 60 };
    const a = openStream(subscriber, first);
    const b = openStream(subscriber, first);
    await vi.waitFor(() => expect(emulator.stats().streams).toBe(2), WAIT);
    const publisher = await publisherClient();
    await publisher.publish({
      topic: topicPath('spread'),
      messages: ['m1', 'm2', 'm3', 'm4'].map((d) => ({ data: Buffer.from(d) })),
    });
    const got = await Promise.all([a.next(), a.next(), b.next(), b.next()]);
    expect(got.map(text).sort()).toEqual(['m1', 'm2', 'm3', 'm4']);
    a.stream.end();
    b.stream.end();
    await Promise.all([a.ended, b.ended]);
  });

  it('ends a stream on a missing subscription with NOT_FOUND, and open streams on reset', async () => {
    const subscriber = await subscriberClient();
    const missing = openStream(subscriber, {
      subscription: subPath('ghost'),
      streamAckDeadlineSeconds: 10,
    });
    expect(await missing.ended).toMatchObject({ code: 5 });

    await topicWithSubscription('doomed');
    const open = openStream(subscriber, {
      subscription: subPath('doomed'),
      streamAckDeadlineSeconds: 10,
    });
    await vi.waitFor(() => expect(emulator.stats().streams).toBe(1), WAIT);
    emulator.reset();
    expect(await open.ended).toMatchObject({ code: 5 });
  });
});

describe('close', () => {
  it('ends open streams and stops listening', async () => {
    const own = await startPubSubEmulator();
    const client = new PubSub({ projectId: PROJECT, apiEndpoint: own.host, emulatorMode: true });
    try {
      await client.createTopic('closing');
      await client.createSubscription('closing', 'closing');
      const subscriber = new v1.SubscriberClient(await v1Options(client));
      rawClients.push(subscriber);
      const open = openStream(subscriber, {
        subscription: subPath('closing'),
        streamAckDeadlineSeconds: 10,
      });
      await vi.waitFor(() => expect(own.stats().streams).toBe(1), WAIT);
      await own.close();
      expect(await open.ended).toMatchObject({ code: expect.any(Number) as unknown });
      await expect(fetch(`http://${own.host}/`)).rejects.toThrow();
    } finally {
      await own.close();
      await client.close();
    }
  });
});

describe('compileFilter', () => {
  const cases: Array<[filter: string, attributes: Record<string, string>, expected: boolean]> = [
    ['', {}, true],
    ['attributes.k = "v"', { k: 'v' }, true],
    ['attributes.k = "v"', { k: 'w' }, false],
    ['attributes.k = "v"', {}, false],
    ['attributes.k != "v"', { k: 'w' }, true],
    ['attributes.k != "v"', {}, false],
    ['attributes:k', { k: '' }, true],
    ['NOT attributes:k', {}, true],
    ['-attributes:k', { k: 'x' }, false],
    ['hasPrefix(attributes.k, "ab")', { k: 'abc' }, true],
    ['hasPrefix(attributes.k, "ab")', { k: 'xab' }, false],
    ['attributes.a = "1" AND attributes.b = "2"', { a: '1', b: '2' }, true],
    ['attributes.a = "1" AND attributes.b = "2"', { a: '1' }, false],
    ['attributes.a = "1" OR attributes.b = "2"', { b: '2' }, true],
    ['(attributes:a OR attributes:b) AND NOT attributes.c = "x"', { b: '', c: 'y' }, true],
    ['attributes."domain.com/key" = "v\\"q"', { 'domain.com/key': 'v"q' }, true],
  ];
  it.each(cases)('%s with %o → %s', (filter, attributes, expected) => {
    expect(compileFilter(filter)(attributes)).toBe(expected);
  });

  it.each([
    'attributes.k =',
    'attributes.k = v',
    'attributes:a AND attributes:b OR attributes:c',
    'labels.k = "v"',
    '(attributes:a',
    'attributes.k = "unterminated',
    `attributes.k = "${'x'.repeat(300)}"`,
  ])('rejects %s', (filter) => {
    expect(() => compileFilter(filter)).toThrow();
  });
});
