/**
 * Dependencies down, on the offline stack: the Vertex, Pub/Sub and (where gcloud is installed)
 * official Firestore emulators are stopped and started again. Nothing is lost: the submit answers
 * 500 within 30 s and Eventarc retries it; the poller answers 200, leaves the job due, and
 * announces it on the next run (or 500 within 30 s when the job store itself is down).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../local/stack.js';

const example = readFileSync(new URL('../../examples/customer-reviews.jsonl', import.meta.url));
let stack: Stack | undefined;
let root: string | undefined;

async function start(logs: Record<string, unknown>[]): Promise<Stack> {
  root = mkdtempSync(join(tmpdir(), 'bc-down-'));
  stack = await startStack({
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root,
    pollIntervalMs: 0,
    vertexTiming: { pendingMs: 20, runningMs: 50 },
    onLog: (line) => logs.push(line),
    eventarcRetry: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 100 },
  });
  return stack;
}

afterEach(async () => {
  await stack?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
  stack = undefined;
});

/** Resolves once `count` log lines match (bounded by the test timeout). */
async function logged(logs: Record<string, unknown>[], event: string, count = 1): Promise<void> {
  while (logs.filter((l) => l.event === event).length < count)
    await new Promise((r) => setTimeout(r, 20));
}

describe('dependencies down', () => {
  it('deadline: Firestore down: submit and poll answer 500 within 30 s; after the restart, one job and one event', async (ctx) => {
    const logs: Record<string, unknown>[] = [];
    const s = await start(logs);
    if (!s.services.firestore.startsWith('official')) {
      ctx.skip('the in-memory job store has no outage (no gcloud Firestore emulator)');
    }
    await s.stopService('firestore');
    const started = performance.now();
    await s.upload('inputs/reviews.jsonl', example);
    // The first delivery's answer: 500 (Eventarc counts a retry) well before 30 s.
    while (s.deliveryStats().retried < 1) await new Promise((r) => setTimeout(r, 50));
    expect(performance.now() - started).toBeLessThan(30_000);
    const pollStarted = performance.now();
    await expect(s.poll()).rejects.toThrow(/answered 500.*JOBS\.UNAVAILABLE/);
    expect(performance.now() - pollStarted).toBeLessThan(30_000);

    await s.startService('firestore');
    await s.deliveriesIdle();
    expect(s.vertex.jobs()).toHaveLength(1);
    await s.vertex.whenIdle();
    await s.poll();
    const event = await s.waitForEvent((e) => e.input.name === 'inputs/reviews.jsonl', 10_000);
    expect(event, JSON.stringify(event.error)).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      stats: { successfulCount: 12 },
    });
    await s.poll();
    expect(s.events).toHaveLength(1);
  }, 120_000);

  it('Vertex AI down during submit: 500s and Eventarc retries; after the restart, one job and one event', async () => {
    const logs: Record<string, unknown>[] = [];
    const s = await start(logs);
    await s.stopService('vertex');
    await s.upload('inputs/reviews.jsonl', example);
    await logged(logs, 'submit.retry', 2);
    await s.startService('vertex');
    await s.deliveriesIdle();
    expect(s.vertex.jobs()).toHaveLength(1);
    await s.vertex.whenIdle();
    await s.poll();
    const event = await s.waitForEvent((e) => e.input.name === 'inputs/reviews.jsonl', 10_000);
    expect(event, JSON.stringify(event.error)).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      stats: { successfulCount: 12 },
    });
    await s.poll();
    expect(s.events).toHaveLength(1);
  }, 60_000);

  it('Pub/Sub down during poll: 200 with the error counted, the job stays due; after the restart it is announced once', async () => {
    const logs: Record<string, unknown>[] = [];
    const s = await start(logs);
    await s.upload('inputs/reviews.jsonl', example);
    await s.deliveriesIdle();
    await s.vertex.whenIdle();
    await s.stopService('pubsub');
    const down = await s.poll();
    expect(down).toMatchObject({ completed: 1, published: 0, errors: 1 });
    await s.startService('pubsub');
    const up = await s.poll();
    expect(up).toMatchObject({ published: 1, errors: 0 });
    await s.waitForEvent((e) => e.input.name === 'inputs/reviews.jsonl', 10_000);
    expect(await s.poll()).toMatchObject({ checked: 0 });
    expect(s.events).toHaveLength(1);
  }, 120_000);
});
