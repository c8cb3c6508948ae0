/**
 * Ports: what the use cases need from the outside world, shaped by the use cases, not by SDKs.
 * Each has an adapter in `shared/adapters/` and an in-memory implementation used by the tests
 * (and, for the job store, by the offline stack when no Firestore emulator is installed).
 */
import type { CompletionEvent } from './core/events.js';
import type { JobRecord, JobStatus } from './core/jobs.js';
import type { BatchJobRequest, VertexBatchJob } from './core/vertex.js';

/** Reads input objects from Cloud Storage. */
export interface ObjectReader {
  /**
   * Streams the bytes of exactly this generation. Rejects with a PermanentError `INPUT.NOT_FOUND`
   * when that generation no longer exists, a TransientError when storage is unavailable.
   */
  read(bucket: string, name: string, generation: string): AsyncIterable<Uint8Array>;
  /**
   * Every object whose name starts with `prefix` (all pages), by name in byte order. Transient
   * failures are TransientError; a missing bucket is an empty list.
   */
  list(bucket: string, prefix: string): Promise<ListedObject[]>;
}

/** One object of a listing. */
export interface ListedObject {
  name: string;
  /** int64 as a string. */
  generation: string;
  /** Bytes. */
  size: number;
}

/**
 * Writes objects under a job's output prefix: rejection reports, the pinned input copy, and the
 * results digest (its files and its temporary parts).
 */
export interface ObjectWriter {
  /**
   * Creates `gs://bucket/name` unless it exists (an existing object is kept: what one job writes
   * there is the same on every attempt). Transient failures are TransientError.
   */
  write(uri: string, content: string, contentType: string): Promise<void>;
  /**
   * Like {@link write}, for content of any size produced as it is consumed (backpressure: the
   * next chunk is pulled when the last one was taken). Fails with TransientError when Cloud Storage
   * stops taking bytes for a while; the object is then not created. An existing object is kept.
   */
  writeStream(uri: string, chunks: AsyncIterable<Uint8Array>, contentType: string): Promise<void>;
  /** Deletes `gs://bucket/name` if it exists (idempotent). Transient failures are TransientError. */
  remove(uri: string): Promise<void>;
  /**
   * Copies exactly generation `source.generation` of `gs://source.bucket/source.name` to
   * `destinationUri` on the server side (a rewrite with `ifSourceGenerationMatch`), unless the
   * destination exists already (kept: it is the same copy). Rejects with PermanentError
   * `INPUT.NOT_FOUND` when that generation no longer exists (replaced or deleted), TransientError
   * otherwise (403 included: permissions may still be propagating).
   */
  copy(
    source: { bucket: string; name: string; generation: string },
    destinationUri: string,
  ): Promise<void>;
}

/** The outcome of a conditional change: the record after it, or undefined when the change declined. */
export type RecordChange = (current: JobRecord) => JobRecord | undefined;

/** A page of outstanding records and the cursor of the next page. */
export interface OutstandingPage {
  records: JobRecord[];
  /** Opaque; undefined on the last page. */
  next: string | undefined;
}

/** What {@link JobStore.listRecent} returns: filters and a limit. */
export interface RecentQuery {
  /** Only records in one of these statuses; absent or empty: any status. */
  statuses?: readonly JobStatus[];
  /** Only records created at or after this instant (RFC 3339 UTC, as `toISOString()` writes it). */
  since?: string;
  /** At most this many records, a whole number from 1 to {@link MAX_RECENT_LIMIT}. */
  limit: number;
}

/** The most records one {@link JobStore.listRecent} call returns. */
export const MAX_RECENT_LIMIT = 1000;

/** Stores job records (Firestore). Every change is atomic with respect to concurrent changes. */
export interface JobStore {
  /** Creates the record unless one with its id exists; returns the stored record either way. */
  createIfAbsent(record: JobRecord): Promise<{ created: boolean; record: JobRecord }>;
  /** The record, or undefined. */
  get(jobId: string): Promise<JobRecord | undefined>;
  /**
   * Applies `change` to the current record atomically (retrying on contention). `change` may run
   * more than once and must be pure; returning undefined declines (nothing is written).
   * Resolves to the written record, or undefined when declined or absent.
   */
  update(jobId: string, change: RecordChange): Promise<JobRecord | undefined>;
  /** How many records of a queue (`JobRecord.queue`) are WAITING (admission control). */
  countWaiting(queue: string): Promise<number>;
  /**
   * Takes one of `capacity` slots of `pool` for `jobId`, atomically (a transaction over the slot
   * documents), so concurrent submissions never exceed the capacity. True when `jobId` holds a
   * slot (taken now, or already held); false when all are taken. A slot whose holder's record is
   * missing or no longer holds capacity (`holdsCapacity` in shared/core/transitions.ts) counts as
   * free (a release that was lost in a crash).
   */
  reserveSlot(pool: string, jobId: string, capacity: number): Promise<boolean>;
  /** Frees the slot of `pool` held by `jobId`, if any (idempotent). */
  releaseSlot(pool: string, jobId: string): Promise<void>;
  /** Records with `outstanding == true`, oldest first, `limit` at a time. */
  listOutstanding(limit: number, cursor?: string): Promise<OutstandingPage>;
  /**
   * Records newest first (`createTime` descending, then job id descending), optionally only some
   * statuses and only those created since an instant; for operators (`batch-courier jobs`). Throws
   * a RangeError for a limit outside 1..{@link MAX_RECENT_LIMIT}.
   */
  listRecent(query: RecentQuery): Promise<JobRecord[]>;
}

/** A page of `list` results. */
export interface VertexJobPage {
  jobs: VertexBatchJob[];
  nextPageToken: string | undefined;
}

/** Vertex AI batch prediction jobs over REST. Errors are PermanentError or TransientError. */
export interface VertexJobs {
  /**
   * Creates a job. With `notAfter`, the request is not sent once that time has passed (the
   * caller's claim may have been taken over meanwhile: an instance frozen between its fence and
   * this call must not create), and it is given no longer than until then to answer.
   */
  create(
    location: string,
    request: BatchJobRequest,
    options?: { notAfter?: Date },
  ): Promise<VertexBatchJob>;
  get(name: string): Promise<VertexBatchJob>;
  list(
    location: string,
    options: { filter?: string; pageSize?: number; pageToken?: string },
  ): Promise<VertexJobPage>;
  cancel(name: string): Promise<void>;
}

/** A BigQuery table, `bq://project.dataset.table` split into its parts. */
export interface TableRef {
  project: string;
  dataset: string;
  table: string;
}

/** A BigQuery dataset. */
export interface DatasetRef {
  project: string;
  dataset: string;
}

/** A top-level column of a table's schema, as `tables.get` describes it. */
export interface BigQueryColumn {
  name: string;
  /** `STRING`, `JSON`, `RECORD`, `INTEGER`, … (legacy names as the API returns them). */
  type: string;
  /** `NULLABLE` (also when the API omits it), `REQUIRED` or `REPEATED`. */
  mode: string;
}

/** What `tables.get` tells about a table. */
export interface BigQueryTable {
  /** Top-level columns, in schema order. */
  columns: BigQueryColumn[];
  /** `numRows` (0 when absent). */
  rowCount: number;
  /** The dataset's location as BigQuery spells it: `US`, `EU`, `us-central1`, … */
  location: string;
  /** `lastModifiedTime` (milliseconds since the epoch, as the API's string). */
  modified: string;
  /** `type`: `TABLE`, `VIEW`, `EXTERNAL`, `SNAPSHOT`, … */
  kind: string;
}

/**
 * BigQuery over REST: what manifests need (README "Manifests"). Errors: TransientError
 * `BIGQUERY.UNAVAILABLE` (5xx, 429, timeouts) or `BIGQUERY.PERMISSION_DENIED` (403: IAM may
 * still be propagating), PermanentError `BIGQUERY.INVALID_ARGUMENT` (another 4xx).
 */
export interface BigQueryTables {
  /** The table's metadata; undefined when the table or its dataset does not exist. */
  table(ref: TableRef): Promise<BigQueryTable | undefined>;
  /** The dataset's location; undefined when it does not exist. */
  dataset(ref: DatasetRef): Promise<{ location: string } | undefined>;
  /**
   * Every row of the table (`tabledata.list`, page after page: one page in memory at a time), as
   * the values of `columns` in that order: each cell is BigQuery's JSON encoding of the value (a
   * string for STRING and JSON columns; a JSON column holds JSON text) or null.
   */
  rows(ref: TableRef, columns: readonly string[]): AsyncIterable<(string | null)[]>;
}

/** Publishes completion events to the completion topic. */
export interface EventPublisher {
  /** Resolves to the Pub/Sub message id. */
  publish(event: CompletionEvent): Promise<string>;
}

/** The clock, injectable for tests. */
export type Clock = () => Date;
