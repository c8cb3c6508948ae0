/**
 * Eventarc-like delivery of `google.cloud.storage.object.v1.finalized` CloudEvents to an HTTP
 * target (the functions framework running `submitBatchJob`), in binary content mode, at least once.
 *
 * Like Eventarc with `RETRY_POLICY_RETRY`: a network error, a timeout, a 5xx or a 429 is retried
 * with exponential backoff and the same `ce-id`; a 2xx ends the delivery; any other answer (a 4xx)
 * is logged and dropped.
 */
import { randomInt } from 'node:crypto';
import type { ObjectResource } from './storage-emulator.js';

/** The CloudEvent type of a finalized object. */
export const STORAGE_FINALIZED_TYPE = 'google.cloud.storage.object.v1.finalized';

/** Retry policy; every field has a default. */
export interface RetryPolicy {
  /** Delay before the first retry (default 1000 ms); it doubles for each further retry. */
  initialDelayMs: number;
  /** Upper bound of the delay (default 60 000 ms). */
  maxDelayMs: number;
  /** Attempts in total, the first one included (default 10); then the event is dropped. */
  maxAttempts: number;
}

/** Options of {@link createEventarcDelivery}. */
export interface EventarcDeliveryOptions {
  /** Where to POST events, e.g. `http://127.0.0.1:8080/`. */
  targetUrl: string;
  /** When set, only objects of this bucket are delivered (the trigger's bucket filter). */
  bucket?: string;
  retry?: Partial<RetryPolicy>;
  /** Time allowed for one attempt (default 540 000 ms, the longest event-function timeout). */
  requestTimeoutMs?: number;
  /** One JSON object per delivery outcome; default writes a JSON line to stdout. */
  log?: (line: object) => void;
}

/** Counters, for tests and the local stack's summary. */
export interface EventarcStats {
  /** Events the target acknowledged with a 2xx. */
  delivered: number;
  /** Retries scheduled (attempts after the first). */
  retried: number;
  /** Events dropped: a 4xx other than 429, or every attempt failed. */
  failed: number;
}

/** A running delivery pipeline. */
export interface EventarcDelivery {
  /** Queues one finalize event for `object` (ignored when it is not in the filtered bucket). */
  deliver(object: ObjectResource): void;
  /** Resolves when no event is in flight or waiting for a retry. */
  idle(): Promise<void>;
  /** Stops: cancels pending retries and in-flight requests; later `deliver` calls are ignored. */
  close(): void;
  readonly stats: EventarcStats;
}

/** The HTTP request of one CloudEvent in binary content mode. */
export interface CloudEventRequest {
  headers: Record<string, string>;
  body: string;
}

/**
 * Percent-encodes a CloudEvents attribute for an HTTP header, as the CloudEvents HTTP binding
 * (1.0.2, section 3.1.3.2) requires: space, `"`, `%` and everything outside printable ASCII.
 * Plain names such as `inputs/2026-11-26/reviews.jsonl` pass unchanged.
 */
export function encodeHeaderValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (code > 0x20 && code < 0x7f && ch !== '"' && ch !== '%') {
      out += ch;
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) {
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      }
    }
  }
  return out;
}

/** Builds the binary-mode request of a finalize event, as Eventarc sends it. */
export function storageFinalizedRequest(object: ObjectResource, id: string): CloudEventRequest {
  return {
    headers: {
      'Content-Type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': encodeHeaderValue(id),
      'ce-type': STORAGE_FINALIZED_TYPE,
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

interface PendingEvent {
  id: string;
  object: ObjectResource;
  request: CloudEventRequest;
  attempts: number;
  settled: boolean;
}

type Outcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status?: number; error?: string }
  | { kind: 'drop'; status: number };

function classify(status: number): Outcome {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status === 429 || status >= 500) return { kind: 'retry', status };
  return { kind: 'drop', status };
}

function defaultLog(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Creates a delivery pipeline to `targetUrl`. */
export function createEventarcDelivery(options: EventarcDeliveryOptions): EventarcDelivery {
  const policy: RetryPolicy = {
    initialDelayMs: options.retry?.initialDelayMs ?? 1000,
    maxDelayMs: options.retry?.maxDelayMs ?? 60_000,
    maxAttempts: Math.max(1, options.retry?.maxAttempts ?? 10),
  };
  const timeoutMs = options.requestTimeoutMs ?? 540_000;
  const stats: EventarcStats = { delivered: 0, retried: 0, failed: 0 };
  const waiting = new Map<NodeJS.Timeout, PendingEvent>();
  const inFlight = new Set<AbortController>();
  let idleWaiters: Array<() => void> = [];
  let pending = 0;
  let closed = false;
  // Numeric ids like Eventarc's; unique per event, reused for every retry of it.
  let nextId = BigInt(Date.now()) * 1000n + BigInt(randomInt(1000));

  const log = (line: object): void => {
    try {
      (options.log ?? defaultLog)(line);
    } catch {
      // A broken logger must not break delivery.
    }
  };

  const fields = (event: PendingEvent): Record<string, unknown> => ({
    ceId: event.id,
    bucket: event.object.bucket,
    object: event.object.name,
    generation: event.object.generation,
    attempt: event.attempts,
  });

  const settle = (event: PendingEvent): void => {
    if (event.settled) return;
    event.settled = true;
    pending--;
    if (pending === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  };

  const send = async (event: PendingEvent): Promise<Outcome> => {
    const controller = new AbortController();
    inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await fetch(options.targetUrl, {
        method: 'POST',
        headers: event.request.headers,
        body: event.request.body,
        signal: controller.signal,
      });
      // Read the answer so the connection can be reused; its content does not matter.
      await res.arrayBuffer().catch(() => undefined);
      return classify(res.status);
    } catch (err) {
      return { kind: 'retry', error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
      inFlight.delete(controller);
    }
  };

  const attempt = async (event: PendingEvent): Promise<void> => {
    event.attempts++;
    const outcome = await send(event);
    if (closed) {
      settle(event);
      return;
    }
    if (outcome.kind === 'delivered') {
      stats.delivered++;
      log({
        severity: 'DEBUG',
        message: 'event delivered',
        event: 'eventarc.delivered',
        ...fields(event),
        status: outcome.status,
      });
      settle(event);
      return;
    }
    if (outcome.kind === 'drop') {
      stats.failed++;
      log({
        severity: 'WARNING',
        message: 'target refused the event; dropped without retry',
        event: 'eventarc.dropped',
        ...fields(event),
        status: outcome.status,
      });
      settle(event);
      return;
    }
    if (event.attempts >= policy.maxAttempts) {
      stats.failed++;
      log({
        severity: 'ERROR',
        message: 'event not delivered after the last attempt; dropped',
        event: 'eventarc.failed',
        ...fields(event),
        status: outcome.status ?? null,
        error: outcome.error ?? null,
      });
      settle(event);
      return;
    }
    const delayMs = Math.min(policy.initialDelayMs * 2 ** (event.attempts - 1), policy.maxDelayMs);
    stats.retried++;
    log({
      severity: 'WARNING',
      message: 'event delivery failed; will retry',
      event: 'eventarc.retry',
      ...fields(event),
      status: outcome.status ?? null,
      error: outcome.error ?? null,
      delayMs,
    });
    const timer = setTimeout(() => {
      waiting.delete(timer);
      run(event);
    }, delayMs);
    waiting.set(timer, event);
  };

  const run = (event: PendingEvent): void => {
    // `attempt` handles every expected failure itself; this catch only guarantees that an
    // unexpected throw neither becomes an unhandled rejection nor leaves idle() hanging.
    attempt(event).catch((err: unknown) => {
      stats.failed++;
      log({
        severity: 'ERROR',
        message: 'event delivery crashed; dropped',
        event: 'eventarc.failed',
        ...fields(event),
        error:
          err instanceof Error
            ? { name: err.name, message: err.message, stack: err.stack }
            : String(err),
      });
      settle(event);
    });
  };

  return {
    stats,
    deliver(object: ObjectResource): void {
      if (closed) {
        log({
          severity: 'WARNING',
          message: 'delivery is closed; event ignored',
          event: 'eventarc.closed',
          bucket: object.bucket,
          object: object.name,
          generation: object.generation,
        });
        return;
      }
      if (options.bucket !== undefined && object.bucket !== options.bucket) {
        log({
          severity: 'DEBUG',
          message: 'object is not in the trigger bucket; not delivered',
          event: 'eventarc.filtered',
          bucket: object.bucket,
          object: object.name,
          generation: object.generation,
        });
        return;
      }
      const id = String(nextId++);
      const event: PendingEvent = {
        id,
        object,
        request: storageFinalizedRequest(object, id),
        attempts: 0,
        settled: false,
      };
      pending++;
      run(event);
    },
    idle(): Promise<void> {
      if (pending === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    close(): void {
      closed = true;
      for (const [timer, event] of waiting) {
        clearTimeout(timer);
        settle(event);
      }
      waiting.clear();
      for (const controller of inFlight) controller.abort();
    },
  };
}
