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
 * Node options of each deployed function (Terraform sets them as `NODE_OPTIONS`; the benchmarks
 * run the functions with them). Submit streams uploads of up to a gigabyte and what it allocates
 * per line dies young: a young generation of at most 3 × 1 MiB instead of V8's default 3 × 16 MiB
 * keeps its peak memory down (validation end to end on 1 GB, one run each: 157 and 177 MiB with
 * Node's defaults, 121 and 112 MiB with this) for 5–10% of its speed. Poll keeps Node's defaults:
 * the results digest holds what it reads for longer, and ran with 55% more CPU time with the small
 * young generation (README "Speed").
 */
export const FUNCTION_NODE_OPTIONS: Readonly<Record<'submit' | 'poll', string>> = Object.freeze({
  submit: '--max-semi-space-size=1',
  poll: '',
});
