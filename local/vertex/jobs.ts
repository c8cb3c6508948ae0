/**
 * The emulator's jobs and their lifecycle: PENDING → RUNNING → SUCCEEDED, PARTIALLY_SUCCEEDED (some
 * rows failed) or FAILED (no row succeeded, or the input could not be read); cancel goes
 * CANCELLING → CANCELLED and keeps output already written. A running job reads its input and
 * writes `<outputUriPrefix>/prediction-model-<createTime>/predictions.jsonl` through a {@link BlobStore}.
 */
import { randomBytes } from 'node:crypto';
import { apiError, isTerminal, RPC, SETTABLE_FIELDS, type JobState } from './api-facts.js';
import type { Faults, OutcomeFault } from './faults.js';
import { claudeRow, failRow, geminiRow, splitLines } from './model.js';
import type { CreateRequest } from './request.js';

/** Where jobs read inputs and write outputs (the local stack backs it with the storage emulator). */
export interface BlobStore {
  /** Reads a whole object; rejects with an error whose `code` is 404 when it does not exist. */
  read(uri: string): Promise<Buffer>;
  /** Writes (creates or replaces) an object. */
  write(uri: string, data: Buffer | string, contentType?: string): Promise<void>;
}

/** A `BatchPredictionJob` as the REST API renders it (only the fields this emulator produces). */
export interface VertexJobJson {
  /** `projects/{projectNumber}/locations/{L}/batchPredictionJobs/{19-digit id}`. */
  name: string;
  displayName: string;
  model: string;
  inputConfig: { instancesFormat: string; gcsSource: { uris: string[] } };
  outputConfig: { predictionsFormat: string; gcsDestination: { outputUriPrefix: string } };
  /** Set once the job processed its input (also for a CANCELLED job that had). */
  outputInfo?: { gcsOutputDirectory: string };
  state: JobState;
  /** google.rpc.Status of FAILED (3, 5, 7 or 13) and CANCELLED (1) jobs. */
  error?: { code: number; message: string };
  /** int64 counts as strings; zero counts are omitted. */
  completionStats?: { successfulCount?: string; failedCount?: string };
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
  /** Omitted when the job has none. */
  labels?: Record<string, string>;
}

/** How long jobs stay in each state, in ms; `Infinity`: until `advance()`. */
export interface Timing {
  pendingMs: number;
  runningMs: number;
  cancellingMs: number;
}

export interface Job {
  id: string;
  /** The project as given in the create URL (id or number). */
  project: string;
  location: string;
  seq: number;
  request: CreateRequest;
  state: JobState;
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
  error?: { code: number; message: string };
  outputInfo?: { gcsOutputDirectory: string };
  completionStats?: VertexJobJson['completionStats'];
  outcome?: OutcomeFault['outcome'];
  failMessage?: string;
  timer?: NodeJS.Timeout;
  processing?: Promise<Processed>;
  removed?: boolean;
}

type Processed =
  | { error: { code: number; message: string } }
  | { successful: number; failed: number; directory: string };

let lastMicros = 0;

/** An RFC 3339 UTC timestamp with microseconds, strictly increasing within the process. */
function timestamp(): string {
  const micros = Math.max(Date.now() * 1000, lastMicros + 1);
  lastMicros = micros;
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`;
}

/** A random 19-digit id below 2^63, the form of Vertex job ids. */
function numericId(): string {
  const random = randomBytes(8).readBigUInt64BE();
  return (1_000_000_000_000_000_000n + (random % 8_000_000_000_000_000_000n)).toString();
}

const codeOf = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;
const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The jobs of one emulator. */
export class Jobs {
  readonly all = new Map<string, Job>();
  private idleWaiters: (() => void)[] = [];
  private seq = 0;
  closed = false;

  constructor(
    private readonly blobs: BlobStore,
    private readonly timing: Timing,
    private readonly faults: Faults,
    readonly projectNumber: string,
  ) {}

  name(job: Job): string {
    return `projects/${this.projectNumber}/locations/${job.location}/batchPredictionJobs/${job.id}`;
  }

  render(job: Job): VertexJobJson {
    const sent = Object.fromEntries(
      SETTABLE_FIELDS.filter((f) => f !== 'labels' && job.request.body[f] !== undefined).map(
        (f) => [f, structuredClone(job.request.body[f])],
      ),
    );
    const rendered = {
      name: this.name(job),
      ...sent,
      outputInfo: job.outputInfo,
      state: job.state,
      error: job.error,
      completionStats: job.completionStats,
      createTime: job.createTime,
      startTime: job.startTime,
      endTime: job.endTime,
      updateTime: job.updateTime,
      labels: Object.keys(job.request.labels).length > 0 ? { ...job.request.labels } : undefined,
    };
    return JSON.parse(JSON.stringify(rendered)) as VertexJobJson;
  }

  create(project: string, location: string, request: CreateRequest): Job {
    let id = numericId();
    while (this.all.has(id)) id = numericId();
    const now = timestamp();
    const job: Job = {
      id,
      project,
      location,
      seq: (this.seq += 1),
      request,
      state: 'JOB_STATE_PENDING',
      createTime: now,
      updateTime: now,
    };
    const forced = this.faults.outcomeFor(request);
    job.outcome = forced?.outcome;
    job.failMessage = forced?.message;
    this.all.set(id, job);
    this.schedule(job, this.timing.pendingMs, () => this.start(job));
    return job;
  }

  cancel(job: Job): void {
    if (isTerminal(job.state)) {
      throw apiError(
        400,
        `Cannot cancel BatchPredictionJob ${this.name(job)}: it is in state ${job.state}.`,
        'FAILED_PRECONDITION',
      );
    }
    if (job.state !== 'JOB_STATE_CANCELLING') this.startCancelling(job);
  }

  /** Moves a job one step now (PENDING → RUNNING or EXPIRED, RUNNING → its end, CANCELLING → CANCELLED). */
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
    if (!this.closed && !this.isIdle()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private schedule(job: Job, ms: number, step: () => void): void {
    clearTimeout(job.timer);
    job.timer = Number.isFinite(ms) ? setTimeout(step, ms) : undefined;
  }

  private setState(job: Job, state: JobState): void {
    const now = timestamp();
    job.state = state;
    job.updateTime = now;
    if (state === 'JOB_STATE_RUNNING') job.startTime = now;
    if (isTerminal(state)) {
      job.endTime = now;
      clearTimeout(job.timer);
    }
    this.checkIdle();
  }

  private start(job: Job): void {
    if (job.removed || job.state !== 'JOB_STATE_PENDING') return;
    if (job.outcome === 'EXPIRED') return this.setState(job, 'JOB_STATE_EXPIRED');
    this.setState(job, 'JOB_STATE_RUNNING');
    // Forced FAILED and CANCELLED jobs end without output, so they read nothing.
    if (job.outcome !== 'FAILED' && job.outcome !== 'CANCELLED') job.processing = this.process(job);
    this.schedule(job, this.timing.runningMs, () => void this.finish(job));
  }

  private async finish(job: Job): Promise<void> {
    clearTimeout(job.timer);
    const result = await job.processing;
    if (job.removed || job.state !== 'JOB_STATE_RUNNING') return;
    if (job.outcome === 'CANCELLED') return this.startCancelling(job);
    if (job.outcome === 'FAILED') {
      job.error = { code: RPC.INTERNAL, message: job.failMessage ?? 'Internal error encountered.' };
      return this.setState(job, 'JOB_STATE_FAILED');
    }
    if (!result || 'error' in result) {
      job.error = result?.error ?? { code: RPC.INTERNAL, message: 'Internal error encountered.' };
      return this.setState(job, 'JOB_STATE_FAILED');
    }
    this.record(job, result);
    if (result.successful === 0 && job.outcome !== 'PARTIALLY_SUCCEEDED') {
      job.error = {
        code: RPC.INVALID_ARGUMENT,
        message: `All ${result.failed} requests failed. See the status field of each line under ${result.directory}.`,
      };
      return this.setState(job, 'JOB_STATE_FAILED');
    }
    this.setState(
      job,
      result.failed === 0 ? 'JOB_STATE_SUCCEEDED' : 'JOB_STATE_PARTIALLY_SUCCEEDED',
    );
  }

  private record(job: Job, result: Extract<Processed, { directory: string }>): void {
    job.outputInfo = { gcsOutputDirectory: result.directory };
    job.completionStats = {
      ...(result.successful > 0 ? { successfulCount: String(result.successful) } : {}),
      ...(result.failed > 0 ? { failedCount: String(result.failed) } : {}),
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
    if (result && !('error' in result)) this.record(job, result);
    job.error = { code: RPC.CANCELLED, message: 'CANCELED' };
    this.setState(job, 'JOB_STATE_CANCELLED');
  }

  private async process(job: Job): Promise<Processed> {
    const { request } = job;
    const lines: string[] = [];
    for (const uri of request.inputUris) {
      try {
        lines.push(...splitLines(await this.blobs.read(uri)));
      } catch (err) {
        const code = codeOf(err);
        if (code === 404 || code === '404') {
          return { error: { code: RPC.NOT_FOUND, message: `Input file not found: ${uri}.` } };
        }
        if (code === 403 || code === '403') {
          return {
            error: { code: RPC.PERMISSION_DENIED, message: `Permission denied reading ${uri}.` },
          };
        }
        return { error: { code: RPC.INTERNAL, message: `Failed to read ${uri}: ${text(err)}` } };
      }
    }
    if (lines.length === 0) {
      return {
        error: {
          code: RPC.INVALID_ARGUMENT,
          message: `The input is empty: ${request.inputUris.join(', ')}.`,
        },
      };
    }
    const modelId = request.model.slice(request.model.lastIndexOf('/') + 1);
    const rows = lines.map((line, i) =>
      request.anthropic ? claudeRow(line, modelId, job.id, i) : geminiRow(line, modelId),
    );
    if (job.outcome === 'PARTIALLY_SUCCEEDED') {
      const victim = rows.findLastIndex((r) => r.ok);
      const row = rows[victim];
      if (row) rows[victim] = failRow(row, request.anthropic, 'Internal error encountered.');
    }
    const directory = `${request.outputUriPrefix.replace(/\/+$/, '')}/prediction-model-${job.createTime}`;
    try {
      const content = rows.map((r) => `${r.line}\n`).join('');
      await this.blobs.write(`${directory}/predictions.jsonl`, content, 'application/jsonl');
    } catch (err) {
      const code = codeOf(err) === 403 ? RPC.PERMISSION_DENIED : RPC.INTERNAL;
      return {
        error: { code, message: `Failed to write the output to ${directory}: ${text(err)}` },
      };
    }
    const successful = rows.filter((r) => r.ok).length;
    return { successful, failed: rows.length - successful, directory };
  }
}
