/**
 * The local Cloud Storage emulator, driven by the real `@google-cloud/storage` client in both of its
 * endpoint styles, and the Eventarc-like finalize delivery.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEventarcDelivery,
  encodeHeaderValue,
  storageFinalizedRequest,
} from '../../local/eventarc.js';
import { freePort } from '../../local/net.js';
import {
  crc32cBase64,
  startStorageEmulator,
  type ObjectResource,
  type StorageEmulator,
} from '../../local/storage-emulator.js';

const md5 = (data: Buffer | string): string => createHash('md5').update(data).digest('base64');

/** A client in the `STORAGE_EMULATOR_HOST` style (the variable is read by the constructor only). */
function emulatorHostClient(url: string): Storage {
  const previous = process.env.STORAGE_EMULATOR_HOST;
  process.env.STORAGE_EMULATOR_HOST = url;
  try {
    return new Storage({ projectId: 'p' });
  } finally {
    if (previous === undefined) delete process.env.STORAGE_EMULATOR_HOST;
    else process.env.STORAGE_EMULATOR_HOST = previous;
  }
}

function apiEndpointClient(url: string): Storage {
  return new Storage({ apiEndpoint: url, projectId: 'p' });
}

/**
 * The HTTP status of a client error: `code` on the library's ApiError, `status` on the gaxios
 * error that a failed resumable-session request surfaces.
 */
async function statusOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    const e = err as { code?: unknown; status?: unknown };
    return typeof e.code === 'number' ? e.code : e.status;
  }
  throw new Error('expected the call to fail');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

describe('crc32c', () => {
  it('matches the standard check value and the client library', () => {
    // CRC-32C check value of "123456789" is 0xE3069283.
    expect(Buffer.from(crc32cBase64(Buffer.from('123456789')), 'base64').toString('hex')).toBe(
      'e3069283',
    );
    expect(crc32cBase64(Buffer.alloc(0))).toBe('AAAAAA==');
  });
});

describe('storage emulator', () => {
  let parent: string;
  let root: string;
  let emulator: StorageEmulator;
  const finalized: ObjectResource[] = [];

  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'storage-emulator-'));
    root = join(parent, 'storage');
    emulator = await startStorageEmulator({ root, onFinalize: (o) => finalized.push(o) });
  });

  afterAll(async () => {
    await emulator.close();
    await rm(parent, { recursive: true, force: true });
  });

  it('answers GET / with Ok and errors in the Google JSON shape on both path styles', async () => {
    const ok = await fetch(`${emulator.url}/`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('Ok');
    for (const path of ['/b/missing-bucket/o/x', '/storage/v1/b/missing-bucket/o/x']) {
      const res = await fetch(`${emulator.url}${path}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({
        error: {
          code: 404,
          message: 'The specified bucket does not exist.',
          errors: [
            {
              message: 'The specified bucket does not exist.',
              domain: 'global',
              reason: 'notFound',
            },
          ],
        },
      });
    }
  });

  it('creates, gets and lists buckets; a second create is a 409', async () => {
    const storage = apiEndpointClient(emulator.url);
    await storage.createBucket('bucket-api');
    await emulator.createBucket('bucket-programmatic');
    await emulator.createBucket('bucket-programmatic'); // idempotent
    const [exists1] = await storage.bucket('bucket-programmatic').exists();
    const [exists2] = await emulatorHostClient(emulator.url).bucket('no-such-bucket').exists();
    expect([exists1, exists2]).toEqual([true, false]);
    const [buckets] = await emulatorHostClient(emulator.url).getBuckets();
    expect(buckets.map((b) => b.name)).toEqual(
      expect.arrayContaining(['bucket-api', 'bucket-programmatic']),
    );
    expect(await statusOf(storage.createBucket('bucket-api'))).toBe(409);
    expect(await statusOf(storage.createBucket('UPPER'))).toBe(400);
  });

  const styles = [
    { style: 'STORAGE_EMULATOR_HOST', client: emulatorHostClient, bucket: 'style-host' },
    { style: 'apiEndpoint', client: apiEndpointClient, bucket: 'style-endpoint' },
  ] as const;

  for (const { style, client, bucket: bucketName } of styles) {
    describe(`with the client in ${style} style`, () => {
      let storage: Storage;

      beforeAll(async () => {
        storage = client(emulator.url);
        await storage.createBucket(bucketName);
      });

      it('saves (non-resumable and resumable), downloads with validation and reads metadata', async () => {
        const bucket = storage.bucket(bucketName);
        const plain = bucket.file('inputs/plain.jsonl');
        await plain.save('{"request":1}\n', {
          resumable: false,
          contentType: 'application/jsonl',
          metadata: { metadata: { model: 'gemini-2.5-flash' } },
        });
        const resumable = bucket.file('inputs/resumable.jsonl');
        await resumable.save('{"request":2}\n', {
          resumable: true,
          metadata: { contentType: 'application/jsonl', metadata: { location: 'europe-west4' } },
        });

        const [content] = await plain.download({ validation: 'crc32c' });
        expect(content.toString()).toBe('{"request":1}\n');
        const [contentMd5] = await resumable.download({ validation: 'md5' });
        expect(contentMd5.toString()).toBe('{"request":2}\n');

        const [meta] = await plain.getMetadata();
        expect(meta).toMatchObject({
          kind: 'storage#object',
          name: 'inputs/plain.jsonl',
          bucket: bucketName,
          metageneration: '1',
          size: '14',
          contentType: 'application/jsonl',
          storageClass: 'STANDARD',
          md5Hash: md5('{"request":1}\n'),
          crc32c: crc32cBase64(Buffer.from('{"request":1}\n')),
          metadata: { model: 'gemini-2.5-flash' },
        });
        expect(meta.generation).toMatch(/^\d{16}$/);
        expect(meta.id).toBe(`${bucketName}/inputs/plain.jsonl/${meta.generation}`);
        expect(meta.timeCreated).toBe(meta.updated);
        const [meta2] = await resumable.getMetadata();
        expect(meta2.metadata).toEqual({ location: 'europe-west4' });
        expect(BigInt(String(meta2.generation))).toBeGreaterThan(BigInt(String(meta.generation)));

        // The live bytes are a plain file a user can open.
        expect(await readFile(join(root, bucketName, 'inputs', 'plain.jsonl'), 'utf8')).toBe(
          '{"request":1}\n',
        );
      });

      it('serves a specific generation and 404 for an old one', async () => {
        const file = storage.bucket(bucketName).file('gen.txt');
        await file.save('first', { resumable: false });
        const [first] = await file.getMetadata();
        await file.save('second', { resumable: false });
        const [second] = await file.getMetadata();

        const live = storage
          .bucket(bucketName)
          .file('gen.txt', { generation: Number(second.generation) });
        expect((await live.download())[0].toString()).toBe('second');
        const old = storage
          .bucket(bucketName)
          .file('gen.txt', { generation: Number(first.generation) });
        expect(await statusOf(old.download())).toBe(404);
        expect(await statusOf(old.getMetadata())).toBe(404);
      });

      it('honours Range requests', async () => {
        const file = storage.bucket(bucketName).file('range.txt');
        await file.save('0123456789', { resumable: false });
        expect((await file.download({ start: 2, end: 5 }))[0].toString()).toBe('2345');
        expect((await file.download({ start: 7 }))[0].toString()).toBe('789');
        const res = await fetch(
          `${emulator.url}/storage/v1/b/${bucketName}/o/range.txt?alt=media`,
          {
            headers: { Range: 'bytes=-3' },
          },
        );
        expect(res.status).toBe(206);
        expect(res.headers.get('content-range')).toBe('bytes 7-9/10');
        expect(await res.text()).toBe('789');
      });

      it('lists with prefix, delimiter and paging', async () => {
        const bucket = storage.bucket(bucketName);
        const names = [
          'list/a.jsonl',
          'list/b.jsonl',
          'list/c/1.jsonl',
          'list/c/2.jsonl',
          'list/d.jsonl',
        ];
        for (const name of names) await bucket.file(name).save(name, { resumable: false });

        const [all] = await bucket.getFiles({ prefix: 'list/' });
        expect(all.map((f) => f.name)).toEqual(names);

        const seen: string[] = [];
        const prefixes: string[] = [];
        let query: Record<string, unknown> | null = {
          prefix: 'list/',
          delimiter: '/',
          maxResults: 2,
          autoPaginate: false,
        };
        let pages = 0;
        while (query) {
          const [files, next, response]: [
            { name: string }[],
            Record<string, unknown> | null,
            { prefixes?: string[] },
          ] = (await bucket.getFiles(query)) as never;
          seen.push(...files.map((f) => f.name));
          prefixes.push(...(response.prefixes ?? []));
          query = next;
          pages++;
        }
        expect(seen).toEqual(['list/a.jsonl', 'list/b.jsonl', 'list/d.jsonl']);
        expect(prefixes).toEqual(['list/c/']);
        expect(pages).toBe(2);
      });

      it('copies, moves, renames and deletes', async () => {
        const bucket = storage.bucket(bucketName);
        const src = bucket.file('ops/source.jsonl');
        await src.save('payload', { resumable: false, metadata: { metadata: { k: 'v' } } });
        const before = finalized.length;

        const [copy] = await src.copy('ops/copy.jsonl');
        const [copyMeta] = await copy.getMetadata();
        expect(copyMeta).toMatchObject({
          size: '7',
          md5Hash: md5('payload'),
          metadata: { k: 'v' },
        });
        expect((await copy.download())[0].toString()).toBe('payload');

        // The library types move/rename results as unknown: address the files by name.
        await copy.move('ops/moved.jsonl');
        const moved = bucket.file('ops/moved.jsonl');
        expect((await moved.download())[0].toString()).toBe('payload');
        expect((await bucket.file('ops/copy.jsonl').exists())[0]).toBe(false);

        await moved.rename('ops/renamed.jsonl');
        const renamed = bucket.file('ops/renamed.jsonl');
        expect((await moved.exists())[0]).toBe(false);

        await renamed.moveFileAtomic('ops/atomic.jsonl');
        expect((await bucket.file('ops/renamed.jsonl').exists())[0]).toBe(false);
        expect((await bucket.file('ops/atomic.jsonl').download())[0].toString()).toBe('payload');

        // Copy across buckets through the rewrite API.
        await src.copy(storage.bucket('bucket-programmatic').file(`from-${bucketName}.jsonl`));
        expect(
          (
            await storage.bucket('bucket-programmatic').file(`from-${bucketName}.jsonl`).download()
          )[0].toString(),
        ).toBe('payload');

        await bucket.file('ops/atomic.jsonl').delete();
        expect((await bucket.file('ops/atomic.jsonl').exists())[0]).toBe(false);
        expect(await statusOf(bucket.file('ops/atomic.jsonl').delete())).toBe(404);
        expect(await exists(join(root, bucketName, 'ops', 'atomic.jsonl'))).toBe(false);

        // copy, move (copy), rename (copy), moveFileAtomic and the cross-bucket copy each finalize.
        expect(finalized.slice(before).map((o) => o.name)).toEqual([
          'ops/copy.jsonl',
          'ops/moved.jsonl',
          'ops/renamed.jsonl',
          'ops/atomic.jsonl',
          `from-${bucketName}.jsonl`,
        ]);
      });

      it('patches metadata: merges, deletes with null, bumps metageneration, no finalize', async () => {
        const file = storage.bucket(bucketName).file('meta.jsonl');
        await file.save('x', { resumable: false, metadata: { metadata: { a: '1', b: '2' } } });
        const [before] = await file.getMetadata();
        const count = finalized.length;

        await file.setMetadata({ metadata: { b: null, c: '3' }, contentType: 'application/jsonl' });
        const [after] = await file.getMetadata();
        expect(after.metadata).toEqual({ a: '1', c: '3' });
        expect(after.contentType).toBe('application/jsonl');
        expect(after.metageneration).toBe('2');
        expect(after.generation).toBe(before.generation);
        expect(after.etag).not.toBe(before.etag);
        expect(finalized.length).toBe(count);

        expect(
          await statusOf(file.setMetadata({ metadata: { d: '4' } }, { ifMetagenerationMatch: 1 })),
        ).toBe(412);
        await file.setMetadata({ metadata: { d: '4' } }, { ifMetagenerationMatch: 2 });
        // `metadata: null` clears every key (the library's types do not allow it: raw PATCH).
        const cleared = await fetch(`${emulator.url}/b/${bucketName}/o/meta.jsonl`, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ metadata: null }),
        });
        expect(cleared.status).toBe(200);
        expect((await file.getMetadata())[0].metadata).toBeUndefined();
      });

      it('refuses a save with ifGenerationMatch: 0 on an existing object with 412', async () => {
        const file = storage.bucket(bucketName).file('exists-already.jsonl');
        await file.save('one', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
        for (const resumable of [false, true]) {
          expect(
            await statusOf(
              file.save('two', { resumable, preconditionOpts: { ifGenerationMatch: 0 } }),
            ),
          ).toBe(412);
        }
        expect((await file.download())[0].toString()).toBe('one');
        const [meta] = await file.getMetadata();
        await file.save('three', {
          resumable: false,
          preconditionOpts: { ifGenerationMatch: Number(meta.generation) },
        });
        expect((await file.download())[0].toString()).toBe('three');
      });

      it('streams a 5 MB upload in resumable chunks and downloads it intact', async () => {
        const size = 5 * 1024 * 1024;
        const block = randomBytes(64 * 1024);
        const hash = createHash('md5');
        for (let sent = 0; sent < size; sent += block.length) hash.update(block);
        const file = storage.bucket(bucketName).file('big/5mb.bin');
        async function* blocks(): AsyncGenerator<Buffer> {
          for (let sent = 0; sent < size; sent += block.length) yield block;
        }
        // chunkSize makes the client send several PUTs with Content-Range and expect 308s.
        await pipeline(
          Readable.from(blocks()),
          file.createWriteStream({ resumable: true, chunkSize: 1024 * 1024 }),
        );
        const [meta] = await file.getMetadata();
        expect(meta.size).toBe(String(size));
        expect(meta.md5Hash).toBe(hash.digest('base64'));
        expect((await stat(join(root, bucketName, 'big', '5mb.bin'))).size).toBe(size);

        const downloaded = createHash('md5');
        let bytes = 0;
        for await (const chunk of file.createReadStream({ validation: 'crc32c' })) {
          const buf = chunk as Buffer;
          downloaded.update(buf);
          bytes += buf.length;
        }
        expect(bytes).toBe(size);
        expect(downloaded.digest('base64')).toBe(meta.md5Hash);
      });
    });
  }

  it('round-trips awkward names and keeps every byte inside the root', async () => {
    const storage = apiEndpointClient(emulator.url);
    await storage.createBucket('names');
    const bucket = storage.bucket('names');
    const safe = ['with space.jsonl', 'ünïcødé/文件 1.jsonl', 'a+b=c&d?e#f.jsonl'];
    const unsafe = [
      '../x',
      'a/../../b',
      '/leading',
      'dir/',
      'a//b',
      '.encoded/x',
      './dot',
      'nul\u0000byte',
    ];
    for (const name of [...safe, ...unsafe]) {
      await bucket.file(name).save(`content of ${name}`, { resumable: name.length % 2 === 0 });
    }
    const [files] = await bucket.getFiles();
    expect(files.map((f) => f.name).sort()).toEqual([...safe, ...unsafe].sort());
    for (const name of [...safe, ...unsafe]) {
      const file = bucket.file(name);
      expect((await file.download())[0].toString()).toBe(`content of ${name}`);
      expect((await file.getMetadata())[0].name).toBe(name);
      const path = emulator.objectPath('names', name);
      expect(path?.startsWith(join(root, 'names') + '/')).toBe(true);
    }
    for (const name of safe) {
      expect(emulator.objectPath('names', name)).toBe(join(root, 'names', ...name.split('/')));
    }
    for (const name of unsafe) {
      expect(
        emulator.objectPath('names', name)?.startsWith(join(root, 'names', '.encoded') + '/'),
      ).toBe(true);
    }
    // Nothing was written next to the root.
    expect(await readdir(parent)).toEqual(['storage']);

    for (const name of [...unsafe, safe[1]!]) await bucket.file(name).delete();
    expect(await readdir(join(root, 'names'))).toEqual(
      expect.not.arrayContaining(['ünïcødé']), // emptied folders are removed
    );
  });

  it('refuses names Cloud Storage refuses (CR/LF, "." and "..") without writing anything', async () => {
    const bucket = apiEndpointClient(emulator.url).bucket('names');
    for (const name of ['line\nbreak.jsonl', 'carriage\rreturn', '.', '..']) {
      for (const resumable of [false, true]) {
        expect(await statusOf(bucket.file(name).save('x', { resumable }))).toBe(400);
      }
    }
    expect(await readdir(parent)).toEqual(['storage']);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });

  it('stores an object and a "folder" of the same name side by side', async () => {
    const bucket = apiEndpointClient(emulator.url).bucket('names');
    await bucket.file('clash').save('file', { resumable: false });
    await bucket.file('clash/inner').save('inner', { resumable: false });
    await bucket.file('other/inner').save('inner2', { resumable: false });
    await bucket.file('other').save('file2', { resumable: false });
    expect((await bucket.file('clash').download())[0].toString()).toBe('file');
    expect((await bucket.file('clash/inner').download())[0].toString()).toBe('inner');
    expect((await bucket.file('other').download())[0].toString()).toBe('file2');
    expect((await bucket.file('other/inner').download())[0].toString()).toBe('inner2');
  });

  it('rejects an upload whose declared checksum does not match the bytes', async () => {
    const boundary = 'b0undary';
    const body =
      `--${boundary}\r\nContent-Type: application/json\r\n\r\n` +
      JSON.stringify({ name: 'bad-hash.txt', crc32c: crc32cBase64(Buffer.from('other')) }) +
      `\r\n--${boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${boundary}--`;
    const res = await fetch(`${emulator.url}/upload/storage/v1/b/names/o?uploadType=multipart`, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/related; boundary=${boundary}` },
      body,
    });
    expect(res.status).toBe(400);
    const [found] = await apiEndpointClient(emulator.url)
      .bucket('names')
      .file('bad-hash.txt')
      .exists();
    expect(found).toBe(false);
  });

  it('speaks the resumable protocol: 308 with Range, status queries, overlapping chunks', async () => {
    const start = await fetch(
      `${emulator.url}/upload/storage/v1/b/names/o?uploadType=resumable&name=raw-resumable.txt`,
      { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' },
    );
    expect(start.status).toBe(200);
    const session = start.headers.get('location');
    expect(session).toMatch(/upload_id=/);

    const put = (range: string, body: string): Promise<Response> =>
      fetch(session!, { method: 'PUT', headers: { 'Content-Range': range }, body });
    const first = await put('bytes 0-3/*', 'abcd');
    expect(first.status).toBe(308);
    expect(first.headers.get('range')).toBe('bytes=0-3');
    const status = await put('bytes */*', '');
    expect(status.status).toBe(308);
    expect(status.headers.get('range')).toBe('bytes=0-3');
    // The client may resend bytes the server already has; they are skipped.
    const last = await put('bytes 2-7/8', 'cdefgh');
    expect(last.status).toBe(200);
    expect(((await last.json()) as ObjectResource).size).toBe('8');
    const again = await put('bytes */8', '');
    expect(again.status).toBe(200);
    const [content] = await apiEndpointClient(emulator.url)
      .bucket('names')
      .file('raw-resumable.txt')
      .download();
    expect(content.toString()).toBe('abcdefgh');
  });

  it('lets exactly one of two concurrent create-if-absent saves win', async () => {
    const file = apiEndpointClient(emulator.url).bucket('names').file('race.jsonl');
    const results = await Promise.allSettled(
      ['left', 'right'].map((text) =>
        file.save(text, { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected');
    expect((rejected?.reason as { code?: unknown } | undefined)?.code).toBe(412);
  });
});

describe('storage emulator persistence and reset', () => {
  it('keeps objects across a restart and forgets everything on reset()', async () => {
    const root = await mkdtemp(join(tmpdir(), 'storage-emulator-persist-'));
    try {
      const first = await startStorageEmulator({ root });
      await first.createBucket('persisted');
      const file = apiEndpointClient(first.url).bucket('persisted').file('kept/x.jsonl');
      await file.save('kept', { resumable: false, metadata: { metadata: { model: 'm' } } });
      const [before] = await file.getMetadata();
      await first.close();

      const second = await startStorageEmulator({ root });
      try {
        const again = apiEndpointClient(second.url).bucket('persisted').file('kept/x.jsonl');
        const [after] = await again.getMetadata();
        expect(after).toMatchObject({
          generation: before.generation,
          md5Hash: before.md5Hash,
          metadata: { model: 'm' },
        });
        expect((await again.download())[0].toString()).toBe('kept');
        // New generations stay above the loaded ones.
        await again.save('newer', { resumable: false });
        expect(BigInt(String((await again.getMetadata())[0].generation))).toBeGreaterThan(
          BigInt(String(before.generation)),
        );

        await second.reset();
        expect(await statusOf(again.getMetadata())).toBe(404);
        expect((await apiEndpointClient(second.url).bucket('persisted').exists())[0]).toBe(false);
        expect((await readdir(root)).sort()).toEqual(['.buckets', '.meta', '.tmp', '.uploads']);
      } finally {
        await second.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP target that answers with `statuses` in turn (the last one repeats). */
async function startTarget(statuses: number[]): Promise<{
  url: string;
  requests: Received[];
  nextRequest: () => Promise<Received>;
  close: () => Promise<void>;
}> {
  const requests: Received[] = [];
  let waiters: Array<(r: Received) => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(received);
      const status = statuses[Math.min(requests.length - 1, statuses.length - 1)] ?? 204;
      res.writeHead(status).end();
      const current = waiters;
      waiters = [];
      for (const w of current) w(received);
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

/** The object of /work/shared/samples/gcs-finalize-event.http. */
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
  timeStorageClassUpdated: '2026-11-26T09:41:07.498Z',
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

  it('retries 500s with the same ce-id and the headers and body of the sample', async () => {
    const target = await startTarget([500, 500, 204]);
    const lines: Record<string, unknown>[] = [];
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      retry: quickRetry,
      log: (l) => lines.push(l as Record<string, unknown>),
    });
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
        const body = JSON.parse(request.body) as Record<string, unknown>;
        expect(body).toEqual(SAMPLE_OBJECT);
        expect(typeof body.generation).toBe('string');
        expect(typeof body.size).toBe('string');
      }
      expect(delivery.stats).toEqual({ delivered: 1, retried: 2, failed: 0 });
      expect(lines.map((l) => l.event)).toEqual([
        'eventarc.retry',
        'eventarc.retry',
        'eventarc.delivered',
      ]);
    } finally {
      delivery.close();
      await target.close();
    }
  });

  it('doubles the delay up to maxDelayMs and gives up after maxAttempts', async () => {
    const target = await startTarget([503]);
    const lines: Record<string, unknown>[] = [];
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      retry: { initialDelayMs: 5, maxDelayMs: 12, maxAttempts: 5 },
      log: (l) => lines.push(l as Record<string, unknown>),
    });
    try {
      delivery.deliver(SAMPLE_OBJECT);
      await delivery.idle();
      expect(target.requests).toHaveLength(5);
      expect(lines.filter((l) => l.event === 'eventarc.retry').map((l) => l.delayMs)).toEqual([
        5, 10, 12, 12,
      ]);
      expect(lines.at(-1)).toMatchObject({
        event: 'eventarc.failed',
        severity: 'ERROR',
        attempt: 5,
      });
      expect(delivery.stats).toEqual({ delivered: 0, retried: 4, failed: 1 });
    } finally {
      delivery.close();
      await target.close();
    }
  });

  it('retries 429 and network errors, drops a 400 without retry', async () => {
    const throttled = await startTarget([429, 200]);
    const refused = await startTarget([400]);
    const lines: Record<string, unknown>[] = [];
    const log = (l: object): void => void lines.push(l as Record<string, unknown>);
    const toThrottled = createEventarcDelivery({
      targetUrl: throttled.url,
      retry: quickRetry,
      log,
    });
    const toRefused = createEventarcDelivery({ targetUrl: refused.url, retry: quickRetry, log });
    const unreachable = createEventarcDelivery({
      targetUrl: `http://127.0.0.1:${await freePort()}/`,
      retry: { initialDelayMs: 1, maxAttempts: 2 },
      log,
    });
    try {
      toThrottled.deliver(SAMPLE_OBJECT);
      toRefused.deliver(SAMPLE_OBJECT);
      unreachable.deliver(SAMPLE_OBJECT);
      await Promise.all([toThrottled.idle(), toRefused.idle(), unreachable.idle()]);
      expect(throttled.requests).toHaveLength(2);
      expect(toThrottled.stats).toEqual({ delivered: 1, retried: 1, failed: 0 });
      expect(refused.requests).toHaveLength(1);
      expect(toRefused.stats).toEqual({ delivered: 0, retried: 0, failed: 1 });
      expect(lines).toContainEqual(
        expect.objectContaining({ event: 'eventarc.dropped', status: 400 }),
      );
      expect(unreachable.stats).toEqual({ delivered: 0, retried: 1, failed: 1 });
      expect(lines).toContainEqual(
        expect.objectContaining({
          event: 'eventarc.retry',
          status: null,
          error: expect.stringMatching(/fetch failed|ECONNREFUSED/) as unknown,
        }),
      );
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
      log: () => undefined,
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
      expect(delivery.stats.delivered).toBe(2);
    } finally {
      delivery.close();
      await target.close();
    }
    expect(encodeHeaderValue('Euro € 😀')).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
    expect(storageFinalizedRequest(SAMPLE_OBJECT, '1').headers['ce-subject']).toBe(
      'objects/inputs/2026-11-26/customer-reviews.jsonl',
    );
  });

  it('close() cancels pending retries so idle() resolves', async () => {
    const target = await startTarget([500]);
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      retry: { initialDelayMs: 60_000 },
      log: () => undefined,
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

  it('delivers what the emulator finalizes, as the stack wires them', async () => {
    const target = await startTarget([204]);
    const root = await mkdtemp(join(tmpdir(), 'storage-emulator-eventarc-'));
    const delivery = createEventarcDelivery({
      targetUrl: target.url,
      bucket: 'watched',
      retry: quickRetry,
      log: () => undefined,
    });
    const emulator = await startStorageEmulator({ root, onFinalize: (o) => delivery.deliver(o) });
    try {
      await emulator.createBucket('watched');
      const file = apiEndpointClient(emulator.url).bucket('watched').file('inputs/x.jsonl');
      await file.save('{"request":{}}\n', {
        resumable: false,
        metadata: { metadata: { model: 'm' } },
      });
      await file.setMetadata({ metadata: { note: 'patched' } }); // no finalize event
      await delivery.idle();
      expect(target.requests).toHaveLength(1);
      const [request] = target.requests;
      const body = JSON.parse(request?.body ?? '{}') as ObjectResource;
      expect(body).toMatchObject({
        bucket: 'watched',
        name: 'inputs/x.jsonl',
        metageneration: '1',
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
