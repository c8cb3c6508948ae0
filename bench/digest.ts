/**
 * Digest benchmark: the results digest of one finished Gemini job (`digestJob`, what the poller
 * runs before it announces a job) against a bare loop that reads the same prediction files through
 * the same reader and `JSON.parse`s every line, measured in the same run: MB/s of each (prediction
 * bytes / seconds), their ratio, and the digest's peak RSS. The job: ROWS requests (default
 * 200,000, ~1 GB of prediction output) answered out of order, 2% of them failed, in FILES
 * prediction files (see bench/digest-data.ts); the digest's own result is checked against what was
 * generated (rows succeeded / failed / missing, tokens, `results.jsonl` in input order).
 *
 * Everything goes over HTTP through the product's Cloud Storage adapter (`createGcsObjectReader`,
 * `createGcsObjectWriter` over a `@google-cloud/storage` client with the options the functions
 * use) to the builtin storage emulator (`local/storage/server.ts`), which runs in a process of its
 * own: its CPU (serving, hashing and storing the bytes, which Cloud Storage does elsewhere) and its
 * memory stay out of the figures, and it does not share the measured process's event loop. Each
 * measurement runs in a fresh child process, in turn (the rows of the table):
 *
 *   digest  `digestJob` of the job, then checked; followed by the peaks and times of its passes
 *   bare    the bare loop: every prediction file read and each line `JSON.parse`d
 *   read    the read-only loop: the same reads, no parsing
 *   write   the write-only loop: as many bytes as the output has, uploaded as one object through
 *           the product's writer (`createGcsObjectWriter`, `writeStream`, as the digest writes)
 *
 * MB/s is the prediction output's size over each row's seconds (for the write-only loop: the same
 * number of bytes, written). A peak RSS is the kernel's high-water mark of that process (`VmHWM`),
 * cross-checked by sampling `process.memoryUsage()` every 50 ms, which also gives the peaks of each
 * pass of the digest (told apart by its storage calls). CPU seconds are printed too: on a busy
 * machine they move less than wall time. Two bounds follow the verdict. From the read-only and
 * bare loops, an estimate of the best ratio this digest's design allows (it parses input and
 * output, and moves several times the output's bytes through storage). From the bare, read-only
 * and write-only loops, a lower bound for any digest that meets the contract (results.jsonl in
 * input order while output lines come in any order, bounded memory, so the results go through
 * temporary storage): (1) read and parse the output, (2) read and parse the input once, (3) write
 * the results to temporary storage and read them back once, (4) write results.jsonl once, each at
 * the rate this run measured; printed as time and as the best digest/bare ratio, by wall time
 * (the steps' times added up: it assumes they do not overlap) and by CPU time of the measuring
 * process (which holds whatever overlaps). The generator writes the files as streams, never the
 * whole output in memory.
 *
 *   npm run bench:digest                        # 200,000 rows, 4 files, RUNS=1
 *   npm run bench:digest -- --rows 20000        # a quick run (or ROWS=20000)
 *   RUNS=3 npm run bench:digest                 # median of 3 runs of each
 *   PROFILE=1 npm run bench:digest              # also a CPU profile of the digest (summarized)
 *   PART_BYTES=8388608 npm run bench:digest     # the digest's part size (default 32 MiB)
 *   DIGEST_MODULE=path/to/candidate.js npm run bench:digest   # measure another digestJob
 *   FUNCTION_NODE_OPTIONS=--max-semi-space-size=1 npm run bench:digest   # other Node options
 *
 * Units: MB and MB/s are decimal; RSS is in MiB (1,048,576 bytes), as a function's memory limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Storage } from '@google-cloud/storage';
import { startStorageEmulator } from '../local/storage/server.js';
import { fastCrc32cGenerator } from '../shared/adapters/crc32c.js';
import { createGcsObjectReader, createGcsObjectWriter } from '../shared/adapters/gcs-objects.js';
import {
  DEFAULT_PART_BYTES,
  digestJob as productDigestJob,
  isPredictionFile,
} from '../shared/app/digest.js';
import { loadConfig } from '../shared/config.js';
import { upgradeRecord, type Digest, type JobRecord } from '../shared/core/jobs.js';
import { splitLines } from '../shared/core/lines.js';
import { DIGEST_TIME_LIMIT_SECONDS } from '../shared/core/transitions.js';
import { FUNCTION_NODE_OPTIONS } from '../shared/function-targets.js';
import { createLogger } from '../shared/logger.js';
import type { ObjectReader, ObjectWriter } from '../shared/ports.js';
import { formatProfile } from './cpu-profile.js';
import { syntheticJob, type JobExpectations } from './digest-data.js';

/**
 * The digest runs with the poll function's Node options, as deployed (Terraform sets the same;
 * today Node's defaults); `FUNCTION_NODE_OPTIONS="--flag …"` measures it with others. The loops it
 * is compared with run with Node's defaults.
 */
const FUNCTION_FLAGS = (process.env.FUNCTION_NODE_OPTIONS ?? FUNCTION_NODE_OPTIONS.poll)
  .split(' ')
  .filter((flag) => flag !== '');

const GOAL_RATIO = 0.6;
const GOAL_RSS_MIB = 256;
const PROJECT = 'bench-project';
const BUCKET = 'bench-digest';
const JOB_ID = 'bench-reviews-0123456789abcdef';
const PREFIX = `results/${JOB_ID}/`;
const OUTPUT_DIR = `${PREFIX}prediction-model-2026-11-26T10:00:00.000000Z/`;
const MODEL = 'publishers/google/models/gemini-2.5-flash';
/** As functions/dependencies.ts builds the client of the functions. */
const STORAGE_REQUEST_TIMEOUT_MS = 15_000;
const SAMPLE_MS = 50;
const SCRIPT = fileURLToPath(import.meta.url);
const WORK = fileURLToPath(new URL('../../.local/bench/digest/', import.meta.url));

/** What a child process measures. */
interface ChildSpec {
  mode: 'digest' | 'bare' | 'read' | 'write' | 'idle';
  storageUrl: string;
  rows: number;
  /** Bytes the write-only loop uploads. */
  writeBytes?: number;
  partBytes?: number;
  /** A module exporting a `digestJob` to measure instead of the product's (a candidate). */
  digestModule?: string;
}

/** The `digestJob` to measure: the product's, or a candidate's (DIGEST_MODULE). */
async function loadDigest(path: string | undefined): Promise<typeof productDigestJob> {
  if (!path) return productDigestJob;
  const module = (await import(pathToFileURL(resolve(path)).href)) as {
    digestJob?: typeof productDigestJob;
  };
  if (!module.digestJob) throw new Error(`${path} exports no digestJob`);
  return module.digestJob;
}

/** A timed event of the digest's storage calls (ms since the digest started). */
interface StorageEvent {
  t: number;
  op: 'read' | 'read-end' | 'write-stream' | 'write-stream-end' | 'write' | 'remove' | 'list';
  name: string;
  bytes?: number;
}

/** One measurement, as a child process reports it on stdout. */
interface Measurement {
  ms: number;
  cpuMs: number;
  bytes: number;
  lines: number;
  /** Kernel high-water mark of the child's RSS, KiB. */
  maxRssKiB: number;
  /** Largest `process.memoryUsage()` seen, sampled every SAMPLE_MS (bytes). */
  sampled: MemorySample;
  /** Every sample: ms since the measurement started, and the fields (bytes). */
  timeline: (MemorySample & { t: number })[];
  crc32c: string;
  digest?: Digest;
  events?: StorageEvent[];
}

/** The fields of `process.memoryUsage()` followed here. */
interface MemorySample {
  rss: number;
  heapUsed: number;
  /** The V8 heap's size (used or not), part of the RSS. */
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** A measurement with what the parent saw around it. */
interface Run extends Measurement {
  emulatorCpuMs: number;
  load: number;
}

// ---------------------------------------------------------------------------------------------
// Child processes: the storage emulator, and the measurements.

/** `--emulator <root>`: serves the bucket until stdin closes; prints its URL. */
async function emulatorProcess(root: string): Promise<void> {
  const emulator = await startStorageEmulator({ root });
  await emulator.createBucket(BUCKET);
  process.stdout.write(`${JSON.stringify({ url: emulator.url })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    void emulator.close().finally(() => process.exit(0));
  });
}

/** A Storage client as the functions build it, pointed at the emulator. */
async function storageClient(url: string): Promise<{ storage: Storage; crc32c: string }> {
  process.env.STORAGE_EMULATOR_HOST = url;
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  const storage = new Storage({
    projectId: PROJECT,
    timeout: STORAGE_REQUEST_TIMEOUT_MS,
    crc32cGenerator: fastCrc32cGenerator,
  });
  return { storage, crc32c: 'shared/adapters/crc32c.ts' };
}

/** Peak RSS of this process (KiB): `VmHWM`, which exec resets (unlike getrusage's maxRSS). */
function peakRssKiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (hwm) return Number(hwm);
  } catch {
    // Not Linux.
  }
  return process.resourceUsage().maxRSS;
}

/** Samples `process.memoryUsage()` every SAMPLE_MS; `stop` returns the peaks and the timeline. */
function memorySampler(t0: number): {
  stop: () => Pick<Measurement, 'sampled' | 'timeline'>;
} {
  const sampled: MemorySample = {
    rss: 0,
    heapUsed: 0,
    heapTotal: 0,
    external: 0,
    arrayBuffers: 0,
  };
  const timeline: Measurement['timeline'] = [];
  const sample = (): void => {
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    timeline.push({
      t: Math.round(performance.now() - t0),
      rss,
      heapUsed,
      heapTotal,
      external,
      arrayBuffers,
    });
    sampled.heapTotal = Math.max(sampled.heapTotal, heapTotal);
    sampled.rss = Math.max(sampled.rss, rss);
    sampled.heapUsed = Math.max(sampled.heapUsed, heapUsed);
    sampled.external = Math.max(sampled.external, external);
    sampled.arrayBuffers = Math.max(sampled.arrayBuffers, arrayBuffers);
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { sampled, timeline };
    },
  };
}

/** The reader, with each read's start and end (and bytes) noted. */
function timedReader(reader: ObjectReader, events: StorageEvent[], t0: number): ObjectReader {
  const now = (): number => performance.now() - t0;
  return {
    async *read(bucket, name, generation) {
      events.push({ t: now(), op: 'read', name });
      let bytes = 0;
      for await (const chunk of reader.read(bucket, name, generation)) {
        bytes += chunk.length;
        yield chunk;
      }
      events.push({ t: now(), op: 'read-end', name, bytes });
    },
    async list(bucket, prefix) {
      const out = await reader.list(bucket, prefix);
      events.push({ t: now(), op: 'list', name: prefix });
      return out;
    },
  };
}

/** The writer, with each write's start and end noted. */
function timedWriter(writer: ObjectWriter, events: StorageEvent[], t0: number): ObjectWriter {
  const now = (): number => performance.now() - t0;
  const name = (uri: string): string => uri.replace(/^gs:\/\/[^/]+\//, '');
  return {
    copy: (source, destination) => writer.copy(source, destination),
    async write(uri, content, contentType) {
      await writer.write(uri, content, contentType);
      events.push({ t: now(), op: 'write', name: name(uri) });
    },
    async writeStream(uri, chunks, contentType) {
      events.push({ t: now(), op: 'write-stream', name: name(uri) });
      let bytes = 0;
      async function* counted(): AsyncGenerator<Uint8Array> {
        for await (const chunk of chunks) {
          bytes += chunk.length;
          yield chunk;
        }
      }
      await writer.writeStream(uri, counted(), contentType);
      events.push({ t: now(), op: 'write-stream-end', name: name(uri), bytes });
    },
    async remove(uri) {
      await writer.remove(uri);
      events.push({ t: now(), op: 'remove', name: name(uri) });
    },
  };
}

/**
 * The finished job's record, as the poller holds it when it digests. Written in the shape of the
 * first records with a digest, and brought to today's by `upgradeRecord` (as the job store does).
 */
function jobRecord(rows: number): JobRecord {
  const stored: Partial<JobRecord> = {
    jobId: JOB_ID,
    status: 'COMPLETED',
    bucket: 'bench-input',
    object: 'inputs/reviews.jsonl',
    generation: '1764150067498213',
    inputUri: 'gs://bench-input/inputs/reviews.jsonl',
    model: MODEL,
    provider: 'google',
    location: 'us-central1',
    queue: `${MODEL}@us-central1`,
    outputUriPrefix: `gs://${BUCKET}/${PREFIX}`,
    requestCount: rows,
    estimate: null,
    vertexJob:
      'projects/510528649030/locations/us-central1/batchPredictionJobs/3814889423749775360',
    vertexState: 'JOB_STATE_SUCCEEDED',
    error: null,
    lineErrors: [],
    stats: null,
    outputDirectory: `gs://${BUCKET}/${OUTPUT_DIR.replace(/\/$/, '')}`,
    vertexCreateTime: '2026-11-26T09:41:09.114020Z',
    vertexStartTime: '2026-11-26T09:47:51.802311Z',
    vertexEndTime: '2026-11-26T10:02:13.559871Z',
    createAttempts: 1,
    waitAttempts: 0,
    nextAttemptAt: null,
    waitingSince: null,
    cancelRequestedAt: null,
    digest: null,
    digestAttempts: 1,
    lease: null,
    outstanding: true,
    eventId: null,
    publishedAt: null,
    createTime: '2026-11-26T09:41:08.000Z',
    updateTime: '2026-11-26T10:02:14.000Z',
  };
  return upgradeRecord(stored as JobRecord);
}

/**
 * The bare loop: every prediction file, through the same reader, split on `\n` as bytes (pieces of
 * a line across chunks joined once, at its newline), every line `JSON.parse`d.
 */
async function bareLoop(
  reader: ObjectReader,
  parseLines = true,
): Promise<{ bytes: number; lines: number }> {
  const files = (await reader.list(BUCKET, OUTPUT_DIR)).filter((o) =>
    isPredictionFile(OUTPUT_DIR, o.name),
  );
  let bytes = 0;
  let lines = 0;
  const parse = (line: Buffer): void => {
    if (line.length === 0) return;
    JSON.parse(line.toString('utf8'));
    lines++;
  };
  for (const file of files) {
    let pieces: Buffer[] = [];
    for await (const piece of reader.read(BUCKET, file.name, file.generation)) {
      const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
      bytes += chunk.length;
      if (!parseLines) continue;
      let start = 0;
      let nl = chunk.indexOf(0x0a);
      while (nl !== -1) {
        const part = chunk.subarray(start, nl);
        if (pieces.length > 0) {
          pieces.push(part);
          parse(Buffer.concat(pieces));
          pieces = [];
        } else {
          parse(part);
        }
        start = nl + 1;
        nl = chunk.indexOf(0x0a, start);
      }
      if (start < chunk.length) pieces.push(Buffer.from(chunk.subarray(start)));
    }
    if (pieces.length > 0) parse(Buffer.concat(pieces));
  }
  return { bytes, lines };
}

/** Where the write-only loop uploads (outside the job's prefix; removed after each run). */
const WRITE_OBJECT = 'bench-write/object.jsonl';

/**
 * The write-only loop: `bytes` bytes of JSONL text uploaded as one object through the product's
 * writer (`writeStream`, as the digest writes its parts and results.jsonl), in chunks of 256 KiB
 * made once (so that the loop measures the upload, not the making of the bytes).
 */
async function writeLoop(writer: ObjectWriter, bytes: number): Promise<number> {
  const line = Buffer.from(
    `${JSON.stringify({ line: 1, text: 'the quick brown fox '.repeat(20) })}\n`,
  );
  const chunk = Buffer.alloc(1 << 18, line);
  let written = 0;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    while (written < bytes) {
      const n = Math.min(chunk.length, bytes - written);
      written += n;
      yield n === chunk.length ? chunk : chunk.subarray(0, n);
    }
  }
  await writer.writeStream(`gs://${BUCKET}/${WRITE_OBJECT}`, chunks(), 'application/jsonl');
  return written;
}

/** `--child <spec>`: measures once, prints one JSON line. */
async function childProcess(spec: ChildSpec): Promise<void> {
  const { storage, crc32c } = await storageClient(spec.storageUrl);
  const reader = createGcsObjectReader(storage);
  const reports = createGcsObjectWriter(storage);
  const config = loadConfig({
    GOOGLE_CLOUD_PROJECT: PROJECT,
    OUTPUT_URI_PREFIX: `gs://${BUCKET}/results`,
    COMPLETION_TOPIC: 'bench-events',
    LOG_LEVEL: 'warning',
    STORAGE_EMULATOR_HOST: spec.storageUrl,
  });
  const log = createLogger(config.LOG_LEVEL);
  const digestJob = await loadDigest(spec.digestModule);
  const t0 = performance.now();
  const sampler = memorySampler(t0);
  const cpu0 = process.cpuUsage();
  let m: Omit<Measurement, 'cpuMs' | 'maxRssKiB' | 'sampled' | 'timeline' | 'crc32c'>;
  if (spec.mode === 'digest') {
    const events: StorageEvent[] = [];
    const digest = await digestJob(
      jobRecord(spec.rows),
      {
        reader: timedReader(reader, events, t0),
        reports: timedWriter(reports, events, t0),
        config,
        log,
      },
      {
        workId: `bench-${randomUUID()}`,
        ...(spec.partBytes ? { partBytes: spec.partBytes } : {}),
      },
    );
    const predictions = events.filter((e) => e.op === 'read-end' && e.name.startsWith(OUTPUT_DIR));
    m = {
      ms: performance.now() - t0,
      bytes: predictions.reduce((n, e) => n + (e.bytes ?? 0), 0),
      lines: digest.results ? Object.values(digest.results.rows).reduce((a, b) => a + b, 0) : 0,
      digest,
      events,
    };
  } else if (spec.mode === 'bare' || spec.mode === 'read') {
    const { bytes, lines } = await bareLoop(reader, spec.mode === 'bare');
    m = { ms: performance.now() - t0, bytes, lines };
  } else if (spec.mode === 'write') {
    const bytes = await writeLoop(reports, spec.writeBytes ?? 0);
    m = { ms: performance.now() - t0, bytes, lines: 0 };
  } else {
    m = { ms: 0, bytes: 0, lines: 0 };
  }
  const cpu = process.cpuUsage(cpu0);
  const out: Measurement = {
    ...m,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxRssKiB: peakRssKiB(),
    ...sampler.stop(),
    crc32c,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The parent: starts the emulator, generates the job, runs and checks the measurements.

/** Starts the emulator process; resolves with it and its URL. */
async function startEmulator(root: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [SCRIPT, '--emulator', root], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the storage emulator exited (${code})`)));
  });
  lines.close();
  const { url } = JSON.parse(first) as { url: string };
  return { child, url };
}

/** CPU time (ms) a process has used so far, from /proc (0 where there is none). */
function cpuMsOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 (1-based, counting pid and comm), in clock ticks.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** Runs one measurement in a fresh process. */
async function runChild(
  spec: ChildSpec,
  emulatorPid: number | undefined,
  nodeFlags: string[] = [],
): Promise<Run> {
  const emulator0 = cpuMsOf(emulatorPid);
  const child = spawn(process.execPath, [...nodeFlags, SCRIPT, '--child', JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => (out += text));
  const code = await new Promise<number | null>((resolve) =>
    child.once('close', (exitCode) => resolve(exitCode)),
  );
  if (code !== 0) throw new Error(`the ${spec.mode} child process exited with ${code}`);
  const last = out.trim().split('\n').pop() ?? '';
  const m = JSON.parse(last) as Measurement;
  return { ...m, emulatorCpuMs: cpuMsOf(emulatorPid) - emulator0, load: loadavg()[0] ?? NaN };
}

/** Uploads `chunks` to `name` as one streamed (resumable) upload. */
async function upload(storage: Storage, name: string, chunks: AsyncIterable<Buffer>) {
  const sink = storage.bucket(BUCKET).file(name).createWriteStream({
    resumable: true,
    validation: false,
    contentType: 'application/jsonl',
  });
  await pipeline(Readable.from(chunks, { objectMode: false }), sink);
}

/** Reads a whole (small) object. */
async function download(storage: Storage, name: string): Promise<Buffer> {
  const [bytes] = await storage.bucket(BUCKET).file(name).download();
  return bytes;
}

/**
 * Checks one digest against what was generated; the first run also reads `results.jsonl` (one
 * line per request, numbered in input order), `failed.jsonl` and `summary.json`, and looks for
 * left-over temporary parts. Returns the problems found.
 */
async function check(
  storage: Storage,
  run: Measurement,
  expected: JobExpectations,
  thorough: boolean,
): Promise<string[]> {
  const problems: string[] = [];
  const rows = run.digest?.results?.rows;
  const e = expected.rows;
  if (!rows) return [`no results: ${run.digest?.note ?? 'no digest'}`];
  if (rows.succeeded !== e.succeeded || rows.failed !== e.failed || rows.missing !== e.missing) {
    problems.push(
      `rows ${rows.succeeded}/${rows.failed}/${rows.missing}, expected ${e.succeeded}/${e.failed}/${e.missing}`,
    );
  }
  if (JSON.stringify(run.digest?.usage) !== JSON.stringify(expected.usage)) {
    problems.push(
      `usage ${JSON.stringify(run.digest?.usage)}, expected ${JSON.stringify(expected.usage)}`,
    );
  }
  if (!thorough) return problems;

  const summary = JSON.parse((await download(storage, `${PREFIX}summary.json`)).toString()) as {
    unmatchedOutputLines?: number;
  };
  if (summary.unmatchedOutputLines !== 0) {
    problems.push(`summary.json: ${summary.unmatchedOutputLines} unmatched output lines`);
  }
  const failedLines = (await download(storage, `${PREFIX}failed.jsonl`)).toString().split('\n');
  if (failedLines.length - 1 !== e.failed) {
    problems.push(`failed.jsonl has ${failedLines.length - 1} lines, expected ${e.failed}`);
  }
  const counts = { succeeded: 0, failed: 0 };
  let next = 1;
  const results = storage.bucket(BUCKET).file(`${PREFIX}results.jsonl`).createReadStream();
  for await (const line of splitLines(results, 'results.jsonl', 1 << 24)) {
    const head = /^\{"line":(\d+),"key":null,"status":"(succeeded|failed)"/.exec(
      line.subarray(0, 80).toString('latin1'),
    );
    if (!head || Number(head[1]) !== next) {
      problems.push(`results.jsonl line ${next}: ${line.subarray(0, 80).toString()}`);
      break;
    }
    counts[head[2] as 'succeeded' | 'failed']++;
    next++;
  }
  if (counts.succeeded !== e.succeeded || counts.failed !== e.failed + e.missing) {
    problems.push(`results.jsonl: ${counts.succeeded} succeeded, ${counts.failed} failed`);
  }
  const [left] = await storage.bucket(BUCKET).getFiles({ prefix: `${PREFIX}.digest/` });
  if (left.length > 0) problems.push(`${left.length} temporary parts left under .digest/`);
  return problems;
}

/** Removes what a digest wrote, so the next run digests again (summary.json would stop it). */
async function clearDigest(storage: Storage): Promise<void> {
  for (const file of ['summary.json', 'results.jsonl', 'failed.jsonl']) {
    await storage.bucket(BUCKET).file(`${PREFIX}${file}`).delete({ ignoreNotFound: true });
  }
}

/**
 * The digest's passes, from its storage calls: their durations, what they moved, and the peak of
 * each memory figure while each ran.
 */
function passes(m: Measurement): string[] {
  const events = m.events ?? [];
  const input = `${PREFIX}input.jsonl`;
  const reads = events.filter((e) => e.op === 'read' && e.name === input);
  const readEnds = events.filter((e) => e.op === 'read-end' && e.name === input);
  const predictionStart = events.find((e) => e.op === 'read' && e.name.startsWith(OUTPUT_DIR));
  const predictionEnds = events.filter((e) => e.op === 'read-end' && e.name.startsWith(OUTPUT_DIR));
  const partWrites = events.filter(
    (e) => e.op === 'write-stream-end' && e.name.includes('/.digest/'),
  );
  const partReads = events.filter((e) => e.op === 'read-end' && e.name.includes('/.digest/'));
  const resultsEnd = events.find(
    (e) => e.op === 'write-stream-end' && e.name === `${PREFIX}results.jsonl`,
  );
  const t = (e: StorageEvent | undefined): number => e?.t ?? NaN;
  const last = (list: StorageEvent[]): number =>
    list.length > 0 ? Math.max(...list.map((e) => e.t)) : NaN;
  const bytes = (list: StorageEvent[]): string =>
    `${(list.reduce((n, e) => n + (e.bytes ?? 0), 0) / 1e6).toFixed(0)} MB`;
  const spreadEnd = Math.max(last(predictionEnds), partWrites.length ? last(partWrites) : 0);
  const spans: [string, number, number, string][] = [
    ['start', 0, t(reads[0]), 'summary.json looked for, output listed'],
    ['1 index', t(reads[0]), t(readEnds[0]), `input read ${bytes(readEnds.slice(0, 1))}`],
    [
      '2 spread',
      t(predictionStart),
      spreadEnd,
      `predictions read ${bytes(predictionEnds)}, ${partWrites.length || 'no'} parts written ${bytes(partWrites)}`,
    ],
    [
      '3 in order',
      t(reads[1]),
      t(resultsEnd),
      `input read ${bytes(readEnds.slice(1, 2))}, parts read ${bytes(partReads)}, results.jsonl ${bytes(resultsEnd ? [resultsEnd] : [])}`,
    ],
    ['end', t(resultsEnd), m.ms, 'summary.json, parts removed'],
  ];
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  const lines = ['     pass        seconds  peak RSS  heap used  heap total  array buffers  moved'];
  for (const [name, from, to, moved] of spans) {
    const inside = m.timeline.filter((x) => x.t >= from && x.t <= to);
    const peak = (key: keyof MemorySample): string =>
      inside.length > 0 ? mib(Math.max(...inside.map((x) => x[key]))) : '-';
    lines.push(
      `     ${name.padEnd(10)}  ${s(to - from).padStart(7)}  ${peak('rss').padStart(8)}  ` +
        `${peak('heapUsed').padStart(9)}  ${peak('heapTotal').padStart(10)}  ${peak('arrayBuffers').padStart(13)}  ${moved}`,
    );
  }
  return lines;
}

/** Median CPU seconds of some runs, as text. */
const cpuS = (runs: Run[]): string => (median(runs.map((r) => r.cpuMs)) / 1000).toFixed(1);

/**
 * An estimate of the best ratio this design allows: the digest must parse the input and the
 * output once each, and move through storage every byte its passes moved (input twice, output,
 * parts out and back, results). Parse cost per byte: bare loop minus read-only loop; storage cost
 * per byte: the read-only loop (a write is counted as a read).
 */
function floor(
  digest: Run | undefined,
  bares: Run[],
  reads: Run[],
  predictionBytes: number,
  inputBytes: number,
): string {
  const moved = (digest?.events ?? [])
    .filter((e) => e.op === 'read-end' || e.op === 'write-stream-end')
    .reduce((n, e) => n + (e.bytes ?? 0), 0);
  const bareMs = median(bares.map((b) => b.ms));
  const readMs = median(reads.map((r) => r.ms));
  const parsePerByte = Math.max(0, bareMs - readMs) / predictionBytes;
  const ioPerByte = readMs / predictionBytes;
  const floorMs = parsePerByte * (predictionBytes + inputBytes) + ioPerByte * moved;
  return (
    `the digest moved ${mb(moved)} through storage and must parse ${mb(predictionBytes + inputBytes)}: ` +
    `at the bare and read-only loops' rates that alone takes ${(floorMs / 1000).toFixed(1)} s, ` +
    `a ratio of at most ${(bareMs / floorMs).toFixed(2)} for this design (estimate)`
  );
}

/**
 * A lower bound for any digest that meets the contract (results.jsonl in input order, output lines
 * in any order, bounded memory, so results go through temporary storage): it must at least
 * (1) read and parse all of the output: the bare loop itself; (2) read and parse the input once,
 * at the bare loop's rate per byte; (3) write every result line once to temporary storage and read
 * it back once, at the write-only and read-only loops' rates; (4) write results.jsonl once, at the
 * write-only loop's rate. The result bytes are the size of results.jsonl, which the contract fixes
 * (whatever the digest, the same file). By CPU time (the measured process's own), the bound holds
 * whatever overlaps; by wall time it adds up the loops' times, that is, it assumes the steps do not
 * overlap (waits for storage could overlap with parsing).
 */
function lowerBound(
  digest: Run | undefined,
  bares: Run[],
  reads: Run[],
  writes: Run[],
  predictionBytes: number,
  inputBytes: number,
): string[] {
  const resultBytes = (digest?.events ?? [])
    .filter((e) => e.op === 'write-stream-end' && e.name === `${PREFIX}results.jsonl`)
    .reduce((n, e) => n + (e.bytes ?? 0), 0);
  if (resultBytes === 0) return ['lower bound: not computed (the digest wrote no results.jsonl)'];
  const bound = (key: 'ms' | 'cpuMs'): { steps: number[]; total: number } => {
    const bare = median(bares.map((b) => b[key]));
    const readPerByte = median(reads.map((r) => r[key])) / predictionBytes;
    // The write-only loop uploads as many bytes as the output has.
    const writePerByte = median(writes.map((w) => w[key])) / predictionBytes;
    const steps = [
      bare,
      (bare * inputBytes) / predictionBytes,
      resultBytes * (writePerByte + readPerByte),
      resultBytes * writePerByte,
    ];
    return { steps, total: steps.reduce((a, b) => a + b, 0) };
  };
  const line = (name: string, unit: string, key: 'ms' | 'cpuMs'): string => {
    const { steps, total } = bound(key);
    const s = (ms: number): string => (ms / 1000).toFixed(1);
    const bare = median(bares.map((b) => b[key]));
    return (
      `  by ${name}: at least ${s(total)} ${unit} = ${steps.map(s).join(' + ')} (steps 1-4), ` +
      `against the bare loop's ${s(bare)} ${unit}: digest/bare ratio at most ${(bare / total).toFixed(2)}`
    );
  };
  const rate = (runs: Run[]): string =>
    `${mbps(predictionBytes, median(runs.map((r) => r.ms))).toFixed(0)} MB/s`;
  return [
    `lower bound for any digest under the contract: (1) read and parse the output (${mb(predictionBytes)}, the bare loop), ` +
      `(2) read and parse the input once (${mb(inputBytes)}), (3) write the results (${mb(resultBytes)}, ` +
      `the size of results.jsonl) to temporary storage and read them back once, (4) write results.jsonl once; ` +
      `at this run's rates: bare ${rate(bares)}, read-only ${rate(reads)}, write-only ${rate(writes)}`,
    line('wall time (steps assumed not to overlap)', 's', 'ms'),
    line('CPU time (holds whatever overlaps)', 'CPU s', 'cpuMs'),
  ];
}

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i] ?? '');
    if (!m?.[1]) throw new Error(`unknown argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i] ?? '';
  }
  return out;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};
const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MiB`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rows = Number(args.rows ?? process.env.ROWS ?? 200_000);
  const files = Number(args.files ?? process.env.FILES ?? 4);
  const runs = Number(args.runs ?? process.env.RUNS ?? 1);
  const seed = Number(args.seed ?? process.env.SEED ?? 1);
  const partBytesText = args['part-bytes'] ?? process.env.PART_BYTES;
  const partBytes = partBytesText ? Number(partBytesText) : undefined;
  const profile = (args.profile ?? process.env.PROFILE ?? '0') !== '0';
  const digestModule = args['digest-module'] ?? process.env.DIGEST_MODULE;
  for (const [name, value] of Object.entries({ rows, files, runs, seed })) {
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`${name} must be a positive integer`);
  }

  const root = `${WORK}storage`;
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const emulator = await startEmulator(root);
  const stopEmulator = (): void => {
    emulator.child.stdin?.end();
  };
  try {
    const { storage, crc32c } = await storageClient(emulator.url);
    const loadAtStart = load();

    // The job: the pinned input copy and the prediction files, generated as streams.
    const t0 = performance.now();
    const job = syntheticJob({ rows, files, seed });
    await upload(storage, `${PREFIX}input.jsonl`, job.input());
    for (const file of job.files)
      await upload(storage, `${OUTPUT_DIR}${file.name}`, file.content());
    const [objects] = await storage.bucket(BUCKET).getFiles({ prefix: PREFIX });
    const size = (o: (typeof objects)[number]): number => Number(o.metadata.size ?? 0);
    const inputBytes = objects
      .filter((o) => o.name.endsWith('/input.jsonl'))
      .reduce((n, o) => n + size(o), 0);
    const predictionBytes = objects
      .filter((o) => isPredictionFile(OUTPUT_DIR, o.name))
      .reduce((n, o) => n + size(o), 0);
    const generatedS = ((performance.now() - t0) / 1000).toFixed(1);
    const e = job.expected.rows;
    console.log(
      `digest benchmark: ${rows.toLocaleString('en-US')} Gemini requests, answered out of order in ` +
        `${files} prediction files, ${e.failed.toLocaleString('en-US')} failed; ` +
        `${mb(predictionBytes)} of prediction output, ${mb(inputBytes)} of input (generated and uploaded in ${generatedS} s)`,
    );
    const partSize = partBytes ?? DEFAULT_PART_BYTES;
    console.log(
      `storage emulator in its own process over HTTP; reader and writer of shared/adapters/gcs-objects.ts, ` +
        `CRC32C of downloads: ${crc32c}; parts of ${mib(partSize)} (${Math.max(1, Math.ceil(predictionBytes / partSize))}); ` +
        `node ${process.version}, ${cpus().length} cores; load average at start ${loadAtStart}`,
    );
    if (digestModule)
      console.log(`measuring the digestJob of ${digestModule}, not shared/app/digest.ts`);

    const idle = await runChild(
      { mode: 'idle', storageUrl: emulator.url, rows },
      emulator.child.pid,
    );
    console.log(
      `each measurement in a fresh process; one that only loads the modules peaks at ${mib(idle.maxRssKiB * 1024)}`,
    );
    const header = [
      'run',
      'measure',
      'seconds',
      'MB/s',
      'CPU s',
      'emulator CPU s',
      'peak RSS',
      'sampled RSS',
      'load 1m',
    ];
    const widths = [3, 7, 8, 6, 6, 14, 9, 11, 7];
    const row = (cells: string[]): string =>
      cells
        .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
        .join('  ');
    console.log(row(header));
    const digests: Run[] = [];
    const bares: Run[] = [];
    const reads: Run[] = [];
    const writes: Run[] = [];
    const problems: string[] = [];
    const line = (r: number, name: string, m: Run): void =>
      console.log(
        row([
          String(r),
          name,
          (m.ms / 1000).toFixed(1),
          mbps(predictionBytes, m.ms).toFixed(0),
          (m.cpuMs / 1000).toFixed(1),
          (m.emulatorCpuMs / 1000).toFixed(1),
          mib(m.maxRssKiB * 1024),
          mib(m.sampled.rss),
          m.load.toFixed(2),
        ]),
      );
    const digestSpec: ChildSpec = {
      mode: 'digest',
      storageUrl: emulator.url,
      rows,
      ...(partBytes ? { partBytes } : {}),
      ...(digestModule ? { digestModule } : {}),
    };
    for (let r = 1; r <= runs; r++) {
      const d = await runChild(digestSpec, emulator.child.pid, FUNCTION_FLAGS);
      digests.push(d);
      line(r, 'digest', d);
      if (d.bytes !== predictionBytes) {
        problems.push(`the digest read ${d.bytes} bytes of predictions, not ${predictionBytes}`);
      }
      problems.push(...(await check(storage, d, job.expected, r === 1)));
      if (r === 1) for (const text of passes(d)) console.log(text);
      await clearDigest(storage);
      const b = await runChild(
        { mode: 'bare', storageUrl: emulator.url, rows },
        emulator.child.pid,
      );
      bares.push(b);
      line(r, 'bare', b);
      if (b.lines !== rows) problems.push(`the bare loop parsed ${b.lines} lines, not ${rows}`);
      const o = await runChild(
        { mode: 'read', storageUrl: emulator.url, rows },
        emulator.child.pid,
      );
      reads.push(o);
      line(r, 'read', o);
      const w = await runChild(
        { mode: 'write', storageUrl: emulator.url, rows, writeBytes: predictionBytes },
        emulator.child.pid,
      );
      await storage.bucket(BUCKET).file(WRITE_OBJECT).delete({ ignoreNotFound: true });
      writes.push(w);
      line(r, 'write', w);
      if (w.bytes !== predictionBytes) {
        problems.push(`the write-only loop wrote ${w.bytes} bytes, not ${predictionBytes}`);
      }
    }

    const digestMBps = mbps(predictionBytes, median(digests.map((d) => d.ms)));
    const bareMBps = mbps(predictionBytes, median(bares.map((b) => b.ms)));
    const ratio = digestMBps / bareMBps;
    const peak = Math.max(...digests.map((d) => d.maxRssKiB)) * 1024;
    const first = digests[0];
    const rowsSeen = first?.digest?.results?.rows;
    console.log('');
    console.log(
      `digest result: ${rowsSeen?.succeeded ?? '?'} succeeded / ${rowsSeen?.failed ?? '?'} failed / ` +
        `${rowsSeen?.missing ?? '?'} missing (expected ${e.succeeded} / ${e.failed} / ${e.missing}); ` +
        `usage ${JSON.stringify(first?.digest?.usage)}; actualUsd ${first?.digest?.actualUsd}; ` +
        `check: ${problems.length === 0 ? 'ok' : 'FAILED'}`,
    );
    for (const p of problems) console.log(`  problem: ${p}`);
    const peakSampled = Math.max(...digests.map((d) => d.sampled.rss));
    const heap = Math.max(...digests.map((d) => d.sampled.heapUsed));
    const buffers = Math.max(...digests.map((d) => d.sampled.arrayBuffers));
    console.log(
      `digest memory: peak RSS ${mib(peak)} (sampled ${mib(peakSampled)}: heap used up to ${mib(heap)}, ` +
        `array buffers up to ${mib(buffers)})`,
    );
    const mark = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
    const ratioOk = ratio >= GOAL_RATIO;
    const rssOk = peak / 1048576 < GOAL_RSS_MIB;
    const timeS = median(digests.map((d) => d.ms)) / 1000;
    console.log(
      `verdict: digest ${digestMBps.toFixed(0)} MB/s, bare ${bareMBps.toFixed(0)} MB/s, ratio ${ratio.toFixed(2)} ` +
        `(goal ≥ ${GOAL_RATIO}) ${mark(ratioOk)}; digest peak RSS ${mib(peak)} (goal < ${GOAL_RSS_MIB} MiB) ` +
        `${mark(rssOk)}; result ${problems.length === 0 ? 'ok' : 'WRONG'} → ` +
        `${ratioOk && rssOk && problems.length === 0 ? 'GOAL MET' : 'GOAL NOT MET'}`,
    );
    console.log(
      `CPU time (load-independent): digest ${cpuS(digests)} s, bare ${cpuS(bares)} s, ratio ` +
        `${(Number(cpuS(bares)) / Number(cpuS(digests))).toFixed(2)}; ${floor(first, bares, reads, predictionBytes, inputBytes)}`,
    );
    for (const text of lowerBound(first, bares, reads, writes, predictionBytes, inputBytes)) {
      console.log(text);
    }
    console.log(
      `digest time ${timeS.toFixed(1)} s against the poller's digest time limit of ${DIGEST_TIME_LIMIT_SECONDS} s; ` +
        `load average at end ${load()}`,
    );

    if (profile) {
      const dir = `${WORK}profile-${Date.now()}`;
      await mkdir(dir, { recursive: true });
      await runChild(digestSpec, emulator.child.pid, [
        ...FUNCTION_FLAGS,
        '--cpu-prof',
        '--cpu-prof-dir',
        dir,
      ]);
      await clearDigest(storage);
      const [file] = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
      console.log('');
      if (file) console.log(formatProfile(`${dir}/${file}`, 30));
    }
    // A wrong result fails the run; a missed goal is the verdict above.
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    const exited = new Promise((resolve) => emulator.child.once('exit', resolve));
    stopEmulator();
    if (emulator.child.exitCode === null && emulator.child.signalCode === null) await exited;
    await rm(root, { recursive: true, force: true });
  }
}

const [flag, arg] = process.argv.slice(2);
if (flag === '--emulator') await emulatorProcess(arg ?? '');
else if (flag === '--child') await childProcess(JSON.parse(arg ?? '{}') as ChildSpec);
else await main();
