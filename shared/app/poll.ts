/**
 * pollBatchJobs: reconciles every outstanding job record with Vertex AI, records state changes and
 * announces each outcome exactly once. One job's failure never fails the others; only an
 * unreachable job store fails the run. The run has a time budget: no new work starts after it,
 * every call gets at most the time left, and each region is read in its own lane, so one slow
 * region never delays another's announcements.
 */
import { announce } from './announce.js';
import { inputSince } from './settle.js';
import { chunk, mapLimit, Serial } from './concurrency.js';
import { deadlineAfter, type Deadline } from './deadline.js';
import { BatchCourierError, PermanentError } from '../core/errors.js';
import { POLL_TIME_BUDGET_SECONDS } from '../function-targets.js';
import { logFields, type JobError, type JobRecord } from '../core/jobs.js';
import type { LogEvent } from '../log-events.js';
import {
  cancelStrays,
  claimForSubmission,
  expireQueued,
  freeSlot,
  requeue,
  runSubmission,
  type SubmissionDeps,
} from './submission.js';
import {
  CANCEL_CONFIRM_HOURS,
  isStaleSubmitting,
  needsDigest,
  OUTCOME_STATUSES,
  toCancelRequested,
  toCompleted,
  toStateSeen,
  type TerminalFields,
} from '../core/transitions.js';
import {
  countOf,
  isTerminalState,
  JOB_ID_LABEL,
  jobIdFilter,
  MAX_IDS_PER_LIST,
  RPC_CODE_NAMES,
  type VertexBatchJob,
  outputLocationOf,
} from '../core/vertex.js';

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
  /** Vertex and job store calls in flight at once, per lane. */
  concurrency: number;
  /** Up to this many jobs of one location in a page are read with `get`; more with `list`. */
  maxGets: number;
  /**
   * Job ids per filtered `list` call. Small: the service documents no limit on ORed terms, and a
   * refused `list` falls back to one `get` per job anyway.
   */
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
  /** Inputs waiting for capacity seen by this run. */
  waiting: number;
  /** How long the oldest of them has waited, in seconds (0 when none). */
  oldestWaitingSeconds: number;
}

const DEFAULTS: PollOptions = {
  budgetMs: POLL_TIME_BUDGET_SECONDS * 1000,
  pageSize: 300,
  concurrency: 8,
  maxGets: 2,
  idsPerList: MAX_IDS_PER_LIST,
};

/** What one run shares between its lanes. */
interface Run {
  deps: PollDeps;
  opts: PollOptions;
  owner: string;
  deadline: Deadline;
  summary: PollSummary;
  /** Queues (model and region) blocked for the rest of this run: first-in first-out. */
  blocked: Set<string>;
  /** Digests run one at a time: each holds a part of its results in memory. */
  digests: Serial;
}

/** One poll run. Throws only when the job store cannot be read. */
export async function pollBatchJobs(deps: PollDeps): Promise<PollSummary> {
  const opts = { ...DEFAULTS, ...deps.options };
  const started = deps.clock().getTime();
  const run: Run = {
    deps,
    opts,
    owner: deps.newOwner(),
    deadline: deadlineAfter(opts.budgetMs, deps.clock),
    summary: {
      checked: 0,
      changed: 0,
      completed: 0,
      published: 0,
      submitted: 0,
      errors: 0,
      truncated: false,
      waiting: 0,
      oldestWaitingSeconds: 0,
    },
    blocked: new Set<string>(),
    digests: new Serial(),
  };
  const { summary, deadline } = run;

  let cursor: string | undefined;
  let firstPage = true;
  do {
    if (deadline.expired()) {
      summary.truncated = true;
      break;
    }
    let page;
    try {
      page = await deadline.within('read outstanding jobs', () =>
        deps.jobs.listOutstanding(opts.pageSize, cursor),
      );
    } catch (err) {
      // The first page failing means the store is unreachable: the run fails (Scheduler retries).
      // A later page running into the budget ends the run with what it did.
      if (firstPage || !isDeadline(err)) throw err;
      summary.truncated = true;
      break;
    }
    firstPage = false;
    cursor = page.next;
    summary.checked += page.records.length;
    const now = deps.clock();
    for (const r of page.records) {
      if (r.status !== 'WAITING') continue;
      summary.waiting++;
      summary.oldestWaitingSeconds = Math.max(
        summary.oldestWaitingSeconds,
        Math.round(hoursWaiting(r, now) * 3600),
      );
    }

    const submitted = page.records.filter((r) => r.status === 'SUBMITTED' && r.vertexJob);
    const byLocation = new Map<string, JobRecord[]>();
    for (const r of submitted)
      byLocation.set(r.location, [...(byLocation.get(r.location) ?? []), r]);

    await Promise.all([
      submitQueued(page.records, run),
      announceOutcomes(
        page.records.filter((r) => OUTCOME_STATUSES.has(r.status)),
        run,
      ),
      ...[...byLocation.values()].map((records) => reconcileLocation(records, run)),
    ]);
  } while (cursor !== undefined);

  deps.log.info('poll.completed', 'Poll run finished', {
    ...summary,
    ms: deps.clock().getTime() - started,
  });
  return summary;
}

function isDeadline(err: unknown): boolean {
  return err instanceof BatchCourierError && err.code === 'DEADLINE.EXCEEDED';
}

/** Counts a failed unit of work: over budget, it is left for the next run; else an error. */
function failed(run: Run, err: unknown, what: LogEvent, fields: Record<string, unknown>): void {
  if (isDeadline(err)) {
    run.summary.truncated = true;
    return;
  }
  run.summary.errors++;
  const permanent = err instanceof PermanentError;
  run.deps.log[permanent ? 'error' : 'warning'](what, 'Could not handle a job; it stays due', {
    ...fields,
    error: err,
  });
}

/** Outcomes known but not yet announced (a failed or interrupted publish). */
async function announceOutcomes(records: JobRecord[], run: Run): Promise<void> {
  await mapLimit(records, run.opts.concurrency, (record) =>
    announceOne(record, needsDigest(record), run),
  );
}

/**
 * Announces one outcome. A digest first (a job that just finished, or whose digest is still to be
 * made) runs one at a time and under its own time limit, not the run's budget, so a large output
 * is never cut short by a late start: it only does not start once the budget is spent.
 */
async function announceOne(record: JobRecord, digest: boolean, run: Run): Promise<void> {
  const { deps, deadline, summary } = run;
  const over = (): boolean => {
    if (!deadline.expired()) return false;
    summary.truncated = true;
    return true;
  };
  try {
    const published = digest
      ? await run.digests.run(() =>
          over() ? Promise.resolve(false) : announce(record.jobId, run.owner, deps),
        )
      : over()
        ? false
        : await deadline.within('announce', () => announce(record.jobId, run.owner, deps));
    if (published) summary.published++;
  } catch (err) {
    failed(run, err, 'poll.job_failed', { jobId: record.jobId, vertexJob: record.vertexJob });
  }
}

/** How long a queued input has waited, in hours. */
function hoursWaiting(record: JobRecord, now: Date): number {
  return (now.getTime() - Date.parse(record.waitingSince ?? record.createTime)) / 3600_000;
}

/**
 * Submits, oldest first, the inputs waiting for capacity that are due; rejects those that waited
 * longer than MAX_QUEUE_HOURS; and finishes submissions whose function died (which never wait
 * behind a queue). Per queue (model and region) the order is first-in first-out: once one input
 * has to wait, the younger ones of its queue wait too; other queues go on.
 */
async function submitQueued(records: JobRecord[], run: Run): Promise<void> {
  const { deps, deadline, summary, blocked, owner } = run;
  for (const record of records) {
    // Each submission may read a large input: no new one starts after the run's budget.
    if (deadline.expired()) {
      summary.truncated = true;
      return;
    }
    const now = deps.clock();
    const stale = isStaleSubmitting(record, now);
    if (record.status !== 'WAITING' && !stale) continue;
    const tooLong =
      record.status === 'WAITING' && hoursWaiting(record, now) > deps.config.MAX_QUEUE_HOURS;
    if (!stale && !tooLong) {
      if (blocked.has(record.queue)) continue;
      if (record.nextAttemptAt && Date.parse(record.nextAttemptAt) > now.getTime()) {
        blocked.add(record.queue);
        continue;
      }
    }
    let claimed: JobRecord | undefined;
    try {
      claimed = await deadline.within('claim a queued input', () =>
        claimForSubmission(record.jobId, owner, [record.status], deps),
      );
      if (!claimed) {
        // Another run holds it: its younger queue-mates wait too, so the order holds across runs.
        if (!stale) blocked.add(record.queue);
        continue;
      }
      const mine = claimed;
      if (tooLong) {
        const ended = await deadline.within('end a queued input', () =>
          expireQueued(mine, owner, deps, queueTimeout(mine, deps)),
        );
        if (ended.outcome === 'rejected') summary.published++;
        if (ended.outcome === 'submitted') summary.submitted++;
        continue;
      }
      const outcome = await deadline.within('submit a queued input', () =>
        runSubmission(mine, owner, deps, { fromQueue: true }),
      );
      if (outcome.outcome === 'waiting') blocked.add(record.queue);
      if (outcome.outcome === 'submitted') summary.submitted++;
      if (outcome.outcome === 'rejected') summary.published++;
      deps.log.info('poll.submitted_queued', 'Queued input handled', {
        ...logFields(record),
        previousStatus: record.status,
        outcome: outcome.outcome,
      });
    } catch (err) {
      // Keep the queue's order: its younger inputs do not overtake this one in this run.
      blocked.add(record.queue);
      if (isDeadline(err)) {
        // The submission may still be under way; its claim protects it until it ends or expires.
        summary.truncated = true;
        continue;
      }
      // Back in the queue, in its place, with a backoff: not left SUBMITTING for younger ones to
      // overtake while its claim runs out.
      const mine = claimed;
      const requeued = mine
        ? await deadline.within('requeue', () => requeue(mine, owner, deps)).catch(() => false)
        : false;
      failed(run, err, 'poll.submit_failed', { ...logFields(record), requeued });
    }
  }
}

function queueTimeout(record: JobRecord, deps: PollDeps): JobError {
  const hours = deps.config.MAX_QUEUE_HOURS;
  return {
    code: 'CAPACITY.EXHAUSTED',
    message: `${record.object}: waited more than ${hours} hours for capacity for ${record.model} in ${record.location} (MAX_QUEUE_HOURS); upload it again later, or ask for more quota`,
  };
}

/** What Vertex said about a job: the job, or the error reading it. */
type Lookup = { job: VertexBatchJob } | { error: unknown };

/** Reads and reconciles the jobs of one region: a lane of its own. */
async function reconcileLocation(records: JobRecord[], run: Run): Promise<void> {
  const { deadline, summary } = run;
  const found = await readJobs(records, run);
  await mapLimit(records, run.opts.concurrency, async (record) => {
    if (deadline.expired()) {
      summary.truncated = true;
      return;
    }
    const lookup = found.get(record.jobId);
    if (!lookup) return; // not read before the budget ran out
    let finished = false;
    try {
      finished = await deadline.within('reconcile', () => reconcile(record, lookup, run));
    } catch (err) {
      failed(run, err, 'poll.job_failed', { jobId: record.jobId, vertexJob: record.vertexJob });
    }
    if (finished) await announceOne(record, true, run);
  });
}

/**
 * Reads the Vertex jobs of one region. Calls grow with pages, not jobs: a few jobs are read with
 * `get`, more with `list` filtered by our job-id labels. A `list` that fails or misses a job falls
 * back to `get` for each of its jobs, which also tells a deleted job (404) apart.
 */
async function readJobs(records: JobRecord[], run: Run): Promise<Map<string, Lookup>> {
  const { deps, opts, deadline } = run;
  const found = new Map<string, Lookup>();
  const viaGet: JobRecord[] = [];
  const parts = records.length <= opts.maxGets ? [] : chunk(records, opts.idsPerList);
  if (parts.length === 0) viaGet.push(...records);

  await mapLimit(parts, opts.concurrency, async (part) => {
    const location = part[0]?.location ?? '';
    try {
      let pageToken: string | undefined;
      do {
        const page = await deadline.within('list jobs', () =>
          deps.vertex.list(location, {
            filter: jobIdFilter(part.map((r) => r.jobId)),
            pageSize: 100,
            ...(pageToken ? { pageToken } : {}),
          }),
        );
        for (const job of page.jobs) {
          const id = job.labels?.[JOB_ID_LABEL];
          const rec = part.find((r) => r.jobId === id);
          // A recorded job is matched by name, so a stray duplicate with the same label is ignored.
          if (rec && job.name === rec.vertexJob) found.set(rec.jobId, { job });
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (err) {
      if (isDeadline(err)) return;
      deps.log.warning('poll.list_failed', 'list failed; reading its jobs one by one', {
        location,
        jobs: part.length,
        error: err,
      });
    }
    for (const r of part) if (!found.has(r.jobId)) viaGet.push(r);
  });

  await mapLimit(viaGet, opts.concurrency, async (r) => {
    if (deadline.expired()) return;
    try {
      found.set(r.jobId, {
        job: await deadline.within('get job', () => deps.vertex.get(r.vertexJob ?? '')),
      });
    } catch (err) {
      found.set(r.jobId, { error: err });
    }
  });
  return found;
}

/** Records what Vertex said of a job; true when it finished (its outcome is then announced). */
async function reconcile(record: JobRecord, lookup: Lookup, run: Run): Promise<boolean> {
  const { deps, summary } = run;
  let job: VertexBatchJob;
  if ('error' in lookup) {
    if (!(lookup.error instanceof PermanentError && lookup.error.code === 'VERTEX.NOT_FOUND')) {
      throw lookup.error;
    }
    job = {
      name: record.vertexJob ?? '',
      state: 'JOB_STATE_FAILED',
      error: {
        code: RPC_CODE_NAMES.indexOf('NOT_FOUND'),
        message: `Vertex AI no longer knows job ${record.vertexJob} (deleted, or in another location)`,
      },
    };
  } else {
    job = lookup.job;
  }

  const state = job.state ?? 'JOB_STATE_UNSPECIFIED';
  const now = deps.clock();
  if (isTerminalState(state)) {
    await finish(record, terminalFields(job, state, record), run);
    return true;
  }

  const maxHours = deps.config.MAX_JOB_AGE_HOURS;
  // Wall-clock age since creation: time spent PAUSED or QUEUED counts, so no job is tracked forever.
  // A retry of failed rows counts from its input's first job: the limit applies to the input.
  const since = Date.parse(inputSince(record));
  if (maxHours > 0 && now.getTime() - since > maxHours * 3600_000) {
    return cancelTooOld(record, job, maxHours, run);
  }

  if (state !== record.vertexState || (job.startTime && !record.vertexStartTime)) {
    const written = await deps.jobs.update(record.jobId, toStateSeen(now, record.vertexState, job));
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
  return false;
}

/** Records a terminal outcome (once) and frees its capacity slot; the caller announces it. */
async function finish(record: JobRecord, outcome: TerminalFields, run: Run): Promise<void> {
  const { deps, summary } = run;
  const written = await deps.jobs.update(record.jobId, toCompleted(deps.clock(), outcome));
  if (written) {
    summary.changed++;
    summary.completed++;
    deps.log.info('job.finished', 'Vertex AI batch job reached a terminal state', {
      jobId: record.jobId,
      vertexJob: record.vertexJob,
      state: outcome.vertexState,
      ...outcome.stats,
    });
  }
  await freeSlot(record, deps);
  // More than one create was sent for this input (a lost answer, a takeover): a stray job that
  // landed after the submission's own check is cancelled before the outcome is announced.
  if (written && record.createAttempts > 1 && record.vertexJob) {
    await cancelStrays(record, record.vertexJob, deps).catch((err: unknown) =>
      deps.log.warning('job.stray_check_failed', 'Could not check for a second job', {
        ...logFields(record),
        error: err,
      }),
    );
  }
}

/**
 * A job older than MAX_JOB_AGE_HOURS: ask Vertex to cancel it, once, and keep polling. Cancel is
 * best effort (the job may still succeed or fail): only the state Vertex then reports is
 * announced. If Vertex reports no final state CANCEL_CONFIRM_HOURS after the request, the job is
 * announced as cancelled and no longer tracked (true: finished).
 */
async function cancelTooOld(
  record: JobRecord,
  job: VertexBatchJob,
  maxHours: number,
  run: Run,
): Promise<boolean> {
  const { deps, summary } = run;
  const now = deps.clock();
  if (record.cancelRequestedAt === null) {
    try {
      await deps.vertex.cancel(record.vertexJob ?? '');
    } catch (err) {
      // A job that finished or vanished meanwhile needs no cancel: the next read tells its state.
      if (!(err instanceof PermanentError)) throw err;
    }
    const written = await deps.jobs.update(record.jobId, toCancelRequested(now));
    if (written) {
      summary.changed++;
      deps.log.warning(
        'job.cancel_requested',
        'Job older than MAX_JOB_AGE_HOURS: cancel requested',
        {
          ...logFields(record),
          vertexJob: record.vertexJob,
          state: job.state,
          maxHours,
        },
      );
    }
    return false;
  }
  const waited = now.getTime() - Date.parse(record.cancelRequestedAt);
  if (waited < CANCEL_CONFIRM_HOURS * 3600_000) return false;
  await finish(
    record,
    {
      ...terminalFields(job, 'JOB_STATE_CANCELLED', record),
      vertexEndTime: job.endTime ?? now.toISOString(),
      error: {
        code: 'DEADLINE_EXCEEDED',
        message: `cancelled by batch-courier after ${maxHours} hours (MAX_JOB_AGE_HOURS); Vertex AI still reported ${job.state ?? 'no state'} ${CANCEL_CONFIRM_HOURS} hours after the cancel request, so the job is no longer tracked`,
      },
    },
    run,
  );
  return true;
}

function terminalFields(job: VertexBatchJob, state: string, record: JobRecord): TerminalFields {
  const stats = job.completionStats;
  let error: JobError | null =
    job.error && (job.error.code || job.error.message)
      ? { code: RPC_CODE_NAMES[job.error.code ?? 2] ?? 'UNKNOWN', message: job.error.message ?? '' }
      : null;
  if (state === 'JOB_STATE_CANCELLED' && record.cancelRequestedAt !== null) {
    // The cancel was ours: say why, in the code consumers already know for it.
    error = {
      code: 'DEADLINE_EXCEEDED',
      message: `cancelled by batch-courier: the job was not finished after MAX_JOB_AGE_HOURS (cancel requested at ${record.cancelRequestedAt})${error?.message ? `; Vertex AI: ${error.message}` : ''}`,
    };
  }
  return {
    vertexState: state,
    stats: {
      successfulCount: countOf(stats?.successfulCount),
      failedCount: countOf(stats?.failedCount),
      incompleteCount: countOf(stats?.incompleteCount),
    },
    error,
    outputDirectory: outputLocationOf(job),
    vertexCreateTime: job.createTime ?? null,
    vertexStartTime: job.startTime ?? null,
    vertexEndTime: job.endTime ?? null,
  };
}
