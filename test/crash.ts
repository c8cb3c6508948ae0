/** Crash points for handler tests: a function instance dying before or after one of its effects. */
import type { Transition, TransitionName } from '../shared/core/transitions.js';
import type { createWorld } from './fakes.js';

type World = ReturnType<typeof createWorld>;

/** An error standing for the function instance dying at that point. */
export class Crash extends Error {
  override name = 'Crash';
  /** How many crashes were thrown, so a test can check that its crash point was reached. */
  static thrown = 0;
  constructor(message: string) {
    super(message);
    Crash.thrown++;
  }
}

/**
 * Makes the `n`-th call (1-based) of `target[method]` crash, before it has any effect or after it
 * had its effect but before its answer came back.
 */
export function crashAt<T extends object>(
  target: T,
  method: keyof T,
  n: number,
  when: 'before' | 'after',
): void {
  const real = (target[method] as (...a: unknown[]) => Promise<unknown>).bind(target);
  let calls = 0;
  (target as Record<keyof T, unknown>)[method] = async (...args: unknown[]) => {
    calls++;
    if (calls !== n) return real(...args);
    if (when === 'before') throw new Crash(`crash before ${String(method)} #${n}`);
    await real(...args);
    throw new Crash(`crash after ${String(method)} #${n}`);
  };
}

/**
 * Makes the first store update applying `transition` crash, before it is written or after it was
 * written but before its answer came back.
 */
export function crashAtTransition(
  w: World,
  transition: TransitionName,
  when: 'before' | 'after',
): void {
  const real = w.jobs.update.bind(w.jobs);
  let armed = true;
  w.jobs.update = async (id, change) => {
    if (!armed || (change as Partial<Transition>).transition !== transition)
      return real(id, change);
    armed = false;
    if (when === 'before') throw new Crash(`crash before ${transition}`);
    await real(id, change);
    throw new Crash(`crash after ${transition}`);
  };
}
