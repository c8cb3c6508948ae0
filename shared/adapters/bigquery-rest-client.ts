/**
 * BigQuery tables over REST with google-auth-library
 * (https://cloud.google.com/bigquery/docs/reference/rest): what manifests need of a table, read
 * without the BigQuery SDK (one more heavy import per cold start for three GET requests).
 * `tables.get` and `datasets.get` for metadata, `tabledata.list` for rows: both free of query
 * charges and of the job machinery, and read as the table is (a page token keeps later pages
 * consistent with the first). Every failure mapped to PermanentError or TransientError; every call
 * bounded in time: one request by `timeoutMs`, a read with its retries by `totalTimeoutMs`.
 */
import type { gaxios } from 'google-auth-library';
import { PermanentError, TransientError } from '../core/errors.js';
import type {
  BigQueryColumn,
  BigQueryTable,
  BigQueryTables,
  DatasetRef,
  TableRef,
} from '../ports.js';
import { formatSeconds } from '../time-limit.js';
import { boundedRequest, retriedRead, type RequestClient } from './rest-call.js';

/**
 * Default of {@link BigQueryClientOptions.timeoutMs}. A metadata read answers in well under a
 * second and a page of rows in about one; 20 s also covers getting a token and a page of several
 * MB over a slow link, and still notices a hung connection long before the function's own timeout
 * (the same bound as the Vertex client's, whose calls share the function's time).
 */
export const DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS = 20_000;
/**
 * Default of {@link BigQueryClientOptions.totalTimeoutMs}: one read with its retries. 25 s leaves
 * room for three retries after quick failures (a 503 or a 429 answers at once), or one short
 * retry after an attempt that hung; a longer outage is the platform's to retry, with the whole
 * event, rather than ours inside one delivery.
 */
export const DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS = 25_000;
/**
 * Default of {@link BigQueryClientOptions.pageRows}: rows asked of one `tabledata.list` page.
 * One page is held in memory at a time, parsed, so the bound is on memory as much as on round
 * trips: a `request` value is a whole Gemini request (a few KB of prompt usually, much more with
 * inline data), so 1,000 of them are a few MB, and the largest table a submission accepts (200,000
 * rows, the limit of a JSONL file) is read in 200 pages. BigQuery may answer fewer rows than asked:
 * it also ends a page by its size in bytes, which is what bounds a page of very large values.
 */
export const DEFAULT_BIGQUERY_PAGE_ROWS = 1_000;

/** The role whose permissions (`bigquery.tables.get`, `bigquery.tables.getData`) reading needs. */
export const BIGQUERY_READ_ROLE = 'roles/bigquery.dataViewer';

/** Options of {@link createBigQueryClient}. */
export interface BigQueryClientOptions {
  /** An authorised client (a static-token OAuth2Client for emulators). */
  auth: RequestClient;
  /** `host:port` or `http://host:port` of an emulator (plain HTTP); unset in production. */
  emulatorHost?: string | undefined;
  /** How long one request may wait for its answer (default {@link DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS}). */
  timeoutMs?: number;
  /**
   * How long one read (a `table`, a `dataset`, one page of `rows`) may take with its retries of
   * 429, 5xx and unanswered requests (default {@link DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS}). Reading
   * every row takes one such read per page: the whole of it is the caller's to bound (it decides
   * how many rows it reads and may stop iterating at any time).
   */
  totalTimeoutMs?: number;
  /** Rows asked of one page (default {@link DEFAULT_BIGQUERY_PAGE_ROWS}). */
  pageRows?: number;
}

/**
 * The base URL of the BigQuery API: production, or an emulator given as `host:port` or as a URL
 * (`http://host:port`, with or without a trailing `/`), the two forms emulator variables come in.
 */
export function bigQueryEndpoint(emulatorHost?: string): string {
  if (!emulatorHost) return 'https://bigquery.googleapis.com/bigquery/v2';
  const origin = emulatorHost.replace(/\/+$/, '');
  return `${/^https?:\/\//i.test(origin) ? origin : `http://${origin}`}/bigquery/v2`;
}

/** `project.dataset.table`, as messages name a table (BigQuery's own SQL spelling). */
function tableName(ref: TableRef): string {
  return `${ref.project}.${ref.dataset}.${ref.table}`;
}

/** The table resource fields read here (numbers are strings: int64 in JSON). */
interface TableResource {
  type?: string;
  location?: string;
  numRows?: string;
  lastModifiedTime?: string;
  schema?: { fields?: { name?: string; type?: string; mode?: string }[] };
}

/** One `tabledata.list` page: each row's cells (`f`) hold a value (`v`) each. */
interface TableDataPage {
  pageToken?: string;
  rows?: { f?: { v?: unknown }[] }[];
}

/** Reads are retried on these answers (and on no answer at all). */
const isRetriedStatus = (status: number): boolean =>
  status === 408 || status === 429 || status >= 500;

/**
 * A 403 whose reason says "too fast" rather than "not allowed": BigQuery answers its rate and
 * quota limits with 403, not 429
 * (https://cloud.google.com/bigquery/docs/error-messages: `rateLimitExceeded`, `quotaExceeded`).
 */
const THROTTLED_REASONS = new Set(['rateLimitExceeded', 'quotaExceeded']);

/** How a 404 is taken: "no such thing" for a lookup, "it went away" for a read of rows. */
export type NotFound = 'absent' | 'vanished';

/** Creates the BigQuery client. */
export function createBigQueryClient(options: BigQueryClientOptions): BigQueryTables {
  const timeoutMs = options.timeoutMs ?? DEFAULT_BIGQUERY_REQUEST_TIMEOUT_MS;
  const totalMs = Math.max(timeoutMs, options.totalTimeoutMs ?? DEFAULT_BIGQUERY_TOTAL_TIMEOUT_MS);
  const pageRows = Math.max(1, Math.floor(options.pageRows ?? DEFAULT_BIGQUERY_PAGE_ROWS));
  const base = bigQueryEndpoint(options.emulatorHost);
  const datasetUrl = (ref: DatasetRef): string =>
    `${base}/projects/${encodeURIComponent(ref.project)}/datasets/${encodeURIComponent(ref.dataset)}`;
  const tableUrl = (ref: TableRef): string =>
    `${datasetUrl(ref)}/tables/${encodeURIComponent(ref.table)}`;

  /** One request, aborted (and rejected) after `ms`. Never retried by the HTTP client. */
  const once = <T>(
    opts: gaxios.GaxiosOptions,
    ms: number,
    what: string,
    notFound: NotFound,
  ): Promise<T> =>
    boundedRequest<T>(
      options.auth,
      { method: 'GET', ...opts },
      ms,
      () =>
        new TransientError(
          'BIGQUERY.UNAVAILABLE',
          `BigQuery ${what}: no answer within ${formatSeconds(ms)}`,
        ),
      (err) => mapBigQueryError(err, what, notFound),
    );

  /**
   * A read: retried with backoff on 408, 429, 5xx, a throttling 403 and no answer, each attempt
   * given at most `timeoutMs`, the whole sequence at most `totalMs`. Everything else is thrown at
   * once: a 403 that denies access is transient (IAM changes take minutes to reach BigQuery) but
   * not within seconds, and a 404 is an answer.
   */
  const read = <T>(opts: gaxios.GaxiosOptions, what: string, notFound: NotFound): Promise<T> =>
    retriedRead((ms) => once<T>(opts, ms, what, notFound), { timeoutMs, totalMs }, isRetried);

  /** `tables.get`: a 404 is thrown (mapped as `notFound` says). */
  async function getTable(ref: TableRef, notFound: NotFound): Promise<BigQueryTable> {
    const resource = await read<TableResource>(
      { url: tableUrl(ref) },
      `tables.get ${tableName(ref)}`,
      notFound,
    );
    return toTable(resource, tableName(ref));
  }

  return {
    table: async (ref) => {
      try {
        return await getTable(ref, 'absent');
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    dataset: async (ref) => {
      const name = `${ref.project}.${ref.dataset}`;
      try {
        const resource = await read<{ location?: string }>(
          { url: datasetUrl(ref) },
          `datasets.get ${name}`,
          'absent',
        );
        return { location: requireLocation(resource, `dataset ${name}`) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    rows: (ref, columns) => readRows(ref, columns),
  };

  /**
   * Every row, page after page. Nothing is fetched ahead: a page is asked for when the consumer
   * wants its first row, so one page is in memory at a time and a consumer that stops iterating
   * (`break`, `return()`) leaves no request behind.
   *
   * The cells of a page come in the table's schema order, whatever the order of `selectedFields`
   * (the reference does not say; Google's own Node client maps them by the schema, and BigQuery's
   * Storage Read API documents that order for its own field selection). So the schema is read
   * first (one `tables.get`) and each row's cells are put in the order asked.
   *
   * A 404 on the way (the table was deleted or replaced since the caller looked at it, or between
   * two pages) is a TransientError `BIGQUERY.UNAVAILABLE`, not retried here: the reader's next
   * attempt starts again from the table's metadata, which then says "no such table" the way the
   * caller handles it, or describes the replacement, read whole from its first page. Ending the
   * read early instead would hand over part of a table as if it were all of it.
   */
  async function* readRows(
    ref: TableRef,
    columns: readonly string[],
  ): AsyncGenerator<(string | null)[], void, undefined> {
    const name = tableName(ref);
    const table = await getTable(ref, 'vanished');
    const plan = planColumns(table.columns, columns, name);
    const what = `tabledata.list ${name}`;
    let pageToken: string | undefined;
    for (let page = 1; ; page++) {
      const params: Record<string, string> = {
        maxResults: String(pageRows),
        selectedFields: plan.selected.join(','),
      };
      if (pageToken) params.pageToken = pageToken;
      const data = await read<TableDataPage>(
        { url: `${tableUrl(ref)}/data`, params },
        `${what} (page ${page})`,
        'vanished',
      );
      const next =
        typeof data.pageToken === 'string' && data.pageToken ? data.pageToken : undefined;
      if (next !== undefined && next === pageToken) {
        // Asking again would answer the same page again, forever.
        throw new TransientError(
          'BIGQUERY.UNAVAILABLE',
          `BigQuery ${what}: page ${page} gave back the page token it was asked with`,
        );
      }
      for (const row of data.rows ?? []) yield plan.arrange(row, page);
      if (next === undefined) return;
      pageToken = next;
    }
  }
}

/**
 * What to ask of `tabledata.list` for `columns`, and how to put each row's cells in their order.
 * Names are matched without regard to case, as BigQuery does; a column the table lacks is refused
 * before any row is read (the caller checks the schema first: this one changed since).
 */
function planColumns(
  schema: readonly BigQueryColumn[],
  columns: readonly string[],
  name: string,
): {
  selected: string[];
  arrange: (row: { f?: { v?: unknown }[] }, page: number) => (string | null)[];
} {
  const index = new Map(schema.map((c, i) => [c.name.toLowerCase(), i]));
  const wanted = columns.map((column) => {
    const at = index.get(column.toLowerCase());
    if (at === undefined) {
      throw new PermanentError(
        'BIGQUERY.INVALID_ARGUMENT',
        `BigQuery table ${name} has no column ${JSON.stringify(column)}`,
      );
    }
    return at;
  });
  // No column asked (a count of rows): ask for one anyway, the smallest answer BigQuery gives;
  // an empty selectedFields would return every column.
  const chosen = [...new Set(wanted.length > 0 ? wanted : schema.length > 0 ? [0] : [])].sort(
    (a, b) => a - b,
  );
  // Where each schema column's cell is in a row: in the schema order of the columns selected.
  const slot = new Map(chosen.map((schemaIndex, i) => [schemaIndex, i]));
  return {
    selected: chosen.map((i) => schema[i]!.name),
    arrange: (row, page) => {
      const cells = Array.isArray(row.f) ? row.f : [];
      // A row of every column: a server that ignored selectedFields. Anything else is a schema
      // that changed under the read.
      const whole = cells.length === schema.length && cells.length !== chosen.length;
      if (!whole && cells.length !== chosen.length) {
        throw new TransientError(
          'BIGQUERY.UNAVAILABLE',
          `BigQuery tabledata.list ${name} (page ${page}): a row of ${cells.length} cells where ${chosen.length} were asked (the table changed while it was read)`,
        );
      }
      return wanted.map((schemaIndex) =>
        cellText(cells[whole ? schemaIndex : slot.get(schemaIndex)!]),
      );
    },
  };
}

/**
 * A cell as the port gives it: null, the value's string (STRING, JSON: JSON text; and the other
 * scalar types, which the JSON `f,v` format also encodes as strings), or the JSON text of a nested
 * value (RECORD, REPEATED) as BigQuery encodes it.
 */
function cellText(cell: { v?: unknown } | undefined): string | null {
  const v = cell?.v;
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The port's view of a `tables.get` answer. */
function toTable(resource: TableResource, name: string): BigQueryTable {
  const rowCount = Number(resource.numRows ?? 0);
  if (!Number.isSafeInteger(rowCount) || rowCount < 0) {
    throw new TransientError(
      'BIGQUERY.UNAVAILABLE',
      `BigQuery tables.get ${name}: numRows is not a count: ${JSON.stringify(resource.numRows)}`,
    );
  }
  return {
    columns: (resource.schema?.fields ?? []).map((field) => ({
      name: field.name ?? '',
      type: field.type ?? '',
      mode: field.mode || 'NULLABLE',
    })),
    rowCount,
    location: requireLocation(resource, `table ${name}`),
    modified: resource.lastModifiedTime ?? '',
    kind: resource.type ?? '',
  };
}

/**
 * The location of a resource. BigQuery always gives it; an answer without one is not BigQuery's
 * (a proxy, an incomplete emulator), and a guess would send a job to the wrong region.
 */
function requireLocation(resource: { location?: unknown } | undefined, what: string): string {
  const location = resource?.location;
  if (typeof location !== 'string' || !location) {
    throw new TransientError(
      'BIGQUERY.UNAVAILABLE',
      `BigQuery ${what}: the answer has no location`,
    );
  }
  return location;
}

function isNotFound(err: unknown): boolean {
  return err instanceof TransientError && err.status === 404;
}

function isRetried(err: unknown): boolean {
  if (!(err instanceof TransientError) || err.code !== 'BIGQUERY.UNAVAILABLE') return false;
  const status = err.status;
  return status === undefined || isRetriedStatus(status) || status === 403;
}

/**
 * Maps an HTTP failure to the error hierarchy: no answer, 401, 408, 429, 5xx and a throttling 403
 * → TransientError `BIGQUERY.UNAVAILABLE`; another 403 → TransientError
 * `BIGQUERY.PERMISSION_DENIED` naming the role to grant (a grant takes minutes to apply, and a
 * PermanentError would reject the user's input for a problem of the deployment); 404 → a
 * TransientError `BIGQUERY.UNAVAILABLE` with status 404 (a lookup makes it `undefined`; see
 * `readRows` for a read of rows); another 4xx → PermanentError `BIGQUERY.INVALID_ARGUMENT`. A 401
 * is transient as in the Vertex client: credentials refreshed late are the deployment's problem,
 * not the input's. Messages carry BigQuery's own message (about the request, never a row's
 * values: those are not in an error of a metadata read or of a read of STRING and JSON columns).
 */
export function mapBigQueryError(err: unknown, what: string, notFound: NotFound = 'absent'): Error {
  if (err instanceof PermanentError || err instanceof TransientError) return err;
  const gaxios = err as Partial<gaxios.GaxiosError> & { status?: number };
  const status = gaxios.response?.status ?? gaxios.status;
  const body = gaxios.response?.data as
    { error?: { message?: string; status?: string; errors?: { reason?: string }[] } } | undefined;
  const apiError = typeof body === 'object' && body !== null ? body.error : undefined;
  const detail = apiError?.message ?? (err instanceof Error ? err.message : String(err));
  const reason = apiError?.errors?.find((e) => e.reason)?.reason ?? apiError?.status;
  const message = `BigQuery ${what}: ${status ? `HTTP ${status} ` : ''}${reason ? `${reason}: ` : ''}${detail}`;
  const opts = { cause: err, ...(status ? { status } : {}) };
  if (status === undefined || status === 401 || isRetriedStatus(status)) {
    return new TransientError('BIGQUERY.UNAVAILABLE', message, opts);
  }
  if (status === 403) {
    if (reason && THROTTLED_REASONS.has(reason)) {
      return new TransientError('BIGQUERY.UNAVAILABLE', message, opts);
    }
    return new TransientError(
      'BIGQUERY.PERMISSION_DENIED',
      `${message} (the service account needs ${BIGQUERY_READ_ROLE} on the dataset or the table)`,
      opts,
    );
  }
  if (status === 404) {
    const vanished = notFound === 'vanished' ? ' (gone during the read: deleted or replaced)' : '';
    return new TransientError('BIGQUERY.UNAVAILABLE', `${message}${vanished}`, opts);
  }
  return new PermanentError('BIGQUERY.INVALID_ARGUMENT', message, opts);
}
