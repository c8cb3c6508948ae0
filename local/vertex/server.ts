/**
 * A local Vertex AI batch prediction emulator: the REST v1 `batchPredictionJobs` surface the
 * product uses (create, get, list, cancel) on the production paths
 * (`/v1/projects/{P}/locations/{L}/batchPredictionJobs...`), plain HTTP on 127.0.0.1, so the code
 * under test only swaps its endpoint (`VERTEX_AI_EMULATOR_HOST`). `GET /` answers `Ok`. It never
 * logs: prompts and answers are customer data. Jobs read JSONL files or a BigQuery table and
 * write JSONL files or a BigQuery table (see `io.ts`), with realistic outputs: rows shuffled,
 * across several files for a large input, with usage numbers, and some rows failed on purpose
 * (see `failures.ts` and {@link VertexEmulatorOptions}). BigQuery is reached over its REST API,
 * as the service reaches it, so any BigQuery emulator does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJson, sendJson, serve, target } from '../http.js';
import {
  ANTHROPIC_CONCURRENT_JOBS,
  apiError,
  DEFAULT_PAGE_SIZE,
  invalid,
  isTerminal,
  MAX_PAGE_SIZE,
  type JobState,
} from './api-facts.js';
import { BigQueryClient } from './bigquery.js';
import { RowFailures } from './failures.js';
import { Faults, type VertexFault, type VertexOp } from './faults.js';
import type { BlobStore } from './io.js';
import { Jobs, type Job, type Timing, type VertexJobJson } from './jobs.js';
import { bigqueryUrl, outputOptions } from './options.js';
import { matchesFilter, parseJobFilter, validateCreate } from './request.js';

export type { BlobStore, JobState, VertexFault, VertexJobJson, VertexOp };
export { OptionsError } from './options.js';

/** Options of {@link startVertexEmulator}. */
export interface VertexEmulatorOptions {
  /** Input and output objects. */
  blobs: BlobStore;
  /** TCP port on 127.0.0.1; 0 or absent lets the OS choose. */
  port?: number;
  /**
   * How long jobs stay in each state, in ms; `Infinity` means until {@link VertexEmulator.advance}.
   * Defaults: pending 500, running 1000, cancelling min(100, runningMs).
   */
  timing?: Partial<Timing>;
  /**
   * Share of the valid requests that fail (0 to 1), picked by a hash of the request, with a mix of
   * reasons: mostly transient ones (quota, internal, unavailable, deadline), which fail only the
   * first time the emulator sees the request, and some permanent (invalid argument). Default:
   * `VERTEX_EMULATOR_FAILED_ROW_SHARE`, else 0. Prompts containing `[transient]` or `[invalid]`
   * fail whatever the share.
   */
  failedRowShare?: number;
  /**
   * At most this many rows per prediction file: a larger input gets `predictions_00001-of-0000N.jsonl`
   * files instead of one `predictions.jsonl`. Default: `VERTEX_EMULATOR_ROWS_PER_FILE`, else 1,000.
   */
  rowsPerFile?: number;
  /**
   * `host:port` (or `http://host:port`) of the BigQuery emulator jobs read from and write to.
   * Default: `BIGQUERY_EMULATOR_HOST`; with neither, a job over BigQuery is refused (400).
   */
  bigqueryHost?: string;
}

/** A running emulator. */
export interface VertexEmulator {
  /** `127.0.0.1:port`, the `VERTEX_AI_EMULATOR_HOST` form. */
  readonly host: string;
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Adds a fault (see {@link VertexFault}). */
  inject(fault: VertexFault): void;
  /** Forgets all jobs, faults, request counters and requests seen, and stops all job timers. */
  reset(): void;
  /** Snapshots of all jobs, oldest first. */
  jobs(): VertexJobJson[];
  /** Requests received per kind (faulted ones included); live, zeroed by reset. */
  readonly requests: Record<VertexOp, number>;
  /** Moves one job (name or numeric id), or every unfinished job, one step now. */
  advance(name?: string): Promise<void>;
  /** Advances every job until none is unfinished. */
  settle(): Promise<void>;
  /** Resolves when no job is unfinished, or the emulator closes. */
  whenIdle(): Promise<void>;
  /** Stops the server and every timer. */
  close(): Promise<void>;
}

/** One emulator stands for one project: this number aliases every project id. */
const PROJECT_NUMBER = '123456789012';
const PATH =
  /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/batchPredictionJobs(?:\/([^/:]+)(:cancel)?)?$/;
const OPS: Record<string, VertexOp> = {
  'POST jobs': 'create',
  'GET jobs': 'list',
  'GET job': 'get',
  'POST cancel': 'cancel',
};

/**
 * Starts an emulator on 127.0.0.1 (see the module comment); a bad option, or a bad value in an
 * environment variable it defaults from, is an {@link OptionsError} naming it.
 */
export async function startVertexEmulator(options: VertexEmulatorOptions): Promise<VertexEmulator> {
  const { failedRowShare, rowsPerFile } = outputOptions(options);
  const bigqueryBase = bigqueryUrl(options.bigqueryHost);
  const bigquery = bigqueryBase === undefined ? undefined : new BigQueryClient(bigqueryBase);
  const failures = new RowFailures(failedRowShare);
  const {
    pendingMs = 500,
    runningMs = 1000,
    cancellingMs = Math.min(100, runningMs),
  } = options.timing ?? {};
  const timing = { pendingMs, runningMs, cancellingMs };
  const faults = new Faults();
  const io = { blobs: options.blobs, bigquery, rowsPerFile };
  const jobs = new Jobs(io, timing, PROJECT_NUMBER, failures);
  const requests: Record<VertexOp, number> = { create: 0, get: 0, list: 0, cancel: 0 };

  const sameProject = (job: Job, project: string): boolean =>
    project === PROJECT_NUMBER || job.project === project || job.project === PROJECT_NUMBER;

  const find = (project: string, location: string, id: string): Job => {
    if (!/^\d+$/.test(id)) throw invalid(`Invalid BatchPredictionJob resource name: id "${id}".`);
    const job = jobs.all.get(id);
    if (!job || job.location !== location || !sameProject(job, project)) {
      throw apiError(
        404,
        `The BatchPredictionJob projects/${project}/locations/${location}/batchPredictionJobs/${id} does not exist.`,
      );
    }
    return job;
  };

  const create = (project: string, location: string, body: unknown): Job => {
    const request = validateCreate(body, location);
    const overBigQuery = [request.source, request.destination].some((e) => e.kind === 'bigquery');
    if (overBigQuery && !bigquery) {
      const message =
        'This Vertex emulator has no BigQuery: start it with bigqueryHost or BIGQUERY_EMULATOR_HOST.';
      throw apiError(400, message, 'FAILED_PRECONDITION');
    }
    const unfinishedClaude = [...jobs.all.values()].filter(
      (j) => j.request.anthropic && sameProject(j, project) && !isTerminal(j.state),
    ).length;
    if (request.anthropic && unfinishedClaude >= ANTHROPIC_CONCURRENT_JOBS) {
      throw apiError(
        429,
        `Quota exceeded for aiplatform.googleapis.com/anthropic_batch_prediction_jobs: at most ${ANTHROPIC_CONCURRENT_JOBS} concurrent Claude batch prediction jobs per project.`,
      );
    }
    return jobs.create(project, location, request);
  };

  const list = (project: string, location: string, query: URLSearchParams): object => {
    const filterText = query.get('filter') ?? '';
    const filter = parseJobFilter(filterText);
    const refusal = faults.listRefusal(filter);
    if (refusal) throw apiError(400, refusal.message);
    const size = Number(query.get('pageSize') || DEFAULT_PAGE_SIZE);
    if (!Number.isInteger(size) || size < 0)
      throw invalid(`Invalid pageSize "${query.get('pageSize')}".`);
    const pageSize = Math.min(size || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    // A page token names the last job served and the filter it was served for.
    let before = Infinity;
    const token = query.get('pageToken');
    if (token) {
      const [seq, tokenFilter] = Buffer.from(token, 'base64url').toString('utf8').split('\n');
      if (!/^\d+$/.test(seq ?? '') || tokenFilter !== filterText)
        throw invalid('Invalid page token.');
      before = Number(seq);
    }
    const matching = [...jobs.all.values()]
      .filter((j) => j.location === location && sameProject(j, project) && j.seq < before)
      .filter((j) => matchesFilter(filter, j.request.labels))
      .sort((a, b) => b.seq - a.seq);
    const page = matching.slice(0, pageSize);
    const last = page.at(-1);
    return {
      ...(page.length > 0 ? { batchPredictionJobs: page.map((j) => jobs.render(j)) } : {}),
      ...(matching.length > pageSize && last
        ? { nextPageToken: Buffer.from(`${last.seq}\n${filterText}`).toString('base64url') }
        : {}),
    };
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = target(req);
    const match = PATH.exec(path);
    const [, project = '', location = '', id, cancel] = match ?? [];
    const method = `${req.method ?? 'GET'} ${id === undefined ? 'jobs' : cancel ? 'cancel' : 'job'}`;
    const op = match ? OPS[method] : undefined;
    if (!op) throw apiError(404, `The requested URL ${req.method} ${path} was not found.`);
    requests[op] += 1;
    if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs).unref());
    const body = op === 'create' || op === 'cancel' ? await readJson(req) : undefined;
    const fault = faults.take(op);
    if (fault) throw apiError(fault.status, fault.message);
    if (op === 'create') return sendJson(res, 200, jobs.render(create(project, location, body)));
    if (op === 'list') return sendJson(res, 200, list(project, location, query));
    const job = find(project, location, id ?? '');
    if (op === 'cancel') jobs.cancel(job);
    sendJson(res, 200, op === 'cancel' ? {} : jobs.render(job));
  }

  const server = await serve(route, { port: options.port });

  return {
    host: server.host,
    url: `http://${server.host}`,
    requests,
    inject: (fault) => faults.add(fault),
    reset() {
      jobs.clear(false);
      faults.clear();
      failures.clear();
      for (const op of Object.keys(requests) as VertexOp[]) requests[op] = 0;
    },
    jobs: () => [...jobs.all.values()].sort((a, b) => a.seq - b.seq).map((j) => jobs.render(j)),
    async advance(name) {
      const job = name && jobs.all.get(name.slice(name.lastIndexOf('/') + 1));
      if (name && !job) throw new Error(`no such job: ${name}`);
      await Promise.all((job ? [job] : [...jobs.all.values()]).map((j) => jobs.advance(j)));
    },
    async settle() {
      while (!jobs.closed && !jobs.isIdle()) {
        await Promise.all([...jobs.all.values()].map((j) => jobs.advance(j)));
      }
    },
    whenIdle: () => jobs.whenIdle(),
    async close() {
      if (jobs.closed) return;
      jobs.clear(true);
      await server.close();
    },
  };
}
