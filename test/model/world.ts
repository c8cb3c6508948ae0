/**
 * The simulated world of the model-based test: the real submit and poll use cases over in-memory
 * fakes (or the real Firestore adapter), with Eventarc's pending deliveries, crashes at any side
 * effect, and a record of everything the invariants need (uploaded bytes, creates, publishes).
 */
import { pollBatchJobs, type PollDeps } from '../../shared/app/poll.js';
import { handleStorageEvent, type SubmitDeps } from '../../shared/app/submit.js';
import { createMemoryJobStore } from '../../shared/adapters/memory-job-store.js';
import type { Config } from '../../shared/config.js';
import type { CompletionEvent } from '../../shared/core/events.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import { createMemoryLogger } from '../../shared/logger.js';
import type { JobStore } from '../../shared/ports.js';
import { isTerminalState, type BatchJobRequest } from '../../shared/core/vertex.js';
import type { TransitionName } from '../../shared/core/transitions.js';
import {
  createClock,
  createFakeBigQuery,
  createFakePublisher,
  createFakeReader,
  createFakeVertex,
  createFakeWriter,
  finalizeEvent,
  testConfig,
  type FakeTable,
} from '../fakes.js';

export const BUCKET = 'model-input';
/** The project of the model's BigQuery datasets. */
export const BQ_PROJECT = 'model-proj';

/** The model's dataset of `kind` in a region (a dataset has one location). */
export function datasetOf(kind: 'prompts' | 'results', location: string): string {
  return `${kind}_${location.replace(/-/g, '_')}`;
}

/** Where an invocation dies: after its n-th side effect, a transition's write, or its create. */
export type CrashPoint = number | TransitionName | 'create' | undefined;

/** The function instance dying: every call after the chosen one fails with it. */
export class Crash extends Error {
  override name = 'Crash';
}

/** What a manifest upload asked for (the model's own account, for the invariants). */
export interface ManifestSpec {
  source: { kind: 'files'; uris: string[] } | { kind: 'table'; uri: string };
  /** As written in the manifest; undefined: the job's own prefix. */
  destination: string | undefined;
}

/** One uploaded object generation. */
export interface Upload {
  name: string;
  generation: string;
  jobId: string;
  bytes: Buffer;
  metadata: Record<string, string>;
  time: string;
  /** Set when the object is a manifest. */
  manifest?: ManifestSpec;
}

/** One generation of a data file (a file manifests read; no event, outside INPUT_PREFIX). */
export interface DataFile {
  name: string;
  generation: string;
  bytes: Buffer;
}

/** A create the fake Vertex received, with what the invariants check at that moment. */
export interface CreateSeen {
  jobId: string;
  request: BatchJobRequest;
  /** Other inputs with a live Claude job just before this create (Claude creates only). */
  claudeRunning: number;
  /** The record as the store held it when the create was sent. */
  record: JobRecord | undefined;
  /** A BigQuery source as it was when the create was sent (what the model's Vertex reads). */
  table: FakeTable | undefined;
  /** True when the create made a job (false: refused before or by a fault). */
  made: boolean;
  /** The job it made. */
  job: string | undefined;
}

/** A publish, with the record as the store held it at that moment. */
export interface PublishSeen {
  event: CompletionEvent;
  record: JobRecord | undefined;
  /** Jobs of this input Vertex was still running (not ended, not being cancelled) then. */
  liveJobs: string[];
}

export interface WorldOptions {
  config?: Record<string, string>;
  /** A job store to use instead of the in-memory one (the Firestore tier). */
  jobs?: JobStore;
}

export type World = ReturnType<typeof createModelWorld>;

/** Builds an empty world. */
export function createModelWorld(options: WorldOptions = {}) {
  const config: Config = testConfig({
    ANTHROPIC_MAX_CONCURRENT_JOBS: '2',
    MAX_QUEUE_HOURS: '12',
    // Inputs are under inputs/; the files manifests read (data/) are not inputs themselves.
    INPUT_PREFIX: 'inputs/',
    ALLOWED_BIGQUERY_DATASETS: '*',
    ...options.config,
  });
  const clock = createClock();
  const jobs = options.jobs ?? createMemoryJobStore();
  const reader = createFakeReader();
  const reports = createFakeWriter(reader);
  const vertex = createFakeVertex(clock);
  const publisher = createFakePublisher();
  const bigquery = createFakeBigQuery();
  for (const location of ['us-central1', 'europe-west4', 'us-east5']) {
    bigquery.addDataset(`${BQ_PROJECT}.${datasetOf('prompts', location)}`, location);
    bigquery.addDataset(`${BQ_PROJECT}.${datasetOf('results', location)}`, location);
  }
  /** The model's copy of every table it put in the fake BigQuery (reading it costs no fault). */
  const tables = new Map<string, FakeTable>();
  /** What the model's Vertex reads for a BigQuery source: the table as it was at the create. */
  const tableAtCreate = new WeakMap<BatchJobRequest, FakeTable>();
  const log = createMemoryLogger('error');
  let owners = 0;
  const newOwner = (): string => `w${++owners}`;

  const uploads: Upload[] = [];
  const data: DataFile[] = [];
  const creates: CreateSeen[] = [];
  const publishes: PublishSeen[] = [];
  /** Deliveries Eventarc still owes (not yet acknowledged), by upload index. */
  const pending: number[] = [];
  /**
   * Crashes, stalls, lost answers and store faults so far: only after one of these may an outcome
   * be published twice (with the same id).
   */
  const disruptions = { count: 0 };
  /** Jobs Vertex forgot (a `vertex-forget`): their creates no longer count. */
  const forgotten: string[] = [];
  /** Inputs put in a queue behind nobody of their own model and region. */
  const queueViolations: string[] = [];
  /** Invocations frozen mid-way (an instance stalled), waiting to be resumed. */
  const frozen: { label: string; resume: () => void; done: Promise<unknown> }[] = [];
  let generation = 1764150000000000;

  // Observe creates and publishes on their way through, for the invariants.
  const create = vertex.create.bind(vertex);
  vertex.create = async (location, request, options) => {
    if (options?.notAfter && clock().getTime() >= options.notAfter.getTime()) {
      return create(location, request, options); // refused before anything is sent
    }
    const claude = request.model.includes('/anthropic/');
    const live = new Set(
      [...vertex.jobs.values()]
        .filter(
          (j) =>
            j.model?.includes('/anthropic/') &&
            !/SUCCEEDED|FAILED|CANCELLED|EXPIRED|CANCELLING/.test(j.state ?? ''),
        )
        .map((j) => j.displayName),
    );
    live.delete(request.displayName);
    const input = request.inputConfig;
    const source =
      'bigquerySource' in input ? tables.get(input.bigquerySource.inputUri) : undefined;
    const table = source && structuredClone(source);
    if (table) tableAtCreate.set(request, table);
    const seen: CreateSeen = {
      jobId: request.displayName,
      request: structuredClone(request),
      claudeRunning: claude ? live.size : 0,
      record: await jobs.get(request.displayName).catch(() => undefined),
      table,
      made: false,
      job: undefined,
    };
    creates.push(seen);
    try {
      return await create(location, request, options);
    } finally {
      seen.job = [...vertex.jobs.values()].find((j) => j.request === request)?.name;
      seen.made = seen.job !== undefined;
    }
  };
  const publish = publisher.publish.bind(publisher);
  publisher.publish = async (event) => {
    const record = await jobs.get(event.jobId).catch(() => undefined);
    const liveJobs = [...vertex.jobs.values()]
      .filter(
        (j) =>
          j.displayName === event.jobId &&
          !isTerminalState(j.state ?? '') &&
          j.state !== 'JOB_STATE_CANCELLING',
      )
      .map((j) => j.name);
    const id = await publish(event);
    publishes.push({ event: structuredClone(event), record, liveJobs });
    return id;
  };

  const base = {
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

  /**
   * Runs one invocation; resolves to its outcome, `error: <name>`, or `frozen` when it stalled
   * (it is then kept, to be resumed by a later action or at quiescence).
   */
  async function run(
    label: string,
    body: (deps: SubmitDeps & PollDeps) => Promise<string>,
    crashAfter: CrashPoint,
    freezeAt: number | undefined,
  ): Promise<string> {
    let signal = (): void => undefined;
    let resume = (): void => undefined;
    const stalled = new Promise<'frozen'>((r) => (signal = () => r('frozen')));
    const gate = new Promise<void>((r) => (resume = r));
    const deps = invocation(
      crashAfter,
      freezeAt === undefined ? undefined : { at: freezeAt, signal, gate },
    );
    const done = body(deps).catch(
      (err: unknown) => `error: ${err instanceof Error ? err.name : String(err)}`,
    );
    const first = await Promise.race([done, stalled]);
    if (first === 'frozen') frozen.push({ label, resume, done });
    return first;
  }
  const sleep = async (): Promise<void> => undefined;

  /**
   * Dependencies for one invocation that dies after its `crashAfter`-th side effect (store write,
   * storage write, Vertex create or cancel, publish): that call happens, then it and every later
   * call throw {@link Crash}, as if the instance were gone.
   */
  function invocation(
    crashAfter: CrashPoint,
    freeze?: { at: number; signal: () => void; gate: Promise<void> },
  ): SubmitDeps & PollDeps {
    let calls = 0;
    let dead = false;
    const effect = async <T>(run: () => Promise<T>, transition?: string): Promise<T> => {
      if (dead) throw new Crash('the instance is gone');
      if (freeze && calls + 1 === freeze.at) {
        // The instance stalls just before this side effect (a frozen VM), and resumes later.
        disruptions.count++;
        freeze.signal();
        await freeze.gate;
      }
      const out = await run();
      calls++;
      // A number: after that many side effects; a name: after the first write of that transition
      // (or after the first Vertex create, `create`: the job exists, its answer is lost).
      const due =
        typeof crashAfter === 'number'
          ? calls >= crashAfter
          : crashAfter !== undefined && crashAfter === transition && !!out;
      if (due) {
        dead = true;
        disruptions.count++;
        throw new Crash(`crashed after side effect ${calls}`);
      }
      return out;
    };
    const read = async <T>(run: () => Promise<T>): Promise<T> => {
      if (dead) throw new Crash('the instance is gone');
      return run();
    };
    return {
      ...base,
      sleep,
      jobs: {
        createIfAbsent: (r) => effect(() => jobs.createIfAbsent(r)),
        get: (id) => read(() => jobs.get(id)),
        update: (id, change) =>
          effect(
            async () => {
              let queued: JobRecord | undefined;
              const out = await jobs.update(id, (cur) => {
                const next = change(cur);
                // Waiting for queue order (not throttled, not a Claude slot): must be behind an
                // older waiting input of the same model and region.
                queued =
                  next?.status === 'WAITING' &&
                  cur.status === 'SUBMITTING' &&
                  next.waitAttempts === cur.waitAttempts &&
                  next.provider === 'google'
                    ? next
                    : undefined;
                return next;
              });
              const q = queued;
              if (out && q) {
                // The queue is recomputed here, not read from the record: the model's own view.
                const { records } = await jobs.listOutstanding(1000);
                const ahead = records.filter(
                  (r) =>
                    r.jobId !== q.jobId &&
                    r.status === 'WAITING' &&
                    r.model === q.model &&
                    r.location === q.location,
                );
                if (ahead.length === 0) {
                  queueViolations.push(
                    `${q.jobId} (${q.model} in ${q.location}) waits though no input of its model and region is waiting`,
                  );
                }
              }
              return out;
            },
            (change as { transition?: string }).transition,
          ),
        countWaiting: (q) => read(() => jobs.countWaiting(q)),
        reserveSlot: (p, id, c) => effect(() => jobs.reserveSlot(p, id, c)),
        releaseSlot: (p, id) => effect(() => jobs.releaseSlot(p, id)),
        listOutstanding: (l, c) => read(() => jobs.listOutstanding(l, c)),
        listRecent: (q) => read(() => jobs.listRecent(q)),
      },
      reader: {
        read: (b, n, g) => {
          if (dead) throw new Crash('the instance is gone');
          return reader.read(b, n, g);
        },
        list: (b, p) => read(() => reader.list(b, p)),
      },
      reports: {
        write: (u, c, t) => effect(() => reports.write(u, c, t)),
        copy: (s, d) => effect(() => reports.copy(s, d)),
        writeStream: (u, c, t) => effect(() => reports.writeStream(u, c, t)),
        remove: (u) => effect(() => reports.remove(u)),
      },
      vertex: {
        create: (l, r, o) => effect(() => vertex.create(l, r, o), 'create'),
        cancel: (n) => effect(() => vertex.cancel(n)),
        get: (n) => read(() => vertex.get(n)),
        list: (l, o) => read(() => vertex.list(l, o)),
      },
      bigquery: {
        table: (ref) => read(() => bigquery.table(ref)),
        dataset: (ref) => read(() => bigquery.dataset(ref)),
        rows: (ref, columns) => {
          if (dead) throw new Crash('the instance is gone');
          return bigquery.rows(ref, columns);
        },
      },
      publisher: { publish: (e) => effect(() => publisher.publish(e)) },
    };
  }

  return {
    config,
    clock,
    jobs,
    reader,
    reports,
    vertex,
    publisher,
    bigquery,
    tables,
    tableAtCreate,
    log,
    uploads,
    data,
    creates,
    publishes,
    pending,
    frozen,
    disruptions,
    forgotten,
    queueViolations,

    /** A new generation of `name`: stored, and its finalize event owed by Eventarc. */
    upload(
      name: string,
      bytes: Buffer,
      metadata: Record<string, string>,
      manifest?: ManifestSpec,
    ): Upload {
      generation += 1 + (generation % 7);
      const gen = String(generation);
      reader.put(BUCKET, name, gen, bytes);
      const up: Upload = {
        name,
        generation: gen,
        jobId: deriveJobId(BUCKET, name, gen),
        bytes,
        metadata,
        time: clock().toISOString(),
        ...(manifest ? { manifest } : {}),
      };
      uploads.push(up);
      pending.push(uploads.length - 1);
      return up;
    },

    /** A new generation of a data file (outside INPUT_PREFIX: Eventarc's event is ignored). */
    putData(name: string, bytes: Buffer): DataFile {
      generation += 1 + (generation % 7);
      const file = { name, generation: String(generation), bytes };
      reader.put(BUCKET, name, file.generation, bytes);
      data.push(file);
      return file;
    },

    /** Deletes the newest generation of a data file. */
    removeData(name: string): boolean {
      const live = [...data].reverse().find((d) => d.name === name);
      if (!live || !reader.bytes(BUCKET, name, live.generation)) return false;
      reader.remove(BUCKET, name, live.generation);
      return true;
    },

    /** Puts a table in the fake BigQuery (a new `lastModifiedTime`), keeping the model's copy. */
    putTable(uri: string, table: FakeTable): void {
      tables.set(uri, structuredClone(table));
      bigquery.put(uri, table);
    },

    /** Consumes a BigQuery fault still armed (quiescence). */
    async clearBigQueryFault(): Promise<void> {
      await bigquery.table({ project: BQ_PROJECT, dataset: 'none', table: 'none' }).catch(() => 0);
    },

    /** Deletes the newest generation of `name` (no event: Eventarc sends finalize only). */
    remove(name: string): void {
      const last = [...uploads].reverse().find((u) => u.name === name);
      if (last) reader.remove(BUCKET, name, last.generation);
    },

    /**
     * Delivers the event of upload `index` once (`copies` at the same time). The delivery stays
     * owed until one answer acknowledges it; a stale event is acknowledged and dropped.
     */
    async deliver(
      index: number,
      copies: number,
      crashAfter?: CrashPoint,
      freezeAt?: number,
    ): Promise<string[]> {
      const up = uploads[index];
      if (!up) return [];
      const event = finalizeEvent({
        bucket: BUCKET,
        name: up.name,
        generation: up.generation,
        metadata: up.metadata,
        time: up.time,
        size: String(up.bytes.length),
      });
      const results = await Promise.all(
        Array.from({ length: copies }, (_, i) =>
          run(
            `delivery of upload #${index}`,
            (deps) => handleStorageEvent(event, deps).then((o) => o.outcome),
            i === 0 ? crashAfter : undefined,
            i === 0 ? freezeAt : undefined,
          ),
        ),
      );
      if (results.some((r) => !r.startsWith('error') && r !== 'frozen')) {
        const at = pending.indexOf(index);
        if (at >= 0) pending.splice(at, 1);
      }
      return results;
    },

    /** One poll run (or `overlap` runs at once), each possibly dying or stalling mid-way. */
    async poll(
      overlap: number,
      crashAfter?: CrashPoint,
      budgetMs?: number,
      freezeAt?: number,
    ): Promise<string[]> {
      return Promise.all(
        Array.from({ length: overlap }, (_, i) =>
          run(
            'poll run',
            (deps) =>
              pollBatchJobs({ ...deps, ...(budgetMs ? { options: { budgetMs } } : {}) }).then(
                (s) => `ok${s.truncated ? ' truncated' : ''}`,
              ),
            i === 0 ? crashAfter : undefined,
            i === 0 ? freezeAt : undefined,
          ),
        ),
      );
    },

    /** Resumes a frozen invocation and waits for it to end. */
    async resume(which: number): Promise<string> {
      const [entry] = frozen.splice(which % Math.max(1, frozen.length), 1);
      if (!entry) return 'nothing frozen';
      entry.resume();
      await entry.done;
      return `resumed the ${entry.label}`;
    },

    /** Resumes every frozen invocation. */
    async resumeAll(): Promise<void> {
      while (frozen.length > 0) await this.resume(0);
    },

    /** True while an invocation is frozen. */
    anyFrozen: (): boolean => frozen.length > 0,
  };
}
