/**
 * Ports: what the use cases need from the outside world, shaped by the use cases, not by SDKs.
 * Each has an adapter in `shared/adapters/` and an in-memory implementation used by the tests
 * (and, for the job store, by the offline stack when no Firestore emulator is installed).
 */
import type { CompletionEvent } from './events.js';
import type { JobRecord, JobStatus } from './jobs.js';
import type { Provider } from './models.js';
import type { BatchJobRequest, VertexBatchJob } from './vertex.js';

/** Reads input objects from Cloud Storage. */
export interface ObjectReader {
  /**
   * Streams the bytes of exactly this generation. Rejects with a PermanentError `INPUT.NOT_FOUND`
   * when that generation no longer exists, a TransientError when storage is unavailable.
   */
  read(bucket: string, name: string, generation: string): AsyncIterable<Uint8Array>;
}

/** Writes small objects (rejection reports) to Cloud Storage. */
export interface ObjectWriter {
  /** Creates or replaces `gs://bucket/name`. Transient failures are TransientError. */
  write(uri: string, content: string, contentType: string): Promise<void>;
}

/** The outcome of a conditional change: the record after it, or undefined when the change declined. */
export type RecordChange = (current: JobRecord) => JobRecord | undefined;

/** A page of outstanding records and the cursor of the next page. */
export interface OutstandingPage {
  records: JobRecord[];
  /** Opaque; undefined on the last page. */
  next: string | undefined;
}

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
  /** How many records of a provider have this status (admission control). */
  count(provider: Provider, status: JobStatus): Promise<number>;
  /** Records with `outstanding == true`, oldest first, `limit` at a time. */
  listOutstanding(limit: number, cursor?: string): Promise<OutstandingPage>;
}

/** A page of `list` results. */
export interface VertexJobPage {
  jobs: VertexBatchJob[];
  nextPageToken: string | undefined;
}

/** Vertex AI batch prediction jobs over REST. Errors are PermanentError or TransientError. */
export interface VertexJobs {
  create(location: string, request: BatchJobRequest): Promise<VertexBatchJob>;
  get(name: string): Promise<VertexBatchJob>;
  list(
    location: string,
    options: { filter?: string; pageSize?: number; pageToken?: string },
  ): Promise<VertexJobPage>;
  cancel(name: string): Promise<void>;
}

/** Publishes completion events to the completion topic. */
export interface EventPublisher {
  /** Resolves to the Pub/Sub message id. */
  publish(event: CompletionEvent): Promise<string>;
}

/** The clock, injectable for tests. */
export type Clock = () => Date;
