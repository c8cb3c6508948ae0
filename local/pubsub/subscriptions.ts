/**
 * One pull subscription of the builtin Pub/Sub emulator: its backlog, the leases of delivered
 * messages, and the StreamingPull streams it spreads messages over (round robin). A lease not
 * acknowledged before its deadline, or nacked (deadline 0), puts the message back in publish order.
 * Ack ids are unique per delivery, so a stale one is ignored, as the service ignores it.
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';

/** A published message, as subscribers receive it. */
export interface PubsubMessage {
  data: Buffer;
  attributes: Record<string, string>;
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

/** An ack deadline within what the service allows: 10 to 600 s. */
export const clampDeadline = (seconds: number | undefined, fallback: number): number =>
  Math.min(600, Math.max(10, seconds || fallback));

/** Ends a StreamingPull call once: with OK, or with `err` as its status. */
function endCall(call: StreamCall, err?: RpcError): void {
  if (call.writableEnded || call.destroyed) return;
  // grpc-js turns an 'error' event on a server stream into the call's status.
  if (err) call.emit('error', err);
  else call.end();
}

// Ack ids keep counting across emulators in a process: none is ever reused.
let nextAck = 1;

export class Subscription {
  /** Messages waiting for delivery, in publish order. */
  private readonly backlog: PubsubMessage[] = [];
  private readonly leases = new Map<string, { message: PubsubMessage; timer: NodeJS.Timeout }>();
  private readonly streams: { call: StreamCall; deadlineSeconds: number }[] = [];
  private next = 0;

  constructor(
    readonly name: string,
    readonly topic: string,
    private readonly ackDeadlineSeconds: number,
  ) {}

  enqueue(message: PubsubMessage): void {
    this.backlog.push(message);
    this.dispatch();
  }

  /** Up to `max` waiting messages, leased for the subscription's ack deadline. */
  pull(max: number): ReceivedMessage[] {
    if (!(max > 0)) throw invalid('maxMessages must be positive');
    return this.backlog.splice(0, max).map((m) => this.lease(m, this.ackDeadlineSeconds));
  }

  ack(ackIds: readonly string[]): void {
    for (const id of ackIds) this.release(id);
  }

  /** Extends leases, or (0 seconds) nacks them: the messages are delivered again. */
  modify(ackIds: readonly string[], seconds: number): void {
    if (!(seconds >= 0 && seconds <= 600)) throw invalid('ack deadline must be 0 to 600 seconds');
    for (const id of ackIds) {
      const lease = this.leases.get(id);
      if (lease && seconds > 0) {
        clearTimeout(lease.timer);
        lease.timer = this.expiry(id, seconds);
      } else if (lease) {
        this.requeue(id);
      }
    }
    this.dispatch();
  }

  /** Takes a StreamingPull call whose first request named this subscription. */
  attach(call: StreamCall, first: StreamingPullRequest): void {
    const deadlineSeconds = clampDeadline(first.streamAckDeadlineSeconds, this.ackDeadlineSeconds);
    const stream = { call, deadlineSeconds };
    this.streams.push(stream);
    const detach = (): void => {
      const at = this.streams.indexOf(stream);
      if (at >= 0) this.streams.splice(at, 1);
    };
    const handle = (req: StreamingPullRequest): void => {
      try {
        const ids = req.modifyDeadlineAckIds ?? [];
        if (ids.length !== (req.modifyDeadlineSeconds ?? []).length) {
          throw invalid('modifyDeadlineAckIds and modifyDeadlineSeconds differ in length');
        }
        this.ack(req.ackIds ?? []);
        ids.forEach((id, k) => this.modify([id], req.modifyDeadlineSeconds?.[k] ?? 0));
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

  /** Ends every stream with `err` and every lease timer (the server goes away). */
  close(err: RpcError): void {
    for (const { call } of this.streams.splice(0)) endCall(call, err);
    for (const { timer } of this.leases.values()) clearTimeout(timer);
  }

  private lease(message: PubsubMessage, seconds: number): ReceivedMessage {
    const ackId = `${nextAck++}-${message.messageId}`;
    this.leases.set(ackId, { message, timer: this.expiry(ackId, seconds) });
    return { ackId, message };
  }

  private expiry(ackId: string, seconds: number): NodeJS.Timeout {
    const expire = (): void => {
      this.requeue(ackId);
      this.dispatch();
    };
    return setTimeout(expire, seconds * 1000).unref();
  }

  private release(ackId: string): PubsubMessage | undefined {
    const lease = this.leases.get(ackId);
    clearTimeout(lease?.timer);
    this.leases.delete(ackId);
    return lease?.message;
  }

  /** Puts a nacked or expired message back, in publish order (message ids are increasing numbers). */
  private requeue(ackId: string): void {
    const message = this.release(ackId);
    if (!message) return;
    const at = this.backlog.findIndex((m) => Number(m.messageId) > Number(message.messageId));
    this.backlog.splice(at < 0 ? this.backlog.length : at, 0, message);
  }

  /** Spreads the backlog over the open streams, round robin, one response per stream. */
  private dispatch(): void {
    if (this.streams.length === 0) return;
    const batches = new Map(this.streams.map((s) => [s, [] as ReceivedMessage[]]));
    for (const message of this.backlog.splice(0)) {
      const stream = this.streams[this.next++ % this.streams.length]!;
      batches.get(stream)?.push(this.lease(message, stream.deadlineSeconds));
    }
    for (const [{ call }, receivedMessages] of batches) {
      if (receivedMessages.length > 0) call.write({ receivedMessages });
    }
  }
}
