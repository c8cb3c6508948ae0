/**
 * Integrity of downloads: the Cloud Storage reader, with the client settings of the deployed
 * functions, refuses bytes that do not match the object's CRC32C, even when they still look like a
 * valid input, and reads intact bytes unchanged. The server here answers like Cloud Storage's media
 * download (`x-goog-hash`, `x-goog-stored-content-encoding`, gzip when asked for an object stored
 * gzip), and can damage one byte on the way, answer with an error status first, or check the
 * credentials sent.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { CRC32C, Storage, type StorageOptions } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fastCrc32cGenerator } from '../../shared/adapters/crc32c.js';
import { createGcsObjectReader } from '../../shared/adapters/gcs-objects.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { validateJsonl } from '../../shared/core/jsonl.js';

const LINE =
  '{"request":{"contents":[{"role":"user","parts":[{"text":"Is this review positive?"}]}]}}\n';
/** Large enough to arrive in many chunks. */
const CONTENT = Buffer.from(LINE.repeat(20_000));
/** The same, as stored by an upload with `contentEncoding: gzip`. */
const GZIPPED = gzipSync(CONTENT);

const hashes = (bytes: Buffer): string => {
  const crc = new CRC32C();
  crc.update(bytes);
  return `crc32c=${crc.toString()},md5=${createHash('md5').update(bytes).digest('base64')}`;
};

let server: Server;
let damage = false;
/** The object is stored gzip (served compressed when the request accepts gzip). */
let storedGzip = false;
/** Statuses answered before the object, one per request. */
let failFirst: number[] = [];
/** What each media request sent. */
let requests: IncomingHttpHeaders[] = [];
let previous: string | undefined;
beforeAll(async () => {
  server = createServer((req, res) => {
    if (!req.url?.includes('alt=media')) {
      res.writeHead(404).end();
      return;
    }
    requests.push(req.headers);
    const status = failFirst.shift();
    if (status !== undefined) {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: status, message: `status ${status} here` } }));
      return;
    }
    const gzipOnTheWire = storedGzip && String(req.headers['accept-encoding']).includes('gzip');
    const stored = storedGzip ? GZIPPED : CONTENT;
    const body = Buffer.from(gzipOnTheWire ? GZIPPED : CONTENT);
    // "positive" → "pOsitive" on the last line: still valid JSONL, but not the stored bytes.
    if (damage && !gzipOnTheWire) body[body.length - 20] = 'O'.charCodeAt(0);
    // In the gzip header's time stamp: decompresses as before, but not the stored bytes either.
    if (damage && gzipOnTheWire) body[4] = (body[4] ?? 0) ^ 1;
    res.writeHead(200, {
      'content-type': 'application/jsonl',
      'content-length': body.length,
      ...(gzipOnTheWire ? { 'content-encoding': 'gzip' } : {}),
      'x-goog-generation': '7',
      'x-goog-hash': hashes(stored),
      'x-goog-stored-content-encoding': storedGzip ? 'gzip' : 'identity',
      'x-goog-stored-content-length': stored.length,
    });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  previous = process.env.STORAGE_EMULATOR_HOST;
  process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  if (previous === undefined) delete process.env.STORAGE_EMULATOR_HOST;
  else process.env.STORAGE_EMULATOR_HOST = previous;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  damage = false;
  storedGzip = false;
  failFirst = [];
  requests = [];
});

/** The reader as functions/dependencies.ts builds it. */
const reader = () =>
  createGcsObjectReader(
    new Storage({ projectId: 'demo-batch-courier', crc32cGenerator: fastCrc32cGenerator }),
  );

async function readAll(r = reader()): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of r.read('acme-in', 'inputs/a.jsonl', '7')) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('Cloud Storage reads are checked against the object CRC32C', () => {
  it('intact bytes are read unchanged', async () => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of reader().read('acme-in', 'inputs/a.jsonl', '7')) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(Buffer.concat(chunks).equals(CONTENT)).toBe(true);
    // The request names the generation, asks for gzip as the client does, and (an emulator)
    // carries no credentials.
    expect(requests).toHaveLength(1);
    expect(requests[0]?.['accept-encoding']).toBe('gzip');
    expect(requests[0]?.authorization).toBeUndefined();
  });

  it('a damaged byte fails the read with a retryable error that says why', async () => {
    damage = true;
    const err = await (async () => {
      for await (const _ of reader().read('acme-in', 'inputs/a.jsonl', '7')) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect((err as Error).message).toBe(
      "could not read gs://acme-in/inputs/a.jsonl#7: the bytes received do not match the object's CRC32C",
    );
  });

  it('damaged bytes that still parse give no verdict: validation fails instead of passing', async () => {
    damage = true;
    await expect(
      validateJsonl(reader().read('acme-in', 'inputs/a.jsonl', '7'), { provider: 'google' }),
    ).rejects.toBeInstanceOf(TransientError);
    damage = false;
    await expect(
      validateJsonl(reader().read('acme-in', 'inputs/a.jsonl', '7'), { provider: 'google' }),
    ).resolves.toMatchObject({ code: undefined, requestCount: 20_000 });
  });

  it('an object stored gzip comes compressed: checked as stored (a changed byte that still decompresses is refused), then decompressed', async () => {
    storedGzip = true;
    expect((await readAll()).equals(CONTENT)).toBe(true);
    damage = true;
    await expect(readAll()).rejects.toMatchObject({
      code: 'STORAGE.UNAVAILABLE',
      message:
        "could not read gs://acme-in/inputs/a.jsonl#7: the bytes received do not match the object's CRC32C",
    });
  });
});

describe('Cloud Storage reads: answers other than the object', () => {
  it('503 and 429 before any byte are tried again; the object is then read whole', async () => {
    failFirst = [503, 429];
    expect((await readAll()).equals(CONTENT)).toBe(true);
    expect(requests).toHaveLength(3);
  });

  it('a server that keeps failing is TransientError STORAGE.UNAVAILABLE after 3 attempts', async () => {
    failFirst = [500, 502, 503, 503];
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect((err as Error).message).toBe('could not read gs://acme-in/inputs/a.jsonl#7');
    expect(requests).toHaveLength(3);
  });

  it('404 is PermanentError INPUT.NOT_FOUND, asked once', async () => {
    failFirst = [404];
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'INPUT.NOT_FOUND' });
    expect(requests).toHaveLength(1);
  });

  it('403 is TransientError STORAGE.PERMISSION_DENIED naming the role, asked once', async () => {
    failFirst = [403];
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.PERMISSION_DENIED' });
    expect((err as Error).message).toContain('roles/storage.objectViewer');
    expect(requests).toHaveLength(1);
  });

  it("the client's credentials go with the request when it authenticates", async () => {
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: 'token-1', expiry_date: Date.now() + 3600e3 });
    const storage = new Storage({
      projectId: 'demo-batch-courier',
      // The client declares its own google-auth-library's types (version 9); it takes any.
      authClient: authClient as unknown as StorageOptions['authClient'],
      useAuthWithCustomEndpoint: true,
    });
    expect((await readAll(createGcsObjectReader(storage))).equals(CONTENT)).toBe(true);
    expect(requests[0]?.authorization).toBe('Bearer token-1');
  });
});
