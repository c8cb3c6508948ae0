/**
 * The Firestore composite index that the poller's query needs:
 * `where('outstanding', '==', true).orderBy('createTime').orderBy(__name__)`.
 * Terraform declares exactly this index (a test compares both).
 */
export const OUTSTANDING_JOBS_INDEX = Object.freeze({
  queryScope: 'COLLECTION',
  fields: Object.freeze([
    Object.freeze({ fieldPath: 'outstanding', order: 'ASCENDING' }),
    Object.freeze({ fieldPath: 'createTime', order: 'ASCENDING' }),
  ]),
} as const);
