/**
 * A run's time budget: no new work starts after it, and every call made under it is given at
 * most the time that is left (the caller stops waiting; the call's own deadline ends it).
 */
import { TransientError } from '../core/errors.js';
import type { Clock } from '../ports.js';
import { withTimeLimit } from '../time-limit.js';

/** A point in time after which no new work starts. */
export interface Deadline {
  /** Milliseconds left (0 when over). */
  remaining(): number;
  /** True when the budget is spent. */
  expired(): boolean;
  /**
   * Runs `call`, waiting for it at most the time left. Rejects with TransientError
   * `DEADLINE.EXCEEDED` when the budget is already spent or runs out first.
   */
  within<T>(what: string, call: () => Promise<T>): Promise<T>;
}

/**
 * A deadline `budgetMs` from now. Time is measured both by `clock` (injectable: tests move it)
 * and by the process's monotonic clock; whichever has advanced more counts.
 */
export function deadlineAfter(budgetMs: number, clock: Clock): Deadline {
  const startClock = clock().getTime();
  const startReal = performance.now();
  const elapsed = (): number =>
    Math.max(clock().getTime() - startClock, performance.now() - startReal);
  const remaining = (): number => Math.max(0, budgetMs - elapsed());
  const over = (what: string): TransientError =>
    new TransientError(
      'DEADLINE.EXCEEDED',
      `${what}: the run's time budget of ${Math.round(budgetMs / 1000)} s is spent`,
    );
  return {
    remaining,
    expired: () => remaining() <= 0,
    async within(what, call) {
      const left = remaining();
      if (left <= 0) throw over(what);
      return withTimeLimit(call(), left, () => over(what));
    },
  };
}
