/**
 * One contract suite for the JobStore port, run against the in-memory store and, where the
 * official Firestore emulator is installed (BATCH_COURIER_EMULATORS=gcloud or auto), against the
 * Firestore adapter over the wire — so the fake cannot drift from the real adapter.
 */
import { randomUUID } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  createFirestoreJobStore,
  firestoreClientConfig,
} from '../../shared/adapters/firestore-job-store.js';
import { createMemoryJobStore } from '../../shared/adapters/memory-job-store.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import type { JobStore } from '../../shared/ports.js';
import { submittingRecord } from '../records.js';

function contract(name: string, makeStore: () => JobStore): void {
  describe(`JobStore contract: ${name}`, () => {
    it('creates a record once; a second create returns the stored one', async () => {
      const store = makeStore();
      const first = await store.createIfAbsent(submittingRecord('a', { requestCount: 1 }));
      expect(first.created).toBe(true);
      const second = await store.createIfAbsent(submittingRecord('a', { requestCount: 2 }));
      expect(second).toEqual({
        created: false,
        record: submittingRecord('a', { requestCount: 1 }),
      });
    });

    it('round-trips every field, including nulls, arrays and nested objects', async () => {
      const store = makeStore();
      const full = submittingRecord('full', {
        status: 'COMPLETED',
        requestCount: 412,
        vertexJob: 'projects/1/locations/us-central1/batchPredictionJobs/2',
        vertexState: 'JOB_STATE_PARTIALLY_SUCCEEDED',
        error: { code: 'INTERNAL', message: 'x' },
        lineErrors: [{ line: 3, message: 'is blank' }],
        stats: { successfulCount: 400, failedCount: 12, incompleteCount: -1 },
        lease: { owner: 'o', until: '2026-11-26T10:01:00.000Z' },
      });
      await store.createIfAbsent(full);
      expect(await store.get('full')).toEqual(full);
      expect(await store.get('absent')).toBeUndefined();
    });

    it('update applies a change, declines without writing, and ignores absent records', async () => {
      const store = makeStore();
      await store.createIfAbsent(submittingRecord('u'));
      const written = await store.update('u', (cur) => ({
        ...cur,
        status: 'SUBMITTED',
        lease: null,
      }));
      expect(written).toMatchObject({ status: 'SUBMITTED' });
      expect(await store.get('u')).toMatchObject({ status: 'SUBMITTED' });
      expect(await store.update('u', () => undefined)).toBeUndefined();
      expect(await store.get('u')).toMatchObject({ status: 'SUBMITTED' });
      expect(await store.update('nope', (cur) => cur)).toBeUndefined();
    });

    it('concurrent updates are atomic: none is lost', async () => {
      const store = makeStore();
      await store.createIfAbsent(submittingRecord('c'));
      await Promise.all(
        Array.from({ length: 5 }, () =>
          store.update('c', (cur) => ({ ...cur, createAttempts: cur.createAttempts + 1 })),
        ),
      );
      expect((await store.get('c'))?.createAttempts).toBe(5);
    });

    it('of concurrent claims exactly one wins', async () => {
      const store = makeStore();
      await store.createIfAbsent(submittingRecord('claim'));
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.update('claim', (cur) =>
            cur.lease === null
              ? { ...cur, lease: { owner: `w${i}`, until: '2030-01-01T00:00:00.000Z' } }
              : undefined,
          ),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('lists outstanding records oldest first, page by page, and only those', async () => {
      const store = makeStore();
      const times = [
        '2026-11-26T10:00:03.000Z',
        '2026-11-26T10:00:01.000Z',
        '2026-11-26T10:00:02.000Z',
      ];
      for (const [i, t] of times.entries()) {
        await store.createIfAbsent(submittingRecord(`o${i}`, { createTime: t }));
        await store.createIfAbsent(submittingRecord(`p${i}`, { createTime: t }));
      }
      await store.createIfAbsent(
        submittingRecord('done', { outstanding: false, createTime: '2026-11-26T09:00:00.000Z' }),
      );
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.listOutstanding(4, cursor);
        expect(page.records.length).toBeLessThanOrEqual(4);
        seen.push(...page.records.map((r) => r.jobId));
        cursor = page.next;
        pages++;
      } while (cursor && pages < 10);
      expect(seen).toEqual(['o1', 'p1', 'o2', 'p2', 'o0', 'p0']);
    });

    it('counts the waiting records of one queue', async () => {
      const store = makeStore();
      const q1 = 'publishers/google/models/gemini-2.5-pro@europe-west4';
      const q2 = 'publishers/google/models/gemini-2.5-flash@us-central1';
      await store.createIfAbsent(submittingRecord('a1', { queue: q1, status: 'WAITING' }));
      await store.createIfAbsent(submittingRecord('a2', { queue: q1, status: 'WAITING' }));
      await store.createIfAbsent(submittingRecord('a3', { queue: q1, status: 'SUBMITTED' }));
      await store.createIfAbsent(submittingRecord('g1', { queue: q2, status: 'SUBMITTED' }));
      expect(await store.countWaiting(q1)).toBe(2);
      expect(await store.countWaiting(q2)).toBe(0);
    });

    it('reserves at most `capacity` slots, even when reservations race', async () => {
      const store = makeStore();
      const ids = ['s1', 's2', 's3', 's4', 's5', 's6'];
      for (const id of ids) await store.createIfAbsent(submittingRecord(id));
      const taken = await Promise.all(ids.map((id) => store.reserveSlot('anthropic', id, 4)));
      expect(taken.filter(Boolean)).toHaveLength(4);
      // A holder asking again keeps its slot; a loser still finds none.
      const holder = ids[taken.indexOf(true)] ?? '';
      const loser = ids[taken.indexOf(false)] ?? '';
      expect(await store.reserveSlot('anthropic', holder, 4)).toBe(true);
      expect(await store.reserveSlot('anthropic', loser, 4)).toBe(false);
      // Another pool is independent.
      expect(await store.reserveSlot('other', loser, 1)).toBe(true);
      // A release frees the slot for the next one; releasing twice is harmless.
      await store.releaseSlot('anthropic', holder);
      await store.releaseSlot('anthropic', holder);
      expect(await store.reserveSlot('anthropic', loser, 4)).toBe(true);
    });

    it('a slot whose holder finished without releasing it counts as free', async () => {
      const store = makeStore();
      await store.createIfAbsent(submittingRecord('h1', { status: 'SUBMITTED' }));
      await store.createIfAbsent(submittingRecord('h2'));
      expect(await store.reserveSlot('anthropic', 'h1', 1)).toBe(true);
      expect(await store.reserveSlot('anthropic', 'h2', 1)).toBe(false);
      await store.update('h1', (cur) => ({ ...cur, status: 'COMPLETED' }));
      expect(await store.reserveSlot('anthropic', 'h2', 1)).toBe(true);
    });

    it('lists recent records newest first, filtered by status and creation time, up to a limit', async () => {
      const store = makeStore();
      const rows: [string, JobRecord['status'], string][] = [
        ['r1', 'COMPLETED', '2026-11-26T10:00:01.000Z'],
        ['r2', 'REJECTED', '2026-11-26T10:00:02.000Z'],
        ['r3', 'SUBMITTED', '2026-11-26T10:00:03.000Z'],
        ['r4', 'COMPLETED', '2026-11-26T10:00:04.000Z'],
        ['r5', 'WAITING', '2026-11-26T10:00:04.000Z'],
        ['r6', 'COMPLETED', '2026-11-26T10:00:06.000Z'],
      ];
      for (const [id, status, createTime] of rows) {
        await store.createIfAbsent(submittingRecord(id, { status, createTime }));
      }
      const ids = (records: JobRecord[]): string[] => records.map((r) => r.jobId);
      // Equal creation times: the larger job id first, so pages are stable.
      expect(ids(await store.listRecent({ limit: 10 }))).toEqual([
        'r6',
        'r5',
        'r4',
        'r3',
        'r2',
        'r1',
      ]);
      expect(ids(await store.listRecent({ limit: 2 }))).toEqual(['r6', 'r5']);
      expect(ids(await store.listRecent({ statuses: ['COMPLETED'], limit: 10 }))).toEqual([
        'r6',
        'r4',
        'r1',
      ]);
      expect(ids(await store.listRecent({ statuses: ['REJECTED', 'WAITING'], limit: 10 }))).toEqual(
        ['r5', 'r2'],
      );
      expect(ids(await store.listRecent({ since: '2026-11-26T10:00:03.000Z', limit: 10 }))).toEqual(
        ['r6', 'r5', 'r4', 'r3'],
      );
      expect(
        ids(
          await store.listRecent({
            statuses: ['COMPLETED'],
            since: '2026-11-26T10:00:02.000Z',
            limit: 1,
          }),
        ),
      ).toEqual(['r6']);
      expect(await store.listRecent({ statuses: ['SUBMIT_FAILED'], limit: 10 })).toEqual([]);
      // Whole records, as stored.
      expect((await store.listRecent({ statuses: ['SUBMITTED'], limit: 1 }))[0]).toEqual(
        submittingRecord('r3', { status: 'SUBMITTED', createTime: '2026-11-26T10:00:03.000Z' }),
      );
    });

    it('refuses a listing limit outside 1..1000', async () => {
      const store = makeStore();
      for (const limit of [0, -1, 1.5, 1001, Number.NaN]) {
        await expect(store.listRecent({ limit }), String(limit)).rejects.toThrow(RangeError);
      }
    });

    it('a record leaves the outstanding list once announced', async () => {
      const store = makeStore();
      await store.createIfAbsent(submittingRecord('x'));
      await store.update('x', (cur) => ({ ...cur, outstanding: false }));
      expect((await store.listOutstanding(10)).records).toEqual([]);
    });
  });
}

contract('in-memory', () => createMemoryJobStore());

const firestoreHost = inject('firestoreEmulatorHost');
if (firestoreHost) {
  process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  // The client settings and deadline of the deployed functions (functions/dependencies.ts).
  const db = new Firestore({ projectId: 'demo-batch-courier', ...firestoreClientConfig() });
  afterAll(async () => {
    await db.terminate();
  });
  contract(`Firestore adapter over the wire (official emulator at ${firestoreHost})`, () =>
    createFirestoreJobStore(db, `jobs-${randomUUID()}`),
  );
}
