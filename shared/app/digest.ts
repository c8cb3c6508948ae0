/**
 * The results digest of a finished job (README "Results and cost"): streams every prediction file
 * of the job's output directory, matches each output line to its input line, and writes under the
 * job's prefix `results.jsonl` (one line per request, in input order), `failed.jsonl` (the failed
 * input lines as they were) and `summary.json` (counts, tokens, cost, prediction files, most
 * frequent errors).
 *
 * Memory is bounded whatever the output's size: an index of the input (a short hash or the
 * custom_id per request, and one byte of outcome per request) and one part of the results at a
 * time. Output lines come back in any order, so results are first spread over parts by input line
 * (temporary objects under `<prefix>.digest/`, or memory when the output is small), then each part
 * is put in order and appended.
 *
 * Idempotent: every file is written create-only and is the same on every attempt (the output
 * files are read by name in byte order, and identical requests are matched in that order); when
 * `summary.json` exists, an earlier attempt finished and its figures are returned as they are.
 */
import { Batcher, Channel } from './channel.js';
import type { Config } from '../config.js';
import { BatchCourierError, PermanentError, TransientError } from '../core/errors.js';
import { costOf } from '../core/events.js';
import type { Digest, JobRecord, ResultsSummary } from '../core/jobs.js';
import { splitLines } from '../core/lines.js';
import { actualCost, pricingName, type Usage } from '../core/pricing.js';
import {
  addUsage,
  emptyUsage,
  ErrorTally,
  LineIndex,
  matchKeys,
  MISSING_ROW_ERROR,
  readOutputRow,
  resultLine,
} from '../core/results.js';
import { isTransientRowError } from '../core/row-errors.js';
import type { Logger } from '../logger.js';
import type { BigQueryTables, ListedObject, ObjectReader, ObjectWriter } from '../ports.js';
import { tableLines } from './sources.js';

/** What a digest needs. */
export interface DigestDeps {
  reader: ObjectReader;
  reports: ObjectWriter;
  /** For jobs over BigQuery (README "Manifests"). */
  bigquery?: BigQueryTables | undefined;
  config: Config;
  log: Logger;
}

/** Options of {@link digestJob}. */
export interface DigestOptions {
  /** Names this attempt's temporary parts (a fresh id per attempt). */
  workId: string;
  /** Stops the digest (its time limit ran out). */
  signal?: AbortSignal;
  /** Results held in memory at once, in bytes (the size of a part). */
  partBytes?: number;
  /**
   * The failed rows may be sent again (README "Failed rows"): the rows that failed for a transient
   * reason, and those with no output line, are written to `inputUri` (the next attempt's input),
   * and the digest's own files go to `filesAt` (an attempt's folder) instead of the job's prefix.
   * Without any such row nothing is retried and the files go to the job's prefix as usual.
   */
  retry?: { inputUri: string; filesAt: string };
}

/** The digest's files under the job's prefix. */
export const SUMMARY_FILE = 'summary.json';
export const RESULTS_FILE = 'results.jsonl';
export const FAILED_FILE = 'failed.jsonl';
/** The pinned input copy the job read (written at submit). */
const PINNED_INPUT = 'input.jsonl';
/** Where temporary parts go, under the job's prefix. */
const WORK_FOLDER = '.digest/';

/** Results held in memory at once by default: a part of the results, in bytes. */
export const DEFAULT_PART_BYTES = 32 << 20;
/** The longest output line read (a response longer than this is not a real one). */
const MAX_OUTPUT_LINE_BYTES = 256 << 20;
/** The longest input line (the validator refuses longer ones). */
const MAX_INPUT_LINE_BYTES = (16 << 20) + 1;
/** The most temporary parts of one digest (uploads open at once while the output is read). */
const MAX_PARTS = 256;
/** Most frequent row errors listed in `summary.json`. */
const TOP_ERRORS = 20;

/** `gs://bucket/name` → `{bucket, name}`. */
function splitUri(uri: string): { bucket: string; name: string } {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m?.[1]) throw new PermanentError('STORAGE.UNAVAILABLE', `not a gs:// URI: ${uri}`);
  return { bucket: m[1], name: m[2] ?? '' };
}

/** True for a prediction file of an output directory: `prediction*.jsonl` directly in it. */
export function isPredictionFile(directoryName: string, name: string): boolean {
  const base = name.slice(directoryName.length);
  return !base.includes('/') && base.startsWith('prediction') && base.endsWith('.jsonl');
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new TransientError(
      'DEADLINE.EXCEEDED',
      'the digest ran out of time; it is started again by a later poll run',
    );
  }
}

/** One object, found by exact name (for its generation), or undefined. */
async function findObject(
  reader: ObjectReader,
  bucket: string,
  name: string,
): Promise<ListedObject | undefined> {
  return (await reader.list(bucket, name)).find((o) => o.name === name);
}

async function readWhole(reader: ObjectReader, bucket: string, o: ListedObject): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of reader.read(bucket, o.name, o.generation))
    parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/**
 * Where a digest of this record's own job may lie: an input's first job's in `attempt-1/` when it
 * sent rows again, else under its prefix; a retry's, under its own prefix. Looking in both makes
 * an earlier attempt's decision stick (a retry is sent, or not, once), whatever has changed since.
 */
function digestFolders(record: JobRecord): string[] {
  return record.retryOf
    ? [record.outputUriPrefix]
    : [`${record.outputUriPrefix}attempt-1/`, record.outputUriPrefix];
}

/**
 * The digest an earlier attempt completed (its summary.json, written last, exists), or undefined.
 */
export async function recordedDigest(
  record: JobRecord,
  deps: DigestDeps,
  folders: string[] = digestFolders(record),
): Promise<Digest | undefined> {
  for (const folder of folders) {
    const at = splitUri(folder);
    const found = await findObject(deps.reader, at.bucket, at.name + SUMMARY_FILE);
    if (!found) continue;
    const bytes = await readWhole(deps.reader, at.bucket, found);
    return digestFromSummary(bytes, pricingName(deps.config.PRICE_TABLE));
  }
  return undefined;
}

/** Digests a finished job's output (see the module comment). Throws when storage fails. */
export async function digestJob(
  record: JobRecord,
  deps: DigestDeps,
  options: DigestOptions,
): Promise<Digest> {
  const prices = deps.config.PRICE_TABLE;
  const pricing = pricingName(prices);
  let filesAt = record.outputUriPrefix;
  const uri = (file: string): string => `${filesAt}${file}`;
  const nothing = (note: string): Digest => ({
    results: null,
    usage: null,
    actualUsd: null,
    pricing,
    note,
  });

  // An earlier attempt that finished wrote summary.json last: its figures stand.
  const earlier = await recordedDigest(record, deps);
  if (earlier) return earlier;

  if (!record.outputDirectory) return nothing('Vertex AI reported no output directory');
  const directory = splitUri(record.outputDirectory.replace(/\/*$/, '/'));
  const files = (await deps.reader.list(directory.bucket, directory.name)).filter((o) =>
    isPredictionFile(directory.name, o.name),
  );
  if (files.length === 0) return nothing(`no prediction file in ${record.outputDirectory}`);

  const inputLines = await inputOf(record, deps);

  // 1. The index of the input: match keys → line numbers.
  const index = new LineIndex();
  let lineCount = 0;
  for await (const line of inputLines()) {
    checkAbort(options.signal);
    if (isBlank(line)) continue;
    const value = parseObject(line);
    if (value) for (const key of matchKeys(record.provider, value)) index.add(key, lineCount);
    lineCount++;
  }
  index.seal(lineCount);

  // 2. The output, in any order: each matched line's result goes to the part of its input line.
  const outcome = new Uint8Array(lineCount); // MISSING, OK, FAILED or TRANSIENT
  const usage = emptyUsage();
  const errors = new ErrorTally();
  let unmatched = 0;
  const totalBytes = files.reduce((n, f) => n + f.size, 0);
  const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  // As many parts as the output fills: a result is shorter than its output line (which echoes the
  // request), so a part's results mostly fit in one window; a part with longer ones than the
  // others is read more than once (see StoredParts). Each part is an upload open while the output
  // is read, with buffers of its own: fewer parts, less memory. At most MAX_PARTS.
  const partCount =
    totalBytes <= partBytes
      ? 1
      : Math.max(1, Math.min(Math.ceil(totalBytes / partBytes), MAX_PARTS, lineCount || 1));
  const parts =
    partCount === 1
      ? new MemoryParts(lineCount)
      : new StoredParts(deps, `${record.outputUriPrefix}${WORK_FOLDER}${options.workId}/`, {
          partCount,
          linesPerPart: Math.ceil(lineCount / partCount),
          lineCount,
          windowBytes: partBytes,
        });
  try {
    for (const file of files) {
      const where = `gs://${directory.bucket}/${file.name}`;
      const lines = splitLines(
        deps.reader.read(directory.bucket, file.name, file.generation),
        where,
        MAX_OUTPUT_LINE_BYTES,
      );
      for await (const raw of lines) {
        checkAbort(options.signal);
        if (isBlank(raw)) continue;
        const value = parseObject(raw);
        const row = value ? readOutputRow(record.provider, value) : undefined;
        const at = row ? index.take(row.keys) : undefined;
        // A line's tokens were billed whether or not it matched a request.
        if (row) addUsage(usage, row.usage);
        if (!row || at === undefined) {
          unmatched++;
          continue;
        }
        outcome[at] = row.ok ? OK : isTransientRowError(row.error ?? '') ? TRANSIENT : FAILED;
        if (row.error !== null) errors.add(row.error);
        const text = resultLine(
          at + 1,
          row.key,
          row.ok ? 'succeeded' : 'failed',
          row.error,
          row.response,
        );
        await parts.add(at, text);
      }
    }
    await parts.sealed();
    // The index has done its work: its memory goes before the results are read back.
    index.clear();

    const rows = { succeeded: 0, failed: 0, missing: 0 };
    let retriable = 0;
    for (const o of outcome) {
      if (o === OK) rows.succeeded++;
      else if (o === MISSING) rows.missing++;
      else rows.failed++;
      if (o === MISSING || o === TRANSIENT) retriable++;
    }
    const anyFailed = rows.failed + rows.missing > 0;
    // Rows sent again: those that failed for a reason that may pass, and those with no output line.
    const retry = options.retry && retriable > 0 ? options.retry : undefined;
    if (retry) filesAt = retry.filesAt;

    // 3. results.jsonl and failed.jsonl, in input order, read against the input once more.
    const results = new Channel();
    const failed = anyFailed ? new Channel() : undefined;
    const again = retry ? new Channel() : undefined;
    const writing = [
      upload(deps.reports, uri(RESULTS_FILE), results),
      ...(failed ? [upload(deps.reports, uri(FAILED_FILE), failed)] : []),
      ...(again && retry ? [upload(deps.reports, retry.inputUri, again)] : []),
    ];
    // Awaited below; until then an upload that fails must not be an unhandled rejection (the
    // functions framework would end the instance): its channel makes the producer throw instead.
    for (const w of writing) w.catch(() => undefined);
    const writeResults = new Batcher(results);
    const writeFailed = failed ? new Batcher(failed) : undefined;
    const writeAgain = again ? new Batcher(again) : undefined;
    try {
      let at = 0;
      for await (const line of inputLines()) {
        checkAbort(options.signal);
        if (isBlank(line) || at >= lineCount) continue;
        const o = outcome[at];
        if (o === MISSING) {
          const key = record.provider === 'anthropic' ? customIdOf(line) : null;
          await writeResults.addText(resultLine(at + 1, key, 'failed', MISSING_ROW_ERROR, null));
        } else {
          await writeResults.add(await parts.take(at));
        }
        if (o !== OK) {
          await writeFailed?.add(line);
          await writeFailed?.add(NEWLINE);
        }
        if (o === MISSING || o === TRANSIENT) {
          await writeAgain?.add(line);
          await writeAgain?.add(NEWLINE);
        }
        at++;
      }
      await writeResults.flush();
      await writeFailed?.flush();
      await writeAgain?.flush();
      results.close();
      failed?.close();
      again?.close();
    } catch (err) {
      const stop = err instanceof Error ? err : new Error(String(err));
      results.stop(stop);
      failed?.stop(stop);
      again?.stop(stop);
      await Promise.allSettled(writing);
      throw err;
    }
    await Promise.all(writing);

    // 4. summary.json, last: its presence says the digest is complete.
    const actualUsd = actualCost(prices, record.model, usage);
    if (actualUsd === null) {
      deps.log.warning('cost.unpriced', 'No price for this model: actualUsd is null', {
        jobId: record.jobId,
        model: record.model,
        pricing,
        fix: 'add the model to PRICE_TABLE (README "Results and cost")',
      });
    }
    const summary: ResultsSummary = {
      rows,
      summaryUri: uri(SUMMARY_FILE),
      resultsUri: uri(RESULTS_FILE),
      failedRowsUri: anyFailed ? uri(FAILED_FILE) : null,
    };
    const digest: Digest = {
      results: summary,
      usage,
      actualUsd,
      pricing,
      note: null,
      retry: retry ? { inputUri: retry.inputUri, requests: retriable } : null,
    };
    await deps.reports.write(
      uri(SUMMARY_FILE),
      summaryJson(record, digest, {
        predictionFiles: files.map((f) => `gs://${directory.bucket}/${f.name}`),
        topErrors: errors.top(TOP_ERRORS),
        unmatchedOutputLines: unmatched,
        requestCount: lineCount,
      }),
      'application/json',
    );
    // Parts of earlier attempts that died (an instance killed mid-digest) go too.
    await removeAll(deps, `${record.outputUriPrefix}${WORK_FOLDER}`);
    if (unmatched > 0) {
      deps.log.warning('digest.unmatched', 'Output lines matched no input line', {
        jobId: record.jobId,
        unmatched,
      });
    }
    return digest;
  } finally {
    await parts.dispose();
  }
}

/**
 * The lines the job read, in order, read anew on each call: the pinned copy of a JSONL input (of
 * one submitted before pinning: the input itself), a manifest's pinned files one after the other,
 * or a BigQuery table's rows as the JSONL lines they stand for.
 */
export async function inputOf(
  record: JobRecord,
  deps: DigestDeps,
): Promise<() => AsyncIterable<Buffer>> {
  const linesOf = (bucket: string, name: string, generation: string): AsyncIterable<Buffer> =>
    splitLines(
      deps.reader.read(bucket, name, generation),
      `gs://${bucket}/${name}`,
      MAX_INPUT_LINE_BYTES,
    );
  const source = record.manifest?.source;
  if (source?.kind === 'bigquery') {
    const bigquery = deps.bigquery;
    if (!bigquery) throw new Error('no BigQuery client: the functions always configure one');
    // Read again on each pass, and compared with the rows validated (the fingerprint).
    const expected = record.manifest?.tableFingerprint;
    return () => tableLines(bigquery, source.uri, record.provider, expected);
  }
  if (record.manifest) {
    const files = await Promise.all(
      record.manifest.files.map(async (f) => {
        const at = splitUri(f.pinnedUri);
        const found = await findObject(deps.reader, at.bucket, at.name);
        if (!found) {
          throw new TransientError(
            'STORAGE.UNAVAILABLE',
            `the pinned input ${f.pinnedUri} is missing`,
          );
        }
        return { bucket: at.bucket, name: at.name, generation: found.generation };
      }),
    );
    return async function* () {
      for (const f of files) yield* linesOf(f.bucket, f.name, f.generation);
    };
  }
  const prefix = splitUri(record.outputUriPrefix);
  const pinned = await findObject(deps.reader, prefix.bucket, prefix.name + PINNED_INPUT);
  const input = pinned
    ? { bucket: prefix.bucket, name: pinned.name, generation: pinned.generation }
    : { bucket: record.bucket, name: record.object, generation: record.generation };
  return () => linesOf(input.bucket, input.name, input.generation);
}

const NEWLINE = Buffer.from('\n');

/** What became of each request: no output line, succeeded, failed for good, failed for now. */
const MISSING = 0;
const OK = 1;
const FAILED = 2;
const TRANSIENT = 3;

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

function parseObject(line: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function customIdOf(line: Buffer): string | null {
  const id = parseObject(line)?.custom_id;
  return typeof id === 'string' ? id : null;
}

/** Uploads what `channel` carries; the channel learns when the upload stops. */
export function upload(reports: ObjectWriter, uri: string, channel: Channel): Promise<void> {
  return reports.writeStream(uri, channel, 'application/jsonl').then(
    () => channel.stop(),
    (err: unknown) => {
      channel.stop(err instanceof Error ? err : new Error(String(err)));
      throw err;
    },
  );
}

/** The content of summary.json. */
export function summaryJson(
  record: JobRecord,
  digest: Digest,
  more: {
    predictionFiles: string[];
    topErrors: { error: string; count: number }[];
    unmatchedOutputLines: number;
    requestCount: number;
  },
): string {
  return `${JSON.stringify(
    {
      schemaVersion: 1,
      jobId: record.jobId,
      vertexJob: record.vertexJob,
      state: record.vertexState,
      model: record.model,
      input: { uri: record.inputUri, requestCount: more.requestCount },
      results: digest.results,
      usage: digest.usage,
      cost: costOf({ estimate: record.estimate, digest }),
      predictionFiles: more.predictionFiles,
      topErrors: more.topErrors,
      unmatchedOutputLines: more.unmatchedOutputLines,
      retry: digest.retry ?? null,
    },
    null,
    2,
  )}\n`;
}

/** The digest an earlier attempt recorded in summary.json, or undefined if it cannot be read. */
function digestFromSummary(bytes: Buffer, pricing: string): Digest | undefined {
  const value = parseObject(bytes);
  const results = value?.results as ResultsSummary | null | undefined;
  const usage = value?.usage as Usage | null | undefined;
  const cost = value?.cost as { actualUsd?: number | null; pricing?: string } | undefined;
  const retry = value?.retry as Digest['retry'];
  if (!value || results === undefined || usage === undefined || !cost) return undefined;
  return {
    results,
    usage,
    actualUsd: cost.actualUsd ?? null,
    pricing: cost.pricing ?? pricing,
    note: null,
    retry: retry ?? null,
  };
}

/** Deletes every object under `folderUri` (best effort: what is left goes with the next digest). */
async function removeAll(deps: DigestDeps, folderUri: string): Promise<void> {
  const { bucket, name } = splitUri(folderUri);
  const left = await deps.reader.list(bucket, name).catch(() => []);
  await Promise.all(
    left.map((o) =>
      deps.reports.remove(`gs://${bucket}/${o.name}`).catch((err: unknown) => {
        if (!(err instanceof BatchCourierError)) throw err;
      }),
    ),
  );
}

/** Where results wait between the output's order and the input's. */
interface Parts {
  add(line: number, text: string): Promise<void>;
  /** Every result was added. */
  sealed(): Promise<void>;
  /** The result of `line`, in input order (each line once); its bytes last until the next take. */
  take(line: number): Promise<Buffer>;
  dispose(): Promise<void>;
}

/** All results in memory: the output is small. */
class MemoryParts implements Parts {
  private readonly texts: (Buffer | undefined)[];
  constructor(lineCount: number) {
    this.texts = new Array<Buffer | undefined>(lineCount);
  }
  add(line: number, text: string): Promise<void> {
    this.texts[line] = Buffer.from(text);
    return Promise.resolve();
  }
  sealed(): Promise<void> {
    return Promise.resolve();
  }
  take(line: number): Promise<Buffer> {
    const text = this.texts[line];
    this.texts[line] = undefined;
    if (!text) throw new Error(`no result for line ${line + 1}`);
    return Promise.resolve(text);
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Results spread over temporary objects, one per range of input lines, each written as a stream
 * of records `[u32 line][u32 length][bytes]`. They are read back a window of lines at a time: the
 * lines that follow in input order whose results fit in `windowBytes` together (one line at
 * least), so a part holding unusually long answers is read more than once, never held whole.
 */
class StoredParts implements Parts {
  private readonly channels: Channel[] = [];
  private readonly batchers: Batcher[] = [];
  private readonly uploads: Promise<void>[] = [];
  /** Each line's result size in bytes, to cut windows. */
  private readonly sizes: Uint32Array;
  /** The window loaded: lines [from, to). */
  private window = { from: 0, to: 0 };
  /**
   * The window's results, one after the other in input order (a buffer kept for the next window:
   * no allocation per result), where each starts (`to - from + 1` offsets), and which were read.
   */
  private buffer = Buffer.alloc(0);
  private offsets = new Float64Array(1);
  private present = new Uint8Array(0);

  constructor(
    private readonly deps: DigestDeps,
    private readonly folder: string,
    private readonly shape: {
      partCount: number;
      linesPerPart: number;
      lineCount: number;
      windowBytes: number;
    },
  ) {
    this.sizes = new Uint32Array(shape.lineCount);
    for (let p = 0; p < shape.partCount; p++) {
      // Little queued per part: there are many, and the upload buffers some of its own.
      const channel = new Channel(1 << 16);
      this.channels.push(channel);
      this.batchers.push(new Batcher(channel, 1 << 16));
      const uploaded = upload(deps.reports, this.partUri(p), channel);
      uploaded.catch(() => undefined); // awaited in sealed(); a failure also stops the channel
      this.uploads.push(uploaded);
    }
  }

  private partUri(p: number): string {
    return `${this.folder}part-${String(p).padStart(5, '0')}`;
  }

  async add(line: number, text: string): Promise<void> {
    const batcher = this.batchers[Math.floor(line / this.shape.linesPerPart)];
    // Encoded straight into the part's chunk: no buffer of its own per result.
    if (batcher) this.sizes[line] = await batcher.addRecord(line, text);
  }

  async sealed(): Promise<void> {
    for (const [p, batcher] of this.batchers.entries()) {
      await batcher.flush();
      this.channels[p]?.close();
    }
    await Promise.all(this.uploads);
  }

  async take(line: number): Promise<Buffer> {
    if (line < this.window.from || line >= this.window.to) await this.load(line);
    const i = line - this.window.from;
    if (this.present[i] !== 1) throw new Error(`no result for line ${line + 1} in its part`);
    this.present[i] = 0;
    return this.buffer.subarray(this.offsets[i], this.offsets[i + 1]);
  }

  /** Loads the window that starts at `from`: within its part, as many lines as fit. */
  private async load(from: number): Promise<void> {
    const { linesPerPart, lineCount, windowBytes } = this.shape;
    const p = Math.floor(from / linesPerPart);
    const end = Math.min(lineCount, (p + 1) * linesPerPart);
    let to = from + 1;
    let bytes = this.sizes[from] ?? 0;
    while (to < end && bytes + (this.sizes[to] ?? 0) <= windowBytes) bytes += this.sizes[to++] ?? 0;
    this.window = { from, to };
    this.offsets = new Float64Array(to - from + 1);
    for (let i = from; i < to; i++) {
      this.offsets[i - from + 1] = (this.offsets[i - from] ?? 0) + (this.sizes[i] ?? 0);
    }
    this.present = new Uint8Array(to - from);
    // One result longer than the window gets a buffer of its own, not kept for the next.
    const size = Math.max(bytes, windowBytes);
    if (this.buffer.length !== size) this.buffer = Buffer.allocUnsafe(size);
    const { bucket, name } = splitUri(this.partUri(p));
    const found = await findObject(this.deps.reader, bucket, name);
    if (!found) {
      // An empty part was never created (no chunk pushed, then a create of nothing): nothing in it.
      return;
    }
    // Records are parsed as the part streams in, and those of the window copied to their place in
    // it (the reader may reuse its chunks); a record may span chunks, its head too.
    const head = Buffer.allocUnsafe(8);
    let headUsed = 0;
    /** The record being read across chunks: its line, where its bytes go (-1: not in the window). */
    let line = 0;
    let target = -1;
    let length = 0;
    let filled = -1;
    for await (const piece of this.deps.reader.read(bucket, found.name, found.generation)) {
      const chunk = Buffer.isBuffer(piece)
        ? piece
        : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      let at = 0;
      while (at < chunk.length) {
        if (filled >= 0) {
          // The rest of a record begun in an earlier chunk.
          const n = Math.min(length - filled, chunk.length - at);
          if (target >= 0) chunk.copy(this.buffer, target + filled, at, at + n);
          filled += n;
          at += n;
          if (filled < length) break;
          if (target >= 0) this.present[line - from] = 1;
          filled = -1;
          continue;
        }
        if (headUsed === 0 && at + 8 <= chunk.length) {
          line = chunk.readUInt32LE(at);
          length = chunk.readUInt32LE(at + 4);
          at += 8;
        } else {
          const n = Math.min(8 - headUsed, chunk.length - at);
          chunk.copy(head, headUsed, at, at + n);
          headUsed += n;
          at += n;
          if (headUsed < 8) break;
          headUsed = 0;
          line = head.readUInt32LE(0);
          length = head.readUInt32LE(4);
        }
        target = -1;
        if (line >= from && line < to) {
          if (length !== this.sizes[line]) {
            throw new Error(`the result of line ${line + 1} in its part is not as written`);
          }
          target = this.offsets[line - from] ?? 0;
        }
        if (at + length <= chunk.length) {
          if (target >= 0) {
            chunk.copy(this.buffer, target, at, at + length);
            this.present[line - from] = 1;
          }
          at += length;
        } else {
          filled = 0;
        }
      }
    }
  }

  async dispose(): Promise<void> {
    for (const channel of this.channels) channel.stop();
    await Promise.allSettled(this.uploads);
    await removeAll(this.deps, this.folder);
  }
}
