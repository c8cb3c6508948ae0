/**
 * Integrity of downloads: the Cloud Storage reader, with the client settings of the deployed
 * functions (the fast CRC32C), refuses bytes that do not match the object's CRC32C, even when they
 * still look like a valid input, and reads intact bytes unchanged. The server here answers like
 * Cloud Storage's media download (`x-goog-hash`, `x-goog-stored-content-encoding`), and can damage
 * one byte on the way.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CRC32C, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastCrc32cGenerator } from '../../shared/adapters/crc32c.js';
import { createGcsObjectReader } from '../../shared/adapters/gcs-objects.js';
import { TransientError } from '../../shared/core/errors.js';
import { validateJsonl } from '../../shared/core/jsonl.js';

const LINE =
  '{"request":{"contents":[{"role":"user","parts":[{"text":"Is this review positive?"}]}]}}\n';
/** Large enough to arrive in many chunks. */
const CONTENT = Buffer.from(LINE.repeat(20_000));

let server: Server;
let damage = false;
let previous: string | undefined;
beforeAll(async () => {
  const crc = new CRC32C();
  crc.update(CONTENT);
  const md5 = createHash('md5').update(CONTENT).digest('base64');
  server = createServer((req, res) => {
    if (!req.url?.includes('alt=media')) {
      res.writeHead(404).end();
      return;
    }
    const body = Buffer.from(CONTENT);
    // "positive" → "pOsitive" on the last line: still valid JSONL, but not the stored bytes.
    if (damage) body[body.length - 20] = 'O'.charCodeAt(0);
    res.writeHead(200, {
      'content-type': 'application/jsonl',
      'content-length': body.length,
      'x-goog-generation': '7',
      'x-goog-hash': `crc32c=${crc.toString()},md5=${md5}`,
      'x-goog-stored-content-encoding': 'identity',
      'x-goog-stored-content-length': body.length,
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

/** The reader as functions/dependencies.ts builds it. */
const reader = () =>
  createGcsObjectReader(
    new Storage({ projectId: 'demo-batch-courier', crc32cGenerator: fastCrc32cGenerator }),
  );

describe('Cloud Storage reads are checked against the object CRC32C', () => {
  it('intact bytes are read unchanged', async () => {
    damage = false;
    const chunks: Uint8Array[] = [];
    for await (const chunk of reader().read('acme-in', 'inputs/a.jsonl', '7')) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(Buffer.concat(chunks).equals(CONTENT)).toBe(true);
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
});
