/**
 * `batch-courier replay <jobId>`: publishes the recorded completion event again, with the same
 * `eventId` (and the same publish time): for a consumer that lost it. Consumers that dedupe on
 * `eventId` ignore it if they had it.
 */
import type { Context } from '../context.js';
import { CliError } from '../options.js';
import { requireRecord, stateText } from '../records.js';
import { publishedEvent } from './show.js';

export async function replayCommand(ctx: Context, jobId: string): Promise<number> {
  const record = await requireRecord(ctx, jobId);
  const event = publishedEvent(record);
  if (!event) {
    throw new CliError(
      `job ${jobId} has not been announced (${stateText(record)}): there is no event to replay`,
      'the poller publishes its event once the job has ended; `batch-courier watch` follows it',
    );
  }
  if (event.eventId !== record.eventId) {
    throw new CliError(
      `job ${jobId}: the recorded eventId ${String(record.eventId)} is not the id of its outcome (${event.eventId}); the record was changed after it was announced`,
    );
  }
  const { publisher } = await ctx.deps();
  const messageId = await publisher.publish(event);
  const topic = ctx.config().COMPLETION_TOPIC;
  if (ctx.json) {
    ctx.printJson({ jobId, eventId: event.eventId, topic, messageId, event });
  } else {
    ctx.say(
      `published ${event.eventType} (${event.state}) of ${jobId} again to ${topic}: eventId ${event.eventId}, message ${messageId}`,
    );
  }
  return 0;
}
