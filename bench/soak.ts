/**
 * Soak test on the offline stack, loopback only: FILES small valid Gemini
 * files are uploaded within a few seconds (bounded concurrency), a fraction of them is delivered
 * once or twice more (Eventarc delivers at least once), and the run waits — bounded — for one
 * completion event per file plus a grace period that would catch a late duplicate. It checks one
 * Vertex job and one event per file, and prints the time to the last event and the peak memory.
 *
 *   npm run soak                                      # FILES=1000 DUPLICATES=20% TIMEOUT_SECONDS=600
 *   FILES=200 DUPLICATES=50% BATCH_COURIER_EMULATORS=builtin npm run soak
 *
 * Exit code 0 only when jobs == files, distinct events == files, 0 duplicates and 0 lost.
 * `runSoak` is the scenario; `test/e2e/soak.test.ts` runs a small version of it in `npm test`.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { INPUT_BUCKET, startStack, type Stack } from '../local/stack.js';
import type { VertexJobJson } from '../local/vertex/server.js';
import type { CompletionEvent } from '../shared/core/events.js';
import { mulberry32 } from './generate-jsonl.js';
import { deriveJobId } from '../shared/core/job-id.js';

/** Options of {@link runSoak}; only `files`, `duplicates` and `timeoutMs` are required. */
export interface SoakOptions {
  /** Files to upload. */
  files: number;
  /** Fraction (0..1) of the files whose finalize event is delivered once or twice more. */
  duplicates: number;
  /** How long to wait for one event per file, from the first upload. */
  timeoutMs: number;
  /** `BATCH_COURIER_EMULATORS` (auto | gcloud | builtin); default auto. */
  emulators?: string | undefined;
  /** The stack's folder; default `.local/soak-<pid>` under the working directory. Always removed. */
  root?: string;
  /** Poll interval (default 500 ms). */
  pollIntervalMs?: number;
  /** Vertex emulator timing (default pending 200 ms, running 500 ms). */
  vertexTiming?: { pendingMs: number; runningMs: number };
  /** Uploads in flight at once (default 50). */
  uploadConcurrency?: number;
  /** Extra wait after the last expected event (default two poll intervals + 2 s). */
  graceMs?: number;
  /** Seed of the choice of re-delivered files (default 1). */
  seed?: number;
  /** Stops the run early (the stack is still stopped and the folder removed). */
  signal?: AbortSignal;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

/** A file that did not end with exactly one job and one event, with what the functions logged. */
export interface SoakProblem {
  name: string;
  jobId: string;
  jobs: number;
  events: number;
  /** The `event` names of the functions' log lines about this job, in order (at most 40). */
  trail: string[];
}

/** The figures of a run. */
export interface SoakResult {
  emulators: { firestore: string; pubsub: string };
  files: number;
  uploaded: number;
  uploadFailures: { name: string; error: string }[];
  /** Files whose finalize event was delivered more than once. */
  filesRedelivered: number;
  /** Extra deliveries sent (each re-delivered file gets one or two). */
  duplicateDeliveries: number;
  /** Vertex jobs of the soak files (displayName is one of their job ids). */
  jobs: number;
  /** All jobs in the Vertex emulator (every job in this stack is the soak's). */
  jobsTotal: number;
  /** Completion events received. */
  events: number;
  /** Distinct jobIds among the events. */
  distinct: number;
  /** Distinct eventIds among the events (a Pub/Sub redelivery repeats the eventId). */
  distinctEventIds: number;
  /** Events published by the functions (their `job.completed` / `input.rejected` log lines). */
  published: number;
  /** events − distinct. */
  duplicates: number;
  /** files − distinct. */
  lost: number;
  /** Events whose state is not JOB_STATE_SUCCEEDED or whose counts do not match the file. */
  unexpectedOutcomes: { name: string; state: string; detail: string }[];
  /** Files with a job count or an event count other than one (at most 50 listed). */
  problems: SoakProblem[];
  /** First upload started → last upload finished. */
  uploadMs: number;
  /** First upload started → last event received (null when no event arrived). */
  toLastEventMs: number | null;
  /** events / (toLastEventMs / 1000). */
  eventsPerSecond: number | null;
  /** Whether every file had its event before the timeout. */
  timedOut: boolean;
  /** Whether Eventarc still had deliveries in flight after the wait. */
  deliveriesBusy: boolean;
  /** `process.resourceUsage().maxRSS`, in bytes. */
  maxRssBytes: number;
  /** Highest `process.memoryUsage().rss` sampled every 250 ms, in bytes. */
  sampledRssBytes: number;
  /** Highest summed RSS of child processes (official emulators), sampled every second; null when unknown. */
  childRssBytes: number | null;
  /** Log lines of the functions by `event` name. */
  logCounts: Record<string, number>;
  /** The first warning and error lines of the functions (at most 20). */
  warnings: Record<string, unknown>[];
  /** Why the run failed; empty when it passed. */
  reasons: string[];
  ok: boolean;
}

const REVIEWS = [
  'Arrived early and works perfectly.',
  'The blender broke after two days.',
  'Great value, I love the design and it is very quiet.',
  'Terrible customer service, they never answered my emails.',
  'It is a blender. It blends.',
  'Five stars, would buy again.',
  'The lid does not fit and it leaks everywhere.',
  'Okay for the price, nothing special.',
];

/** Requests in soak file `index` (2 to 4). */
export function soakLines(index: number): number {
  return 2 + (index % 3);
}

/** The name of soak file `index` (1-based). */
export function soakName(index: number): string {
  return `inputs/soak/file-${String(index).padStart(5, '0')}.jsonl`;
}

/** A small valid Gemini file, like `examples/customer-reviews.jsonl`. */
export function soakContent(index: number): string {
  let out = '';
  for (let l = 0; l < soakLines(index); l++) {
    const review = REVIEWS[(index + l) % REVIEWS.length] ?? '';
    out += `${JSON.stringify({
      request: {
        contents: [
          {
            role: 'user',
            parts: [
              {
                text: `Classify the sentiment of this review as positive, negative or neutral: ${review} (soak ${index}.${l})`,
              },
            ],
          },
        ],
        generationConfig: { maxOutputTokens: 5, temperature: 0 },
      },
    })}\n`;
  }
  return out;
}

function aborted(signal: AbortSignal | undefined): Error {
  return new Error(`soak aborted${signal?.reason ? `: ${String(signal.reason)}` : ''}`);
}

/** Resolves after `ms`, or rejects when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(aborted(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Resolves true when `work` settles within `ms`, false when the time is up first; rejects when
 * `signal` aborts. The timer is cleared either way.
 */
function within(work: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const done = (value: boolean | Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const onAbort = (): void => done(aborted(signal));
    const timer = setTimeout(() => done(false), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    work.then(
      () => done(true),
      () => done(true),
    );
  });
}

/** Summed VmRSS of this process's descendants (Linux /proc), in bytes; undefined elsewhere. */
function descendantsRssBytes(): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended meanwhile.
    }
  }
  let total = 0;
  const queue = [...(children.get(process.pid) ?? [])];
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    const pid = queue[i] as number;
    queue.push(...(children.get(pid) ?? []));
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0) * 1024;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** Runs the soak scenario on a fresh offline stack; never throws for a pipeline failure. */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const files = Math.floor(options.files);
  if (!(files >= 1 && files <= 100_000)) throw new Error('files must be 1..100000');
  if (!(options.duplicates >= 0 && options.duplicates <= 1))
    throw new Error('duplicates must be a fraction 0..1');
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  const graceMs = options.graceMs ?? 2 * pollIntervalMs + 2000;
  const concurrency = Math.max(1, Math.min(options.uploadConcurrency ?? 50, 500));
  const { signal } = options;
  const progress = options.progress ?? (() => undefined);
  const root = options.root ?? join(process.cwd(), '.local', `soak-${process.pid}`);

  // Memory: this process (the whole stack runs in it) and, in gcloud mode, the emulator JVMs.
  let sampledRss = process.memoryUsage().rss;
  let childRss: number | null = descendantsRssBytes() ?? null;
  const rssTimer = setInterval(() => {
    sampledRss = Math.max(sampledRss, process.memoryUsage().rss);
  }, 250);
  rssTimer.unref();
  const childTimer = setInterval(() => {
    const rss = descendantsRssBytes();
    if (rss !== undefined) childRss = Math.max(childRss ?? 0, rss);
  }, 1000);
  childTimer.unref();

  // What the functions logged: counts by event name, a trail per job, the first warnings.
  const logCounts: Record<string, number> = {};
  const trails = new Map<string, string[]>();
  const warnings: Record<string, unknown>[] = [];
  const onLog = (line: Record<string, unknown>): void => {
    const name = typeof line.event === 'string' ? line.event : '(none)';
    logCounts[name] = (logCounts[name] ?? 0) + 1;
    const key =
      typeof line.jobId === 'string'
        ? line.jobId
        : typeof line.object === 'string'
          ? line.object
          : undefined;
    if (key !== undefined) {
      const trail = trails.get(key) ?? [];
      if (trail.length < 40) trail.push(name);
      trails.set(key, trail);
    }
    if ((line.severity === 'WARNING' || line.severity === 'ERROR') && warnings.length < 20) {
      warnings.push(line);
    }
  };

  // The events, and the moment every file has one.
  const names = Array.from({ length: files }, (_, i) => soakName(i + 1));
  const indexOf = new Map(names.map((n, i) => [n, i + 1]));
  const eventsByName = new Map<string, CompletionEvent[]>();
  // Written by the event callback (an object, so TypeScript does not narrow it to its initial value).
  // `target` drops to the files actually uploaded once the uploads are over.
  const seen = { filesWithEvent: 0, target: files, lastEventAt: null as number | null };
  let allArrived: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const onEvent = (event: CompletionEvent): void => {
    seen.lastEventAt = performance.now();
    const list = eventsByName.get(event.input.name) ?? [];
    list.push(event);
    eventsByName.set(event.input.name, list);
    if (list.length === 1 && indexOf.has(event.input.name)) {
      seen.filesWithEvent++;
      if (seen.filesWithEvent >= seen.target) allArrived();
    }
  };

  let stack: Stack | undefined;
  const uploadFailures: { name: string; error: string }[] = [];
  const generations = new Map<string, string>();
  let duplicateDeliveries = 0;
  let filesRedelivered = 0;
  let uploadMs = 0;
  let firstUploadAt = 0;
  let timedOut = false;
  let deliveriesBusy = false;
  let progressTimer: NodeJS.Timeout | undefined;
  let jobsSnapshot: VertexJobJson[] = [];
  let services: Stack['services'] | undefined;
  try {
    if (signal?.aborted) throw aborted(signal);
    stack = await startStack({
      emulators: options.emulators,
      root,
      pollIntervalMs,
      vertexTiming: options.vertexTiming ?? { pendingMs: 200, runningMs: 500 },
      onLog,
      onEvent,
    });
    const running = stack;
    progress(
      `stack up: Firestore ${running.services.firestore}; Pub/Sub ${running.services.pubsub}`,
    );

    // Which files get extra deliveries, and how many (1 or 2): a seeded shuffle.
    const rand = mulberry32(options.seed ?? 1);
    const order = names.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    const extra = new Map<string, number>();
    for (const i of order.slice(0, Math.round(files * options.duplicates))) {
      extra.set(names[i] as string, rand() < 0.5 ? 1 : 2);
    }

    progressTimer = setInterval(() => {
      progress(
        `${((performance.now() - firstUploadAt) / 1000).toFixed(0)} s: uploaded ${generations.size}/${files}, jobs ${running.vertex.jobs().length}, files with an event ${seen.filesWithEvent}/${files}`,
      );
    }, 5000);
    progressTimer.unref();

    // Upload everything with bounded concurrency. The first extra delivery goes right after the
    // upload, racing the original one; the second after all uploads, when the job exists already.
    firstUploadAt = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      // Bounded in time too: no new upload starts once the whole run's time is up.
      while (
        next < names.length &&
        !signal?.aborted &&
        performance.now() - firstUploadAt < options.timeoutMs
      ) {
        const index = next++;
        const name = names[index] as string;
        try {
          const object = await running.upload(name, soakContent(index + 1));
          generations.set(name, object.generation);
        } catch (err) {
          uploadFailures.push({ name, error: err instanceof Error ? err.message : String(err) });
          continue;
        }
        const times = extra.get(name) ?? 0;
        if (times > 0) {
          running.redeliver(name);
          duplicateDeliveries++;
          filesRedelivered++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, files) }, worker));
    uploadMs = performance.now() - firstUploadAt;
    if (signal?.aborted) throw aborted(signal);
    seen.target = generations.size;
    if (seen.filesWithEvent >= seen.target) allArrived();
    for (const [name, times] of extra) {
      if (times === 2 && generations.has(name)) {
        running.redeliver(name);
        duplicateDeliveries++;
      }
    }
    progress(
      `uploaded ${generations.size}/${files} in ${(uploadMs / 1000).toFixed(1)} s, ${duplicateDeliveries} extra deliveries`,
    );

    // Wait for one event per file (bounded), then for stray deliveries and a late duplicate.
    const remaining = (): number =>
      Math.max(0, firstUploadAt + options.timeoutMs - performance.now());
    timedOut = !(await within(arrived, remaining(), signal));
    deliveriesBusy = !(await within(
      running.deliveriesIdle(),
      Math.max(graceMs, Math.min(30_000, remaining())),
      signal,
    ));
    await sleep(graceMs, signal);
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    // Figures that need the stack are read before it stops.
    jobsSnapshot = stack?.vertex.jobs() ?? [];
    services = stack?.services;
    await stack?.stop();
    clearInterval(rssTimer);
    clearInterval(childTimer);
    rmSync(root, { recursive: true, force: true });
  }
  sampledRss = Math.max(sampledRss, process.memoryUsage().rss);

  // One job and one event per file?
  const expected = new Map<string, string>();
  for (const [name, generation] of generations) {
    expected.set(name, deriveJobId(INPUT_BUCKET, name, generation));
  }
  const soakJobIds = new Set(expected.values());
  const jobsById = new Map<string, number>();
  for (const job of jobsSnapshot) {
    jobsById.set(job.displayName, (jobsById.get(job.displayName) ?? 0) + 1);
  }
  const jobs = jobsSnapshot.filter((j) => soakJobIds.has(j.displayName)).length;
  const all = [...eventsByName.values()].flat();
  const distinct = new Set(all.map((e) => e.jobId)).size;
  const distinctEventIds = new Set(all.map((e) => e.eventId)).size;
  const published = (logCounts['job.completed'] ?? 0) + (logCounts['input.rejected'] ?? 0);

  const problems: SoakProblem[] = [];
  const unexpectedOutcomes: SoakResult['unexpectedOutcomes'] = [];
  for (const name of names) {
    const jobId = expected.get(name);
    if (jobId === undefined) continue; // Upload failed: reported as such.
    const fileEvents = eventsByName.get(name) ?? [];
    const fileJobs = jobsById.get(jobId) ?? 0;
    if ((fileJobs !== 1 || fileEvents.length !== 1) && problems.length < 50) {
      problems.push({
        name,
        jobId,
        jobs: fileJobs,
        events: fileEvents.length,
        trail: trails.get(jobId) ?? trails.get(name) ?? [],
      });
    }
    const lines = soakLines(indexOf.get(name) ?? 0);
    for (const e of fileEvents) {
      const detail =
        e.jobId !== jobId
          ? `jobId ${e.jobId}, expected ${jobId}`
          : e.state !== 'JOB_STATE_SUCCEEDED'
            ? `${e.error?.code ?? ''} ${e.error?.message ?? ''}`.trim()
            : e.input.requestCount !== lines || e.stats?.successfulCount !== lines
              ? `requestCount ${e.input.requestCount}, successfulCount ${e.stats?.successfulCount}, expected ${lines}`
              : undefined;
      if (detail !== undefined && unexpectedOutcomes.length < 50) {
        unexpectedOutcomes.push({ name, state: e.state, detail });
      }
    }
  }
  const foreign = all.filter((e) => !indexOf.has(e.input.name)).length;

  const toLastEventMs = seen.lastEventAt === null ? null : seen.lastEventAt - firstUploadAt;
  const result: SoakResult = {
    emulators: {
      firestore: services?.firestore ?? 'not started',
      pubsub: services?.pubsub ?? 'not started',
    },
    files,
    uploaded: generations.size,
    uploadFailures,
    filesRedelivered,
    duplicateDeliveries,
    jobs,
    jobsTotal: jobsSnapshot.length,
    events: all.length,
    distinct,
    distinctEventIds,
    published,
    duplicates: all.length - distinct,
    lost: files - distinct,
    unexpectedOutcomes,
    problems,
    uploadMs,
    toLastEventMs,
    eventsPerSecond:
      toLastEventMs !== null && toLastEventMs > 0 ? all.length / (toLastEventMs / 1000) : null,
    timedOut,
    deliveriesBusy,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    sampledRssBytes: sampledRss,
    childRssBytes: childRss,
    logCounts,
    warnings,
    reasons: [],
    ok: false,
  };

  const reasons = result.reasons;
  if (result.uploaded !== files) {
    reasons.push(`${files - result.uploaded} files not uploaded (${uploadFailures.length} failed)`);
  }
  if (result.jobs !== files) reasons.push(`${result.jobs} Vertex jobs for ${files} files`);
  if (result.jobsTotal !== result.jobs) {
    reasons.push(`${result.jobsTotal - result.jobs} Vertex jobs belong to no soak file`);
  }
  if (result.distinct !== files) {
    reasons.push(`${result.distinct} distinct events for ${files} files`);
  }
  if (result.duplicates !== 0) {
    reasons.push(
      `${result.duplicates} duplicate events (${all.length - distinctEventIds} of them repeat an eventId; ${published} published)`,
    );
  }
  if (result.lost !== 0) reasons.push(`${result.lost} files lost (no event)`);
  if (timedOut) reasons.push(`not every file had its event within ${options.timeoutMs} ms`);
  if (foreign > 0) reasons.push(`${foreign} events for objects that are not soak files`);
  if (unexpectedOutcomes.length > 0) {
    reasons.push(`${unexpectedOutcomes.length} events with an unexpected outcome`);
  }
  result.ok = reasons.length === 0;
  return result;
}

const MIB = 1024 * 1024;
const mib = (bytes: number | null): string =>
  bytes === null ? 'n/a' : `${(bytes / MIB).toFixed(0)} MiB`;

/** The report of a run, one figure per line. */
export function formatSoak(r: SoakResult): string {
  const row = (label: string, value: string | number): string =>
    `  ${label.padEnd(44)} ${String(value)}`;
  // Every event name the functions logged, with its count (a short list: ~10 names).
  const counts = Object.entries(r.logCounts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `soak on the offline stack: Firestore ${r.emulators.firestore}; Pub/Sub ${r.emulators.pubsub}`,
    row('files', r.files),
    row('uploaded', `${r.uploaded} in ${(r.uploadMs / 1000).toFixed(1)} s`),
    row(
      'duplicate deliveries sent',
      `${r.duplicateDeliveries} (to ${r.filesRedelivered} files, once or twice)`,
    ),
    row('Vertex jobs created', `${r.jobs} (all jobs in the emulator: ${r.jobsTotal})`),
    row('events received', `${r.events} (published: ${r.published})`),
    row('distinct jobIds among events', r.distinct),
    row('duplicates (events − distinct)', r.duplicates),
    row('lost (files − distinct)', r.lost),
    row(
      'first upload → last event',
      r.toLastEventMs === null ? 'n/a' : `${(r.toLastEventMs / 1000).toFixed(1)} s`,
    ),
    row('events/s', r.eventsPerSecond === null ? 'n/a' : r.eventsPerSecond.toFixed(1)),
    row('peak RSS of this process (maxRSS)', mib(r.maxRssBytes)),
    row('peak RSS of this process (sampled 250 ms)', mib(r.sampledRssBytes)),
    row('peak RSS of emulator processes (sampled 1 s)', mib(r.childRssBytes)),
    row('function log lines', counts),
  ];
  if (r.deliveriesBusy) lines.push('  note: Eventarc still had deliveries in flight at the end');
  for (const f of r.uploadFailures.slice(0, 10)) {
    lines.push(`  upload failed: ${f.name}: ${f.error}`);
  }
  for (const p of r.problems.slice(0, 20)) {
    lines.push(
      `  ${p.name} (${p.jobId}): ${p.jobs} jobs, ${p.events} events; log: ${p.trail.join(' → ')}`,
    );
  }
  for (const u of r.unexpectedOutcomes.slice(0, 10)) {
    lines.push(`  unexpected outcome: ${u.name}: ${u.state} ${u.detail}`);
  }
  if (!r.ok) {
    for (const w of r.warnings.slice(0, 10)) lines.push(`  log: ${JSON.stringify(w)}`);
  }
  lines.push(r.ok ? 'PASS' : `FAIL: ${r.reasons.join('; ')}`);
  return lines.join('\n');
}

/** `DUPLICATES`: `20%`, `20` (percent) or `0.2` (fraction). */
export function parseFraction(value: string): number {
  const text = value.trim();
  const n = Number(text.endsWith('%') ? text.slice(0, -1) : text);
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    throw new Error(`DUPLICATES must be a percentage or fraction (got "${value}")`);
  }
  return text.endsWith('%') || n > 1 ? n / 100 : n;
}

function positiveInt(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new Error(`${name} must be a whole number from 1 to ${max} (got "${raw}")`);
  }
  return n;
}

async function main(): Promise<number> {
  const files = positiveInt('FILES', 1000, 100_000);
  const timeoutSeconds = positiveInt('TIMEOUT_SECONDS', 600, 86_400);
  const duplicates = parseFraction(process.env.DUPLICATES ?? '20%');
  const controller = new AbortController();
  const onSignal = (name: string) => (): void => controller.abort(name);
  process.once('SIGINT', onSignal('SIGINT'));
  process.once('SIGTERM', onSignal('SIGTERM'));
  const started = performance.now();
  console.log(
    `soak: ${files} files, ${(duplicates * 100).toFixed(0)}% re-delivered, timeout ${timeoutSeconds} s, emulators ${process.env.BATCH_COURIER_EMULATORS || 'auto'}, node ${process.version}`,
  );
  try {
    const result = await runSoak({
      files,
      duplicates,
      timeoutMs: timeoutSeconds * 1000,
      emulators: process.env.BATCH_COURIER_EMULATORS,
      signal: controller.signal,
      progress: (line) => console.log(`  … ${line}`),
    });
    console.log(formatSoak(result));
    console.log(`  wall time ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return result.ok ? 0 : 1;
  } catch (err) {
    console.error(`FAIL: ${err instanceof Error ? err.message : String(err)}`);
    return controller.signal.aborted ? 130 : 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // Exit explicitly: a client of the stopped stack may keep a handle open for a while.
  process.exit(await main());
}
