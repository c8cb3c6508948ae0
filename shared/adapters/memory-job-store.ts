/**
 * An in-memory {@link JobStore}: the fake of the handler tests, and the job store of the offline
 * stack on machines without the Firestore emulator. The same contract suite runs against it and
 * against Firestore, so it cannot drift from the real adapter.
 */
import type { JobRecord } from '../jobs.js';
import type { JobStore, OutstandingPage, RecordChange } from '../ports.js';

/** Encodes the position after a record in the `(createTime, jobId)` order. */
export function encodeCursor(record: Pick<JobRecord, 'createTime' | 'jobId'>): string {
  return Buffer.from(JSON.stringify([record.createTime, record.jobId]), 'utf8').toString(
    'base64url',
  );
}

/** Decodes a cursor made by {@link encodeCursor}; throws on anything else. */
export function decodeCursor(cursor: string): [string, string] {
  const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    typeof value[0] !== 'string' ||
    typeof value[1] !== 'string'
  ) {
    throw new Error('invalid cursor');
  }
  return [value[0], value[1]];
}

/** Creates an empty in-memory job store. Records are copied in and out, like a database. */
export function createMemoryJobStore(): JobStore & {
  /** All records (copies), for assertions. */
  all(): JobRecord[];
  clear(): void;
} {
  const docs = new Map<string, JobRecord>();
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
    async count(provider, status) {
      let n = 0;
      for (const d of docs.values()) if (d.provider === provider && d.status === status) n++;
      return n;
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
    all: () => [...docs.values()].map((d) => structuredClone(d)),
    clear: () => docs.clear(),
  };
}

function compare(
  a: Pick<JobRecord, 'createTime' | 'jobId'>,
  b: Pick<JobRecord, 'createTime' | 'jobId'>,
): number {
  if (a.createTime !== b.createTime) return a.createTime < b.createTime ? -1 : 1;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}
