/**
 * Pub/Sub over REST: the client's HTTP/1.1 fallback, which the deployed functions use in the cloud
 * (functions/dependencies.ts: one message per invocation does not pay for a gRPC channel). The
 * official emulator serves REST as well as gRPC: the publisher is checked over REST there. This
 * repository's emulator speaks gRPC only (REST is refused), which is why the functions keep gRPC
 * whenever PUBSUB_EMULATOR_HOST is set.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PubSub, type ClientConfig } from '@google-cloud/pubsub';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pubsubOptions } from '../../functions/dependencies.js';
import { createPubSubPublisher, mapPublishError } from '../../shared/adapters/pubsub-publisher.js';
import { loadConfig } from '../../shared/config.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { buildCompletionEvent } from '../../shared/core/events.js';
import { startPubSubEmulator, type PubSubEmulator } from '../../local/pubsub-emulator.js';
import { completedRecord } from '../records.js';

const PROJECT = 'demo-batch-courier';
const record = completedRecord();

/** A Pub/Sub client over REST to an emulator (plain HTTP, a token it does not check). */
function restClient(host: string): PubSub {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'emulator', expiry_date: Date.now() + 3600_000 });
  // `fallback` and `protocol` go to the generated clients, whose options declare them.
  const options: ClientConfig & { fallback: 'rest'; protocol: 'http' } = {
    projectId: PROJECT,
    apiEndpoint: host,
    fallback: 'rest',
    protocol: 'http',
    // google-gax carries its own copy of google-auth-library: the same client, another type.
    authClient: auth as unknown as ClientConfig['authClient'],
  };
  return new PubSub(options);
}

describe('the functions choose REST in the cloud and gRPC with an emulator', () => {
  const base = {
    GOOGLE_CLOUD_PROJECT: PROJECT,
    OUTPUT_URI_PREFIX: 'gs://acme-out',
    COMPLETION_TOPIC: 'events',
  };
  it('no emulator: REST', () => {
    expect(pubsubOptions(loadConfig(base))).toEqual({ projectId: PROJECT, fallback: 'rest' });
  });
  it('an emulator: gRPC (the client default)', () => {
    expect(pubsubOptions(loadConfig({ ...base, PUBSUB_EMULATOR_HOST: '127.0.0.1:8085' }))).toEqual({
      projectId: PROJECT,
    });
  });
});

describe('a publish refused over REST is classified like one refused over gRPC', () => {
  /** What the client throws over REST: the HTTP answer (gaxios), its status as `code`. */
  const answered = (status: number, named?: string) =>
    Object.assign(new Error(`HTTP ${status}`), {
      code: status,
      response: { status, data: named ? { error: { code: status, status: named } } : '' },
    });
  it.each([
    ['404 naming NOT_FOUND (no such topic)', answered(404, 'NOT_FOUND'), PermanentError],
    ['403 naming nothing (no permission)', answered(403), PermanentError],
    ['400 naming INVALID_ARGUMENT (an attribute too long)', answered(400, 'INVALID_ARGUMENT')],
    ['429 naming RESOURCE_EXHAUSTED', answered(429, 'RESOURCE_EXHAUSTED'), TransientError],
    ['503 naming nothing', answered(503), TransientError],
    [
      'no answer at all',
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      TransientError,
    ],
  ] as const)('%s', (_, err, expected = PermanentError) => {
    expect(mapPublishError(err, 'events')).toBeInstanceOf(expected);
  });
});

const official = inject('gcloudPubSubEmulatorHost');
describe.skipIf(!official)(`publisher over REST: official emulator at ${official}`, () => {
  const topic = `events-rest-${Date.now()}`;
  const url = `http://${official}/v1/projects/${PROJECT}`;
  beforeAll(async () => {
    // Created over the emulator's REST API, as Terraform would create them.
    await fetch(`${url}/topics/${topic}`, { method: 'PUT' });
    await fetch(`${url}/subscriptions/${topic}-sub`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: `projects/${PROJECT}/topics/${topic}` }),
    });
  });

  it('publishes JSON data with the contract attributes', async () => {
    const event = buildCompletionEvent(record, new Date('2026-11-26T10:05:00Z'));
    const client = restClient(official);
    const messageId = await createPubSubPublisher(client, topic).publish(event);
    await client.close();
    expect(messageId).toMatch(/\S/);
    const pulled = (await (
      await fetch(`${url}/subscriptions/${topic}-sub:pull`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ maxMessages: 10 }),
      })
    ).json()) as {
      receivedMessages?: { message: { data: string; attributes: Record<string, string> } }[];
    };
    const messages = pulled.receivedMessages ?? [];
    expect(messages).toHaveLength(1);
    expect(messages[0]?.message.attributes).toMatchObject({
      eventType: 'job.completed',
      jobId: record.jobId,
      schemaVersion: '1',
    });
    expect(
      JSON.parse(Buffer.from(messages[0]?.message.data ?? '', 'base64').toString('utf8')),
    ).toEqual(JSON.parse(JSON.stringify(event)));
  });

  it('a topic that does not exist is a permanent error over REST too', async () => {
    const client = restClient(official);
    const err = await createPubSubPublisher(client, 'no-such-topic')
      .publish(buildCompletionEvent(record, new Date()))
      .catch((e: unknown) => e);
    await client.close();
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'EVENTS.INVALID' });
  });
});

describe('over REST, a transient failure is retried until the publish deadline', () => {
  let server: Server;
  let requests = 0;
  let failFirst = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      req.resume();
      const fail = requests <= failFirst;
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          fail
            ? { error: { code: 503, message: 'try again', status: 'UNAVAILABLE' } }
            : { messageIds: [`m${requests}`] },
        ),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('two 503s, then the message is taken: one publish, three requests', async () => {
    requests = 0;
    failFirst = 2;
    const client = restClient(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    const id = await createPubSubPublisher(client, 'events').publish(
      buildCompletionEvent(record, new Date()),
    );
    await client.close();
    expect(id).toBe('m3');
    expect(requests).toBe(3);
  });
});

describe("this repository's emulator refuses REST", () => {
  let builtin: PubSubEmulator;
  beforeAll(async () => {
    builtin = await startPubSubEmulator();
  });
  afterAll(() => builtin.close());

  it('a publish over REST fails (the emulator answers HTTP/2 gRPC only)', async () => {
    const client = restClient(builtin.host);
    const err = await createPubSubPublisher(client, 'events')
      .publish(buildCompletionEvent(record, new Date()))
      .catch((e: unknown) => e);
    await client.close();
    expect(err).toBeInstanceOf(TransientError);
  });
});
