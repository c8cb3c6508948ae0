/**
 * The Firestore {@link JobStore}. Conditional updates use a `lastUpdateTime` precondition (an
 * optimistic check-and-set) rather than transactions: the change is computed from the document as
 * read and written only if nobody wrote it since; on contention it is read and computed again.
 */
import { FieldPath, type Firestore, type DocumentSnapshot } from '@google-cloud/firestore';
import { TransientError } from '../errors.js';
import type { JobRecord, JobStatus } from '../jobs.js';
import type { JobStore, OutstandingPage } from '../ports.js';
import { decodeCursor, encodeCursor } from './memory-job-store.js';

const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const FAILED_PRECONDITION = 9;
const TRANSIENT_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);
const MAX_ATTEMPTS = 20;

/** Creates a job store over one Firestore collection. */
export function createFirestoreJobStore(db: Firestore, collection: string): JobStore {
  const col = db.collection(collection);
  // Capacity slots live beside the records, in their own collection.
  const slots = db.collection(`${collection}-slots`);
  const wrap = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw mapError(err);
    }
  };

  return {
    createIfAbsent: (record) =>
      wrap(async () => {
        const ref = col.doc(record.jobId);
        try {
          await ref.create(record);
          return { created: true, record };
        } catch (err) {
          if (grpcCode(err) !== ALREADY_EXISTS) throw err;
        }
        const snap = await ref.get();
        return { created: false, record: toRecord(snap) ?? record };
      }),

    get: (jobId) => wrap(async () => toRecord(await col.doc(jobId).get())),

    update: (jobId, change) =>
      wrap(async () => {
        const ref = col.doc(jobId);
        for (let attempt = 1; ; attempt++) {
          const snap = await ref.get();
          const current = toRecord(snap);
          if (!current || !snap.updateTime) return undefined;
          const next = change(current);
          if (!next) return undefined;
          try {
            // Why the precondition: two workers that read the same version cannot both write; the
            // loser re-reads and its change function decides again (e.g. the claim is now taken).
            await ref.update({ ...next }, { lastUpdateTime: snap.updateTime });
            return next;
          } catch (err) {
            if (grpcCode(err) !== FAILED_PRECONDITION || attempt >= MAX_ATTEMPTS) throw err;
            await new Promise((r) =>
              setTimeout(r, Math.min(200, 5 * 2 ** attempt) * Math.random()),
            );
          }
        }
      }),

    countWaiting: (queue) =>
      wrap(async () => {
        // Two equality filters: served by Firestore's automatic single-field indexes.
        const snap = await col
          .where('queue', '==', queue)
          .where('status', '==', 'WAITING')
          .count()
          .get();
        return snap.data().count;
      }),

    reserveSlot: (pool, jobId, capacity) =>
      wrap(() =>
        // Why a transaction: concurrent submissions read the same slots; only one of them may
        // take a free slot, the others see it taken (and the capacity is never exceeded).
        db.runTransaction(async (tx) => {
          const refs = Array.from({ length: capacity }, (_, i) => slots.doc(slotId(pool, i)));
          const snaps = await tx.getAll(...refs);
          const holders = snaps.map((s) => (s.exists ? (s.get('jobId') as string) : undefined));
          if (holders.includes(jobId)) return true;
          const held = holders.filter((h): h is string => h !== undefined);
          const records = held.length > 0 ? await tx.getAll(...held.map((h) => col.doc(h))) : [];
          const active = new Set(
            records
              .filter((r) => r.exists && HOLDING_STATUSES.has(r.get('status') as JobStatus))
              .map((r) => r.id),
          );
          const free = holders.findIndex((h) => h === undefined || !active.has(h));
          const ref = refs[free];
          if (free < 0 || !ref) return false;
          tx.set(ref, { pool, jobId, takenAt: new Date().toISOString() });
          return true;
        }),
      ),

    releaseSlot: (pool, jobId) =>
      wrap(async () => {
        const snap = await slots.where('pool', '==', pool).where('jobId', '==', jobId).get();
        // The precondition: a slot given to another job meanwhile is not freed by mistake.
        await Promise.all(
          snap.docs.map((d) =>
            d.ref.delete({ lastUpdateTime: d.updateTime }).catch((err: unknown) => {
              if (grpcCode(err) !== FAILED_PRECONDITION && grpcCode(err) !== NOT_FOUND) throw err;
            }),
          ),
        );
      }),

    listOutstanding: (limit, cursor) =>
      wrap(async (): Promise<OutstandingPage> => {
        // Served by the composite index (outstanding ASC, createTime ASC) of shared/job-index.ts.
        let query = col
          .where('outstanding', '==', true)
          .orderBy('createTime')
          .orderBy(FieldPath.documentId())
          .limit(limit);
        if (cursor) {
          const [createTime, jobId] = decodeCursor(cursor);
          query = query.startAfter(createTime, jobId);
        }
        const snap = await query.get();
        const records = snap.docs.map((d) => d.data() as JobRecord);
        const last = records[records.length - 1];
        return { records, next: records.length === limit && last ? encodeCursor(last) : undefined };
      }),
  };
}

/** A slot holder whose record is in another status has finished with it (its release was lost). */
const HOLDING_STATUSES: ReadonlySet<JobStatus> = new Set(['SUBMITTING', 'SUBMITTED']);

/** Document id of slot `i` of a pool (ids cannot contain `/`). */
function slotId(pool: string, i: number): string {
  return `${encodeURIComponent(pool)}-${i}`;
}

function toRecord(snap: DocumentSnapshot): JobRecord | undefined {
  return snap.exists ? (snap.data() as JobRecord) : undefined;
}

function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function mapError(err: unknown): unknown {
  const code = grpcCode(err);
  if (code !== undefined && TRANSIENT_CODES.has(code)) {
    return new TransientError('JOBS.UNAVAILABLE', 'Firestore is unavailable', { cause: err });
  }
  return err;
}
