/**
 * How the emulator's jobs reach BigQuery: over HTTP, on the REST v2 production paths, as the
 * service does, so they work with any BigQuery emulator (`bigqueryHost`). Only the calls jobs
 * make: a dataset's and a table's metadata, a table's rows page after page, creating a table and
 * streaming rows into it. A failed call rejects with a {@link BigQueryCallError} carrying the HTTP
 * status and BigQuery's message.
 */
import { isObject } from '../http.js';

/** A table, `bq://project.dataset.table` split into its parts. */
export interface TableRef {
  project: string;
  dataset: string;
  table: string;
}

/** A column of a table's schema. */
export interface Column {
  name: string;
  type: string;
  mode?: string;
}

/** A failed BigQuery call: `code` is the HTTP status (0 when no answer came). */
export class BigQueryCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** No call takes longer: a BigQuery that stops answering fails the job instead of hanging it. */
const TIMEOUT_MS = 30_000;

/** `bq://project.dataset.table`. */
export const tableUri = (ref: TableRef): string =>
  `bq://${ref.project}.${ref.dataset}.${ref.table}`;

/** A BigQuery REST client at `baseUrl` (`http://host:port`). */
export class BigQueryClient {
  constructor(private readonly baseUrl: string) {}

  /** The dataset's location. */
  async datasetLocation(project: string, dataset: string): Promise<string> {
    const body = await this.call('GET', `/projects/${project}/datasets/${dataset}`);
    return typeof body.location === 'string' ? body.location : '';
  }

  /** The table's columns and location. */
  async table(ref: TableRef): Promise<{ columns: Column[]; location: string }> {
    const body = await this.call('GET', tablePath(ref));
    const fields =
      isObject(body.schema) && Array.isArray(body.schema.fields) ? body.schema.fields : [];
    return {
      columns: fields.filter(isObject).map((f) => ({
        name: String(f.name),
        type: String(f.type),
        ...(typeof f.mode === 'string' ? { mode: f.mode } : {}),
      })),
      location: typeof body.location === 'string' ? body.location : '',
    };
  }

  /**
   * The table's rows, page after page (`tabledata.list`), each a list of cells in the schema's
   * order; TIMESTAMP cells in microseconds since the epoch.
   */
  async *rows(ref: TableRef): AsyncGenerator<(unknown[] | undefined)[]> {
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ 'formatOptions.useInt64Timestamp': 'true' });
      if (token) query.set('pageToken', token);
      const body = await this.call('GET', `${tablePath(ref)}/data?${query.toString()}`);
      const rows = Array.isArray(body.rows) ? body.rows : [];
      yield rows.map((row: unknown) => (isObject(row) && Array.isArray(row.f) ? row.f : undefined));
      token = typeof body.pageToken === 'string' ? body.pageToken : undefined;
    } while (token);
  }

  async createTable(ref: TableRef, columns: readonly Column[]): Promise<void> {
    await this.call('POST', `/projects/${ref.project}/datasets/${ref.dataset}/tables`, {
      tableReference: { projectId: ref.project, datasetId: ref.dataset, tableId: ref.table },
      schema: { fields: columns },
    });
  }

  /** Streams rows (`tabledata.insertAll`); a row the table refuses rejects with its message. */
  async insert(ref: TableRef, rows: readonly { insertId: string; json: object }[]): Promise<void> {
    const body = await this.call('POST', `${tablePath(ref)}/insertAll`, { rows });
    const errors = Array.isArray(body.insertErrors) ? body.insertErrors.filter(isObject) : [];
    const refused = errors
      .flatMap((e) => (Array.isArray(e.errors) ? e.errors.filter(isObject) : []))
      .find((e) => e.reason !== 'stopped');
    if (errors.length > 0) {
      const detail = refused
        ? `${String(refused.location)}: ${String(refused.message)}`
        : 'stopped';
      throw new BigQueryCallError(400, `insertAll refused ${errors.length} rows (${detail})`);
    }
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/bigquery/v2${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw new BigQueryCallError(
        0,
        `BigQuery did not answer: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const answer = isObject(parsed) ? parsed : {};
    if (!res.ok) {
      const error = isObject(answer.error) ? answer.error : {};
      const message = typeof error.message === 'string' ? error.message : `HTTP ${res.status}`;
      throw new BigQueryCallError(res.status, message);
    }
    return answer;
  }
}

const tablePath = (ref: TableRef): string =>
  `/projects/${ref.project}/datasets/${ref.dataset}/tables/${encodeURIComponent(ref.table)}`;
