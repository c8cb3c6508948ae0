/**
 * `npm start`: the whole pipeline on this machine, offline. Drops the bundled example and shows
 * its journey (received → validated → job created → running → succeeded → event), then keeps
 * running: files copied into `.local/inbox/` go through the same way.
 *
 *   npm start                      keep running (Ctrl-C stops everything)
 *   npm start -- --example=table   the example is a manifest over a BigQuery table the stack seeds
 *   npm start -- --example=files   the example is a manifest over two files the stack uploads
 *   npm start -- --once            exit 0 once the example's event arrived (non-zero on timeout)
 *   npm start -- --poll-interval=5 call the poller every 5 s (default 2)
 *   npm start -- --timeout=60      --once gives up after this many seconds
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { LogEvent } from '../shared/log-events.js';
import { seedRequestsTable } from './bigquery/seed.js';
import type { CompletionEvent } from '../shared/core/events.js';
import {
  BIGQUERY_DATASET,
  INPUT_BUCKET,
  INPUT_PREFIX,
  PROJECT,
  startStack,
  type Stack,
} from './stack.js';

const { values: args } = parseArgs({
  options: {
    once: { type: 'boolean', default: false },
    example: { type: 'string', default: 'jsonl' },
    'poll-interval': { type: 'string', default: '2' },
    timeout: { type: 'string', default: '60' },
  },
});
const ROOT = resolve(process.cwd(), '.local');
const INBOX = join(ROOT, 'inbox');
/** The examples `--example` picks: a JSONL file, or a manifest (README "Manifests"). */
const EXAMPLES: Record<string, string> = {
  jsonl: 'customer-reviews.jsonl',
  table: 'manifests/reviews-table.batch.json',
  files: 'manifests/reviews-files.batch.json',
};
const EXAMPLE_FILE = EXAMPLES[args.example ?? 'jsonl'];
if (EXAMPLE_FILE === undefined) {
  process.stderr.write(
    `npm start: --example must be one of ${Object.keys(EXAMPLES).join(', ')}, not "${args.example}"\n`,
  );
  process.exit(2);
}
const EXAMPLE = resolve(process.cwd(), 'examples', EXAMPLE_FILE);
const EXAMPLE_NAME = `${INPUT_PREFIX}${basename(EXAMPLE_FILE)}`;
/** The table the table manifest reads, seeded from the JSONL example at start. */
const EXAMPLE_TABLE = 'customer_reviews';
/** Where the files manifest's files are uploaded (outside INPUT_PREFIX: not inputs themselves). */
const EXAMPLE_FILES_FOLDER = 'data/';

const paint =
  (code: number) =>
  (s: string): string =>
    process.stdout.isTTY ? `\x1b[${code}m${s}\x1b[0m` : s;
const color = { dim: paint(2), bold: paint(1), green: paint(32), red: paint(31) };
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

type Line = Record<string, unknown>;
const at = (): string => color.dim(new Date().toISOString().slice(11, 23));
const str = String;
const step = (l: Line, text: string): void => say(`  ${at()} ${str(l.object)}: ${text}`);
const job = (l: Line, text = str(l.state)): void => say(`  ${at()} ${str(l.jobId)}: ${text}`);
const failure = (l: Line): void =>
  say(color.red(`  ${str(l.event)}: ${JSON.stringify(l.error ?? l)}`));

/**
 * How the journey is told from the functions' own log lines: every event of the catalogue is
 * decided (the compiler checks); `null` is told elsewhere (the event itself is printed when it
 * arrives), or too fine-grained to narrate.
 */
const TELL: Record<LogEvent, ((line: Line) => void) | null> = {
  'input.received': (l) =>
    step(l, `received (generation ${str(l.generation)}) → job ${str(l.jobId)}`),
  'input.validated': (l) =>
    step(l, `validated: ${str(l.requestCount)} requests, ${str(l.bytes)} bytes${sourceText(l)}`),
  'job.submitted': (l) =>
    step(l, `job created: ${str(l.vertexJob)} (${str(l.model)}, ${str(l.location)})`),
  'input.invalid': (l) => step(l, color.red(`rejected: ${str(l.reason)}`)),
  'job.create_refused': (l) => step(l, color.red(`rejected: ${str(l.reason)}`)),
  'input.duplicate': (l) => step(l, 'duplicate delivery: nothing to do'),
  'input.waiting': (l) => step(l, `queued: ${str(l.reason)}`),
  'job.state_changed': (l) => job(l),
  'job.finished': (l) => job(l),
  'job.cancel_requested': (l) => job(l, 'cancel requested (MAX_JOB_AGE_HOURS)'),
  'submit.retry': failure,
  'input.read_denied': failure,
  'poll.job_failed': failure,
  'poll.submit_failed': failure,
  'poll.failed': failure,
  'event.unpublishable': failure,
  'job.duplicate_cancelled': failure,
  'digest.failed': failure,
  'digest.unmatched': failure,
  'job.digested': (l) => job(l, `digested: ${digestText(l)}`),
  'job.retrying': (l) =>
    job(
      l,
      `${str(l.requests)} rows failed for a transient reason: sent again as ${str(l.retryJobId)} (attempt ${str(l.attempt)})`,
    ),
  'job.attempt_done': (l) =>
    job(
      l,
      `attempt ${str(l.attempt)} of ${str(l.inputJobId)} ended (${str(l.state)}): the input carries on`,
    ),
  'cost.unpriced': null,
  'event.unsupported': null,
  'event.stale': null,
  'input.ignored': null,
  'job.recovered': null,
  'job.fenced': null,
  'job.stray_check_failed': null,
  'slot.release_failed': null,
  'poll.submitted_queued': null,
  'poll.list_failed': null,
  'poll.completed': null,
  'job.completed': null,
  'input.rejected': null,
  'event.release_failed': null,
};

/** What a manifest's job reads, for its `input.validated` line: ` from the table …`, ` from 2 files …`. */
function sourceText(l: Line): string {
  if (typeof l.source !== 'string') return '';
  if (l.source.startsWith('bq://')) return ` from the table ${l.source}`;
  return ` from ${str(l.files)} file${l.files === 1 ? '' : 's'} matching ${l.source} (pinned)`;
}

/** `12 succeeded, 1 failed, 0 missing; tokens …; $…` of a digest's log line. */
function digestText(l: Line): string {
  const rows = l.rows as { succeeded: number; failed: number; missing: number } | undefined;
  const usage = l.usage as Record<string, number> | null | undefined;
  if (!rows) return str(l.note ?? 'no output');
  const tokens = usage
    ? `tokens in ${usage.inputTokens} / out ${usage.outputTokens} / thinking ${usage.thinkingTokens} / cached ${usage.cachedTokens}`
    : 'no usage';
  const cost = typeof l.actualUsd === 'number' ? `$${l.actualUsd.toFixed(6)}` : 'no price';
  return `${rows.succeeded} succeeded, ${rows.failed} failed, ${rows.missing} missing; ${tokens}; ${cost}`;
}

/** Tells one log line; a line that is not one of ours (the functions framework's own) is skipped. */
function narrate(line: Line): void {
  if (Object.hasOwn(TELL, str(line.event))) TELL[line.event as LogEvent]?.(line);
}

/** A Claude message's text: a string, or text blocks. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((b: unknown) =>
        typeof b === 'object' && b !== null && 'text' in b ? String(b.text) : '',
      )
      .join('');
  }
  return '';
}

/** The lines of an object of the local storage emulator. */
async function linesOf(stack: Stack, uri: string): Promise<string[]> {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m?.[1] || !m[2]) return [];
  const [content] = await stack.storage.bucket(m[1]).file(m[2]).download();
  return content.toString('utf8').trim().split('\n');
}

/**
 * The requests a job read, in order: its pinned input, or a manifest's pinned files (`inputs/`),
 * or, for a table, nothing (its rows carry their requests).
 */
async function requestLines(stack: Stack, jobPrefix: string): Promise<string[]> {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(jobPrefix);
  if (!m?.[1] || !m[2]) return [];
  const [files] = await stack.storage.bucket(m[1]).getFiles({ prefix: `${m[2]}inputs/` });
  if (files.length === 0) return linesOf(stack, `${jobPrefix}input.jsonl`);
  const all = await Promise.all(files.map((f) => linesOf(stack, `gs://${m[1]}/${f.name}`)));
  return all.flat();
}

/** An output table's rows as results.jsonl lines would show them, with their requests. */
async function tableResults(stack: Stack, uri: string): Promise<string[]> {
  const m = /^bq:\/\/([^.]+)\.([^.]+)\.(.+)$/.exec(uri);
  if (!m?.[1] || !m[2] || !m[3]) return [];
  const rows = stack.bigquery.store.rows({ project: m[1], dataset: m[2], table: m[3] });
  await Promise.resolve();
  return rows.map((row, i) => {
    const parse = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);
    const status = typeof row.status === 'string' ? row.status : '';
    return JSON.stringify({
      line: i + 1,
      status: status === '' ? 'succeeded' : 'failed',
      error: status === '' ? null : status,
      response: row.response == null ? null : parse(row.response),
      request: parse(row.request),
    });
  });
}

/** Where an object of the local storage emulator is on disk. */
function onDisk(uri: string): string {
  return uri.replace(/^gs:\/\//, '.local/storage/');
}

/** The digest of a finished job: its figures, where its files are, and its first results. */
async function preview(stack: Stack, event: CompletionEvent): Promise<void> {
  const { results, usage, cost } = event;
  if (!results || !event.output) return;
  const { succeeded, failed, missing } = results.rows;
  say(`  ${color.bold('digest')}: ${succeeded} succeeded, ${failed} failed, ${missing} missing`);
  if (usage) {
    say(
      `    tokens: ${usage.inputTokens} in, ${usage.outputTokens} out, ${usage.thinkingTokens} thinking, ${usage.cachedTokens} cached`,
    );
  }
  if (cost) {
    const money = (v: number | null): string => (v === null ? 'unknown' : `$${v.toFixed(6)}`);
    say(
      `    cost: ${money(cost.actualUsd)} (estimated before submit: at most ${money(cost.estimatedUsd)}; prices ${cost.pricing})`,
    );
  }
  if (results.resultsUri.startsWith('bq://')) {
    say(`    results: the output table ${results.resultsUri}`);
  } else {
    say(`    results.jsonl: ${results.resultsUri} (on disk: ${onDisk(results.resultsUri)})`);
  }
  if (results.failedRowsUri) say(`    failed.jsonl:  ${results.failedRowsUri}`);
  const prefix = results.summaryUri.slice(0, -'summary.json'.length);
  const [rows, requests] = await Promise.all([
    results.resultsUri.startsWith('bq://')
      ? tableResults(stack, results.resultsUri)
      : linesOf(stack, results.resultsUri),
    results.resultsUri.startsWith('bq://') ? [] : requestLines(stack, prefix),
  ]);
  for (const [i, l] of rows.slice(0, 5).entries()) {
    const row = JSON.parse(l) as {
      line: number;
      request?: unknown;
      status: string;
      error: string | null;
      response?: {
        candidates?: { content?: { parts?: { text?: string }[] } }[];
        content?: { text?: string }[];
      } | null;
    };
    const request = (row.request ? { request: row.request } : JSON.parse(requests[i] ?? '{}')) as {
      request?: {
        contents?: { parts?: { text?: string }[] }[];
        messages?: { content?: unknown }[];
      };
    };
    const prompt =
      request.request?.contents?.at(-1)?.parts?.[0]?.text ??
      textOf(request.request?.messages?.at(-1)?.content);
    const answer =
      row.response?.candidates?.[0]?.content?.parts?.[0]?.text ??
      row.response?.content?.[0]?.text ??
      `failed: ${(row.error ?? '').slice(0, 60)}`;
    const text = prompt.includes(': ') ? prompt.slice(prompt.lastIndexOf(': ') + 2) : prompt;
    say(
      `    ${results.resultsUri.startsWith('bq://') ? 'row ' : 'line'} ${String(row.line).padEnd(3)} ${answer.padEnd(9)} ← ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`,
    );
  }
}

function printEvent(event: CompletionEvent): void {
  const ok = event.state === 'JOB_STATE_SUCCEEDED';
  say(
    `  ${(ok ? color.green : color.red)(`event ${event.eventType} (${event.state})`)} for ${event.input.name}:`,
  );
  say(
    JSON.stringify(event, null, 2)
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n'),
  );
}

/**
 * Seeds what the example manifests read: a BigQuery table of the JSONL example's requests (one
 * row each, `review_id` beside `request`), and the two halves of it as files.
 */
async function seedExamples(stack: Stack): Promise<number> {
  const examples = resolve(process.cwd(), 'examples');
  const rows = seedRequestsTable(
    stack.bigquery.store,
    { project: PROJECT, dataset: BIGQUERY_DATASET, table: EXAMPLE_TABLE },
    readFileSync(join(examples, 'customer-reviews.jsonl'), 'utf8'),
  );
  const files = join(examples, 'manifests', 'files');
  for (const name of readdirSync(files).sort()) {
    await stack.upload(`${EXAMPLE_FILES_FOLDER}${name}`, readFileSync(join(files, name)));
  }
  return rows;
}

/** Uploads `.jsonl` files dropped into the inbox (a sub-folder name is the model), then moves them to `sent/`. */
function watchInbox(stack: Stack): () => void {
  mkdirSync(join(INBOX, 'sent'), { recursive: true });
  const sizes = new Map<string, number>();
  const scan = (dir: string, model?: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory() && e.name !== 'sent' && !model) return scan(path, e.name);
      const lower = e.name.toLowerCase();
      return e.isFile() && (lower.endsWith('.jsonl') || lower.endsWith('.batch.json'))
        ? [`${model ?? ''}\u0000${path}`]
        : [];
    });
  const tick = (): void => {
    for (const entry of scan(INBOX)) {
      const [model, path] = entry.split('\u0000') as [string, string];
      const size = statSync(path).size;
      // Upload once the file stopped growing (a copy may still be in progress).
      if (sizes.get(path) !== size) {
        sizes.set(path, size);
        continue;
      }
      sizes.delete(path);
      const name = `${INPUT_PREFIX}${basename(path)}`;
      const sent = join(INBOX, 'sent', `${Date.now()}-${basename(path)}`);
      const content = readFileSync(path);
      renameSync(path, sent);
      say(
        `\n${color.bold('inbox')}: ${relative(process.cwd(), path)} → gs://${INPUT_BUCKET}/${name}${model ? ` (model ${model})` : ''}`,
      );
      stack
        .upload(name, content, model ? { model } : undefined)
        .catch((err: unknown) => say(color.red(`upload failed: ${String(err)}`)));
    }
  };
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}

async function main(): Promise<number> {
  const started = Date.now();
  say(color.bold('batch-courier: the whole pipeline on this machine, offline'));
  let onEvent: (e: CompletionEvent) => void = () => undefined;
  const stack = await startStack({
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root: ROOT,
    pollIntervalMs: Number(args['poll-interval']) * 1000,
    vertexTiming: { pendingMs: 1000, runningMs: 2000 },
    onLog: narrate,
    onEvent: (e) => onEvent(e),
  });
  let stopping = false;
  const stopInbox = watchInbox(stack);
  const stop = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      stopInbox();
      await stack.stop();
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(130));
  process.on('SIGTERM', () => void stop(143));
  process.on('SIGHUP', () => void stop(129));

  say(`  Cloud Storage  ${stack.services.storage}`);
  say(`  Pub/Sub        ${stack.services.pubsub}`);
  say(`  Firestore      ${stack.services.firestore}`);
  say(`  Vertex AI      ${stack.services.vertex}`);
  say(`  BigQuery       ${stack.services.bigquery}`);
  say(
    `  functions      submitBatchJob ${stack.submitUrl}  pollBatchJobs ${stack.pollUrl} (called every ${args['poll-interval']} s)`,
  );
  say(`  ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // .local/env: this stack's configuration for other programs, such as the operators' command
  // (`set -a; . .local/env; set +a; npx batch-courier jobs`); removed when the stack stops.
  const { rmSync, writeFileSync } = await import('node:fs');
  const envFile = join(ROOT, 'env');
  const quoted = (v: string): string => `'${v.replace(/'/g, `'\\''`)}'`;
  const exported = { ...stack.env, METADATA_SERVER_DETECTION: 'none' };
  writeFileSync(
    envFile,
    `${Object.entries(exported)
      .map(([k, v]) => `${k}=${quoted(v)}`)
      .join('\n')}\n`,
  );
  process.on('exit', () => rmSync(envFile, { force: true }));
  say(
    `  environment    ${relative(process.cwd(), envFile)} (set -a; . ${relative(process.cwd(), envFile)}; set +a)`,
  );

  const previewed = new Map<string, Promise<void>>();
  onEvent = (e) => {
    printEvent(e);
    previewed.set(
      e.eventId,
      preview(stack, e).catch((err: unknown) =>
        say(color.red(`  could not read the results: ${String(err)}`)),
      ),
    );
  };

  const seeded = await seedExamples(stack);
  say(
    `  examples       table ${PROJECT}.${BIGQUERY_DATASET}.${EXAMPLE_TABLE} (${seeded} rows) and gs://${INPUT_BUCKET}/${EXAMPLE_FILES_FOLDER}reviews-part-*.jsonl, for the manifests in examples/manifests/`,
  );
  say(
    `\n${color.bold('example')}: ${relative(process.cwd(), EXAMPLE)} → gs://${INPUT_BUCKET}/${EXAMPLE_NAME}`,
  );
  if (!existsSync(EXAMPLE)) throw new Error(`the bundled example is missing: ${EXAMPLE}`);
  await stack.upload(EXAMPLE_NAME, readFileSync(EXAMPLE));

  if (args.once) {
    const timeoutMs = Number(args.timeout) * 1000;
    try {
      const event = await stack.waitForEvent((e) => e.input.name === EXAMPLE_NAME, timeoutMs);
      await previewed.get(event.eventId);
      const ok = event.state === 'JOB_STATE_SUCCEEDED';
      say(
        `\n${ok ? 'done' : 'finished, but not successfully'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      return stop(ok ? 0 : 1);
    } catch (err) {
      say(
        color.red(`\nno completion event for the example within ${args.timeout} s: ${String(err)}`),
      );
      return stop(1);
    }
  }

  say(
    `\nRunning. Drop your own .jsonl file, or a .batch.json manifest such as examples/manifests/reviews-table.batch.json,`,
  );
  say(
    `into ${relative(process.cwd(), INBOX)}/ (a sub-folder name picks the model of a .jsonl file, e.g.`,
  );
  say(
    `${relative(process.cwd(), INBOX)}/claude-3-5-haiku/my.jsonl), or upload to gs://${INPUT_BUCKET}/${INPUT_PREFIX} with any GCS client:`,
  );
  say(
    `  STORAGE_EMULATOR_HOST=${stack.env.STORAGE_EMULATOR_HOST} (project ${stack.env.GOOGLE_CLOUD_PROJECT})`,
  );
  say('Ctrl-C stops everything.');
  return new Promise<number>(() => undefined);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `npm start failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
