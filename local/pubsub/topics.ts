/**
 * The builtin Pub/Sub emulator's state: topics, their subscriptions, and publishing. A
 * subscription sees only the messages published after it was created. Subscription features the
 * product does not use (filters, dead-letter topics, ordering, exactly-once, push and export
 * subscriptions) are refused with UNIMPLEMENTED rather than half imitated.
 */
import { status } from '@grpc/grpc-js';
import {
  clampDeadline,
  invalid,
  RpcError,
  Subscription,
  type StreamCall,
  type StreamingPullRequest,
} from './subscriptions.js';

type Resource = Record<string, unknown>;

const UNSUPPORTED = `filter deadLetterPolicy enableMessageOrdering enableExactlyOnceDelivery
  pushConfig bigqueryConfig cloudStorageConfig`.split(/\s+/);

/** Whether a request field carries a value (proto3 sends defaults as empty values). */
const isSet = (v: unknown): boolean =>
  typeof v === 'object' && v !== null ? Object.values(v).some(isSet) : Boolean(v);

/** `projects/{project}/{collection}/{id}`, with an id of 3–255 characters starting with a letter. */
function resourceName(value: unknown, collection: 'topics' | 'subscriptions'): string {
  const pattern = new RegExp(`^projects/[^/]+/${collection}/(?!goog)[A-Za-z][\\w.~+%-]{2,254}$`);
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw invalid(`Invalid ${collection.slice(0, -1)} name: ${JSON.stringify(value)}`);
  }
  return value;
}

const notFound = (kind: string, name: string): RpcError =>
  new RpcError(status.NOT_FOUND, `${kind} not found (resource=${name})`);
const exists = (kind: string, name: string): RpcError =>
  new RpcError(status.ALREADY_EXISTS, `${kind} already exists (resource=${name})`);

export class Broker {
  private readonly topics = new Map<string, Resource>();
  private readonly subs = new Map<string, Subscription>();
  // Message ids keep counting: none is reused while the process runs.
  private nextId = 1;

  createTopic(req: Resource): Resource {
    const name = resourceName(req.name, 'topics');
    if (this.topics.has(name)) throw exists('Topic', name);
    this.topics.set(name, { ...req, name });
    return { ...req, name };
  }

  /** Every topic of the project, in one page. */
  listTopics(req: { project?: string }): Resource {
    const names = [...this.topics.keys()].filter((n) => n.startsWith(`${req.project}/topics/`));
    return { topics: names.sort().map((n) => this.topics.get(n)) };
  }

  /** Every subscription of the topic, in one page. */
  listTopicSubscriptions(req: { topic?: string }): Resource {
    const topic = this.topic(req.topic);
    const subs = [...this.subs.values()].filter((s) => s.topic === topic);
    return { subscriptions: subs.map((s) => s.name).sort() };
  }

  publish(req: {
    topic?: string;
    messages?: { data?: Buffer; attributes?: Record<string, string> }[];
  }) {
    const topic = this.topic(req.topic);
    const messages = req.messages ?? [];
    if (messages.length === 0) throw invalid('The publish request contains no messages');
    if (messages.some((m) => !m.data?.length && !isSet(m.attributes))) {
      throw invalid('Some messages contain neither data nor attributes');
    }
    const now = Date.now();
    const publishTime = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
    const targets = [...this.subs.values()].filter((s) => s.topic === topic);
    const messageIds = messages.map(({ data = Buffer.alloc(0), attributes = {} }) => {
      const message = { data, attributes, messageId: String(this.nextId++), publishTime };
      for (const sub of targets) sub.enqueue(message);
      return message.messageId;
    });
    return { messageIds };
  }

  createSubscription(req: Resource & { ackDeadlineSeconds?: number }): Resource {
    const name = resourceName(req.name, 'subscriptions');
    const topic = this.topic(req.topic);
    if (this.subs.has(name)) throw exists('Subscription', name);
    const unsupported = UNSUPPORTED.filter((field) => isSet(req[field]));
    if (unsupported.length > 0) {
      const message = `not implemented by the builtin emulator: ${unsupported.join(', ')}`;
      throw new RpcError(status.UNIMPLEMENTED, message);
    }
    const ackDeadlineSeconds = clampDeadline(req.ackDeadlineSeconds, 10);
    const resource = { ...req, name, topic, ackDeadlineSeconds, state: 'ACTIVE' };
    this.subs.set(name, new Subscription(name, topic, ackDeadlineSeconds));
    return resource;
  }

  subscription(name: unknown): Subscription {
    const valid = resourceName(name, 'subscriptions');
    const sub = this.subs.get(valid);
    if (!sub) throw notFound('Subscription', valid);
    return sub;
  }

  /** Serves a StreamingPull call once its first request names the subscription. */
  streamingPull(call: StreamCall): void {
    call.once('data', (first: StreamingPullRequest) => {
      try {
        this.subscription(first.subscription).attach(call, first);
      } catch (err) {
        call.emit('error', err);
      }
    });
  }

  /** Ends every stream and timer (the server is going away). */
  shutdown(): void {
    for (const sub of this.subs.values()) {
      sub.close(new RpcError(status.UNAVAILABLE, 'emulator shutting down'));
    }
  }

  private topic(name: unknown): string {
    const valid = resourceName(name, 'topics');
    if (!this.topics.has(valid)) throw notFound('Topic', valid);
    return valid;
  }
}
