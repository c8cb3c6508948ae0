/**
 * The Firestore composite index that the operators' listing (`JobStore.listRecent` with a status
 * filter) needs: `where('status', '==' | 'in', …).orderBy('createTime', 'desc').orderBy(__name__,
 * 'desc')`, with or without a `createTime >=` bound. Terraform declares exactly this index (a test
 * compares both); `batch-courier doctor` checks that it exists.
 */
export const RECENT_JOBS_INDEX = Object.freeze({
  queryScope: 'COLLECTION',
  fields: Object.freeze([
    Object.freeze({ fieldPath: 'status', order: 'ASCENDING' }),
    Object.freeze({ fieldPath: 'createTime', order: 'DESCENDING' }),
  ]),
} as const);
