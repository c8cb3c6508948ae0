/**
 * The promise under hostile inputs, slow dependencies and bad timing: every input generation gets
 * exactly one Vertex job (or one rejection) and exactly one event, nothing is lost, nothing is
 * billed twice. One test (or group) per way it was once broken, named after it.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { eventAttributes } from '../../shared/core/events.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import { STALE_SUBMITTING_SECONDS, SUBMIT_LEASE_SECONDS } from '../../shared/core/transitions.js';
import { ANTHROPIC_LINES, createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';
import { requestInputUris } from '../../shared/core/vertex.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';
const GEN2 = '1764150099999999';
const OUT = 'gs://acme-batch-output/results';

type World = ReturnType<typeof createWorld>;

const jobIdOf = (name: string, gen = GEN): string => deriveJobId(BUCKET, name, gen);

/** Uploads `content` as `name` (generation `gen`) and delivers its finalize event. */
async function upload(
  w: World,
  name: string,
  content: string,
  opts: { gen?: string; metadata?: Record<string, string> } = {},
) {
  const gen = opts.gen ?? GEN;
  w.reader.put(BUCKET, name, gen, content);
  return handleStorageEvent(
    finalizeEvent({ name, generation: gen, ...(opts.metadata ? { metadata: opts.metadata } : {}) }),
    w.submitDeps,
  );
}

const throttled = (): TransientError =>
  new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 });

/** Vertex creates in the order they were sent, with the bytes each job would read. */
function jobInputs(w: World): { jobId: string; uri: string; bytes: string | undefined }[] {
  return w.vertex.creates.map((c) => {
    const uri = requestInputUris(c.request)[0] ?? '';
    return { jobId: c.request.displayName, uri, bytes: w.reports.copies.get(uri)?.toString() };
  });
}

/** Finishes every Vertex job and polls until nothing is outstanding (bounded). */
async function settle(w: World): Promise<void> {
  for (let i = 0; i < 20; i++) {
    for (const [name, job] of w.vertex.jobs) {
      if (job.state === 'JOB_STATE_PENDING' || job.state === 'JOB_STATE_RUNNING')
        w.vertex.setState(name, { state: 'JOB_STATE_SUCCEEDED' });
      if (job.state === 'JOB_STATE_CANCELLING')
        w.vertex.setState(name, { state: 'JOB_STATE_CANCELLED' });
    }
    w.clock.advance(3600_000);
    await pollBatchJobs(w.pollDeps);
    if ((await w.jobs.listOutstanding(1000)).records.length === 0) return;
  }
  throw new Error('the pipeline did not settle');
}

/** Exactly one distinct event per input generation, and nothing outstanding. */
async function expectOneEventEach(w: World, jobIds: string[]): Promise<void> {
  const ids = new Map<string, Set<string>>();
  for (const e of w.publisher.events)
    ids.set(e.jobId, (ids.get(e.jobId) ?? new Set()).add(e.eventId));
  for (const id of jobIds) expect(ids.get(id)?.size, `events of ${id}`).toBe(1);
  expect([...ids.keys()].sort()).toEqual([...jobIds].sort());
  expect((await w.jobs.listOutstanding(1000)).records).toHaveLength(0);
}

describe('item 2: the job reads exactly the bytes that were validated', () => {
  it('a queued input overwritten before its turn is submitted with its validated bytes; the new upload gets its own job over its own bytes', async () => {
    const w = createWorld();
    const name = 'inputs/reviews.jsonl';
    w.vertex.fail('create', throttled());
    expect(await upload(w, name, GEMINI_LINES)).toMatchObject({ outcome: 'waiting' });
    // Overwritten: the validated generation is gone, a new one with other bytes arrives.
    const newer = GEMINI_LINES.replace('blender', 'toaster');
    w.reader.remove(BUCKET, name, GEN);
    expect(await upload(w, name, newer, { gen: GEN2 })).toMatchObject({ outcome: 'waiting' });
    w.clock.advance(60_000);
    await pollBatchJobs(w.pollDeps);
    const inputs = jobInputs(w);
    expect(inputs.map((i) => i.jobId)).toEqual([jobIdOf(name), jobIdOf(name, GEN2)]);
    expect(inputs[0]).toEqual({
      jobId: jobIdOf(name),
      uri: `${OUT}/${jobIdOf(name)}/input.jsonl`,
      bytes: GEMINI_LINES,
    });
    expect(inputs[1]?.bytes).toBe(newer);
    await settle(w);
    await expectOneEventEach(w, [jobIdOf(name), jobIdOf(name, GEN2)]);
  });

  it('a generation replaced between validation and the copy ends in one input.rejected INPUT.NOT_FOUND saying so', async () => {
    const w = createWorld();
    const name = 'inputs/gone.jsonl';
    const read = w.reader.read.bind(w.reader);
    w.reader.read = async function* (bucket, object, generation) {
      yield* read(bucket, object, generation);
      w.reader.remove(bucket, object, generation); // overwritten right after it was read
    };
    expect(await upload(w, name, GEMINI_LINES)).toMatchObject({
      outcome: 'rejected',
      code: 'INPUT.NOT_FOUND',
    });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]?.error?.message).toMatch(/replaced by a newer upload or deleted/);
  });
});

/** Vertex answers 429 to every create for a model in a location; returns the ids it was asked for. */
function throttle(w: World, model: string, location: string): string[] {
  const asked: string[] = [];
  const create = w.vertex.create.bind(w.vertex);
  w.vertex.create = async (loc, request) => {
    asked.push(request.displayName);
    if (loc === location && request.model.endsWith(`/${model}`)) throw throttled();
    return create(loc, request);
  };
  return asked;
}

describe('item 3: one queue per (model, location)', () => {
  const pro = { model: 'gemini-2.5-pro', location: 'europe-west4' };

  it('a 429 for gemini-2.5-pro in europe-west4 never holds back other models or regions', async () => {
    const w = createWorld();
    throttle(w, 'gemini-2.5-pro', 'europe-west4');
    expect(await upload(w, 'inputs/pro-1.jsonl', GEMINI_LINES, { metadata: pro })).toMatchObject({
      outcome: 'waiting',
    });
    // The same queue waits behind it; every other queue goes straight through.
    expect(await upload(w, 'inputs/pro-2.jsonl', GEMINI_LINES, { metadata: pro })).toMatchObject({
      outcome: 'waiting',
    });
    expect(await upload(w, 'inputs/flash.jsonl', GEMINI_LINES)).toMatchObject({
      outcome: 'submitted',
    });
    expect(
      await upload(w, 'inputs/pro-us.jsonl', GEMINI_LINES, {
        metadata: { model: 'gemini-2.5-pro' },
      }),
    ).toMatchObject({ outcome: 'submitted' });
    // Another queue's waiting input is submitted by the poller while pro keeps being throttled.
    w.vertex.fail('create', throttled());
    expect(
      await upload(w, 'inputs/lite.jsonl', GEMINI_LINES, {
        metadata: { model: 'gemini-2.5-flash-lite' },
      }),
    ).toMatchObject({ outcome: 'waiting' });
    w.clock.advance(35_000);
    await pollBatchJobs(w.pollDeps);
    const created = w.vertex.creates.map((c) => c.request.displayName);
    expect(created).toContain(jobIdOf('inputs/lite.jsonl'));
    expect(created).not.toContain(jobIdOf('inputs/pro-1.jsonl'));
    expect(created).not.toContain(jobIdOf('inputs/pro-2.jsonl'));
  });

  it('crash recovery never waits behind a blocked queue', async () => {
    const w = createWorld();
    const asked = throttle(w, 'gemini-2.5-pro', 'europe-west4');
    await upload(w, 'inputs/pro-1.jsonl', GEMINI_LINES, { metadata: pro });
    // A submission of the same queue whose function died after its claim (nothing released).
    const id = jobIdOf('inputs/pro-crashed.jsonl');
    w.reader.put(BUCKET, 'inputs/pro-crashed.jsonl', GEN, GEMINI_LINES);
    await w.jobs.createIfAbsent({
      ...(await w.jobs.get(jobIdOf('inputs/pro-1.jsonl')))!,
      jobId: id,
      object: 'inputs/pro-crashed.jsonl',
      inputUri: `gs://${BUCKET}/inputs/pro-crashed.jsonl`,
      outputUriPrefix: `${OUT}/${id}/`,
      status: 'SUBMITTING',
      requestCount: null,
      waitingSince: null,
      nextAttemptAt: null,
      lease: { owner: 'dead', until: w.clock().toISOString() },
      createTime: new Date(w.clock().getTime() + 1).toISOString(),
    });
    // pro-1's backoff has not passed: its queue is blocked for this run. The crashed one goes on.
    w.clock.advance((STALE_SUBMITTING_SECONDS + 1) * 1000);
    await w.jobs.update(jobIdOf('inputs/pro-1.jsonl'), (cur) => ({
      ...cur,
      nextAttemptAt: new Date(w.clock().getTime() + 600_000).toISOString(),
    }));
    await pollBatchJobs(w.pollDeps);
    expect(asked).toContain(id);
    expect(asked.filter((a) => a === jobIdOf('inputs/pro-1.jsonl'))).toHaveLength(1);
  });

  it('an input queued longer than MAX_QUEUE_HOURS ends with one input.rejected CAPACITY.EXHAUSTED', async () => {
    const w = createWorld({ MAX_QUEUE_HOURS: '2' });
    w.vertex.fail('create', throttled());
    await upload(w, 'inputs/pro-1.jsonl', GEMINI_LINES, { metadata: pro });
    for (let i = 0; i < 4; i++) {
      w.clock.advance(40 * 60_000);
      w.vertex.fail('create', throttled());
      await pollBatchJobs(w.pollDeps);
    }
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({
      eventType: 'input.rejected',
      error: { code: 'CAPACITY.EXHAUSTED', message: expect.stringContaining('MAX_QUEUE_HOURS') },
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect((await w.jobs.listOutstanding(10)).records).toHaveLength(0);
  });
});

describe('item 4: ANTHROPIC_MAX_CONCURRENT_JOBS holds under a burst', () => {
  const claude = { model: 'claude-3-5-haiku' };

  /** Most Claude jobs not yet terminal, counted as each create lands. */
  function trackRunning(w: World): () => number {
    let peak = 0;
    const create = w.vertex.create.bind(w.vertex);
    w.vertex.create = async (location, request) => {
      const job = await create(location, request);
      const running = [...w.vertex.jobs.values()].filter(
        (j) => j.model?.includes('anthropic') && !/SUCCEEDED|FAILED|CANCELLED/.test(j.state ?? ''),
      ).length;
      peak = Math.max(peak, running);
      return job;
    };
    return () => peak;
  }

  it('10 concurrent deliveries with a cap of 2 make 2 creates; the rest wait and run 2 at a time', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '2' });
    const peak = trackRunning(w);
    const names = Array.from({ length: 10 }, (_, i) => `inputs/claude-${i}.jsonl`);
    for (const n of names) w.reader.put(BUCKET, n, GEN, ANTHROPIC_LINES);
    const outcomes = await Promise.all(
      names.map((name) =>
        handleStorageEvent(finalizeEvent({ name, metadata: claude }), w.submitDeps),
      ),
    );
    expect(w.vertex.calls.create).toBe(2);
    expect(outcomes.filter((o) => o.outcome === 'waiting')).toHaveLength(8);
    await settle(w);
    expect(w.vertex.calls.create).toBe(10);
    expect(peak()).toBe(2);
    await expectOneEventEach(
      w,
      names.map((n) => jobIdOf(n)),
    );
  });

  it('a 6-file burst with the cap at 4 sends no create past the cap', async () => {
    const w = createWorld();
    const peak = trackRunning(w);
    const names = Array.from({ length: 6 }, (_, i) => `inputs/burst-${i}.jsonl`);
    for (const n of names) w.reader.put(BUCKET, n, GEN, ANTHROPIC_LINES);
    await Promise.all(
      names.map((name) =>
        handleStorageEvent(finalizeEvent({ name, metadata: claude }), w.submitDeps),
      ),
    );
    expect(w.vertex.calls.create).toBe(4);
    await settle(w);
    expect(peak()).toBe(4);
    await expectOneEventEach(
      w,
      names.map((n) => jobIdOf(n)),
    );
  });

  it('a slot is freed when the create is refused (400) or throttled (429), so others are not starved', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '1' });
    w.vertex.fail('create', new PermanentError('VERTEX.INVALID_ARGUMENT', 'HTTP 400'));
    expect(await upload(w, 'inputs/c1.jsonl', ANTHROPIC_LINES, { metadata: claude })).toMatchObject(
      { outcome: 'rejected' },
    );
    w.vertex.fail('create', throttled());
    expect(await upload(w, 'inputs/c2.jsonl', ANTHROPIC_LINES, { metadata: claude })).toMatchObject(
      { outcome: 'waiting' },
    );
    w.clock.advance(60_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.creates.map((c) => c.request.displayName)).toContain(
      jobIdOf('inputs/c2.jsonl'),
    );
  });
});

describe('item 5: a transient error in the poller keeps an input in its queue', () => {
  it('goes back to WAITING with its place and a backoff; younger inputs do not overtake it', async () => {
    const w = createWorld();
    w.vertex.fail('create', throttled());
    await upload(w, 'inputs/old.jsonl', GEMINI_LINES);
    await upload(w, 'inputs/young.jsonl', GEMINI_LINES);
    const oldId = jobIdOf('inputs/old.jsonl');
    const before = await w.jobs.get(oldId);
    w.clock.advance(60_000);
    w.vertex.fail('create', new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503', { status: 503 }));
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary.errors).toBe(1);
    const after = await w.jobs.get(oldId);
    expect(after).toMatchObject({ status: 'WAITING', lease: null, createTime: before?.createTime });
    expect(Date.parse(after?.nextAttemptAt ?? '')).toBeGreaterThan(w.clock().getTime());
    expect(w.vertex.creates).toHaveLength(0); // young did not overtake it in that run
    // Once its backoff passed, it goes first.
    w.clock.advance(10 * 60_000);
    await pollBatchJobs(w.pollDeps);
    const order = w.vertex.creates.map((c) => c.request.displayName);
    expect(order).toEqual([oldId, jobIdOf('inputs/young.jsonl')]);
    await settle(w);
    await expectOneEventEach(w, [oldId, jobIdOf('inputs/young.jsonl')]);
  });
});

describe('item 6: one record never fails the others', () => {
  it('a store error while claiming one queued input leaves the run and the other records going', async () => {
    const w = createWorld();
    w.vertex.fail('create', throttled(), throttled());
    await upload(w, 'inputs/a.jsonl', GEMINI_LINES, { metadata: { model: 'gemini-2.5-pro' } });
    await upload(w, 'inputs/b.jsonl', GEMINI_LINES);
    const broken = jobIdOf('inputs/a.jsonl');
    const update = w.jobs.update.bind(w.jobs);
    w.jobs.update = (id, change) =>
      id === broken
        ? Promise.reject(new PermanentError('JOBS.INVALID', 'FAILED_PRECONDITION: nope'))
        : update(id, change);
    w.clock.advance(60_000);
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary).toMatchObject({ errors: 1, submitted: 1 });
    expect(
      w.log.lines.some((l) => l.event === 'poll.submit_failed' && l.severity === 'ERROR'),
    ).toBe(true);
  });
});

describe('item 7: a poll run keeps its deadline', () => {
  it('with Pub/Sub taking 10 s a publish, no new work starts after the budget and the run says truncated', async () => {
    const w = createWorld();
    for (let i = 0; i < 30; i++) await upload(w, `inputs/f${i}.jsonl`, GEMINI_LINES);
    for (const name of w.vertex.jobs.keys())
      w.vertex.setState(name, { state: 'JOB_STATE_SUCCEEDED' });
    const publish = w.publisher.publish.bind(w.publisher);
    w.publisher.publish = async (event) => {
      w.clock.advance(10_000);
      return publish(event);
    };
    const first = await pollBatchJobs({ ...w.pollDeps, options: { budgetMs: 120_000 } });
    expect(first.truncated).toBe(true);
    expect(first.published).toBeLessThan(30);
    // Publishes in flight when the budget ran out may finish: at most one per lane slot more.
    expect(first.published).toBeLessThanOrEqual(12 + 8);
    for (let i = 0; i < 5 && (await w.jobs.listOutstanding(100)).records.length > 0; i++) {
      await pollBatchJobs({ ...w.pollDeps, options: { budgetMs: 120_000 } });
    }
    await expectOneEventEach(
      w,
      Array.from({ length: 30 }, (_, i) => jobIdOf(`inputs/f${i}.jsonl`)),
    );
  });

  it("one region hanging never delays another's announcements; every call is cut at the budget", async () => {
    const w = createWorld();
    await upload(w, 'inputs/eu.jsonl', GEMINI_LINES, { metadata: { location: 'europe-west4' } });
    await upload(w, 'inputs/us.jsonl', GEMINI_LINES);
    for (const name of w.vertex.jobs.keys())
      w.vertex.setState(name, { state: 'JOB_STATE_SUCCEEDED' });
    const hang = new Promise<never>(() => undefined);
    const get = w.vertex.get.bind(w.vertex);
    w.vertex.get = (name) => (name.includes('/europe-west4/') ? hang : get(name));
    const summary = await pollBatchJobs({ ...w.pollDeps, options: { budgetMs: 300 } });
    expect(summary).toMatchObject({ truncated: true, published: 1 });
    expect(w.publisher.events.map((e) => e.jobId)).toEqual([jobIdOf('inputs/us.jsonl')]);
  });
});

describe('item 10: fencing between claim and create', () => {
  /** Makes the next create wait until `release` is called (a frozen instance). */
  function stallNextCreate(w: World): { started: Promise<void>; release: () => void } {
    const create = w.vertex.create.bind(w.vertex);
    let release!: () => void;
    let started!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const startedP = new Promise<void>((r) => (started = r));
    let once = true;
    w.vertex.create = async (location, request) => {
      if (once) {
        once = false;
        started();
        await gate;
      }
      return create(location, request);
    };
    return { started: startedP, release };
  }

  it('a submit that stalled past its lease does not create after another worker took over', async () => {
    const w = createWorld();
    const name = 'inputs/frozen.jsonl';
    const id = jobIdOf(name);
    w.reader.put(BUCKET, name, GEN, GEMINI_LINES);
    // The first delivery validates, then freezes before its fence (its claim runs out).
    const countWaiting = w.jobs.countWaiting.bind(w.jobs);
    let freeze: (() => void) | undefined;
    let frozen!: () => void;
    const isFrozen = new Promise<void>((r) => (frozen = r));
    w.jobs.countWaiting = async (q) => {
      if (!freeze) {
        await new Promise<void>((r) => {
          freeze = r;
          frozen();
        });
      }
      return countWaiting(q);
    };
    const first = handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    await isFrozen;
    w.clock.advance((SUBMIT_LEASE_SECONDS + STALE_SUBMITTING_SECONDS + 1) * 1000);
    await pollBatchJobs(w.pollDeps); // finishes the abandoned submission
    expect(w.vertex.calls.create).toBe(1);
    freeze?.();
    await expect(first).rejects.toMatchObject({ code: 'JOBS.CONFLICT' });
    expect(w.vertex.calls.create).toBe(1);
    expect(await w.jobs.get(id)).toMatchObject({ status: 'SUBMITTED' });
  });

  it("a create that completes after the lease was taken over is cancelled and logged; the holder's job is kept", async () => {
    const w = createWorld();
    const name = 'inputs/slow-create.jsonl';
    const id = jobIdOf(name);
    w.reader.put(BUCKET, name, GEN, GEMINI_LINES);
    const stall = stallNextCreate(w);
    const first = handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    await stall.started;
    w.clock.advance((SUBMIT_LEASE_SECONDS + STALE_SUBMITTING_SECONDS + 1) * 1000);
    await pollBatchJobs(w.pollDeps); // takes over: no job found by label yet, creates its own
    const kept = (await w.jobs.get(id))?.vertexJob;
    expect(kept).toBeTruthy();
    stall.release();
    expect(await first).toMatchObject({ outcome: 'duplicate' });
    const loser = [...w.vertex.jobs.values()].find((j) => j.name !== kept);
    expect(loser?.state).toBe('JOB_STATE_CANCELLING');
    expect(w.log.lines.some((l) => l.event === 'job.duplicate_cancelled')).toBe(true);
    await settle(w);
    await expectOneEventEach(w, [id]);
    expect(w.publisher.events[0]?.vertexJob).toBe(kept);
  });

  it('an instance frozen between its fence and its create sends nothing after its claim ran out (found by the model-based test)', async () => {
    const w = createWorld();
    const name = 'inputs/frozen-at-create.jsonl';
    const id = jobIdOf(name);
    w.reader.put(BUCKET, name, GEN, GEMINI_LINES);
    // The request is built and handed over, then the instance freezes before it goes out.
    const create = w.vertex.create.bind(w.vertex);
    let thaw!: () => void;
    let frozen!: () => void;
    const isFrozen = new Promise<void>((r) => (frozen = r));
    w.vertex.create = async (location, request, options) => {
      w.vertex.create = create;
      frozen();
      await new Promise<void>((r) => (thaw = r));
      return create(location, request, options);
    };
    const first = handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    await isFrozen;
    w.clock.advance((SUBMIT_LEASE_SECONDS + STALE_SUBMITTING_SECONDS + 1) * 1000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.jobs.size).toBe(1);
    thaw();
    await expect(first).rejects.toMatchObject({ code: 'DEADLINE.EXCEEDED' });
    expect(w.vertex.jobs.size).toBe(1); // nothing sent: no second job to cancel, none to miss
    await settle(w);
    await expectOneEventEach(w, [id]);
  });

  it("the holder's sweep cancels a loser's job that appeared before the holder recorded its own", async () => {
    const w = createWorld();
    const name = 'inputs/sweep.jsonl';
    const id = jobIdOf(name);
    w.reader.put(BUCKET, name, GEN, GEMINI_LINES);
    const stall = stallNextCreate(w);
    const first = handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    await stall.started;
    w.clock.advance((SUBMIT_LEASE_SECONDS + STALE_SUBMITTING_SECONDS + 1) * 1000);
    // The holder looks by label (nothing yet), then the loser's create lands, then the holder creates.
    const create = w.vertex.create.bind(w.vertex);
    w.vertex.create = async (location, request) => {
      stall.release();
      await first.catch(() => undefined);
      return create(location, request);
    };
    await pollBatchJobs(w.pollDeps);
    const record = await w.jobs.get(id);
    expect(w.vertex.jobs.size).toBe(2);
    const others = [...w.vertex.jobs.values()].filter((j) => j.name !== record?.vertexJob);
    expect(others.map((j) => j.state)).toEqual(['JOB_STATE_CANCELLING']);
    await settle(w);
    await expectOneEventEach(w, [id]);
  });
});

describe('item 11: an event Pub/Sub refuses never blocks anything', () => {
  it('a 5,000-character model is refused as an input error; every attribute of its event fits Pub/Sub', async () => {
    const w = createWorld();
    const out = await upload(w, 'inputs/long-model.jsonl', GEMINI_LINES, {
      metadata: { model: `gemini-${'é'.repeat(5000)}` },
    });
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.UNKNOWN_MODEL' });
    const event = w.publisher.events[0]!;
    for (const [k, v] of Object.entries(eventAttributes(event))) {
      expect(Buffer.byteLength(k)).toBeLessThanOrEqual(256);
      expect(Buffer.byteLength(v)).toBeLessThanOrEqual(1024);
    }
  });

  it('a permanent publish error is logged at ERROR, acknowledged, and retried by the poller without blocking others', async () => {
    const w = createWorld();
    w.publisher.fail(new PermanentError('EVENTS.INVALID', 'INVALID_ARGUMENT: attribute too long'));
    const out = await upload(w, 'inputs/bad.jsonl', '{"request": 1}\n');
    expect(out).toMatchObject({ outcome: 'rejected' }); // acknowledged: 204, not 500 for a day
    expect(
      w.log.lines.some((l) => l.event === 'event.unpublishable' && l.severity === 'ERROR'),
    ).toBe(true);
    await upload(w, 'inputs/good.jsonl', GEMINI_LINES);
    await settle(w);
    await expectOneEventEach(w, [jobIdOf('inputs/bad.jsonl'), jobIdOf('inputs/good.jsonl')]);
  });
});

describe('item 12: list is never trusted alone', () => {
  /** A world where the first delivery's create made a job but its answer was lost. */
  async function afterLostCreate(): Promise<World> {
    const w = createWorld();
    w.submitDeps.sleep = async () => undefined;
    w.vertex.loseNextCreateAnswer();
    await expect(upload(w, 'inputs/lost.jsonl', GEMINI_LINES)).rejects.toBeInstanceOf(
      TransientError,
    );
    return w;
  }

  it('poll: a refused list falls back to one get per job', async () => {
    const w = createWorld();
    for (let i = 0; i < 5; i++) await upload(w, `inputs/l${i}.jsonl`, GEMINI_LINES);
    for (const name of w.vertex.jobs.keys())
      w.vertex.setState(name, { state: 'JOB_STATE_SUCCEEDED' });
    w.vertex.fail('list', new PermanentError('VERTEX.INVALID_ARGUMENT', 'HTTP 400 bad filter'));
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary).toMatchObject({ published: 5, errors: 0 });
    expect(w.vertex.calls.get).toBe(5);
  });

  it('submit: a failing list is retried a few times before a create whose answer was lost', async () => {
    const w = await afterLostCreate();
    const unavailable = (): TransientError => new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503');
    w.vertex.fail('list', unavailable(), unavailable());
    expect(await upload(w, 'inputs/lost.jsonl', GEMINI_LINES)).toMatchObject({
      outcome: 'submitted',
      recovered: true,
    });
    expect(w.vertex.calls.create).toBe(1);
  });

  it('submit: a list that keeps failing fails the delivery (retried later) and never creates blindly', async () => {
    const w = await afterLostCreate();
    const refused = (): PermanentError => new PermanentError('VERTEX.INVALID_ARGUMENT', 'HTTP 400');
    w.vertex.fail('list', refused(), refused(), refused());
    await expect(upload(w, 'inputs/lost.jsonl', GEMINI_LINES)).rejects.toBeInstanceOf(
      TransientError,
    );
    expect(w.vertex.calls.create).toBe(1);
  });
});

describe('item 14: a 403 reading the input is not a rejection', () => {
  it('is retried (500) and logged at ERROR with the fix; once IAM applies, the input is submitted', async () => {
    const w = createWorld();
    w.reader.failNext(
      new TransientError('STORAGE.PERMISSION_DENIED', 'no permission to read gs://x: grant …', {
        status: 403,
      }),
    );
    await expect(upload(w, 'inputs/iam.jsonl', GEMINI_LINES)).rejects.toMatchObject({
      code: 'STORAGE.PERMISSION_DENIED',
    });
    const line = w.log.lines.find((l) => l.event === 'input.read_denied');
    expect(line).toMatchObject({ severity: 'ERROR' });
    expect(JSON.stringify(line)).toContain('roles/storage.objectViewer');
    expect(w.publisher.events).toHaveLength(0);
    expect(await upload(w, 'inputs/iam.jsonl', GEMINI_LINES)).toMatchObject({
      outcome: 'submitted',
    });
  });
});

describe('item 16: the uploader chooses only what the deployment allows', () => {
  it('a model outside ALLOWED_MODELS is rejected, naming the allowed ones; `*` allows any', async () => {
    const w = createWorld({ ALLOWED_MODELS: 'gemini-2.5-flash' });
    expect(
      await upload(w, 'inputs/pro.jsonl', GEMINI_LINES, { metadata: { model: 'gemini-2.5-pro' } }),
    ).toMatchObject({ outcome: 'rejected', code: 'INPUT.MODEL_NOT_ALLOWED' });
    expect(w.publisher.events[0]?.error?.message).toMatch(/allowed: gemini-2\.5-flash/);
    const any = createWorld({ ALLOWED_MODELS: '*' });
    expect(
      await upload(any, 'inputs/x.jsonl', GEMINI_LINES, {
        metadata: { model: 'publishers/google/models/some-new-model' },
      }),
    ).toMatchObject({ outcome: 'submitted' });
  });

  it('by default the configured model and the documented short list are allowed, any version', async () => {
    const w = createWorld();
    for (const model of ['gemini-2.5-flash', 'claude-3-5-haiku@20241022', 'gemini-2.5-pro']) {
      const lines = model.startsWith('claude') ? ANTHROPIC_LINES : GEMINI_LINES;
      expect(
        await upload(w, `inputs/${model}.jsonl`, lines, { metadata: { model } }),
      ).toMatchObject({ outcome: 'submitted' });
    }
    expect(
      await upload(w, 'inputs/other.jsonl', GEMINI_LINES, {
        metadata: { model: 'publishers/acme/models/expensive' },
      }),
    ).toMatchObject({ outcome: 'rejected', code: 'INPUT.MODEL_NOT_ALLOWED' });
  });

  it('a location outside ALLOWED_LOCATIONS is rejected', async () => {
    const w = createWorld();
    expect(
      await upload(w, 'inputs/far.jsonl', GEMINI_LINES, {
        metadata: { location: 'australia-southeast1' },
      }),
    ).toMatchObject({ outcome: 'rejected', code: 'INPUT.LOCATION_NOT_ALLOWED' });
    const open = createWorld({ ALLOWED_LOCATIONS: '*' });
    expect(
      await upload(open, 'inputs/far.jsonl', GEMINI_LINES, {
        metadata: { location: 'australia-southeast1' },
      }),
    ).toMatchObject({ outcome: 'submitted' });
  });

  it('a fileUri outside the input bucket is rejected with its line number (confused deputy)', async () => {
    const line = (uri: string) =>
      JSON.stringify({
        request: {
          contents: [
            { role: 'user', parts: [{ fileData: { mimeType: 'image/png', fileUri: uri } }] },
          ],
        },
      });
    const w = createWorld();
    const content = `${line(`gs://${BUCKET}/images/a.png`)}\n${line('gs://secrets-bucket/payroll.pdf')}\n`;
    const out = await upload(w, 'inputs/deputy.jsonl', content);
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.FILE_URI_NOT_ALLOWED' });
    expect(w.publisher.events[0]?.error?.message).toMatch(/line 2/);
    expect(w.vertex.calls.create).toBe(0);
    const allowed = createWorld({ ALLOWED_FILE_URI_PREFIXES: 'gs://secrets-bucket/' });
    expect(
      await upload(allowed, 'inputs/deputy.jsonl', line('gs://secrets-bucket/payroll.pdf')),
    ).toMatchObject({
      outcome: 'submitted',
    });
  });
});

describe('holes found by review', () => {
  it('an input queued past MAX_QUEUE_HOURS whose lost create made a job adopts that job instead of being rejected', async () => {
    const w = createWorld({ MAX_QUEUE_HOURS: '2' });
    w.vertex.fail('create', throttled());
    expect(await upload(w, 'inputs/g.jsonl', GEMINI_LINES)).toMatchObject({ outcome: 'waiting' });
    w.clock.advance(119 * 60_000);
    w.vertex.loseNextCreateAnswer(); // the job is made, its answer lost: requeued
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.jobs.size).toBe(1);
    w.clock.advance(2 * 60_000);
    await pollBatchJobs(w.pollDeps);
    expect(await w.jobs.get(jobIdOf('inputs/g.jsonl'))).toMatchObject({ status: 'SUBMITTED' });
    expect(w.publisher.events).toHaveLength(0);
    await settle(w);
    expect(w.publisher.events).toMatchObject([{ eventType: 'job.completed' }]);
  });

  it('a Claude input requeued after a lost create keeps its slot: the cap holds when its job is adopted', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '1' });
    w.vertex.fail('create', throttled());
    await upload(w, 'inputs/c1.jsonl', ANTHROPIC_LINES, {
      metadata: { model: 'claude-3-5-haiku' },
    });
    w.clock.advance(60_000);
    w.vertex.loseNextCreateAnswer();
    await pollBatchJobs(w.pollDeps); // c1's job exists; c1 is WAITING again, holding its slot
    expect(
      await upload(w, 'inputs/c2.jsonl', ANTHROPIC_LINES, {
        metadata: { model: 'claude-3-7-sonnet' },
      }),
    ).toMatchObject({ outcome: 'waiting' });
    w.clock.advance(10 * 60_000);
    await pollBatchJobs(w.pollDeps); // c1 adopted; c2 still waits for the slot
    const live = [...w.vertex.jobs.values()].filter((j) => !/SUCCEEDED|CANCEL/.test(j.state ?? ''));
    expect(live).toHaveLength(1);
    await settle(w);
    await expectOneEventEach(w, [jobIdOf('inputs/c1.jsonl'), jobIdOf('inputs/c2.jsonl')]);
  });

  it('one model spelled differently is one queue', async () => {
    const w = createWorld();
    const asked = throttle(w, 'claude-3-5-haiku', 'us-east5');
    await upload(w, 'inputs/old.jsonl', ANTHROPIC_LINES, {
      metadata: { model: 'claude-3-5-haiku' },
    });
    for (const model of [
      'claude-3-5-haiku@20241022',
      'projects/demo-project/locations/us-east5/publishers/anthropic/models/claude-3-5-haiku',
    ]) {
      const name = `inputs/${model.length}.jsonl`;
      expect(await upload(w, name, ANTHROPIC_LINES, { metadata: { model } })).toMatchObject({
        outcome: 'waiting',
        reason: expect.stringContaining('older inputs'),
      });
    }
    expect(asked).toHaveLength(1);
  });

  it('a model naming another region than the input runs in is refused', async () => {
    const w = createWorld();
    expect(
      await upload(w, 'inputs/region.jsonl', GEMINI_LINES, {
        metadata: {
          model:
            'projects/demo-project/locations/asia-northeast1/publishers/google/models/gemini-2.5-flash',
          location: 'us-central1',
        },
      }),
    ).toMatchObject({ outcome: 'rejected', code: 'INPUT.INVALID_LOCATION' });
    expect(w.publisher.events[0]?.error?.message).toMatch(/names region asia-northeast1/);
  });

  it('overlapping poll runs keep a queue in order: a run that cannot claim the head does not submit the next', async () => {
    const w = createWorld({ ANTHROPIC_MAX_CONCURRENT_JOBS: '1' });
    const claude = { model: 'claude-3-5-haiku' };
    w.vertex.fail('create', throttled());
    await upload(w, 'inputs/old.jsonl', ANTHROPIC_LINES, { metadata: claude });
    await upload(w, 'inputs/young.jsonl', ANTHROPIC_LINES, { metadata: claude });
    w.clock.advance(60_000);
    // The first run's slot reservation is slow: the second run finds the head claimed.
    const reserve = w.jobs.reserveSlot.bind(w.jobs);
    let first = true;
    w.jobs.reserveSlot = async (pool, id, cap) => {
      if (first) {
        first = false;
        await new Promise((r) => setTimeout(r, 30));
      }
      return reserve(pool, id, cap);
    };
    await Promise.all([pollBatchJobs(w.pollDeps), pollBatchJobs(w.pollDeps)]);
    expect(w.vertex.creates.map((c) => c.request.displayName)).toEqual([
      jobIdOf('inputs/old.jsonl'),
    ]);
  });
});
