/**
 * A Pub/Sub emulator built into the repository, for machines without the Google Cloud CLI (and so
 * without the official Java emulator). It speaks the google.pubsub.v1 gRPC API well enough for the
 * unmodified `@google-cloud/pubsub` client (`PUBSUB_EMULATOR_HOST=127.0.0.1:PORT`), plus the
 * official emulator's HTTP endpoints on the same port: `GET /` (readiness, answers `Ok`) and
 * `POST /reset` (drops every topic, subscription and message).
 *
 * Implemented: Publisher CreateTopic, GetTopic, DeleteTopic, ListTopics, ListTopicSubscriptions,
 * Publish; Subscriber CreateSubscription, GetSubscription, DeleteSubscription, ListSubscriptions,
 * Pull, StreamingPull, Acknowledge, ModifyAckDeadline. Every other RPC answers UNIMPLEMENTED.
 *
 * Semantics kept from the real service: a subscription sees only messages published after it was
 * created; a lease not acked before its deadline is redelivered; ack ids are unique per delivery
 * (a stale ack id is ignored); with `enableMessageOrdering`, messages sharing an ordering key are
 * delivered in publish order, one at a time; dead-letter policies forward a message after
 * `maxDeliveryAttempts`. Differences: `filter` is applied (the official emulator ignores it),
 * `deliveryAttempt` is always set, push/BigQuery/Cloud Storage subscriptions, snapshots, seek and
 * updates are not implemented, and nothing is persisted.
 *
 * One TCP port serves both protocols: each connection's first bytes are sniffed; the HTTP/2
 * preface goes to an in-process grpc-js server (a connection injector, so no second port), anything
 * else to a `node:http` server. Everything listens on 127.0.0.1 only.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createRequire } from 'node:module';
import { createServer as createNetServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  Server as GrpcServer,
  ServerCredentials,
  status,
  type handleBidiStreamingCall,
  type handleUnaryCall,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';

/** A running builtin Pub/Sub emulator. */
export interface PubSubEmulator {
  /** `127.0.0.1:PORT`, the form `PUBSUB_EMULATOR_HOST` and the client's `apiEndpoint` take. */
  readonly host: string;
  /** The TCP port (gRPC and HTTP share it). */
  readonly port: number;
  /** Drops every topic, subscription and message, ends open streams and zeroes the counters. */
  reset(): void;
  /** Ends every stream, call, timer and connection, then stops listening. */
  close(): Promise<void>;
  /** Counters since start or the last reset, for assertions. */
  stats(): PubSubEmulatorStats;
}

/** Counters kept by the emulator (since start or the last reset). */
export interface PubSubEmulatorStats {
  /** Topics that exist now. */
  topics: number;
  /** Subscriptions that exist now. */
  subscriptions: number;
  /** Messages accepted by Publish (dead-lettered forwards included). */
  published: number;
  /** Deliveries to a Pull or StreamingPull caller, redeliveries included. */
  delivered: number;
  /** Leases ended by an ack with a current ack id. */
  acked: number;
  /** Deliveries with `deliveryAttempt` above 1 (after a nack or an expired lease). */
  redelivered: number;
  /** StreamingPull streams open now. */
  streams: number;
}

/** Options of {@link startPubSubEmulator}. */
export interface PubSubEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Receives one structured log object per event (topic created, stream opened, ...). */
  log?: (line: object) => void;
  /**
   * How long a Pull without `returnImmediately` waits for a message when none is available before
   * answering empty (default 500 ms; the real service waits longer, tests prefer short).
   */
  pullWaitMs?: number;
}

type Log = (line: object) => void;
type Attributes = Record<string, string>;

// ---------------------------------------------------------------------------------------------
// Wire shapes. proto-loader decodes with keepCase false, longs as strings, enums as strings and no
// defaults, so every field is optional; only the fields this emulator reads are declared.

interface Timestamp {
  seconds: number | string;
  nanos: number;
}

interface PubsubMessageIn {
  data?: Buffer;
  attributes?: Attributes;
  orderingKey?: string;
}

interface PubsubMessage {
  data: Buffer;
  attributes: Attributes;
  messageId: string;
  publishTime: Timestamp;
  orderingKey: string;
}

interface ReceivedMessage {
  ackId: string;
  message: PubsubMessage;
  deliveryAttempt: number;
}

interface TopicIn {
  name?: string;
  [field: string]: unknown;
}

interface SubscriptionIn {
  name?: string;
  topic?: string;
  ackDeadlineSeconds?: number;
  filter?: string;
  enableMessageOrdering?: boolean;
  enableExactlyOnceDelivery?: boolean;
  deadLetterPolicy?: { deadLetterTopic?: string; maxDeliveryAttempts?: number };
  pushConfig?: { pushEndpoint?: string };
  bigqueryConfig?: { table?: string };
  cloudStorageConfig?: { bucket?: string };
  [field: string]: unknown;
}

/** A stored Topic or Subscription, echoed back as the resource. */
type Resource = Record<string, unknown>;

interface TopicRequest {
  topic?: string;
}
interface SubscriptionRequest {
  subscription?: string;
}
interface ListRequest {
  project?: string;
  topic?: string;
  pageSize?: number;
  pageToken?: string;
}
interface PublishRequest {
  topic?: string;
  messages?: PubsubMessageIn[];
}
interface PullRequest {
  subscription?: string;
  maxMessages?: number;
  returnImmediately?: boolean;
}
interface AcknowledgeRequest {
  subscription?: string;
  ackIds?: string[];
}
interface ModifyAckDeadlineRequest {
  subscription?: string;
  ackIds?: string[];
  ackDeadlineSeconds?: number;
}
interface StreamingPullRequest {
  subscription?: string;
  ackIds?: string[];
  modifyDeadlineSeconds?: number[];
  modifyDeadlineAckIds?: string[];
  streamAckDeadlineSeconds?: number;
  maxOutstandingMessages?: number | string;
  maxOutstandingBytes?: number | string;
}
interface PullResponse {
  receivedMessages: ReceivedMessage[];
}
interface StreamingPullResponse {
  receivedMessages: ReceivedMessage[];
  subscriptionProperties: { exactlyOnceDeliveryEnabled: boolean; messageOrderingEnabled: boolean };
}
type Empty = Record<string, never>;
type StreamCall = ServerDuplexStream<StreamingPullRequest, StreamingPullResponse>;

// ---------------------------------------------------------------------------------------------
// Errors

/** A gRPC status error; grpc-js turns `code` and `details` into the call's status. */
class RpcError extends Error {
  readonly details: string;
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
    this.details = message;
  }
}

const invalid = (message: string): RpcError => new RpcError(status.INVALID_ARGUMENT, message);
const notFound = (kind: string, name: string): RpcError =>
  new RpcError(status.NOT_FOUND, `${kind} not found (resource=${name})`);

function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  return new RpcError(status.INTERNAL, err instanceof Error ? err.message : String(err));
}

// ---------------------------------------------------------------------------------------------
// Names, numbers

const RESOURCE_ID = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/;
const DELETED_TOPIC = '_deleted-topic_';
const DEFAULT_ACK_DEADLINE_SECONDS = 10;
const MAX_ACK_DEADLINE_SECONDS = 600;
const SEVEN_DAYS_SECONDS = 7 * 24 * 3600;
const THIRTY_ONE_DAYS_SECONDS = 31 * 24 * 3600;

/** Validates `projects/{p}/{collection}/{id}` and returns it. */
function resourceName(value: string | undefined, collection: 'topics' | 'subscriptions'): string {
  const kind = collection === 'topics' ? 'topic' : 'subscription';
  if (!value) throw invalid(`The ${kind} name is required`);
  const parts = value.split('/');
  const id = parts[3] ?? '';
  if (
    parts.length !== 4 ||
    parts[0] !== 'projects' ||
    !parts[1] ||
    parts[2] !== collection ||
    !RESOURCE_ID.test(id) ||
    id.startsWith('goog')
  ) {
    throw invalid(`Invalid ${kind} name: ${value}`);
  }
  return value;
}

function projectName(value: string | undefined): string {
  if (!value || !/^projects\/[^/]+$/.test(value)) throw invalid(`Invalid project: ${value ?? ''}`);
  return value;
}

const clamp = (value: number, min: number, max: number): number =>
  Math.min(max, Math.max(min, value));

function timestamp(ms: number): Timestamp {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** One page of sorted names; the page token is the last name of the previous page. */
function page<T>(
  names: string[],
  pageSize: number | undefined,
  pageToken: string | undefined,
  map: (name: string) => T,
): { items: T[]; nextPageToken: string } {
  const sorted = [...names].sort();
  const start = pageToken ? sorted.findIndex((n) => n > pageToken) : 0;
  const from = start < 0 ? sorted.length : start;
  const size = pageSize && pageSize > 0 ? pageSize : sorted.length;
  const slice = sorted.slice(from, from + size);
  const more = from + size < sorted.length;
  return { items: slice.map(map), nextPageToken: more ? (slice[slice.length - 1] ?? '') : '' };
}

// ---------------------------------------------------------------------------------------------
// Subscription filters: the Pub/Sub filter language (attributes only).
//   attributes:KEY | attributes.KEY = "v" | attributes.KEY != "v" | hasPrefix(attributes.KEY, "p")
//   NOT x | -x | x AND y | x OR y | ( x )   (AND and OR cannot be mixed without parentheses)

/** A compiled subscription filter: true when a message with these attributes is delivered. */
export type AttributeFilter = (attributes: Readonly<Attributes>) => boolean;

interface Token {
  kind: 'ident' | 'string' | 'punct';
  value: string;
  pos: number;
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source.charAt(i);
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '"') {
      let value = '';
      let j = i + 1;
      while (j < source.length && source.charAt(j) !== '"') {
        if (source.charAt(j) === '\\' && j + 1 < source.length) j += 1;
        value += source.charAt(j);
        j += 1;
      }
      if (j >= source.length) throw new Error(`unterminated string at ${i}`);
      tokens.push({ kind: 'string', value, pos: i });
      i = j + 1;
    } else if (source.startsWith('!=', i)) {
      tokens.push({ kind: 'punct', value: '!=', pos: i });
      i += 2;
    } else if ('()=:.,-'.includes(c)) {
      tokens.push({ kind: 'punct', value: c, pos: i });
      i += 1;
    } else {
      const ident = /^[A-Za-z0-9_][A-Za-z0-9_-]*/.exec(source.slice(i))?.[0];
      if (!ident) throw new Error(`unexpected character "${c}" at ${i}`);
      tokens.push({ kind: 'ident', value: ident, pos: i });
      i += ident.length;
    }
  }
  return tokens;
}

/**
 * Compiles a Pub/Sub subscription filter. Throws an Error describing the first syntax problem.
 * An empty filter matches everything.
 */
export function compileFilter(source: string): AttributeFilter {
  if (Buffer.byteLength(source, 'utf8') > 256) throw new Error('filter longer than 256 bytes');
  const tokens = tokenize(source);
  if (tokens.length === 0) return () => true;
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const describe = (t: Token | undefined): string =>
    t ? `"${t.value}" at ${t.pos}` : 'end of filter';
  const next = (): Token => {
    const t = tokens[at];
    if (!t) throw new Error('unexpected end of filter');
    at += 1;
    return t;
  };
  const isPunct = (t: Token | undefined, value: string): boolean =>
    t?.kind === 'punct' && t.value === value;
  const isWord = (t: Token | undefined, value: string): boolean =>
    t?.kind === 'ident' && t.value === value;
  const expectPunct = (value: string): void => {
    const t = next();
    if (t.kind !== 'punct' || t.value !== value) {
      throw new Error(`expected "${value}", found ${describe(t)}`);
    }
  };
  const key = (): string => {
    const t = next();
    if (t.kind === 'punct') throw new Error(`expected an attribute key, found ${describe(t)}`);
    return t.value;
  };
  const str = (): string => {
    const t = next();
    if (t.kind !== 'string') throw new Error(`expected a quoted string, found ${describe(t)}`);
    return t.value;
  };

  const primary = (): AttributeFilter => {
    const t = next();
    if (isPunct(t, '(')) {
      const inner = expression();
      expectPunct(')');
      return inner;
    }
    if (isWord(t, 'attributes')) {
      const sep = next();
      if (isPunct(sep, ':')) {
        const k = key();
        return (a) => Object.hasOwn(a, k);
      }
      if (!isPunct(sep, '.')) throw new Error(`expected ":" or ".", found ${describe(sep)}`);
      const k = key();
      const op = next();
      if (isPunct(op, '=')) {
        const v = str();
        return (a) => a[k] === v;
      }
      if (isPunct(op, '!=')) {
        const v = str();
        return (a) => Object.hasOwn(a, k) && a[k] !== v;
      }
      throw new Error(`expected "=" or "!=", found ${describe(op)}`);
    }
    if (isWord(t, 'hasPrefix')) {
      expectPunct('(');
      if (!isWord(next(), 'attributes')) throw new Error('hasPrefix takes attributes.KEY');
      expectPunct('.');
      const k = key();
      expectPunct(',');
      const prefix = str();
      expectPunct(')');
      return (a) => a[k]?.startsWith(prefix) ?? false;
    }
    throw new Error(`unexpected ${describe(t)}`);
  };

  const term = (): AttributeFilter => {
    const t = peek();
    if (isWord(t, 'NOT') || isPunct(t, '-')) {
      at += 1;
      const inner = primary();
      return (a) => !inner(a);
    }
    return primary();
  };

  const expression = (): AttributeFilter => {
    let result = term();
    let op: string | undefined;
    for (let t = peek(); isWord(t, 'AND') || isWord(t, 'OR'); t = peek()) {
      const word = next().value;
      if (op !== undefined && op !== word) {
        throw new Error('AND and OR cannot be mixed without parentheses');
      }
      op = word;
      const left = result;
      const right = term();
      result = word === 'AND' ? (a) => left(a) && right(a) : (a) => left(a) || right(a);
    }
    return result;
  };

  const filter = expression();
  if (at < tokens.length) throw new Error(`unexpected ${describe(peek())}`);
  return filter;
}

// ---------------------------------------------------------------------------------------------
// The broker: topics, subscriptions, backlogs and leases. Everything is synchronous; each state
// change ends with `dispatch`, which hands deliverable messages to waiting Pulls and open streams.

interface StoredMessage {
  /** Publish sequence number (the numeric message id); backlogs are kept sorted by it. */
  readonly seq: number;
  readonly message: PubsubMessage;
}

/** A message in one subscription: its backlog entry, and the subject of each lease. */
interface Entry {
  readonly stored: StoredMessage;
  /** Deliveries so far; the next delivery reports `attempts + 1` as `deliveryAttempt`. */
  attempts: number;
}

interface Lease {
  readonly ackId: string;
  readonly entry: Entry;
  /** The stream the delivery went to (flow control), or undefined for Pull / a closed stream. */
  stream: StreamState | undefined;
  timer: NodeJS.Timeout;
}

interface StreamState {
  readonly id: number;
  readonly sub: SubState;
  readonly call: StreamCall;
  deadlineSeconds: number;
  /** Flow control from the first request; 0 = unlimited. */
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly outstanding: Set<Lease>;
  outstandingBytes: number;
  open: boolean;
}

interface PullWaiter {
  readonly max: number;
  readonly resolve: (messages: ReceivedMessage[]) => void;
  readonly reject: (err: RpcError) => void;
  readonly timer: NodeJS.Timeout;
}

interface SubState {
  readonly name: string;
  topic: string;
  readonly resource: Resource;
  readonly ackDeadlineSeconds: number;
  readonly ordering: boolean;
  readonly exactlyOnce: boolean;
  readonly filter: AttributeFilter | undefined;
  readonly deadLetter: { topic: string; maxAttempts: number } | undefined;
  /** Messages waiting for delivery, in publish order. */
  readonly backlog: Entry[];
  readonly leases: Map<string, Lease>;
  /** Ordering keys with a message outstanding (ordered subscriptions only). */
  readonly busyKeys: Set<string>;
  readonly streams: StreamState[];
  readonly waiters: Set<PullWaiter>;
  /** Round-robin position over `streams`. */
  rr: number;
}

function zeroCounters(): Omit<PubSubEmulatorStats, 'topics' | 'subscriptions' | 'streams'> {
  return { published: 0, delivered: 0, acked: 0, redelivered: 0 };
}

class Broker {
  private readonly topics = new Map<string, Resource>();
  private readonly subs = new Map<string, SubState>();
  private counters = zeroCounters();
  // Message ids and ack ids keep counting across resets, so no id is ever reused in a process.
  private nextMessageSeq = 1;
  private nextAckSeq = 1;
  private nextStreamId = 1;

  constructor(
    private readonly log: Log,
    private readonly pullWaitMs: number,
  ) {}

  stats(): PubSubEmulatorStats {
    let streams = 0;
    for (const sub of this.subs.values()) streams += sub.streams.length;
    return {
      topics: this.topics.size,
      subscriptions: this.subs.size,
      ...this.counters,
      streams,
    };
  }

  reset(): void {
    for (const sub of this.subs.values()) {
      this.dropSubscription(sub, notFound('Subscription', sub.name));
    }
    this.subs.clear();
    this.topics.clear();
    this.counters = zeroCounters();
    this.log({ severity: 'INFO', message: 'emulator state reset', event: 'pubsub.reset' });
  }

  /** Ends every stream and waiting Pull and clears every timer (the server is going away). */
  shutdown(): void {
    for (const sub of this.subs.values()) {
      this.dropSubscription(sub, new RpcError(status.UNAVAILABLE, 'emulator shutting down'));
    }
    this.subs.clear();
    this.topics.clear();
  }

  // --- topics -------------------------------------------------------------------------------

  createTopic(req: TopicIn): Resource {
    const name = resourceName(req.name, 'topics');
    if (this.topics.has(name)) {
      throw new RpcError(status.ALREADY_EXISTS, `Topic already exists (resource=${name})`);
    }
    const resource: Resource = { ...req, name };
    this.topics.set(name, resource);
    this.log({
      severity: 'INFO',
      message: 'topic created',
      event: 'pubsub.topic.created',
      topic: name,
    });
    return resource;
  }

  getTopic(req: TopicRequest): Resource {
    const name = resourceName(req.topic, 'topics');
    const topic = this.topics.get(name);
    if (!topic) throw notFound('Topic', name);
    return topic;
  }

  deleteTopic(req: TopicRequest): Empty {
    const name = resourceName(req.topic, 'topics');
    if (!this.topics.delete(name)) throw notFound('Topic', name);
    // Like the real service: subscriptions survive, detached, and keep their backlog.
    for (const sub of this.subs.values()) {
      if (sub.topic === name) {
        sub.topic = DELETED_TOPIC;
        sub.resource.topic = DELETED_TOPIC;
      }
    }
    this.log({
      severity: 'INFO',
      message: 'topic deleted',
      event: 'pubsub.topic.deleted',
      topic: name,
    });
    return {};
  }

  listTopics(req: ListRequest): { topics: Resource[]; nextPageToken: string } {
    const prefix = `${projectName(req.project)}/topics/`;
    const names = [...this.topics.keys()].filter((n) => n.startsWith(prefix));
    const { items, nextPageToken } = page(names, req.pageSize, req.pageToken, (n) => {
      const topic = this.topics.get(n);
      if (!topic) throw new Error(`topic vanished: ${n}`);
      return topic;
    });
    return { topics: items, nextPageToken };
  }

  listTopicSubscriptions(req: ListRequest): { subscriptions: string[]; nextPageToken: string } {
    const topic = resourceName(req.topic, 'topics');
    if (!this.topics.has(topic)) throw notFound('Topic', topic);
    const names = [...this.subs.values()].filter((s) => s.topic === topic).map((s) => s.name);
    const { items, nextPageToken } = page(names, req.pageSize, req.pageToken, (n) => n);
    return { subscriptions: items, nextPageToken };
  }

  publish(req: PublishRequest): { messageIds: string[] } {
    const topic = resourceName(req.topic, 'topics');
    if (!this.topics.has(topic)) throw notFound('Topic', topic);
    const messages = req.messages ?? [];
    if (messages.length === 0) throw invalid('The publish request contains no messages');
    for (const m of messages) {
      if ((m.data?.length ?? 0) === 0 && Object.keys(m.attributes ?? {}).length === 0) {
        throw invalid('Some messages contain neither data nor attributes');
      }
    }
    return { messageIds: this.publishTo(topic, messages) };
  }

  private publishTo(topic: string, messages: PubsubMessageIn[]): string[] {
    const publishTime = timestamp(Date.now());
    const targets = [...this.subs.values()].filter((s) => s.topic === topic);
    const ids: string[] = [];
    for (const m of messages) {
      const seq = this.nextMessageSeq++;
      const stored: StoredMessage = {
        seq,
        message: {
          data: m.data ?? Buffer.alloc(0),
          attributes: { ...m.attributes },
          messageId: String(seq),
          publishTime,
          orderingKey: m.orderingKey ?? '',
        },
      };
      ids.push(stored.message.messageId);
      this.counters.published += 1;
      for (const sub of targets) {
        // Messages a filter rejects are acknowledged at once by the real service: never queued.
        if (!sub.filter || sub.filter(stored.message.attributes)) {
          sub.backlog.push({ stored, attempts: 0 });
        }
      }
    }
    for (const sub of targets) this.dispatch(sub);
    return ids;
  }

  // --- subscriptions ------------------------------------------------------------------------

  createSubscription(req: SubscriptionIn): Resource {
    const name = resourceName(req.name, 'subscriptions');
    const topic = resourceName(req.topic, 'topics');
    if (!this.topics.has(topic)) throw notFound('Topic', topic);
    if (this.subs.has(name)) {
      throw new RpcError(status.ALREADY_EXISTS, `Subscription already exists (resource=${name})`);
    }
    if (req.pushConfig?.pushEndpoint) {
      throw new RpcError(status.UNIMPLEMENTED, 'push subscriptions are not implemented');
    }
    if (req.bigqueryConfig?.table || req.cloudStorageConfig?.bucket) {
      throw new RpcError(status.UNIMPLEMENTED, 'export subscriptions are not implemented');
    }
    let filter: AttributeFilter | undefined;
    if (req.filter) {
      try {
        filter = compileFilter(req.filter);
      } catch (err) {
        throw invalid(`Invalid filter: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    let deadLetter: SubState['deadLetter'];
    if (req.deadLetterPolicy?.deadLetterTopic) {
      const dlTopic = resourceName(req.deadLetterPolicy.deadLetterTopic, 'topics');
      if (!this.topics.has(dlTopic)) throw notFound('Topic', dlTopic);
      const maxAttempts = req.deadLetterPolicy.maxDeliveryAttempts || 5;
      if (maxAttempts < 5 || maxAttempts > 100) {
        throw invalid('deadLetterPolicy.maxDeliveryAttempts must be between 5 and 100');
      }
      deadLetter = { topic: dlTopic, maxAttempts };
    }
    const ackDeadlineSeconds = clamp(
      req.ackDeadlineSeconds || DEFAULT_ACK_DEADLINE_SECONDS,
      DEFAULT_ACK_DEADLINE_SECONDS,
      MAX_ACK_DEADLINE_SECONDS,
    );
    const resource: Resource = {
      ...req,
      name,
      topic,
      ackDeadlineSeconds,
      messageRetentionDuration: req.messageRetentionDuration ?? { seconds: SEVEN_DAYS_SECONDS },
      expirationPolicy: req.expirationPolicy ?? { ttl: { seconds: THIRTY_ONE_DAYS_SECONDS } },
      deadLetterPolicy: deadLetter
        ? { deadLetterTopic: deadLetter.topic, maxDeliveryAttempts: deadLetter.maxAttempts }
        : undefined,
      state: 'ACTIVE',
    };
    this.subs.set(name, {
      name,
      topic,
      resource,
      ackDeadlineSeconds,
      ordering: req.enableMessageOrdering === true,
      exactlyOnce: req.enableExactlyOnceDelivery === true,
      filter,
      deadLetter,
      backlog: [],
      leases: new Map(),
      busyKeys: new Set(),
      streams: [],
      waiters: new Set(),
      rr: 0,
    });
    this.log({
      severity: 'INFO',
      message: 'subscription created',
      event: 'pubsub.subscription.created',
      subscription: name,
      topic,
    });
    return resource;
  }

  getSubscription(req: SubscriptionRequest): Resource {
    return this.requireSub(req.subscription).resource;
  }

  deleteSubscription(req: SubscriptionRequest): Empty {
    const sub = this.requireSub(req.subscription);
    this.subs.delete(sub.name);
    this.dropSubscription(sub, notFound('Subscription', sub.name));
    this.log({
      severity: 'INFO',
      message: 'subscription deleted',
      event: 'pubsub.subscription.deleted',
      subscription: sub.name,
    });
    return {};
  }

  listSubscriptions(req: ListRequest): { subscriptions: Resource[]; nextPageToken: string } {
    const prefix = `${projectName(req.project)}/subscriptions/`;
    const names = [...this.subs.keys()].filter((n) => n.startsWith(prefix));
    const { items, nextPageToken } = page(names, req.pageSize, req.pageToken, (n) => {
      const sub = this.subs.get(n);
      if (!sub) throw new Error(`subscription vanished: ${n}`);
      return sub.resource;
    });
    return { subscriptions: items, nextPageToken };
  }

  private requireSub(name: string | undefined): SubState {
    const valid = resourceName(name, 'subscriptions');
    const sub = this.subs.get(valid);
    if (!sub) throw notFound('Subscription', valid);
    return sub;
  }

  /** Ends the subscription's streams and Pulls with `err` and forgets its messages and timers. */
  private dropSubscription(sub: SubState, err: RpcError): void {
    for (const stream of [...sub.streams]) {
      this.closeStream(stream);
      endCall(stream.call, err);
    }
    for (const waiter of sub.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    sub.waiters.clear();
    for (const lease of sub.leases.values()) clearTimeout(lease.timer);
    sub.leases.clear();
    sub.backlog.length = 0;
    sub.busyKeys.clear();
  }

  // --- pull, ack, modify --------------------------------------------------------------------

  async pull(req: PullRequest, onCancel: (listener: () => void) => void): Promise<PullResponse> {
    const sub = this.requireSub(req.subscription);
    const max = req.maxMessages ?? 0;
    if (max <= 0) throw invalid('maxMessages must be positive');
    const now = this.take(sub, max);
    if (now.length > 0 || req.returnImmediately === true) return { receivedMessages: now };
    // Nothing yet: wait a little for a publish (or a redelivery) instead of answering empty.
    return new Promise<PullResponse>((resolve, reject) => {
      const waiter: PullWaiter = {
        max,
        resolve: (receivedMessages) => resolve({ receivedMessages }),
        reject,
        timer: setTimeout(() => {
          sub.waiters.delete(waiter);
          resolve({ receivedMessages: [] });
        }, this.pullWaitMs).unref(),
      };
      sub.waiters.add(waiter);
      onCancel(() => {
        if (sub.waiters.delete(waiter)) {
          clearTimeout(waiter.timer);
          resolve({ receivedMessages: [] });
        }
      });
    });
  }

  acknowledge(req: AcknowledgeRequest): Empty {
    const sub = this.requireSub(req.subscription);
    const ackIds = req.ackIds ?? [];
    if (ackIds.length === 0) throw invalid('ackIds must not be empty');
    this.ack(sub, ackIds);
    return {};
  }

  modifyAckDeadline(req: ModifyAckDeadlineRequest): Empty {
    const sub = this.requireSub(req.subscription);
    const ackIds = req.ackIds ?? [];
    if (ackIds.length === 0) throw invalid('ackIds must not be empty');
    this.modify(sub, ackIds, checkedDeadline(req.ackDeadlineSeconds ?? 0));
    return {};
  }

  private ack(sub: SubState, ackIds: readonly string[]): void {
    for (const ackId of ackIds) {
      // A stale ack id (already acked, nacked or expired) is ignored, as the service does.
      const lease = sub.leases.get(ackId);
      if (!lease) continue;
      this.release(sub, lease);
      this.counters.acked += 1;
    }
    this.dispatch(sub);
  }

  private modify(sub: SubState, ackIds: readonly string[], seconds: number): void {
    for (const ackId of ackIds) {
      const lease = sub.leases.get(ackId);
      if (!lease) continue;
      if (seconds === 0) {
        this.release(sub, lease);
        this.requeue(sub, lease.entry);
      } else {
        clearTimeout(lease.timer);
        lease.timer = this.expiryTimer(sub, ackId, seconds);
      }
    }
    if (seconds === 0) this.dispatch(sub);
  }

  private expiryTimer(sub: SubState, ackId: string, seconds: number): NodeJS.Timeout {
    return setTimeout(() => {
      const lease = sub.leases.get(ackId);
      if (!lease) return;
      this.release(sub, lease);
      this.requeue(sub, lease.entry);
      this.dispatch(sub);
    }, seconds * 1000).unref();
  }

  private release(sub: SubState, lease: Lease): void {
    clearTimeout(lease.timer);
    sub.leases.delete(lease.ackId);
    const key = orderingKey(sub, lease.entry);
    if (key) sub.busyKeys.delete(key);
    if (lease.stream) {
      lease.stream.outstanding.delete(lease);
      lease.stream.outstandingBytes -= lease.entry.stored.message.data.length;
      lease.stream = undefined;
    }
  }

  /** Puts a nacked or expired message back in publish order, or dead-letters it. */
  private requeue(sub: SubState, entry: Entry): void {
    if (sub.deadLetter && entry.attempts >= sub.deadLetter.maxAttempts) {
      this.deadLetter(sub, sub.deadLetter.topic, entry);
      return;
    }
    const at = sub.backlog.findIndex((e) => e.stored.seq > entry.stored.seq);
    if (at < 0) sub.backlog.push(entry);
    else sub.backlog.splice(at, 0, entry);
  }

  private deadLetter(sub: SubState, topic: string, entry: Entry): void {
    const { message } = entry.stored;
    const project = sub.name.split('/')[1] ?? '';
    const event = {
      severity: 'WARNING',
      message: 'message dead-lettered',
      event: 'pubsub.message.dead_lettered',
      subscription: sub.name,
      messageId: message.messageId,
      deadLetterTopic: topic,
      deliveryAttempt: entry.attempts,
    };
    if (!this.topics.has(topic)) {
      this.log({
        ...event,
        severity: 'ERROR',
        message: 'dead-letter topic missing: message dropped',
      });
      return;
    }
    this.log(event);
    const publishMs =
      Number(message.publishTime.seconds) * 1000 + Math.floor(message.publishTime.nanos / 1e6);
    this.publishTo(topic, [
      {
        data: message.data,
        orderingKey: message.orderingKey,
        attributes: {
          ...message.attributes,
          CloudPubSubDeadLetterSourceDeliveryCount: String(entry.attempts),
          CloudPubSubDeadLetterSourceSubscription: sub.name.split('/')[3] ?? '',
          CloudPubSubDeadLetterSourceSubscriptionProject: project,
          CloudPubSubDeadLetterSourceTopicPublishTime: new Date(publishMs).toISOString(),
        },
      },
    ]);
  }

  // --- delivery -----------------------------------------------------------------------------

  /** Takes up to `max` deliverable messages for a Pull. */
  private take(sub: SubState, max: number): ReceivedMessage[] {
    const out: ReceivedMessage[] = [];
    let i = 0;
    while (out.length < max && i < sub.backlog.length) {
      const entry = sub.backlog[i];
      if (!entry) break;
      const key = orderingKey(sub, entry);
      if (key && sub.busyKeys.has(key)) {
        i += 1;
        continue;
      }
      sub.backlog.splice(i, 1);
      out.push(this.lease(sub, entry, undefined, sub.ackDeadlineSeconds));
    }
    return out;
  }

  private lease(
    sub: SubState,
    entry: Entry,
    stream: StreamState | undefined,
    seconds: number,
  ): ReceivedMessage {
    entry.attempts += 1;
    const ackId = `${this.nextAckSeq++}-${entry.stored.message.messageId}`;
    const lease: Lease = { ackId, entry, stream, timer: this.expiryTimer(sub, ackId, seconds) };
    sub.leases.set(ackId, lease);
    const key = orderingKey(sub, entry);
    if (key) sub.busyKeys.add(key);
    if (stream) {
      stream.outstanding.add(lease);
      stream.outstandingBytes += entry.stored.message.data.length;
    }
    this.counters.delivered += 1;
    if (entry.attempts > 1) this.counters.redelivered += 1;
    return { ackId, message: entry.stored.message, deliveryAttempt: entry.attempts };
  }

  /**
   * Hands deliverable messages to waiting Pulls (first come, first served), then spreads the rest
   * round-robin over the open streams that have flow-control room.
   */
  private dispatch(sub: SubState): void {
    for (const waiter of sub.waiters) {
      if (sub.backlog.length === 0) return;
      const batch = this.take(sub, waiter.max);
      if (batch.length === 0) break;
      sub.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.resolve(batch);
    }
    if (sub.streams.length === 0 || sub.backlog.length === 0) return;
    const batches = new Map<StreamState, ReceivedMessage[]>();
    // Ordering keys that must wait this round: an earlier message of theirs found no room.
    const blocked = new Set<string>();
    let i = 0;
    while (i < sub.backlog.length) {
      const entry = sub.backlog[i];
      if (!entry) break;
      const key = orderingKey(sub, entry);
      if (key && (sub.busyKeys.has(key) || blocked.has(key))) {
        i += 1;
        continue;
      }
      const stream = this.pickStream(sub, entry.stored.message.data.length);
      if (!stream) {
        if (!sub.streams.some(hasMessageRoom)) break;
        if (key) blocked.add(key);
        i += 1;
        continue;
      }
      sub.backlog.splice(i, 1);
      const received = this.lease(sub, entry, stream, stream.deadlineSeconds);
      const batch = batches.get(stream);
      if (batch) batch.push(received);
      else batches.set(stream, [received]);
    }
    const subscriptionProperties = {
      exactlyOnceDeliveryEnabled: sub.exactlyOnce,
      messageOrderingEnabled: sub.ordering,
    };
    for (const [stream, received] of batches) {
      for (const receivedMessages of responseChunks(received)) {
        stream.call.write({ receivedMessages, subscriptionProperties });
      }
    }
  }

  private pickStream(sub: SubState, bytes: number): StreamState | undefined {
    const n = sub.streams.length;
    for (let k = 0; k < n; k += 1) {
      const index = (sub.rr + k) % n;
      const stream = sub.streams[index];
      if (!stream || !hasMessageRoom(stream)) continue;
      const bytesRoom =
        stream.maxBytes === 0 ||
        stream.outstandingBytes === 0 ||
        stream.outstandingBytes + bytes <= stream.maxBytes;
      if (!bytesRoom) continue;
      sub.rr = (index + 1) % n;
      return stream;
    }
    return undefined;
  }

  // --- streaming pull -----------------------------------------------------------------------

  streamingPull(call: StreamCall): void {
    let stream: StreamState | undefined;
    call.on('data', (req: StreamingPullRequest) => {
      if (call.writableEnded) return;
      try {
        if (!stream) stream = this.openStream(call, req);
        else if (stream.open) this.streamRequest(stream, req);
      } catch (err) {
        if (stream) this.closeStream(stream);
        endCall(call, toRpcError(err));
      }
    });
    // The client half-closed: finish the call with OK.
    call.on('end', () => {
      if (stream) this.closeStream(stream);
      endCall(call);
    });
    call.on('cancelled', () => {
      if (stream) this.closeStream(stream);
    });
    call.on('error', () => {
      if (stream) this.closeStream(stream);
    });
  }

  private openStream(call: StreamCall, req: StreamingPullRequest): StreamState {
    if (!req.subscription) throw invalid('The first StreamingPullRequest must name a subscription');
    const sub = this.requireSub(req.subscription);
    const stream: StreamState = {
      id: this.nextStreamId++,
      sub,
      call,
      deadlineSeconds: streamDeadline(req.streamAckDeadlineSeconds, sub.ackDeadlineSeconds),
      maxMessages: Math.max(0, Number(req.maxOutstandingMessages ?? 0)),
      maxBytes: Math.max(0, Number(req.maxOutstandingBytes ?? 0)),
      outstanding: new Set(),
      outstandingBytes: 0,
      open: true,
    };
    sub.streams.push(stream);
    this.log({
      severity: 'DEBUG',
      message: 'stream opened',
      event: 'pubsub.stream.opened',
      subscription: sub.name,
      stream: stream.id,
    });
    this.streamRequest(stream, { ...req, streamAckDeadlineSeconds: 0 });
    this.dispatch(sub);
    return stream;
  }

  private streamRequest(stream: StreamState, req: StreamingPullRequest): void {
    const { sub } = stream;
    if (req.streamAckDeadlineSeconds) {
      stream.deadlineSeconds = streamDeadline(req.streamAckDeadlineSeconds, sub.ackDeadlineSeconds);
    }
    const ids = req.modifyDeadlineAckIds ?? [];
    const seconds = req.modifyDeadlineSeconds ?? [];
    if (ids.length !== seconds.length) {
      throw invalid('modifyDeadlineAckIds and modifyDeadlineSeconds must have the same length');
    }
    const checked = seconds.map(checkedDeadline);
    if ((req.ackIds ?? []).length > 0) this.ack(sub, req.ackIds ?? []);
    ids.forEach((ackId, k) => this.modify(sub, [ackId], checked[k] ?? 0));
  }

  private closeStream(stream: StreamState): void {
    if (!stream.open) return;
    stream.open = false;
    const { sub } = stream;
    const index = sub.streams.indexOf(stream);
    if (index >= 0) sub.streams.splice(index, 1);
    if (sub.rr >= sub.streams.length) sub.rr = 0;
    // Its leases run on until acked, nacked or expired, like the service's.
    for (const lease of stream.outstanding) lease.stream = undefined;
    stream.outstanding.clear();
    stream.outstandingBytes = 0;
    this.log({
      severity: 'DEBUG',
      message: 'stream closed',
      event: 'pubsub.stream.closed',
      subscription: sub.name,
      stream: stream.id,
    });
  }
}

const MAX_RESPONSE_MESSAGES = 1000;
const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

/** Splits a stream's deliveries into responses of bounded size, as the service does. */
function responseChunks(received: ReceivedMessage[]): ReceivedMessage[][] {
  const chunks: ReceivedMessage[][] = [];
  let current: ReceivedMessage[] = [];
  let bytes = 0;
  for (const r of received) {
    const size = r.message.data.length;
    if (
      current.length > 0 &&
      (current.length >= MAX_RESPONSE_MESSAGES || bytes + size > MAX_RESPONSE_BYTES)
    ) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Ends a StreamingPull call once: with OK, or with `err` as the status. */
function endCall(call: StreamCall, err?: RpcError): void {
  if (call.writableEnded || call.destroyed) return;
  // grpc-js turns an 'error' event on a server stream into the call's status.
  if (err) call.emit('error', err);
  else call.end();
}

function orderingKey(sub: SubState, entry: Entry): string {
  return sub.ordering ? entry.stored.message.orderingKey : '';
}

function hasMessageRoom(stream: StreamState): boolean {
  return stream.maxMessages === 0 || stream.outstanding.size < stream.maxMessages;
}

function streamDeadline(requested: number | undefined, fallback: number): number {
  return clamp(requested || fallback, DEFAULT_ACK_DEADLINE_SECONDS, MAX_ACK_DEADLINE_SECONDS);
}

function checkedDeadline(seconds: number): number {
  if (seconds < 0 || seconds > MAX_ACK_DEADLINE_SECONDS) {
    throw invalid(`ack deadline must be between 0 and ${MAX_ACK_DEADLINE_SECONDS} seconds`);
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------------
// gRPC wiring

let definition: PackageDefinition | undefined;

/**
 * The google.pubsub.v1 package definition, loaded from the protos that ship with
 * `@google-cloud/pubsub` (imports resolved against google-gax's protos).
 */
export function loadPubSubDefinition(): PackageDefinition {
  if (definition) return definition;
  const require = createRequire(import.meta.url);
  const pubsubPackageJson = require.resolve('@google-cloud/pubsub/package.json');
  const pubsubProtos = join(dirname(pubsubPackageJson), 'build', 'protos');
  // google-gax does not export its package.json; its main file is build/src/index.js.
  const gaxMain = createRequire(pubsubPackageJson).resolve('google-gax');
  const gaxProtos = join(dirname(gaxMain), '..', 'protos');
  definition = loadSync('google/pubsub/v1/pubsub.proto', {
    includeDirs: [pubsubProtos, gaxProtos],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  return definition;
}

function service(def: PackageDefinition, name: string): ServiceDefinition {
  const found = def[name];
  if (!found || 'format' in found) throw new Error(`${name} is not a service`);
  return found;
}

function unary<Req, Res>(
  log: Log,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          const rpc = toRpcError(err);
          if (rpc.code === status.INTERNAL) {
            log({
              severity: 'ERROR',
              message: 'request failed',
              event: 'pubsub.rpc.failed',
              method: call.getPath(),
              error: { name: rpc.name, code: rpc.code, message: rpc.message, stack: rpc.stack },
            });
          }
          callback(rpc);
        },
      );
  };
}

function publisherImplementation(broker: Broker, log: Log): UntypedServiceImplementation {
  return {
    createTopic: unary(log, (req: TopicIn) => broker.createTopic(req)),
    getTopic: unary(log, (req: TopicRequest) => broker.getTopic(req)),
    deleteTopic: unary(log, (req: TopicRequest) => broker.deleteTopic(req)),
    listTopics: unary(log, (req: ListRequest) => broker.listTopics(req)),
    listTopicSubscriptions: unary(log, (req: ListRequest) => broker.listTopicSubscriptions(req)),
    publish: unary(log, (req: PublishRequest) => broker.publish(req)),
  };
}

function subscriberImplementation(broker: Broker, log: Log): UntypedServiceImplementation {
  const streamingPull: handleBidiStreamingCall<StreamingPullRequest, StreamingPullResponse> = (
    call,
  ) => broker.streamingPull(call);
  return {
    createSubscription: unary(log, (req: SubscriptionIn) => broker.createSubscription(req)),
    getSubscription: unary(log, (req: SubscriptionRequest) => broker.getSubscription(req)),
    deleteSubscription: unary(log, (req: SubscriptionRequest) => broker.deleteSubscription(req)),
    listSubscriptions: unary(log, (req: ListRequest) => broker.listSubscriptions(req)),
    pull: unary(log, (req: PullRequest, call: ServerUnaryCall<PullRequest, PullResponse>) =>
      broker.pull(req, (listener) => call.once('cancelled', listener)),
    ),
    acknowledge: unary(log, (req: AcknowledgeRequest) => broker.acknowledge(req)),
    modifyAckDeadline: unary(log, (req: ModifyAckDeadlineRequest) => broker.modifyAckDeadline(req)),
    streamingPull,
  };
}

// ---------------------------------------------------------------------------------------------
// The server

const HTTP2_PREFACE_START = 'PRI';

/**
 * Starts the builtin Pub/Sub emulator on 127.0.0.1 (`options.port`, default a free port) and
 * resolves once it accepts connections.
 */
export async function startPubSubEmulator(
  options: PubSubEmulatorOptions = {},
): Promise<PubSubEmulator> {
  const log: Log = options.log ?? (() => undefined);
  const broker = new Broker(log, options.pullWaitMs ?? 500);
  const def = loadPubSubDefinition();

  const grpcServer = new GrpcServer({
    'grpc.max_receive_message_length': 32 * 1024 * 1024,
    'grpc.max_send_message_length': 32 * 1024 * 1024,
  });
  grpcServer.addService(
    service(def, 'google.pubsub.v1.Publisher'),
    publisherImplementation(broker, log),
  );
  grpcServer.addService(
    service(def, 'google.pubsub.v1.Subscriber'),
    subscriberImplementation(broker, log),
  );
  const injector = grpcServer.createConnectionInjector(ServerCredentials.createInsecure());

  const httpServer = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    };
    if (req.method === 'GET' && path === '/') reply(200, 'Ok');
    else if (req.method === 'POST' && path === '/reset') {
      broker.reset();
      reply(200, 'Ok');
    } else reply(404, 'Not Found');
  });

  const sockets = new Set<Socket>();
  const netServer = createNetServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Connection errors (resets) are the peer's business; http and http2 add their own handlers.
    socket.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HTTP2_PREFACE_START.length) return;
      socket.off('data', sniff);
      socket.pause();
      socket.unshift(head);
      if (head.subarray(0, HTTP2_PREFACE_START.length).toString('latin1') === HTTP2_PREFACE_START) {
        // The HTTP/2 session reads the unshifted bytes itself, then consumes the socket natively;
        // resuming here would feed them twice.
        injector.injectConnection(socket);
      } else {
        // The HTTP/1 parser reads through 'data' events: resume the paused socket.
        httpServer.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', sniff);
  });

  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(options.port ?? 0, '127.0.0.1', () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  const address = netServer.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  const { port } = address;
  const host = `127.0.0.1:${port}`;
  log({ severity: 'INFO', message: 'Pub/Sub emulator listening', event: 'pubsub.started', host });

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    broker.shutdown();
    injector.destroy();
    grpcServer.forceShutdown();
    const stopped = new Promise<void>((resolve) => netServer.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    httpServer.close();
    await stopped;
    log({ severity: 'INFO', message: 'Pub/Sub emulator stopped', event: 'pubsub.stopped', host });
  };

  return {
    host,
    port,
    reset: () => broker.reset(),
    close: () => (closing ??= close()),
    stats: () => broker.stats(),
  };
}

// ---------------------------------------------------------------------------------------------
// Command line: `node local/pubsub-emulator.js [--port 8085]` prints the host, logs JSON lines to
// stderr, and stops on SIGINT/SIGTERM.

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8085' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be a TCP port (got "${values.port}")`);
  }
  const emulator = await startPubSubEmulator({
    port,
    log: (line) => process.stderr.write(`${JSON.stringify(line)}\n`),
  });
  process.stdout.write(`${emulator.host}\n`);
  const stop = (): void => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `${JSON.stringify({ severity: 'ERROR', message: 'Pub/Sub emulator failed to start', event: 'pubsub.failed', error: String(err) })}\n`,
    );
    process.exitCode = 1;
  });
}
