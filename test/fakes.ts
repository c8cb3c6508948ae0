/**
 * In-memory fakes of the ports, with fault injection, for handler and HTTP tests.
 */
import { createMemoryJobStore } from '../shared/adapters/memory-job-store.js';
import { loadConfig, type Config } from '../shared/config.js';
import { PermanentError, TransientError } from '../shared/core/errors.js';
import type { CompletionEvent } from '../shared/core/events.js';
import { createMemoryLogger } from '../shared/logger.js';
import type {
  BigQueryColumn,
  BigQueryTables,
  DatasetRef,
  EventPublisher,
  ObjectReader,
  ObjectWriter,
  VertexJobPage,
  TableRef,
  VertexJobs,
} from '../shared/ports.js';
import {
  isTerminalState,
  JOB_ID_LABEL,
  type BatchJobRequest,
  type VertexBatchJob,
} from '../shared/core/vertex.js';
import type { SubmitDeps } from '../shared/app/submit.js';
import type { PollDeps } from '../shared/app/poll.js';
import type { IncomingCloudEvent } from '../shared/core/storage-event.js';

export const PROJECT = 'demo-project';

/** A valid configuration for tests. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    GOOGLE_CLOUD_PROJECT: PROJECT,
    OUTPUT_URI_PREFIX: 'gs://acme-batch-output/results',
    COMPLETION_TOPIC: 'batch-events',
    ...overrides,
  });
}

/** An object store keyed by `bucket/name#generation`. */
export function createFakeReader(): ObjectReader & {
  put(bucket: string, name: string, generation: string, content: string | Buffer): void;
  /** The bytes of one generation, or undefined. */
  bytes(bucket: string, name: string, generation: string): Buffer | undefined;
  /** Deletes one generation (an overwrite or a delete). */
  remove(bucket: string, name: string, generation: string): void;
  failNext(err: Error): void;
  reads: number;
} {
  const objects = new Map<string, Buffer>();
  let fail: Error | undefined;
  const reader = {
    reads: 0,
    put(bucket: string, name: string, generation: string, content: string | Buffer) {
      objects.set(`${bucket}/${name}#${generation}`, Buffer.from(content));
    },
    bytes(bucket: string, name: string, generation: string) {
      return objects.get(`${bucket}/${name}#${generation}`);
    },
    remove(bucket: string, name: string, generation: string) {
      objects.delete(`${bucket}/${name}#${generation}`);
    },
    failNext(err: Error) {
      fail = err;
    },
    async *read(bucket: string, name: string, generation: string) {
      reader.reads++;
      if (fail) {
        const err = fail;
        fail = undefined;
        throw err;
      }
      const data = objects.get(`${bucket}/${name}#${generation}`);
      if (!data) {
        throw new PermanentError(
          'INPUT.NOT_FOUND',
          `gs://${bucket}/${name}#${generation} no longer exists`,
        );
      }
      // Small chunks for small files, to exercise lines split across chunks; 64 KiB otherwise.
      const size = data.length < 1 << 20 ? 7 : 1 << 16;
      for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
    },
    async list(bucket: string, prefix: string) {
      await Promise.resolve();
      // The live generation of each name: the highest one stored.
      const live = new Map<string, { name: string; generation: string; size: number }>();
      for (const [key, data] of objects) {
        const at = key.lastIndexOf('#');
        const path = key.slice(0, at);
        if (!path.startsWith(`${bucket}/`)) continue;
        const name = path.slice(bucket.length + 1);
        if (!name.startsWith(prefix)) continue;
        const generation = key.slice(at + 1);
        const seen = live.get(name);
        if (!seen || BigInt(generation) > BigInt(seen.generation))
          live.set(name, { name, generation, size: data.length });
      }
      return [...live.values()].sort((a, b) =>
        Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
      );
    },
  };
  return reader;
}

let fakeGeneration = 1_700_000_000_000_000n;

/** A new generation number, increasing across the process (as Cloud Storage's are per object). */
export function nextGeneration(): string {
  fakeGeneration += 1n;
  return String(fakeGeneration);
}

function splitGsUri(uri: string): [string, string] {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m?.[1] || !m[2]) throw new Error(`not an object URI: ${uri}`);
  return [m[1], m[2]];
}

type Op = 'create' | 'get' | 'list' | 'cancel';

/**
 * A writer that keeps what it wrote; `fail` makes the next writes, copies, streamed writes or
 * deletes throw. Copies read the exact source generation from `source` (the fake reader) and keep
 * its bytes in `copies`. With a `source`, what is written or copied can be read and listed back
 * through it (a new generation each), and `remove` deletes there too.
 */
export function createFakeWriter(source?: ReturnType<typeof createFakeReader>): ObjectWriter & {
  objects: Map<string, string>;
  copies: Map<string, Buffer>;
  fail(...errors: Error[]): void;
} {
  const objects = new Map<string, string>();
  const copies = new Map<string, Buffer>();
  const faults: Error[] = [];
  return {
    objects,
    copies,
    fail(...errors) {
      faults.push(...errors);
    },
    async write(uri, content) {
      await Promise.resolve();
      const err = faults.shift();
      if (err) throw err;
      if (objects.has(uri)) return;
      objects.set(uri, content);
      source?.put(...splitGsUri(uri), nextGeneration(), content);
    },
    async writeStream(uri, chunks) {
      const err = faults.shift();
      if (err) throw err;
      const parts: Buffer[] = [];
      for await (const chunk of chunks) parts.push(Buffer.from(chunk));
      if (objects.has(uri)) return;
      const content = Buffer.concat(parts);
      objects.set(uri, content.toString('utf8'));
      source?.put(...splitGsUri(uri), nextGeneration(), content);
    },
    async remove(uri) {
      await Promise.resolve();
      const err = faults.shift();
      if (err) throw err;
      objects.delete(uri);
      if (!source) return;
      const [bucket, name] = splitGsUri(uri);
      for (const o of await source.list(bucket, name))
        if (o.name === name) source.remove(bucket, name, o.generation);
    },
    async copy(from, uri) {
      await Promise.resolve();
      const err = faults.shift();
      if (err) throw err;
      if (copies.has(uri)) return;
      const bytes = source?.bytes(from.bucket, from.name, from.generation);
      if (!bytes) {
        throw new PermanentError(
          'INPUT.NOT_FOUND',
          `gs://${from.bucket}/${from.name}#${from.generation} no longer exists: this generation was replaced by a newer upload or deleted before it was submitted`,
        );
      }
      copies.set(uri, Buffer.from(bytes));
      source?.put(...splitGsUri(uri), nextGeneration(), bytes);
    },
  };
}

/** A Vertex fake: jobs in memory, states set by the test, faults per call. */
export function createFakeVertex(clock: () => Date = () => new Date()): VertexJobs & {
  jobs: Map<string, VertexBatchJob & { location: string; request?: BatchJobRequest }>;
  calls: Record<Op, number>;
  creates: { location: string; request: BatchJobRequest }[];
  /** The next calls of `op` fail with this (one per entry). */
  fail(op: Op, ...errors: Error[]): void;
  /** The next create makes the job but its answer is lost (a timeout). */
  loseNextCreateAnswer(): void;
  /** Forgets every queued fault. */
  clearFaults(): void;
  setState(name: string, patch: Partial<VertexBatchJob>): void;
  /** Adds a job directly (as if created earlier). */
  add(job: VertexBatchJob & { location: string }): void;
  /** Resolves when `count` creates have started, for races. */
  gate?: Promise<void>;
} {
  const jobs = new Map<string, VertexBatchJob & { location: string; request?: BatchJobRequest }>();
  const faults: Record<Op, Error[]> = { create: [], get: [], list: [], cancel: [] };
  const calls: Record<Op, number> = { create: 0, get: 0, list: 0, cancel: 0 };
  const creates: { location: string; request: BatchJobRequest }[] = [];
  let loseAnswer = false;
  let seq = 1000;
  const fault = (op: Op): void => {
    calls[op]++;
    const err = faults[op].shift();
    if (err) throw err;
  };
  const copy = (job: VertexBatchJob): VertexBatchJob => structuredClone(job);
  return {
    jobs,
    calls,
    creates,
    fail(op, ...errors) {
      faults[op].push(...errors);
    },
    loseNextCreateAnswer() {
      loseAnswer = true;
    },
    clearFaults() {
      for (const op of Object.keys(faults) as Op[]) faults[op] = [];
      loseAnswer = false;
    },
    setState(name, patch) {
      const job = jobs.get(name);
      if (!job) throw new Error(`no job ${name}`);
      Object.assign(job, patch);
    },
    add(job) {
      jobs.set(job.name, job);
    },
    async create(location, request, options) {
      await Promise.resolve();
      if (options?.notAfter && clock().getTime() >= options.notAfter.getTime()) {
        throw new TransientError('DEADLINE.EXCEEDED', 'create not sent: the claim ran out');
      }
      fault('create');
      creates.push({ location, request: structuredClone(request) });
      const name = `projects/510528649030/locations/${location}/batchPredictionJobs/${seq++}`;
      const job = {
        name,
        location,
        request,
        displayName: request.displayName,
        model: request.model,
        labels: { ...request.labels },
        state: 'JOB_STATE_PENDING',
        createTime: clock().toISOString(),
      };
      jobs.set(name, job);
      if (loseAnswer) {
        loseAnswer = false;
        throw new TransientError(
          'VERTEX.UNAVAILABLE',
          'Vertex AI create: socket hang up (timeout)',
        );
      }
      const { location: _l, request: _r, ...answer } = job;
      return copy(answer);
    },
    async get(name) {
      await Promise.resolve();
      fault('get');
      const job = jobs.get(name);
      if (!job)
        throw new PermanentError('VERTEX.NOT_FOUND', `Vertex AI get ${name}: HTTP 404`, {
          status: 404,
        });
      const { location: _l, request: _r, ...answer } = job;
      return copy(answer);
    },
    async list(location, { filter }): Promise<VertexJobPage> {
      await Promise.resolve();
      fault('list');
      const ids = [
        ...(filter ?? '').matchAll(new RegExp(`labels\\.${JOB_ID_LABEL}="([^"]+)"`, 'g')),
      ].map((m) => m[1]);
      const found = [...jobs.values()].filter(
        (j) =>
          j.location === location && (ids.length === 0 || ids.includes(j.labels?.[JOB_ID_LABEL])),
      );
      return {
        jobs: found.map(({ location: _l, request: _r, ...answer }) => copy(answer)),
        nextPageToken: undefined,
      };
    },
    async cancel(name) {
      await Promise.resolve();
      fault('cancel');
      const job = jobs.get(name);
      // Asynchronous and best effort, as on Vertex: the test decides how the job then ends.
      if (job && !isTerminalState(job.state ?? '')) job.state = 'JOB_STATE_CANCELLING';
    },
  };
}

/** A table of the BigQuery fake: its metadata and its rows (column → BigQuery JSON cell). */
export interface FakeTable {
  columns: BigQueryColumn[];
  rows: Record<string, string | null>[];
  location?: string;
  kind?: string;
}

/**
 * A BigQuery fake: tables and datasets in memory; `rows` pages by 2 (so paging is exercised);
 * `failNext` makes the next call throw. A table's `modified` changes with every `put`.
 */
export function createFakeBigQuery(): BigQueryTables & {
  put(uri: string, table: FakeTable): void;
  dataset(ref: DatasetRef): Promise<{ location: string } | undefined>;
  addDataset(projectDotDataset: string, location: string): void;
  failNext(err: Error): void;
  calls: { table: number; dataset: number; rows: number };
} {
  const tables = new Map<string, FakeTable & { modified: string }>();
  const datasets = new Map<string, string>();
  let version = 1;
  let fail: Error | undefined;
  const check = (): void => {
    const err = fail;
    fail = undefined;
    if (err) throw err;
  };
  const key = (ref: TableRef): string => `bq://${ref.project}.${ref.dataset}.${ref.table}`;
  const calls = { table: 0, dataset: 0, rows: 0 };
  return {
    calls,
    put(uri, table) {
      tables.set(uri, { ...table, modified: String(1_764_000_000_000 + version++) });
    },
    addDataset(name, location) {
      datasets.set(name, location);
    },
    failNext(err) {
      fail = err;
    },
    async table(ref) {
      await Promise.resolve();
      calls.table++;
      check();
      const t = tables.get(key(ref));
      if (!t) return undefined;
      return {
        columns: t.columns,
        rowCount: t.rows.length,
        location: t.location ?? 'us-central1',
        modified: t.modified,
        kind: t.kind ?? 'TABLE',
      };
    },
    async dataset(ref) {
      await Promise.resolve();
      calls.dataset++;
      check();
      const location = datasets.get(`${ref.project}.${ref.dataset}`);
      return location === undefined ? undefined : { location };
    },
    async *rows(ref, columns) {
      calls.rows++;
      check();
      const t = tables.get(key(ref));
      if (!t) throw new TransientError('BIGQUERY.UNAVAILABLE', `${key(ref)} vanished`);
      for (let i = 0; i < t.rows.length; i += 2) {
        await Promise.resolve();
        for (const row of t.rows.slice(i, i + 2)) yield columns.map((c) => row[c] ?? null);
      }
    },
  };
}

/** A publisher that keeps events; `fail` makes the next publishes throw. */
export function createFakePublisher(): EventPublisher & {
  events: CompletionEvent[];
  fail(...errors: Error[]): void;
  clearFaults(): void;
} {
  const events: CompletionEvent[] = [];
  const faults: Error[] = [];
  return {
    events,
    fail(...errors) {
      faults.push(...errors);
    },
    clearFaults() {
      faults.length = 0;
    },
    async publish(event) {
      await Promise.resolve();
      const err = faults.shift();
      if (err) throw err;
      events.push(structuredClone(event));
      return String(events.length);
    },
  };
}

/** A settable clock. */
export function createClock(start = '2026-11-26T10:00:00.000Z'): (() => Date) & {
  advance(ms: number): void;
  set(iso: string): void;
} {
  let now = Date.parse(start);
  const clock = () => new Date(now);
  return Object.assign(clock, {
    advance: (ms: number) => {
      now += ms;
    },
    set: (iso: string) => {
      now = Date.parse(iso);
    },
  });
}

/** All fakes wired as submit and poll dependencies. */
export function createWorld(configOverrides: Record<string, string> = {}) {
  const config = testConfig(configOverrides);
  const jobs = createMemoryJobStore();
  const reader = createFakeReader();
  const reports = createFakeWriter(reader);
  const clock = createClock();
  const vertex = createFakeVertex(clock);
  const publisher = createFakePublisher();
  const bigquery = createFakeBigQuery();
  const log = createMemoryLogger('debug');
  let owners = 0;
  const newOwner = () => `owner-${++owners}`;
  const submitDeps: SubmitDeps = {
    config,
    jobs,
    reader,
    reports,
    vertex,
    bigquery,
    publisher,
    log,
    clock,
    newOwner,
  };
  const pollDeps: PollDeps = { ...submitDeps };
  return {
    config,
    jobs,
    reader,
    reports,
    vertex,
    bigquery,
    publisher,
    log,
    clock,
    submitDeps,
    pollDeps,
  };
}

/** Three valid Gemini lines. */
export const GEMINI_LINES =
  ['The blender broke after two days.', 'Arrived early and works perfectly.', 'It is a blender.']
    .map((review) =>
      JSON.stringify({
        request: {
          contents: [{ role: 'user', parts: [{ text: `Classify the sentiment: ${review}` }] }],
        },
      }),
    )
    .join('\n') + '\n';

/** Two valid Anthropic lines. */
export const ANTHROPIC_LINES =
  [1, 2]
    .map((i) =>
      JSON.stringify({
        custom_id: `r${i}`,
        request: {
          messages: [{ role: 'user', content: `Review ${i}` }],
          anthropic_version: 'vertex-2023-10-16',
          max_tokens: 8,
        },
      }),
    )
    .join('\n') + '\n';

/** A finalize CloudEvent as the functions framework hands it to the handler. */
export function finalizeEvent(
  overrides: {
    bucket?: string;
    name?: string;
    generation?: string | number;
    metadata?: Record<string, string>;
    time?: string;
    id?: string;
    size?: string;
    contentEncoding?: string;
  } = {},
): IncomingCloudEvent {
  const bucket = overrides.bucket ?? 'acme-batch-input';
  const name = overrides.name ?? 'inputs/customer-reviews.jsonl';
  const generation = overrides.generation ?? '1764150067498213';
  return {
    id: overrides.id ?? '9318472105567283',
    type: 'google.cloud.storage.object.v1.finalized',
    source: `//storage.googleapis.com/projects/_/buckets/${bucket}`,
    subject: `objects/${name}`,
    time: overrides.time ?? '2026-11-26T09:59:00.000Z',
    data: {
      kind: 'storage#object',
      bucket,
      name,
      generation: typeof generation === 'number' ? generation : String(generation),
      metageneration: '1',
      size: overrides.size ?? '48213',
      ...(overrides.contentEncoding ? { contentEncoding: overrides.contentEncoding } : {}),
      contentType: 'application/jsonl',
      metadata: overrides.metadata,
      updated: overrides.time ?? '2026-11-26T09:59:00.000Z',
    },
  };
}
