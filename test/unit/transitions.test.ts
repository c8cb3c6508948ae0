/**
 * The record's transitions, as a table: each change applies only from the states its guard allows
 * and declines (undefined: nothing is written) everywhere else.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord, JobStatus } from '../../shared/core/jobs.js';
import type { RecordChange } from '../../shared/ports.js';
import {
  claim,
  claimAnnouncement,
  DIGEST_LEASE_SECONDS,
  leaseFor,
  MAX_DIGEST_ATTEMPTS,
  markAnnounced,
  release,
  SUBMIT_LEASE_SECONDS,
  toCancelRequested,
  toCompleted,
  toCreating,
  toDigested,
  toRejected,
  toStateSeen,
  toSubmitted,
  toWaiting,
  waitBackoffSeconds,
} from '../../shared/core/transitions.js';
import { submittingRecord } from '../records.js';

const NOW = new Date('2026-11-26T12:00:00.000Z');
const EARLIER = new Date(NOW.getTime() - 3600_000);
const ME = 'me';
const LIVE = leaseFor(ME, NOW, 60);
const OTHERS = leaseFor('other', NOW, 60);
const EXPIRED = leaseFor('other', EARLIER, 60);

const STATUSES: JobStatus[] = [
  'SUBMITTING',
  'WAITING',
  'SUBMITTED',
  'COMPLETED',
  'REJECTED',
  'SUBMIT_FAILED',
];

const rec = (status: JobStatus, over: Partial<JobRecord> = {}): JobRecord =>
  submittingRecord('job-1', { status, ...over });

const JOB = {
  name: 'projects/p/locations/us-central1/batchPredictionJobs/1',
  state: 'JOB_STATE_PENDING',
};

/** A digest as recorded (the event's results, usage and cost come from it). */
const DIGEST: NonNullable<JobRecord['digest']> = {
  results: {
    rows: { succeeded: 2, failed: 1, missing: 0 },
    summaryUri: 'gs://o/x/summary.json',
    resultsUri: 'gs://o/x/results.jsonl',
    failedRowsUri: 'gs://o/x/failed.jsonl',
  },
  usage: { inputTokens: 30, outputTokens: 3, thinkingTokens: 0, cachedTokens: 0 },
  actualUsd: 0.000008,
  pricing: 'vertex-ai-batch-2025-10-01',
  note: null,
};

interface Row {
  name: string;
  change: RecordChange;
  /** Statuses (with this lease and outstanding flag) from which the change applies. */
  from: JobStatus[];
  lease: JobRecord['lease'];
  outstanding?: boolean;
  /** Other fields of the record before the change. */
  record?: Partial<JobRecord>;
  /** What the change must produce where it applies. */
  expect: Partial<JobRecord>;
}

const TABLE: Row[] = [
  {
    name: 'claim from WAITING with a free lease',
    change: claim(ME, NOW, ['WAITING']),
    from: ['WAITING'],
    lease: null,
    expect: { status: 'SUBMITTING', lease: leaseFor(ME, NOW, SUBMIT_LEASE_SECONDS) },
  },
  {
    name: 'claim over an expired lease',
    change: claim(ME, NOW, ['SUBMITTING']),
    from: ['SUBMITTING'],
    lease: EXPIRED,
    expect: { status: 'SUBMITTING', lease: leaseFor(ME, NOW, SUBMIT_LEASE_SECONDS) },
  },
  {
    name: 'claim declines a live lease of another worker',
    change: claim(ME, NOW, ['SUBMITTING', 'WAITING']),
    from: [],
    lease: OTHERS,
    expect: {},
  },
  {
    name: 'release my lease',
    change: release(ME),
    from: STATUSES,
    lease: LIVE,
    expect: { lease: null },
  },
  {
    name: 'release never frees another worker’s lease',
    change: release(ME),
    from: [],
    lease: OTHERS,
    expect: {},
  },
  {
    name: 'the fence before a create: my live lease, renewed, the attempt counted',
    change: toCreating(ME, NOW, 3),
    from: ['SUBMITTING'],
    lease: LIVE,
    expect: { requestCount: 3, createAttempts: 1, lease: leaseFor(ME, NOW, SUBMIT_LEASE_SECONDS) },
  },
  {
    name: 'the fence declines my expired lease',
    change: toCreating(ME, NOW, 3),
    from: [],
    lease: leaseFor(ME, EARLIER, 60),
    expect: {},
  },
  {
    name: 'into the queue, throttled: a backoff and the time it started waiting',
    change: toWaiting(ME, NOW, { requestCount: 3, throttled: true }),
    from: ['SUBMITTING'],
    lease: LIVE,
    expect: {
      status: 'WAITING',
      lease: null,
      waitAttempts: 1,
      nextAttemptAt: new Date(NOW.getTime() + waitBackoffSeconds(0) * 1000).toISOString(),
      waitingSince: NOW.toISOString(),
    },
  },
  {
    name: 'submitted, by the holder',
    change: toSubmitted(ME, NOW, JOB, 3),
    from: ['SUBMITTING'],
    lease: LIVE,
    expect: { status: 'SUBMITTED', vertexJob: JOB.name, lease: null, requestCount: 3 },
  },
  {
    name: 'submitted declines a fenced-off worker',
    change: toSubmitted(ME, NOW, JOB, 3),
    from: [],
    lease: OTHERS,
    expect: {},
  },
  {
    name: 'rejected, by the holder',
    change: toRejected(ME, NOW, 'REJECTED', { code: 'INPUT.EMPTY', message: 'x' }, []),
    from: ['SUBMITTING'],
    lease: LIVE,
    expect: { status: 'REJECTED', error: { code: 'INPUT.EMPTY', message: 'x' }, lease: null },
  },
  {
    name: 'a new Vertex state of a submitted job',
    change: toStateSeen(NOW, null, { ...JOB, state: 'JOB_STATE_RUNNING' }),
    from: ['SUBMITTED'],
    lease: null,
    expect: { vertexState: 'JOB_STATE_RUNNING' },
  },
  {
    name: 'a cancel request, once',
    change: toCancelRequested(NOW),
    from: ['SUBMITTED'],
    lease: null,
    expect: { cancelRequestedAt: NOW.toISOString(), status: 'SUBMITTED' },
  },
  {
    name: 'completed, once',
    change: toCompleted(NOW, {
      vertexState: 'JOB_STATE_SUCCEEDED',
      stats: { successfulCount: 3, failedCount: 0, incompleteCount: 0 },
      error: null,
      outputDirectory: 'gs://o/x/',
      vertexCreateTime: null,
      vertexStartTime: null,
      vertexEndTime: NOW.toISOString(),
    }),
    from: ['SUBMITTED'],
    lease: null,
    expect: { status: 'COMPLETED', vertexState: 'JOB_STATE_SUCCEEDED' },
  },
  {
    name: 'claim to announce an outcome (a digested job, or a rejection)',
    change: claimAnnouncement(ME, NOW),
    from: ['COMPLETED', 'REJECTED', 'SUBMIT_FAILED'],
    lease: null,
    record: { digest: DIGEST },
    expect: { lease: leaseFor(ME, NOW, 60), digestAttempts: 0 },
  },
  {
    name: 'the digest is recorded by the holder of the claim, once',
    change: toDigested(ME, NOW, DIGEST),
    from: ['COMPLETED'],
    lease: leaseFor(ME, NOW, DIGEST_LEASE_SECONDS),
    expect: { digest: DIGEST, lease: leaseFor(ME, NOW, 60) },
  },
  {
    name: 'the digest is not recorded by a worker whose claim was taken over',
    change: toDigested(ME, NOW, DIGEST),
    from: [],
    lease: OTHERS,
    expect: {},
  },
  {
    name: 'announced: leaves the outstanding list',
    change: markAnnounced(NOW, 'e1', NOW.toISOString()),
    from: STATUSES,
    lease: LIVE,
    expect: { outstanding: false, eventId: 'e1', lease: null },
  },
  {
    name: 'announced declines a record already announced',
    change: markAnnounced(NOW, 'e1', NOW.toISOString()),
    from: [],
    lease: null,
    outstanding: false,
    expect: {},
  },
];

describe('transitions', () => {
  for (const row of TABLE) {
    describe(row.name, () => {
      it.each(STATUSES)('from %s', (status) => {
        const before = rec(status, {
          lease: row.lease,
          outstanding: row.outstanding ?? true,
          ...row.record,
        });
        const snapshot = structuredClone(before);
        const after = row.change(before);
        expect(before).toEqual(snapshot); // pure: the input is never changed
        if (!row.from.includes(status)) {
          expect(after).toBeUndefined();
          return;
        }
        expect(after).toMatchObject(row.expect);
        expect(after?.jobId).toBe(before.jobId);
      });
    });
  }

  it('a finished job not yet digested is claimed long enough to digest, and the attempt counted', () => {
    const claimed = claimAnnouncement(ME, NOW)(rec('COMPLETED', { digestAttempts: 1 }));
    expect(claimed).toMatchObject({
      lease: leaseFor(ME, NOW, DIGEST_LEASE_SECONDS),
      digestAttempts: 2,
    });
    // A rejection has nothing to digest: a short claim, nothing counted.
    expect(claimAnnouncement(ME, NOW)(rec('REJECTED'))).toMatchObject({
      lease: leaseFor(ME, NOW, 60),
      digestAttempts: 0,
    });
    expect(MAX_DIGEST_ATTEMPTS).toBeGreaterThan(1);
  });

  it('a digest is recorded only once: a second one declines', () => {
    const held = rec('COMPLETED', { lease: leaseFor(ME, NOW, DIGEST_LEASE_SECONDS) });
    const once = toDigested(ME, NOW, DIGEST)(held)!;
    expect(toDigested(ME, NOW, { ...DIGEST, note: 'again' })({ ...once, lease: held.lease })).toBe(
      undefined,
    );
  });

  it('a cancel is requested once only', () => {
    const once = toCancelRequested(NOW)(rec('SUBMITTED'));
    expect(once).toBeDefined();
    expect(toCancelRequested(NOW)(once!)).toBeUndefined();
  });

  it('waiting keeps the time it first started waiting', () => {
    const first = toWaiting(ME, EARLIER, { requestCount: 3, throttled: false })(
      rec('SUBMITTING', { lease: leaseFor(ME, EARLIER, 60) }),
    )!;
    const again = toWaiting(ME, NOW, { requestCount: null, throttled: true })({
      ...first,
      status: 'SUBMITTING',
      lease: LIVE,
    })!;
    expect(again.waitingSince).toBe(EARLIER.toISOString());
    expect(again.requestCount).toBe(3);
  });

  it('backs off 30 s doubling to 30 min', () => {
    expect([0, 1, 2, 5, 6, 20].map(waitBackoffSeconds)).toEqual([30, 60, 120, 960, 1800, 1800]);
  });
});
