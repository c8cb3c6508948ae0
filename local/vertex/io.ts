/**
 * A job's input and output, in the forms the service takes: JSONL files in Cloud Storage (through
 * a {@link BlobStore}) or a BigQuery table (over BigQuery's REST API), either way in and either
 * way out.
 *
 * Input: the lines of every file, in the order the URIs are given; or the rows of the table, whose
 * `request` column (JSON or STRING) holds the request as JSON text, and, for Claude, `custom_id`
 * the row's id. The table must be in the job's location, of the types the service accepts, and
 * without the columns the output adds (`response`, `status`, and for Gemini `processed_time`).
 *
 * Output: `predictions.jsonl` (or `predictions_00001-of-0000N.jsonl`, … above `rowsPerFile` rows)
 * in `<outputUriPrefix>/prediction-model-<createTime>/`; or a new table in the job's location:
 * the one the URI names (it must not exist), else `predictions_<createTime>` in the dataset, the
 * timestamp written as the service writes it (`predictions_2025_07_17T07_26_51_416Z_917` for
 * `2025-07-17T07:26:51.416917Z`). Its columns are the input table's (for JSONL input, Claude's
 * `custom_id` and `request`), then `response` (JSON: NULL when the row failed), `status` (STRING:
 * empty, or the error) and, for Gemini, `processed_time` (TIMESTAMP); rows are streamed 500 at a
 * time, each with an `insertId`.
 */
import { RPC, type RpcStatus } from './api-facts.js';
import {
  BigQueryCallError,
  tableUri,
  type BigQueryClient,
  type Column,
  type TableRef,
} from './bigquery.js';
import { parseLine, splitLines, type Row, type RowInput } from './model.js';
import type { CreateRequest } from './request.js';

/** Where jobs read inputs and write outputs (the local stack backs it with the storage emulator). */
export interface BlobStore {
  /** Reads a whole object; rejects with an error whose `code` is 404 when it does not exist. */
  read(uri: string): Promise<Buffer>;
  /** Writes (creates or replaces) an object. */
  write(uri: string, data: Buffer | string, contentType?: string): Promise<void>;
}

/** One input of a job: what the model reads, and the table row's values to copy out. */
export interface Instance {
  input: RowInput;
  /** The input table's columns as `insertAll` takes them (BigQuery input only). */
  columns?: Record<string, unknown>;
}

/** A job's inputs, and the columns an output table starts with. */
export interface Inputs {
  instances: Instance[];
  columns: Column[];
  /** The input, for messages: the URIs or the table's. */
  where: string;
}

/**
 * `outputInfo` of a job that wrote its output: the folder, or the dataset (`bq://p.d`) and the
 * table's name. Typed as the API's message is: its fields are a oneof plus the table.
 */
export interface OutputInfo {
  gcsOutputDirectory?: string;
  bigqueryOutputDataset?: string;
  bigqueryOutputTable?: string;
}

/** Where a job writes, opened: rows go in batches of `batchRows`, batch `index` of `count`. */
export interface Sink {
  info: OutputInfo;
  /** The output, for messages: the folder or the table's URI. */
  where: string;
  batchRows: number;
  write(
    rows: { row: Row; instance: Instance; index: number }[],
    index: number,
    count: number,
  ): Promise<void>;
}

/** What reading and writing need. */
export interface Io {
  blobs: BlobStore;
  bigquery: BigQueryClient | undefined;
  rowsPerFile: number;
}

/** A job as its input and output see it. */
interface JobView {
  id: string;
  location: string;
  createTime: string;
  request: CreateRequest;
}

const status = (code: number, message: string): RpcStatus => ({ code, message });
/** The server refuses such jobs at create; a job still fails cleanly if one gets through. */
const NO_BIGQUERY = 'The emulator has no BigQuery host.';
const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A failed BigQuery call as the job's error. */
function bigqueryFailure(err: unknown, what: string): RpcStatus {
  const code = err instanceof BigQueryCallError ? err.code : 0;
  const message = `${what}: ${text(err)}`;
  if (code === 404) return status(RPC.NOT_FOUND, message);
  if (code === 403) return status(RPC.PERMISSION_DENIED, message);
  if (code === 409) return status(RPC.ALREADY_EXISTS, message);
  if (code === 400) return status(RPC.INVALID_ARGUMENT, message);
  return status(RPC.INTERNAL, message);
}

/** Whether a dataset or table is where the job runs (BigQuery spells `US` and `EU` in capitals). */
const sameLocation = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * Column types an input table may have: the service refuses arrays, structs, ranges, datetimes
 * and geographies.
 */
const INPUT_TYPES: ReadonlySet<string> = new Set(
  `STRING BYTES INTEGER INT64 FLOAT FLOAT64 NUMERIC BIGNUMERIC BOOLEAN BOOL TIMESTAMP DATE TIME
    JSON`.split(/\s+/),
);

/** The columns an output table adds after the input's. */
function resultColumns(anthropic: boolean): Column[] {
  return [
    { name: 'response', type: 'JSON' },
    { name: 'status', type: 'STRING' },
    ...(anthropic ? [] : [{ name: 'processed_time', type: 'TIMESTAMP' }]),
  ];
}

/** Microseconds since the epoch (a `tabledata.list` TIMESTAMP) as RFC 3339, which insertAll takes. */
function isoFromMicros(micros: string): string {
  const value = BigInt(micros);
  const ms = value / 1000n - (value % 1000n < 0n ? 1n : 0n);
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, -1)}${String(value - ms * 1000n).padStart(3, '0')}Z`;
}

/** The lines of every input file, in order. */
async function readFiles(uris: string[], blobs: BlobStore): Promise<Instance[] | RpcStatus> {
  const instances: Instance[] = [];
  for (const uri of uris) {
    try {
      for (const line of splitLines(await blobs.read(uri))) {
        instances.push({ input: parseLine(line) });
      }
    } catch (err) {
      const code = Number((err as { code?: unknown } | null)?.code);
      if (code === 404) return status(RPC.NOT_FOUND, `Input file not found: ${uri}.`);
      if (code === 403) return status(RPC.PERMISSION_DENIED, `Permission denied: ${uri}.`);
      return status(RPC.INTERNAL, `Failed to read ${uri}: ${text(err)}`);
    }
  }
  return instances;
}

/** Why a table cannot be a job's input, if it cannot. */
function tableProblem(columns: Column[], anthropic: boolean, uri: string): string | undefined {
  const named = (name: string) => columns.find((c) => c.name.toLowerCase() === name);
  for (const name of anthropic ? ['custom_id', 'request'] : ['request']) {
    if (!named(name)) return `The input table ${uri} has no ${name} column.`;
  }
  const requestType = named('request')?.type.toUpperCase();
  if (requestType !== 'JSON' && requestType !== 'STRING') {
    return `The request column of ${uri} must be JSON or STRING, not ${requestType}.`;
  }
  for (const column of resultColumns(anthropic)) {
    if (named(column.name)) {
      return `The input table ${uri} has a ${column.name} column: the output reserves that name.`;
    }
  }
  const unsupported = columns.find(
    (c) => c.mode === 'REPEATED' || !INPUT_TYPES.has(c.type.toUpperCase()),
  );
  if (unsupported) {
    const type = `${unsupported.mode === 'REPEATED' ? 'REPEATED ' : ''}${unsupported.type}`;
    return `Column ${unsupported.name} of ${uri} is of type ${type}, which batch prediction does not take.`;
  }
  return undefined;
}

/** The rows of the input table, checked first (see the module comment). */
async function readTable(
  job: JobView,
  table: TableRef,
  client: BigQueryClient,
): Promise<Inputs | RpcStatus> {
  const uri = tableUri(table);
  const { anthropic } = job.request;
  try {
    const { columns, location } = await client.table(table);
    if (!sameLocation(location, job.location)) {
      const message = `The input table ${uri} is in ${location}, the job in ${job.location}: they must be in the same location.`;
      return status(RPC.INVALID_ARGUMENT, message);
    }
    const problem = tableProblem(columns, anthropic, uri);
    if (problem) return status(RPC.INVALID_ARGUMENT, problem);
    const instances: Instance[] = [];
    for await (const page of client.rows(table)) {
      for (const cells of page) {
        const values = columns.map((c, i) => {
          const cell = cells?.[i] as { v?: unknown } | undefined;
          const v = cell?.v ?? null;
          return c.type.toUpperCase() === 'TIMESTAMP' && typeof v === 'string'
            ? isoFromMicros(v)
            : v;
        });
        const row = Object.fromEntries(columns.map((c, i) => [c.name, values[i]]));
        const cell = (name: string): unknown =>
          values[columns.findIndex((c) => c.name.toLowerCase() === name)];
        const request = cell('request');
        const customId = cell('custom_id');
        instances.push({
          input: {
            value: {
              ...(anthropic && customId !== null ? { custom_id: customId } : {}),
              ...(typeof request === 'string' ? { request: parseOrText(request) } : {}),
            },
          },
          columns: row,
        });
      }
    }
    const copied = columns.map(({ name, type, mode }) => ({
      name,
      type,
      ...(mode ? { mode } : {}),
    }));
    return { instances, columns: copied, where: uri };
  } catch (err) {
    return bigqueryFailure(err, `Failed to read the input table ${uri}`);
  }
}

/** A JSON text as its value; text that is not JSON stays text (the row then fails). */
function parseOrText(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

/** Reads a job's inputs, or the error that fails it. */
export async function readInputs(job: JobView, io: Io): Promise<Inputs | RpcStatus> {
  const { source, anthropic } = job.request;
  if (source.kind === 'gcs') {
    const instances = await readFiles(source.uris, io.blobs);
    if (!Array.isArray(instances)) return instances;
    const columns: Column[] = [
      ...(anthropic ? [{ name: 'custom_id', type: 'STRING' }] : []),
      { name: 'request', type: 'JSON' },
    ];
    return { instances, columns, where: source.uris.join(', ') };
  }
  if (!io.bigquery) return status(RPC.INTERNAL, NO_BIGQUERY);
  return readTable(job, source.table, io.bigquery);
}

/**
 * `predictions_<createTime>`, as the service names the table it creates in a dataset:
 * `2025-07-17T07:26:51.416917Z` gives `predictions_2025_07_17T07_26_51_416Z_917` (the ISO 8601
 * time with `_` for `-`, `:` and `.`, then its microseconds).
 */
export function outputTableName(createTime: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})(\d{3})Z$/.exec(createTime);
  if (!m) throw new Error(`not a create time: ${createTime}`);
  const [, y, mo, d, h, mi, s, ms, us] = m;
  return `predictions_${y}_${mo}_${d}T${h}_${mi}_${s}_${ms}Z_${us}`;
}

/** JSON text for a JSON column (a string is JSON text to insertAll), NULL when absent. */
const jsonText = (value: unknown): string | null =>
  value === undefined ? null : JSON.stringify(value);

/** The values of an output table row. */
function tableRow(row: Row, instance: Instance, anthropic: boolean): Record<string, unknown> {
  const { output } = row;
  const inputs = instance.columns ?? {
    ...(anthropic
      ? {
          custom_id:
            typeof output.custom_id === 'string' ? output.custom_id : jsonText(output.custom_id),
        }
      : {}),
    request: jsonText(output.request),
  };
  return {
    ...inputs,
    response: jsonText(output.response),
    status: output.status,
    ...(anthropic ? {} : { processed_time: output.processed_time }),
  };
}

/** The prediction file `index` (from 0) of `count`. */
export function predictionFile(index: number, count: number): string {
  if (count === 1) return 'predictions.jsonl';
  const number = (n: number) => String(n).padStart(5, '0');
  return `predictions_${number(index + 1)}-of-${number(count)}.jsonl`;
}

/** Rows per insertAll: BigQuery's recommended most. */
const INSERT_BATCH = 500;

/** Opens the job's output: a folder name, or the output table created (see the module comment). */
export async function openSink(job: JobView, inputs: Inputs, io: Io): Promise<Sink | RpcStatus> {
  const { destination, anthropic } = job.request;
  if (destination.kind === 'gcs') {
    const directory = `${destination.prefix.replace(/\/+$/, '')}/prediction-model-${job.createTime}`;
    return {
      info: { gcsOutputDirectory: directory },
      where: directory,
      batchRows: io.rowsPerFile,
      async write(rows, index, count) {
        // One file's text at a time: a large input is never one string.
        const uri = `${directory}/${predictionFile(index, count)}`;
        const content = rows.map(({ row }) => `${JSON.stringify(row.output)}\n`).join('');
        try {
          await io.blobs.write(uri, content, 'application/jsonl');
        } catch (err) {
          throw new Error(`Failed to write the output to ${uri}: ${text(err)}`);
        }
      },
    };
  }
  const client = io.bigquery;
  if (!client) return status(RPC.INTERNAL, NO_BIGQUERY);
  const { project, dataset } = destination;
  const table = { project, dataset, table: destination.table ?? outputTableName(job.createTime) };
  const uri = tableUri(table);
  try {
    const location = await client.datasetLocation(project, dataset);
    if (!sameLocation(location, job.location)) {
      const message = `The output dataset bq://${project}.${dataset} is in ${location}, the job in ${job.location}: they must be in the same location.`;
      return status(RPC.INVALID_ARGUMENT, message);
    }
    await client.createTable(table, [...inputs.columns, ...resultColumns(anthropic)]);
  } catch (err) {
    return bigqueryFailure(err, `Failed to create the output table ${uri}`);
  }
  return {
    info: { bigqueryOutputDataset: `bq://${project}.${dataset}`, bigqueryOutputTable: table.table },
    where: uri,
    batchRows: INSERT_BATCH,
    async write(rows) {
      const insert = rows.map(({ row, instance, index }) => ({
        insertId: `${job.id}-${index}`,
        json: tableRow(row, instance, anthropic),
      }));
      try {
        await client.insert(table, insert);
      } catch (err) {
        throw new Error(`Failed to write the output to ${uri}: ${text(err)}`);
      }
    },
  };
}
