/**
 * The local BigQuery emulator over real HTTP, on the production paths: datasets, tables, rows
 * streamed with insertAll and read back with tabledata.list (cells, paging, selected fields), the
 * error bodies, fault injection, and seeding in process.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  startBigQueryEmulator,
  type BigQueryEmulator,
  type BigQueryEmulatorOptions,
  type BigQueryFault,
} from '../../local/bigquery/server.js';

type Json = Record<string, unknown>;

interface Answer {
  status: number;
  body: Json;
}

const P = 'demo-project';
const running: BigQueryEmulator[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()));
});

async function start(options: BigQueryEmulatorOptions = {}): Promise<BigQueryEmulator> {
  const emu = await startBigQueryEmulator(options);
  running.push(emu);
  return emu;
}

async function call(
  emu: BigQueryEmulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(`${emu.url}/bigquery/v2${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Json) };
}

const datasetBody = (dataset: string, location?: string): Json => ({
  datasetReference: { projectId: P, datasetId: dataset },
  ...(location ? { location } : {}),
});

const tableBody = (dataset: string, table: string, fields: unknown[]): Json => ({
  tableReference: { projectId: P, datasetId: dataset, tableId: table },
  schema: { fields },
});

const tablePath = (dataset: string, table: string): string =>
  `/projects/${P}/datasets/${dataset}/tables/${table}`;

/** Google's error body, checked to be whole and consistent; returns its only `errors` entry. */
function bigQueryError(res: Answer, code: number, status: string, reason: string): string {
  expect(Object.keys(res.body)).toEqual(['error']);
  const error = res.body.error as Json;
  expect(res.status).toBe(code);
  expect(error).toEqual({
    code,
    message: expect.any(String),
    status,
    errors: [{ message: error.message, domain: 'global', reason }],
  });
  return error.message as string;
}

/** A dataset `d` with a table `t` of these columns, over HTTP. */
async function withTable(emu: BigQueryEmulator, fields: unknown[]): Promise<void> {
  expect((await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('d'))).status).toBe(200);
  const created = await call(
    emu,
    'POST',
    `/projects/${P}/datasets/d/tables`,
    tableBody('d', 't', fields),
  );
  expect(created.status, JSON.stringify(created.body)).toBe(200);
}

const insertAll = (emu: BigQueryEmulator, body: Json): Promise<Answer> =>
  call(emu, 'POST', `${tablePath('d', 't')}/insertAll`, body);

const rowsOf = (...jsons: Json[]): Json => ({ rows: jsons.map((json) => ({ json })) });

/** The cell values of a tabledata.list answer. */
const values = (res: Answer): unknown[][] =>
  ((res.body.rows ?? []) as { f: { v: unknown }[] }[]).map((r) => r.f.map((c) => c.v));

describe('bigquery emulator', () => {
  it('answers readiness, exposes the host form, and 404s unknown paths and methods', async () => {
    const emu = await start();
    expect(emu.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(emu.url).toBe(`http://${emu.host}`);
    const ready = await fetch(`${emu.url}/`);
    expect(await ready.text()).toBe('Ok');
    for (const [method, path] of [
      ['GET', `/projects/${P}/jobs`],
      ['DELETE', `/projects/${P}/datasets/d`],
      ['GET', `/projects/${P}/datasets/d/tables/t/rows`],
      ['PUT', `/projects/${P}/datasets`],
    ] as const) {
      bigQueryError(await call(emu, method, path), 404, 'NOT_FOUND', 'notFound');
    }
    const bare = await fetch(`${emu.url}/v2/projects/${P}/datasets/d`);
    expect(bare.status).toBe(404);
  });

  it('inserts and gets datasets: US by default, locations spelled as BigQuery does', async () => {
    const emu = await start();
    const created = await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('plain'));
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      kind: 'bigquery#dataset',
      id: `${P}:plain`,
      datasetReference: { projectId: P, datasetId: 'plain' },
      location: 'US',
      creationTime: expect.stringMatching(/^\d{13}$/),
      lastModifiedTime: expect.stringMatching(/^\d{13}$/),
      type: 'DEFAULT',
    });
    expect((await call(emu, 'GET', `/projects/${P}/datasets/plain`)).body).toEqual(created.body);
    await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('eu', 'eu'));
    await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('regional', 'US-Central1'));
    expect((await call(emu, 'GET', `/projects/${P}/datasets/eu`)).body.location).toBe('EU');
    expect((await call(emu, 'GET', `/projects/${P}/datasets/regional`)).body.location).toBe(
      'us-central1',
    );

    const again = await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('plain', 'EU'));
    expect(bigQueryError(again, 409, 'ALREADY_EXISTS', 'duplicate')).toBe(
      `Already Exists: Dataset ${P}:plain`,
    );
    const missing = await call(emu, 'GET', `/projects/${P}/datasets/nope`);
    expect(bigQueryError(missing, 404, 'NOT_FOUND', 'notFound')).toBe(
      `Not found: Dataset ${P}:nope`,
    );
    // Another project is another namespace.
    expect((await call(emu, 'GET', '/projects/other-project/datasets/plain')).status).toBe(404);

    for (const body of [
      datasetBody('has-dash'),
      { datasetReference: { projectId: 'other-project', datasetId: 'x' } },
      { location: 'US' },
      '[]',
    ]) {
      const res = await call(emu, 'POST', `/projects/${P}/datasets`, body);
      bigQueryError(res, 400, 'INVALID_ARGUMENT', 'invalid');
    }
    const malformed = await call(emu, 'POST', `/projects/${P}/datasets`, '{"datasetReference": ');
    bigQueryError(malformed, 400, 'INVALID_ARGUMENT', 'parseError');
  });

  it('inserts and gets tables with the legacy type names, string counts and the dataset location', async () => {
    const emu = await start();
    await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('d', 'us-central1'));
    const fields = [
      { name: 'id', type: 'INT64', mode: 'REQUIRED' },
      { name: 'request', type: 'JSON' },
      { name: 'score', type: 'float64' },
      { name: 'ok', type: 'BOOL' },
      { name: 'meta', type: 'STRUCT', fields: [{ name: 'source', type: 'STRING' }] },
      { name: 'tags', type: 'STRING', mode: 'REPEATED' },
    ];
    const created = await call(
      emu,
      'POST',
      `/projects/${P}/datasets/d/tables`,
      tableBody('d', 't', fields),
    );
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      kind: 'bigquery#table',
      id: `${P}:d.t`,
      tableReference: { projectId: P, datasetId: 'd', tableId: 't' },
      schema: {
        fields: [
          { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
          { name: 'request', type: 'JSON' },
          { name: 'score', type: 'FLOAT' },
          { name: 'ok', type: 'BOOLEAN' },
          { name: 'meta', type: 'RECORD', fields: [{ name: 'source', type: 'STRING' }] },
          { name: 'tags', type: 'STRING', mode: 'REPEATED' },
        ],
      },
      numBytes: '0',
      numRows: '0',
      creationTime: expect.stringMatching(/^\d{13}$/),
      lastModifiedTime: expect.stringMatching(/^\d{13}$/),
      type: 'TABLE',
      location: 'us-central1',
    });
    expect((await call(emu, 'GET', tablePath('d', 't'))).body).toEqual(created.body);

    const again = await call(
      emu,
      'POST',
      `/projects/${P}/datasets/d/tables`,
      tableBody('d', 't', []),
    );
    expect(bigQueryError(again, 409, 'ALREADY_EXISTS', 'duplicate')).toBe(
      `Already Exists: Table ${P}:d.t`,
    );
    const noTable = await call(emu, 'GET', tablePath('d', 'nope'));
    expect(bigQueryError(noTable, 404, 'NOT_FOUND', 'notFound')).toBe(
      `Not found: Table ${P}:d.nope`,
    );
    const noDataset = await call(emu, 'GET', tablePath('gone', 't'));
    expect(bigQueryError(noDataset, 404, 'NOT_FOUND', 'notFound')).toBe(
      `Not found: Dataset ${P}:gone`,
    );
    const intoNothing = await call(
      emu,
      'POST',
      `/projects/${P}/datasets/gone/tables`,
      tableBody('gone', 'x', []),
    );
    expect(intoNothing.status).toBe(404);

    for (const bad of [
      [{ name: 'x', type: 'VARCHAR' }],
      [
        { name: 'x', type: 'STRING' },
        { name: 'X', type: 'INTEGER' },
      ],
      [{ name: '1x', type: 'STRING' }],
      [{ name: 'x', type: 'STRING', mode: 'OPTIONAL' }],
      [{ name: 'r', type: 'RECORD' }],
      [{ type: 'STRING' }],
    ]) {
      const res = await call(
        emu,
        'POST',
        `/projects/${P}/datasets/d/tables`,
        tableBody('d', 'bad', bad),
      );
      bigQueryError(res, 400, 'INVALID_ARGUMENT', 'invalid');
    }
    const elsewhere = await call(
      emu,
      'POST',
      `/projects/${P}/datasets/d/tables`,
      tableBody('other', 'x', []),
    );
    bigQueryError(elsewhere, 400, 'INVALID_ARGUMENT', 'invalid');
    expect((await call(emu, 'GET', tablePath('d', 'bad'))).status).toBe(404);
  });

  it('streams rows with insertAll, which updates numRows, numBytes and lastModifiedTime', async () => {
    const emu = await start();
    await withTable(emu, [
      { name: 'id', type: 'INTEGER' },
      { name: 'request', type: 'JSON' },
    ]);
    const before = (await call(emu, 'GET', tablePath('d', 't'))).body;
    const res = await insertAll(
      emu,
      rowsOf({ id: 1, request: { a: 1 } }, { id: '2', request: '{"b": [2]}' }),
    );
    expect(res).toEqual({ status: 200, body: { kind: 'bigquery#tableDataInsertAllResponse' } });
    const after = (await call(emu, 'GET', tablePath('d', 't'))).body;
    expect(after.numRows).toBe('2');
    expect(Number(after.numBytes)).toBeGreaterThan(0);
    expect(Number(after.lastModifiedTime)).toBeGreaterThan(Number(before.lastModifiedTime));
    expect(after.creationTime).toBe(before.creationTime);
    // A JSON column keeps JSON text: an object, or a string holding JSON.
    expect(emu.store.rows({ project: P, dataset: 'd', table: 't' })).toEqual([
      { id: '1', request: '{"a":1}' },
      { id: '2', request: '{"b":[2]}' },
    ]);

    await insertAll(emu, rowsOf({ id: 3 }));
    const later = (await call(emu, 'GET', tablePath('d', 't'))).body;
    expect(later.numRows).toBe('3');
    expect(Number(later.lastModifiedTime)).toBeGreaterThan(Number(after.lastModifiedTime));
  });

  it('refuses a request with a bad row: insertErrors, the others stopped, nothing inserted', async () => {
    const emu = await start();
    await withTable(emu, [
      { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
      { name: 'request', type: 'JSON' },
      { name: 'at', type: 'TIMESTAMP' },
    ]);
    const res = await insertAll(
      emu,
      rowsOf(
        { id: 1 },
        { id: 2, colour: 'red' },
        { id: 'three' },
        { id: 4, request: '{not json' },
        { id: 5, at: 'yesterday' },
        { request: {} },
      ),
    );
    expect(res.status).toBe(200);
    const stopped = { reason: 'stopped', location: '', debugInfo: '', message: '' };
    const invalid = (location: string, message: unknown) => ({
      reason: 'invalid',
      location,
      debugInfo: '',
      message,
    });
    expect(res.body).toEqual({
      kind: 'bigquery#tableDataInsertAllResponse',
      insertErrors: [
        { index: 0, errors: [stopped] },
        { index: 1, errors: [invalid('colour', 'no such field.')] },
        { index: 2, errors: [invalid('id', expect.stringContaining('three'))] },
        { index: 3, errors: [invalid('request', expect.stringContaining('{not json'))] },
        { index: 4, errors: [invalid('at', expect.stringContaining('yesterday'))] },
        { index: 5, errors: [invalid('id', 'Missing required field: id.')] },
      ],
    });
    expect((await call(emu, 'GET', tablePath('d', 't'))).body.numRows).toBe('0');

    // skipInvalidRows keeps the good rows; ignoreUnknownValues drops unknown keys.
    const skipped = await insertAll(emu, {
      skipInvalidRows: true,
      ...rowsOf({ id: 1 }, { id: 'two' }, { id: 3, colour: 'red' }),
    });
    expect((skipped.body.insertErrors as Json[]).map((e) => e.index)).toEqual([1, 2]);
    expect((await call(emu, 'GET', tablePath('d', 't'))).body.numRows).toBe('1');
    const ignoring = await insertAll(emu, {
      ignoreUnknownValues: true,
      ...rowsOf({ id: 3, colour: 'red' }),
    });
    expect(ignoring.body).not.toHaveProperty('insertErrors');
    expect(emu.store.rows({ project: P, dataset: 'd', table: 't' }).map((r) => r.id)).toEqual([
      '1',
      '3',
    ]);

    for (const body of [{ rows: [] }, {}, '{"rows": [']) {
      const bad = await insertAll(emu, body as Json);
      expect(bad.status).toBe(400);
    }
    const noTable = await call(
      emu,
      'POST',
      `${tablePath('d', 'none')}/insertAll`,
      rowsOf({ id: 1 }),
    );
    bigQueryError(noTable, 404, 'NOT_FOUND', 'notFound');
  });

  it('drops a row sent again with the same insertId', async () => {
    const emu = await start();
    await withTable(emu, [{ name: 'id', type: 'INTEGER' }]);
    const batch = {
      rows: [
        { insertId: 'a', json: { id: 1 } },
        { insertId: 'b', json: { id: 2 } },
      ],
    };
    await insertAll(emu, batch);
    await insertAll(emu, { rows: [...batch.rows, { insertId: 'c', json: { id: 3 } }] });
    await insertAll(emu, rowsOf({ id: 4 }, { id: 4 }));
    expect(emu.store.rows({ project: P, dataset: 'd', table: 't' }).map((r) => r.id)).toEqual([
      '1',
      '2',
      '3',
      '4',
      '4',
    ]);
  });

  it('lists cells as the API encodes them: strings, JSON text, seconds or microseconds, null, records, lists', async () => {
    const emu = await start();
    await withTable(emu, [
      { name: 's', type: 'STRING' },
      { name: 'i', type: 'INTEGER' },
      { name: 'f', type: 'FLOAT' },
      { name: 'b', type: 'BOOLEAN' },
      { name: 'j', type: 'JSON' },
      { name: 'ts', type: 'TIMESTAMP' },
      {
        name: 'r',
        type: 'RECORD',
        fields: [
          { name: 'x', type: 'STRING' },
          { name: 'y', type: 'INTEGER' },
        ],
      },
      { name: 'l', type: 'INTEGER', mode: 'REPEATED' },
    ]);
    await insertAll(
      emu,
      rowsOf(
        {
          s: 'héllo',
          i: 42,
          f: 1.5,
          b: true,
          j: { k: ['v', 1] },
          ts: '2024-01-01 00:00:00.5 UTC',
          r: { x: 'in', y: '7' },
          l: [1, '2'],
        },
        { s: null, ts: 1704067200 },
      ),
    );
    const list = await call(emu, 'GET', `${tablePath('d', 't')}/data`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      kind: 'bigquery#tableDataList',
      totalRows: '2',
      rows: [
        {
          f: [
            { v: 'héllo' },
            { v: '42' },
            { v: '1.5' },
            { v: 'true' },
            { v: '{"k":["v",1]}' },
            { v: '1.7040672005E9' },
            { v: { f: [{ v: 'in' }, { v: '7' }] } },
            { v: [{ v: '1' }, { v: '2' }] },
          ],
        },
        {
          f: [
            { v: null },
            { v: null },
            { v: null },
            { v: null },
            { v: null },
            { v: '1.7040672E9' },
            { v: null },
            { v: [] },
          ],
        },
      ],
    });
    const micros = await call(
      emu,
      'GET',
      `${tablePath('d', 't')}/data?selectedFields=ts&formatOptions.useInt64Timestamp=true`,
    );
    expect(values(micros)).toEqual([['1704067200500000'], ['1704067200000000']]);
  });

  it('pages with maxResults and pageToken, omitting the token on the last page', async () => {
    const emu = await start();
    await withTable(emu, [{ name: 'n', type: 'INTEGER' }]);
    await insertAll(emu, rowsOf(...Array.from({ length: 5 }, (_, n) => ({ n }))));
    const pages: unknown[][][] = [];
    let token: string | undefined;
    do {
      const query = `?maxResults=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`;
      const res = await call(emu, 'GET', `${tablePath('d', 't')}/data${query}`);
      expect(res.status).toBe(200);
      expect(res.body.totalRows).toBe('5');
      pages.push(values(res));
      token = res.body.pageToken as string | undefined;
    } while (token !== undefined && pages.length < 10);
    expect(pages).toEqual([[['0'], ['1']], [['2'], ['3']], [['4']]]);

    const all = await call(emu, 'GET', `${tablePath('d', 't')}/data`);
    expect(values(all)).toHaveLength(5);
    expect(all.body).not.toHaveProperty('pageToken');
    const from = await call(emu, 'GET', `${tablePath('d', 't')}/data?startIndex=3`);
    expect(values(from)).toEqual([['3'], ['4']]);
    // Past the end: no rows at all, as the API omits an empty list.
    const past = await call(emu, 'GET', `${tablePath('d', 't')}/data?startIndex=9`);
    expect(past.body).toEqual({ kind: 'bigquery#tableDataList', totalRows: '5' });
    for (const query of ['pageToken=garbage', 'maxResults=-1', 'startIndex=x']) {
      const res = await call(emu, 'GET', `${tablePath('d', 't')}/data?${query}`);
      bigQueryError(res, 400, 'INVALID_ARGUMENT', 'invalid');
    }
  });

  it('ends a page once its rows pass the byte limit, whatever maxResults says', async () => {
    const emu = await start({ maxPageBytes: 200 });
    await withTable(emu, [{ name: 'text', type: 'STRING' }]);
    await insertAll(
      emu,
      rowsOf(...Array.from({ length: 12 }, (_, i) => ({ text: `${i}`.padEnd(40, '.') }))),
    );
    const seen: unknown[] = [];
    let pages = 0;
    let token: string | undefined;
    do {
      const query = `?maxResults=100${token ? `&pageToken=${token}` : ''}`;
      const res = await call(emu, 'GET', `${tablePath('d', 't')}/data${query}`);
      const page = values(res);
      expect(page.length).toBeGreaterThan(0);
      expect(page.length).toBeLessThan(12);
      seen.push(...page.map((r) => r[0]));
      pages += 1;
      token = res.body.pageToken as string | undefined;
    } while (token !== undefined && pages < 20);
    expect(pages).toBeGreaterThan(1);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `${i}`.padEnd(40, '.')));
  });

  it('answers selectedFields in the table order, whatever order they are asked in', async () => {
    const emu = await start();
    await withTable(emu, [
      { name: 'a', type: 'STRING' },
      { name: 'b', type: 'STRING' },
      { name: 'c', type: 'STRING' },
    ]);
    await insertAll(emu, rowsOf({ a: 'A', b: 'B', c: 'C' }));
    for (const selection of ['c,a', 'a,c', 'C, A']) {
      const res = await call(emu, 'GET', `${tablePath('d', 't')}/data?selectedFields=${selection}`);
      expect(values(res), selection).toEqual([['A', 'C']]);
    }
    const unknown = await call(emu, 'GET', `${tablePath('d', 't')}/data?selectedFields=a,zz`);
    expect(bigQueryError(unknown, 400, 'INVALID_ARGUMENT', 'invalid')).toContain('zz');
  });

  it('creates views, which have no rows to list or stream into', async () => {
    const emu = await start();
    await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('d'));
    const view = await call(emu, 'POST', `/projects/${P}/datasets/d/tables`, {
      tableReference: { projectId: P, datasetId: 'd', tableId: 'v' },
      view: { query: 'SELECT 1 AS x' },
    });
    expect(view.body).toMatchObject({ type: 'VIEW', view: { query: 'SELECT 1 AS x' } });
    bigQueryError(
      await call(emu, 'GET', `${tablePath('d', 'v')}/data`),
      400,
      'INVALID_ARGUMENT',
      'invalid',
    );
    const insert = await call(emu, 'POST', `${tablePath('d', 'v')}/insertAll`, rowsOf({ x: 1 }));
    bigQueryError(insert, 400, 'INVALID_ARGUMENT', 'invalid');
  });

  describe('faults', () => {
    it.each<[BigQueryFault & { status: number }, string, string]>([
      [{ op: 'tables.get', status: 503, times: 2 }, 'UNAVAILABLE', 'backendError'],
      [{ op: 'tables.get', status: 403, times: 2 }, 'PERMISSION_DENIED', 'accessDenied'],
      [
        {
          op: 'tables.get',
          status: 403,
          times: 2,
          reason: 'rateLimitExceeded',
          message: 'slow down',
        },
        'PERMISSION_DENIED',
        'rateLimitExceeded',
      ],
      [{ op: 'tables.get', status: 500, times: 2 }, 'INTERNAL', 'backendError'],
      [{ op: 'tables.get', status: 404, times: 2 }, 'NOT_FOUND', 'notFound'],
    ])('%j fails the next requests of that kind only', async (fault, status, reason) => {
      const emu = await start();
      await withTable(emu, [{ name: 'id', type: 'INTEGER' }]);
      emu.inject(fault);
      expect((await call(emu, 'GET', `${tablePath('d', 't')}/data`)).status).toBe(200);
      for (let i = 0; i < 2; i += 1) {
        const message = bigQueryError(
          await call(emu, 'GET', tablePath('d', 't')),
          fault.status,
          status,
          reason,
        );
        if ('message' in fault && fault.message) expect(message).toBe(fault.message);
      }
      expect((await call(emu, 'GET', tablePath('d', 't'))).status).toBe(200);
    });

    it('a faulted request has no effect, and a fault without op hits any request', async () => {
      const emu = await start();
      emu.inject({ op: 'datasets.insert', status: 503 });
      expect((await call(emu, 'POST', `/projects/${P}/datasets`, datasetBody('d'))).status).toBe(
        503,
      );
      expect((await call(emu, 'GET', `/projects/${P}/datasets/d`)).status).toBe(404);
      await withTable(emu, [{ name: 'id', type: 'INTEGER' }]);
      emu.inject({ status: 500, times: 2 });
      expect((await insertAll(emu, rowsOf({ id: 1 }))).status).toBe(500);
      expect((await call(emu, 'GET', `${tablePath('d', 't')}/data`)).status).toBe(500);
      expect((await call(emu, 'GET', tablePath('d', 't'))).body.numRows).toBe('0');
    });

    it('hangs requests until the client gives up, and adds latency until reset', async () => {
      const emu = await start();
      await withTable(emu, [{ name: 'id', type: 'INTEGER' }]);
      emu.inject({ op: 'tabledata.list', hang: true });
      await expect(
        fetch(`${emu.url}/bigquery/v2${tablePath('d', 't')}/data`, {
          signal: AbortSignal.timeout(200),
        }),
      ).rejects.toThrow();
      expect((await call(emu, 'GET', `${tablePath('d', 't')}/data`)).status).toBe(200);

      emu.inject({ latencyMs: 60_000 });
      await expect(
        fetch(`${emu.url}/bigquery/v2${tablePath('d', 't')}`, { signal: AbortSignal.timeout(200) }),
      ).rejects.toThrow();
      expect((await fetch(`${emu.url}/`)).status).toBe(200);
      emu.reset();
      expect((await call(emu, 'GET', tablePath('d', 't'))).status).toBe(200);
    });

    it('counts requests per kind; reset zeroes counters and faults but keeps the data', async () => {
      const emu = await start();
      await withTable(emu, [{ name: 'id', type: 'INTEGER' }]);
      await insertAll(emu, rowsOf({ id: 1 }));
      await call(emu, 'GET', `${tablePath('d', 't')}/data`);
      await call(emu, 'GET', tablePath('d', 't'));
      await call(emu, 'GET', tablePath('d', 'missing'));
      expect(emu.requests).toEqual({
        'datasets.insert': 1,
        'datasets.get': 0,
        'tables.insert': 1,
        'tables.get': 2,
        'tabledata.list': 1,
        'tabledata.insertAll': 1,
      });
      emu.inject({ op: 'tables.get', status: 503 });
      emu.reset();
      expect(Object.values(emu.requests)).toEqual([0, 0, 0, 0, 0, 0]);
      const table = await call(emu, 'GET', tablePath('d', 't'));
      expect(table.status).toBe(200);
      expect(table.body.numRows).toBe('1');
    });

    it('drops hanging requests when it closes', async () => {
      const emu = await startBigQueryEmulator();
      emu.inject({ hang: true });
      const hanging = fetch(`${emu.url}/bigquery/v2/projects/${P}/datasets/d`);
      await new Promise((r) => setTimeout(r, 50));
      await emu.close();
      await expect(hanging).rejects.toThrow();
    });
  });

  describe('seeding in process', () => {
    it('creates datasets and tables and inserts rows the API then serves', async () => {
      const emu = await start();
      emu.store.createDataset(P, 'reviews', 'us-central1');
      const ref = { project: P, dataset: 'reviews', table: 'input' };
      emu.store.createTable(ref, [
        { name: 'custom_id', type: 'STRING' },
        { name: 'request', type: 'JSON' },
      ]);
      emu.store.insertRows(ref, [
        { custom_id: 'r-1', request: { messages: [] } },
        { custom_id: 'r-2', request: '{"messages": []}' },
      ]);
      const table = await call(emu, 'GET', tablePath('reviews', 'input'));
      expect(table.body).toMatchObject({ numRows: '2', location: 'us-central1' });
      const list = await call(emu, 'GET', `${tablePath('reviews', 'input')}/data`);
      expect(values(list)).toEqual([
        ['r-1', '{"messages":[]}'],
        ['r-2', '{"messages":[]}'],
      ]);
      expect(emu.store.rows(ref)).toEqual([
        { custom_id: 'r-1', request: '{"messages":[]}' },
        { custom_id: 'r-2', request: '{"messages":[]}' },
      ]);
    });

    it('refuses a bad row whole, naming it, and reports missing datasets and tables', async () => {
      const emu = await start();
      emu.store.createDataset(P, 'd');
      const ref = { project: P, dataset: 'd', table: 't' };
      emu.store.createTable(ref, [{ name: 'n', type: 'INTEGER' }]);
      expect(() => emu.store.insertRows(ref, [{ n: 1 }, { n: 'x' }])).toThrow(/Row 1: n: .*x/);
      expect(emu.store.rows(ref)).toEqual([]);
      expect(() => emu.store.createDataset(P, 'd')).toThrow(`Already Exists: Dataset ${P}:d`);
      expect(() => emu.store.rows({ ...ref, table: 'u' })).toThrow(`Not found: Table ${P}:d.u`);
      expect(() => emu.store.createTable({ ...ref, dataset: 'e' }, [])).toThrow(
        `Not found: Dataset ${P}:e`,
      );
    });
  });
});
