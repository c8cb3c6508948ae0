/**
 * What the REST clients (Vertex AI, BigQuery) share: one request bounded in time, and a read
 * retried with backoff within a total bound. Both go through google-auth-library's `request`.
 */
import type { gaxios } from 'google-auth-library';
import { withTimeLimit } from '../time-limit.js';

/** What the clients need of an auth client: `GoogleAuth`, `AuthClient` and `OAuth2Client` all fit. */
export interface RequestClient {
  request<T>(options: gaxios.GaxiosOptions): Promise<gaxios.GaxiosResponse<T>>;
}

/** Attempts of one read at most (the first and three retries). */
export const READ_ATTEMPTS = 4;

/**
 * One request, aborted after `ms` (rejected with `timedOut()`), never retried by the HTTP client;
 * a failure is rejected as `mapError` makes it.
 */
export async function boundedRequest<T>(
  auth: RequestClient,
  opts: gaxios.GaxiosOptions,
  ms: number,
  timedOut: () => Error,
  mapError: (err: unknown) => Error,
): Promise<T> {
  const abort = new AbortController();
  const answered = auth.request<T>({
    responseType: 'json',
    ...opts,
    // Our own bound, not gaxios' `timeout`: it covers getting a token too, and a retry of
    // gaxios would drop it.
    signal: abort.signal,
    retry: false,
  });
  try {
    const res = await withTimeLimit(answered, ms, () => {
      abort.abort();
      return timedOut();
    });
    return res.data;
  } catch (err) {
    throw mapError(err);
  }
}

/**
 * A read: `attempt(ms)` tried again with backoff while `isRetried` says so, each attempt given at
 * most `timeoutMs`, the whole sequence at most `totalMs`, at most {@link READ_ATTEMPTS} attempts.
 */
export async function retriedRead<T>(
  attempt: (ms: number) => Promise<T>,
  bounds: { timeoutMs: number; totalMs: number },
  isRetried: (err: unknown) => boolean,
): Promise<T> {
  const deadline = Date.now() + bounds.totalMs;
  for (let n = 1; ; n++) {
    const left = deadline - Date.now();
    try {
      return await attempt(Math.min(bounds.timeoutMs, left));
    } catch (err) {
      const pause = Math.min(4000, 250 * 2 ** (n - 1)) * (0.5 + Math.random() / 2);
      // Another attempt only when it can still get a useful share of the time left.
      if (!isRetried(err) || n >= READ_ATTEMPTS || deadline - Date.now() - pause < 1000) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}
