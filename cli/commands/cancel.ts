/**
 * `batch-courier cancel <jobId>`: asks Vertex AI to cancel the job. Nothing else changes here: the
 * poller sees the state Vertex then reports (CANCELLED, or SUCCEEDED/FAILED if the job finished
 * first; cancel is best effort) and announces it with one event, as for any other outcome.
 */
import { describeError } from '../../shared/core/errors.js';
import type { Context } from '../context.js';
import { CliError } from '../options.js';
import { isFinished, requireRecord, stateText } from '../records.js';

export async function cancelCommand(ctx: Context, jobId: string): Promise<number> {
  let record = await requireRecord(ctx, jobId);
  if (record.status === 'RETRYING' && record.retryJobId) {
    // The input waits for a retry of its failed rows: that attempt's job is the one running, and
    // once it is cancelled no further attempt follows (README "Failed rows").
    record = await requireRecord(ctx, record.retryJobId);
  }
  if (isFinished(record)) {
    throw new CliError(
      `job ${jobId} has finished already (${stateText(record)}): nothing to cancel`,
    );
  }
  if (!record.vertexJob) {
    throw new CliError(
      `job ${jobId} has no Vertex AI job yet (${record.status}${record.status === 'WAITING' ? `, queued in ${record.queue}` : ''}): nothing to cancel at Vertex AI`,
      record.status === 'WAITING'
        ? `it is submitted when its queue has capacity; it is rejected with CAPACITY.EXHAUSTED after MAX_QUEUE_HOURS`
        : 'try again in a moment, once the job is created',
    );
  }
  const { vertex } = await ctx.deps();
  try {
    await vertex.cancel(record.vertexJob);
  } catch (err) {
    throw new CliError(
      `Vertex AI did not accept the cancel of ${record.vertexJob}: ${describeError(err).message}`,
      'check `batch-courier show ' + jobId + '`: a job that has just finished cannot be cancelled',
      { cause: err },
    );
  }
  const topic = ctx.config().COMPLETION_TOPIC;
  if (ctx.json) {
    ctx.printJson({ jobId, vertexJob: record.vertexJob, cancelRequested: true });
  } else {
    ctx.say(`cancel requested: ${record.vertexJob} (job ${jobId})`);
    ctx.say(
      `the poller announces the outcome on ${topic} once Vertex AI reports it: JOB_STATE_CANCELLED, or the job's own end if it finished first`,
    );
  }
  return 0;
}
