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
  type Attributes,
  type StreamCall,
  type StreamingPullRequest,
} from './subscriptions.js';

type Resource = Record<string, unknown>;

export interface SubscriptionRequest {
  name?: string;
  topic?: string;
  ackDeadlineSeconds?: number;
  filter?: string;
  enableMessageOrdering?: boolean;
  enableExactlyOnceDelivery?: boolean;
  deadLetterPolicy?: { deadLetterTopic?: string };
  pushConfig?: { pushEndpoint?: string };
  bigqueryConfig?: { table?: string };
  cloudStorageConfig?: { bucket?: string };
}

const RESOURCE_ID = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/;

/** Validates `projects/{p}/{collection}/{id}`. */
function resourceName(value: string | undefined, collection: 'topics' | 'subscriptions'): string {
  const [projects, project, kind, id = '', ...rest] = (value ?? '').split('/');
  if (
    projects !== 'projects' ||
    !project ||
    kind !== collection ||
    rest.length > 0 ||
    !RESOURCE_ID.test(id) ||
    id.startsWith('goog')
  ) {
    throw invalid(`Invalid ${collection.slice(0, -1)} name: ${value ?? ''}`);
  }
  return value as string;
}

const notFound = (kind: string, name: string): RpcError =>
  new RpcError(status.NOT_FOUND, `${kind} not found (resource=${name})`);

/** One page of sorted names; the page token is the last name of the previous page. */
function page(names: string[], pageSize = 0, pageToken = ''): { items: string[]; next: string } {
  const sorted = names.filter((n) => n > pageToken).sort();
  const items = pageSize > 0 ? sorted.slice(0, pageSize) : sorted;
  return { items, next: items.length < sorted.length ? (items.at(-1) ?? '') : '' };
}

export class Broker {
  private readonly topics = new Map<string, Resource>();
  private readonly subs = new Map<string, Subscription>();
  // Message ids keep counting: none is reused while the process runs.
  private nextSeq = 1;

  createTopic(req: Resource & { name?: string }): Resource {
    const name = resourceName(req.name, 'topics');
    if (this.topics.has(name)) {
      throw new RpcError(status.ALREADY_EXISTS, `Topic already exists (resource=${name})`);
    }
    const topic = { ...req, name };
    this.topics.set(name, topic);
    return topic;
  }

  listTopics(req: { project?: string; pageSize?: number; pageToken?: string }) {
    const prefix = `${req.project ?? ''}/topics/`;
    const names = [...this.topics.keys()].filter((n) => n.startsWith(prefix));
    const { items, next } = page(names, req.pageSize, req.pageToken);
    return { topics: items.map((n) => this.topics.get(n)), nextPageToken: next };
  }

  listTopicSubscriptions(req: { topic?: string; pageSize?: number; pageToken?: string }) {
    const topic = this.topic(req.topic);
    const names = [...this.subs.values()].filter((s) => s.topic === topic).map((s) => s.name);
    const { items, next } = page(names, req.pageSize, req.pageToken);
    return { subscriptions: items, nextPageToken: next };
  }

  publish(req: { topic?: string; messages?: { data?: Buffer; attributes?: Attributes }[] }) {
    const topic = this.topic(req.topic);
    const messages = req.messages ?? [];
    if (messages.length === 0) throw invalid('The publish request contains no messages');
    if (messages.some((m) => !m.data?.length && Object.keys(m.attributes ?? {}).length === 0)) {
      throw invalid('Some messages contain neither data nor attributes');
    }
    const now = Date.now();
    const publishTime = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
    const targets = [...this.subs.values()].filter((s) => s.topic === topic);
    const messageIds = messages.map((m) => {
      const seq = this.nextSeq++;
      const message = {
        data: m.data ?? Buffer.alloc(0),
        attributes: { ...m.attributes },
        messageId: String(seq),
        publishTime,
      };
      for (const sub of targets) sub.enqueue(seq, message);
      return message.messageId;
    });
    return { messageIds };
  }

  createSubscription(req: SubscriptionRequest): Resource {
    const name = resourceName(req.name, 'subscriptions');
    const topic = this.topic(req.topic);
    if (this.subs.has(name)) {
      throw new RpcError(status.ALREADY_EXISTS, `Subscription already exists (resource=${name})`);
    }
    const unsupported = [
      req.filter && 'filter',
      req.deadLetterPolicy?.deadLetterTopic && 'deadLetterPolicy',
      req.enableMessageOrdering && 'enableMessageOrdering',
      req.enableExactlyOnceDelivery && 'enableExactlyOnceDelivery',
      req.pushConfig?.pushEndpoint && 'pushConfig',
      (req.bigqueryConfig?.table || req.cloudStorageConfig?.bucket) && 'export subscriptions',
    ].filter(Boolean);
    if (unsupported.length > 0) {
      throw new RpcError(
        status.UNIMPLEMENTED,
        `not implemented by the builtin emulator: ${unsupported.join(', ')}`,
      );
    }
    const ackDeadlineSeconds = clampDeadline(req.ackDeadlineSeconds, 10);
    const resource = { ...req, name, topic, ackDeadlineSeconds, state: 'ACTIVE' };
    this.subs.set(name, new Subscription(name, topic, resource, ackDeadlineSeconds));
    return resource;
  }

  subscription(name: string | undefined): Subscription {
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
    this.subs.clear();
    this.topics.clear();
  }

  private topic(name: string | undefined): string {
    const valid = resourceName(name, 'topics');
    if (!this.topics.has(valid)) throw notFound('Topic', valid);
    return valid;
  }
}
