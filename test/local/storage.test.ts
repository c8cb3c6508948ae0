/**
 * The local Cloud Storage emulator, driven by the real `@google-cloud/storage` client in both of its
 * endpoint styles, and over raw HTTP where the client does not reach.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  crc32cBase64,
  startStorageEmulator,
  type ObjectResource,
  type StorageEmulator,
} from '../../local/storage/server.js';

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

/** The HTTP status of a client error (`code` on ApiError, `status` on a gaxios error). */
async function statusOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    const e = err as { code?: unknown; status?: unknown };
    return typeof e.code === 'number' ? e.code : e.status;
  }
  throw new Error('expected the call to fail');
}

/** Every file under `dir`, as `/`-separated relative paths. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

it('crc32cBase64 (the client library CRC32C) gives the standard check value', () => {
  // CRC-32C of "123456789" is 0xE3069283.
  expect(Buffer.from(crc32cBase64(Buffer.from('123456789')), 'base64').toString('hex')).toBe(
    'e3069283',
  );
  expect(crc32cBase64(Buffer.alloc(0))).toBe('AAAAAA==');
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
    for (const bucket of ['style-host', 'style-endpoint', 'names', 'other']) {
      await emulator.createBucket(bucket);
    }
    await emulator.createBucket('names'); // idempotent
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
      const message = 'The specified bucket does not exist.';
      expect(await res.json()).toEqual({
        error: { code: 404, message, errors: [{ message, domain: 'global', reason: 'notFound' }] },
      });
    }
    // Calls the product does not make are not implemented.
    expect((await fetch(`${emulator.url}/storage/v1/b`)).status).toBe(404);
    expect((await fetch(`${emulator.url}/b/names/o`, { method: 'DELETE' })).status).toBe(405);
    expect((await fetch(`${emulator.url}/b/names/o/x`, { method: 'PATCH' })).status).toBe(405);
  });

  const styles = [
    { style: 'STORAGE_EMULATOR_HOST', client: emulatorHostClient, bucket: 'style-host' },
    { style: 'apiEndpoint', client: apiEndpointClient, bucket: 'style-endpoint' },
  ] as const;

  for (const { style, client, bucket: bucketName } of styles) {
    describe(`with the client in ${style} style`, () => {
      let storage: Storage;
      beforeAll(() => {
        storage = client(emulator.url);
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
        const [meta2] = await resumable.getMetadata();
        expect(meta2.metadata).toEqual({ location: 'europe-west4' });
        expect(BigInt(String(meta2.generation))).toBeGreaterThan(BigInt(String(meta.generation)));
        expect(finalized.map((o) => o.name)).toEqual(
          expect.arrayContaining(['inputs/plain.jsonl', 'inputs/resumable.jsonl']),
        );
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
        const at = (generation: unknown) =>
          storage.bucket(bucketName).file('gen.txt', { generation: Number(generation) });
        expect((await at(second.generation).download())[0].toString()).toBe('second');
        expect(await statusOf(at(first.generation).download())).toBe(404);
        expect(await statusOf(at(first.generation).getMetadata())).toBe(404);
        expect((await at(first.generation).exists())[0]).toBe(false);
      });

      it('lists with a prefix', async () => {
        const bucket = storage.bucket(bucketName);
        const names = ['list/a.jsonl', 'list/b.jsonl', 'list/c/1.jsonl', 'list/d.jsonl'];
        for (const name of [...names].reverse())
          await bucket.file(name).save(name, { resumable: false });
        const [all] = await bucket.getFiles({ prefix: 'list/' });
        expect(all.map((f) => f.name)).toEqual(names);
        const [none] = await bucket.getFiles({ prefix: 'nothing/' });
        expect(none).toEqual([]);
      });

      it('copies one generation (rewrite), across buckets, create-only with ifGenerationMatch 0', async () => {
        const bucket = storage.bucket(bucketName);
        const src = bucket.file('ops/source.jsonl');
        await src.save('payload', { resumable: false, metadata: { metadata: { k: 'v' } } });
        const [{ generation }] = await src.getMetadata();
        await src.save('newer', { resumable: false });
        const before = finalized.length;
        const pinned = bucket.file('ops/source.jsonl', { generation: Number(generation) });
        expect(await statusOf(pinned.copy(bucket.file('ops/copy.jsonl')))).toBe(404);

        const [{ generation: live }] = await src.getMetadata();
        const dest = storage.bucket('other').file(`from-${bucketName}.jsonl`);
        const copyLive = () =>
          bucket
            .file('ops/source.jsonl', { generation: Number(live) })
            .copy(dest, { preconditionOpts: { ifGenerationMatch: 0 } });
        await copyLive();
        expect((await dest.download())[0].toString()).toBe('newer');
        expect((await dest.getMetadata())[0]).toMatchObject({ size: '5', md5Hash: md5('newer') });
        expect(await statusOf(copyLive())).toBe(412);
        expect(finalized.slice(before).map((o) => o.name)).toEqual([`from-${bucketName}.jsonl`]);
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

      it('deletes with file.delete(): 404 when absent, honouring generation and ifGenerationMatch', async () => {
        const bucket = storage.bucket(bucketName);
        const file = bucket.file('tmp/digest/part-1.jsonl');
        await file.save('one', { resumable: false });
        const [{ generation }] = await file.getMetadata();
        const stale = Number(generation) - 1;

        // A generation that is not the live one is absent; a precondition that fails keeps it.
        expect(await statusOf(bucket.file(file.name, { generation: stale }).delete())).toBe(404);
        expect(await statusOf(file.delete({ ifGenerationMatch: stale }))).toBe(412);
        expect((await file.exists())[0]).toBe(true);

        await bucket
          .file(file.name, { generation: Number(generation) })
          .delete({ ifGenerationMatch: Number(generation) });
        expect((await file.exists())[0]).toBe(false);
        expect(await statusOf(file.download())).toBe(404);
        expect(await statusOf(file.delete())).toBe(404);
        await file.delete({ ignoreNotFound: true });
        const [listed] = await bucket.getFiles({ prefix: 'tmp/digest/' });
        expect(listed).toEqual([]);

        // The name can be used again, with a newer generation.
        await file.save('two', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
        const [again] = await file.getMetadata();
        expect(BigInt(String(again.generation))).toBeGreaterThan(BigInt(String(generation)));
        expect((await file.download())[0].toString()).toBe('two');
        await file.delete();
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
        const downloaded = createHash('md5');
        for await (const chunk of file.createReadStream({ validation: 'crc32c' })) {
          downloaded.update(chunk as Buffer);
        }
        expect(downloaded.digest('base64')).toBe(meta.md5Hash);
      });
    });
  }

  it('round-trips awkward names and keeps every byte inside the root', async () => {
    const bucket = apiEndpointClient(emulator.url).bucket('names');
    const safe = ['with space.jsonl', 'ünïcødé/文件 1.jsonl', 'a+b=c&d?e#f.jsonl'];
    const unsafe = [
      '../x',
      'a/../../b',
      '/leading',
      'dir/',
      'a//b',
      '.encoded/x',
      './dot',
      'nul\u0000',
    ];
    for (const name of [...safe, ...unsafe]) {
      await bucket.file(name).save(`content of ${name}`, { resumable: name.length % 2 === 0 });
    }
    const [listed] = await bucket.getFiles();
    expect(listed.map((f) => f.name).sort()).toEqual([...safe, ...unsafe].sort());
    for (const name of [...safe, ...unsafe]) {
      const file = bucket.file(name);
      expect((await file.download())[0].toString()).toBe(`content of ${name}`);
      expect((await file.getMetadata())[0].name).toBe(name);
    }
    const stored = await files(join(root, 'names'));
    expect(stored.filter((f) => !f.startsWith('.encoded/')).sort()).toEqual(safe.sort());
    expect(stored.filter((f) => f.startsWith('.encoded/'))).toHaveLength(unsafe.length);
    // Nothing was written next to the root.
    expect(await readdir(parent)).toEqual(['storage']);
  });

  it('refuses names Cloud Storage refuses (CR/LF, "." and "..") without keeping anything', async () => {
    const bucket = apiEndpointClient(emulator.url).bucket('names');
    for (const name of ['line\nbreak.jsonl', 'carriage\rreturn', '.', '..']) {
      for (const resumable of [false, true]) {
        expect(await statusOf(bucket.file(name).save('x', { resumable }))).toBe(400);
      }
    }
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
    // The client may send bytes the server already has again; they replace the stored ones.
    const last = await put('bytes 2-7/8', 'cdefgh');
    expect(last.status).toBe(200);
    expect(((await last.json()) as ObjectResource).size).toBe('8');
    expect((await put('bytes */8', '')).status).toBe(200);
    const [content] = await apiEndpointClient(emulator.url)
      .bucket('names')
      .file('raw-resumable.txt')
      .download();
    expect(content.toString()).toBe('abcdefgh');
  });

  it('answers DELETE with 204 and no body, and removes the bytes and emptied folders', async () => {
    const bucket = apiEndpointClient(emulator.url).bucket('names');
    await bucket.file('gone/deep/x.jsonl').save('x', { resumable: false });
    await bucket.file('gone/kept.jsonl').save('k', { resumable: false });
    await bucket.file('../encoded-gone').save('e', { resumable: false });
    const before = await files(join(root, 'names'));
    expect(before).toContain('gone/deep/x.jsonl');

    for (const path of [
      '/storage/v1/b/names/o/gone%2Fdeep%2Fx.jsonl',
      `/b/names/o/${encodeURIComponent('../encoded-gone')}`,
    ]) {
      const res = await fetch(`${emulator.url}${path}`, { method: 'DELETE' });
      expect(res.status, path).toBe(204);
      expect(await res.text()).toBe('');
      const again = await fetch(`${emulator.url}${path}`, { method: 'DELETE' });
      expect(again.status).toBe(404);
      expect(((await again.json()) as { error: { code: number } }).error.code).toBe(404);
    }
    const after = await files(join(root, 'names'));
    expect(before.filter((f) => !after.includes(f))).toHaveLength(2);
    expect(after).toContain('gone/kept.jsonl');
    expect(await readdir(join(root, 'names', 'gone'))).toEqual(['kept.jsonl']);
    const missingBucket = await fetch(`${emulator.url}/b/missing-bucket/o/x`, {
      method: 'DELETE',
    });
    expect(missingBucket.status).toBe(404);
    const badPrecondition = await fetch(
      `${emulator.url}/storage/v1/b/names/o/gone%2Fkept.jsonl?ifGenerationMatch=0`,
      { method: 'DELETE' },
    );
    expect(badPrecondition.status).toBe(412);
    expect((await bucket.file('gone/kept.jsonl').exists())[0]).toBe(true);
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

it('starts with no objects; the files of an earlier run stay on disk', async () => {
  const root = await mkdtemp(join(tmpdir(), 'storage-emulator-restart-'));
  try {
    const first = await startStorageEmulator({ root });
    await first.createBucket('kept');
    const save = (url: string, text: string) =>
      apiEndpointClient(url).bucket('kept').file('a/x.jsonl').save(text, { resumable: false });
    await save(first.url, 'first');
    const [before] = await apiEndpointClient(first.url)
      .bucket('kept')
      .file('a/x.jsonl')
      .getMetadata();
    await first.close();

    const second = await startStorageEmulator({ root });
    try {
      await second.createBucket('kept');
      const file = apiEndpointClient(second.url).bucket('kept').file('a/x.jsonl');
      expect((await file.exists())[0]).toBe(false);
      expect(await readFile(join(root, 'kept', 'a', 'x.jsonl'), 'utf8')).toBe('first');
      await save(second.url, 'second');
      const [after] = await file.getMetadata();
      expect(BigInt(String(after.generation))).toBeGreaterThan(BigInt(String(before.generation)));
      expect(await readFile(join(root, 'kept', 'a', 'x.jsonl'), 'utf8')).toBe('second');
    } finally {
      await second.close();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
