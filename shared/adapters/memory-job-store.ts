/**
 * An in-memory {@link JobStore}: the fake of the handler tests, and the job store of the offline
 * stack on machines without the Firestore emulator. The same contract suite runs against it and
 * against Firestore, so it cannot drift from the real adapter.
 */
import type { JobRecord } from '../core/jobs.js';
import {
  MAX_RECENT_LIMIT,
  type JobStore,
  type OutstandingPage,
  type RecordChange,
} from '../ports.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { holdsCapacity } from '../core/transitions.js';

/** Creates an empty in-memory job store. Records are copied in and out, like a database. */
export function createMemoryJobStore(): JobStore & {
  /** All records (copies), for assertions. */
  all(): JobRecord[];
  clear(): void;
} {
  const docs = new Map<string, JobRecord>();
  const slots = new Map<string, (string | undefined)[]>();
  return {
    async createIfAbsent(record) {
      const existing = docs.get(record.jobId);
      if (existing) return { created: false, record: structuredClone(existing) };
      docs.set(record.jobId, structuredClone(record));
      return { created: true, record: structuredClone(record) };
    },
    async get(jobId) {
      const doc = docs.get(jobId);
      return doc ? structuredClone(doc) : undefined;
    },
    async update(jobId, change: RecordChange) {
      const doc = docs.get(jobId);
      if (!doc) return undefined;
      const next = change(structuredClone(doc));
      if (!next) return undefined;
      docs.set(jobId, structuredClone(next));
      return structuredClone(next);
    },
    async countWaiting(queue) {
      let n = 0;
      for (const d of docs.values()) if (d.queue === queue && d.status === 'WAITING') n++;
      return n;
    },
    async reserveSlot(pool, jobId, capacity) {
      const held = (slots.get(pool) ?? []).slice(0, capacity);
      while (held.length < capacity) held.push(undefined);
      if (held.includes(jobId)) return true;
      // A holder whose record no longer holds capacity lost its release in a crash: free.
      const free = held.findIndex((h) => {
        const holder = h === undefined ? undefined : docs.get(h);
        return holder === undefined || !holdsCapacity(holder);
      });
      if (free < 0) return false;
      held[free] = jobId;
      slots.set(pool, held);
      return true;
    },
    async releaseSlot(pool, jobId) {
      const held = slots.get(pool);
      if (held)
        slots.set(
          pool,
          held.map((h) => (h === jobId ? undefined : h)),
        );
    },
    async listOutstanding(limit, cursor): Promise<OutstandingPage> {
      const after = cursor ? decodeCursor(cursor) : undefined;
      const sorted = [...docs.values()]
        .filter((d) => d.outstanding)
        .sort((a, b) => compare(a, b))
        .filter((d) => !after || compare(d, { createTime: after[0], jobId: after[1] }) > 0);
      const records = sorted.slice(0, limit).map((d) => structuredClone(d));
      const last = records[records.length - 1];
      return { records, next: sorted.length > limit && last ? encodeCursor(last) : undefined };
    },
    async listRecent({ statuses = [], since, limit }) {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RECENT_LIMIT) {
        throw new RangeError(
          `listRecent: limit must be a whole number from 1 to ${MAX_RECENT_LIMIT}`,
        );
      }
      return [...docs.values()]
        .filter((d) => statuses.length === 0 || statuses.includes(d.status))
        .filter((d) => since === undefined || d.createTime >= since)
        .sort((a, b) => compare(b, a))
        .slice(0, limit)
        .map((d) => structuredClone(d));
    },
    all: () => [...docs.values()].map((d) => structuredClone(d)),
    clear: () => {
      docs.clear();
      slots.clear();
    },
  };
}

function compare(
  a: Pick<JobRecord, 'createTime' | 'jobId'>,
  b: Pick<JobRecord, 'createTime' | 'jobId'>,
): number {
  if (a.createTime !== b.createTime) return a.createTime < b.createTime ? -1 : 1;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}
