/**
 * The results digest of a job that wrote to BigQuery (README "Manifests"): its output table holds
 * one row per request, the request beside its `response` and `status` (empty when it succeeded),
 * so it is the job's results; the digest counts it, sums the tokens, and writes under the job's
 * prefix `summary.json` and `failed.jsonl` (the failed rows' requests as JSONL lines, ready to be
 * sent again). Rows are read page by page; memory holds one page and the error tally.
 */
import { Batcher, Channel } from './channel.js';
import {
  FAILED_FILE,
  recordedDigest,
  SUMMARY_FILE,
  summaryJson,
  upload,
  type DigestDeps,
  type DigestOptions,
} from './digest.js';
import { TransientError } from '../core/errors.js';
import type { Digest, JobRecord, ResultsSummary } from '../core/jobs.js';
import { parseTableUri } from '../core/manifest.js';
import { requestLine } from './sources.js';
import { actualCost, pricingName } from '../core/pricing.js';
import { addUsage, emptyUsage, ErrorTally, readOutputRow } from '../core/results.js';

/** Most frequent row errors listed in `summary.json`. */
const TOP_ERRORS = 20;

/** Digests a finished job whose output is a BigQuery table (`record.outputDirectory`). */
export async function digestTable(
  record: JobRecord,
  deps: DigestDeps,
  options: Pick<DigestOptions, 'signal'> = {},
): Promise<Digest> {
  const earlier = await recordedDigest(record, deps, [record.outputUriPrefix]);
  if (earlier) return earlier;
  const pricing = pricingName(deps.config.PRICE_TABLE);
  const table = record.outputDirectory ?? '';
  const ref = parseTableUri(table);
  if (!ref) {
    return { results: null, usage: null, actualUsd: null, pricing, note: `not a table: ${table}` };
  }
  const bigquery = deps.bigquery;
  if (!bigquery) throw new Error('no BigQuery client: the functions always configure one');
  const meta = await bigquery.table(ref);
  if (!meta) {
    return {
      results: null,
      usage: null,
      actualUsd: null,
      pricing,
      note: `the output table ${table} does not exist`,
    };
  }
  const has = (name: string): boolean => meta.columns.some((c) => c.name === name);
  const anthropic = record.provider === 'anthropic' && has('custom_id');
  const columns = ['request', 'response', 'status', ...(anthropic ? ['custom_id'] : [])];

  const uri = (file: string): string => `${record.outputUriPrefix}${file}`;
  // failed.jsonl is started with the first failed row: absent when none failed.
  let failed: { channel: Channel; batcher: Batcher; writing: Promise<void> } | undefined;
  const failedFile = (): { channel: Channel; batcher: Batcher; writing: Promise<void> } => {
    if (failed) return failed;
    const channel = new Channel();
    const writing = upload(deps.reports, uri(FAILED_FILE), channel);
    writing.catch(() => undefined); // awaited below; the channel makes the producer throw instead
    failed = { channel, batcher: new Batcher(channel), writing };
    return failed;
  };
  const usage = emptyUsage();
  const errors = new ErrorTally();
  const rows = { succeeded: 0, failed: 0, missing: 0 };
  try {
    for await (const [request, response, status, customId] of bigquery.rows(ref, columns)) {
      if (options.signal?.aborted) {
        throw new TransientError(
          'DEADLINE.EXCEEDED',
          'the digest ran out of time; it is started again by a later poll run',
        );
      }
      const row = readOutputRow(record.provider, {
        ...(anthropic ? { custom_id: customId } : {}),
        request: parseJson(request),
        response: parseJson(response),
        status: status ?? '',
      });
      addUsage(usage, row.usage);
      if (row.ok) {
        rows.succeeded++;
        continue;
      }
      rows.failed++;
      if (row.error !== null) errors.add(row.error);
      const line = requestLine(request, anthropic ? (customId ?? null) : undefined);
      await failedFile().batcher.add(Buffer.from(`${line}\n`));
    }
    await failed?.batcher.flush();
    failed?.channel.close();
  } catch (err) {
    failed?.channel.stop(err instanceof Error ? err : new Error(String(err)));
    await failed?.writing.catch(() => undefined);
    throw err;
  }
  await failed?.writing;
  // Requests the table has no row for (the job stopped early): counted, not listed.
  const requests = record.requestCount ?? rows.succeeded + rows.failed;
  rows.missing = Math.max(0, requests - rows.succeeded - rows.failed);

  const actualUsd = actualCost(deps.config.PRICE_TABLE, record.model, usage);
  const summary: ResultsSummary = {
    rows,
    summaryUri: uri(SUMMARY_FILE),
    resultsUri: table,
    failedRowsUri: rows.failed > 0 ? uri(FAILED_FILE) : null,
  };
  const digest: Digest = { results: summary, usage, actualUsd, pricing, note: null, retry: null };
  await deps.reports.write(
    uri(SUMMARY_FILE),
    summaryJson(record, digest, {
      predictionFiles: [table],
      topErrors: errors.top(TOP_ERRORS),
      unmatchedOutputLines: 0,
      requestCount: requests,
    }),
    'application/json',
  );
  return digest;
}

function parseJson(cell: string | null | undefined): unknown {
  if (cell === null || cell === undefined || cell === '') return null;
  try {
    return JSON.parse(cell) as unknown;
  } catch {
    return cell;
  }
}
