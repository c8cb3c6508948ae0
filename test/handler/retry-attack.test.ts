/**
 * Attacks on retrying failed rows (README "Failed rows"): crash points and outcomes the main
 * retry tests do not cover. Each test names the bug it found (fixed since) or the promise that held.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { retryJobId } from '../../shared/app/settle.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { crashAtTransition } from '../crash.js';
import { endJobs, line, results, submitted, type World } from '../retry-world.js';

/** Polls `n` times, ending jobs as they come; crashes of a run are swallowed (the run died). */
async function polls(w: World, n: number, end = true): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (end) await endJobs(w);
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps).catch(() => undefined);
  }
}

const INPUT = [line('one [ok]'), line('two [quota]'), line('three [bad]'), line('four [lost]')];

describe('retry attacks: crash points the matrix does not cover', () => {
  // BUG: the retry record is created before the input records toRetrying. If the run dies between
  // the two and the input crosses MAX_JOB_AGE_HOURS before the next claim, the next digest has no
  // retry target, ignores attempt-1/summary.json (recordedDigest looks only at the job prefix),
  // digests again and announces one attempt, while the already created retry record is still
  // submitted (a second Vertex job nobody waits for) and then stays outstanding for ever
  // (settleRetry: toAttemptDone finds no RETRYING input, the input's attempts do not name it).
  it('crash between the retry record and toRetrying, then past MAX_JOB_AGE_HOURS: no orphaned retry', async () => {
    const { w, jobId } = await submitted(INPUT, { MAX_JOB_AGE_HOURS: '1' });
    crashAtTransition(w, 'toRetrying', 'before');
    await polls(w, 1);
    expect(w.jobs.all().map((r) => r.jobId)).toContain(retryJobId(jobId, 2));
    w.clock.advance(2 * 3600_000);
    await polls(w, 8);
    expect(w.publisher.events).toHaveLength(1);
    const outstanding = w.jobs
      .all()
      .filter((r) => r.outstanding)
      .map((r) => r.jobId);
    expect(outstanding).toEqual([]);
    expect(w.publisher.events[0]!.attempts).toHaveLength(w.vertex.jobs.size);
  });

  // Same orphan without any age limit: the retry record exists, toRetrying never applied, and the
  // input's digest then gives up (MAX_DIGEST_ATTEMPTS) — held: recordedDigest finds attempt-1's
  // summary with its retry, so the input waits for the retry it created.
  it('crash before toRetrying, then the digest count runs out: the recorded digest still starts the retry', async () => {
    const { w, jobId } = await submitted(INPUT);
    crashAtTransition(w, 'toRetrying', 'before');
    await polls(w, 1);
    const input = w.jobs.all().find((r) => r.jobId === jobId)!;
    expect(input.status).toBe('COMPLETED');
    await polls(w, 12);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.attempts).toHaveLength(2);
    expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
  });
});

describe('retry attacks: the event when the merge gives up', () => {
  // BUG: finalStateOf with attempts > 1 and no merged rows (the merge gave up after
  // MAX_DIGEST_ATTEMPTS) falls back to the last attempt's state and maps JOB_STATE_SUCCEEDED to
  // JOB_STATE_FAILED: an input whose first job partly succeeded and whose retry fully succeeded
  // is announced FAILED.
  it('merge gives up: an input whose attempts all had successes is not announced FAILED', async () => {
    const { w, prefix } = await submitted([line('a [ok]'), line('b [quota]')]);
    const real = w.reports.writeStream.bind(w.reports);
    w.reports.writeStream = async (uri, chunks, type) => {
      if (uri === `${prefix}results.jsonl`) throw new TransientError('STORAGE.UNAVAILABLE', 'down');
      return real(uri, chunks, type);
    };
    await polls(w, 14);
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    expect(event.results).toBeNull();
    expect(event.attempts.map((a) => a.state)).toEqual([
      'JOB_STATE_PARTIALLY_SUCCEEDED',
      'JOB_STATE_SUCCEEDED',
    ]);
    expect(event.state).not.toBe('JOB_STATE_FAILED');
  });
});

describe('retry attacks: a retry that never ran', () => {
  it("refused by Vertex at create: handed over, one event with the first attempt's rows", async () => {
    const { w, jobId, prefix } = await submitted(INPUT);
    w.vertex.fail(
      'create',
      new PermanentError('VERTEX.INVALID_ARGUMENT', 'refused', { status: 400 }),
    );
    await polls(w, 8);
    expect(w.vertex.jobs.size).toBe(1);
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    expect(event.attempts.map((a) => [a.vertexJob === null, a.state])).toEqual([
      [false, 'JOB_STATE_PARTIALLY_SUCCEEDED'],
      [true, 'INPUT_REJECTED'],
    ]);
    expect(event.results?.rows).toEqual({ succeeded: 1, failed: 2, missing: 1 });
    expect(results(w, prefix).map((r) => r.status)).toEqual([
      'succeeded',
      'failed',
      'failed',
      'failed',
    ]);
    expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
    expect(w.jobs.all().find((r) => r.jobId === retryJobId(jobId, 2))?.status).toBe(
      'SUBMIT_FAILED',
    );
  });

  it('rejected by the queue timeout (MAX_QUEUE_HOURS): handed over, one event', async () => {
    const { w, jobId } = await submitted(INPUT, { MAX_QUEUE_HOURS: '1', MAX_JOB_AGE_HOURS: '0' });
    // Every create of the retry is throttled (429): it waits in the queue.
    const throttle = () =>
      w.vertex.fail(
        'create',
        ...Array.from({ length: 50 }, () => new TransientError('VERTEX.RESOURCE_EXHAUSTED', '429')),
      );
    throttle();
    await polls(w, 3);
    const retry = w.jobs.all().find((r) => r.jobId === retryJobId(jobId, 2));
    expect(retry?.status).toBe('WAITING');
    w.clock.advance(2 * 3600_000);
    await polls(w, 6);
    expect(w.vertex.jobs.size).toBe(1);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.attempts).toHaveLength(2);
    expect(w.publisher.events[0]!.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
  });
});

describe('retry attacks: the files', () => {
  it('CRLF input: failed.jsonl and the retry file hold the input lines, LF-ended like a single attempt', async () => {
    const { w, prefix } = await submitted(INPUT, {}, '\r\n');
    await polls(w, 10);
    expect(w.publisher.events).toHaveLength(1);
    // As the single-attempt digest does: the line's bytes without its CR, then LF.
    expect(w.reports.objects.get(`${prefix}attempt-2/input.jsonl`)).toBe(
      `${INPUT[1]}\n${INPUT[3]}\n`,
    );
    expect(w.reports.objects.get(`${prefix}failed.jsonl`)).toBe(`${INPUT[2]}\n`);
    expect(results(w, prefix).map((r) => [r.line, r.status])).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
      [3, 'failed'],
      [4, 'succeeded'],
    ]);
  });

  it('identical transient requests: each keeps its own line and the counts agree', async () => {
    const same = line('dup [quota]');
    const { w, prefix } = await submitted([same, line('x [bad]'), same, same]);
    await polls(w, 10);
    const event = w.publisher.events[0]!;
    expect(w.publisher.events).toHaveLength(1);
    expect(results(w, prefix).map((r) => [r.line, r.status])).toEqual([
      [1, 'succeeded'],
      [2, 'failed'],
      [3, 'succeeded'],
      [4, 'succeeded'],
    ]);
    expect(event.results?.rows).toEqual({ succeeded: 3, failed: 1, missing: 0 });
    expect(event.stats).toEqual({ successfulCount: 3, failedCount: 4, incompleteCount: 0 });
  });
});
