/** The Eventarc-like delivery of finalize events, against small HTTP targets and the storage emulator. */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../local/net.js';
import {
  createEventarcDelivery,
  encodeHeaderValue,
  storageFinalizedRequest,
} from '../../local/storage/eventarc.js';
import { startStorageEmulator, type ObjectResource } from '../../local/storage/server.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** An HTTP target that answers with `statuses` in turn (the last one repeats). */
async function startTarget(statuses: number[]): Promise<{
  url: string;
  requests: Received[];
  nextRequest: () => Promise<Received>;
  close: () => Promise<void>;
}> {
  const requests: Received[] = [];
  const waiters: ((r: Received) => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      requests.push(received);
      res.writeHead(statuses[Math.min(requests.length - 1, statuses.length - 1)] ?? 204).end();
      for (const w of waiters.splice(0)) w(received);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The object of a finalize event as Cloud Storage sends it. */
const SAMPLE_OBJECT: ObjectResource = {
  kind: 'storage#object',
  id: 'acme-batch-input/inputs/2026-11-26/customer-reviews.jsonl/1764150067498213',
  selfLink:
    'https://www.googleapis.com/storage/v1/b/acme-batch-input/o/inputs%2F2026-11-26%2Fcustomer-reviews.jsonl',
  name: 'inputs/2026-11-26/customer-reviews.jsonl',
  bucket: 'acme-batch-input',
  generation: '1764150067498213',
  metageneration: '1',
  contentType: 'application/jsonl',
  timeCreated: '2026-11-26T09:41:07.498Z',
  updated: '2026-11-26T09:41:07.498Z',
  storageClass: 'STANDARD',
  size: '48213',
  md5Hash: 'q3B5n0lqkQh4yq0o0Yt3sA==',
  mediaLink:
    'https://storage.googleapis.com/download/storage/v1/b/acme-batch-input/o/inputs%2F2026-11-26%2Fcustomer-reviews.jsonl?generation=1764150067498213&alt=media',
  metadata: { model: 'gemini-2.5-flash' },
  crc32c: 'yZRlqg==',
  etag: 'CKXx2Zr2xpEDEAE=',
};

describe('eventarc delivery', () => {
  const quickRetry = { initialDelayMs: 5, maxDelayMs: 40, maxAttempts: 10 };

  it('retries 500s with the same ce-id, in binary content mode', async () => {
    const target = await startTarget([500, 500, 204]);
    const delivery = createEventarcDelivery({ targetUrl: target.url, retry: quickRetry });
    try {
      delivery.deliver(SAMPLE_OBJECT);
      await delivery.idle();
      expect(target.requests).toHaveLength(3);
      const ids = new Set(target.requests.map((r) => r.headers['ce-id']));
      expect(ids.size).toBe(1);
      const [id] = [...ids];
      expect(id).toMatch(/^\d+$/);
      for (const request of target.requests) {
        expect(request.headers).toMatchObject({
          'content-type': 'application/json',
          'ce-specversion': '1.0',
          'ce-id': id,
          'ce-type': 'google.cloud.storage.object.v1.finalized',
          'ce-source': '//storage.googleapis.com/projects/_/buckets/acme-batch-input',
          'ce-subject': 'objects/inputs/2026-11-26/customer-reviews.jsonl',
          'ce-time': '2026-11-26T09:41:07.498Z',
          'ce-bucket': 'acme-batch-input',
        });
        expect(JSON.parse(request.body)).toEqual(SAMPLE_OBJECT);
      }
      expect(delivery.stats).toEqual({ delivered: 1, retried: 2, failed: 0 });
    } finally {
      delivery.close();
      await target.close();
    }
  });

  it('doubles the delay up to maxDelayMs and gives up after maxAttempts', async () => {
    const target = await startTarget([503]);
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      retry: { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 5 },
    });
    try {
      delivery.deliver(SAMPLE_OBJECT);
      await delivery.idle();
      expect(target.requests).toHaveLength(5);
      const gaps = target.requests.slice(1).map((r, i) => r.at - target.requests[i]!.at);
      // 20, 40, 50, 50 ms (timers never fire early).
      expect(gaps.map((g, i) => g >= [20, 40, 50, 50][i]! - 1)).toEqual([true, true, true, true]);
      expect(delivery.stats).toEqual({ delivered: 0, retried: 4, failed: 1 });
    } finally {
      delivery.close();
      await target.close();
    }
  });

  it('retries 429 and network errors, drops a 400 without retry', async () => {
    const throttled = await startTarget([429, 200]);
    const refused = await startTarget([400]);
    const toThrottled = createEventarcDelivery({ targetUrl: throttled.url, retry: quickRetry });
    const toRefused = createEventarcDelivery({ targetUrl: refused.url, retry: quickRetry });
    const unreachable = createEventarcDelivery({
      targetUrl: `http://127.0.0.1:${await freePort()}/`,
      retry: { initialDelayMs: 1, maxAttempts: 2 },
    });
    try {
      for (const d of [toThrottled, toRefused, unreachable]) d.deliver(SAMPLE_OBJECT);
      await Promise.all([toThrottled.idle(), toRefused.idle(), unreachable.idle()]);
      expect(throttled.requests).toHaveLength(2);
      expect(toThrottled.stats).toEqual({ delivered: 1, retried: 1, failed: 0 });
      expect(refused.requests).toHaveLength(1);
      expect(toRefused.stats).toEqual({ delivered: 0, retried: 0, failed: 1 });
      expect(unreachable.stats).toEqual({ delivered: 0, retried: 1, failed: 1 });
    } finally {
      for (const d of [toThrottled, toRefused, unreachable]) d.close();
      await Promise.all([throttled.close(), refused.close()]);
    }
  });

  it('gives each event its own id, filters by bucket, percent-encodes header values', async () => {
    const target = await startTarget([204]);
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      bucket: 'acme-batch-input',
      retry: quickRetry,
    });
    try {
      delivery.deliver(SAMPLE_OBJECT);
      delivery.deliver({ ...SAMPLE_OBJECT, name: 'inputs/données 1.jsonl' });
      delivery.deliver({ ...SAMPLE_OBJECT, bucket: 'another-bucket' });
      await delivery.idle();
      expect(target.requests).toHaveLength(2);
      const [a, b] = target.requests;
      expect(a?.headers['ce-id']).not.toBe(b?.headers['ce-id']);
      // CloudEvents HTTP binding 1.0.2 §3.1.3.2: space, '"', '%' and non-ASCII are percent-encoded.
      expect(b?.headers['ce-subject']).toBe('objects/inputs/donn%C3%A9es%201.jsonl');
      expect((JSON.parse(b?.body ?? '{}') as ObjectResource).name).toBe('inputs/données 1.jsonl');
    } finally {
      delivery.close();
      await target.close();
    }
    expect(encodeHeaderValue('Euro € 😀 "100%"')).toBe(
      'Euro%20%E2%82%AC%20%F0%9F%98%80%20%22100%25%22',
    );
    expect(storageFinalizedRequest(SAMPLE_OBJECT, '1').headers['ce-subject']).toBe(
      'objects/inputs/2026-11-26/customer-reviews.jsonl',
    );
  });

  it('close() cancels pending retries so idle() resolves', async () => {
    const target = await startTarget([500]);
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      retry: { initialDelayMs: 60_000 },
    });
    try {
      const first = target.nextRequest();
      delivery.deliver(SAMPLE_OBJECT);
      await first;
      const idle = delivery.idle();
      delivery.close();
      await idle;
      delivery.deliver(SAMPLE_OBJECT); // ignored after close
      await delivery.idle();
      expect(target.requests).toHaveLength(1);
    } finally {
      await target.close();
    }
  });

  it('delivers what the storage emulator finalizes, as the stack wires them', async () => {
    const target = await startTarget([204]);
    const root = await mkdtemp(join(tmpdir(), 'storage-emulator-eventarc-'));
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      bucket: 'watched',
      retry: quickRetry,
    });
    const emulator = await startStorageEmulator({ root, onFinalize: (o) => delivery.deliver(o) });
    try {
      await emulator.createBucket('watched');
      const file = new Storage({ apiEndpoint: emulator.url, projectId: 'p' })
        .bucket('watched')
        .file('inputs/x.jsonl');
      await file.save('{"request":{}}\n', {
        resumable: false,
        metadata: { metadata: { model: 'm' } },
      });
      await delivery.idle();
      expect(target.requests).toHaveLength(1);
      const [request] = target.requests;
      const body = JSON.parse(request?.body ?? '{}') as ObjectResource;
      expect(body).toMatchObject({
        bucket: 'watched',
        name: 'inputs/x.jsonl',
        size: '15',
        metadata: { model: 'm' },
      });
      expect(request?.headers).toMatchObject({
        'ce-subject': 'objects/inputs/x.jsonl',
        'ce-source': '//storage.googleapis.com/projects/_/buckets/watched',
        'ce-time': body.updated,
      });
    } finally {
      delivery.close();
      await emulator.close();
      await target.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
