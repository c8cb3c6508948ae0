/**
 * Runs schedules against a fresh world each and checks the invariants; on a failure, reports the
 * seed, the shrunk schedule as one line per action (with what each did) and the broken invariant.
 */
import fc from 'fast-check';
import type { JobStore } from '../../shared/ports.js';
import { always, atQuiescence } from './invariants.js';
import { apply, describeAction, quiesce, scheduleArb, type Action } from './schedule.js';
import { createModelWorld } from './world.js';

export interface RunOptions {
  schedules: number;
  seed: number;
  /** Longest schedule. */
  maxActions?: number;
  /** A fresh job store per schedule (the Firestore tier); in-memory otherwise. */
  jobs?: () => Promise<JobStore>;
  /** Out of 10, the weight of manifest schedules (the rest are about JSONL inputs); default 3. */
  manifestShare?: number;
}

/** Thrown with the readable trace of a failing schedule. */
export class ScheduleFailure extends Error {
  override name = 'ScheduleFailure';
}

interface Outcome {
  violation: string | undefined;
  trace: string[];
}

async function runSchedule(actions: Action[], options: RunOptions): Promise<Outcome> {
  const w = createModelWorld(options.jobs ? { jobs: await options.jobs() } : {});
  const cap = w.config.ANTHROPIC_MAX_CONCURRENT_JOBS;
  const trace: string[] = [];
  for (const [i, action] of actions.entries()) {
    const note = await apply(w, action);
    trace.push(
      `${String(i + 1).padStart(3)}. ${describeAction(action)}${note ? `  → ${note}` : ''}`,
    );
    const violation = await always(w, cap);
    if (violation) return { violation, trace };
  }
  try {
    await quiesce(w);
  } catch (err) {
    return { violation: err instanceof Error ? err.message : String(err), trace };
  }
  trace.push(
    '     (quiescence: faults cleared, owed deliveries made, jobs ended, polls until quiet)',
  );
  return { violation: (await always(w, cap)) ?? (await atQuiescence(w)), trace };
}

/** Runs `schedules` random schedules from `seed`; throws {@link ScheduleFailure} on a violation. */
export async function runSchedules(options: RunOptions): Promise<{ schedules: number }> {
  const result = await fc.check(
    fc.asyncProperty(
      scheduleArb(options.maxActions ?? 40, options.manifestShare ?? 3),
      async (actions) => {
        const { violation } = await runSchedule(actions, options);
        if (violation) throw new Error(violation);
      },
    ),
    { numRuns: options.schedules, seed: options.seed, endOnFailure: false },
  );
  if (result.failed && result.counterexample) {
    const [actions] = result.counterexample;
    const { violation, trace } = await runSchedule(actions, options);
    throw new ScheduleFailure(
      [
        `A schedule broke the promise (seed ${result.seed}, path ${result.counterexample ? result.counterexamplePath : ''}, after ${result.numRuns} schedules, shrunk ${result.numShrinks} times).`,
        `Reproduce: npm run fuzz -- --schedules ${options.schedules} --seed ${result.seed}`,
        '',
        ...trace,
        '',
        `Broken: ${violation ?? String(result.errorInstance)}`,
      ].join('\n'),
    );
  }
  if (result.failed)
    throw new ScheduleFailure(`fast-check failed: ${String(result.errorInstance)}`);
  return { schedules: result.numRuns };
}
