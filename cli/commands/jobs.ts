/** `batch-courier jobs`: a table of job records, newest first. */
import type { JobStatus } from '../../shared/core/jobs.js';
import type { Context } from '../context.js';
import { ago, shortModel, table } from '../format.js';

/** Options of {@link jobsCommand}. */
export interface JobsOptions {
  statuses?: JobStatus[];
  /** Milliseconds back from now. */
  sinceMs?: number;
  limit: number;
}

export async function jobsCommand(ctx: Context, options: JobsOptions): Promise<number> {
  const { jobs } = await ctx.deps();
  const now = ctx.io.clock();
  const records = await jobs.listRecent({
    ...(options.statuses ? { statuses: options.statuses } : {}),
    ...(options.sinceMs !== undefined
      ? { since: new Date(now.getTime() - options.sinceMs).toISOString() }
      : {}),
    limit: options.limit,
  });
  if (ctx.json) {
    ctx.printJson(records);
    return 0;
  }
  if (records.length === 0) {
    ctx.say('no jobs match');
    return 0;
  }
  const { c } = ctx;
  const paint = (status: string): string =>
    status === 'COMPLETED'
      ? c.green(status)
      : status === 'REJECTED' || status === 'SUBMIT_FAILED'
        ? c.red(status)
        : c.yellow(status);
  ctx.say(
    table(
      ['JOB', 'STATUS', 'VERTEX STATE', 'MODEL', 'REQUESTS', 'CREATED', 'INPUT'],
      records.map((r) => [
        r.jobId,
        paint(r.status),
        r.vertexState?.replace(/^JOB_STATE_/, '') ?? '-',
        `${shortModel(r.model)}@${r.location}`,
        r.requestCount ?? '-',
        ago(r.createTime, now),
        `gs://${r.bucket}/${r.object}`,
      ]),
      c,
    ),
  );
  if (records.length === options.limit) {
    ctx.say(c.dim(`(the ${options.limit} newest; --limit shows more)`));
  }
  return 0;
}
