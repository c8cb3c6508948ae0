/**
 * `batch-courier watch`: a live view of the outstanding jobs (state, progress as Vertex AI counts
 * it, age) and of the admission queues, refreshed every `--interval` seconds until Ctrl-C (or
 * `--count` refreshes). On a terminal the view is redrawn in place; otherwise each refresh is
 * printed; with `--json`, one JSON object per line per refresh.
 */
import { createLogUpdate } from 'log-update';
import type { JobRecord } from '../../shared/core/jobs.js';
import type { Context } from '../context.js';
import { ago, progressBar, shortModel, table } from '../format.js';

/** Most outstanding records read per refresh. */
const MAX_RECORDS = 1000;
/** Jobs whose progress is asked of Vertex AI per refresh (one `get` each). */
const MAX_PROGRESS_READS = 20;

/** One refresh. */
export interface WatchSnapshot {
  time: string;
  jobs: {
    jobId: string;
    status: JobRecord['status'];
    vertexState: string | null;
    model: string;
    location: string;
    requestCount: number | null;
    createTime: string;
    /** Rows Vertex AI has finished (succeeded + failed) of `requestCount`; null when unknown. */
    progress: { done: number; total: number } | null;
  }[];
  queues: {
    queue: string;
    waiting: number;
    oldestWaitingSince: string | null;
    nextAttemptAt: string | null;
  }[];
  claude: { running: number; capacity: number };
  /** True when there were more outstanding records than one refresh reads. */
  truncated: boolean;
}

/** Options of {@link watchCommand}. */
export interface WatchOptions {
  intervalMs: number;
  /** Refreshes before returning; undefined: until interrupted. */
  count?: number;
}

async function snapshot(ctx: Context): Promise<WatchSnapshot> {
  const { jobs, vertex } = await ctx.deps();
  const config = ctx.config();
  const records: JobRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await jobs.listOutstanding(200, cursor);
    records.push(...page.records);
    cursor = page.next;
  } while (cursor && records.length < MAX_RECORDS);

  const running = records.filter((r) => r.status === 'SUBMITTED' && r.vertexJob);
  const progress = new Map<string, { done: number; total: number }>();
  await Promise.all(
    running.slice(0, MAX_PROGRESS_READS).map(async (r) => {
      const job = await vertex.get(r.vertexJob ?? '').catch(() => undefined);
      const stats = job?.completionStats;
      if (!stats || r.requestCount === null) return;
      const done = Number(stats.successfulCount ?? 0) + Number(stats.failedCount ?? 0);
      progress.set(r.jobId, { done, total: r.requestCount });
    }),
  );

  const queues = new Map<string, WatchSnapshot['queues'][number]>();
  for (const r of records.filter((x) => x.status === 'WAITING')) {
    const q = queues.get(r.queue) ?? {
      queue: r.queue,
      waiting: 0,
      oldestWaitingSince: null,
      nextAttemptAt: null,
    };
    q.waiting++;
    const since = r.waitingSince ?? r.createTime;
    if (q.oldestWaitingSince === null || since < q.oldestWaitingSince) q.oldestWaitingSince = since;
    if (r.nextAttemptAt && (q.nextAttemptAt === null || r.nextAttemptAt < q.nextAttemptAt)) {
      q.nextAttemptAt = r.nextAttemptAt;
    }
    queues.set(r.queue, q);
  }

  return {
    time: ctx.io.clock().toISOString(),
    jobs: records.map((r) => ({
      jobId: r.jobId,
      status: r.status,
      vertexState: r.vertexState,
      model: r.model,
      location: r.location,
      requestCount: r.requestCount,
      createTime: r.createTime,
      progress: progress.get(r.jobId) ?? null,
    })),
    queues: [...queues.values()],
    claude: {
      running: running.filter((r) => r.provider === 'anthropic').length,
      capacity: config.ANTHROPIC_MAX_CONCURRENT_JOBS,
    },
    truncated: cursor !== undefined,
  };
}

function render(ctx: Context, s: WatchSnapshot, intervalMs: number): string {
  const { c } = ctx;
  const config = ctx.config();
  const now = new Date(s.time);
  const lines = [
    `${c.bold('batch-courier watch')}  ${c.dim(`${config.GOOGLE_CLOUD_PROJECT} / ${config.JOBS_COLLECTION}  ${s.time.slice(11, 19)} UTC, every ${intervalMs / 1000} s, Ctrl-C stops`)}`,
    '',
  ];
  const count = (...statuses: JobRecord['status'][]): number =>
    s.jobs.filter((j) => statuses.includes(j.status)).length;
  lines.push(
    `${s.jobs.length}${s.truncated ? '+' : ''} outstanding: ${count('SUBMITTING')} being submitted, ${count('SUBMITTED')} at Vertex AI, ${count('WAITING')} waiting for capacity, ${count('COMPLETED', 'REJECTED', 'SUBMIT_FAILED')} being announced`,
  );
  if (s.jobs.length > 0) {
    lines.push(
      '',
      table(
        ['JOB', 'STATUS', 'VERTEX STATE', 'MODEL', 'PROGRESS', 'AGE'],
        s.jobs.map((j) => [
          j.jobId,
          j.status,
          j.vertexState?.replace(/^JOB_STATE_/, '') ?? '-',
          `${shortModel(j.model)}@${j.location}`,
          j.progress
            ? `${progressBar(j.progress.done, j.progress.total)} ${j.progress.done}/${j.progress.total}`
            : c.dim(j.requestCount === null ? '-' : `${j.requestCount} requests`),
          ago(j.createTime, now).replace(/ ago$/, ''),
        ]),
        c,
      ),
    );
  }
  lines.push('');
  if (s.queues.length === 0) lines.push(c.dim('queues: none waiting'));
  else {
    lines.push(
      table(
        ['QUEUE', 'WAITING', 'OLDEST', 'NEXT ATTEMPT'],
        s.queues.map((q) => [
          q.queue,
          q.waiting,
          ago(q.oldestWaitingSince, now),
          q.nextAttemptAt ? ago(q.nextAttemptAt, now) : 'next poll',
        ]),
        c,
      ),
    );
  }
  lines.push(
    c.dim(
      `Claude jobs at Vertex AI: ${s.claude.running} of ${s.claude.capacity === 0 ? 'unlimited' : s.claude.capacity} (ANTHROPIC_MAX_CONCURRENT_JOBS)`,
    ),
  );
  return lines.join('\n');
}

export async function watchCommand(ctx: Context, options: WatchOptions): Promise<number> {
  const { io } = ctx;
  const live = !ctx.json && io.stdout.isTTY === true;
  const draw = live ? createLogUpdate(io.stdout) : undefined;
  let stopped = false;
  void io.interrupted.then(() => {
    stopped = true;
  });
  try {
    for (let i = 0; options.count === undefined || i < options.count; i++) {
      const s = await snapshot(ctx);
      if (ctx.json) io.stdout.write(`${JSON.stringify(s)}\n`);
      else if (draw) draw(render(ctx, s, options.intervalMs));
      else ctx.say(`${render(ctx, s, options.intervalMs)}\n`);
      if (stopped || (options.count !== undefined && i + 1 >= options.count)) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise((r) => (timer = setTimeout(r, options.intervalMs))),
        io.interrupted,
      ]);
      clearTimeout(timer);
      if (stopped) break;
    }
  } finally {
    draw?.done();
  }
  return 0;
}
