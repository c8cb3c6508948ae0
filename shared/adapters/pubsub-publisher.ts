/**
 * The Pub/Sub {@link EventPublisher}: JSON data plus the event's attributes (`eventType`, `state`,
 * `jobId`, `model`, `schemaVersion`), each value capped to the 1,024 bytes Pub/Sub accepts. The
 * topic is never created here: Terraform owns it.
 */
import type { PubSub } from '@google-cloud/pubsub';
// The gRPC status codes, from the google-gax that `@google-cloud/pubsub` itself uses (its
// dependency, which npm installs at the top of node_modules; the deployed bundles hold that one
// copy). Over REST as over gRPC, the client reports failures with these codes.
import { Status } from 'google-gax';
import { PermanentError, TransientError } from '../core/errors.js';
import { eventAttributes, type CompletionEvent } from '../core/events.js';
import type { EventPublisher } from '../ports.js';
import { withTimeLimit } from '../time-limit.js';

/** Codes after which the same publish can never succeed: retrying cannot help. */
export const PERMANENT_PUBLISH_CODES: ReadonlySet<number> = new Set([
  Status.INVALID_ARGUMENT, // e.g. an attribute over 1,024 bytes, a message over 10 MB
  Status.NOT_FOUND, // the topic does not exist
  Status.PERMISSION_DENIED,
  Status.FAILED_PRECONDITION,
  Status.OUT_OF_RANGE,
  Status.UNIMPLEMENTED,
  Status.UNAUTHENTICATED,
]);

/**
 * How long one publish may take, retries included. Given to the client as its timeout, and
 * enforced here too: with Pub/Sub refusing connections, the client's own retries overrun it
 * (16–30 s measured).
 */
export const PUBLISH_TIMEOUT_MS = 10_000;

/** Waits before retrying a transient publish failure, then the last one repeatedly. */
const RETRY_DELAYS_MS = [100, 200, 400, 800, 1600] as const;

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
      const message = {
        data: Buffer.from(JSON.stringify(event), 'utf8'),
        attributes: eventAttributes(event),
      };
      const deadline = Date.now() + PUBLISH_TIMEOUT_MS;
      for (let attempt = 0; ; attempt++) {
        try {
          // If the deadline wins, the abandoned publish may still succeed later: a duplicate with
          // the same eventId (the record stays due and is announced again), which consumers dedupe.
          return await withTimeLimit(
            handle.publishMessage(message),
            Math.max(0, deadline - Date.now()),
            () =>
              new TransientError(
                'EVENTS.UNAVAILABLE',
                `publish to ${topic} failed: no answer within ${PUBLISH_TIMEOUT_MS / 1000} s`,
              ),
          );
        } catch (err) {
          const failure = mapPublishError(err, topic);
          // Over REST the client gives up on a transient failure at once (over gRPC it retries
          // until its timeout, which is this deadline): retried here, with backoff, until the
          // deadline. A publish is safe to repeat: consumers dedupe on the eventId.
          const wait = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)] ?? 0;
          if (!(failure instanceof TransientError) || Date.now() + wait >= deadline) throw failure;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    },
  };
}

/**
 * Over REST the client reports a refused publish as the HTTP answer (`code` 404, not NOT_FOUND):
 * these statuses mean the same as the gRPC codes of {@link PERMANENT_PUBLISH_CODES}. (The answer's
 * body normally names the canonical code too; this table is for one that does not.)
 */
const PERMANENT_HTTP_STATUSES: ReadonlyMap<number, Status> = new Map([
  [400, Status.INVALID_ARGUMENT],
  [401, Status.UNAUTHENTICATED],
  [403, Status.PERMISSION_DENIED],
  [404, Status.NOT_FOUND],
  [412, Status.FAILED_PRECONDITION],
  [501, Status.UNIMPLEMENTED],
]);

/**
 * The canonical code of a failed publish: the gRPC code; over REST, the code the answer's body
 * names (`{"error": {"status": "NOT_FOUND"}}`), else the one its HTTP status stands for.
 */
function canonicalCode(err: unknown): number | undefined {
  const e = err as {
    code?: unknown;
    response?: { status?: unknown; data?: { error?: { status?: unknown } } };
  } | null;
  if (e?.response === undefined) return typeof e?.code === 'number' ? e.code : undefined;
  const named = e.response.data?.error?.status;
  if (typeof named === 'string' && Object.hasOwn(Status, named)) {
    return Status[named as keyof typeof Status];
  }
  const http = e.response.status;
  return typeof http === 'number' ? PERMANENT_HTTP_STATUSES.get(http) : undefined;
}

/**
 * A failed publish: PermanentError `EVENTS.INVALID` for the codes of
 * {@link PERMANENT_PUBLISH_CODES} (over gRPC or REST) and for a message the client refuses before
 * sending it (a TypeError); TransientError `EVENTS.UNAVAILABLE` otherwise (UNAVAILABLE,
 * DEADLINE_EXCEEDED, no answer, …).
 */
export function mapPublishError(err: unknown, topic: string): Error {
  if (err instanceof PermanentError || err instanceof TransientError) return err;
  const code = canonicalCode(err);
  const message = `publish to ${topic} failed: ${err instanceof Error ? err.message : String(err)}`;
  if ((code !== undefined && PERMANENT_PUBLISH_CODES.has(code)) || err instanceof TypeError) {
    return new PermanentError('EVENTS.INVALID', message, { cause: err });
  }
  return new TransientError('EVENTS.UNAVAILABLE', message, { cause: err });
}
