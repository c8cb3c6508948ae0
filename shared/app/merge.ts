/**
 * The final files of an input whose failed rows were sent again (README "Failed rows"): each
 * attempt's digest lies in its own folder (`<prefix>attempt-<n>/`); the final `results.jsonl`,
 * `failed.jsonl` and `summary.json` under the job's prefix hold each request's last outcome.
 *
 * Attempt n+1's input is, in order, the rows of attempt n that failed for a transient reason or
 * had no output line, so the attempts' results are merged in one pass over the input: a row that
 * attempt n sent again is taken from the next line of attempt n+1's results. Memory is a line per
 * attempt; the files are written create-only and are the same on every run.
 */
import { Batcher, Channel } from './channel.js';
import type { DigestDeps } from './digest.js';
import { FAILED_FILE, inputOf, RESULTS_FILE, SUMMARY_FILE } from './digest.js';
import { costOf } from '../core/events.js';
import { PermanentError, TransientError } from '../core/errors.js';
import type { Attempt, Digest, JobRecord } from '../core/jobs.js';
import { splitLines } from '../core/lines.js';
import { pricingName } from '../core/pricing.js';
import {
  addUsage,
  emptyUsage,
  ErrorTally,
  MISSING_ROW_ERROR,
  resultLine,
} from '../core/results.js';
import { isTransientRowError } from '../core/row-errors.js';
import type { ObjectReader } from '../ports.js';

/** The folder of attempt `n` of the input whose prefix is `prefix`. */
export function attemptFolder(prefix: string, n: number): string {
  return `${prefix}attempt-${n}/`;
}

const MAX_LINE_BYTES = 512 << 20;
const NEWLINE = Buffer.from('\n');

function splitUri(uri: string): { bucket: string; name: string } {
  const m = /^gs:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!m?.[1]) throw new PermanentError('STORAGE.UNAVAILABLE', `not a gs:// URI: ${uri}`);
  return { bucket: m[1], name: m[2] ?? '' };
}

/** The lines of an object, by URI (its live generation). */
async function* linesOf(reader: ObjectReader, uri: string): AsyncGenerator<Buffer> {
  const { bucket, name } = splitUri(uri);
  const found = (await reader.list(bucket, name)).find((o) => o.name === name);
  if (!found) throw new TransientError('STORAGE.UNAVAILABLE', `${uri} is not there (yet)`);
  yield* splitLines(reader.read(bucket, name, found.generation), uri, MAX_LINE_BYTES);
}

/** A results line, parsed only as far as needed: succeeded lines are passed on as they are. */
interface Row {
  text: Buffer;
  status: 'succeeded' | 'failed';
  error: string | null;
}

const SUCCEEDED = Buffer.from('"status":"succeeded"');

function readRow(text: Buffer): Row {
  // results.jsonl is ours: `{"line":N,"key":K,"status":…` with a short key first.
  if (text.subarray(0, 200).includes(SUCCEEDED)) return { text, status: 'succeeded', error: null };
  const value = JSON.parse(text.toString('utf8')) as { status?: string; error?: string | null };
  return {
    text,
    status: value.status === 'succeeded' ? 'succeeded' : 'failed',
    error: value.error ?? null,
  };
}

/** True when attempt `a` sent this row again (the rule its digest applied when it wrote the file). */
export function sentAgain(row: Row, a: Attempt): boolean {
  if (!a.digest.retry || row.status !== 'failed') return false;
  return row.error === MISSING_ROW_ERROR || isTransientRowError(row.error ?? '');
}

/** Merges the attempts of `record` into its final files; returns the final digest. */
export async function mergeAttempts(
  record: JobRecord,
  deps: DigestDeps,
  signal?: AbortSignal,
): Promise<Digest> {
  const prefix = record.outputUriPrefix;
  const attempts = record.attempts;
  // Only attempts that wrote results take part; a retry that never ran ends the chain.
  const chain: Attempt[] = [];
  for (const a of attempts) {
    if (!a.digest.results) break;
    chain.push(a);
    if (!a.digest.retry) break;
  }
  const first = chain[0];
  if (!first?.digest.results) {
    return { ...(attempts[0]?.digest ?? emptyDigest(deps)), retry: null };
  }
  const results = chain.map((a) => linesOf(deps.reader, a.digest.results?.resultsUri ?? ''));
  // The lines the job read: a JSONL input's pinned copy, a manifest's files or table rows.
  const input = (await inputOf(record, deps))();

  const rows = { succeeded: 0, failed: 0, missing: 0 };
  const errors = new ErrorTally();
  const write = new Channel();
  // failed.jsonl is opened at the first row that failed in the end (absent when none did).
  let failed: { channel: Channel; batcher: Batcher; done: Promise<void> } | undefined;
  const uploads: Promise<void>[] = [];
  const resultsDone = deps.reports.writeStream(
    `${prefix}${RESULTS_FILE}`,
    write,
    'application/jsonl',
  );
  resultsDone.catch(() => undefined);
  uploads.push(resultsDone.then(() => write.stop()));
  const out = new Batcher(write);
  const stopAll = (err: Error): void => {
    write.stop(err);
    failed?.channel.stop(err);
  };
  try {
    let line = 0;
    for await (const inputLine of input) {
      if (signal?.aborted) {
        throw new TransientError('DEADLINE.EXCEEDED', 'the merge of the attempts ran out of time');
      }
      if (inputLine.every((b) => b === 0x20 || b === 0x09 || b === 0x0d)) continue;
      line++;
      let k = 0;
      let row = readRow(await next(results[0], first, line));
      while (k + 1 < chain.length && sentAgain(row, chain[k] as Attempt)) {
        k++;
        row = readRow(await next(results[k], chain[k] as Attempt, line));
      }
      if (k === 0) {
        await out.add(row.text);
        await out.add(NEWLINE);
      } else {
        // A row of a later attempt: numbered by its line in the input.
        const value = JSON.parse(row.text.toString('utf8')) as {
          key: string | null;
          response: unknown;
        };
        await out.add(
          Buffer.from(resultLine(line, value.key, row.status, row.error, value.response)),
        );
      }
      if (row.status === 'succeeded') {
        rows.succeeded++;
        continue;
      }
      if (row.error === MISSING_ROW_ERROR) rows.missing++;
      else rows.failed++;
      errors.add(row.error ?? '');
      if (!failed) {
        const channel = new Channel();
        const done = deps.reports.writeStream(
          `${prefix}${FAILED_FILE}`,
          channel,
          'application/jsonl',
        );
        done.catch(() => undefined);
        failed = { channel, batcher: new Batcher(channel), done };
        uploads.push(done.then(() => channel.stop()));
      }
      await failed.batcher.add(Buffer.from(inputLine));
      await failed.batcher.add(NEWLINE);
    }
    await out.flush();
    write.close();
    if (failed) {
      await failed.batcher.flush();
      failed.channel.close();
    }
  } catch (err) {
    stopAll(err instanceof Error ? err : new Error(String(err)));
    await Promise.allSettled(uploads);
    throw err;
  }
  await Promise.all(uploads);

  const usage = emptyUsage();
  let actualUsd: number | null = 0;
  for (const a of attempts) {
    if (a.digest.usage) addUsage(usage, a.digest.usage);
    actualUsd =
      actualUsd === null || (a.digest.usage && a.digest.actualUsd === null)
        ? null
        : Math.round((actualUsd + (a.digest.actualUsd ?? 0)) * 1e6) / 1e6;
  }
  const digest: Digest = {
    results: {
      rows,
      summaryUri: `${prefix}${SUMMARY_FILE}`,
      resultsUri: `${prefix}${RESULTS_FILE}`,
      failedRowsUri: rows.failed + rows.missing > 0 ? `${prefix}${FAILED_FILE}` : null,
    },
    usage,
    actualUsd,
    pricing: first.digest.pricing,
    note: null,
    retry: null,
  };
  await deps.reports.write(
    `${prefix}${SUMMARY_FILE}`,
    `${JSON.stringify(
      {
        schemaVersion: 1,
        jobId: record.jobId,
        vertexJob: record.vertexJob,
        model: record.model,
        input: { uri: record.inputUri, requestCount: line(rows) },
        results: digest.results,
        usage: digest.usage,
        cost: costOf({ estimate: record.estimate, digest }),
        attempts: attempts.map((a) => ({
          vertexJob: a.vertexJob,
          state: a.state,
          summaryUri: a.digest.results?.summaryUri ?? null,
          retried: a.digest.retry?.requests ?? 0,
        })),
        topErrors: errors.top(20),
      },
      null,
      2,
    )}\n`,
    'application/json',
  );
  return digest;
}

function line(rows: { succeeded: number; failed: number; missing: number }): number {
  return rows.succeeded + rows.failed + rows.missing;
}

/** The next results line of an attempt; its absence means the files disagree (never expected). */
async function next(
  lines: AsyncGenerator<Buffer> | undefined,
  attempt: Attempt,
  line: number,
): Promise<Buffer> {
  const got = await lines?.next();
  if (!got || got.done) {
    throw new PermanentError(
      'DIGEST.INPUT_CHANGED',
      `the results of ${attempt.jobId} end before input line ${line}: the attempts' files do not match`,
    );
  }
  return got.value;
}

function emptyDigest(deps: DigestDeps): Digest {
  return {
    results: null,
    usage: null,
    actualUsd: null,
    pricing: pricingName(deps.config.PRICE_TABLE),
    note: 'no attempt wrote results',
    retry: null,
  };
}
