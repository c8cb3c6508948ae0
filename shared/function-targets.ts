/** The Cloud Functions entry points this package registers (README "How it works"). */
export const FUNCTION_TARGETS = Object.freeze({
  /** CloudEvent function for `google.cloud.storage.object.v1.finalized`. */
  submit: 'submitBatchJob',
  /** HTTP function called by Cloud Scheduler. */
  poll: 'pollBatchJobs',
} as const);

/**
 * How long one poll run may work before it stops and leaves the rest for the next run. The poll
 * function's timeout and Cloud Scheduler's attempt deadline must both be longer (Terraform checks).
 */
export const POLL_TIME_BUDGET_SECONDS = 120;
