/**
 * The emulator's jobs and their lifecycle: PENDING → RUNNING → SUCCEEDED, PARTIALLY_SUCCEEDED (some
 * rows failed) or FAILED (no row succeeded, or the input could not be read); cancel goes
 * CANCELLING → CANCELLED and keeps output already written. A running job reads its input and
 * writes its rows in a shuffled order (seeded by the job id) to
 * `<outputUriPrefix>/prediction-model-<createTime>/`: `predictions.jsonl`, or, above
 * `rowsPerFile` rows, `predictions_00001-of-0000N.jsonl` and so on, one file at a time, through a
 * {@link BlobStore}.
 */
import { randomBytes } from 'node:crypto';
import { apiError, isTerminal, RPC, type JobState } from './api-facts.js';
import type { RowFailures } from './failures.js';
import { claudeRow, geminiRow, splitLines } from './model.js';
import type { CreateRequest } from './request.js';
import { shuffledOrder } from './seeded.js';

/** Where jobs read inputs and write outputs (the local stack backs it with the storage emulator). */
export interface BlobStore {
  /** Reads a whole object; rejects with an error whose `code` is 404 when it does not exist. */
  read(uri: string): Promise<Buffer>;
  /** Writes (creates or replaces) an object. */
  write(uri: string, data: Buffer | string, contentType?: string): Promise<void>;
}

type Status = { code: number; message: string };

/** What a job reports besides its request: state, times, error and results. */
interface Progress {
  state: JobState;
  /** Set once the job processed its input (also for a CANCELLED job that had). */
  outputInfo?: { gcsOutputDirectory: string };
  /** google.rpc.Status of FAILED (3, 5, 7 or 13) and CANCELLED (1) jobs. */
  error?: Status;
  /** int64 counts as strings; zero counts are omitted. */
  completionStats?: { successfulCount?: string; failedCount?: string };
  /** RFC 3339 with microseconds. */
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
}

/**
 * A `BatchPredictionJob` as the REST API renders it: its name
 * (`projects/{projectNumber}/locations/{L}/batchPredictionJobs/{19-digit id}`), the fields of its
 * create request (labels omitted when there are none), and its progress.
 */
export type VertexJobJson = { name: string } & CreateRequest['body'] & Progress;

/** How long jobs stay in each state, in ms; `Infinity`: until `advance()`. */
export type Timing = Record<'pendingMs' | 'runningMs' | 'cancellingMs', number>;

export interface Job extends Progress {
  id: string;
  /** The project as given in the create URL (id or number). */
  project: string;
  location: string;
  seq: number;
  request: CreateRequest;
  timer?: NodeJS.Timeout;
  processing?: Promise<Status | { successful: number; failed: number; directory: string }>;
  removed?: boolean;
}

let lastMicros = 0;

/** An RFC 3339 UTC timestamp with microseconds, strictly increasing within the process. */
function timestamp(): string {
  lastMicros = Math.max(Date.now() * 1000, lastMicros + 1);
  const iso = new Date(Math.floor(lastMicros / 1000)).toISOString();
  return `${iso.slice(0, -1)}${String(lastMicros % 1000).padStart(3, '0')}Z`;
}

/** A random 19-digit id below 2^63, the form of Vertex job ids. */
function numericId(): string {
  const random = randomBytes(8).readBigUInt64BE();
  return (10n ** 18n + (random % (8n * 10n ** 18n))).toString();
}

const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const status = (code: number, message: string): Status => ({ code, message });
const INTERNAL = (message = 'Internal error encountered.'): Status => status(RPC.INTERNAL, message);

/** The jobs of one emulator. */
export class Jobs {
  readonly all = new Map<string, Job>();
  private idleWaiters: (() => void)[] = [];
  private seq = 0;
  closed = false;

  constructor(
    private readonly blobs: BlobStore,
    private readonly timing: Timing,
    readonly projectNumber: string,
    private readonly output: { rowsPerFile: number; failures: RowFailures },
  ) {}

  name(job: Job): string {
    return `projects/${this.projectNumber}/locations/${job.location}/batchPredictionJobs/${job.id}`;
  }

  /** The job as the API renders it: its settable fields as sent, then its progress, in that order. */
  render(job: Job): VertexJobJson {
    const { labels, ...sent } = job.request.body;
    const { state, outputInfo, error, completionStats, createTime, startTime, endTime } = job;
    const rendered = {
      name: this.name(job),
      ...sent,
      ...{ outputInfo, state, error, completionStats, createTime, startTime, endTime },
      updateTime: job.updateTime,
      labels: labels && Object.keys(labels).length > 0 ? labels : undefined,
    };
    return JSON.parse(JSON.stringify(rendered)) as VertexJobJson;
  }

  create(project: string, location: string, request: CreateRequest): Job {
    let id = numericId();
    while (this.all.has(id)) id = numericId();
    const now = timestamp();
    const seq = (this.seq += 1);
    const state = 'JOB_STATE_PENDING';
    const job: Job = {
      id,
      project,
      location,
      seq,
      request,
      state,
      createTime: now,
      updateTime: now,
    };
    this.all.set(id, job);
    this.schedule(job, this.timing.pendingMs, () => this.start(job));
    return job;
  }

  cancel(job: Job): void {
    if (isTerminal(job.state)) {
      const message = `Cannot cancel BatchPredictionJob ${this.name(job)}: it is in state ${job.state}.`;
      throw apiError(400, message, 'FAILED_PRECONDITION');
    }
    if (job.state !== 'JOB_STATE_CANCELLING') this.startCancelling(job);
  }

  /** Moves a job one step now: PENDING → RUNNING (or EXPIRED), RUNNING → its end, CANCELLING → CANCELLED. */
  async advance(job: Job): Promise<void> {
    if (job.state === 'JOB_STATE_PENDING') this.start(job);
    else if (job.state === 'JOB_STATE_RUNNING') await this.finish(job);
    else if (job.state === 'JOB_STATE_CANCELLING') await this.finishCancelling(job);
  }

  isIdle(): boolean {
    return [...this.all.values()].every((j) => isTerminal(j.state));
  }

  whenIdle(): Promise<void> {
    if (this.closed || this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Forgets every job (on reset), or stops every timer (on close). */
  clear(closing: boolean): void {
    for (const job of this.all.values()) {
      clearTimeout(job.timer);
      job.removed = true;
    }
    if (closing) this.closed = true;
    else this.all.clear();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.closed || this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private schedule(job: Job, ms: number, step: () => void): void {
    clearTimeout(job.timer);
    job.timer = Number.isFinite(ms) ? setTimeout(step, ms) : undefined;
  }

  private setState(job: Job, state: JobState, error?: Status): void {
    const now = timestamp();
    Object.assign(job, { state, updateTime: now }, error ? { error } : {});
    if (state === 'JOB_STATE_RUNNING') job.startTime = now;
    if (isTerminal(state)) {
      job.endTime = now;
      clearTimeout(job.timer);
    }
    this.checkIdle();
  }

  private start(job: Job): void {
    if (job.removed || job.state !== 'JOB_STATE_PENDING') return;
    this.setState(job, 'JOB_STATE_RUNNING');
    job.processing = this.process(job);
    this.schedule(job, this.timing.runningMs, () => void this.finish(job));
  }

  private async finish(job: Job): Promise<void> {
    clearTimeout(job.timer);
    const result = (await job.processing) ?? INTERNAL();
    if (job.removed || job.state !== 'JOB_STATE_RUNNING') return;
    if ('code' in result) return this.setState(job, 'JOB_STATE_FAILED', result);
    this.record(job, result);
    if (result.failed === 0) return this.setState(job, 'JOB_STATE_SUCCEEDED');
    if (result.successful > 0) return this.setState(job, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    const message = `All ${result.failed} requests failed: see each line's status in ${result.directory}.`;
    this.setState(job, 'JOB_STATE_FAILED', status(RPC.INVALID_ARGUMENT, message));
  }

  private record(job: Job, result: { successful: number; failed: number; directory: string }) {
    job.outputInfo = { gcsOutputDirectory: result.directory };
    job.completionStats = {
      ...(result.successful ? { successfulCount: String(result.successful) } : {}),
      ...(result.failed ? { failedCount: String(result.failed) } : {}),
    };
  }

  private startCancelling(job: Job): void {
    this.setState(job, 'JOB_STATE_CANCELLING');
    this.schedule(job, this.timing.cancellingMs, () => void this.finishCancelling(job));
  }

  private async finishCancelling(job: Job): Promise<void> {
    clearTimeout(job.timer);
    const result = await job.processing;
    if (job.removed || job.state !== 'JOB_STATE_CANCELLING') return;
    // Cancelling is best effort: output already written is kept and reported.
    if (result && !('code' in result) && result.successful + result.failed > 0) {
      this.record(job, result);
    }
    this.setState(job, 'JOB_STATE_CANCELLED', status(RPC.CANCELLED, 'CANCELED'));
  }

  private async process(job: Job): Promise<NonNullable<Awaited<Job['processing']>>> {
    const { anthropic, body } = job.request;
    const { model, inputConfig, outputConfig } = body;
    const inputUris = inputConfig.gcsSource.uris;
    const outputUriPrefix = outputConfig.gcsDestination.outputUriPrefix;
    const lines: string[] = [];
    for (const uri of inputUris) {
      try {
        for (const line of splitLines(await this.blobs.read(uri))) lines.push(line);
      } catch (err) {
        const code = Number((err as { code?: unknown } | null)?.code);
        if (code === 404) return status(RPC.NOT_FOUND, `Input file not found: ${uri}.`);
        if (code === 403) return status(RPC.PERMISSION_DENIED, `Permission denied: ${uri}.`);
        return INTERNAL(`Failed to read ${uri}: ${text(err)}`);
      }
    }
    if (lines.length === 0) {
      return status(RPC.INVALID_ARGUMENT, `The input is empty: ${inputUris.join(', ')}.`);
    }
    const modelId = model.slice(model.lastIndexOf('/') + 1);
    const directory = `${outputUriPrefix.replace(/\/+$/, '')}/prediction-model-${job.createTime}`;
    // Rows come out in an order of their own, across files, as the service writes them.
    const order = shuffledOrder(lines.length, job.id);
    const { rowsPerFile, failures } = this.output;
    const files = Math.ceil(lines.length / rowsPerFile);
    const fail = failures.forJob();
    let successful = 0;
    let failed = 0;
    // A cancelled (or forgotten) job writes no more files; those written are kept.
    for (let f = 0; f < files && !job.removed && job.state === 'JOB_STATE_RUNNING'; f += 1) {
      // One file's text at a time: a large input is never one string.
      let content = '';
      for (const index of order.slice(f * rowsPerFile, (f + 1) * rowsPerFile)) {
        const context = { modelId, jobId: job.id, index, fail };
        const line = lines[index] ?? '';
        const row = anthropic ? claudeRow(line, context) : geminiRow(line, context);
        if (row.ok) successful += 1;
        else failed += 1;
        content += `${row.line}\n`;
      }
      const uri = `${directory}/${predictionFile(f, files)}`;
      try {
        await this.blobs.write(uri, content, 'application/jsonl');
      } catch (err) {
        return INTERNAL(`Failed to write the output to ${uri}: ${text(err)}`);
      }
    }
    return { successful, failed, directory };
  }
}

/** The name of prediction file `index` (from 0) of `count`. */
export function predictionFile(index: number, count: number): string {
  if (count === 1) return 'predictions.jsonl';
  const number = (n: number) => String(n).padStart(5, '0');
  return `predictions_${number(index + 1)}-of-${number(count)}.jsonl`;
}
