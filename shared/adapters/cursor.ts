/**
 * The cursor of the outstanding list: the position after a record in `(createTime, jobId)` order,
 * opaque to callers. Shared by the Firestore and in-memory job stores, so both page alike.
 */
import type { JobRecord } from '../core/jobs.js';

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
