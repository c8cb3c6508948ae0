/**
 * A local BigQuery emulator: the REST v2 calls manifests need, on the production paths
 * (`/bigquery/v2/projects/{p}/datasets...`), plain HTTP on 127.0.0.1, so a client only swaps its
 * endpoint (`BIGQUERY_EMULATOR_HOST`). Google ships no BigQuery emulator; this one answers the
 * JSON shapes of the real API:
 *
 * - `datasets.insert`, `datasets.get`;
 * - `tables.insert` (a table with a schema, or a view), `tables.get` (`numRows`, `numBytes`,
 *   `creationTime` and `lastModifiedTime` as strings, the dataset's `location`);
 * - `tabledata.list`, paged like the service: a page ends after `maxResults` rows (no default
 *   limit) or about 10 MB of rows, whichever comes first; `pageToken` is absent on the last page;
 *   `selectedFields` keeps those top-level columns, in the table's order whatever the order asked
 *   (the service does: clients map the cells to the schema filtered, not to the list);
 * - `tabledata.insertAll`, with `insertErrors` for unknown columns and values of the wrong type,
 *   `skipInvalidRows`, `ignoreUnknownValues` and `insertId` de-duplication. Streamed rows count in
 *   `numRows` at once (the service reports them under `streamingBuffer` for a while).
 *
 * Anything else is a 404. It never logs: rows are customer data. Datasets, tables and rows live in
 * memory ({@link BigQueryEmulator.store}) and are gone when it closes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isObject, readBody, readJson, sendJson, serve, target } from '../http.js';
import { BIGQUERY_OPS, Faults, type BigQueryFault, type BigQueryOp } from './faults.js';
import { cellOf, fieldNamed, type Field } from './schema.js';
import {
  bigQueryError,
  invalid,
  TableStore,
  tableId,
  type Dataset,
  type Table,
  type TableRef,
} from './store.js';

export type { BigQueryFault, BigQueryOp, Field, TableRef };
export { TableStore };

/** Options of {@link startBigQueryEmulator}. */
export interface BigQueryEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 or absent lets the OS choose. */
  port?: number;
  /** A page of `tabledata.list` ends once its rows pass this many bytes (default 10 MB). */
  maxPageBytes?: number;
}

/** A running emulator. */
export interface BigQueryEmulator {
  /** `127.0.0.1:port`, the `BIGQUERY_EMULATOR_HOST` form. */
  readonly host: string;
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Datasets, tables and rows, for seeding and checking in process. */
  readonly store: TableStore;
  /** Requests received per kind (faulted ones included); live, zeroed by reset. */
  readonly requests: Record<BigQueryOp, number>;
  /** Adds a fault (see {@link BigQueryFault}). */
  inject(fault: BigQueryFault): void;
  /** Forgets every fault and request counter; the data stays. */
  reset(): void;
  /** Stops the server, dropping requests left hanging. */
  close(): Promise<void>;
}

/** tabledata.list answers up to about this much row data per page, as the service does. */
const PAGE_BYTES = 10 * 1024 * 1024;
/** The most rows, and bytes, one insertAll takes. */
const INSERT_MAX_ROWS = 50_000;
const INSERT_MAX_BYTES = 10 * 1024 * 1024;

const PATH =
  /^\/bigquery\/v2\/projects\/([^/]+)\/datasets(?:\/([^/]+)(\/tables(?:\/([^/]+)(?:\/(data|insertAll))?)?)?)?$/;
const OPS: Record<string, BigQueryOp> = {
  'POST datasets': 'datasets.insert',
  'GET dataset': 'datasets.get',
  'POST tables': 'tables.insert',
  'GET table': 'tables.get',
  'GET data': 'tabledata.list',
  'POST insertAll': 'tabledata.insertAll',
};
/** The service's message for each status a fault answers, when the fault gives none. */
const FAULT_MESSAGES: Record<number, string> = {
  400: 'Invalid request.',
  403: 'Access Denied: the caller does not have permission for this request.',
  404: 'Not found.',
  409: 'Already Exists.',
  429: 'Exceeded rate limits: too many api requests per user per method for this user_method.',
  500: 'Error encountered during execution. Retrying may solve the problem.',
  503: 'Error encountered during execution. Retrying may solve the problem.',
};

/** Starts an emulator on 127.0.0.1 (see the module comment). */
export async function startBigQueryEmulator(
  options: BigQueryEmulatorOptions = {},
): Promise<BigQueryEmulator> {
  const store = new TableStore();
  const faults = new Faults();
  const maxPageBytes = options.maxPageBytes ?? PAGE_BYTES;
  const requests = Object.fromEntries(BIGQUERY_OPS.map((op) => [op, 0])) as Record<
    BigQueryOp,
    number
  >;

  const datasetResource = (d: Dataset): object => ({
    kind: 'bigquery#dataset',
    id: `${d.project}:${d.id}`,
    datasetReference: { projectId: d.project, datasetId: d.id },
    location: d.location,
    creationTime: String(d.creationTime),
    lastModifiedTime: String(d.lastModifiedTime),
    type: 'DEFAULT',
  });

  const tableResource = (t: Table): object => ({
    kind: 'bigquery#table',
    id: tableId(t.ref),
    tableReference: { projectId: t.ref.project, datasetId: t.ref.dataset, tableId: t.ref.table },
    schema: { fields: t.fields },
    ...(t.view ? { view: t.view } : {}),
    numBytes: String(t.bytes),
    numRows: String(t.rows.length),
    creationTime: String(t.creationTime),
    lastModifiedTime: String(t.lastModifiedTime),
    type: t.type,
    location: store.dataset(t.ref.project, t.ref.dataset).location,
  });

  /** A reference in a body must name the project (and dataset) of the path. */
  const checkReference = (given: unknown, project: string, dataset?: string): void => {
    if (!isObject(given)) throw invalid('A resource reference is required.');
    const same =
      given.projectId === project && (dataset === undefined || given.datasetId === dataset);
    if (!same) {
      const path = `${project}${dataset ? `:${dataset}` : ''}`;
      throw invalid(`The reference in the body does not match the path: ${path}.`);
    }
  };

  const insertDataset = (project: string, body: unknown): object => {
    if (!isObject(body)) throw invalid('The request body must be a dataset resource.');
    checkReference(body.datasetReference, project);
    const reference = body.datasetReference as { datasetId?: unknown };
    if (typeof reference.datasetId !== 'string') {
      throw invalid('Required parameter is missing: datasetId');
    }
    const location = typeof body.location === 'string' ? body.location : undefined;
    return datasetResource(store.createDataset(project, reference.datasetId, location));
  };

  const insertTable = (project: string, dataset: string, body: unknown): object => {
    if (!isObject(body)) throw invalid('The request body must be a table resource.');
    checkReference(body.tableReference, project, dataset);
    const table = (body.tableReference as { tableId?: unknown }).tableId;
    if (typeof table !== 'string') throw invalid('Required parameter is missing: tableId');
    const fields = isObject(body.schema) ? body.schema.fields : undefined;
    if (fields !== undefined && !Array.isArray(fields)) {
      throw invalid('schema.fields must be a list.');
    }
    const view =
      isObject(body.view) && typeof body.view.query === 'string' ? body.view.query : undefined;
    const created = store.createTable({ project, dataset, table }, fields ?? [], { view });
    return tableResource(created);
  };

  /** A non-negative integer query parameter, or undefined when absent. */
  const count = (query: URLSearchParams, name: string): number | undefined => {
    const text = query.get(name);
    if (text === null || text === '') return undefined;
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw invalid(`Invalid value for ${name}: ${text}`);
    }
    return Number(text);
  };

  const list = (ref: TableRef, query: URLSearchParams): object => {
    const table = store.table(ref);
    if (table.type === 'VIEW') throw invalid(`Cannot list a table of type VIEW: ${tableId(ref)}`);
    const token = query.get('pageToken');
    let start = count(query, 'startIndex') ?? 0;
    if (token) {
      const offset = Buffer.from(token, 'base64url').toString('utf8');
      if (!/^\d+$/.test(offset) || Number(offset) > table.rows.length) {
        throw invalid('Invalid page token.');
      }
      start = Number(offset);
    }
    // No limit by default (0 too): the byte limit ends a page.
    const maxResults = count(query, 'maxResults') || Infinity;
    let columns: Field[] = table.fields;
    const selected = query.get('selectedFields');
    if (selected) {
      const names = selected.split(',').map((n) => n.trim());
      for (const name of names) {
        if (!fieldNamed(table.fields, name)) {
          throw invalid(`Invalid field selection ${name}: the table has no such top-level column.`);
        }
      }
      columns = table.fields.filter((f) =>
        names.some((n) => n.toLowerCase() === f.name.toLowerCase()),
      );
    }
    const int64Timestamp = query.get('formatOptions.useInt64Timestamp') === 'true';
    const rows: object[] = [];
    let bytes = 0;
    for (
      let i = start;
      i < table.rows.length && rows.length < maxResults && bytes < maxPageBytes;
      i += 1
    ) {
      const stored = table.rows[i] ?? {};
      const row = { f: columns.map((f) => cellOf(f, stored[f.name] ?? null, int64Timestamp)) };
      bytes += Buffer.byteLength(JSON.stringify(row));
      rows.push(row);
    }
    const next = start + rows.length;
    return {
      kind: 'bigquery#tableDataList',
      totalRows: String(table.rows.length),
      ...(next < table.rows.length
        ? { pageToken: Buffer.from(String(next)).toString('base64url') }
        : {}),
      ...(rows.length > 0 ? { rows } : {}),
    };
  };

  const insertAll = async (ref: TableRef, req: IncomingMessage): Promise<object> => {
    store.table(ref);
    const text = (await readBody(req, INSERT_MAX_BYTES)).toString('utf8');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw bigQueryError(400, `Invalid JSON payload received. ${String(err)}`, 'parseError');
    }
    if (!isObject(body) || !Array.isArray(body.rows) || body.rows.length === 0) {
      throw invalid('No rows present in the request.');
    }
    if (body.rows.length > INSERT_MAX_ROWS) {
      throw invalid(
        `too many rows present in the request, limit: ${INSERT_MAX_ROWS} row count: ${body.rows.length}.`,
      );
    }
    const rows = body.rows.map((row: unknown) => ({
      json: isObject(row) ? row.json : undefined,
      ...(isObject(row) && typeof row.insertId === 'string' ? { insertId: row.insertId } : {}),
    }));
    const insertErrors = store.insert(ref, rows, {
      skipInvalidRows: body.skipInvalidRows === true,
      ignoreUnknownValues: body.ignoreUnknownValues === true,
    });
    return {
      kind: 'bigquery#tableDataInsertAllResponse',
      ...(insertErrors.length > 0 ? { insertErrors } : {}),
    };
  };

  /** Parks a request until the server closes (it drops the connection then). */
  const hang = (): Promise<never> => new Promise(() => undefined);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = target(req);
    const method = req.method ?? 'GET';
    const match = PATH.exec(path);
    const [project = '', dataset, tables, table, leaf] = (match ?? [])
      .slice(1)
      .map((s) => s && decodeURIComponent(s));
    const kind = leaf ?? (table ? 'table' : tables ? 'tables' : dataset ? 'dataset' : 'datasets');
    const op = match ? OPS[`${method} ${kind}`] : undefined;
    if (!op) throw bigQueryError(404, `Not found: ${method} ${path}`);
    requests[op] += 1;
    if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs).unref());
    const fault = faults.take(op);
    if (fault && 'hang' in fault) return hang();
    if (fault) {
      const message = fault.message ?? FAULT_MESSAGES[fault.status] ?? '';
      throw bigQueryError(fault.status, message, fault.reason);
    }
    const ref = { project, dataset: dataset ?? '', table: table ?? '' };
    switch (op) {
      case 'datasets.insert':
        return sendJson(res, 200, insertDataset(project, await readJson(req)));
      case 'datasets.get':
        return sendJson(res, 200, datasetResource(store.dataset(project, ref.dataset)));
      case 'tables.insert':
        return sendJson(res, 200, insertTable(project, ref.dataset, await readJson(req)));
      case 'tables.get':
        return sendJson(res, 200, tableResource(store.table(ref)));
      case 'tabledata.list':
        return sendJson(res, 200, list(ref, query));
      case 'tabledata.insertAll':
        return sendJson(res, 200, await insertAll(ref, req));
    }
  }

  const server = await serve(route, { port: options.port });
  return {
    host: server.host,
    url: `http://${server.host}`,
    store,
    requests,
    inject: (fault) => faults.add(fault),
    reset() {
      faults.clear();
      for (const op of BIGQUERY_OPS) requests[op] = 0;
    },
    close: () => server.close(),
  };
}
