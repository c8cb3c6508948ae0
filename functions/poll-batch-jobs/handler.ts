/**
 * pollBatchJobs: reconciles every outstanding job record with Vertex AI, records state changes and
 * announces each outcome exactly once. One job's failure never fails the others; only an
 * unreachable job store fails the run.
 */
import { announce } from '../../shared/announce.js';
import { chunk, mapLimit } from '../../shared/concurrency.js';
import { PermanentError } from '../../shared/errors.js';
import { POLL_TIME_BUDGET_SECONDS } from '../../shared/function-targets.js';
import {
  leaseFree,
  logFields,
  OUTCOME_STATUSES,
  type JobError,
  type JobRecord,
} from '../../shared/jobs.js';
import {
  claimForSubmission,
  releaseClaim,
  runSubmission,
  type SubmissionDeps,
} from '../../shared/submission.js';
import {
  countOf,
  isTerminalState,
  JOB_ID_LABEL,
  jobIdFilter,
  RPC_CODE_NAMES,
  type VertexBatchJob,
} from '../../shared/vertex.js';

/** Everything the poll use case needs. */
export interface PollDeps extends SubmissionDeps {
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
  /** Queued (or interrupted) inputs whose Vertex job this run created. */
  submitted: number;
  /** Jobs that could not be reconciled this time (they stay due). */
  errors: number;
  /** True when the run stopped at its time budget with work left for the next run. */
  truncated: boolean;
}

const DEFAULTS: PollOptions = {
  budgetMs: POLL_TIME_BUDGET_SECONDS * 1000,
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
    submitted: 0,
    errors: 0,
    truncated: false,
  };
  // Providers whose queue is blocked for the rest of this run (first-in first-out).
  const blocked = new Set<string>();
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

    await submitQueued(page.records, owner, blocked, overBudget, deps, summary);

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

/** A SUBMITTING record nobody has touched for this long belongs to a submit that died. */
export const STALE_SUBMITTING_SECONDS = 900;

/**
 * Submits, oldest first, the inputs waiting for capacity that are due, and finishes submissions
 * whose function died (a SUBMITTING record with no live claim and no recent change). Per provider
 * the queue is first-in first-out: once one input has to wait, the younger ones wait too.
 */
async function submitQueued(
  records: JobRecord[],
  owner: string,
  blocked: Set<string>,
  overBudget: () => boolean,
  deps: PollDeps,
  summary: PollSummary,
): Promise<void> {
  const now = deps.clock();
  for (const record of records) {
    // Each submission may read a large input: stop starting new ones at the run's budget.
    if (overBudget()) {
      summary.truncated = true;
      return;
    }
    const stale =
      record.status === 'SUBMITTING' &&
      leaseFree(record, now) &&
      now.getTime() - Date.parse(record.updateTime) >= STALE_SUBMITTING_SECONDS * 1000;
    if (record.status !== 'WAITING' && !stale) continue;
    if (blocked.has(record.provider)) continue;
    if (record.nextAttemptAt && Date.parse(record.nextAttemptAt) > now.getTime()) {
      blocked.add(record.provider);
      continue;
    }
    const claimed = await claimForSubmission(record.jobId, owner, [record.status], deps);
    if (!claimed) continue;
    try {
      const outcome = await runSubmission(claimed, owner, deps, { fromQueue: true });
      if (outcome.outcome === 'waiting') blocked.add(record.provider);
      if (outcome.outcome === 'submitted') summary.submitted++;
      if (outcome.outcome === 'rejected') summary.published++;
      deps.log.info('poll.submitted_queued', 'Queued input handled', {
        ...logFields(record),
        previousStatus: record.status,
        outcome: outcome.outcome,
      });
    } catch (err) {
      summary.errors++;
      blocked.add(record.provider);
      await releaseClaim(record.jobId, owner, deps.jobs);
      deps.log.warning('poll.submit_failed', 'Could not submit a queued input; it stays due', {
        ...logFields(record),
        error: err,
      });
    }
  }
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
    const written = await recordCompleted(record, outcome, deps);
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

  const maxHours = deps.config.MAX_JOB_AGE_HOURS;
  const since = Date.parse(record.vertexCreateTime ?? record.createTime);
  if (maxHours > 0 && deps.clock().getTime() - since > maxHours * 3600_000) {
    await cancelStuck(record, job, maxHours, owner, deps, summary);
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

/** Cancels a job older than MAX_JOB_AGE_HOURS and announces it as cancelled, with our reason. */
async function cancelStuck(
  record: JobRecord,
  job: VertexBatchJob,
  maxHours: number,
  owner: string,
  deps: PollDeps,
  summary: PollSummary,
): Promise<void> {
  try {
    await deps.vertex.cancel(record.vertexJob ?? '');
  } catch (err) {
    // A job that finished or vanished meanwhile needs no cancel; anything else is retried.
    if (!(err instanceof PermanentError)) throw err;
  }
  const written = await recordCompleted(
    record,
    {
      ...terminalFields(job, 'JOB_STATE_CANCELLED'),
      vertexEndTime: job.endTime ?? deps.clock().toISOString(),
      error: {
        code: 'DEADLINE_EXCEEDED',
        message: `cancelled by batch-courier: the job was still ${job.state ?? 'unfinished'} after ${maxHours} hours (MAX_JOB_AGE_HOURS)`,
      },
    },
    deps,
  );
  if (written) {
    summary.changed++;
    summary.completed++;
    deps.log.warning('job.cancelled_stuck', 'Job older than MAX_JOB_AGE_HOURS cancelled', {
      ...logFields(record),
      vertexJob: record.vertexJob,
      state: job.state,
      maxHours,
    });
  }
  if (await announce(record.jobId, owner, deps)) summary.published++;
}

/** Records a terminal outcome on a SUBMITTED record; undefined when another run recorded it. */
function recordCompleted(
  record: JobRecord,
  outcome: ReturnType<typeof terminalFields>,
  deps: PollDeps,
): Promise<JobRecord | undefined> {
  const now = deps.clock().toISOString();
  return deps.jobs.update(record.jobId, (cur) =>
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
