/**
 * Whether the completion topic exists, through the Pub/Sub client, so that the same check works in
 * the cloud and against an emulator (`batch-courier doctor`). An emulator that does not implement
 * GetTopic is asked for the project's topic list instead.
 */
import type { PubSub } from '@google-cloud/pubsub';
import { withTimeLimit } from '../time-limit.js';
import { topicName } from './cloud-checks.js';

/** gRPC UNIMPLEMENTED. */
const UNIMPLEMENTED = 12;
/** gRPC NOT_FOUND. */
const NOT_FOUND = 5;

/** True when `topic` (an id or `projects/P/topics/T`) exists; rejects when Pub/Sub cannot tell. */
export async function topicExists(
  pubsub: PubSub,
  project: string,
  topic: string,
  timeoutMs = 10_000,
): Promise<boolean> {
  const name = topicName(project, topic);
  const bounded = <T>(p: Promise<T>): Promise<T> =>
    withTimeLimit(
      p,
      timeoutMs,
      () => new Error(`Pub/Sub did not answer within ${timeoutMs / 1000} s`),
    );
  try {
    const [exists] = await bounded(pubsub.topic(name).exists());
    return exists;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === NOT_FOUND) return false;
    if (code !== UNIMPLEMENTED) throw err;
  }
  const [topics] = await bounded(pubsub.getTopics({ autoPaginate: true }));
  return topics.some((t) => t.name === name);
}
