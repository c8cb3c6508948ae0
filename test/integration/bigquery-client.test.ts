/**
 * The BigQuery REST client against a small fake BigQuery on loopback (through google-auth-library
 * with a static token): paths and parameters, the mapping of `tables.get` and `datasets.get`
 * answers, error mapping and retries, time bounds, paging, and cells put in the order asked when
 * the service answers them in schema order.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  BIGQUERY_READ_ROLE,
  bigQueryEndpoint,
  createBigQueryClient,
  DEFAULT_BIGQUERY_PAGE_ROWS,
  DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS,
  DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS,
  type BigQueryClientOptions,
} from '../../shared/adapters/bigquery-rest-client.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import type { TableRef } from '../../shared/ports.js';
import { startBlackHole, type BlackHole } from './black-hole.js';

function staticAuth(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600_000 });
  return client;
}

/** What the fake answers: a JSON answer, or nothing at all (the connection stays open). */
type Answer = { status: number; body: unknown } | 'hang';

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  auth: string | undefined;
}

let server: Server;
let host: string;
const seen: Seen[] = [];
/** Answers by request: `route` sees each request's path and query. */
let route: (path: string, query: URLSearchParams) => Answer = () => ({ status: 200, body: {} });
const hanging = new Set<ServerResponse>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    seen.push({
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      auth: req.headers.authorization,
    });
    const answer = route(url.pathname, url.searchParams);
    if (answer === 'hang') {
      hanging.add(res);
      return;
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  seen.length = 0;
});

const REF: TableRef = { project: 'acme-prod', dataset: 'sales', table: 'prompts' };
const TABLE_PATH = '/bigquery/v2/projects/acme-prod/datasets/sales/tables/prompts';

function client(options: Partial<BigQueryClientOptions> = {}) {
  return createBigQueryClient({ auth: staticAuth(), emulatorHost: host, ...options });
}

function apiError(status: number, reason: string, message: string, rpc?: string): Answer {
  return {
    status,
    body: {
      error: {
        code: status,
        message,
        errors: [{ message, domain: 'global', reason }],
        ...(rpc ? { status: rpc } : {}),
      },
    },
  };
}

/** A table resource as `tables.get` answers it. */
function tableResource(fields: { name: string; type: string; mode?: string }[], numRows = '3') {
  return {
    kind: 'bigquery#table',
    tableReference: { projectId: 'acme-prod', datasetId: 'sales', tableId: 'prompts' },
    schema: { fields },
    numRows,
    numBytes: '1234',
    lastModifiedTime: '1714000000000',
    type: 'TABLE',
    location: 'us-central1',
  };
}

const SCHEMA = [
  { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'request', type: 'JSON' },
  { name: 'label', type: 'STRING', mode: 'NULLABLE' },
  { name: 'notes', type: 'STRING' },
];

/** Rows of SCHEMA as values; `tabledata.list` answers them as BigQuery does, in schema order. */
const ROWS: (string | null)[][] = Array.from({ length: 7 }, (_, i) => [
  String(i + 1),
  JSON.stringify({ contents: [{ role: 'user', parts: [{ text: `prompt ${i + 1}` }] }] }),
  i === 2 ? null : `label-${i + 1}`,
  `notes-${i + 1}`,
]);

/**
 * A fake `tables.get` + `tabledata.list` over SCHEMA and ROWS: pages of `maxResults` rows, page
 * tokens `p<offset>`, and the cells of `selectedFields` in schema order (never in the order asked).
 */
function fakeTable(path: string, query: URLSearchParams): Answer {
  if (path === TABLE_PATH) return { status: 200, body: tableResource(SCHEMA, String(ROWS.length)) };
  if (path === `${TABLE_PATH}/data`) {
    const size = Number(query.get('maxResults') ?? 100);
    const offset = Number(query.get('pageToken')?.slice(1) ?? 0);
    const asked = (query.get('selectedFields') ?? '').split(',').filter(Boolean);
    const picked = SCHEMA.map((f, i) => [f.name, i] as const)
      .filter(([name]) => asked.length === 0 || asked.includes(name))
      .map(([, i]) => i);
    const rows = ROWS.slice(offset, offset + size).map((row) => ({
      f: picked.map((i) => ({ v: row[i] })),
    }));
    const next = offset + size < ROWS.length ? `p${offset + size}` : undefined;
    return {
      status: 200,
      body: {
        kind: 'bigquery#tableDataList',
        totalRows: String(ROWS.length),
        rows,
        ...(next ? { pageToken: next } : {}),
      },
    };
  }
  return apiError(404, 'notFound', `Not found: ${path}`);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function failure(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => new Error('expected a rejection'),
    (err: unknown) => err,
  );
}

describe('BigQuery REST client: endpoints and paths', () => {
  it.each([
    [undefined, 'https://bigquery.googleapis.com/bigquery/v2'],
    ['127.0.0.1:9050', 'http://127.0.0.1:9050/bigquery/v2'],
    ['http://127.0.0.1:9050', 'http://127.0.0.1:9050/bigquery/v2'],
    ['http://127.0.0.1:9050/', 'http://127.0.0.1:9050/bigquery/v2'],
    ['localhost:9050', 'http://localhost:9050/bigquery/v2'],
    ['https://bq.example.test:443', 'https://bq.example.test:443/bigquery/v2'],
  ])('emulator host %s → %s', (emulator, expected) => {
    expect(bigQueryEndpoint(emulator)).toBe(expected);
  });

  it('both emulator host forms reach the emulator, with a bearer token', async () => {
    route = fakeTable;
    for (const form of [host, `http://${host}`, `http://${host}/`]) {
      await expect(client({ emulatorHost: form }).table(REF)).resolves.toMatchObject({
        rowCount: ROWS.length,
      });
    }
    expect(seen.map((s) => [s.method, s.path])).toEqual(
      Array.from({ length: 3 }, () => ['GET', TABLE_PATH]),
    );
    expect(seen[0]!.auth).toBe('Bearer test-token');
  });

  it('production URLs: tables.get, datasets.get and tabledata.list, path segments encoded', async () => {
    const urls: string[] = [];
    const params: unknown[] = [];
    const bq = createBigQueryClient({
      auth: {
        request: async <T>(opts: { url?: string | URL; params?: unknown }) => {
          urls.push(String(opts.url));
          params.push(opts.params);
          const data = String(opts.url).endsWith('/data')
            ? { rows: [] }
            : { ...tableResource([{ name: 'request', type: 'STRING' }]), location: 'EU' };
          return { data: data as T } as never;
        },
      },
    });
    const odd: TableRef = { project: 'acme-prod', dataset: 'sales_eu', table: 'prompts 2024/é?' };
    await bq.table(odd);
    await bq.dataset({ project: 'acme-prod', dataset: 'sales_eu' });
    await collect(bq.rows(odd, ['request']));
    const base = 'https://bigquery.googleapis.com/bigquery/v2/projects/acme-prod/datasets/sales_eu';
    const table = `${base}/tables/prompts%202024%2F%C3%A9%3F`;
    expect(urls).toEqual([table, base, table, `${table}/data`]);
    expect(params[3]).toEqual({
      maxResults: String(DEFAULT_BIGQUERY_PAGE_ROWS),
      selectedFields: 'request',
    });
  });
});

describe('BigQuery REST client: metadata', () => {
  it('table: schema, numRows, location, lastModifiedTime and type mapped; mode NULLABLE when omitted', async () => {
    route = fakeTable;
    const table = await client().table(REF);
    expect(table).toEqual({
      columns: [
        { name: 'id', type: 'INTEGER', mode: 'REQUIRED' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
        { name: 'label', type: 'STRING', mode: 'NULLABLE' },
        { name: 'notes', type: 'STRING', mode: 'NULLABLE' },
      ],
      rowCount: 7,
      location: 'us-central1',
      modified: '1714000000000',
      kind: 'TABLE',
    });
  });

  it('table: numRows absent (a view) is 0 rows; nested columns stay one top-level column', async () => {
    route = () => ({
      status: 200,
      body: {
        ...tableResource([
          { name: 'request', type: 'STRING' },
          { name: 'meta', type: 'RECORD', mode: 'REPEATED' },
        ]),
        numRows: undefined,
        type: 'VIEW',
        location: 'EU',
      },
    });
    await expect(client().table(REF)).resolves.toEqual({
      columns: [
        { name: 'request', type: 'STRING', mode: 'NULLABLE' },
        { name: 'meta', type: 'RECORD', mode: 'REPEATED' },
      ],
      rowCount: 0,
      location: 'EU',
      modified: '1714000000000',
      kind: 'VIEW',
    });
  });

  it('a 404 is undefined, for a table and for a dataset, and is not retried', async () => {
    route = (path) => apiError(404, 'notFound', `Not found: ${path}`);
    await expect(client().table(REF)).resolves.toBeUndefined();
    await expect(client().dataset({ project: 'acme-prod', dataset: 'sales' })).resolves.toBe(
      undefined,
    );
    expect(seen.map((s) => s.path)).toEqual([
      TABLE_PATH,
      '/bigquery/v2/projects/acme-prod/datasets/sales',
    ]);
  });

  it('dataset: its location', async () => {
    route = (path) =>
      path === '/bigquery/v2/projects/acme-prod/datasets/sales'
        ? { status: 200, body: { kind: 'bigquery#dataset', location: 'europe-west4' } }
        : apiError(404, 'notFound', 'Not found');
    await expect(client().dataset({ project: 'acme-prod', dataset: 'sales' })).resolves.toEqual({
      location: 'europe-west4',
    });
  });

  it('an answer without a location is TransientError BIGQUERY.UNAVAILABLE, not a guessed region', async () => {
    route = () => ({ status: 200, body: { ...tableResource(SCHEMA), location: undefined } });
    await expect(client().table(REF)).rejects.toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
    route = () => ({ status: 200, body: { kind: 'bigquery#dataset' } });
    await expect(
      client().dataset({ project: 'acme-prod', dataset: 'sales' }),
    ).rejects.toBeInstanceOf(TransientError);
  });
});

describe('BigQuery REST client: errors and retries', () => {
  it.each([
    [400, 'invalid', PermanentError, 'BIGQUERY.INVALID_ARGUMENT', 1],
    [409, 'duplicate', PermanentError, 'BIGQUERY.INVALID_ARGUMENT', 1],
    [403, 'accessDenied', TransientError, 'BIGQUERY.PERMISSION_DENIED', 1],
    [500, 'backendError', TransientError, 'BIGQUERY.UNAVAILABLE', 4],
    [503, 'backendError', TransientError, 'BIGQUERY.UNAVAILABLE', 4],
    [429, 'rateLimitExceeded', TransientError, 'BIGQUERY.UNAVAILABLE', 4],
    [403, 'rateLimitExceeded', TransientError, 'BIGQUERY.UNAVAILABLE', 4],
  ])('HTTP %i %s → %o %s after %i request(s)', async (status, reason, kind, code, requests) => {
    route = () => apiError(status, reason, `boom ${status} ${reason}`);
    const err = await failure(client({ totalTimeoutMs: 10_000 }).table(REF));
    expect(err).toBeInstanceOf(kind);
    expect(err).toMatchObject({ code, status });
    const message = (err as Error).message;
    expect(message).toContain(`boom ${status} ${reason}`); // the API's message
    expect(message).toContain('acme-prod.sales.prompts');
    expect(seen).toHaveLength(requests);
  });

  it('a 403 that denies access names the table and the role to grant', async () => {
    route = () =>
      apiError(
        403,
        'accessDenied',
        'Access Denied: Table acme-prod:sales.prompts: Permission bigquery.tables.get denied',
        'PERMISSION_DENIED',
      );
    const err = await failure(client().table(REF));
    expect(err).toMatchObject({ code: 'BIGQUERY.PERMISSION_DENIED', retryable: true });
    expect((err as Error).message).toContain('tables.get acme-prod.sales.prompts');
    expect((err as Error).message).toContain(BIGQUERY_READ_ROLE);
    expect(BIGQUERY_READ_ROLE).toBe('roles/bigquery.dataViewer');
  });

  it('a 503 then an answer: retried, and the answer returned', async () => {
    let calls = 0;
    route = (path, query) =>
      ++calls === 1 ? apiError(503, 'backendError', 'try later') : fakeTable(path, query);
    await expect(client().table(REF)).resolves.toMatchObject({ rowCount: 7 });
    expect(seen).toHaveLength(2);
  });

  it('an error body that is not JSON (a proxy) is still mapped by its status', async () => {
    route = () => ({ status: 502, body: '<html>Bad Gateway</html>' });
    const err = await failure(client({ totalTimeoutMs: 1000 }).table(REF));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE', status: 502 });
  });

  it('nothing listening: TransientError BIGQUERY.UNAVAILABLE', async () => {
    const bq = createBigQueryClient({
      auth: staticAuth(),
      emulatorHost: '127.0.0.1:1',
      timeoutMs: 1000,
      totalTimeoutMs: 1500,
    });
    const err = await failure(bq.table(REF));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
  });

  it('defaults: at most 20 s per request and 25 s per read, pages of at most 1,000 rows', () => {
    expect(DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(20_000);
    expect(DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS).toBeLessThanOrEqual(25_000);
    expect(DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS).toBeGreaterThanOrEqual(
      DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS,
    );
    expect(DEFAULT_BIGQUERY_PAGE_ROWS).toBeLessThanOrEqual(1_000);
  });
});

describe('BigQuery REST client: time bounds', () => {
  let hole: BlackHole;
  beforeAll(async () => {
    hole = await startBlackHole();
  });
  afterAll(() => hole.close());

  async function timed(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
    const started = performance.now();
    const error = await failure(work());
    return { error, ms: performance.now() - started };
  }

  it('a server that never answers: one attempt ends after timeoutMs', async () => {
    const bq = createBigQueryClient({
      auth: staticAuth(),
      emulatorHost: hole.host,
      timeoutMs: 400,
      totalTimeoutMs: 400,
    });
    const before = hole.accepted();
    const { error, ms } = await timed(() => bq.table(REF));
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
    expect((error as Error).message).toMatch(/no answer within 0\.4 s/);
    expect(ms).toBeLessThan(1000);
    expect(hole.accepted() - before).toBe(1);
  });

  it('retried reads end within totalTimeoutMs, all attempts together', async () => {
    const bq = createBigQueryClient({
      auth: staticAuth(),
      emulatorHost: hole.host,
      timeoutMs: 700,
      totalTimeoutMs: 2500,
    });
    const before = hole.accepted();
    const results = await Promise.all([
      timed(() => bq.table(REF)),
      timed(() => bq.dataset({ project: 'acme-prod', dataset: 'sales' })),
    ]);
    for (const { error, ms } of results) {
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
      expect(ms).toBeLessThanOrEqual(2700);
    }
    expect(hole.accepted() - before).toBeGreaterThan(2); // retried
  });

  it('a page of rows that never comes: the read of rows ends within totalTimeoutMs', async () => {
    route = (path, query) => (path.endsWith('/data') ? 'hang' : fakeTable(path, query));
    const bq = client({ timeoutMs: 300, totalTimeoutMs: 2000 });
    const { error, ms } = await timed(() => collect(bq.rows(REF, ['request'])));
    expect(error).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
    expect((error as Error).message).toContain('tabledata.list acme-prod.sales.prompts (page 1)');
    expect(ms).toBeLessThan(2300);
    expect(seen.filter((s) => s.path.endsWith('/data')).length).toBeGreaterThan(1);
  });
});

describe('BigQuery REST client: rows', () => {
  it('pages through 3 pages with pageToken, asking for the page size and the selected fields', async () => {
    route = fakeTable;
    const rows = await collect(client({ pageRows: 3 }).rows(REF, ['request']));
    expect(rows).toEqual(ROWS.map((r) => [r[1]]));
    const pages = seen.filter((s) => s.path === `${TABLE_PATH}/data`);
    expect(pages.map((p) => p.query.get('pageToken'))).toEqual([null, 'p3', 'p6']);
    for (const page of pages) {
      expect(page.query.get('maxResults')).toBe('3');
      expect(page.query.get('selectedFields')).toBe('request');
    }
    expect(seen[0]!.path).toBe(TABLE_PATH); // the schema first
  });

  it('cells come back in schema order; they are handed over in the order asked', async () => {
    route = fakeTable;
    const rows = await collect(client().rows(REF, ['notes', 'label', 'request']));
    expect(rows).toEqual(ROWS.map((r) => [r[3], r[2], r[1]]));
    const page = seen.find((s) => s.path.endsWith('/data'))!;
    expect(page.query.get('selectedFields')!.split(',').sort()).toEqual([
      'label',
      'notes',
      'request',
    ]);
  });

  it('column names match without regard to case; a column asked twice is given twice', async () => {
    route = fakeTable;
    const rows = await collect(client().rows(REF, ['LABEL', 'Request', 'label']));
    expect(rows[0]).toEqual([ROWS[0]![2], ROWS[0]![1], ROWS[0]![2]]);
    expect(rows[2]).toEqual([null, ROWS[2]![1], null]); // null cells stay null
  });

  it('a server that ignores selectedFields (whole rows) is still read right', async () => {
    route = (path, query) => {
      const whole = new URLSearchParams(query);
      whole.delete('selectedFields');
      return fakeTable(path, whole);
    };
    const rows = await collect(client().rows(REF, ['label', 'id']));
    expect(rows).toEqual(ROWS.map((r) => [r[2], r[0]]));
  });

  it('no column asked: one row of no cells per row, one column fetched', async () => {
    route = fakeTable;
    const rows = await collect(client().rows(REF, []));
    expect(rows).toEqual(ROWS.map(() => []));
    expect(seen.find((s) => s.path.endsWith('/data'))!.query.get('selectedFields')).toBe('id');
  });

  it('nested values are handed over as their JSON text', async () => {
    route = (path) =>
      path === TABLE_PATH
        ? {
            status: 200,
            body: tableResource([
              { name: 'request', type: 'STRING' },
              { name: 'tags', type: 'STRING', mode: 'REPEATED' },
            ]),
          }
        : { status: 200, body: { rows: [{ f: [{ v: 'x' }, { v: [{ v: 'a' }, { v: 'b' }] }] }] } };
    const rows = await collect(client().rows(REF, ['tags', 'request']));
    expect(rows).toEqual([['[{"v":"a"},{"v":"b"}]', 'x']]);
  });

  it('a column the table lacks: PermanentError BIGQUERY.INVALID_ARGUMENT before any row is read', async () => {
    route = fakeTable;
    const err = await failure(collect(client().rows(REF, ['request', 'prompt'])));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'BIGQUERY.INVALID_ARGUMENT' });
    expect((err as Error).message).toContain('"prompt"');
    expect(seen.filter((s) => s.path.endsWith('/data'))).toHaveLength(0);
  });

  it('a consumer that stops iterating: no further page is asked for', async () => {
    route = fakeTable;
    const got: (string | null)[][] = [];
    for await (const row of client({ pageRows: 3 }).rows(REF, ['id'])) {
      got.push(row);
      if (got.length === 2) break;
    }
    expect(got).toEqual([['1'], ['2']]);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.map((s) => s.query.get('pageToken'))).toEqual([null, null]); // tables.get, page 1
  });

  it('return() before the first row: nothing is fetched at all', async () => {
    route = fakeTable;
    const iterator = client().rows(REF, ['id'])[Symbol.asyncIterator]();
    await iterator.return?.();
    await expect(iterator.next()).resolves.toMatchObject({ done: true });
    expect(seen).toHaveLength(0);
  });

  it('a 500 on the second page is retried and the read goes on from that page', async () => {
    let failed = false;
    route = (path, query) => {
      if (query.get('pageToken') === 'p3' && !failed) {
        failed = true;
        return apiError(500, 'backendError', 'internal');
      }
      return fakeTable(path, query);
    };
    const rows = await collect(client({ pageRows: 3 }).rows(REF, ['id']));
    expect(rows.map((r) => r[0])).toEqual(ROWS.map((r) => r[0]));
    expect(seen.map((s) => s.query.get('pageToken'))).toEqual([null, null, 'p3', 'p3', 'p6']);
  });

  it('a table that vanishes between pages: TransientError BIGQUERY.UNAVAILABLE (404), not retried, after the rows read', async () => {
    route = (path, query) =>
      query.get('pageToken') === 'p3'
        ? apiError(404, 'notFound', 'Not found: Table acme-prod:sales.prompts')
        : fakeTable(path, query);
    const got: (string | null)[][] = [];
    const err = await failure(
      (async () => {
        for await (const row of client({ pageRows: 3 }).rows(REF, ['id'])) got.push(row);
      })(),
    );
    expect(got).toHaveLength(3);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE', status: 404 });
    expect((err as Error).message).toContain('deleted or replaced');
    expect(seen.filter((s) => s.query.get('pageToken') === 'p3')).toHaveLength(1);
  });

  it('a table missing when its rows are asked for: TransientError, not an empty read', async () => {
    route = (path) => apiError(404, 'notFound', `Not found: ${path}`);
    const err = await failure(collect(client().rows(REF, ['request'])));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ status: 404 });
  });

  it('a row whose cells do not fit the schema: TransientError whose message holds no cell', async () => {
    route = (path, query) =>
      path === TABLE_PATH
        ? fakeTable(path, query)
        : { status: 200, body: { rows: [{ f: [{ v: 'SECRET PROMPT' }, { v: 'x' }] }] } };
    const err = await failure(collect(client().rows(REF, ['request'])));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/2 cells where 1 were asked/);
    expect((err as Error).message).not.toContain('SECRET');
  });

  it('a page token given back unchanged ends the read instead of looping', async () => {
    route = (path, query) =>
      path === TABLE_PATH
        ? fakeTable(path, query)
        : { status: 200, body: { rows: [{ f: [{ v: 'r' }] }], pageToken: 'same' } };
    const got: (string | null)[][] = [];
    const err = await failure(
      (async () => {
        for await (const row of client().rows(REF, ['request'])) got.push(row);
      })(),
    );
    expect(err).toMatchObject({ code: 'BIGQUERY.UNAVAILABLE' });
    expect((err as Error).message).toContain('page 2');
    expect(got).toEqual([['r']]); // page 1's row; page 2 is refused before its rows
    expect(seen.filter((s) => s.path.endsWith('/data'))).toHaveLength(2);
  });

  it('an empty table: no rows, one page asked', async () => {
    route = (path) =>
      path === TABLE_PATH
        ? { status: 200, body: tableResource(SCHEMA, '0') }
        : { status: 200, body: { kind: 'bigquery#tableDataList', totalRows: '0' } };
    await expect(collect(client().rows(REF, ['request']))).resolves.toEqual([]);
    expect(seen.filter((s) => s.path.endsWith('/data'))).toHaveLength(1);
  });
});
