/**
 * Reliability: every input ends in one Vertex job (or one rejection) and one event, whatever
 * crashes, quota limits and duplicate deliveries happen on the way.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { STALE_SUBMITTING_SECONDS } from '../../shared/core/transitions.js';
import { Crash, crashAt, crashAtTransition } from '../crash.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { TransientError } from '../../shared/core/errors.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import { ANTHROPIC_LINES, createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';
import { requestInputUris } from '../../shared/core/vertex.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';

type World = ReturnType<typeof createWorld>;

/** Finishes every Vertex job and polls until nothing is outstanding (bounded). */
async function finishAll(w: World): Promise<void> {
  for (let i = 0; i < 10; i++) {
    for (const [name, job] of w.vertex.jobs) {
      if (job.state !== 'JOB_STATE_SUCCEEDED')
        w.vertex.setState(name, {
          state: 'JOB_STATE_SUCCEEDED',
          completionStats: { successfulCount: '3' },
        });
    }
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps);
    if (w.jobs.all().every((r) => !r.outstanding)) return;
  }
}

function distinctEvents(w: World): number {
  return new Set(w.publisher.events.map((e) => e.eventId)).size;
}

describe('crash-point matrix: submit path', () => {
  const points: [string, (w: World) => void][] = [
    ['after createIfAbsent', (w) => crashAt(w.jobs, 'createIfAbsent', 1, 'after')],
    ['before the pinned copy', (w) => crashAt(w.reports, 'copy', 1, 'before')],
    ['after the pinned copy', (w) => crashAt(w.reports, 'copy', 1, 'after')],
    ['before toCreating', (w) => crashAtTransition(w, 'toCreating', 'before')],
    ['after toCreating', (w) => crashAtTransition(w, 'toCreating', 'after')],
    ['before the Vertex create', (w) => crashAt(w.vertex, 'create', 1, 'before')],
    ['after the Vertex create (answer lost)', (w) => crashAt(w.vertex, 'create', 1, 'after')],
    ['before toSubmitted', (w) => crashAtTransition(w, 'toSubmitted', 'before')],
    ['after toSubmitted', (w) => crashAtTransition(w, 'toSubmitted', 'after')],
  ];

  it.each(points)('crash %s, then Eventarc retries → one job, one event', async (_point, arm) => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
    arm(w);
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(Crash);
    // The dead instance's claim expires before the retry is let through.
    w.clock.advance(600_000);
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    await finishAll(w);
    expect(w.vertex.jobs.size).toBe(1);
    expect(w.publisher.events).toHaveLength(1);
  });

  it.each(points)(
    'crash %s, event never retried → the poller finishes it: one job, one event',
    async (_point, arm) => {
      const w = createWorld();
      w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
      arm(w);
      await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(Crash);
      w.clock.advance((STALE_SUBMITTING_SECONDS + 1) * 1000);
      await pollBatchJobs(w.pollDeps);
      await finishAll(w);
      expect(w.vertex.jobs.size).toBe(1);
      expect(w.publisher.events).toHaveLength(1);
      expect(w.jobs.all()[0]).toMatchObject({ status: 'COMPLETED', outstanding: false });
    },
  );

  it('a bad input whose submit crashed before recording the rejection is rejected once by the poller', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, 'not json\n');
    crashAtTransition(w, 'toRejected', 'before');
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(Crash);
    w.clock.advance((STALE_SUBMITTING_SECONDS + 1) * 1000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({ eventType: 'input.rejected' });
  });

  it('a live submission is not taken over by the poller', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
    crashAt(w.vertex, 'create', 1, 'before');
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(Crash);
    w.clock.advance(60_000); // recent: Eventarc is still retrying it
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.jobs.size).toBe(0);
    expect(w.jobs.all()[0]).toMatchObject({ status: 'SUBMITTING' });
  });
});

describe('crash-point matrix: poll path', () => {
  const points: [string, (w: World) => void][] = [
    ['before toCompleted', (w) => crashAtTransition(w, 'toCompleted', 'before')],
    ['after toCompleted', (w) => crashAtTransition(w, 'toCompleted', 'after')],
    ['before claimAnnouncement', (w) => crashAtTransition(w, 'claimAnnouncement', 'before')],
    ['after claimAnnouncement', (w) => crashAtTransition(w, 'claimAnnouncement', 'after')],
    ['before publish', (w) => crashAt(w.publisher, 'publish', 1, 'before')],
    ['after publish', (w) => crashAt(w.publisher, 'publish', 1, 'after')],
    ['before markAnnounced', (w) => crashAtTransition(w, 'markAnnounced', 'before')],
    ['after markAnnounced', (w) => crashAtTransition(w, 'markAnnounced', 'after')],
  ];

  it.each(points)(
    'crash %s → later runs: one job, one outcome announced (one eventId)',
    async (point, arm) => {
      const w = createWorld();
      w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
      await handleStorageEvent(finalizeEvent(), w.submitDeps);
      const [name] = [...w.vertex.jobs.keys()];
      w.vertex.setState(name!, { state: 'JOB_STATE_SUCCEEDED' });
      arm(w);
      const before = Crash.thrown;
      await pollBatchJobs(w.pollDeps);
      expect(Crash.thrown).toBe(before + 1); // the crash point was reached
      await finishAll(w);
      expect(w.vertex.jobs.size).toBe(1);
      expect(distinctEvents(w)).toBe(1);
      // Only a crash between publish and mark can redeliver, and then with the same eventId.
      const betweenPublishAndMark = ['after publish', 'before markAnnounced'];
      expect(w.publisher.events.length).toBe(betweenPublishAndMark.includes(point) ? 2 : 1);
      expect(w.jobs.all()[0]).toMatchObject({ outstanding: false });
    },
  );
});

describe('admission control', () => {
  it('429 queues the input; the poller submits it after the backoff, and the event is one, at its end', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
    w.vertex.fail(
      'create',
      new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 }),
    );
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'waiting',
    });
    const waiting = w.jobs.all()[0]!;
    expect(waiting).toMatchObject({ status: 'WAITING', waitAttempts: 1 });
    expect(Date.parse(waiting.nextAttemptAt!) - w.clock().getTime()).toBe(30_000);

    // Not due yet: nothing happens.
    expect(await pollBatchJobs(w.pollDeps)).toMatchObject({ submitted: 0 });
    // Due, but 429 again: the backoff doubles.
    w.clock.advance(31_000);
    w.vertex.fail(
      'create',
      new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 }),
    );
    await pollBatchJobs(w.pollDeps);
    const again = w.jobs.all()[0]!;
    expect(again).toMatchObject({ status: 'WAITING', waitAttempts: 2 });
    expect(Date.parse(again.nextAttemptAt!) - w.clock().getTime()).toBe(60_000);
    w.clock.advance(61_000);
    expect(await pollBatchJobs(w.pollDeps)).toMatchObject({ submitted: 1 });
    expect(w.publisher.events).toHaveLength(0);
    await finishAll(w);
    expect(w.vertex.jobs.size).toBe(1);
    expect(w.publisher.events).toHaveLength(1);
  });

  it('Claude jobs beyond ANTHROPIC_MAX_CONCURRENT_JOBS wait and go first-in first-out as capacity frees', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '2' });
    const names = Array.from({ length: 5 }, (_, i) => `inputs/claude-${i}.jsonl`);
    for (const name of names) {
      w.reader.put(BUCKET, name, GEN, ANTHROPIC_LINES);
      const out = await handleStorageEvent(
        finalizeEvent({ name, metadata: { model: 'claude-3-5-haiku' } }),
        w.submitDeps,
      );
      expect(out.outcome).toBe(names.indexOf(name) < 2 ? 'submitted' : 'waiting');
      w.clock.advance(1000);
    }
    const created = () => [...w.vertex.jobs.values()].map((j) => j.displayName);
    const idOf = (name: string) => deriveJobId(BUCKET, name, GEN);
    expect(created()).toEqual([idOf(names[0]!), idOf(names[1]!)]);

    // Nothing frees: the poller submits nothing.
    expect(await pollBatchJobs(w.pollDeps)).toMatchObject({ submitted: 0 });
    // One job ends: exactly one more, the oldest waiting.
    w.vertex.setState([...w.vertex.jobs.keys()][0]!, { state: 'JOB_STATE_SUCCEEDED' });
    await pollBatchJobs(w.pollDeps);
    await pollBatchJobs(w.pollDeps);
    expect(created()).toEqual([idOf(names[0]!), idOf(names[1]!), idOf(names[2]!)]);
    await finishAll(w);
    expect(created()).toEqual(names.map(idOf));
    expect(w.publisher.events).toHaveLength(5);
    expect(distinctEvents(w)).toBe(5);
  });

  it('a newcomer waits behind older waiting inputs of its provider', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '1' });
    for (const name of ['inputs/a.jsonl', 'inputs/b.jsonl']) {
      w.reader.put(BUCKET, name, GEN, ANTHROPIC_LINES);
      await handleStorageEvent(
        finalizeEvent({ name, metadata: { model: 'claude-3-5-haiku' } }),
        w.submitDeps,
      );
    }
    // Capacity frees, but before the poller runs a new file arrives: it queues behind b.
    w.vertex.setState([...w.vertex.jobs.keys()][0]!, { state: 'JOB_STATE_SUCCEEDED' });
    await w.jobs.update(deriveJobId(BUCKET, 'inputs/a.jsonl', GEN), (cur) => ({
      ...cur,
      status: 'COMPLETED',
    }));
    w.reader.put(BUCKET, 'inputs/c.jsonl', GEN, ANTHROPIC_LINES);
    const c = await handleStorageEvent(
      finalizeEvent({ name: 'inputs/c.jsonl', metadata: { model: 'claude-3-5-haiku' } }),
      w.submitDeps,
    );
    expect(c).toMatchObject({
      outcome: 'waiting',
      reason: expect.stringContaining(
        'older inputs for publishers/anthropic/models/claude-3-5-haiku in us-east5 are waiting',
      ),
    });
    await pollBatchJobs(w.pollDeps);
    expect([...w.vertex.jobs.values()].at(-1)?.displayName).toBe(
      deriveJobId(BUCKET, 'inputs/b.jsonl', GEN),
    );
  });

  it('a duplicate delivery of a waiting input is acknowledged and changes nothing', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
    w.vertex.fail(
      'create',
      new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 }),
    );
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'duplicate',
      status: 'WAITING',
    });
    expect(w.vertex.calls.create).toBe(1);
  });
});

describe('stuck jobs (MAX_JOB_AGE_HOURS)', () => {
  /** A submitted Gemini job whose Vertex state is `state`, created at the fake clock's now. */
  async function runningJob(config: Record<string, string> = {}, state = 'JOB_STATE_RUNNING') {
    const w = createWorld(config);
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, GEMINI_LINES);
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    const [name] = [...w.vertex.jobs.keys()];
    w.vertex.setState(name!, { state, createTime: w.clock().toISOString() });
    return { w, name: name! };
  }

  it('item 9: too old → cancel requested once, nothing announced until Vertex reports CANCELLED, then DEADLINE_EXCEEDED', async () => {
    const { w, name } = await runningJob({ MAX_JOB_AGE_HOURS: '24' });
    w.clock.advance(23 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(0);
    w.clock.advance(2 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(1);
    // Cancel is best effort: nothing is announced before Vertex says how the job ended.
    expect(w.publisher.events).toHaveLength(0);
    const record = await w.jobs.get(deriveJobId(BUCKET, 'inputs/customer-reviews.jsonl', GEN));
    expect(record).toMatchObject({ status: 'SUBMITTED', outstanding: true });
    expect(record?.cancelRequestedAt).not.toBeNull();
    w.vertex.setState(name, { state: 'JOB_STATE_CANCELLING' });
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(1); // asked once
    expect(w.publisher.events).toHaveLength(0);
    w.vertex.setState(name, {
      state: 'JOB_STATE_CANCELLED',
      completionStats: { successfulCount: '2', failedCount: '0', incompleteCount: '1' },
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({
      state: 'JOB_STATE_CANCELLED',
      stats: { successfulCount: 2, failedCount: 0, incompleteCount: 1 },
      error: { code: 'DEADLINE_EXCEEDED', message: expect.stringContaining('MAX_JOB_AGE_HOURS') },
    });
  });

  it('item 9: a job that succeeds despite the cancel request is announced SUCCEEDED, with its stats', async () => {
    const { w, name } = await runningJob({ MAX_JOB_AGE_HOURS: '1' });
    w.clock.advance(2 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(1);
    w.vertex.setState(name, {
      state: 'JOB_STATE_SUCCEEDED',
      completionStats: { successfulCount: '3' },
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      stats: { successfulCount: 3, failedCount: 0, incompleteCount: 0 },
      error: null,
    });
  });

  it('item 15: on by default (96 h); PAUSED time counts; a job Vertex never ends after the cancel is announced 24 h later', async () => {
    const { w } = await runningJob({}, 'JOB_STATE_PAUSED');
    w.clock.advance(95 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(0);
    w.clock.advance(2 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(1);
    w.clock.advance(23 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(0);
    w.clock.advance(2 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({
      state: 'JOB_STATE_CANCELLED',
      error: { code: 'DEADLINE_EXCEEDED', message: expect.stringContaining('no longer tracked') },
    });
    // Nothing is outstanding afterwards: the job is not tracked forever.
    expect((await w.jobs.listOutstanding(10)).records).toHaveLength(0);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
  });

  it('MAX_JOB_AGE_HOURS=0 turns it off', async () => {
    const { w } = await runningJob({ MAX_JOB_AGE_HOURS: '0' }, 'JOB_STATE_PAUSED');
    w.clock.advance(1000 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.calls.cancel).toBe(0);
    expect(w.publisher.events).toHaveLength(0);
  });
});

describe('hostile inputs', () => {
  const canary = 'CANARY-b7e1-do-not-log';
  const names = [
    'inputs/my file with spaces.jsonl',
    'inputs/entrées/Ünïcødé 日本語 🚀.jsonl',
    'inputs/../../etc/passwd.jsonl',
    'inputs/line\nbreak.jsonl',
    `inputs/${'a'.repeat(1012)}.jsonl`,
  ];

  it.each(
    names.map((n) => [
      n.length > 60 ? `${n.slice(0, 40)}… (${Buffer.byteLength(n)} bytes)` : JSON.stringify(n),
      n,
    ]),
  )('%s → a valid job id and labels, one job, no crash', async (_label, name) => {
    const w = createWorld();
    w.reader.put(
      BUCKET,
      name,
      GEN,
      JSON.stringify({ request: { contents: [{ role: 'user', parts: [{ text: canary }] }] } }) +
        '\n',
    );
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    expect(out).toMatchObject({ outcome: 'submitted' });
    const create = w.vertex.creates[0]!;
    for (const [k, v] of Object.entries(create.request.labels)) {
      expect(k).toMatch(/^[a-z][a-z0-9_-]{0,62}$/);
      expect(v).toMatch(/^[a-z0-9_-]{0,63}$/);
    }
    // The job reads the pinned copy under its own prefix, whatever the input's name.
    const jobId = deriveJobId(BUCKET, name, GEN);
    expect(requestInputUris(create.request)).toEqual([
      `gs://acme-batch-output/results/${jobId}/input.jsonl`,
    ]);
    expect(w.reports.copies.has(`gs://acme-batch-output/results/${jobId}/input.jsonl`)).toBe(true);
    expect(w.log.raw.join('\n')).not.toContain(canary);
  });

  it('a bad file with a hostile name gets a correct report and event; the canary is in no log line', async () => {
    const w = createWorld();
    const name = 'inputs/../évil name\n.jsonl';
    w.reader.put(
      BUCKET,
      name,
      GEN,
      `{"request":{"contents":[{"role":"user","parts":[{"text":"${canary}"}]}]}}\n{"request": ${canary}\n`,
    );
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.INVALID_JSONL' });
    expect(w.publisher.events[0]?.error?.message).toContain(`${name} line 2: is not valid JSON`);
    expect(w.publisher.events[0]?.input.name).toBe(name);
    const report = [...w.reports.objects.values()][0]!;
    expect(JSON.parse(report)).toMatchObject({ input: { name }, errors: [{ line: 2 }] });
    expect(w.log.raw.join('\n')).not.toContain(canary);
  });
});
