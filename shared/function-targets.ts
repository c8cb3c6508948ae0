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

/**
 * Node options of both deployed functions (Terraform sets them as `NODE_OPTIONS`; the benchmarks
 * run the functions with them too). A young generation of at most 3 × 1 MiB instead of V8's
 * default 3 × 16 MiB: a function streams inputs and outputs of up to a gigabyte, and what it
 * allocates per line dies young, so a large young generation only adds to the peak memory (the
 * validation benchmark: 167 → 112 MiB on 1 GB) without making the stream faster. README "Speed".
 */
export const FUNCTION_NODE_OPTIONS = '--max-semi-space-size=1';
