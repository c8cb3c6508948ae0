/**
 * The BigQuery emulator's datasets, tables and rows, in memory. The server answers REST calls
 * from it; the local stack and the tests seed it directly ({@link TableStore.createDataset},
 * {@link TableStore.createTable}, {@link TableStore.insertRows}) and read what jobs wrote
 * ({@link TableStore.rows}). Errors are the API's: 404 `notFound` ("Not found: Table p:d.t"),
 * 409 `duplicate`, 400 `invalid`.
 */
import { HttpError } from '../http.js';
import {
  checkFields,
  recordOf,
  SchemaError,
  ValueError,
  type Field,
  type StoredRow,
} from './schema.js';

/** A table, `bq://project.dataset.table` split into its parts. */
export interface TableRef {
  project: string;
  dataset: string;
  table: string;
}

/** One row of an `insertAll` body. */
export interface RowInsert {
  insertId?: string;
  json: unknown;
}

/** An entry of `insertErrors`. */
export interface InsertError {
  index: number;
  errors: { reason: string; location: string; debugInfo: string; message: string }[];
}

export interface Dataset {
  project: string;
  id: string;
  /** As BigQuery spells it: `US` and `EU` upper case, regions lower case. */
  location: string;
  creationTime: number;
  lastModifiedTime: number;
  tables: Map<string, Table>;
}

export interface Table {
  ref: TableRef;
  /** `TABLE`, or `VIEW` (created with a query: it has no rows of its own). */
  type: 'TABLE' | 'VIEW';
  view?: { query: string };
  fields: Field[];
  rows: StoredRow[];
  /** Approximate size of the rows (their JSON). */
  bytes: number;
  creationTime: number;
  lastModifiedTime: number;
  /** `insertId`s already inserted: a row sent again with one is dropped, as the service does. */
  insertIds: Set<string>;
}

/** google.rpc status and default reason of each HTTP status the emulator answers. */
const STATUS: Record<number, [status: string, reason: string]> = {
  400: ['INVALID_ARGUMENT', 'invalid'],
  403: ['PERMISSION_DENIED', 'accessDenied'],
  404: ['NOT_FOUND', 'notFound'],
  409: ['ALREADY_EXISTS', 'duplicate'],
  429: ['RESOURCE_EXHAUSTED', 'rateLimitExceeded'],
  500: ['INTERNAL', 'backendError'],
  503: ['UNAVAILABLE', 'backendError'],
};

/** An error answer in BigQuery's shape: code, message, status and one `errors` entry. */
export function bigQueryError(code: number, message: string, reason?: string): HttpError {
  const [status = 'UNKNOWN', defaultReason = 'invalid'] = STATUS[code] ?? [];
  return new HttpError(code, message, { status, reason: reason ?? defaultReason });
}

export const invalid = (message: string): HttpError => bigQueryError(400, message);

/** Multi-regions are upper case (`US`, `EU`), regions lower case (`us-central1`). */
function normalLocation(location: string): string {
  return /^(us|eu)$/i.test(location) ? location.toUpperCase() : location.toLowerCase();
}

const DATASET_ID = /^[A-Za-z0-9_]{1,1024}$/;
/** Letters, marks, digits, connectors, dashes and spaces, up to 1,024 characters. */
const TABLE_ID = /^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]{1,1024}$/u;

/** Datasets by `project:dataset`. */
export class TableStore {
  private readonly datasets = new Map<string, Dataset>();

  /** Creates a dataset (location `US` unless given); 409 when it exists. */
  createDataset(project: string, dataset: string, location = 'US'): Dataset {
    if (!DATASET_ID.test(dataset)) {
      throw invalid(
        `Invalid dataset ID "${dataset}". Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
      );
    }
    const key = `${project}:${dataset}`;
    if (this.datasets.has(key)) throw bigQueryError(409, `Already Exists: Dataset ${key}`);
    const now = Date.now();
    const created: Dataset = {
      project,
      id: dataset,
      location: normalLocation(location),
      creationTime: now,
      lastModifiedTime: now,
      tables: new Map(),
    };
    this.datasets.set(key, created);
    return created;
  }

  /** The dataset, or 404. */
  dataset(project: string, dataset: string): Dataset {
    const found = this.datasets.get(`${project}:${dataset}`);
    if (!found) throw bigQueryError(404, `Not found: Dataset ${project}:${dataset}`);
    return found;
  }

  /**
   * Creates a table with these columns (see `schema.ts` for the types), or a view over `view`;
   * 404 when the dataset does not exist, 409 when the table does, 400 for a bad schema.
   */
  createTable(ref: TableRef, fields: readonly unknown[], options: { view?: string } = {}): Table {
    const dataset = this.dataset(ref.project, ref.dataset);
    if (!TABLE_ID.test(ref.table)) {
      throw invalid(
        `Invalid table ID "${ref.table}". Table IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
      );
    }
    if (dataset.tables.has(ref.table)) {
      throw bigQueryError(409, `Already Exists: Table ${tableId(ref)}`);
    }
    let checked: Field[];
    try {
      checked = checkFields(fields);
    } catch (err) {
      if (err instanceof SchemaError) throw invalid(err.message);
      throw err;
    }
    const now = Date.now();
    const table: Table = {
      ref: { ...ref },
      type: options.view === undefined ? 'TABLE' : 'VIEW',
      ...(options.view === undefined ? {} : { view: { query: options.view } }),
      fields: checked,
      rows: [],
      bytes: 0,
      creationTime: now,
      lastModifiedTime: now,
      insertIds: new Set(),
    };
    dataset.tables.set(ref.table, table);
    return table;
  }

  /** The table, or 404 naming the dataset (when it is missing) or the table. */
  table(ref: TableRef): Table {
    const found = this.dataset(ref.project, ref.dataset).tables.get(ref.table);
    if (!found) throw bigQueryError(404, `Not found: Table ${tableId(ref)}`);
    return found;
  }

  /**
   * `tabledata.insertAll`: converts every row; with an invalid row, nothing is inserted and the
   * valid rows are reported `stopped`, unless `skipInvalidRows` (then the valid ones are
   * inserted). A row whose `insertId` was inserted before is dropped silently.
   */
  insert(
    ref: TableRef,
    rows: readonly RowInsert[],
    options: { skipInvalidRows?: boolean; ignoreUnknownValues?: boolean } = {},
  ): InsertError[] {
    const table = this.table(ref);
    if (table.type === 'VIEW') {
      throw invalid(`Cannot add rows to a table of type VIEW: ${tableId(ref)}`);
    }
    const converted = rows.map((row): StoredRow | ValueError => {
      if (typeof row.json !== 'object' || row.json === null || Array.isArray(row.json)) {
        return new ValueError('', 'The row is not a JSON object.');
      }
      try {
        return recordOf(
          table.fields,
          row.json as Record<string, unknown>,
          !!options.ignoreUnknownValues,
        );
      } catch (err) {
        if (err instanceof ValueError) return err;
        throw err;
      }
    });
    const refused = new Map<number, InsertError>();
    converted.forEach((row, index) => {
      if (!(row instanceof ValueError)) return;
      const { location, message } = row;
      refused.set(index, {
        index,
        errors: [{ reason: 'invalid', location, debugInfo: '', message }],
      });
    });
    if (refused.size > 0 && !options.skipInvalidRows) {
      const stopped = { reason: 'stopped', location: '', debugInfo: '', message: '' };
      return rows.map((_, index) => refused.get(index) ?? { index, errors: [stopped] });
    }
    let inserted = 0;
    converted.forEach((row, index) => {
      const insertId = rows[index]?.insertId;
      if (row instanceof ValueError || (insertId && table.insertIds.has(insertId))) return;
      if (insertId) table.insertIds.add(insertId);
      table.rows.push(row);
      table.bytes += Buffer.byteLength(JSON.stringify(row));
      inserted += 1;
    });
    if (inserted > 0) table.lastModifiedTime = Math.max(Date.now(), table.lastModifiedTime + 1);
    return [...refused.values()];
  }

  /** Inserts rows (objects keyed by column) at once, or none: a bad row throws, naming it. */
  insertRows(ref: TableRef, rows: readonly Record<string, unknown>[]): void {
    const errors = this.insert(
      ref,
      rows.map((json) => ({ json })),
    );
    const bad = errors.find((e) => e.errors[0]?.reason === 'invalid');
    if (bad) {
      const [error] = bad.errors;
      throw invalid(
        `Row ${bad.index}: ${error?.location ? `${error.location}: ` : ''}${error?.message}`,
      );
    }
  }

  /** The rows of a table, in insertion order (copies). */
  rows(ref: TableRef): StoredRow[] {
    return structuredClone(this.table(ref).rows);
  }
}

/** `project:dataset.table`, as BigQuery's messages name a table. */
export function tableId(ref: TableRef): string {
  return `${ref.project}:${ref.dataset}.${ref.table}`;
}
