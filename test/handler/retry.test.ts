/**
 * Retrying failed rows (README "Failed rows"): rows that failed for a transient reason are sent
 * again as a job of their own, and the input gets one event after its last attempt, with the
 * merged results; crashes at every new step still end in one job per attempt and one event.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { retryJobId } from '../../shared/app/settle.js';
import { isTransientRowError } from '../../shared/core/row-errors.js';
import type { TransitionName } from '../../shared/core/transitions.js';
import { Crash, crashAt, crashAtTransition } from '../crash.js';
import {
  BAD,
  drive,
  endJobs,
  files,
  INTERNAL,
  line,
  QUOTA,
  results,
  submitted,
  type World,
} from '../retry-world.js';
import { requestInputUris } from '../../shared/core/vertex.js';

const INPUT = [
  line('one [ok]'),
  line('two [quota]'),
  line('three [bad]'),
  line('four [lost]'),
  line('five [internal]'),
];

describe('failed rows: which are transient', () => {
  it.each([
    [QUOTA, true],
    [INTERNAL, true],
    [
      'Service Unavailable: {"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}',
      true,
    ],
    [
      'Gateway Timeout: {"error": {"code": 504, "message": "x", "status": "DEADLINE_EXCEEDED"}}',
      true,
    ],
    ['{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', true],
    ['{"type":"error","error":{"type":"rate_limit_error","message":"x"}}', true],
    ['quota exceeded, retry later', true],
    [BAD, false],
    [
      '{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}',
      false,
    ],
    [
      'Bad Request: {"error": {"code": 400, "message": "quota field is invalid", "status": "INVALID_ARGUMENT"}}',
      false,
    ],
    ['the output line has no response and no status', false],
  ])('%s → transient %s', (text, transient) => {
    expect(isTransientRowError(text)).toBe(transient);
  });
});

describe('retrying failed rows', () => {
  it('sends again exactly the transient failures and rows with no output, byte for byte; one event with merged results', async () => {
    const { w, jobId, prefix } = await submitted(INPUT);
    const events = await drive(w);
    expect(events).toHaveLength(1);
    const event = events[0]!;

    // Attempt 2 read exactly lines 2, 4 and 5, as they were.
    const retryFile = w.reports.objects.get(`${prefix}attempt-2/input.jsonl`);
    expect(retryFile).toBe(`${INPUT[1]}\n${INPUT[3]}\n${INPUT[4]}\n`);
    const second = [...w.vertex.jobs.values()].find((j) => j.displayName === retryJobId(jobId, 2));
    expect(second?.request && requestInputUris(second.request)).toEqual([
      `${prefix}attempt-2/input.jsonl`,
    ]);
    expect(second?.request?.labels).toMatchObject({ job_id: retryJobId(jobId, 2) });
    expect(w.vertex.jobs.size).toBe(2);

    // One event, after the last attempt, with each row's final outcome.
    expect(event).toMatchObject({
      eventType: 'job.completed',
      jobId,
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      results: {
        rows: { succeeded: 3, failed: 2, missing: 0 },
        resultsUri: `${prefix}results.jsonl`,
        failedRowsUri: `${prefix}failed.jsonl`,
      },
      usage: { inputTokens: 30, outputTokens: 3 },
      stats: { successfulCount: 3, failedCount: 4, incompleteCount: 0 },
    });
    expect(event.vertexJob).toBe([...w.vertex.jobs.keys()][0]);
    expect(event.attempts).toEqual([
      {
        vertexJob: [...w.vertex.jobs.keys()][0],
        state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
        rows: { succeeded: 1, failed: 4 },
      },
      {
        vertexJob: [...w.vertex.jobs.keys()][1],
        state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
        rows: { succeeded: 2, failed: 1 },
      },
    ]);
    expect(results(w, prefix).map((r) => [r.line, r.status])).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
      [3, 'failed'],
      [4, 'succeeded'],
      [5, 'failed'],
    ]);
    expect(results(w, prefix)[2]?.error).toBe(BAD);
    expect(w.reports.objects.get(`${prefix}failed.jsonl`)).toBe(`${INPUT[2]}\n${INPUT[4]}\n`);
    const summary = JSON.parse(w.reports.objects.get(`${prefix}summary.json`) ?? '{}') as {
      attempts: unknown[];
      results: unknown;
    };
    expect(summary.results).toEqual(event.results);
    expect(summary.attempts).toHaveLength(2);
    // The retry's record left the outstanding list with no event of its own.
    expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
  });

  it("RETRY_FAILED_ROWS=0 keeps one job, one event, the first attempt's files", async () => {
    const { w, prefix } = await submitted(INPUT, { RETRY_FAILED_ROWS: '0' });
    const events = await drive(w);
    expect(w.vertex.jobs.size).toBe(1);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      results: { rows: { succeeded: 1, failed: 3, missing: 1 } },
    });
    expect(events[0]!.attempts).toHaveLength(1);
    expect([...files(w, prefix).keys()].some((k) => k.includes('attempt-'))).toBe(false);
  });

  it('nothing to retry: one job, the files at the job prefix, one attempt', async () => {
    const { w, prefix } = await submitted([line('a [ok]'), line('b [bad]')]);
    const events = await drive(w);
    expect(w.vertex.jobs.size).toBe(1);
    expect(events[0]?.attempts).toHaveLength(1);
    expect(events[0]?.results?.rows).toEqual({ succeeded: 1, failed: 1, missing: 0 });
    expect(w.reports.objects.has(`${prefix}results.jsonl`)).toBe(true);
  });

  it('a second attempt that fails entirely: the rows keep their first failure, one event', async () => {
    const { w, prefix } = await submitted(INPUT);
    const events = await drive(w, [2]);
    expect(w.vertex.jobs.size).toBe(2);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      results: { rows: { succeeded: 1, failed: 3, missing: 1 } },
    });
    expect(events[0]!.attempts.map((a) => a.state)).toEqual([
      'JOB_STATE_PARTIALLY_SUCCEEDED',
      'JOB_STATE_FAILED',
    ]);
    expect(results(w, prefix).map((r) => r.status)).toEqual([
      'succeeded',
      'failed',
      'failed',
      'failed',
      'failed',
    ]);
  });

  it('all rows succeed in the end: the input is announced SUCCEEDED', async () => {
    const { w } = await submitted([line('a [ok]'), line('b [quota]'), line('c [lost]')]);
    const events = await drive(w);
    expect(events[0]).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      results: { rows: { succeeded: 3, failed: 0, missing: 0 }, failedRowsUri: null },
    });
  });

  it('RETRY_FAILED_ROWS=2: a row failing twice is sent a third time, then no more', async () => {
    const { w, jobId, prefix } = await submitted([line('a [ok]'), line('b [internal]')], {
      RETRY_FAILED_ROWS: '2',
    });
    const events = await drive(w);
    expect(w.vertex.jobs.size).toBe(3);
    expect([...w.vertex.jobs.values()].map((j) => j.displayName)).toEqual([
      jobId,
      retryJobId(jobId, 2),
      retryJobId(jobId, 3),
    ]);
    expect(events).toHaveLength(1);
    expect(events[0]!.attempts).toHaveLength(3);
    expect(results(w, prefix)[1]).toMatchObject({ line: 2, status: 'failed', error: INTERNAL });
  });

  it('a job past MAX_JOB_AGE_HOURS is not retried', async () => {
    const { w } = await submitted(INPUT, { MAX_JOB_AGE_HOURS: '1' });
    await endJobs(w);
    w.clock.advance(2 * 3600_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.jobs.size).toBe(1);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.attempts).toHaveLength(1);
  });

  it('a retry id stays a valid id for a long input id', () => {
    const long = `${'x'.repeat(46)}-0123456789abcdef`;
    const id = retryJobId(long, 2);
    expect(id).toMatch(/^[a-z0-9_-]{1,63}$/);
    expect(id.endsWith('-0123456789abcdef-a2')).toBe(true);
  });
});

describe('crash-point matrix: retrying failed rows', () => {
  /** Crashes the first streamed write whose URI passes `match`. */
  const on = (match: (uri: string) => boolean) => (w: World, when: 'before' | 'after') => {
    const real = w.reports.writeStream.bind(w.reports);
    let armed = true;
    w.reports.writeStream = async (uri, chunks, type) => {
      if (!armed || !match(uri)) return real(uri, chunks, type);
      armed = false;
      if (when === 'before') throw new Crash(`crash before writing ${uri}`);
      await real(uri, chunks, type);
      throw new Crash(`crash after writing ${uri}`);
    };
  };
  const transition = (name: TransitionName) => (w: World, when: 'before' | 'after') =>
    crashAtTransition(w, name, when);
  const points: [string, (w: World, when: 'before' | 'after') => void][] = [
    ['writing the retry file', on((u) => u.endsWith('attempt-2/input.jsonl'))],
    ['creating the retry record', (w, when) => crashAt(w.jobs, 'createIfAbsent', 1, when)],
    ['toRetrying', transition('toRetrying')],
    ['the retry digest', on((u) => u.endsWith('attempt-2/results.jsonl'))],
    ['toAttemptDone', transition('toAttemptDone')],
    ['toHandedOver', transition('toHandedOver')],
    [
      'writing the merged results',
      on((u) => u.endsWith('/results.jsonl') && !u.includes('attempt-')),
    ],
    ['toDigested', transition('toDigested')],
  ];
  for (const [point, arm] of points) {
    for (const when of ['before', 'after'] as const) {
      it(`crash ${when} ${point} → one job per attempt, one event, the same final files`, async () => {
        const baseline = await submitted(INPUT);
        await drive(baseline.w);
        const expected = results(baseline.w, baseline.prefix);

        const { w, jobId, prefix } = await submitted(INPUT);
        arm(w, when);
        const before = Crash.thrown;
        const events = await drive(w);
        expect(events).toHaveLength(1);
        expect(new Set(events.map((e) => e.eventId)).size).toBe(1);
        const names = [...w.vertex.jobs.values()].map((j) => j.displayName);
        expect(names.sort()).toEqual([jobId, retryJobId(jobId, 2)].sort());
        expect(results(w, prefix)).toEqual(expected);
        expect(events[0]!.results?.rows).toEqual({ succeeded: 3, failed: 2, missing: 0 });
        expect(w.jobs.all().every((r) => !r.outstanding)).toBe(true);
        expect(Crash.thrown).toBeGreaterThan(before);
      });
    }
  }
});
