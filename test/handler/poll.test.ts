import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { TransientError } from '../../shared/core/errors.js';
import { CompletionEventSchema, eventAttributes } from '../../shared/core/events.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import { createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';

/** A world with `n` submitted jobs; returns their Vertex names in order. */
async function submitted(n: number, overrides: Record<string, string> = {}) {
  const w = createWorld(overrides);
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `inputs/file-${i}.jsonl`;
    w.reader.put(BUCKET, name, GEN, GEMINI_LINES);
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
    names.push(out.vertexJob);
    w.clock.advance(1000);
  }
  return { w, names };
}

const FINISHED = {
  startTime: '2026-11-26T10:05:00.000Z',
  endTime: '2026-11-26T10:20:00.000Z',
};

describe('pollBatchJobs handler', () => {
  it.each([
    [
      'JOB_STATE_SUCCEEDED',
      { successfulCount: '412' },
      undefined,
      { successfulCount: 412, failedCount: 0, incompleteCount: 0 },
      null,
    ],
    [
      'JOB_STATE_PARTIALLY_SUCCEEDED',
      { successfulCount: '400', failedCount: '12' },
      undefined,
      { successfulCount: 400, failedCount: 12, incompleteCount: 0 },
      null,
    ],
    [
      'JOB_STATE_FAILED',
      { failedCount: '1', incompleteCount: '-1' },
      { code: 3, message: 'line 7: invalid JSON' },
      { successfulCount: 0, failedCount: 1, incompleteCount: -1 },
      { code: 'INVALID_ARGUMENT', message: 'line 7: invalid JSON' },
    ],
    [
      'JOB_STATE_CANCELLED',
      undefined,
      { code: 1, message: 'cancelled by user' },
      { successfulCount: 0, failedCount: 0, incompleteCount: 0 },
      { code: 'CANCELLED', message: 'cancelled by user' },
    ],
    [
      'JOB_STATE_EXPIRED',
      undefined,
      undefined,
      { successfulCount: 0, failedCount: 0, incompleteCount: 0 },
      null,
    ],
  ])(
    '%s → exactly one job.completed event with the right fields',
    async (state, completionStats, error, stats, eventError) => {
      const { w, names } = await submitted(1);
      const name = names[0]!;
      const dir = `gs://acme-batch-output/results/x/prediction-model-2026-11-26T10:00:00.000Z`;
      w.vertex.setState(name, {
        state,
        ...(completionStats ? { completionStats } : {}),
        ...(error ? { error } : {}),
        outputInfo: { gcsOutputDirectory: dir },
        ...FINISHED,
      });
      const summary = await pollBatchJobs(w.pollDeps);
      expect(summary).toEqual({
        checked: 1,
        changed: 1,
        completed: 1,
        published: 1,
        submitted: 0,
        errors: 0,
        truncated: false,
        waiting: 0,
        oldestWaitingSeconds: 0,
      });
      expect(w.publisher.events).toHaveLength(1);
      const event = w.publisher.events[0]!;
      expect(CompletionEventSchema.parse(event)).toEqual(event);
      const jobId = deriveJobId(BUCKET, 'inputs/file-0.jsonl', GEN);
      expect(event).toMatchObject({
        schemaVersion: 1,
        eventType: 'job.completed',
        jobId,
        state,
        model: 'publishers/google/models/gemini-2.5-flash',
        input: {
          bucket: BUCKET,
          name: 'inputs/file-0.jsonl',
          generation: GEN,
          uri: `gs://${BUCKET}/inputs/file-0.jsonl`,
          requestCount: 3,
        },
        vertexJob: name,
        output: { uriPrefix: `gs://acme-batch-output/results/${jobId}/`, directory: dir },
        stats,
        error: eventError,
        startTime: FINISHED.startTime,
        endTime: FINISHED.endTime,
      });
      expect(eventAttributes(event)).toEqual({
        eventType: 'job.completed',
        state,
        jobId,
        model: event.model,
        schemaVersion: '1',
      });
      expect(await w.jobs.get(jobId)).toMatchObject({
        status: 'COMPLETED',
        outstanding: false,
        vertexState: state,
        eventId: event.eventId,
      });

      // A second poll finds nothing to do.
      const again = await pollBatchJobs(w.pollDeps);
      expect(again).toMatchObject({ checked: 0, published: 0 });
      expect(w.publisher.events).toHaveLength(1);
    },
  );

  it.each([
    'JOB_STATE_QUEUED',
    'JOB_STATE_PENDING',
    'JOB_STATE_RUNNING',
    'JOB_STATE_PAUSED',
    'JOB_STATE_UPDATING',
    'JOB_STATE_CANCELLING',
    'JOB_STATE_UNSPECIFIED',
  ])('%s is outstanding: no event, the state is recorded', async (state) => {
    const { w, names } = await submitted(1);
    w.vertex.setState(names[0]!, { state });
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary.published).toBe(0);
    expect(w.publisher.events).toHaveLength(0);
    const [record] = w.jobs.all();
    expect(record).toMatchObject({ status: 'SUBMITTED', vertexState: state, outstanding: true });
    expect(summary.changed).toBe(state === 'JOB_STATE_PENDING' ? 0 : 1);
  });

  it('records RUNNING with its start time, then announces SUCCEEDED', async () => {
    const { w, names } = await submitted(1);
    w.vertex.setState(names[0]!, { state: 'JOB_STATE_RUNNING', startTime: FINISHED.startTime });
    await pollBatchJobs(w.pollDeps);
    expect(w.jobs.all()[0]).toMatchObject({
      vertexState: 'JOB_STATE_RUNNING',
      vertexStartTime: FINISHED.startTime,
    });
    w.vertex.setState(names[0]!, {
      state: 'JOB_STATE_SUCCEEDED',
      completionStats: { successfulCount: '3' },
      endTime: FINISHED.endTime,
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events[0]).toMatchObject({
      startTime: FINISHED.startTime,
      stats: { successfulCount: 3 },
    });
  });

  it('5 concurrent polls over the same finished jobs publish one event each', async () => {
    const { w, names } = await submitted(4);
    for (const n of names)
      w.vertex.setState(n, {
        state: 'JOB_STATE_SUCCEEDED',
        completionStats: { successfulCount: '3' },
      });
    const summaries = await Promise.all(Array.from({ length: 5 }, () => pollBatchJobs(w.pollDeps)));
    expect(w.publisher.events).toHaveLength(4);
    expect(new Set(w.publisher.events.map((e) => e.jobId)).size).toBe(4);
    expect(summaries.reduce((s, x) => s + x.published, 0)).toBe(4);
    expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
  });

  it('a publish failure leaves the job due; the next poll publishes it with the same eventId', async () => {
    const { w, names } = await submitted(1);
    w.vertex.setState(names[0]!, { state: 'JOB_STATE_SUCCEEDED' });
    w.publisher.fail(new TransientError('EVENTS.UNAVAILABLE', 'Pub/Sub unavailable'));
    const first = await pollBatchJobs(w.pollDeps);
    expect(first).toMatchObject({ completed: 1, published: 0, errors: 1 });
    expect(w.jobs.all()[0]).toMatchObject({ status: 'COMPLETED', outstanding: true, lease: null });
    const second = await pollBatchJobs(w.pollDeps);
    expect(second).toMatchObject({ checked: 1, completed: 0, published: 1, errors: 0 });
    expect(w.publisher.events).toHaveLength(1);
    expect(w.jobs.all()[0]).toMatchObject({ outstanding: false });
  });

  it('a crash between publish and mark republishes with the same eventId after the claim expires', async () => {
    const { w, names } = await submitted(1);
    w.vertex.setState(names[0]!, { state: 'JOB_STATE_SUCCEEDED' });
    // The mark fails like a crash would: the store refuses the write after the publish.
    const realUpdate = w.jobs.update.bind(w.jobs);
    let updates = 0;
    w.jobs.update = async (id, change) => {
      const out = await realUpdate(id, (cur) => {
        const next = change(cur);
        if (next && !next.outstanding && cur.outstanding) {
          updates++;
          throw new TransientError('JOBS.UNAVAILABLE', 'crash before mark');
        }
        return next;
      });
      return out;
    };
    const first = await pollBatchJobs(w.pollDeps);
    expect(first).toMatchObject({ errors: 1 });
    expect(updates).toBe(1);
    w.jobs.update = realUpdate;
    // Within the claim, nobody republishes.
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(2);
    expect(w.publisher.events[0]!.eventId).toBe(w.publisher.events[1]!.eventId);
    expect(w.jobs.all()[0]).toMatchObject({ outstanding: false });
  });

  it('a job Vertex no longer knows (404) ends FAILED with a clear error, announced', async () => {
    const { w, names } = await submitted(1);
    w.vertex.jobs.delete(names[0]!);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({
      state: 'JOB_STATE_FAILED',
      error: { code: 'NOT_FOUND', message: expect.stringContaining('no longer knows') },
    });
  });

  it("one job's Vertex error does not stop the others", async () => {
    const { w, names } = await submitted(2);
    for (const n of names) w.vertex.setState(n, { state: 'JOB_STATE_SUCCEEDED' });
    w.vertex.fail('get', new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503'));
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary).toMatchObject({ checked: 2, completed: 1, published: 1, errors: 1 });
    expect((await pollBatchJobs(w.pollDeps)).published).toBe(1);
    expect(w.publisher.events).toHaveLength(2);
  });

  it('announces rejections whose publish failed at submit time', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, 'bad\n');
    w.publisher.fail(new TransientError('EVENTS.UNAVAILABLE', 'down'));
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toThrow();
    const summary = await pollBatchJobs(w.pollDeps);
    expect(summary.published).toBe(1);
    expect(w.publisher.events[0]).toMatchObject({
      eventType: 'input.rejected',
      state: 'INPUT_REJECTED',
    });
  });

  it('many jobs in one location are read with filtered list calls, not one get each', async () => {
    const { w, names } = await submitted(100);
    for (const n of names) w.vertex.setState(n, { state: 'JOB_STATE_SUCCEEDED' });
    const summary = await pollBatchJobs({ ...w.pollDeps, options: { pageSize: 50 } });
    expect(summary).toMatchObject({ checked: 100, completed: 100, published: 100, errors: 0 });
    expect(w.vertex.calls.get).toBe(0);
    expect(w.vertex.calls.list).toBe(10); // 2 pages × ceil(50 / 10 ids per list)
  });

  it('stops at its time budget and leaves the rest for the next run', async () => {
    const { w, names } = await submitted(10);
    for (const n of names) w.vertex.setState(n, { state: 'JOB_STATE_SUCCEEDED' });
    // Each store read advances the clock past the budget.
    const list = w.jobs.listOutstanding.bind(w.jobs);
    w.jobs.listOutstanding = async (limit, cursor) => {
      const page = await list(limit, cursor);
      w.clock.advance(5_000);
      return page;
    };
    const summary = await pollBatchJobs({
      ...w.pollDeps,
      options: { pageSize: 4, budgetMs: 4_000 },
    });
    // The page was read, but the budget is spent: nothing new starts, the run says so.
    expect(summary).toMatchObject({ checked: 4, published: 0, errors: 0, truncated: true });
    const rest = await pollBatchJobs({ ...w.pollDeps, options: { pageSize: 100 } });
    expect(rest).toMatchObject({ checked: 10, published: 10, truncated: false });
  });

  it('an unreachable job store fails the run', async () => {
    const { w } = await submitted(1);
    w.jobs.listOutstanding = () =>
      Promise.reject(new TransientError('JOBS.UNAVAILABLE', 'Firestore down'));
    await expect(pollBatchJobs(w.pollDeps)).rejects.toMatchObject({ code: 'JOBS.UNAVAILABLE' });
  });
});
