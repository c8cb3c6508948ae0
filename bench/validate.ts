/**
 * Validation benchmark: for each provider and file size, the streaming validator's throughput
 * against a bare `line split + JSON.parse` loop over the same file in the same run, their ratio,
 * and the peak RSS of each. Every measurement runs in a fresh child process (so neither the other
 * measurement nor the file generation inflates its peak RSS); each is repeated RUNS times,
 * alternating validator and bare, and the median time is reported. Synthetic valid files are
 * cached under `.local/bench/` and regenerated only when missing or of the wrong size.
 *
 * Two hostile (but valid) Gemini files follow, to show that memory stays bounded and time linear
 * whatever the shape: `long lines` (HOSTILE_SIZE, default 1 GB, of ~8 MiB lines, each spanning
 * ~128 reads) and `blank lines` (1 MB of requests, then 10 million trailing blank lines). The goal
 * for both is the validator's peak RSS. On `long lines` the validator parses lines of 1 MiB or more
 * from bytes rather than with JSON.parse (`SKELETON_MIN_BYTES` in shared/core/jsonl.ts), so its ratio
 * is that of two different parsers; on `blank lines` the ratio means little (the bare loop skips an
 * empty line without looking at it).
 *
 * End to end (E2E, on unless `E2E=0`): each valid file is uploaded to the local Cloud Storage emulator
 * and the submit function answers its finalize event over HTTP (functions framework; the deployed
 * Node options, `FUNCTION_NODE_OPTIONS.submit` of shared/function-targets.ts; the deployed
 * adapters: the Cloud Storage reader with its CRC32C check, Firestore on the official emulator
 * where the Google Cloud CLI is installed, else the in-memory job store; the Vertex AI emulator),
 * beside a bare download (plain `http.get` of the same object from the same server, no checksum;
 * Node's defaults) and parse (the same loop as above) in the same run. The submit figure is the time from the request until
 * the validator has read the last byte (download, CRC32C, validation); the whole request (which
 * also waits for the emulator's server-side copy and the job create) is printed beside it, and so
 * is the function's peak RSS once warm (after its small first upload, before the measured one):
 * what the framework, the clients and their connections hold whatever the file's size.
 *
 *   npm run bench:validate                          # SIZES=100MB,1GB, both providers, RUNS=3, hostile files, E2E
 *   SIZES=10MB RUNS=5 npm run bench:validate
 *   SIZES=10MB HOSTILE=0 npm run bench:validate     # without the hostile files
 *   SIZES=1GB HOSTILE=0 E2E=only npm run bench:validate   # only the end-to-end rows
 *   SIZES=10MB HOSTILE_SIZE=100MB npm run bench:validate
 *   node --cpu-prof dist/bench/validate.js --child validator .local/bench/google-1GB-seed1.jsonl google
 *   PROFILE=/tmp/profiles E2E=only npm run bench:validate   # CPU profiles of the end-to-end children
 *   FUNCTION_NODE_OPTIONS= E2E=only npm run bench:validate  # the function with Node's defaults
 *
 * Units: sizes and MB/s are decimal (1 GB = 1,000,000,000 bytes, the largest legal input); RSS is
 * in MiB (1,048,576 bytes), as `maxRSS` and a function's memory limit count it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { subscribe } from 'node:diagnostics_channel';
import { get, request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { validateJsonl } from '../shared/core/jsonl.js';
import { FUNCTION_NODE_OPTIONS } from '../shared/function-targets.js';
import type { Provider } from '../shared/core/models.js';
import type { ObjectResource } from '../local/storage/server.js';
import type { Stack } from '../local/stack.js';
import { generateJsonl } from './generate-jsonl.js';

/** The goals for the largest legal file (and the memory goal for every hostile file). */
const GOAL_RATIO = 0.8;
const GOAL_RSS_MIB = 128;
const ONE_GB = 1_000_000_000;
/** Line size of the hostile `long lines` file: half the validator's limit per line. */
const LONG_LINE_BYTES = 8 * 1024 * 1024;
const BLANK_LINES = 10_000_000;
const BLANK_FILE_REQUEST_BYTES = 1_000_000;

const PROVIDERS: readonly Provider[] = ['google', 'anthropic'];
const MODELS = {
  google: 'publishers/google/models/gemini-2.5-flash',
  anthropic: 'publishers/anthropic/models/claude-3-5-haiku',
} as const;
const HIGH_WATER_MARK = 1 << 16;

/** One measurement, as a child process reports it on stdout. */
interface Measurement {
  ms: number;
  bytes: number;
  /** Bare: non-empty lines parsed. Validator: `requestCount`. */
  lines: number;
  /** Peak resident set size of the child process, in KiB. */
  maxRssKiB: number;
  /** Validator only: the result's code, completeness and first errors. */
  code?: string;
  complete?: boolean;
  errors?: string[];
  /** End to end only: the whole request, and the function's answer. */
  requestMs?: number;
  /**
   * End to end only: the function's peak RSS once warm (after its first, small upload), before the
   * measured one: what the framework, the clients and their connections hold whatever the file.
   */
  warmRssKiB?: number;
  status?: number;
}

type ValidatorOptions = Parameters<typeof validateJsonl>[1];

/**
 * Only `provider`, plus the job's `model` for when the options have one. Built as a variable (not
 * a literal at the call) so this compiles whether or not `ValidateOptions` declares `model`.
 */
function validatorOptions(provider: Provider): ValidatorOptions {
  const options = { provider, model: MODELS[provider] };
  return options;
}

function open(path: string): AsyncIterable<Buffer> {
  return createReadStream(path, { highWaterMark: HIGH_WATER_MARK }) as AsyncIterable<Buffer>;
}

/**
 * The baseline: split on `\n` across chunks the straightforward way, JSON.parse each non-empty line.
 * It splits bytes (`indexOf` + `subarray`, the pieces of a line across chunks joined with one
 * `Buffer.concat` at its newline) and decodes each line, rather than decoding whole chunks and
 * splitting strings: on these files that string variant runs at ~150 MB/s against ~290 MB/s, and
 * the slower baseline would flatter the ratio. Joining the carry again on every chunk would be
 * quadratic in the line length, and flatter it on long lines.
 */
async function bareLoop(source: AsyncIterable<Buffer>): Promise<number> {
  let pieces: Buffer[] = [];
  let lines = 0;
  const parse = (line: Buffer): void => {
    if (line.length === 0) return;
    JSON.parse(line.toString('utf8'));
    lines++;
  };
  for await (const chunk of source) {
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
    if (start < chunk.length) pieces.push(chunk.subarray(start));
  }
  if (pieces.length > 0) parse(Buffer.concat(pieces));
  return lines;
}

function parseProvider(value: string | undefined): Provider {
  if (value === 'google' || value === 'anthropic') return value;
  throw new Error(`provider must be google or anthropic, not ${String(value)}`);
}

/** `--child validator|bare|idle <path> <provider>`: measure once, print one JSON line. */
async function child(mode: string | undefined, path: string, provider: string | undefined) {
  const start = performance.now();
  let m: Omit<Measurement, 'maxRssKiB'>;
  if (mode === 'validator') {
    const result = await validateJsonl(open(path), validatorOptions(parseProvider(provider)));
    m = {
      ms: performance.now() - start,
      bytes: result.bytes,
      lines: result.requestCount,
      code: result.code,
      complete: result.complete,
      errors: result.errors.slice(0, 3).map((e) => `line ${e.line}: ${e.message}`),
    };
  } else if (mode === 'bare') {
    const lines = await bareLoop(open(path));
    m = { ms: performance.now() - start, bytes: (await stat(path)).size, lines };
  } else if (mode === 'http-bare') {
    m = await httpBare(path);
  } else if (mode === 'e2e') {
    m = await submitOverHttp();
  } else if (mode === 'idle') {
    m = { ms: 0, bytes: 0, lines: 0 };
  } else {
    throw new Error(`unknown child mode ${String(mode)}`);
  }
  const out: Measurement = { ...m, maxRssKiB: peakRssKiB() };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** The bare end-to-end baseline: a plain GET of the object's bytes, split and parsed. */
async function httpBare(url: string): Promise<Omit<Measurement, 'maxRssKiB'>> {
  const start = performance.now();
  let bytes = 0;
  const counted = async function* (res: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    for await (const chunk of res) {
      bytes += chunk.length;
      yield chunk;
    }
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    get(url, resolve).on('error', reject),
  );
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}`);
  const lines = await bareLoop(counted(res as AsyncIterable<Buffer>));
  return { ms: performance.now() - start, bytes, lines };
}

/** What the end-to-end child is given (`BENCH_E2E`, JSON). */
interface EndToEndJob {
  /** `file:` URL of the submit function's bundle. */
  bundle: string;
  /** The finalize event of a small input, answered first: the instance is warm after it. */
  warmUp: { headers: Record<string, string>; body: string };
  /** The finalize event of the measured input. */
  event: { headers: Record<string, string>; body: string };
  /** The measured object's name. */
  object: string;
}

/** Posts one CloudEvent to the local function server; resolves to the HTTP status. */
function post(port: number, event: EndToEndJob['event']): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/', headers: event.headers },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(event.body);
  });
}

/**
 * The submit function as deployed (its bundle, served by the functions framework, configured by
 * the environment), warm (one small upload first, as after the first of a burst: the figure is
 * one upload's work, not a cold start), answering one finalize event. `ms` runs from the start of
 * the object's download to its last byte (Node's HTTP client reports the request and the answer
 * on diagnostics channels; the validator pulls the bytes, so the last is read once it has taken
 * nearly all of them);
 * `requestMs` from the request to the answer. The log line `input.validated` gives the counts.
 */
async function submitOverHttp(): Promise<Omit<Measurement, 'maxRssKiB'>> {
  const job = JSON.parse(process.env.BENCH_E2E ?? '') as EndToEndJob;
  const media = `/o/${encodeURIComponent(job.object)}?`;
  const isMedia = (req: ClientRequest): boolean =>
    req.path.includes(media) && req.path.includes('alt=media');
  let downloadStart = NaN;
  let downloadEnd = NaN;
  subscribe('http.client.request.start', (message) => {
    if (isMedia((message as { request: ClientRequest }).request)) downloadStart = performance.now();
  });
  // Published when the answer's headers are in; its body has ended once the last byte was read.
  subscribe('http.client.response.finish', (message) => {
    const { request: req, response } = message as {
      request: ClientRequest;
      response: IncomingMessage;
    };
    if (isMedia(req)) response.once('end', () => (downloadEnd = performance.now()));
  });
  // The function's log lines on stdout: the counts of `input.validated` (warnings and errors go to
  // stderr, which the parent prints when the answer is not 204).
  let validated: Record<string, unknown> = {};
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (chunk: string | Uint8Array) => {
    for (const line of String(chunk)
      .split('\n')
      .filter((l) => l.startsWith('{'))) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.event === 'input.validated' && entry.object === job.object) validated = entry;
    }
    return true;
  };

  const { getTestServer } = await import('@google-cloud/functions-framework/testing');
  await import(job.bundle);
  const server = getTestServer('submitBatchJob');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const warm = await post(port, job.warmUp);
  if (warm !== 204) throw new Error(`the warm-up upload was answered ${warm}`);
  const warmRssKiB = peakRssKiB();
  const start = performance.now();
  const status = await post(port, job.event);
  const end = performance.now();
  server.close();
  process.stdout.write = write;
  return {
    ms: downloadEnd - downloadStart,
    requestMs: end - start,
    warmRssKiB,
    bytes: Number(validated.bytes ?? NaN),
    lines: Number(validated.requestCount ?? NaN),
    status,
  };
}

/**
 * Peak RSS of this process, in KiB. On Linux from `VmHWM` (the peak of this process's own memory):
 * `getrusage`'s `maxRSS` survives exec, so a child would report at least its parent's RSS at the
 * fork, here inflated by the file generation.
 */
function peakRssKiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (hwm) return Number(hwm);
  } catch {
    // Not Linux: fall back to getrusage.
  }
  return process.resourceUsage().maxRSS;
}

function runChild(mode: 'validator' | 'bare' | 'idle', path = '', provider = ''): Measurement {
  const script = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, [script, '--child', mode, path, provider], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out) as Measurement;
}

const execFileAsync = promisify(execFile);

/** With `PROFILE=dir`, the end-to-end children write a CPU profile there (`node --cpu-prof`). */
function profileFlags(mode: string): string[] {
  const dir = process.env.PROFILE;
  return dir
    ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${mode}-${Date.now()}.cpuprofile`]
    : [];
}

/**
 * Like {@link runChild}, without blocking this process: the emulators the child talks to live
 * here. `env` is the child's whole environment.
 */
async function runChildAsync(
  mode: 'e2e' | 'http-bare',
  arg: string,
  env: NodeJS.ProcessEnv,
): Promise<Measurement> {
  const script = fileURLToPath(import.meta.url);
  const { stdout, stderr } = await execFileAsync(
    process.execPath,
    [...profileFlags(mode), script, '--child', mode, arg, ''],
    { encoding: 'utf8', env, maxBuffer: 16 * 1024 * 1024 },
  );
  const measurement = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Measurement;
  if (mode === 'e2e' && measurement.status !== 204) {
    process.stderr.write(`the submit function answered ${measurement.status}:\n${stderr}\n`);
  }
  return measurement;
}

function parseSize(text: string): { label: string; bytes: number } {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB)?\s*$/i.exec(text);
  if (!match?.[1]) throw new Error(`SIZES: "${text}" is not a size such as 100MB or 1GB`);
  const unit = (match[2] ?? '').toUpperCase();
  const scale = unit === 'GB' ? 1e9 : unit === 'MB' ? 1e6 : unit === 'KB' ? 1e3 : 1;
  return { label: `${match[1]}${unit}`, bytes: Math.round(Number(match[1]) * scale) };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

/** A hostile file: `long` lines or trailing `blank` lines. */
type Hostile = 'long' | 'blank';

interface BenchFile {
  name: string;
  path: string;
  provider: Provider;
  hostile?: Hostile;
}

interface FileResult {
  name: string;
  hostile: Hostile | undefined;
  bytes: number;
  lines: number;
  valid: string;
  validatorMBps: number;
  bareMBps: number;
  ratio: number;
  validatorRssKiB: number;
  bareRssKiB: number;
  validatorMs: number[];
  bareMs: number[];
}

/** Checks that the validator saw what the bare loop saw, and found nothing wrong. */
function validity(validator: Measurement[], bare: Measurement[]): string {
  const lines = bare[0]?.lines ?? NaN;
  if (bare.some((b) => b.lines !== lines)) return 'NO: bare runs disagree on the line count';
  for (const v of validator) {
    if (v.code !== undefined || v.complete !== true) {
      return `NO: ${v.code ?? 'incomplete'} ${(v.errors ?? []).join('; ')}`;
    }
    if (v.lines !== lines) return `NO: requestCount ${v.lines} but the file has ${lines} lines`;
  }
  return 'yes';
}

function measureFile(file: BenchFile, runs: number): FileResult {
  const { name, path, provider } = file;
  const validator: Measurement[] = [];
  const bare: Measurement[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternate, so that drift (page cache, CPU clock, a neighbour) hits both alike.
    validator.push(runChild('validator', path, provider));
    bare.push(runChild('bare', path, provider));
  }
  const bytes = bare[0]?.bytes ?? NaN;
  const validatorMs = validator.map((m) => m.ms);
  const bareMs = bare.map((m) => m.ms);
  const validatorMBps = mbps(bytes, median(validatorMs));
  const bareMBps = mbps(bytes, median(bareMs));
  return {
    name,
    hostile: file.hostile,
    bytes,
    lines: bare[0]?.lines ?? NaN,
    valid: validity(validator, bare),
    validatorMBps,
    bareMBps,
    ratio: validatorMBps / bareMBps,
    validatorRssKiB: Math.max(...validator.map((m) => m.maxRssKiB)),
    bareRssKiB: Math.max(...bare.map((m) => m.maxRssKiB)),
    validatorMs,
    bareMs,
  };
}

const COLUMNS: [string, number][] = [
  ['file', 20],
  ['lines', 9],
  ['valid', 6],
  ['validator MB/s', 15],
  ['bare MB/s', 10],
  ['ratio', 6],
  ['validator RSS', 14],
  ['bare RSS', 9],
];

function row(cells: string[], columns: [string, number][] = COLUMNS): string {
  return cells
    .map((cell, i) => {
      const width = columns[i]?.[1] ?? 0;
      return i === 0 ? cell.padEnd(width) : cell.padStart(width);
    })
    .join('  ');
}

function formatRow(r: FileResult): string {
  return row([
    r.name,
    r.lines.toLocaleString('en-US'),
    r.valid === 'yes' ? 'yes' : 'NO',
    r.validatorMBps.toFixed(0),
    r.bareMBps.toFixed(0),
    r.ratio.toFixed(2),
    mib(r.validatorRssKiB),
    mib(r.bareRssKiB),
  ]);
}

/** Against the goals: ratio (unless `ratioApplies` is false), peak RSS, and validity. */
function verdict(r: FileResult, ratioApplies = true): string {
  const ratioOk = !ratioApplies || r.ratio >= GOAL_RATIO;
  const rssOk = r.validatorRssKiB / 1024 < GOAL_RSS_MIB;
  const validOk = r.valid === 'yes';
  const mark = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
  const ratio = ratioApplies
    ? `ratio ${r.ratio.toFixed(2)} (goal ≥ ${GOAL_RATIO}) ${mark(ratioOk)}`
    : `ratio ${r.ratio.toFixed(2)} (no goal: the bare loop skips blank lines unread)`;
  return (
    `verdict ${r.name}: ${ratio}; ` +
    `validator peak RSS ${mib(r.validatorRssKiB)} (goal < ${GOAL_RSS_MIB} MiB) ${mark(rssOk)}; ` +
    `file valid: ${validOk ? 'yes' : 'NO'} → ${ratioOk && rssOk && validOk ? 'GOAL MET' : 'GOAL NOT MET'}`
  );
}

/** Generates `path` with `options` unless it exists with `bytes` bytes. */
async function ensureFile(
  path: string,
  bytes: number,
  options: Parameters<typeof generateJsonl>[1],
): Promise<void> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.size === bytes) return;
  const t0 = performance.now();
  const { lines } = await generateJsonl(path, options);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`generated ${path}: ${lines.toLocaleString('en-US')} requests in ${seconds} s`);
}

/** Objects of the end-to-end runs: outside the stack's `inputs/`, which its own function handles. */
const E2E_PREFIX = 'bench-validate/';

/** One file end to end: the submit function over HTTP against a bare download and parse. */
interface EndToEndResult {
  name: string;
  bytes: number;
  lines: number;
  valid: string;
  submitMBps: number;
  bareMBps: number;
  ratio: number;
  requestSeconds: number;
  submitRssKiB: number;
  /** The function's peak RSS once warm, before the measured upload. */
  warmRssKiB: number;
  bareRssKiB: number;
  submitMs: number[];
  bareMs: number[];
}

/** Uploads each file to the local stack and measures it end to end, alternating, `runs` times. */
async function measureEndToEnd(files: BenchFile[], runs: number): Promise<EndToEndResult[]> {
  const root = fileURLToPath(new URL('../../.local/bench/validate-stack/', import.meta.url));
  const repository = fileURLToPath(new URL('../../', import.meta.url));
  await rm(root, { recursive: true, force: true });
  const [{ INPUT_BUCKET, startStack }, { storageFinalizedRequest }, bundler] = await Promise.all([
    import('../local/stack.js'),
    import('../local/storage/eventarc.js'),
    import(pathToFileURL(`${repository}scripts/bundle.mjs`).href) as Promise<
      typeof import('../scripts/bundle.mjs')
    >,
  ]);
  // The deployed bundle, built from the sources as `npm run package` builds it.
  const submitBundle = bundler.FUNCTION_BUNDLES.find((b) => b.target === 'submitBatchJob');
  if (!submitBundle) throw new Error('scripts/bundle.mjs has no submitBatchJob bundle');
  await bundler.bundleFunction(submitBundle, `${root}bundle`);
  // Jobs stay pending: the Vertex AI emulator never reads the inputs while the benchmark runs.
  const stack: Stack = await startStack({
    root,
    pollIntervalMs: 0,
    emulators: process.env.BATCH_COURIER_EMULATORS,
    vertexTiming: { pendingMs: Infinity },
  });
  const results: EndToEndResult[] = [];
  try {
    if (!stack.services.firestore.startsWith('official')) {
      console.log(
        'no end-to-end rows: the deployed function needs the official Firestore emulator (Google Cloud CLI), which is not installed',
      );
      return results;
    }
    console.log(
      `end to end: the deployed submit bundle over HTTP; job store: Firestore, ${stack.services.firestore}; storage: ${stack.services.storage}`,
    );
    console.log(
      row(
        E2E_COLUMNS.map(([title]) => title),
        E2E_COLUMNS,
      ),
    );
    const upload = async (path: string, name: string, provider: Provider) => {
      await stack.storage.bucket(INPUT_BUCKET).upload(path, {
        destination: name,
        resumable: true,
        validation: false,
        contentType: 'application/jsonl',
        metadata: { metadata: { model: MODELS[provider] } },
      });
      const [metadata] = await stack.storage.bucket(INPUT_BUCKET).file(name).getMetadata();
      return metadata as unknown as ObjectResource;
    };
    const warmUp = await upload(
      `${repository}examples/customer-reviews.jsonl`,
      `${E2E_PREFIX}warm-up.jsonl`,
      'google',
    );
    for (const file of files) {
      const name = `${E2E_PREFIX}${file.name.replace(/\s+/g, '-')}.jsonl`;
      const object = await upload(file.path, name, file.provider);
      const submit: Measurement[] = [];
      const bare: Measurement[] = [];
      for (let i = 0; i < runs; i++) {
        // A job store and an output folder of its own for every run: each does the whole work.
        const run = randomUUID().slice(0, 8);
        const job: EndToEndJob = {
          bundle: pathToFileURL(`${root}bundle/${bundler.BUNDLE_MAIN}`).href,
          warmUp: storageFinalizedRequest(warmUp, randomUUID()),
          event: storageFinalizedRequest(object, randomUUID()),
          object: name,
        };
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH,
          METADATA_SERVER_DETECTION: 'none',
          FUNCTION_TARGET: 'submitBatchJob',
          ...stack.env,
          INPUT_PREFIX: E2E_PREFIX,
          OUTPUT_URI_PREFIX: `gs://batch-courier-output/bench-${run}`,
          JOBS_COLLECTION: `bench-${run}`,
          // Where the generated requests' fileData URIs point.
          ALLOWED_FILE_URI_PREFIXES: 'gs://bucket/',
          LOG_LEVEL: 'info',
          BENCH_E2E: JSON.stringify(job),
          // As deployed (Terraform sets the same); FUNCTION_NODE_OPTIONS= measures Node's defaults.
          NODE_OPTIONS: process.env.FUNCTION_NODE_OPTIONS ?? FUNCTION_NODE_OPTIONS.submit,
        };
        submit.push(await runChildAsync('e2e', '', env));
        bare.push(await runChildAsync('http-bare', object.mediaLink, { PATH: process.env.PATH }));
      }
      const result = endToEndResult(file.name, Number(object.size), submit, bare);
      results.push(result);
      console.log(formatEndToEnd(result));
    }
  } finally {
    await stack.stop();
    await rm(root, { recursive: true, force: true });
  }
  return results;
}

function endToEndResult(
  name: string,
  size: number,
  submit: Measurement[],
  bare: Measurement[],
): EndToEndResult {
  const lines = bare[0]?.lines ?? NaN;
  const problems = [
    ...submit.filter((m) => m.status !== 204).map((m) => `the function answered ${m.status}`),
    ...submit.filter((m) => m.lines !== lines).map((m) => `requestCount ${m.lines}, not ${lines}`),
    ...[...submit, ...bare].filter((m) => m.bytes !== size).map((m) => `read ${m.bytes} bytes`),
  ];
  const submitMs = submit.map((m) => m.ms);
  const bareMs = bare.map((m) => m.ms);
  const submitMBps = mbps(size, median(submitMs));
  const bareMBps = mbps(size, median(bareMs));
  return {
    name,
    bytes: size,
    lines,
    valid: problems.length === 0 ? 'yes' : `NO: ${[...new Set(problems)].join('; ')}`,
    submitMBps,
    bareMBps,
    ratio: submitMBps / bareMBps,
    requestSeconds: median(submit.map((m) => m.requestMs ?? NaN)) / 1000,
    submitRssKiB: Math.max(...submit.map((m) => m.maxRssKiB)),
    warmRssKiB: Math.max(...submit.map((m) => m.warmRssKiB ?? NaN)),
    bareRssKiB: Math.max(...bare.map((m) => m.maxRssKiB)),
    submitMs,
    bareMs,
  };
}

const E2E_COLUMNS: [string, number][] = [
  ['file', 20],
  ['lines', 9],
  ['valid', 6],
  ['submit MB/s', 12],
  ['bare MB/s', 10],
  ['ratio', 6],
  ['request s', 10],
  ['submit RSS', 11],
  ['warm RSS', 9],
  ['bare RSS', 9],
];

function formatEndToEnd(r: EndToEndResult): string {
  return row(
    [
      r.name,
      r.lines.toLocaleString('en-US'),
      r.valid === 'yes' ? 'yes' : 'NO',
      r.submitMBps.toFixed(0),
      r.bareMBps.toFixed(0),
      r.ratio.toFixed(2),
      r.requestSeconds.toFixed(2),
      mib(r.submitRssKiB),
      mib(r.warmRssKiB),
      mib(r.bareRssKiB),
    ],
    E2E_COLUMNS,
  );
}

function endToEndVerdict(r: EndToEndResult): string {
  const ratioOk = r.ratio >= GOAL_RATIO;
  const rssOk = r.submitRssKiB / 1024 < GOAL_RSS_MIB;
  const validOk = r.valid === 'yes';
  const mark = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
  return (
    `verdict end to end ${r.name}: ratio ${r.ratio.toFixed(2)} (goal ≥ ${GOAL_RATIO}) ${mark(ratioOk)}; ` +
    `function peak RSS ${mib(r.submitRssKiB)} (goal < ${GOAL_RSS_MIB} MiB; ${mib(r.warmRssKiB)} of it held once warm, before this file) ${mark(rssOk)}; ` +
    `submitted: ${validOk ? 'yes' : 'NO'} → ${ratioOk && rssOk && validOk ? 'GOAL MET' : 'GOAL NOT MET'}`
  );
}

async function main(): Promise<void> {
  const e2e = process.env.E2E ?? '1';
  if (!['0', '1', 'only'].includes(e2e)) {
    throw new Error(`E2E must be 0 (off), 1 (on) or only (only the end-to-end rows), not "${e2e}"`);
  }
  const sizes = (process.env.SIZES ?? '100MB,1GB').split(',').map(parseSize);
  const runs = Number(process.env.RUNS ?? 3);
  const seed = Number(process.env.SEED ?? 1);
  const hostile = process.env.HOSTILE !== '0';
  const hostileSize = parseSize(process.env.HOSTILE_SIZE ?? '1GB');
  const dir = fileURLToPath(new URL('../../.local/bench/', import.meta.url));
  await mkdir(dir, { recursive: true });

  const files: BenchFile[] = [];
  for (const size of sizes) {
    for (const provider of PROVIDERS) {
      const path = `${dir}${provider}-${size.label}-seed${seed}.jsonl`;
      await ensureFile(path, size.bytes, { bytes: size.bytes, provider, seed });
      files.push({ name: `${provider} ${size.label}`, path, provider });
    }
  }
  if (hostile) {
    const long = `${dir}google-long-lines-${hostileSize.label}-seed${seed}.jsonl`;
    await ensureFile(long, hostileSize.bytes, {
      bytes: hostileSize.bytes,
      provider: 'google',
      seed,
      lineBytes: LONG_LINE_BYTES,
    });
    files.push({
      name: `long lines ${hostileSize.label}`,
      path: long,
      provider: 'google',
      hostile: 'long',
    });
    const blank = `${dir}google-10M-blank-lines-seed${seed}.jsonl`;
    await ensureFile(blank, BLANK_FILE_REQUEST_BYTES + BLANK_LINES, {
      bytes: BLANK_FILE_REQUEST_BYTES,
      provider: 'google',
      seed,
      trailingBlankLines: BLANK_LINES,
    });
    files.push({ name: '10M blank lines', path: blank, provider: 'google', hostile: 'blank' });
  }

  if (e2e === 'only') {
    await endToEnd(files, runs);
    return;
  }
  const idle = runChild('idle');
  console.log(
    `validation benchmark, node ${process.version}, median of ${runs} runs each in a fresh process, ` +
      `${HIGH_WATER_MARK / 1024} KiB reads; a process that only loads the modules peaks at ${mib(idle.maxRssKiB)}`,
  );
  console.log(row(COLUMNS.map(([title]) => title)));
  const results: FileResult[] = [];
  for (const file of files) {
    const result = measureFile(file, runs);
    results.push(result);
    console.log(formatRow(result));
  }

  console.log('');
  console.log('times per run (s):');
  for (const r of results) {
    const secs = (ms: number[]): string => ms.map((t) => (t / 1000).toFixed(2)).join(' ');
    console.log(`  ${r.name.padEnd(20)} validator ${secs(r.validatorMs)}  bare ${secs(r.bareMs)}`);
  }
  const invalid = results.filter((r) => r.valid !== 'yes');
  for (const r of invalid) console.log(`INVALID ${r.name}: ${r.valid}`);

  console.log('');
  const largest = results.filter((r) => r.hostile === undefined && r.bytes >= ONE_GB);
  if (largest.length === 0) console.log('no 1GB file in SIZES: no verdict against the goal');
  for (const r of largest) console.log(verdict(r));
  for (const r of results) if (r.hostile) console.log(verdict(r, r.hostile === 'long'));
  if (invalid.length > 0) process.exitCode = 1;
  if (e2e === '1') {
    console.log('');
    await endToEnd(files, runs);
  }
}

/** The end-to-end rows of the valid files, their times and their verdicts. */
async function endToEnd(files: BenchFile[], runs: number): Promise<void> {
  const results = await measureEndToEnd(
    files.filter((f) => f.hostile === undefined),
    runs,
  );
  console.log('');
  console.log('end-to-end times per run (s, submit: request to last byte validated):');
  for (const r of results) {
    const secs = (ms: number[]): string => ms.map((t) => (t / 1000).toFixed(2)).join(' ');
    console.log(`  ${r.name.padEnd(20)} submit ${secs(r.submitMs)}  bare ${secs(r.bareMs)}`);
  }
  console.log('');
  const largest = results.filter((r) => r.bytes >= ONE_GB);
  if (largest.length === 0) console.log('no 1GB file in SIZES: no end-to-end verdict');
  for (const r of largest) console.log(endToEndVerdict(r));
  if (results.some((r) => r.valid !== 'yes')) {
    for (const r of results.filter((x) => x.valid !== 'yes'))
      console.log(`INVALID ${r.name}: ${r.valid}`);
    process.exitCode = 1;
  }
}

const [flag, mode, childPath, childProvider] = process.argv.slice(2);
if (flag === '--child') await child(mode, childPath ?? '', childProvider);
else await main();
