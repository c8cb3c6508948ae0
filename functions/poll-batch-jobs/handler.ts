/**
 * pollBatchJobs: reconciles every outstanding job record with Vertex AI, records state changes and
 * announces each outcome exactly once. One job's failure never fails the others; only an
 * unreachable job store fails the run.
 */
import { announce } from '../../shared/announce.js';
import { chunk, mapLimit } from '../../shared/concurrency.js';
import type { Config } from '../../shared/config.js';
import { PermanentError } from '../../shared/errors.js';
import { OUTCOME_STATUSES, type JobError, type JobRecord } from '../../shared/jobs.js';
import type { Logger } from '../../shared/logger.js';
import type { Clock, EventPublisher, JobStore, VertexJobs } from '../../shared/ports.js';
import {
  countOf,
  isTerminalState,
  JOB_ID_LABEL,
  jobIdFilter,
  RPC_CODE_NAMES,
  type VertexBatchJob,
} from '../../shared/vertex.js';

/** Everything the poll use case needs. */
export interface PollDeps {
  config: Config;
  jobs: JobStore;
  vertex: VertexJobs;
  publisher: EventPublisher;
  log: Logger;
  clock: Clock;
  newOwner: () => string;
  /** Tuning; defaults suit Cloud Functions. */
  options?: Partial<PollOptions>;
}

/** Tuning of a poll run. */
export interface PollOptions {
  /** Stop starting new work after this long (the rest waits for the next run). */
  budgetMs: number;
  /** Records read from the job store per page. */
  pageSize: number;
  /** Vertex and job store calls in flight at once. */
  concurrency: number;
  /** Up to this many jobs of one location in a page are read with `get`; more with `list`. */
  maxGets: number;
  /** Job ids per filtered `list` call. */
  idsPerList: number;
}

/** The answer of a run. */
export interface PollSummary {
  /** Outstanding records looked at. */
  checked: number;
  /** Records whose state changed. */
  changed: number;
  /** Jobs that reached a terminal state in this run. */
  completed: number;
  /** Events published in this run. */
  published: number;
  /** Jobs that could not be reconciled this time (they stay due). */
  errors: number;
  /** True when the run stopped at its time budget with work left for the next run. */
  truncated: boolean;
}

const DEFAULTS: PollOptions = {
  budgetMs: 120_000,
  pageSize: 300,
  concurrency: 8,
  maxGets: 2,
  idsPerList: 40,
};

/** One poll run. Throws only when the job store cannot be read. */
export async function pollBatchJobs(deps: PollDeps): Promise<PollSummary> {
  const opts = { ...DEFAULTS, ...deps.options };
  const started = deps.clock().getTime();
  const owner = deps.newOwner();
  const summary: PollSummary = {
    checked: 0,
    changed: 0,
    completed: 0,
    published: 0,
    errors: 0,
    truncated: false,
  };
  const overBudget = (): boolean => deps.clock().getTime() - started >= opts.budgetMs;

  let cursor: string | undefined;
  do {
    if (overBudget()) {
      summary.truncated = true;
      break;
    }
    const page = await deps.jobs.listOutstanding(opts.pageSize, cursor);
    cursor = page.next;
    summary.checked += page.records.length;

    const submitted = page.records.filter((r) => r.status === 'SUBMITTED' && r.vertexJob);
    const found = await readJobs(submitted, deps, opts);
    await mapLimit(page.records, opts.concurrency, async (record) => {
      try {
        await reconcile(record, found.get(record.jobId), owner, deps, summary);
      } catch (err) {
        summary.errors++;
        deps.log.warning('poll.job_failed', 'Could not reconcile a job; it stays due', {
          jobId: record.jobId,
          vertexJob: record.vertexJob,
          error: err,
        });
      }
    });
  } while (cursor !== undefined);

  deps.log.info('poll.completed', 'Poll run finished', {
    ...summary,
    ms: deps.clock().getTime() - started,
  });
  return summary;
}

/** What Vertex said about a job: the job, or the error reading it. */
type Lookup = { job: VertexBatchJob } | { error: unknown };

/**
 * Reads the Vertex jobs of a page. Calls grow with pages, not jobs: per location, a few jobs are
 * read with `get`, more with `list` filtered by our job-id labels (one call per `idsPerList` jobs).
 */
async function readJobs(
  records: JobRecord[],
  deps: PollDeps,
  opts: PollOptions,
): Promise<Map<string, Lookup>> {
  const found = new Map<string, Lookup>();
  const byLocation = new Map<string, JobRecord[]>();
  for (const r of records) byLocation.set(r.location, [...(byLocation.get(r.location) ?? []), r]);

  const viaGet: JobRecord[] = [];
  const listCalls: { location: string; records: JobRecord[] }[] = [];
  for (const [location, group] of byLocation) {
    if (group.length <= opts.maxGets) viaGet.push(...group);
    else
      for (const part of chunk(group, opts.idsPerList)) listCalls.push({ location, records: part });
  }

  await mapLimit(listCalls, opts.concurrency, async ({ location, records: part }) => {
    try {
      let pageToken: string | undefined;
      do {
        const page = await deps.vertex.list(location, {
          filter: jobIdFilter(part.map((r) => r.jobId)),
          pageSize: 100,
          ...(pageToken ? { pageToken } : {}),
        });
        for (const job of page.jobs) {
          const id = job.labels?.[JOB_ID_LABEL];
          const rec = part.find((r) => r.jobId === id);
          // A recorded job is matched by name, so a stray duplicate with the same label is ignored.
          if (rec && job.name === rec.vertexJob) found.set(rec.jobId, { job });
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (err) {
      for (const r of part) found.set(r.jobId, { error: err });
    }
    // Not in the list (deleted, or a label lost): ask for it by name, which tells a 404 apart.
    for (const r of part) if (!found.has(r.jobId)) viaGet.push(r);
  });

  await mapLimit(viaGet, opts.concurrency, async (r) => {
    try {
      found.set(r.jobId, { job: await deps.vertex.get(r.vertexJob ?? '') });
    } catch (err) {
      found.set(r.jobId, { error: err });
    }
  });
  return found;
}

async function reconcile(
  record: JobRecord,
  lookup: Lookup | undefined,
  owner: string,
  deps: PollDeps,
  summary: PollSummary,
): Promise<void> {
  if (OUTCOME_STATUSES.has(record.status)) {
    // The outcome is known but its event was not published (a failed or interrupted publish).
    if (await announce(record.jobId, owner, deps)) summary.published++;
    return;
  }
  if (record.status !== 'SUBMITTED' || !lookup) return;

  let job: VertexBatchJob;
  if ('error' in lookup) {
    if (!(lookup.error instanceof PermanentError && lookup.error.code === 'VERTEX.NOT_FOUND')) {
      throw lookup.error;
    }
    job = {
      name: record.vertexJob ?? '',
      state: 'JOB_STATE_FAILED',
      error: {
        code: 5,
        message: `Vertex AI no longer knows job ${record.vertexJob} (deleted, or in another location)`,
      },
    };
  } else {
    job = lookup.job;
  }

  const state = job.state ?? 'JOB_STATE_UNSPECIFIED';
  const now = deps.clock().toISOString();
  if (isTerminalState(state)) {
    const outcome = terminalFields(job, state);
    const written = await deps.jobs.update(record.jobId, (cur) =>
      cur.status === 'SUBMITTED'
        ? {
            ...cur,
            ...outcome,
            vertexCreateTime: outcome.vertexCreateTime ?? cur.vertexCreateTime,
            vertexStartTime: outcome.vertexStartTime ?? cur.vertexStartTime,
            status: 'COMPLETED',
            updateTime: now,
          }
        : undefined,
    );
    if (written) {
      summary.changed++;
      summary.completed++;
      deps.log.info('job.finished', 'Vertex AI batch job reached a terminal state', {
        jobId: record.jobId,
        vertexJob: record.vertexJob,
        state,
        ...outcome.stats,
      });
    }
    if (await announce(record.jobId, owner, deps)) summary.published++;
    return;
  }

  if (state !== record.vertexState || (job.startTime && !record.vertexStartTime)) {
    const written = await deps.jobs.update(record.jobId, (cur) =>
      cur.status === 'SUBMITTED' && cur.vertexState === record.vertexState
        ? {
            ...cur,
            vertexState: state,
            vertexStartTime: job.startTime ?? cur.vertexStartTime,
            vertexCreateTime: job.createTime ?? cur.vertexCreateTime,
            updateTime: now,
          }
        : undefined,
    );
    if (written) {
      summary.changed++;
      deps.log.info('job.state_changed', 'Vertex AI batch job changed state', {
        jobId: record.jobId,
        vertexJob: record.vertexJob,
        state,
        previousState: record.vertexState,
      });
    }
  }
}

function terminalFields(
  job: VertexBatchJob,
  state: string,
): Pick<
  JobRecord,
  | 'vertexState'
  | 'stats'
  | 'error'
  | 'outputDirectory'
  | 'vertexCreateTime'
  | 'vertexStartTime'
  | 'vertexEndTime'
> {
  const stats = job.completionStats;
  const error: JobError | null =
    job.error && (job.error.code || job.error.message)
      ? { code: RPC_CODE_NAMES[job.error.code ?? 2] ?? 'UNKNOWN', message: job.error.message ?? '' }
      : null;
  return {
    vertexState: state,
    stats: {
      successfulCount: countOf(stats?.successfulCount),
      failedCount: countOf(stats?.failedCount),
      incompleteCount: countOf(stats?.incompleteCount),
    },
    error,
    outputDirectory: job.outputInfo?.gcsOutputDirectory ?? null,
    vertexCreateTime: job.createTime ?? null,
    vertexStartTime: job.startTime ?? null,
    vertexEndTime: job.endTime ?? null,
  };
}
