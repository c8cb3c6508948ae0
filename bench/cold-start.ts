/**
 * Cold start, side by side in one run: how long a fresh Node process takes
 *
 *   - to start at all (bare node);
 *   - to load the unbundled function entry and all four Google SDKs eagerly (the baseline: what an
 *     entry that imports every client up front costs before it has done anything);
 *   - with each function's deployed bundle (`npm run package` builds the same ones): to load the
 *     functions framework and the bundle (target registered), and to load them and answer a first
 *     request against the local emulators. Submit: a valid upload, read, validated, copied,
 *     submitted to the Vertex AI emulator and recorded in Firestore. Poll, twice: a scheduler tick
 *     that finds that job still pending (the job store and Vertex AI), and one that finds it
 *     finished (it also reads the results, writes their digest and publishes the event: all four
 *     clients). The first requests are also measured with the unbundled entry, for comparison.
 *
 * Floors are measured beside them (bench/cold-start-floor.ts, bundled the same way): a process
 * that loads the functions framework and the Firestore client and reads one record through the job
 * store, the least that every invocation of either function does; one that also loads the Cloud
 * Storage client and lists a folder, less than every valid upload does; and one that loads the
 * Vertex AI client after the job store read and reads a job, less than a poll run that finds a job
 * outstanding does. No first request can be faster than its floor.
 *
 * Each figure is measured in RUNS fresh processes (default 9) as the process's own clock when the
 * work is done (`performance.now()`, from process start), with its CPU time beside it; min, median
 * and max are printed, and the ratio of each median to the baseline's. A first-request figure needs
 * the official Firestore emulator (Google Cloud CLI); without it only the load figures are printed.
 *
 *   npm run bench:cold-start            # RUNS=9
 *   RUNS=15 npm run bench:cold-start
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BundleResult } from '../scripts/bundle.mjs';
import { FUNCTION_NODE_OPTIONS, FUNCTION_TARGETS } from '../shared/function-targets.js';
import { storageFinalizedRequest } from '../local/storage/eventarc.js';
import { startStack, type Stack } from '../local/stack.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = path.join(ROOT, 'dist/functions/index.js');
const BUNDLES = path.join(ROOT, '.local/bench/cold-start/bundles');
const RUNS = Number(process.env.RUNS ?? 9);
/** Goal: each function's bundle, first request included, within this share of the baseline. */
const GOAL_RATIO = 0.5;
/** Inputs of the benchmark: outside the stack's own `inputs/`, so its in-process function ignores them. */
const BENCH_PREFIX = 'cold-start/';
const INPUT = path.join(ROOT, 'examples/customer-reviews.jsonl');
/** Folder of the floor's bundle, beside the functions'. */
const FLOOR = 'floor';

const run = promisify(execFile);

/** One child process's figures: its clock when done, its CPU time, and what it reports. */
interface Sample {
  ms: number;
  cpuMs: number;
  status?: number;
  /** What the process wrote to stderr (the function's warnings and errors). */
  stderr: string;
}

/**
 * Runs `code` (an ES module body) in a fresh process and returns its figures. Asynchronous: the
 * emulators answering the child live in this process.
 */
async function sample(code: string, env: NodeJS.ProcessEnv): Promise<Sample> {
  const report =
    'const __u = process.cpuUsage();' +
    'process.stdout.write("\\n" + JSON.stringify({ ms: performance.now(), cpuMs: (__u.user + __u.system) / 1000, ...(globalThis.__status === undefined ? {} : { status: globalThis.__status }) }) + "\\n");' +
    'process.exit(0);';
  const { stdout, stderr } = await run(
    process.execPath,
    ['--input-type=module', '-e', `${code}\n${report}`],
    {
      cwd: ROOT,
      env,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const last = stdout.trim().split('\n').pop() ?? '';
  return { ...(JSON.parse(last) as Omit<Sample, 'stderr'>), stderr };
}

/**
 * An ES module body that loads the framework and a bundle (or, with `entry`, that module instead:
 * the unbundled entry registers both targets), and gets its target's server.
 */
function loadBundle(target: string, entry?: string): string {
  const bundle = entry ?? pathToFileURL(path.join(BUNDLES, target, 'index.js')).href;
  return [
    "const { getTestServer } = await import('@google-cloud/functions-framework/testing');",
    `await import(${JSON.stringify(bundle)});`,
    `const server = getTestServer(${JSON.stringify(target)});`,
  ].join('\n');
}

/** The same, then one request to the target over HTTP; its status is reported. */
function firstRequest(
  target: string,
  headers: Record<string, string>,
  body: string,
  entry?: string,
): string {
  return [
    loadBundle(target, entry),
    "const { request } = await import('node:http');",
    "await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));",
    'globalThis.__status = await new Promise((resolve, reject) => {',
    "  const req = request({ host: '127.0.0.1', port: server.address().port, method: 'POST', path: '/',",
    `    headers: ${JSON.stringify(headers)} }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });`,
    "  req.on('error', reject);",
    `  req.end(${JSON.stringify(body)});`,
    '});',
  ].join('\n');
}

const SDKS = [
  '@google-cloud/firestore',
  '@google-cloud/pubsub',
  '@google-cloud/storage',
  'google-auth-library',
];

/**
 * The environment of a function process, as Terraform sets it (its Node options included), with
 * the emulators' hosts.
 */
function functionEnv(stack: Stack | undefined, target: string, jobs: string): NodeJS.ProcessEnv {
  const options =
    target === FUNCTION_TARGETS.submit
      ? FUNCTION_NODE_OPTIONS.submit
      : target === FUNCTION_TARGETS.poll
        ? FUNCTION_NODE_OPTIONS.poll
        : '';
  return {
    PATH: process.env.PATH,
    METADATA_SERVER_DETECTION: 'none',
    FUNCTION_TARGET: target,
    GOOGLE_CLOUD_PROJECT: 'demo-batch-courier',
    OUTPUT_URI_PREFIX: 'gs://batch-courier-output/results',
    COMPLETION_TOPIC: 'batch-courier-events',
    ...stack?.env,
    INPUT_PREFIX: BENCH_PREFIX,
    JOBS_COLLECTION: jobs,
    LOG_LEVEL: 'warning',
    // As deployed (Terraform sets the same); none for the processes that are no function.
    NODE_OPTIONS: options,
  };
}

interface Row {
  label: string;
  samples: Sample[];
}

const stats = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? NaN,
    median: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
};

async function bundle(): Promise<BundleResult[]> {
  const script = pathToFileURL(path.join(ROOT, 'scripts/bundle.mjs')).href;
  const { bundleFunctions, bundleFunction } = (await import(
    script
  )) as typeof import('../scripts/bundle.mjs');
  await rm(BUNDLES, { recursive: true, force: true });
  const bundles = await bundleFunctions(BUNDLES);
  // The floor (bench/cold-start-floor.ts), bundled the same way.
  await bundleFunction(
    { target: FLOOR, entry: 'bench/cold-start-floor.ts' },
    path.join(BUNDLES, FLOOR),
  );
  return bundles;
}

/**
 * An ES module body that loads the functions framework (as every function process does) and the
 * floor bundle, and runs one of its floors (bench/cold-start-floor.ts).
 */
function floorCall(floor: 'jobStoreFloor' | 'submitFloor' | 'pollFloor'): string {
  const url = pathToFileURL(path.join(BUNDLES, FLOOR, 'index.js')).href;
  return [
    "await import('@google-cloud/functions-framework/testing');",
    `const floors = await import(${JSON.stringify(url)});`,
    `await floors.${floor}();`,
  ].join('\n');
}

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 1)
    throw new Error(`RUNS must be a positive integer, not ${process.env.RUNS}`);
  const bundles = await bundle();
  for (const b of bundles) {
    const total = b.files.reduce((sum, f) => sum + f.bytes, 0);
    console.log(
      `bundle ${b.target}: ${b.files.length} files, ${(total / 1024 / 1024).toFixed(2)} MiB ` +
        `(loaded on demand: the entry and only the chunks of the SDKs a request reaches)`,
    );
  }

  // Jobs stay pending until the benchmark settles them.
  const stack = await startStack({
    root: path.join(ROOT, '.local/bench/cold-start'),
    pollIntervalMs: 0,
    emulators: process.env.BATCH_COURIER_EMULATORS,
    vertexTiming: { pendingMs: Infinity },
  }).catch((err: unknown) => {
    throw new Error(`could not start the local emulators: ${String(err)}`);
  });
  const withRequests = stack.services.firestore.startsWith('official');
  const content = await readFile(INPUT);

  const rows: Record<string, Row> = {};
  const add = (key: string, label: string, s: Sample): void => {
    (rows[key] ??= { label, samples: [] }).samples.push(s);
  };
  const idle = functionEnv(stack, '', 'bench-idle');
  const eager = `await import(${JSON.stringify(pathToFileURL(ENTRY).href)});\nawait Promise.all(${JSON.stringify(SDKS)}.map((m) => import(m)));`;
  const submit = FUNCTION_TARGETS.submit;
  const poll = FUNCTION_TARGETS.poll;

  try {
    // One pair of requests first, not counted: the emulators' own first requests are slow (JIT).
    for (let i = -1; i < RUNS; i++) {
      const counted = i >= 0;
      const keep = (key: string, label: string, s: Sample): void => {
        if (counted) add(key, label, s);
      };
      keep('bare', 'bare node', await sample('', idle));
      keep(
        'eager',
        'baseline: unbundled entry + all four SDKs, eagerly',
        await sample(eager, idle),
      );
      keep(
        'submit-load',
        `${submit} bundle: loaded, target registered`,
        await sample(loadBundle(submit), functionEnv(stack, submit, 'bench-idle')),
      );
      keep(
        'poll-load',
        `${poll} bundle: loaded, target registered`,
        await sample(loadBundle(poll), functionEnv(stack, poll, 'bench-idle')),
      );
      if (!withRequests) continue;

      // A fresh input and a job store of its own for each pair: every run does the same work.
      const jobs = `bench-${randomUUID().slice(0, 8)}`;
      keep(
        'floor-jobs',
        'floor: framework + Firestore client, loaded + one job store read',
        await sample(floorCall('jobStoreFloor'), functionEnv(stack, submit, jobs)),
      );
      keep(
        'floor-submit',
        'floor: the same + Cloud Storage client, loaded + one listing',
        await sample(floorCall('submitFloor'), functionEnv(stack, submit, jobs)),
      );
      keep(
        'floor-poll',
        'floor: the job store read + Vertex AI client, loaded + one job read',
        await sample(floorCall('pollFloor'), functionEnv(stack, poll, jobs)),
      );
      const object = await stack.upload(
        `${BENCH_PREFIX}run-${i + 1}-${randomUUID().slice(0, 6)}.jsonl`,
        content,
      );
      const event = storageFinalizedRequest(object, randomUUID());
      const s = await sample(
        firstRequest(submit, event.headers, event.body),
        functionEnv(stack, submit, jobs),
      );
      if (s.status !== 204)
        throw new Error(`${submit} answered ${s.status} to a valid upload:\n${s.stderr}`);
      keep('submit-call', `${submit} bundle: loaded + first request (valid upload)`, s);
      // The same with the unbundled entry (what was deployed before the bundles), another upload.
      const other = await stack.upload(
        `${BENCH_PREFIX}run-${i + 1}-${randomUUID().slice(0, 6)}.jsonl`,
        content,
      );
      const otherEvent = storageFinalizedRequest(other, randomUUID());
      const u = await sample(
        firstRequest(submit, otherEvent.headers, otherEvent.body, pathToFileURL(ENTRY).href),
        functionEnv(stack, submit, `${jobs}-unbundled`),
      );
      if (u.status !== 204)
        throw new Error(`unbundled ${submit} answered ${u.status}:\n${u.stderr}`);
      keep(
        'submit-unbundled',
        `${submit} unbundled entry: loaded + first request (valid upload)`,
        u,
      );

      const pending = await sample(firstRequest(poll, {}, ''), functionEnv(stack, poll, jobs));
      if (pending.status !== 200)
        throw new Error(`${poll} answered ${pending.status}:\n${pending.stderr}`);
      keep('poll-pending', `${poll} bundle: loaded + first request (a job still pending)`, pending);

      await stack.vertex.settle(); // the job ends: the next poll run finds it finished
      const p = await sample(firstRequest(poll, {}, ''), functionEnv(stack, poll, jobs));
      if (p.status !== 200) throw new Error(`${poll} answered ${p.status}:\n${p.stderr}`);
      keep('poll-call', `${poll} bundle: loaded + first request (a finished job announced)`, p);
      const up = await sample(
        firstRequest(poll, {}, '', pathToFileURL(ENTRY).href),
        functionEnv(stack, poll, `${jobs}-unbundled`),
      );
      if (up.status !== 200)
        throw new Error(`unbundled ${poll} answered ${up.status}:\n${up.stderr}`);
      keep(
        'poll-unbundled',
        `${poll} unbundled entry: loaded + first request (a finished job announced)`,
        up,
      );
    }
  } finally {
    await stack.stop();
  }

  const baseline = stats(rows.eager?.samples.map((s) => s.ms) ?? []).median;
  console.log('');
  console.log(
    `cold start, ${RUNS} fresh processes each, node ${process.version}; ms from process start (min / median / max), CPU ms (median), median ÷ baseline median`,
  );
  for (const row of Object.values(rows)) {
    const wall = stats(row.samples.map((s) => s.ms));
    const cpu = stats(row.samples.map((s) => s.cpuMs));
    console.log(
      `${row.label.padEnd(76)} ${wall.min.toFixed(0).padStart(5)} / ${wall.median.toFixed(0).padStart(5)} / ${wall.max.toFixed(0).padStart(5)} ms` +
        `  cpu ${cpu.median.toFixed(0).padStart(5)} ms  ×${(wall.median / baseline).toFixed(2)}`,
    );
  }
  console.log('');
  if (!withRequests) {
    console.log(
      'no first-request figures: they need the official Firestore emulator (Google Cloud CLI), which is not installed',
    );
    return;
  }
  for (const key of ['submit-call', 'poll-pending', 'poll-call']) {
    const row = rows[key];
    if (!row) continue;
    const ratio = stats(row.samples.map((s) => s.ms)).median / baseline;
    console.log(
      `verdict ${row.label}: ×${ratio.toFixed(2)} of the baseline (goal ≤ ${GOAL_RATIO}) → ${ratio <= GOAL_RATIO ? 'GOAL MET' : 'GOAL NOT MET'}`,
    );
  }
  // The floors: no first request of a function can take less than what it always does.
  for (const [key, who] of [
    ['floor-jobs', 'either function'],
    ['floor-submit', submit],
    ['floor-poll', poll],
  ] as const) {
    const row = rows[key];
    if (!row) continue;
    const ratio = stats(row.samples.map((s) => s.ms)).median / baseline;
    console.log(
      `${row.label}: ×${ratio.toFixed(2)} of the baseline; every first request of ${who} pays at least that` +
        (ratio > GOAL_RATIO ? ` (over the goal of ≤ ${GOAL_RATIO} before any other work)` : ''),
    );
  }
}

await main();
