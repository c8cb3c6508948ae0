/**
 * What the results digest asks of Cloud Storage, over the wire with the unmodified client against
 * the builtin storage emulator: listing a folder, a streamed create-only write, a delete.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGcsObjectReader, createGcsObjectWriter } from '../../shared/adapters/gcs-objects.js';
import { startStorageEmulator, type StorageEmulator } from '../../local/storage/server.js';

describe('Cloud Storage for the digest over the wire (builtin storage emulator)', () => {
  let emulator: StorageEmulator;
  let storage: Storage;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'bc-digest-wire-'));
    emulator = await startStorageEmulator({ root });
    process.env.STORAGE_EMULATOR_HOST = emulator.url;
    storage = new Storage({ projectId: 'demo-batch-courier' });
    await emulator.createBucket('acme-out');
  });
  afterAll(async () => {
    delete process.env.STORAGE_EMULATOR_HOST;
    await emulator.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function* chunks(n: number, size: number): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < n; i++) yield Buffer.alloc(size, 97 + (i % 26));
  }

  it('streams a large object in, create only: a second write keeps the first', async () => {
    const writer = createGcsObjectWriter(storage);
    const reader = createGcsObjectReader(storage);
    const uri = 'gs://acme-out/results/job-1/results.jsonl';
    await writer.writeStream(uri, chunks(64, 64 * 1024), 'application/jsonl');
    await writer.writeStream(uri, chunks(1, 10), 'application/jsonl');
    const [listed] = await reader.list('acme-out', 'results/job-1/results.jsonl');
    expect(listed).toMatchObject({ name: 'results/job-1/results.jsonl', size: 64 * 64 * 1024 });
    let bytes = 0;
    for await (const c of reader.read('acme-out', listed!.name, listed!.generation))
      bytes += c.length;
    expect(bytes).toBe(64 * 64 * 1024);
  });

  it('a source that fails mid-stream creates nothing', async () => {
    const writer = createGcsObjectWriter(storage);
    const reader = createGcsObjectReader(storage);
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(1024, 97);
      throw new Error('the digest failed');
    }
    await expect(
      writer.writeStream(
        'gs://acme-out/results/job-2/results.jsonl',
        broken(),
        'application/jsonl',
      ),
    ).rejects.toMatchObject({ code: 'STORAGE.UNAVAILABLE' });
    expect(await reader.list('acme-out', 'results/job-2/')).toEqual([]);
  });

  it('lists a folder in name order with generations and sizes; deletes are idempotent', async () => {
    const writer = createGcsObjectWriter(storage);
    const reader = createGcsObjectReader(storage);
    for (const name of ['b.jsonl', 'a.jsonl', 'c/x.jsonl']) {
      await writer.write(`gs://acme-out/dir/${name}`, 'xyz\n', 'application/jsonl');
    }
    const listed = await reader.list('acme-out', 'dir/');
    expect(listed.map((o) => [o.name, o.size])).toEqual([
      ['dir/a.jsonl', 4],
      ['dir/b.jsonl', 4],
      ['dir/c/x.jsonl', 4],
    ]);
    expect(listed.every((o) => /^\d+$/.test(o.generation))).toBe(true);
    await writer.remove('gs://acme-out/dir/a.jsonl');
    await writer.remove('gs://acme-out/dir/a.jsonl');
    expect((await reader.list('acme-out', 'dir/')).map((o) => o.name)).toEqual([
      'dir/b.jsonl',
      'dir/c/x.jsonl',
    ]);
    expect(await reader.list('no-such-bucket', '')).toEqual([]);
  });
});
