/**
 * The Pub/Sub {@link EventPublisher}: JSON data plus the attributes of CONTRACT §5. The topic is
 * never created here: Terraform owns it.
 */
import type { PubSub } from '@google-cloud/pubsub';
import { PermanentError, TransientError } from '../errors.js';
import { eventAttributes, type CompletionEvent } from '../events.js';
import type { EventPublisher } from '../ports.js';

const PERMANENT_CODES = new Set([3, 5, 7, 9, 16]);
/** How long one publish may take, retries included. */
export const PUBLISH_TIMEOUT_MS = 10_000;

/** Creates a publisher to `topic` (an id, or `projects/P/topics/T`). */
export function createPubSubPublisher(pubsub: PubSub, topic: string): EventPublisher {
  // A short batching window: functions publish one or a few events and must not wait long. A
  // bounded publish (the client's default retries for 60 s): an unreachable Pub/Sub fails this
  // job's announcement quickly; it stays due for the next poll run.
  const handle = pubsub.topic(topic, {
    batching: { maxMessages: 100, maxMilliseconds: 5 },
    gaxOpts: { timeout: PUBLISH_TIMEOUT_MS },
  });
  return {
    async publish(event: CompletionEvent) {
      try {
        return await handle.publishMessage({
          data: Buffer.from(JSON.stringify(event), 'utf8'),
          attributes: eventAttributes(event),
        });
      } catch (err) {
        const code = (err as { code?: unknown } | null)?.code;
        const message = `publish to ${topic} failed: ${err instanceof Error ? err.message : String(err)}`;
        if (typeof code === 'number' && PERMANENT_CODES.has(code)) {
          throw new PermanentError('EVENTS.INVALID', message, { cause: err });
        }
        throw new TransientError('EVENTS.UNAVAILABLE', message, { cause: err });
      }
    },
  };
}
