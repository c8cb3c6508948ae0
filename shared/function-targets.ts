/** The Cloud Functions entry points this package registers (CONTRACT §1). */
export const FUNCTION_TARGETS = Object.freeze({
  /** CloudEvent function for `google.cloud.storage.object.v1.finalized`. */
  submit: 'submitBatchJob',
  /** HTTP function called by Cloud Scheduler. */
  poll: 'pollBatchJobs',
} as const);
