/**
 * Attacks on the Cloud Storage reader's own media download (createGcsObjectReader): answers that
 * are incomplete, damaged, stalled or refused at every stage, consumers that stop early, object
 * names that need encoding, credentials that do not come. The server here is a plain `node:http`
 * server whose behaviour each test sets; STORAGE_EMULATOR_HOST points at it, as in the functions'
 * local stack.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { CRC32C, Storage, type StorageOptions } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fastCrc32cGenerator } from '../../shared/adapters/crc32c.js';
import { createGcsObjectReader } from '../../shared/adapters/gcs-objects.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';

const LINE = '{"request":{"contents":[{"role":"user","parts":[{"text":"Positive or not?"}]}]}}\n';
const CONTENT = Buffer.from(LINE.repeat(20_000));
const GZIPPED = gzipSync(CONTENT);

const crcOf = (bytes: Buffer): string => {
  const crc = new CRC32C();
  crc.update(bytes);
  return crc.toString();
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let handler: Handler;
let urls: string[] = [];
/** The socket of each request. */
let requestSockets: Socket[] = [];
let connections = 0;
const openSockets = new Set<Socket>();
let previous: string | undefined;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    urls.push(req.url ?? '');
    requestSockets.push(req.socket);
    handler(req, res);
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  previous = process.env.STORAGE_EMULATOR_HOST;
  process.env.STORAGE_EMULATOR_HOST = base;
});
afterAll(async () => {
  if (previous === undefined) delete process.env.STORAGE_EMULATOR_HOST;
  else process.env.STORAGE_EMULATOR_HOST = previous;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  server.closeAllConnections();
  urls = [];
  requestSockets = [];
  connections = 0;
  handler = serveObject();
});

/** An answer like Cloud Storage's media download of an object (identity or stored gzip). */
function serveObject(
  opts: {
    stored?: Buffer;
    gzip?: boolean;
    hash?: string | string[] | null;
    mutate?: (body: Buffer) => Buffer;
    /** Writes this many bytes of the body, then closes the connection. */
    truncateAt?: number;
    /** Writes this many bytes, then sends nothing more. */
    stallAt?: number;
  } = {},
): Handler {
  return (req, res) => {
    const gzip = opts.gzip ?? false;
    const stored = opts.stored ?? (gzip ? GZIPPED : CONTENT);
    let body: Buffer = Buffer.from(stored);
    if (opts.mutate) body = opts.mutate(body);
    const hash = opts.hash === undefined ? `crc32c=${crcOf(stored)}` : opts.hash;
    res.writeHead(200, {
      'content-type': 'application/jsonl',
      'content-length': body.length,
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      ...(hash === null ? {} : { 'x-goog-hash': hash }),
      'x-goog-stored-content-encoding': gzip ? 'gzip' : 'identity',
    });
    void req;
    if (opts.truncateAt !== undefined) {
      res.write(body.subarray(0, opts.truncateAt), () => res.socket?.destroy());
      return;
    }
    if (opts.stallAt !== undefined) {
      res.write(body.subarray(0, opts.stallAt));
      return;
    }
    res.end(body);
  };
}

const storage = (options: StorageOptions = {}) =>
  new Storage({
    projectId: 'demo-batch-courier',
    crc32cGenerator: fastCrc32cGenerator,
    ...options,
  });
const reader = (stallTimeoutMs?: number, s = storage()) =>
  createGcsObjectReader(s, stallTimeoutMs === undefined ? {} : { stallTimeoutMs });

async function readAll(r = reader(), name = 'inputs/a.jsonl', generation = '7'): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of r.read('acme-in', name, generation)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The read's outcome, or 'hung' when it has not settled within `ms`. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([
      p.then(
        (v) => ({ value: v }),
        (e: unknown) => e,
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const flip = (at: number) => (body: Buffer) => {
  const copy = Buffer.from(body);
  const i = at < 0 ? copy.length + at : at;
  copy[i] = (copy[i] ?? 0) ^ 1;
  return copy;
};

const waitFor = async (check: () => boolean, ms = 2000): Promise<boolean> => {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

describe('integrity: bytes that are not the object never pass', () => {
  // The client's HashStreamValidator assumes the worst: a checkable answer (stored identity, or
  // stored gzip and sent gzip) whose x-goog-hash has no crc32c fails with
  // CONTENT_DOWNLOAD_MISMATCH. The reader must not be weaker.
  it('a checkable answer without x-goog-hash fails the read, as it did with the client', async () => {
    handler = serveObject({ hash: null, mutate: flip(-20) });
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });

  it('a checkable answer whose x-goog-hash has only an md5 fails the read, as it did with the client', async () => {
    handler = serveObject({ hash: 'md5=AAAAAAAAAAAAAAAAAAAAAA==', mutate: flip(-20) });
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });

  it('a body closed early (content-length larger) fails the read, also without x-goog-hash', async () => {
    for (const hash of [undefined, null] as const) {
      handler = serveObject({ truncateAt: 100_000, ...(hash === null ? { hash } : {}) });
      const err = await readAll().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    }
  });

  it('a gzip body closed early fails the read', async () => {
    handler = serveObject({ gzip: true, truncateAt: 2_000 });
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });

  it('a gzip body damaged in the middle of its deflate data fails the read', async () => {
    handler = serveObject({ gzip: true, mutate: flip(Math.floor(GZIPPED.length / 2)) });
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });

  it('x-goog-hash sent as two headers (node joins them): intact bytes pass, damaged ones fail', async () => {
    const two = ['md5=AAAAAAAAAAAAAAAAAAAAAA==', `crc32c=${crcOf(CONTENT)}`];
    handler = serveObject({ hash: two });
    expect((await readAll()).equals(CONTENT)).toBe(true);
    handler = serveObject({ hash: two, mutate: flip(-20) });
    await expect(readAll()).rejects.toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    // crc32c first, then md5, with spaces
    handler = serveObject({ hash: [`crc32c=${crcOf(CONTENT)}`, 'md5=x'], mutate: flip(-20) });
    await expect(readAll()).rejects.toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });

  it('an empty object is read as empty (its CRC32C is AAAAAA==), and a non-empty answer for it fails', async () => {
    handler = serveObject({ stored: Buffer.alloc(0) });
    expect((await readAll()).length).toBe(0);
    handler = serveObject({ stored: Buffer.alloc(0), mutate: () => Buffer.from('{}\n') });
    await expect(readAll()).rejects.toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });
});

describe('the stall watchdog: a read never hangs', () => {
  it('no answer at all: STORAGE.UNAVAILABLE after the stall timeout, the socket closed', async () => {
    handler = () => undefined;
    const out = await settleWithin(readAll(reader(200)), 3000);
    expect(out).toBeInstanceOf(TransientError);
    expect(out).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect((out as Error).message).toContain('sent no bytes');
    expect(await waitFor(() => openSockets.size === 0)).toBe(true);
  });

  it('headers, then a body that stops (identity and gzip): STORAGE.UNAVAILABLE, socket closed', async () => {
    for (const gzip of [false, true]) {
      handler = serveObject({ gzip, stallAt: 1000 });
      const out = await settleWithin(readAll(reader(200)), 3000);
      expect(out).toBeInstanceOf(TransientError);
      expect((out as Error).message).toContain('sent no bytes');
      expect(await waitFor(() => openSockets.size === 0)).toBe(true);
    }
  });

  it('an error answer whose body stops: STORAGE.UNAVAILABLE (stall), not a hang', async () => {
    handler = (_req, res) => {
      res.writeHead(503, { 'content-length': 100 });
      res.write('{"error":');
    };
    const out = await settleWithin(readAll(reader(200)), 3000);
    expect(out).toBeInstanceOf(TransientError);
    expect((out as Error).message).toContain('sent no bytes');
  });

  it('a stall during the backoff between attempts keeps its reason', async () => {
    handler = (_req, res) => res.writeHead(503).end();
    const out = await settleWithin(readAll(reader(100)), 3000);
    expect(out).toBeInstanceOf(TransientError);
    expect((out as Error).message).toContain('sent no bytes');
    expect(urls).toHaveLength(1);
  });

  it('credentials that never come do not hang the read: the stall timeout fails it', async () => {
    const authClient = new OAuth2Client();
    authClient.getRequestHeaders = () => new Promise(() => undefined);
    const s = storage({
      authClient: authClient as unknown as StorageOptions['authClient'],
      useAuthWithCustomEndpoint: true,
    });
    const out = await settleWithin(readAll(reader(200, s)), 3000);
    expect(out).not.toBe('hung');
    expect(out).toBeInstanceOf(TransientError);
    expect(out).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
  });
});

describe('consumers that stop early, and the connections', () => {
  it('breaking out after the first chunk closes the connection (identity and gzip), and the next read works', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    try {
      for (const gzip of [false, true]) {
        // Half the body, then nothing: the read is not complete when the consumer stops.
        handler = serveObject({ gzip, stallAt: (gzip ? GZIPPED : CONTENT).length >> 1 });
        const r = reader(300);
        requestSockets = [];
        for await (const chunk of r.read('acme-in', 'inputs/a.jsonl', '7')) {
          expect(chunk.length).toBeGreaterThan(0);
          break;
        }
        expect(requestSockets).toHaveLength(1);
        expect(await waitFor(() => requestSockets[0]?.destroyed === true)).toBe(true);
        handler = serveObject({ gzip });
        expect((await readAll(r)).equals(CONTENT)).toBe(true);
      }
      // Past the stall timeout: no watchdog left to fire, nothing unhandled.
      await new Promise((r) => setTimeout(r, 500));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      process.off('uncaughtException', onUnhandled);
    }
  });

  it('a consumer that throws mid-read gets its own error back, not a storage error', async () => {
    const mine = new Error('the validator gave up');
    const out = await (async () => {
      for await (const _ of reader().read('acme-in', 'inputs/a.jsonl', '7')) {
        void _;
        throw mine;
      }
    })().catch((e: unknown) => e);
    expect(out).toBe(mine);
  });

  it('keep-alive: an error answer read to its end, then the object, and a second read, share one connection', async () => {
    let n = 0;
    const ok = serveObject();
    handler = (req, res) => {
      if (n++ === 0) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"busy"}}');
        return;
      }
      ok(req, res);
    };
    const r = reader();
    expect((await readAll(r)).equals(CONTENT)).toBe(true);
    expect((await readAll(r)).equals(CONTENT)).toBe(true);
    expect(urls).toHaveLength(3);
    expect(connections).toBe(1);
  });

  it('a connection reset before any byte is tried again (3 attempts)', async () => {
    let n = 0;
    const ok = serveObject();
    handler = (req, res) => {
      if (n++ < 2) {
        req.socket.destroy();
        return;
      }
      ok(req, res);
    };
    expect((await readAll()).equals(CONTENT)).toBe(true);
    expect(urls).toHaveLength(3);
  });

  it('a connection reset after the headers is STORAGE.UNAVAILABLE, not retried, not NOT_FOUND', async () => {
    handler = serveObject({ truncateAt: 0 });
    const err = await readAll().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(urls).toHaveLength(1);
  });

  it('404 with a body is NOT_FOUND; 408 and 401 are STORAGE.UNAVAILABLE (transient)', async () => {
    handler = (_req, res) => res.writeHead(404).end('Not Found');
    await expect(readAll()).rejects.toBeInstanceOf(PermanentError);
    for (const status of [401, 408, 412]) {
      handler = (_req, res) => res.writeHead(status).end();
      const err = await readAll().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    }
  });
});

describe('the request: the object the client would ask for', () => {
  const names = [
    'inputs/a b.jsonl',
    'inputs/#1?x=y&z.jsonl',
    'inputs/ünïcødé/日本.jsonl',
    'inputs/100%.jsonl',
    'inputs//double/slash+plus.jsonl',
    'inputs/..%2F.jsonl',
  ];

  it.each(names)('%s: the same object, generation and query as the client', async (name) => {
    handler = serveObject();
    await readAll(reader(), name, '1700000000000001');
    const ours = new URL(urls[0] ?? '', base);
    urls = [];
    // The client's own download of the same generation.
    const file = storage().bucket('acme-in').file(name, { generation: 1700000000000001 });
    await new Promise<void>((resolve, reject) =>
      file.createReadStream().on('error', reject).on('end', resolve).resume(),
    );
    const theirs = new URL(urls[0] ?? '', base);
    const objectOf = (u: URL) => decodeURIComponent(u.pathname.replace(/^.*\/o\//, ''));
    expect(objectOf(ours)).toBe(name);
    expect(objectOf(theirs)).toBe(name);
    expect(ours.pathname.endsWith(theirs.pathname)).toBe(true);
    expect(ours.searchParams.get('generation')).toBe('1700000000000001');
    expect(ours.searchParams.get('alt')).toBe('media');
  });

  it('an emulator host with a trailing slash gives the same URL', async () => {
    process.env.STORAGE_EMULATOR_HOST = `${base}/`;
    try {
      handler = serveObject();
      expect((await readAll()).equals(CONTENT)).toBe(true);
      expect(urls[0]?.startsWith('/storage/v1/b/acme-in/o/inputs%2Fa.jsonl?')).toBe(true);
    } finally {
      process.env.STORAGE_EMULATOR_HOST = base;
    }
  });

  it('an apiEndpoint with a path prefix keeps it', async () => {
    handler = serveObject();
    const s = storage({ apiEndpoint: `${base}/prefix/` });
    expect((await readAll(reader(undefined, s))).equals(CONTENT)).toBe(true);
    expect(urls[0]?.startsWith('/prefix/storage/v1/b/acme-in/o/inputs%2Fa.jsonl?')).toBe(true);
  });
});
