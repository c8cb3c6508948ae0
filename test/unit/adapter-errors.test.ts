/**
 * How the adapters classify their clients' failures: every gRPC code of Firestore and Pub/Sub,
 * and the HTTP answers of Cloud Storage. A permanent error is recorded and never retried; a
 * transient one is retried; a misclassified one either loses an input or retries it forever.
 */
import type { Firestore } from '@google-cloud/firestore';
import { describe, expect, it } from 'vitest';
import {
  createFirestoreJobStore,
  mapFirestoreError,
} from '../../shared/adapters/firestore-job-store.js';
import { mapStorageError } from '../../shared/adapters/gcs-objects.js';
import { mapPublishError } from '../../shared/adapters/pubsub-publisher.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { RPC_CODE_NAMES } from '../../shared/core/vertex.js';
import { submittingRecord } from '../records.js';

/** An error as the Google clients raise it: a message and a numeric gRPC `code`. */
function grpcError(name: string): Error & { code: number } {
  const code = RPC_CODE_NAMES.indexOf(name);
  if (code < 0) throw new Error(`no such code ${name}`);
  return Object.assign(new Error(`${code} ${name}: something happened`), { code });
}

describe('item 6: Firestore errors, by gRPC code', () => {
  const table: [string, typeof TransientError | typeof PermanentError, string, RegExp][] = [
    ['ABORTED', TransientError, 'JOBS.CONFLICT', /contention/],
    ['CANCELLED', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['UNKNOWN', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['DEADLINE_EXCEEDED', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['RESOURCE_EXHAUSTED', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['INTERNAL', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['UNAVAILABLE', TransientError, 'JOBS.UNAVAILABLE', /retry later/],
    ['INVALID_ARGUMENT', PermanentError, 'JOBS.INVALID', /JOBS_COLLECTION/],
    ['PERMISSION_DENIED', PermanentError, 'JOBS.INVALID', /roles\/datastore\.user/],
    ['UNAUTHENTICATED', PermanentError, 'JOBS.INVALID', /service account/],
    ['NOT_FOUND', PermanentError, 'JOBS.INVALID', /Native mode/],
    ['FAILED_PRECONDITION', PermanentError, 'JOBS.INVALID', /composite index/],
    ['ALREADY_EXISTS', PermanentError, 'JOBS.INVALID', /exists/],
    ['OUT_OF_RANGE', PermanentError, 'JOBS.INVALID', /out of range/],
    ['UNIMPLEMENTED', PermanentError, 'JOBS.INVALID', /not supported/],
    ['DATA_LOSS', PermanentError, 'JOBS.INVALID', /data loss/],
  ];

  it('item 6: the table covers every gRPC code but OK', () => {
    expect(table.map(([name]) => name).sort()).toEqual(RPC_CODE_NAMES.slice(1).sort());
  });

  it.each(table)('classified: %s → %O %s', (name, kind, code, says) => {
    const cause = grpcError(name);
    const err = mapFirestoreError(cause, 'get j1');
    expect(err).toBeInstanceOf(kind);
    expect(err).toMatchObject({ code, cause });
    expect((err as Error).message).toContain(`Firestore get j1: ${name}`);
    expect((err as Error).message).toMatch(says);
  });

  it('item 6: our own errors and errors without a gRPC code pass unchanged', () => {
    const ours = new TransientError('JOBS.UNAVAILABLE', 'late');
    expect(mapFirestoreError(ours, 'get')).toBe(ours);
    const bug = new Error('not from Firestore');
    expect(mapFirestoreError(bug, 'get')).toBe(bug);
  });

  /** A Firestore whose one document is always changed by someone else between read and write. */
  function contendedFirestore(writeError: Error): Firestore {
    const record = submittingRecord('j1');
    const doc = {
      get: async () => ({ exists: true, updateTime: {}, data: () => record }),
      update: async () => {
        throw writeError;
      },
    };
    return { collection: () => ({ doc: () => doc }) } as unknown as Firestore;
  }

  it('item 6: contention that outlasts the retries of update is TransientError JOBS.CONFLICT', async () => {
    const store = createFirestoreJobStore(
      contendedFirestore(grpcError('FAILED_PRECONDITION')),
      'jobs',
      { deadlineMs: 30_000 },
    );
    const err = await store
      .update('j1', (cur) => ({ ...cur, createAttempts: 1 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ code: 'JOBS.CONFLICT' });
    expect((err as Error).message).toMatch(/kept changing/);
  });

  it('item 6: a permanent refusal of a write is PermanentError JOBS.INVALID, not retried', async () => {
    const store = createFirestoreJobStore(
      contendedFirestore(grpcError('PERMISSION_DENIED')),
      'jobs',
    );
    const started = performance.now();
    const err = await store.update('j1', (cur) => cur).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'JOBS.INVALID' });
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('item 8: a Firestore write that lands after its caller gave up', () => {
  /** A Firestore whose writes answer only after `delayMs`, recording every write. */
  function slowFirestore(delayMs: number) {
    const writes: { op: string; data: unknown; precondition?: unknown }[] = [];
    const writeTime = { seconds: 1, nanoseconds: 2 };
    const later = () => new Promise((r) => setTimeout(r, delayMs));
    let stored: unknown;
    const doc = {
      create: async (data: unknown) => {
        await later();
        writes.push({ op: 'create', data });
        stored = data;
        return { writeTime };
      },
      get: async () => ({
        exists: stored !== undefined,
        updateTime: writeTime,
        data: () => stored,
      }),
      update: async (data: unknown, precondition?: unknown) => {
        if ((data as { lease?: unknown }).lease !== null) await later();
        writes.push({ op: 'update', data, precondition });
        return { writeTime };
      },
    };
    const db = { collection: () => ({ doc: () => doc }) } as unknown as Firestore;
    return { db, writes, writeTime, doc, setStored: (r: unknown) => (stored = r) };
  }

  it('item 8: a create that lands late releases the lease it took (the next delivery can claim at once)', async () => {
    const { db, writes, writeTime } = slowFirestore(100);
    const store = createFirestoreJobStore(db, 'jobs', { deadlineMs: 30 });
    const record = submittingRecord('j1', {
      lease: { owner: 'gone', until: '2030-01-01T00:00:00.000Z' },
    });
    await expect(store.createIfAbsent(record)).rejects.toMatchObject({
      code: 'JOBS.UNAVAILABLE',
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(writes).toEqual([
      { op: 'create', data: record },
      { op: 'update', data: { lease: null }, precondition: { lastUpdateTime: writeTime } },
    ]);
  });

  it('item 8: a claim (update taking a lease) that lands late is released; one in time is kept', async () => {
    const { db, writes, writeTime, setStored } = slowFirestore(100);
    setStored(submittingRecord('j1', { lease: null }));
    const claim = (cur: ReturnType<typeof submittingRecord>) => ({
      ...cur,
      lease: { owner: 'me', until: '2030-01-01T00:00:00.000Z' },
    });
    const late = createFirestoreJobStore(db, 'jobs', { deadlineMs: 30 });
    await expect(late.update('j1', claim)).rejects.toMatchObject({ code: 'JOBS.UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 200));
    expect(writes.map((w) => w.data)).toEqual([
      expect.objectContaining({ lease: { owner: 'me', until: '2030-01-01T00:00:00.000Z' } }),
      { lease: null },
    ]);
    expect(writes[1]?.precondition).toEqual({ lastUpdateTime: writeTime });

    writes.length = 0;
    const inTime = createFirestoreJobStore(db, 'jobs', { deadlineMs: 1000 });
    await expect(inTime.update('j1', claim)).resolves.toMatchObject({ lease: { owner: 'me' } });
    expect(writes).toHaveLength(1);
  });
});

describe('item 6: Pub/Sub publish errors, by gRPC code', () => {
  it.each([
    ['INVALID_ARGUMENT', PermanentError, 'EVENTS.INVALID'],
    ['NOT_FOUND', PermanentError, 'EVENTS.INVALID'],
    ['PERMISSION_DENIED', PermanentError, 'EVENTS.INVALID'],
    ['FAILED_PRECONDITION', PermanentError, 'EVENTS.INVALID'],
    ['OUT_OF_RANGE', PermanentError, 'EVENTS.INVALID'],
    ['UNIMPLEMENTED', PermanentError, 'EVENTS.INVALID'],
    ['UNAUTHENTICATED', PermanentError, 'EVENTS.INVALID'],
    ['UNAVAILABLE', TransientError, 'EVENTS.UNAVAILABLE'],
    ['DEADLINE_EXCEEDED', TransientError, 'EVENTS.UNAVAILABLE'],
    ['RESOURCE_EXHAUSTED', TransientError, 'EVENTS.UNAVAILABLE'],
    ['INTERNAL', TransientError, 'EVENTS.UNAVAILABLE'],
    ['ABORTED', TransientError, 'EVENTS.UNAVAILABLE'],
    ['CANCELLED', TransientError, 'EVENTS.UNAVAILABLE'],
    ['UNKNOWN', TransientError, 'EVENTS.UNAVAILABLE'],
  ])('classified: %s → %O %s', (name, kind, code) => {
    const err = mapPublishError(grpcError(name), 'events');
    expect(err).toBeInstanceOf(kind);
    expect(err).toMatchObject({ code });
    expect(err.message).toContain('publish to events failed');
  });

  it('item 6: a message the client refuses before sending (TypeError) is permanent', () => {
    const err = mapPublishError(
      new TypeError('All attributes must be in the form of a string.'),
      't',
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'EVENTS.INVALID' });
  });
});

describe('copy: Cloud Storage read and copy errors', () => {
  const uri = 'gs://acme-in/inputs/a.jsonl#1764150067498213';

  it('copy: 404 is PermanentError INPUT.NOT_FOUND: the generation was replaced or deleted', () => {
    for (const op of ['read', 'copy'] as const) {
      const err = mapStorageError(
        Object.assign(new Error('No such object'), { code: 404 }),
        uri,
        op,
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err).toMatchObject({ code: 'INPUT.NOT_FOUND', status: 404 });
      expect(err.message).toMatch(/replaced by a newer upload or deleted/);
    }
  });

  it('copy: 403 is TransientError STORAGE.PERMISSION_DENIED, naming the grant to check', () => {
    for (const op of ['read', 'copy'] as const) {
      const err = mapStorageError(Object.assign(new Error('Forbidden'), { code: 403 }), uri, op);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: 'STORAGE.PERMISSION_DENIED', status: 403 });
      expect(err.message).toContain(`no permission to ${op} ${uri}`);
      expect(err.message).toContain('roles/storage.objectViewer');
    }
  });

  it('copy: anything else is TransientError STORAGE.UNAVAILABLE; our own errors pass unchanged', () => {
    expect(mapStorageError(Object.assign(new Error('x'), { code: 503 }), uri)).toMatchObject({
      code: 'STORAGE.UNAVAILABLE',
    });
    expect(mapStorageError(new Error('socket hang up'), uri)).toBeInstanceOf(TransientError);
    const stall = new TransientError('STORAGE.UNAVAILABLE', 'no bytes for 15 s');
    expect(mapStorageError(stall, uri)).toBe(stall);
  });
});
