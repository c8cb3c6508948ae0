/**
 * The emulator's jobs and their lifecycle: PENDING → RUNNING → SUCCEEDED, PARTIALLY_SUCCEEDED (some
 * rows failed) or FAILED (no row succeeded, or the input could not be read, or the output not
 * created); cancel goes CANCELLING → CANCELLED and keeps output already written. A running job
 * reads its input and writes its rows in a shuffled order (seeded by the job id), one batch at a
 * time: a prediction file, or 500 rows streamed into the output table (see `io.ts`).
 */
import { randomBytes } from 'node:crypto';
import { apiError, isTerminal, RPC, type JobState, type RpcStatus } from './api-facts.js';
import type { RowFailures } from './failures.js';
import { openSink, readInputs, type Io, type OutputInfo } from './io.js';
import { claudeRow, geminiRow } from './model.js';
import type { CreateRequest } from './request.js';
import { shuffledOrder } from './seeded.js';

/** What a job reports besides its request: state, times, error and results. */
interface Progress {
  state: JobState;
  /** Set once the job processed its input (also for a CANCELLED job that had). */
  outputInfo?: OutputInfo;
  /** google.rpc.Status of FAILED (3, 5, 6, 7 or 13) and CANCELLED (1) jobs. */
  error?: RpcStatus;
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
  processing?: Promise<RpcStatus | Outcome>;
  removed?: boolean;
}

/** What processing wrote: row counts, the output, and where it is (for messages). */
interface Outcome {
  successful: number;
  failed: number;
  info: OutputInfo;
  where: string;
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
const status = (code: number, message: string): RpcStatus => ({ code, message });
const INTERNAL = (message = 'Internal error encountered.'): RpcStatus =>
  status(RPC.INTERNAL, message);

/** The jobs of one emulator. */
export class Jobs {
  readonly all = new Map<string, Job>();
  private idleWaiters: (() => void)[] = [];
  private seq = 0;
  closed = false;

  constructor(
    private readonly io: Io,
    private readonly timing: Timing,
    readonly projectNumber: string,
    private readonly failures: RowFailures,
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

  private setState(job: Job, state: JobState, error?: RpcStatus): void {
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
    const message = `All ${result.failed} requests failed: see each row's status in ${result.where}.`;
    this.setState(job, 'JOB_STATE_FAILED', status(RPC.INVALID_ARGUMENT, message));
  }

  private record(job: Job, result: Outcome) {
    job.outputInfo = result.info;
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

  private async process(job: Job): Promise<RpcStatus | Outcome> {
    const inputs = await readInputs(job, this.io);
    if ('code' in inputs) return inputs;
    if (inputs.instances.length === 0) {
      return status(RPC.INVALID_ARGUMENT, `The input is empty: ${inputs.where}.`);
    }
    const sink = await openSink(job, inputs, this.io);
    if ('code' in sink) return sink;
    const { anthropic, body } = job.request;
    const modelId = body.model.slice(body.model.lastIndexOf('/') + 1);
    // Rows come out in an order of their own, across batches, as the service writes them.
    const order = shuffledOrder(inputs.instances.length, job.id);
    const batches = Math.ceil(order.length / sink.batchRows);
    const fail = this.failures.forJob();
    let successful = 0;
    let failed = 0;
    // A cancelled (or forgotten) job writes no more batches; those written are kept.
    for (let b = 0; b < batches && !job.removed && job.state === 'JOB_STATE_RUNNING'; b += 1) {
      const rows = [];
      for (const index of order.slice(b * sink.batchRows, (b + 1) * sink.batchRows)) {
        const instance = inputs.instances[index];
        if (!instance) continue;
        const context = { modelId, jobId: job.id, index, fail };
        const row = anthropic
          ? claudeRow(instance.input, context)
          : geminiRow(instance.input, context);
        if (row.ok) successful += 1;
        else failed += 1;
        rows.push({ row, instance, index });
      }
      try {
        await sink.write(rows, b, batches);
      } catch (err) {
        return INTERNAL(text(err));
      }
    }
    return { successful, failed, info: sink.info, where: sink.where };
  }
}
