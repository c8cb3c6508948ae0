/**
 * The Vertex REST client: endpoints and paths, bodies, and error mapping, against local HTTP
 * servers (a plain recorder and the builtin Vertex emulator) through google-auth-library with a
 * static token.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVertexClient, vertexEndpoint } from '../../shared/adapters/vertex-rest-client.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import {
  buildBatchJobRequest,
  JOB_ID_LABEL,
  jobIdFilter,
  jobLabels,
  MAX_IDS_PER_LIST,
  OWNER_LABEL,
  requestInputUris,
} from '../../shared/core/vertex.js';
import {
  startVertexEmulator,
  type BlobStore,
  type VertexEmulator,
} from '../../local/vertex-emulator.js';

function staticAuth(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600_000 });
  return client;
}

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  body: string;
}

let server: Server;
let host: string;
const seen: Seen[] = [];
let answer: { status: number; body: unknown } = { status: 200, body: {} };
/** Answers given before `answer`, one per request. */
const queued: { status: number; body: unknown }[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        auth: req.headers.authorization,
        body,
      });
      const next = queued.shift() ?? answer;
      res.writeHead(next.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(next.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const request = buildBatchJobRequest({
  jobId: 'customer-reviews-0123456789abcdef',
  model: 'publishers/google/models/gemini-2.5-flash',
  inputUri: 'gs://acme-in/inputs/customer-reviews.jsonl',
  outputUriPrefix: 'gs://acme-out/results/customer-reviews-0123456789abcdef/',
});

describe('Vertex REST client', () => {
  it.each([
    ['us-central1', undefined, 'https://us-central1-aiplatform.googleapis.com'],
    ['us-east5', undefined, 'https://us-east5-aiplatform.googleapis.com'],
    ['global', undefined, 'https://aiplatform.googleapis.com'],
    ['us-central1', '127.0.0.1:9999', 'http://127.0.0.1:9999'],
  ])('endpoint for %s (emulator %s) is %s', (location, emulator, expected) => {
    expect(vertexEndpoint(location, emulator)).toBe(expected);
  });

  it('builds production URLs for regional and global locations', async () => {
    const urls: string[] = [];
    const client = createVertexClient({
      project: 'demo-project',
      auth: {
        request: async <T>(opts: { url?: string | URL }) => {
          urls.push(String(opts.url));
          return { data: { name: 'x' } as T } as never;
        },
      },
    });
    await client.create('us-central1', request);
    await client.create('global', request);
    await client.get('projects/510528649030/locations/us-east5/batchPredictionJobs/42');
    await client.cancel('projects/510528649030/locations/global/batchPredictionJobs/42');
    expect(urls).toEqual([
      'https://us-central1-aiplatform.googleapis.com/v1/projects/demo-project/locations/us-central1/batchPredictionJobs',
      'https://aiplatform.googleapis.com/v1/projects/demo-project/locations/global/batchPredictionJobs',
      'https://us-east5-aiplatform.googleapis.com/v1/projects/510528649030/locations/us-east5/batchPredictionJobs/42',
      'https://aiplatform.googleapis.com/v1/projects/510528649030/locations/global/batchPredictionJobs/42:cancel',
    ]);
  });

  it('sends create with a bearer token and a body of API fields only, with valid labels', async () => {
    answer = {
      status: 200,
      body: {
        name: 'projects/1/locations/us-central1/batchPredictionJobs/7',
        state: 'JOB_STATE_PENDING',
      },
    };
    seen.length = 0;
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    const job = await client.create('us-central1', request);
    expect(job.name).toBe('projects/1/locations/us-central1/batchPredictionJobs/7');
    const call = seen[0]!;
    expect(call.method).toBe('POST');
    expect(call.url).toBe('/v1/projects/demo-project/locations/us-central1/batchPredictionJobs');
    expect(call.auth).toBe('Bearer test-token');
    const body = JSON.parse(call.body) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual([
      'displayName',
      'inputConfig',
      'labels',
      'model',
      'outputConfig',
    ]);
    for (const [k, v] of Object.entries(body.labels as Record<string, string>)) {
      expect(k).toMatch(/^[a-z][a-z0-9_-]{0,62}$/);
      expect(v).toMatch(/^[a-z0-9_-]{0,63}$/);
    }
  });

  it('lists with filter, page size and token as query parameters', async () => {
    answer = { status: 200, body: { batchPredictionJobs: [{ name: 'a' }], nextPageToken: 'n2' } };
    seen.length = 0;
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    const page = await client.list('us-central1', {
      filter: jobIdFilter(['a', 'b']),
      pageSize: 50,
      pageToken: 't1',
    });
    expect(page).toEqual({ jobs: [{ name: 'a' }], nextPageToken: 'n2' });
    const url = new URL(seen[0]!.url, 'http://x');
    expect(url.searchParams.get('filter')).toBe(
      'labels.batch_courier="v1" AND (labels.job_id="a" OR labels.job_id="b")',
    );
    expect(url.searchParams.get('pageSize')).toBe('50');
    expect(url.searchParams.get('pageToken')).toBe('t1');
  });

  it.each([
    [429, 'RESOURCE_EXHAUSTED', TransientError, 'VERTEX.RESOURCE_EXHAUSTED'],
    [500, 'INTERNAL', TransientError, 'VERTEX.UNAVAILABLE'],
    [503, 'UNAVAILABLE', TransientError, 'VERTEX.UNAVAILABLE'],
    [504, 'DEADLINE_EXCEEDED', TransientError, 'VERTEX.UNAVAILABLE'],
    [400, 'INVALID_ARGUMENT', PermanentError, 'VERTEX.INVALID_ARGUMENT'],
    [403, 'PERMISSION_DENIED', PermanentError, 'VERTEX.PERMISSION_DENIED'],
    [404, 'NOT_FOUND', PermanentError, 'VERTEX.NOT_FOUND'],
  ])('create answered %i is %s → %s', async (status, rpc, kind, code) => {
    answer = { status, body: { error: { code: status, message: `boom ${status}`, status: rpc } } };
    seen.length = 0;
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    const err = await client.create('us-central1', request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(kind);
    expect(err).toMatchObject({ code, status });
    expect((err as Error).message).toContain(`boom ${status}`);
    expect(seen).toHaveLength(1); // a create is never retried blindly
  });

  it('"service agents are being provisioned" is transient', async () => {
    answer = {
      status: 400,
      body: {
        error: {
          code: 400,
          message: 'Service agents are being provisioned',
          status: 'FAILED_PRECONDITION',
        },
      },
    };
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    await expect(client.create('us-central1', request)).rejects.toBeInstanceOf(TransientError);
  });

  it('deadline: a get is retried after 503 and 429, and a 404 is not retried', async () => {
    const rpc = (status: number, name: string) => ({
      status,
      body: { error: { code: status, message: name, status: name } },
    });
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    const job = 'projects/1/locations/us-central1/batchPredictionJobs/7';
    seen.length = 0;
    queued.push(rpc(503, 'UNAVAILABLE'), rpc(429, 'RESOURCE_EXHAUSTED'));
    answer = { status: 200, body: { name: job, state: 'JOB_STATE_RUNNING' } };
    await expect(client.get(job)).resolves.toMatchObject({ state: 'JOB_STATE_RUNNING' });
    expect(seen).toHaveLength(3);

    seen.length = 0;
    answer = rpc(404, 'NOT_FOUND');
    await expect(client.get(job)).rejects.toMatchObject({ code: 'VERTEX.NOT_FOUND' });
    expect(seen).toHaveLength(1);
  });

  it('list: a filter the service refuses is PermanentError VERTEX.INVALID_ARGUMENT, not retried', async () => {
    seen.length = 0;
    answer = {
      status: 400,
      body: { error: { code: 400, message: 'Invalid filter.', status: 'INVALID_ARGUMENT' } },
    };
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    const err = await client
      .list('us-central1', { filter: jobIdFilter(['a']) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'VERTEX.INVALID_ARGUMENT', status: 400 });
    expect(seen).toHaveLength(1);
  });

  it('list: label keys in filters use underscores only, and at most MAX_IDS_PER_LIST ids are meant for one call', () => {
    expect(OWNER_LABEL).toBe('batch_courier');
    expect(JOB_ID_LABEL).toBe('job_id');
    expect(jobLabels('x')).toEqual({ batch_courier: 'v1', job_id: 'x' });
    expect(MAX_IDS_PER_LIST).toBe(10);
    const filter = jobIdFilter(Array.from({ length: MAX_IDS_PER_LIST }, (_, i) => `id-${i}`));
    expect(filter.match(/ OR /g)).toHaveLength(MAX_IDS_PER_LIST - 1);
    // Keys carry no '-' (AIP-160 negation); values are quoted, so a '-' inside them is harmless.
    for (const [, key] of filter.matchAll(/labels\.([^=]+)=/g)) expect(key).toMatch(/^[a-z_]+$/);
    expect(jobIdFilter(['a"b\\c'])).toContain('labels.job_id="a\\"b\\\\c"');
  });

  it('fencing: a create whose notAfter has passed is not sent at all', async () => {
    seen.length = 0;
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: host,
    });
    await expect(
      client.create('us-central1', request, { notAfter: new Date(Date.now() - 1) }),
    ).rejects.toMatchObject({ code: 'DEADLINE.EXCEEDED' });
    expect(seen).toHaveLength(0);
    answer = {
      status: 200,
      body: { name: 'projects/1/locations/us-central1/batchPredictionJobs/8' },
    };
    await client.create('us-central1', request, { notAfter: new Date(Date.now() + 60_000) });
    expect(seen).toHaveLength(1);
  });

  it('an unreachable endpoint is transient', async () => {
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: '127.0.0.1:1',
      timeoutMs: 2000,
    });
    await expect(client.create('us-central1', request)).rejects.toBeInstanceOf(TransientError);
  });
});

describe('Vertex REST client against the builtin Vertex emulator', () => {
  let emulator: VertexEmulator;
  const blobs = new Map<string, Buffer>();
  const store: BlobStore = {
    read: async (uri) => {
      const b = blobs.get(uri);
      if (!b) throw Object.assign(new Error('not found'), { code: 404 });
      return b;
    },
    write: async (uri, data) => {
      blobs.set(uri, Buffer.from(data));
    },
  };
  beforeAll(async () => {
    emulator = await startVertexEmulator({ blobs: store, timing: { pendingMs: 0, runningMs: 0 } });
  });
  afterAll(() => emulator.close());

  it('create → get → list by label → succeeded with stats, then get of an unknown job is NOT_FOUND', async () => {
    blobs.set(
      requestInputUris(request)[0]!,
      Buffer.from('{"request":{"contents":[{"role":"user","parts":[{"text":"Great!"}]}]}}\n'),
    );
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: emulator.host,
    });
    const created = await client.create('us-central1', request);
    expect(created.state).toBe('JOB_STATE_PENDING');
    const found = await client.list('us-central1', {
      filter: jobIdFilter(['customer-reviews-0123456789abcdef']),
    });
    expect(found.jobs.map((j) => j.name)).toEqual([created.name]);
    await emulator.whenIdle();
    const done = await client.get(created.name);
    expect(done).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      completionStats: { successfulCount: '1' },
    });
    expect(done.outputInfo?.gcsOutputDirectory).toMatch(/\/prediction-model-/);
    await expect(client.get(created.name.replace(/\d+$/, '1'))).rejects.toMatchObject({
      code: 'VERTEX.NOT_FOUND',
    });
  });

  it('list: the emulator refusing list answers 400 over the wire: PermanentError VERTEX.INVALID_ARGUMENT; get still works', async () => {
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: emulator.host,
    });
    const created = await client.create('us-central1', {
      ...request,
      displayName: 'refused-list',
      labels: jobLabels('refused-list'),
    });
    emulator.inject({ refuseList: true, maxOrTerms: 3 });
    const few = await client.list('us-central1', { filter: jobIdFilter(['refused-list']) });
    expect(few.jobs.map((j) => j.name)).toEqual([created.name]);
    const many = jobIdFilter(['refused-list', 'b', 'c', 'd']);
    await expect(client.list('us-central1', { filter: many })).rejects.toMatchObject({
      code: 'VERTEX.INVALID_ARGUMENT',
      status: 400,
    });
    emulator.inject({ refuseList: true });
    await expect(
      client.list('us-central1', { filter: jobIdFilter(['refused-list']) }),
    ).rejects.toBeInstanceOf(PermanentError);
    await expect(client.get(created.name)).resolves.toMatchObject({ name: created.name });
    emulator.inject({ refuseList: false });
    await expect(
      client.list('us-central1', { filter: jobIdFilter(['refused-list']) }),
    ).resolves.toMatchObject({ jobs: [{ name: created.name }] });
  });

  it('a 429 from the emulator is RESOURCE_EXHAUSTED', async () => {
    emulator.inject({ op: 'create', status: 429 });
    const client = createVertexClient({
      project: 'demo-project',
      auth: staticAuth(),
      emulatorHost: emulator.host,
    });
    await expect(client.create('us-east5', request)).rejects.toMatchObject({
      code: 'VERTEX.RESOURCE_EXHAUSTED',
    });
  });
});
