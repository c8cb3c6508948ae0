/**
 * The BigQuery REST client over the wire against the local BigQuery emulator (`local/bigquery/`):
 * datasets, tables and rows seeded in process, then read back through google-auth-library with a
 * static token: metadata, every row over several pages, missing tables and datasets, and the
 * emulator's injected faults.
 */
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createBigQueryClient,
  type BigQueryClientOptions,
} from '../../shared/adapters/bigquery-rest-client.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import type { TableRef } from '../../shared/ports.js';
import { startBigQueryEmulator, type BigQueryEmulator } from '../../local/bigquery-emulator.js';

function staticAuth(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600_000 });
  return client;
}

const PROJECT = 'acme-prod';
const PROMPTS: TableRef = { project: PROJECT, dataset: 'sales', table: 'prompts' };
const COUNT = 25;

/** The rows seeded: `request` a JSON column, `label` NULL in every fifth row. */
const SEEDED = Array.from({ length: COUNT }, (_, i) => ({
  id: i + 1,
  request: { contents: [{ role: 'user', parts: [{ text: `Review ${i + 1}: great value` }] }] },
  label: i % 5 === 4 ? null : `label-${i + 1}`,
  notes: `n${i + 1}`,
}));

let emulator: BigQueryEmulator;

function client(options: Partial<BigQueryClientOptions> = {}) {
  return createBigQueryClient({ auth: staticAuth(), emulatorHost: emulator.host, ...options });
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

beforeAll(async () => {
  emulator = await startBigQueryEmulator();
  const { store } = emulator;
  store.createDataset(PROJECT, 'sales', 'us-central1');
  store.createDataset(PROJECT, 'europe', 'EU');
  store.createTable(PROMPTS, [
    { name: 'id', type: 'INT64', mode: 'REQUIRED' },
    { name: 'request', type: 'JSON' },
    { name: 'label', type: 'STRING', mode: 'NULLABLE' },
    { name: 'notes', type: 'STRING' },
  ]);
  store.insertRows(PROMPTS, SEEDED);
  store.createTable({ project: PROJECT, dataset: 'europe', table: 'empty' }, [
    { name: 'request', type: 'STRING' },
  ]);
});
afterAll(() => emulator.close());
beforeEach(() => emulator.reset());

describe('BigQuery REST client against the local BigQuery emulator', () => {
  it('table: columns in schema order with their modes, row count, location, modified time and kind', async () => {
    const table = await client().table(PROMPTS);
    expect(table).toMatchObject({
      columns: [
        { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
        { name: 'label', type: 'STRING', mode: 'NULLABLE' },
        { name: 'notes', type: 'STRING', mode: 'NULLABLE' },
      ],
      rowCount: COUNT,
      location: 'us-central1',
      kind: 'TABLE',
    });
    expect(table!.modified).toMatch(/^\d{13}$/);
    expect(Number(table!.modified)).toBeLessThanOrEqual(Date.now());
    expect(emulator.requests['tables.get']).toBe(1);
  });

  it('an empty table in a multi-region dataset: 0 rows, location EU, no rows read', async () => {
    const ref = { project: PROJECT, dataset: 'europe', table: 'empty' };
    await expect(client().table(ref)).resolves.toMatchObject({ rowCount: 0, location: 'EU' });
    await expect(collect(client().rows(ref, ['request']))).resolves.toEqual([]);
  });

  it('dataset: its location', async () => {
    await expect(client().dataset({ project: PROJECT, dataset: 'sales' })).resolves.toEqual({
      location: 'us-central1',
    });
    await expect(client().dataset({ project: PROJECT, dataset: 'europe' })).resolves.toEqual({
      location: 'EU',
    });
  });

  it('a missing table, a table of a missing dataset and a missing dataset are undefined', async () => {
    const bq = client();
    await expect(bq.table({ ...PROMPTS, table: 'nope' })).resolves.toBeUndefined();
    await expect(bq.table({ ...PROMPTS, dataset: 'nope' })).resolves.toBeUndefined();
    await expect(bq.dataset({ project: PROJECT, dataset: 'nope' })).resolves.toBeUndefined();
    expect(emulator.requests['tables.get']).toBe(2); // a 404 is an answer: not retried
  });

  it('every row over several pages, cells in the order asked, JSON as its text, NULL as null', async () => {
    const rows = await collect(client({ pageRows: 10 }).rows(PROMPTS, ['label', 'request']));
    expect(rows).toHaveLength(COUNT);
    expect(rows).toEqual(SEEDED.map((r) => [r.label, JSON.stringify(r.request)]));
    expect(emulator.requests['tables.get']).toBe(1);
    expect(emulator.requests['tabledata.list']).toBe(3); // 10 + 10 + 5
  });

  it('the http:// form of the emulator host works alike', async () => {
    const rows = await collect(
      createBigQueryClient({ auth: staticAuth(), emulatorHost: `${emulator.url}/` }).rows(PROMPTS, [
        'id',
      ]),
    );
    expect(rows.map((r) => r[0])).toEqual(SEEDED.map((r) => String(r.id)));
  });

  it('a consumer that stops early leaves the later pages unread', async () => {
    let seen = 0;
    for await (const row of client({ pageRows: 10 }).rows(PROMPTS, ['id'])) {
      expect(row).toEqual([String(++seen)]);
      if (seen === 12) break;
    }
    expect(emulator.requests['tabledata.list']).toBe(2);
  });

  it('a column the table lacks is refused before any page is read', async () => {
    const err = await collect(client().rows(PROMPTS, ['request', 'prompt'])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'BIGQUERY.INVALID_ARGUMENT' });
    expect(emulator.requests['tabledata.list']).toBe(0);
  });

  it('faults: a 503 on a page is retried; a 403 is PERMISSION_DENIED naming the role; a 400 is permanent', async () => {
    emulator.inject({ op: 'tabledata.list', status: 503 });
    const rows = await collect(client({ pageRows: 10 }).rows(PROMPTS, ['id']));
    expect(rows).toHaveLength(COUNT);
    expect(emulator.requests['tabledata.list']).toBe(4);

    emulator.inject({ op: 'tables.get', status: 403 });
    await expect(client().table(PROMPTS)).rejects.toMatchObject({
      code: 'BIGQUERY.PERMISSION_DENIED',
      message: expect.stringContaining('roles/bigquery.dataViewer'),
    });

    emulator.inject({ op: 'datasets.get', status: 400, message: 'Invalid dataset ID.' });
    const err = await client()
      .dataset({ project: PROJECT, dataset: 'sales' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('Invalid dataset ID.');
  });

  it('a table deleted between pages: TransientError with status 404 after the rows of page 1', async () => {
    const bq = client({ pageRows: 10 });
    const got: (string | null)[][] = [];
    const iterator = bq.rows(PROMPTS, ['id'])[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) got.push((await iterator.next()).value as (string | null)[]);
    emulator.inject({
      op: 'tabledata.list',
      status: 404,
      message: 'Not found: Table acme-prod:sales.prompts',
    });
    const err = await iterator.next().catch((e: unknown) => e);
    expect(got).toEqual(SEEDED.slice(0, 10).map((r) => [String(r.id)]));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE', status: 404 });
    expect(emulator.requests['tabledata.list']).toBe(2); // not retried
  });

  it('a page that never comes ends within the read bound', async () => {
    emulator.inject({ op: 'tabledata.list', hang: true, times: 10 });
    const started = performance.now();
    const err = await collect(
      client({ timeoutMs: 300, totalTimeoutMs: 1000 }).rows(PROMPTS, ['id']),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
    expect(performance.now() - started).toBeLessThan(1500);
  });
});

describe('BigQuery REST client against an emulator whose pages end by size', () => {
  let small: BigQueryEmulator;
  beforeAll(async () => {
    small = await startBigQueryEmulator({ maxPageBytes: 2_000 });
    small.store.createDataset(PROJECT, 'sales', 'us-central1');
    small.store.createTable(PROMPTS, [{ name: 'request', type: 'STRING' }]);
    small.store.insertRows(
      PROMPTS,
      Array.from({ length: 10 }, (_, i) => ({ request: `${i}:${'x'.repeat(900)}` })),
    );
  });
  afterAll(() => small.close());

  it('a page shorter than asked is not the last one: the page token says so', async () => {
    const bq = createBigQueryClient({ auth: staticAuth(), emulatorHost: small.host });
    const rows = await collect(bq.rows(PROMPTS, ['request']));
    expect(rows.map((r) => r[0]!.split(':')[0])).toEqual(
      Array.from({ length: 10 }, (_, i) => String(i)),
    );
    expect(small.requests['tabledata.list']).toBeGreaterThan(2);
  });
});
