/**
 * Waiting for a call at most so long: the one helper behind every deadline (the adapters' own
 * per-call bounds and the poll run's budget).
 */

/**
 * Waits for `work` at most `ms`, then rejects with `onTimeout()` (which may also abort the work).
 * The timer is cleared either way, and a rejection of abandoned work is swallowed: in the functions
 * framework an unhandled rejection would kill the instance.
 */
export function withTimeLimit<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => undefined);
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** `1500` → `"2 s"`, `400` → `"0.4 s"`: a duration for messages. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 1000 ? 1 : 0))} s`;
}
