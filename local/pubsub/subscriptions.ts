/**
 * One pull subscription of the builtin Pub/Sub emulator: its backlog, the leases of delivered
 * messages, and the StreamingPull streams it spreads messages over (round robin). A lease not
 * acknowledged before its deadline, or nacked (deadline 0), puts the message back in publish order.
 * Ack ids are unique per delivery, so a stale one is ignored, as the service ignores it.
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';

export type Attributes = Record<string, string>;

/** A published message, as subscribers receive it. */
export interface PubsubMessage {
  data: Buffer;
  attributes: Attributes;
  messageId: string;
  publishTime: { seconds: number; nanos: number };
}

export interface ReceivedMessage {
  ackId: string;
  message: PubsubMessage;
}

export interface StreamingPullRequest {
  subscription?: string;
  ackIds?: string[];
  modifyDeadlineSeconds?: number[];
  modifyDeadlineAckIds?: string[];
  streamAckDeadlineSeconds?: number;
}

export type StreamCall = ServerDuplexStream<
  StreamingPullRequest,
  { receivedMessages: ReceivedMessage[] }
>;

/** A gRPC status error; grpc-js turns `code` and `details` into the call's status. */
export class RpcError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
  ) {
    super(details);
  }
}

export const invalid = (message: string): RpcError =>
  new RpcError(status.INVALID_ARGUMENT, message);

export const MIN_ACK_DEADLINE_SECONDS = 10;
export const MAX_ACK_DEADLINE_SECONDS = 600;

/** A deadline a subscriber asked for, within what the service allows (10–600 s; 0 nacks). */
function checkedSeconds(seconds: number): number {
  if (seconds < 0 || seconds > MAX_ACK_DEADLINE_SECONDS) {
    throw invalid(`ack deadline must be between 0 and ${MAX_ACK_DEADLINE_SECONDS} seconds`);
  }
  return seconds;
}

export const clampDeadline = (seconds: number | undefined, fallback: number): number =>
  Math.min(MAX_ACK_DEADLINE_SECONDS, Math.max(MIN_ACK_DEADLINE_SECONDS, seconds || fallback));

/** Ends a StreamingPull call once: with OK, or with `err` as its status. */
export function endCall(call: StreamCall, err?: RpcError): void {
  if (call.writableEnded || call.destroyed) return;
  // grpc-js turns an 'error' event on a server stream into the call's status.
  if (err) call.emit('error', err);
  else call.end();
}

interface Entry {
  seq: number;
  message: PubsubMessage;
}

interface Stream {
  call: StreamCall;
  deadlineSeconds: number;
}

// Ack ids keep counting across emulators in a process: none is ever reused.
let nextAck = 1;

export class Subscription {
  /** Messages waiting for delivery, in publish order. */
  private readonly backlog: Entry[] = [];
  private readonly leases = new Map<string, { entry: Entry; timer: NodeJS.Timeout }>();
  private readonly streams: Stream[] = [];
  private next = 0;

  constructor(
    readonly name: string,
    readonly topic: string,
    readonly resource: Record<string, unknown>,
    private readonly ackDeadlineSeconds: number,
  ) {}

  enqueue(seq: number, message: PubsubMessage): void {
    this.backlog.push({ seq, message });
    this.dispatch();
  }

  /** Up to `max` waiting messages, leased for the subscription's ack deadline. */
  pull(max: number): ReceivedMessage[] {
    return this.backlog.splice(0, max).map((e) => this.lease(e, this.ackDeadlineSeconds));
  }

  ack(ackIds: readonly string[]): void {
    for (const id of ackIds) this.release(id);
  }

  /** Extends leases, or (0 seconds) nacks them: the messages are delivered again. */
  modify(ackIds: readonly string[], seconds: number): void {
    checkedSeconds(seconds);
    for (const id of ackIds) {
      const lease = this.leases.get(id);
      if (!lease) continue;
      if (seconds === 0) {
        this.requeue(id);
        continue;
      }
      clearTimeout(lease.timer);
      lease.timer = this.expiry(id, seconds);
    }
    this.dispatch();
  }

  /** Takes a StreamingPull call whose first request named this subscription. */
  attach(call: StreamCall, first: StreamingPullRequest): void {
    const stream = {
      call,
      deadlineSeconds: clampDeadline(first.streamAckDeadlineSeconds, this.ackDeadlineSeconds),
    };
    this.streams.push(stream);
    const detach = (): void => {
      const at = this.streams.indexOf(stream);
      if (at >= 0) this.streams.splice(at, 1);
    };
    const handle = (req: StreamingPullRequest): void => {
      try {
        const ids = req.modifyDeadlineAckIds ?? [];
        const seconds = req.modifyDeadlineSeconds ?? [];
        if (ids.length !== seconds.length) {
          throw invalid('modifyDeadlineAckIds and modifyDeadlineSeconds must have the same length');
        }
        this.ack(req.ackIds ?? []);
        ids.forEach((id, k) => this.modify([id], seconds[k] ?? 0));
      } catch (err) {
        detach();
        endCall(call, err instanceof RpcError ? err : new RpcError(status.INTERNAL, String(err)));
      }
    };
    call.on('data', handle);
    // The client half-closed: finish the call with OK. Its leases run on until acked or expired.
    call.on('end', () => {
      detach();
      endCall(call);
    });
    call.on('cancelled', detach);
    call.on('error', detach);
    handle(first);
    this.dispatch();
  }

  /** Ends every stream with `err` and forgets every lease (the subscription or server goes away). */
  close(err: RpcError): void {
    for (const { call } of this.streams.splice(0)) endCall(call, err);
    for (const { timer } of this.leases.values()) clearTimeout(timer);
    this.leases.clear();
    this.backlog.length = 0;
  }

  private lease(entry: Entry, seconds: number): ReceivedMessage {
    const ackId = `${nextAck++}-${entry.message.messageId}`;
    this.leases.set(ackId, { entry, timer: this.expiry(ackId, seconds) });
    return { ackId, message: entry.message };
  }

  private expiry(ackId: string, seconds: number): NodeJS.Timeout {
    return setTimeout(() => {
      this.requeue(ackId);
      this.dispatch();
    }, seconds * 1000).unref();
  }

  private release(ackId: string): Entry | undefined {
    const lease = this.leases.get(ackId);
    if (!lease) return undefined;
    clearTimeout(lease.timer);
    this.leases.delete(ackId);
    return lease.entry;
  }

  /** Puts a nacked or expired message back, in publish order. */
  private requeue(ackId: string): void {
    const entry = this.release(ackId);
    if (!entry) return;
    const at = this.backlog.findIndex((e) => e.seq > entry.seq);
    this.backlog.splice(at < 0 ? this.backlog.length : at, 0, entry);
  }

  /** Spreads the backlog over the open streams, round robin. */
  private dispatch(): void {
    if (this.streams.length === 0 || this.backlog.length === 0) return;
    const batches = new Map<Stream, ReceivedMessage[]>();
    for (const entry of this.backlog.splice(0)) {
      const stream = this.streams[this.next++ % this.streams.length] as Stream;
      const batch = batches.get(stream) ?? [];
      batch.push(this.lease(entry, stream.deadlineSeconds));
      batches.set(stream, batch);
    }
    for (const [{ call }, receivedMessages] of batches) call.write({ receivedMessages });
  }
}
