/**
 * What happens to a finished job before its event (README "Results and cost", "Failed rows"): its
 * output is digested; rows that failed for a reason that may pass are sent again as a new job of
 * their own (a retry, with its own record, queue place, capacity slot and labels) up to
 * RETRY_FAILED_ROWS times; once no attempt is left, the attempts are merged into the input's final
 * files and the input is announced, once.
 *
 * Each step runs under the input's announce claim and ends in one conditional change of a record,
 * so a crash between two steps is carried on by the next claim holder: the files are the same on
 * every run (create-only), the retry's record is created if absent, and `toRetrying`,
 * `toAttemptDone` and `toHandedOver` apply once.
 */
import type { AnnounceDeps } from './announce.js';
import { digestJob, recordedDigest } from './digest.js';
import { digestTable } from './digest-table.js';
import { attemptFolder, mergeAttempts } from './merge.js';
import type { Config } from '../config.js';
import { PermanentError, TransientError } from '../core/errors.js';
import { INPUT_REJECTED_STATE } from '../core/events.js';
import { blankFields, logFields, type Attempt, type Digest, type JobRecord } from '../core/jobs.js';
import { pricingName } from '../core/pricing.js';
import {
  DIGEST_TIME_LIMIT_SECONDS,
  MAX_DIGEST_ATTEMPTS,
  needsDigest,
  release,
  toAttemptDone,
  toDigested,
  toHandedOver,
  toRetrying,
} from '../core/transitions.js';
import { formatSeconds, withTimeLimit } from '../time-limit.js';

/** How long a digest that ran out of time is waited for before its claim is released. */
const ABANDON_GRACE_MS = 15_000;

/** The record id of attempt `n` (2 for the first retry) of input `jobId`: ≤ 63 characters. */
export function retryJobId(jobId: string, n: number): string {
  const suffix = `-a${n}`;
  if (jobId.length + suffix.length <= 63) return `${jobId}${suffix}`;
  // Ids end in `-<16 hex>` (their hash): keep it whole, shorten the readable part before it.
  const hash = jobId.slice(-17);
  return `${jobId.slice(0, 63 - suffix.length - hash.length)}${hash}${suffix}`;
}

/** The prefix of the input an attempt belongs to (a retry's is its input's). */
function inputPrefix(record: JobRecord): string {
  if (!record.retryOf) return record.outputUriPrefix;
  const folder = `attempt-${record.retryOf.attempt}/`;
  return record.outputUriPrefix.slice(0, -folder.length);
}

/** When the input's first job was created: MAX_JOB_AGE_HOURS counts from it, for every attempt. */
export function inputSince(record: JobRecord): string {
  return record.retryOf?.since ?? record.vertexCreateTime ?? record.createTime;
}

/** True while the whole input is younger than MAX_JOB_AGE_HOURS (0: no limit). */
function withinAge(record: JobRecord, config: Config, now: Date): boolean {
  const hours = config.MAX_JOB_AGE_HOURS;
  return hours <= 0 || now.getTime() - Date.parse(inputSince(record)) < hours * 3600_000;
}

/**
 * Where this attempt's digest may send rows again, or undefined when no attempt is left: within
 * RETRY_FAILED_ROWS, never after a cancel (ours for age, or anyone's), never past MAX_JOB_AGE_HOURS.
 */
export function retryTarget(
  record: JobRecord,
  config: Config,
  now: Date,
): { inputUri: string; filesAt: string } | undefined {
  const attempt = record.retryOf?.attempt ?? 1;
  if (attempt > config.RETRY_FAILED_ROWS) return undefined;
  if (record.vertexState === 'JOB_STATE_CANCELLED' || record.cancelRequestedAt !== null)
    return undefined;
  if (!withinAge(record, config, now)) return undefined;
  // A job that wrote a BigQuery table: its failed rows are listed (failed.jsonl), not sent again.
  if (record.manifest?.destination?.startsWith('bq://')) return undefined;
  const prefix = inputPrefix(record);
  return {
    inputUri: `${attemptFolder(prefix, attempt + 1)}input.jsonl`,
    filesAt: attemptFolder(prefix, attempt),
  };
}

/** Digests one attempt's job (the input's first, or a retry), sending rows again where allowed. */
function digestAttempt(record: JobRecord, owner: string, deps: AnnounceDeps): Promise<Digest> {
  const target = retryTarget(record, deps.config, deps.clock());
  return digestOrGiveUp(record, owner, deps, (signal, workId) =>
    record.outputDirectory?.startsWith('bq://')
      ? digestTable(record, deps, { signal })
      : digestJob(record, deps, {
          workId,
          signal,
          ...(target ? { retry: target } : {}),
          ...(deps.digest?.partBytes ? { partBytes: deps.digest.partBytes } : {}),
        }),
  );
}

/** An attempt as the input records it. */
function attemptOf(record: JobRecord, digest: Digest): Attempt {
  return {
    jobId: record.jobId,
    vertexJob: record.vertexJob,
    state:
      record.status === 'COMPLETED'
        ? (record.vertexState ?? 'JOB_STATE_FAILED')
        : INPUT_REJECTED_STATE,
    stats: record.stats,
    digest,
  };
}

/**
 * Settles an input whose job (or last attempt) finished: digests it, sends rows again, or merges
 * the attempts. Resolves to the record to announce, or undefined when there is nothing to announce
 * now (rows were sent again, or the claim ran out meanwhile).
 */
export async function settleInput(
  record: JobRecord,
  owner: string,
  deps: AnnounceDeps,
): Promise<JobRecord | undefined> {
  const now = deps.clock();
  if (record.attempts.length === 0) {
    const digest = await digestAttempt(record, owner, deps);
    const attempts = [attemptOf(record, digest)];
    if (digest.retry) return startRetry(record, attempts, owner, deps);
    return deps.jobs.update(record.jobId, toDigested(owner, deps.clock(), digest, attempts));
  }
  const last = record.attempts[record.attempts.length - 1];
  if (last?.digest.retry && withinAge(record, deps.config, now)) {
    return startRetry(record, record.attempts, owner, deps);
  }
  // The first attempt's files are final unless it sent rows again (then they are in its folder).
  const first = record.attempts[0];
  const final =
    first && !first.digest.retry
      ? first.digest
      : await digestOrGiveUp(record, owner, deps, (signal) => mergeAttempts(record, deps, signal));
  return deps.jobs.update(record.jobId, toDigested(owner, deps.clock(), final, record.attempts));
}

/**
 * Sends the rows the last attempt wrote to its retry file as a new job: the retry's record (queued
 * like any input, and submitted by the poller), then the input waits for it.
 */
async function startRetry(
  input: JobRecord,
  attempts: Attempt[],
  owner: string,
  deps: AnnounceDeps,
): Promise<undefined> {
  const n = attempts.length + 1;
  const retry = attempts[attempts.length - 1]?.digest.retry;
  if (!retry) return undefined;
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(retry.inputUri);
  const [bucket, name] = [m?.[1] ?? '', m?.[2] ?? ''];
  const file = (await deps.reader.list(bucket, name)).find((o) => o.name === name);
  if (!file) {
    throw new TransientError('STORAGE.UNAVAILABLE', `the retry file ${retry.inputUri} is missing`);
  }
  const now = deps.clock();
  const id = retryJobId(input.jobId, n);
  // Validated already (a part of the input's lines): the poller submits it as queued, with no
  // second validation, in its model's queue like any other input.
  await deps.jobs.createIfAbsent({
    ...blankFields(now),
    jobId: id,
    status: 'WAITING',
    bucket,
    object: name,
    generation: file.generation,
    inputUri: retry.inputUri,
    model: input.model,
    provider: input.provider,
    location: input.location,
    queue: input.queue,
    outputUriPrefix: attemptFolder(input.outputUriPrefix, n),
    requestCount: retry.requests,
    waitingSince: now.toISOString(),
    retryOf: { jobId: input.jobId, attempt: n, since: inputSince(input) },
  });
  const waiting = await deps.jobs.update(input.jobId, toRetrying(owner, now, attempts, id));
  if (waiting) {
    deps.log.info('job.retrying', 'Rows that failed for a transient reason are sent again', {
      ...logFields(input),
      retryJobId: id,
      attempt: n,
      requests: retry.requests,
      inputUri: retry.inputUri,
    });
  }
  return undefined;
}

/**
 * A retry that ended (digested, or refused before it ran) hands its attempt to its input, then
 * leaves the outstanding list without an event. If the input is not waiting for it yet (the input's
 * own step is still to be recorded), it stays outstanding and is handed over by a later run.
 */
export async function settleRetry(
  claimed: JobRecord,
  owner: string,
  deps: AnnounceDeps,
): Promise<void> {
  let retry = claimed;
  const of = retry.retryOf;
  if (!of) return;
  if (needsDigest(retry)) {
    const digest = await digestAttempt(retry, owner, deps);
    const digested = await deps.jobs.update(retry.jobId, toDigested(owner, deps.clock(), digest));
    if (!digested) return;
    retry = digested;
  }
  const digest: Digest = retry.digest ?? {
    results: null,
    usage: null,
    actualUsd: null,
    pricing: pricingName(deps.config.PRICE_TABLE),
    note: retry.error ? `${retry.error.code}: ${retry.error.message}` : 'the retry never ran',
    retry: null,
  };
  const attempt = attemptOf(retry, digest);
  const accepted = await deps.jobs.update(
    of.jobId,
    toAttemptDone(retry.jobId, attempt, deps.clock()),
  );
  const input = accepted ?? (await deps.jobs.get(of.jobId));
  const known =
    accepted !== undefined || input?.attempts.some((a) => a.jobId === retry.jobId) === true;
  // An input announced without this attempt (never expected: its decision to send rows again is
  // read back from its first digest) must not keep the retry outstanding for ever.
  const orphan = !known && (!input || !input.outstanding);
  if (orphan) {
    deps.log.error('digest.failed', 'A retry ended after its input was announced without it', {
      ...logFields(retry),
      inputJobId: of.jobId,
      fix: "its results are under its own folder; the input's event does not include them",
    });
  }
  if (!known && !orphan) {
    await deps.jobs.update(retry.jobId, release(owner)).catch(() => undefined);
    return;
  }
  await deps.jobs.update(retry.jobId, toHandedOver(owner, deps.clock()));
  deps.log.info('job.attempt_done', 'A retry of failed rows ended; its input carries on', {
    ...logFields(retry),
    inputJobId: of.jobId,
    attempt: of.attempt,
    state: attempt.state,
    ...(digest.results ? { rows: digest.results.rows } : { note: digest.note }),
  });
}

/**
 * Runs a digest (or a merge) within {@link DIGEST_TIME_LIMIT_SECONDS}. A failure that may pass
 * releases the claim and throws (a later run tries again); after {@link MAX_DIGEST_ATTEMPTS}
 * attempts, or a failure that cannot pass, the outcome goes on without a digest (`results` null),
 * logged at ERROR: the outcome is never held back for good.
 */
async function digestOrGiveUp(
  record: JobRecord,
  owner: string,
  deps: AnnounceDeps,
  run: (signal: AbortSignal, workId: string) => Promise<Digest>,
): Promise<Digest> {
  const fields = { ...logFields(record), vertexJob: record.vertexJob };
  const giveUp = (why: string, error?: unknown): Digest => {
    deps.log.error('digest.failed', 'No results digest: the event goes out without one', {
      ...fields,
      attempts: record.digestAttempts,
      reason: why,
      ...(error === undefined ? {} : { error }),
      fix: 'check that the poll function may read and write the output bucket; the output files stay in place',
    });
    return {
      results: null,
      usage: null,
      actualUsd: null,
      pricing: pricingName(deps.config.PRICE_TABLE),
      note: why,
      retry: null,
    };
  };
  if (record.digestAttempts > MAX_DIGEST_ATTEMPTS) {
    // The last attempt may have finished its files and died before recording them.
    // A merge that finished wrote its summary at the prefix.
    const folders = record.attempts.length === 0 ? undefined : [record.outputUriPrefix];
    const finished = await recordedDigest(record, deps, folders).catch(() => undefined);
    if (finished) return finished;
    return giveUp(`the digest was started ${MAX_DIGEST_ATTEMPTS} times and never finished`);
  }
  const limitMs = deps.digest?.timeLimitMs ?? DIGEST_TIME_LIMIT_SECONDS * 1000;
  const stop = new AbortController();
  const started = performance.now();
  const work = run(stop.signal, `${owner}-${record.digestAttempts}`);
  try {
    const digest = await withTimeLimit(work, limitMs, () => {
      stop.abort();
      return new TransientError(
        'DEADLINE.EXCEEDED',
        `the digest did not finish within ${formatSeconds(limitMs)}`,
      );
    });
    deps.log.info('job.digested', 'Results digest written', {
      ...fields,
      ...(digest.results ? { rows: digest.results.rows } : { note: digest.note }),
      usage: digest.usage,
      actualUsd: digest.actualUsd,
      retried: digest.retry?.requests ?? 0,
      ms: Math.round(performance.now() - started),
    });
    return digest;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof PermanentError || record.digestAttempts >= MAX_DIGEST_ATTEMPTS) {
      return giveUp(`the digest failed after ${record.digestAttempts} attempts: ${message}`, err);
    }
    // A digest that ran out of time stops at its next line; the claim is released once it has
    // (or after a grace period), so that no second digest runs beside it on this instance.
    await withTimeLimit(work, ABANDON_GRACE_MS, () => new Error('still running')).catch(
      () => undefined,
    );
    await deps.jobs.update(record.jobId, release(owner)).catch(() => undefined);
    deps.log.warning('digest.failed', 'The digest failed; a later poll run tries again', {
      ...fields,
      attempts: record.digestAttempts,
      error: err,
    });
    throw err;
  }
}
