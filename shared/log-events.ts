/**
 * Every log event name the functions emit, in one typed list: the logger accepts only these, a
 * consumer's `switch` over them is checked for exhaustiveness, and Terraform's log-based metrics
 * can be tested against the same list. Renaming an event fails to compile where it is used.
 */
export const LOG_EVENTS = {
  // submitBatchJob: one storage event
  'event.unsupported': 'not a Cloud Storage finalize event; ignored',
  'event.stale': 'older than MAX_EVENT_AGE_SECONDS; dropped',
  'input.ignored': 'the object is not an input',
  'input.received': 'an input arrived',
  'input.duplicate': 'a duplicate delivery; nothing new to do',
  'input.validated': 'the input is valid and pinned',
  'input.invalid': 'the input was refused',
  'input.read_denied': 'no permission to read the input (IAM)',
  'input.waiting': 'queued until its model has capacity',
  'cost.unpriced': 'no price for the model: the estimate or actual cost is null',
  'submit.retry': 'a transient failure; the delivery will be retried',
  // creating the job
  'job.submitted': 'the Vertex AI batch job was created',
  'job.recovered': 'the job of a create whose answer was lost was found',
  'job.create_refused': 'Vertex AI refused the create',
  'job.fenced': 'this worker lost its claim during the create',
  'job.duplicate_cancelled': 'a second job for one input was cancelled',
  'job.stray_check_failed': 'could not check for a second job',
  'slot.release_failed': 'could not free a capacity slot (it frees itself)',
  // pollBatchJobs
  'job.state_changed': 'the job changed state',
  'job.cancel_requested': 'a job too old was asked to cancel',
  'job.finished': 'the job reached a terminal state',
  'poll.submitted_queued': 'a queued input was handled',
  'poll.submit_failed': 'a queued input could not be handled; it stays queued',
  'poll.job_failed': 'a job could not be reconciled; it stays due',
  'poll.list_failed': 'a list failed; its jobs are read one by one',
  'poll.completed': 'a poll run finished',
  'poll.failed': 'a poll run failed',
  // digesting a finished job's output, before its event
  'job.digested': "the job's results digest was written",
  'digest.failed': 'the digest could not be made; the event goes without it',
  'digest.unmatched': 'output lines matched no input line',
  'job.retrying': 'rows that failed for a transient reason are sent again',
  'job.attempt_done': 'a retry of failed rows ended; its input carries on',
  // announcing
  'job.completed': 'the completion event was published',
  'input.rejected': 'the rejection event was published',
  'event.release_failed': 'could not release the publish claim',
  'event.unpublishable': 'Pub/Sub refused the event for good',
} as const;

/** A log event name. */
export type LogEvent = keyof typeof LOG_EVENTS;

/** The names, for tests and Terraform checks. */
export const LOG_EVENT_NAMES = Object.freeze(Object.keys(LOG_EVENTS) as LogEvent[]);
