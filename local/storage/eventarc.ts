/**
 * Eventarc-like delivery of `google.cloud.storage.object.v1.finalized` CloudEvents to an HTTP
 * target (the functions framework running `submitBatchJob`), in binary content mode, at least once.
 *
 * Like Eventarc with `RETRY_POLICY_RETRY`: a network error, a timeout, a 5xx or a 429 is retried
 * with exponential backoff and the same `ce-id`; a 2xx ends the delivery; any other answer (a 4xx)
 * drops the event.
 */
import { randomInt } from 'node:crypto';
import type { ObjectResource } from './server.js';

/** Options of {@link createEventarcDelivery}. */
export interface EventarcDeliveryOptions {
  /** Where to POST events, e.g. `http://127.0.0.1:8080/`. */
  targetUrl: string;
  /** When set, only objects of this bucket are delivered (the trigger's bucket filter). */
  bucket?: string;
  /**
   * The delay before the first retry (default 1 s) doubles for each further retry, up to
   * `maxDelayMs` (default 60 s); after `maxAttempts` in all (default 10), the event is dropped.
   */
  retry?: { initialDelayMs?: number; maxDelayMs?: number; maxAttempts?: number };
  /** Time allowed for one attempt (default 540 s, the longest event-function timeout). */
  requestTimeoutMs?: number;
}

/**
 * Counters: events the target acknowledged with a 2xx (`delivered`), retries scheduled
 * (`retried`), events dropped after a 4xx other than 429 or a last failed attempt (`failed`).
 */
export type EventarcStats = Record<'delivered' | 'retried' | 'failed', number>;

/**
 * Percent-encodes a CloudEvents attribute for an HTTP header, as the CloudEvents HTTP binding
 * (1.0.2, section 3.1.3.2) requires: space, `"`, `%` and everything outside printable ASCII.
 */
export function encodeHeaderValue(value: string): string {
  return value.replace(/[^\x21-\x7e]|["%]/gu, (ch) =>
    [...Buffer.from(ch)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

/** The headers and body of a finalize event in binary content mode, as Eventarc sends it. */
export function storageFinalizedRequest(
  object: ObjectResource,
  id: string,
): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'Content-Type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': encodeHeaderValue(id),
      'ce-type': 'google.cloud.storage.object.v1.finalized',
      'ce-source': encodeHeaderValue(
        `//storage.googleapis.com/projects/_/buckets/${object.bucket}`,
      ),
      'ce-subject': encodeHeaderValue(`objects/${object.name}`),
      'ce-time': encodeHeaderValue(object.updated),
      'ce-bucket': encodeHeaderValue(object.bucket),
    },
    body: JSON.stringify(object),
  };
}

/** Creates a delivery pipeline to `targetUrl`. */
export function createEventarcDelivery(options: EventarcDeliveryOptions) {
  const initialDelayMs = options.retry?.initialDelayMs ?? 1000;
  const maxDelayMs = options.retry?.maxDelayMs ?? 60_000;
  const maxAttempts = Math.max(1, options.retry?.maxAttempts ?? 10);
  const stats: EventarcStats = { delivered: 0, retried: 0, failed: 0 };
  const waiting = new Set<NodeJS.Timeout>();
  const closing = new AbortController();
  let idleWaiters: (() => void)[] = [];
  let pending = 0;
  let closed = false;
  // Numeric ids like Eventarc's; unique per event, reused for every retry of it.
  let nextId = BigInt(Date.now()) * 1000n + BigInt(randomInt(1000));

  const settle = (): void => {
    pending -= 1;
    if (pending > 0) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  };

  /** The status of one attempt, or undefined for a network error or a timeout. */
  const send = async (request: { headers: Record<string, string>; body: string }) => {
    const timeout = AbortSignal.timeout(options.requestTimeoutMs ?? 540_000);
    const signal = AbortSignal.any([closing.signal, timeout]);
    try {
      const res = await fetch(options.targetUrl, { method: 'POST', ...request, signal });
      // Read the answer so the connection can be reused; its content does not matter.
      await res.arrayBuffer().catch(() => undefined);
      return res.status;
    } catch {
      return undefined;
    }
  };

  const attempt = async (request: { headers: Record<string, string>; body: string }, n: number) => {
    const status = await send(request);
    if (closed) return settle();
    const retry = status === undefined || status === 429 || status >= 500;
    if (status !== undefined && status >= 200 && status < 300) {
      stats.delivered += 1;
    } else if (!retry || n >= maxAttempts) {
      stats.failed += 1;
    } else {
      stats.retried += 1;
      const timer = setTimeout(
        () => {
          waiting.delete(timer);
          void attempt(request, n + 1);
        },
        Math.min(initialDelayMs * 2 ** (n - 1), maxDelayMs),
      );
      waiting.add(timer);
      return;
    }
    settle();
  };

  return {
    stats,
    /** Queues one finalize event for `object` (ignored when it is not in the filtered bucket). */
    deliver(object: ObjectResource): void {
      if (closed || (options.bucket !== undefined && object.bucket !== options.bucket)) return;
      pending += 1;
      void attempt(storageFinalizedRequest(object, String(nextId++)), 1);
    },
    /** Resolves when no event is in flight or waiting for a retry. */
    idle: (): Promise<void> =>
      pending === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r)),
    /** Stops: cancels pending retries and in-flight requests; later `deliver` calls are ignored. */
    close(): void {
      closed = true;
      for (const timer of waiting) {
        clearTimeout(timer);
        settle();
      }
      waiting.clear();
      closing.abort();
    },
  };
}
