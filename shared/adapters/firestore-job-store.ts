/**
 * The Firestore {@link JobStore}. Conditional updates use a `lastUpdateTime` precondition (an
 * optimistic check-and-set) rather than transactions: the change is computed from the document as
 * read and written only if nobody wrote it since; on contention it is read and computed again.
 *
 * Every operation has a deadline (the client's own retries of an unreachable Firestore last 60 s
 * and more), and every failure is classified: TransientError `JOBS.UNAVAILABLE` (retry later),
 * `JOBS.CONFLICT` (contention that outlasted the retries), or PermanentError `JOBS.INVALID` (a
 * request Firestore will always refuse; the message says what to check).
 */
import firestoreModule, {
  FieldPath,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
  type GrpcStatus,
  type Query,
  type Timestamp,
} from '@google-cloud/firestore';
import { BatchCourierError, PermanentError, TransientError } from '../core/errors.js';
import { upgradeRecord, type JobRecord, type JobStatus } from '../core/jobs.js';
import { MAX_RECENT_LIMIT, type JobStore, type OutstandingPage } from '../ports.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { formatSeconds, withTimeLimit } from '../time-limit.js';
import { holdsCapacity } from '../core/transitions.js';

/** How long one job store operation may take by default, retries and contention included. */
export const DEFAULT_FIRESTORE_DEADLINE_MS = 15_000;

/** Conditional writes attempted before contention is reported as `JOBS.CONFLICT`. */
const MAX_ATTEMPTS = 20;
/**
 * Attempts of a slot reservation's transaction before contention (ABORTED) is reported: a burst of
 * submissions contends for the same few slot documents, so more than the client's default 5 (all
 * within the deadline).
 */
const TRANSACTION_ATTEMPTS = 10;

/** Options of {@link createFirestoreJobStore}. */
export interface FirestoreJobStoreOptions {
  /**
   * How long one operation (`update` with its contention loop, a transaction, a query) may take
   * before it rejects with TransientError `JOBS.UNAVAILABLE`. Default
   * {@link DEFAULT_FIRESTORE_DEADLINE_MS}.
   */
  deadlineMs?: number;
}

/** The gRPC status codes, as the Firestore client exports them (loaded on first use). */
function grpcStatus(): typeof GrpcStatus {
  return firestoreModule.GrpcStatus;
}

/**
 * Client settings for `new Firestore({...})` that cut each attempt of the client's streamed reads
 * (document gets, queries, counts) at `deadlineMs` instead of 60-300 s. Only a partial bound: the
 * client retries those attempts itself, and its commits and transactions take their timeouts from
 * its built-in configuration whatever the settings say (60 s per attempt, 600 s in all). The job
 * store's own deadline is what callers can rely on; this only keeps abandoned reads short.
 */
export function firestoreClientConfig(deadlineMs: number = DEFAULT_FIRESTORE_DEADLINE_MS): {
  clientConfig: Record<string, unknown>;
} {
  const bounded = { timeout_millis: deadlineMs, retry_params_name: 'bounded' };
  const methods = [
    'GetDocument',
    'ListDocuments',
    'CreateDocument',
    'UpdateDocument',
    'DeleteDocument',
    'BatchGetDocuments',
    'BeginTransaction',
    'Commit',
    'Rollback',
    'RunQuery',
    'RunAggregationQuery',
    'BatchWrite',
  ];
  return {
    clientConfig: {
      interfaces: {
        'google.firestore.v1.Firestore': {
          retry_params: {
            bounded: {
              initial_retry_delay_millis: 100,
              retry_delay_multiplier: 1.3,
              max_retry_delay_millis: Math.min(5_000, deadlineMs),
              initial_rpc_timeout_millis: deadlineMs,
              rpc_timeout_multiplier: 1,
              max_rpc_timeout_millis: deadlineMs,
              total_timeout_millis: deadlineMs,
            },
          },
          methods: Object.fromEntries(methods.map((m) => [m, bounded])),
        },
      },
    },
  };
}

/** Creates a job store over one Firestore collection. */
export function createFirestoreJobStore(
  db: Firestore,
  collection: string,
  options: FirestoreJobStoreOptions = {},
): JobStore {
  const deadlineMs = options.deadlineMs ?? DEFAULT_FIRESTORE_DEADLINE_MS;
  const col = db.collection(collection);
  // Capacity slots live beside the records, in their own collection.
  const slots = db.collection(`${collection}-slots`);
  const tooLate = (what: string): TransientError =>
    new TransientError(
      'JOBS.UNAVAILABLE',
      `Firestore did not answer within ${formatSeconds(deadlineMs)} (${what}); it is unreachable or overloaded`,
    );

  /**
   * Runs one operation under the deadline, its failure classified. `live()` turns false when the
   * deadline has passed: loops stop starting new attempts nobody waits for.
   */
  const run = <T>(what: string, op: (live: () => boolean) => Promise<T>): Promise<T> => {
    let expired = false;
    const live = (): boolean => !expired;
    const work = op(live).catch((err: unknown) => {
      throw mapFirestoreError(err, what);
    });
    return withTimeLimit(work, deadlineMs, () => {
      expired = true;
      return tooLate(what);
    });
  };

  return {
    createIfAbsent: (record) =>
      run(`create ${record.jobId}`, async (live) => {
        const ref = col.doc(record.jobId);
        try {
          const written = await ref.create(record);
          if (!live()) await releaseLateLease(ref, record, written.writeTime);
          return { created: true, record };
        } catch (err) {
          if (grpcCode(err) !== grpcStatus().ALREADY_EXISTS) throw err;
        }
        const snap = await ref.get();
        return { created: false, record: toRecord(snap) ?? record };
      }),

    get: (jobId) => run(`get ${jobId}`, async () => toRecord(await col.doc(jobId).get())),

    update: (jobId, change) =>
      run(`update ${jobId}`, async (live) => {
        const ref = col.doc(jobId);
        for (let attempt = 1; ; attempt++) {
          if (!live()) throw tooLate(`update ${jobId}`);
          const snap = await ref.get();
          const current = toRecord(snap);
          if (!current || !snap.updateTime) return undefined;
          const next = change(current);
          if (!next) return undefined;
          try {
            // Why the precondition: two workers that read the same version cannot both write; the
            // loser re-reads and its change function decides again (e.g. the claim is now taken).
            const written = await ref.update({ ...next }, { lastUpdateTime: snap.updateTime });
            if (!live() && next.lease && next.lease.owner !== current.lease?.owner) {
              await releaseLateLease(ref, next, written.writeTime);
            }
            return next;
          } catch (err) {
            const code = grpcCode(err);
            // NOT_FOUND: deleted since the read; the next read says so.
            if (code !== grpcStatus().FAILED_PRECONDITION && code !== grpcStatus().NOT_FOUND) {
              throw err;
            }
            if (attempt >= MAX_ATTEMPTS) {
              throw new TransientError(
                'JOBS.CONFLICT',
                `Firestore update ${jobId}: the record kept changing under ${MAX_ATTEMPTS} attempts (contention); retry later`,
                { cause: err },
              );
            }
            await new Promise((r) =>
              setTimeout(r, Math.min(200, 5 * 2 ** attempt) * Math.random()),
            );
          }
        }
      }),

    countWaiting: (queue) =>
      run(`count waiting in ${queue}`, async () => {
        // Two equality filters: served by Firestore's automatic single-field indexes.
        const snap = await col
          .where('queue', '==', queue)
          .where('status', '==', 'WAITING')
          .count()
          .get();
        return snap.data().count;
      }),

    reserveSlot: (pool, jobId, capacity) =>
      run(`reserve a slot of ${pool} for ${jobId}`, (live) =>
        // Why a transaction: concurrent submissions read the same slots; only one of them may
        // take a free slot, the others see it taken (and the capacity is never exceeded).
        db.runTransaction(
          async (tx) => {
            if (!live()) throw tooLate(`reserve a slot of ${pool} for ${jobId}`);
            const refs = Array.from({ length: capacity }, (_, i) => slots.doc(slotId(pool, i)));
            const snaps = await tx.getAll(...refs);
            const holders = snaps.map((s) => (s.exists ? (s.get('jobId') as string) : undefined));
            if (holders.includes(jobId)) return true;
            const held = holders.filter((h): h is string => h !== undefined);
            const records = held.length > 0 ? await tx.getAll(...held.map((h) => col.doc(h))) : [];
            const active = new Set(
              records
                .filter(
                  (r) =>
                    r.exists &&
                    holdsCapacity({
                      status: r.get('status') as JobStatus,
                      createAttempts: Number(r.get('createAttempts') ?? 0),
                    }),
                )
                .map((r) => r.id),
            );
            const free = holders.findIndex((h) => h === undefined || !active.has(h));
            const ref = refs[free];
            if (free < 0 || !ref) return false;
            tx.set(ref, { pool, jobId, takenAt: new Date().toISOString() });
            return true;
          },
          { maxAttempts: TRANSACTION_ATTEMPTS },
        ),
      ),

    releaseSlot: (pool, jobId) =>
      run(`release the slot of ${pool} held by ${jobId}`, async () => {
        const snap = await slots.where('pool', '==', pool).where('jobId', '==', jobId).get();
        // The precondition: a slot given to another job meanwhile is not freed by mistake.
        await Promise.all(
          snap.docs.map((d) =>
            d.ref.delete({ lastUpdateTime: d.updateTime }).catch((err: unknown) => {
              const code = grpcCode(err);
              if (code !== grpcStatus().FAILED_PRECONDITION && code !== grpcStatus().NOT_FOUND) {
                throw err;
              }
            }),
          ),
        );
      }),

    listOutstanding: (limit, cursor) =>
      run('list outstanding records', async (): Promise<OutstandingPage> => {
        // Served by the composite index (outstanding ASC, createTime ASC) of shared/adapters/job-index.ts.
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
        const records = snap.docs.map((d) => upgradeRecord(d.data() as JobRecord));
        const last = records[records.length - 1];
        return { records, next: records.length === limit && last ? encodeCursor(last) : undefined };
      }),

    listRecent: async ({ statuses = [], since, limit }) => {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RECENT_LIMIT) {
        throw new RangeError(
          `listRecent: limit must be a whole number from 1 to ${MAX_RECENT_LIMIT}`,
        );
      }
      return run('list recent records', async () => {
        // Newest first. A status filter with this order is served by the composite index of
        // shared/adapters/recent-jobs-index.ts; without one, by the single-field index of createTime.
        let query: Query = col;
        if (statuses.length === 1) query = query.where('status', '==', statuses[0]);
        else if (statuses.length > 1) query = query.where('status', 'in', [...statuses]);
        if (since !== undefined) query = query.where('createTime', '>=', since);
        const snap = await query
          .orderBy('createTime', 'desc')
          .orderBy(FieldPath.documentId(), 'desc')
          .limit(limit)
          .get();
        return snap.docs.map((d) => upgradeRecord(d.data() as JobRecord));
      });
    },
  };
}

/**
 * A write that lands after its caller was told it failed (the client keeps retrying a commit for
 * minutes; it cannot be called back) must not leave a claim nobody will use: a lease it took is
 * released at once, unless the record changed since. Without this, the next delivery would see
 * the record claimed and acknowledge, and the input would wait until the poller finishes it.
 */
async function releaseLateLease(
  ref: DocumentReference,
  written: JobRecord,
  writeTime: Timestamp,
): Promise<void> {
  if (!written.lease) return;
  await ref.update({ lease: null }, { lastUpdateTime: writeTime }).catch(() => undefined);
}

/** Document id of slot `i` of a pool (ids cannot contain `/`). */
function slotId(pool: string, i: number): string {
  return `${encodeURIComponent(pool)}-${i}`;
}

function toRecord(snap: DocumentSnapshot): JobRecord | undefined {
  return snap.exists ? upgradeRecord(snap.data() as JobRecord) : undefined;
}

/** The gRPC status code of a Firestore error, if it carries one. */
function grpcCode(err: unknown): GrpcStatus | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** What to check when Firestore refuses a request for good, by gRPC code name. */
const PERMANENT_HINTS: Readonly<Record<string, string>> = {
  INVALID_ARGUMENT:
    'Firestore refused the request as malformed: check JOBS_COLLECTION (a collection id) and the record fields',
  PERMISSION_DENIED:
    "the function's service account may not use Firestore: grant it roles/datastore.user on the project",
  UNAUTHENTICATED:
    "the function's credentials were refused: check its service account and that the Firestore API is enabled",
  NOT_FOUND:
    'the Firestore database or document was not found: create the (default) database in Native mode in this project',
  FAILED_PRECONDITION:
    'Firestore refused a precondition: a query may need its composite index (deploy terraform/firestore.tf), or the database is in Datastore mode',
  ALREADY_EXISTS: 'the document exists already',
  OUT_OF_RANGE: 'a query cursor or value is out of range',
  UNIMPLEMENTED: 'the operation is not supported by this Firestore database (Datastore mode?)',
  DATA_LOSS: 'Firestore reported unrecoverable data loss',
};

/** Codes after which the same request may succeed: the service is down, slow or overloaded. */
const UNAVAILABLE_CODE_NAMES: ReadonlySet<string> = new Set([
  'CANCELLED',
  'UNKNOWN',
  'DEADLINE_EXCEEDED',
  'RESOURCE_EXHAUSTED',
  'INTERNAL',
  'UNAVAILABLE',
]);

/**
 * Classifies a Firestore failure by its gRPC code: ABORTED (transaction contention) →
 * TransientError `JOBS.CONFLICT`; CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
 * INTERNAL, UNAVAILABLE → TransientError `JOBS.UNAVAILABLE`; every other code → PermanentError
 * `JOBS.INVALID` saying what to check. Our own errors pass unchanged, and so does an error without
 * a gRPC code (not a Firestore answer).
 */
export function mapFirestoreError(err: unknown, what: string): unknown {
  if (err instanceof BatchCourierError) return err;
  const code = grpcCode(err);
  if (code === undefined) return err;
  const status = grpcStatus();
  const name = status[code] ?? `code ${String(code)}`;
  const detail = err instanceof Error ? err.message : String(err);
  const options = { cause: err };
  if (code === status.ABORTED) {
    return new TransientError(
      'JOBS.CONFLICT',
      `Firestore ${what}: ${name} (contention with concurrent changes; retry later): ${detail}`,
      options,
    );
  }
  if (UNAVAILABLE_CODE_NAMES.has(name)) {
    return new TransientError(
      'JOBS.UNAVAILABLE',
      `Firestore ${what}: ${name} (unavailable; retry later): ${detail}`,
      options,
    );
  }
  const hint = PERMANENT_HINTS[name] ?? 'Firestore refused the request';
  return new PermanentError(
    'JOBS.INVALID',
    `Firestore ${what}: ${name}: ${hint}: ${detail}`,
    options,
  );
}
