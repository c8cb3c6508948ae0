/**
 * `batch-courier results <jobId> [--out FILE]`: the digest of a finished job: its `summary.json`
 * (rows, tokens, cost, prediction files, most frequent row errors), and with `--out` its
 * `results.jsonl` (one line per request, in input order) downloaded to FILE (`-`: stdout).
 */
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from '../context.js';
import { bytes, fields, table } from '../format.js';
import { CliError } from '../options.js';
import { noDigest, outputFile, requireRecord } from '../records.js';

/** Reads a whole (small) object into a string. */
async function readText(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts).toString('utf8');
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
const str = (v: unknown, otherwise: string): string => (typeof v === 'string' ? v : otherwise);
const num = (v: unknown): string => (typeof v === 'number' ? v.toLocaleString('en-US') : '-');

export async function resultsCommand(ctx: Context, jobId: string, out?: string): Promise<number> {
  const record = await requireRecord(ctx, jobId);
  const summaryFile = await outputFile(ctx, record, 'summary.json');
  if (!summaryFile) throw noDigest(record, 'summary.json');
  const { reader } = await ctx.deps();
  const text = await readText(
    reader.read(summaryFile.bucket, summaryFile.name, summaryFile.generation),
  );
  let summary: Json;
  try {
    summary = obj(JSON.parse(text));
  } catch (err) {
    throw new CliError(
      `gs://${summaryFile.bucket}/${summaryFile.name} is not JSON`,
      'it is written by the poller: was it replaced by hand?',
      { cause: err },
    );
  }

  let written: { path: string; bytes: number; uri: string } | null = null;
  if (out !== undefined && record.outputDirectory?.startsWith('bq://')) {
    // A manifest's job that wrote to BigQuery: its output table is its results.
    const table = record.outputDirectory.slice('bq://'.length);
    throw new CliError(
      `the results of ${jobId} are the BigQuery table ${record.outputDirectory}, not a file`,
      `read them there, for example: bq head --max_rows=20 ${table.replace('.', ':')}`,
    );
  }
  if (out !== undefined) {
    const resultsFile = await outputFile(ctx, record, 'results.jsonl');
    if (!resultsFile) throw noDigest(record, 'results.jsonl');
    const path = out === '-' ? '-' : resolve(ctx.io.cwd, out);
    let count = 0;
    const counted = async function* (): AsyncGenerator<Uint8Array> {
      for await (const chunk of reader.read(
        resultsFile.bucket,
        resultsFile.name,
        resultsFile.generation,
      )) {
        count += chunk.length;
        yield chunk;
      }
    };
    const sink: Writable =
      path === '-'
        ? new Writable({
            write: (chunk: Buffer, _enc, done) => void ctx.io.stdout.write(chunk, () => done()),
          })
        : createWriteStream(path);
    try {
      await pipeline(Readable.from(counted(), { objectMode: false }), sink);
    } catch (err) {
      throw new CliError(
        `could not write ${path}: ${err instanceof Error ? err.message : String(err)}`,
        undefined,
        { cause: err },
      );
    }
    written = { path, bytes: count, uri: `gs://${resultsFile.bucket}/${resultsFile.name}` };
    // The rows went to stdout: nothing else may be mixed in.
    if (path === '-') return 0;
  }

  if (ctx.json) {
    ctx.printJson({ jobId, summary, resultsFile: written });
    return 0;
  }
  ctx.say(render(ctx, summary));
  if (written) {
    ctx.say(`\nwrote ${written.uri} to ${written.path} (${bytes(written.bytes)})`);
  }
  return 0;
}

/** A person's view of summary.json; fields it does not know are left to `--json`. */
function render(ctx: Context, s: Json): string {
  const { c } = ctx;
  const results = obj(s.results);
  const rows = obj(results.rows);
  const usage = obj(s.usage);
  const cost = obj(s.cost);
  const usd = (v: unknown): string => (typeof v === 'number' ? `$${v.toFixed(4)}` : 'unknown');
  const lines: [string, string][] = [
    ['job', c.bold(str(s.jobId, '-'))],
    ['state', str(s.state, '-')],
    [
      'rows',
      `${c.green(`${num(rows.succeeded)} succeeded`)}, ${c.red(`${num(rows.failed)} failed`)}, ${num(rows.missing)} missing`,
    ],
    [
      'tokens',
      `${num(usage.inputTokens)} in, ${num(usage.outputTokens)} out, ${num(usage.thinkingTokens)} thinking, ${num(usage.cachedTokens)} cached`,
    ],
    [
      'cost',
      `${usd(cost.actualUsd)} (estimated before submit: ${usd(cost.estimatedUsd)}; prices of ${str(cost.pricing, '-')})`,
    ],
    ['summary', str(results.summaryUri, '-')],
    ['results', str(results.resultsUri, '-')],
    ['failed rows', str(results.failedRowsUri, 'none')],
  ];
  const files = Array.isArray(s.predictionFiles) ? s.predictionFiles.map(String) : [];
  for (const [i, f] of files.entries()) lines.push([i === 0 ? 'read' : '', f]);
  let text = fields(lines, c);
  const errors = Array.isArray(s.topErrors) ? s.topErrors.map(obj) : [];
  if (errors.length > 0) {
    text += `\n\n${c.dim('most frequent row errors')}\n${table(
      ['COUNT', 'ERROR'],
      errors.map((e) => [num(e.count), str(e.error ?? e.status ?? e.message, '-')]),
      c,
    )}`;
  }
  return text;
}
