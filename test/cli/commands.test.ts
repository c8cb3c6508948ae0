/**
 * Every command against the offline stack's emulators (storage, Pub/Sub, Vertex AI, and the
 * official Firestore emulator), its `--json` output parsed. Vertex jobs move only when the test
 * says so (`advance`) and the poller runs only when called, so each step is deterministic.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  BIGQUERY_DATASET,
  INPUT_BUCKET,
  OUTPUT_BUCKET,
  PROJECT,
  startStack,
  type Stack,
} from '../../local/stack.js';
import type { CompletionEvent } from '../../shared/core/events.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import { cli } from './run.js';

let stack: Stack;
let root: string;
let env: Record<string, string>;

const example = readFileSync(new URL('../../examples/customer-reviews.jsonl', import.meta.url));
const firstLine = `${example.toString('utf8').split('\n')[0]}\n`;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bc-cli-'));
  stack = await startStack({
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root,
    pollIntervalMs: 0,
    vertexTiming: { pendingMs: Infinity, runningMs: Infinity },
    eventarcRetry: { initialDelayMs: 50, maxDelayMs: 200 },
  });
  env = { ...stack.env, METADATA_SERVER_DETECTION: 'none' };
});
afterAll(async () => {
  await stack?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** The stack uses the official Firestore emulator exactly when the tests' emulators are gcloud's. */
const officialFirestore = inject('emulatorMode') === 'gcloud';

/** Uploads an input and waits until the submit function has handled it. */
async function submit(name: string, content: string | Buffer): Promise<void> {
  await stack.upload(name, content);
  await stack.deliveriesIdle();
}

async function record(jobId: string): Promise<JobRecord> {
  const run = await cli(env, ['--json', 'show', jobId]);
  expect(run.code, run.stderr).toBe(0);
  return run.json<{ record: JobRecord }>().record;
}

async function jobIdOf(name: string): Promise<string> {
  const run = await cli(env, ['--json', 'show', `gs://${INPUT_BUCKET}/${name}`]);
  expect(run.code, run.stderr).toBe(0);
  return run.json<{ record: JobRecord }>().record.jobId;
}

/** Moves a job's Vertex AI job to its end, then runs the poller until its event is out. */
async function finish(jobId: string): Promise<CompletionEvent> {
  const { vertexJob } = await record(jobId);
  await stack.vertex.advance(vertexJob ?? '');
  await stack.vertex.advance(vertexJob ?? '');
  await stack.poll();
  return stack.waitForEvent((e) => e.jobId === jobId, 10_000);
}

/** Puts a digest in the shape the poller writes (summary.json, results.jsonl, failed.jsonl). */
async function putDigest(jobId: string): Promise<{ summary: object; results: string }> {
  const prefix = `results/${jobId}/`;
  const uri = (f: string): string => `gs://${OUTPUT_BUCKET}/${prefix}${f}`;
  const summary = {
    schemaVersion: 1,
    jobId,
    state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
    results: {
      rows: { succeeded: 11, failed: 1, missing: 0 },
      summaryUri: uri('summary.json'),
      resultsUri: uri('results.jsonl'),
      failedRowsUri: uri('failed.jsonl'),
    },
    usage: { inputTokens: 240, outputTokens: 12, thinkingTokens: 0, cachedTokens: 0 },
    cost: { currency: 'USD', estimatedUsd: 0.0012, actualUsd: 0.0001, pricing: '2026-11-01' },
    predictionFiles: [uri('prediction-model-x/predictions.jsonl')],
    topErrors: [{ error: 'Internal error', count: 1 }],
  };
  const results =
    '{"line":1,"key":null,"status":"failed","error":"Internal error","response":null}\n' +
    '{"line":2,"key":null,"status":"succeeded","error":null,"response":{"candidates":[]}}\n';
  const bucket = stack.storage.bucket(OUTPUT_BUCKET);
  await bucket.file(`${prefix}summary.json`).save(JSON.stringify(summary), { resumable: false });
  await bucket.file(`${prefix}results.jsonl`).save(results, { resumable: false });
  await bucket.file(`${prefix}failed.jsonl`).save(firstLine, { resumable: false });
  return { summary, results };
}

describe('batch-courier over the local stack', () => {
  it('refuses the local stack without the Firestore emulator, saying why', async () => {
    const { FIRESTORE_EMULATOR_HOST: _, ...noFirestore } = env;
    const run = await cli(noFirestore, ['jobs']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/FIRESTORE_EMULATOR_HOST is not/);
  });
});

// The builtin stack (no Google Cloud CLI) keeps its job records in the memory of its own process,
// where no other process, this command included, can read them: these need the official emulator.
describe.skipIf(!officialFirestore)(
  `batch-courier over the local stack with the official Firestore emulator${officialFirestore ? '' : ' (skipped: no Google Cloud CLI, so no Firestore emulator)'}`,
  () => {
    it('jobs: newest first, filtered by status and age, limited', async () => {
      await submit('inputs/listing-a.jsonl', example);
      await submit('inputs/listing-bad.jsonl', '{"request": nope}\n');
      await submit('inputs/listing-b.jsonl', example);

      const all = await cli(env, ['--json', 'jobs']);
      expect(all.code, all.stderr).toBe(0);
      const records = all.json<JobRecord[]>();
      const names = records.map((r) => r.object);
      expect(names.slice(0, 3)).toEqual([
        'inputs/listing-b.jsonl',
        'inputs/listing-bad.jsonl',
        'inputs/listing-a.jsonl',
      ]);
      expect(records[0]).toMatchObject({ status: 'SUBMITTED', requestCount: 12 });

      const rejected = await cli(env, ['jobs', '--json', '--status', 'rejected']);
      expect(rejected.json<JobRecord[]>().map((r) => r.object)).toEqual([
        'inputs/listing-bad.jsonl',
      ]);
      const recent = await cli(env, ['jobs', '--json', '--since', '10m', '--limit', '2']);
      expect(recent.json<JobRecord[]>().map((r) => r.object)).toEqual([
        'inputs/listing-b.jsonl',
        'inputs/listing-bad.jsonl',
      ]);

      const table = await cli(env, ['jobs', '--limit', '3']);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(
        /^JOB\s+STATUS\s+VERTEX STATE\s+MODEL\s+REQUESTS\s+CREATED\s+INPUT/,
      );
      expect(table.stdout).toMatch(
        /listing-bad-[0-9a-f]{16}\s+REJECTED\s+-\s+gemini-2.5-flash@us-central1/,
      );
    });

    it('show: by job id and by input URI, with the Vertex job, its files and (later) its event', async () => {
      await submit('inputs/show.jsonl', example);
      const jobId = await jobIdOf('inputs/show.jsonl');
      const byId = await cli(env, ['show', jobId, '--json']);
      expect(byId.code, byId.stderr).toBe(0);
      const shown = byId.json<{
        record: JobRecord;
        vertexJob: { state: string } | null;
        event: CompletionEvent | null;
        files: { uri: string }[];
      }>();
      expect(shown.record).toMatchObject({ jobId, status: 'SUBMITTED' });
      expect(shown.vertexJob?.state).toBe('JOB_STATE_PENDING');
      expect(shown.event).toBeNull();
      expect(shown.files.map((f) => f.uri)).toEqual([
        `gs://${OUTPUT_BUCKET}/results/${jobId}/input.jsonl`,
      ]);

      const event = await finish(jobId);
      const after = (
        await cli(env, ['show', '--json', `gs://${OUTPUT_BUCKET}/results/${jobId}/input.jsonl`])
      ).json<{
        event: CompletionEvent;
      }>();
      // The event as it was published: same id, same publish time.
      expect(after.event).toEqual(event);

      const text = await cli(env, ['show', jobId]);
      expect(text.stdout).toMatch(new RegExp(`^job\\s+${jobId}$`, 'm'));
      expect(text.stdout).toMatch(
        /^event\s+job.completed JOB_STATE_SUCCEEDED, eventId [0-9a-f]{32}/m,
      );
    });

    it('show: an input URI that no longer exists asks for its generation', async () => {
      const run = await cli(env, ['show', `gs://${INPUT_BUCKET}/inputs/never-uploaded.jsonl`]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/does not exist \(any more\).*\n.*fix: name the generation/);
      const absent = await cli(env, ['show', 'no-such-job-0123456789abcdef']);
      expect(absent.code).toBe(1);
      expect(absent.stderr).toMatch(/no job no-such-job-0123456789abcdef in collection batchJobs/);
    });

    it('watch: the outstanding jobs and their states, one JSON line per refresh', async () => {
      await submit('inputs/watched.jsonl', example);
      const jobId = await jobIdOf('inputs/watched.jsonl');
      const run = await cli(env, ['watch', '--json', '--count', '2', '--interval', '1']);
      expect(run.code, run.stderr).toBe(0);
      const frames = run.stdout
        .trim()
        .split('\n')
        .map(
          (l) =>
            JSON.parse(l) as {
              jobs: { jobId: string; status: string; vertexState: string | null }[];
              claude: { capacity: number };
            },
        );
      expect(frames).toHaveLength(2);
      expect(frames[1]?.jobs).toContainEqual(
        expect.objectContaining({ jobId, status: 'SUBMITTED' }),
      );
      expect(frames[0]?.claude.capacity).toBe(4);

      const text = await cli(env, ['watch', '--count', '1']);
      expect(text.stdout).toMatch(
        /\d+ outstanding: \d+ being submitted, [1-9]\d* at Vertex AI, 0 waiting for capacity, \d+ being announced/,
      );
      expect(text.stdout).toMatch(new RegExp(`${jobId}\\s+SUBMITTED`));
      await finish(jobId);
    });

    it('watch: Ctrl-C ends it with exit 0', async () => {
      let stop: () => void = () => undefined;
      const interrupted = new Promise<void>((r) => (stop = r));
      const running = cli(env, ['watch', '--json', '--interval', '3600'], { interrupted });
      setTimeout(stop, 200);
      const run = await running;
      expect(run.code).toBe(0);
      expect(run.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(1);
    });

    it('cancel: Vertex AI cancels the job and the poller announces it once', async () => {
      await submit('inputs/cancel-me.jsonl', example);
      const jobId = await jobIdOf('inputs/cancel-me.jsonl');
      const run = await cli(env, ['cancel', jobId, '--json']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json()).toMatchObject({ jobId, cancelRequested: true });

      const { vertexJob } = await record(jobId);
      await stack.vertex.advance(vertexJob ?? ''); // CANCELLING → CANCELLED
      await stack.poll();
      const event = await stack.waitForEvent((e) => e.jobId === jobId, 10_000);
      expect(event).toMatchObject({ eventType: 'job.completed', state: 'JOB_STATE_CANCELLED' });
      await stack.poll();
      await stack.poll();
      expect(stack.events.filter((e) => e.jobId === jobId)).toHaveLength(1);

      const again = await cli(env, ['cancel', jobId]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(
        /has finished already \(COMPLETED \(JOB_STATE_CANCELLED\)\): nothing to cancel/,
      );
    });

    it('replay: the recorded event again, with the same eventId', async () => {
      await submit('inputs/replayed.jsonl', example);
      const jobId = await jobIdOf('inputs/replayed.jsonl');
      const early = await cli(env, ['replay', jobId]);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(/has not been announced \(SUBMITTED/);

      const original = await finish(jobId);
      const run = await cli(env, ['--json', 'replay', jobId]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json()).toMatchObject({
        jobId,
        eventId: original.eventId,
        topic: stack.env.COMPLETION_TOPIC,
      });
      await expect
        .poll(() => stack.events.filter((e) => e.jobId === jobId).length, { timeout: 10_000 })
        .toBe(2);
      const [first, second] = stack.events.filter((e) => e.jobId === jobId);
      expect(second).toEqual(first);
    });

    it('results: the summary, results.jsonl to a file, and a clear message before the digest', async () => {
      await submit('inputs/digested.jsonl', example);
      const jobId = await jobIdOf('inputs/digested.jsonl');
      const early = await cli(env, ['results', jobId]);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(
        new RegExp(`no digest yet: job ${jobId} is still JOB_STATE_PENDING`),
      );

      await finish(jobId);
      const { summary, results } = await putDigest(jobId);
      const out = join(root, 'results.jsonl');
      const run = await cli(env, ['results', jobId, '--json', '--out', out]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json()).toMatchObject({
        jobId,
        summary,
        resultsFile: { path: out, bytes: results.length },
      });
      expect(readFileSync(out, 'utf8')).toBe(results);

      const text = await cli(env, ['results', jobId]);
      expect(text.stdout).toMatch(/^rows\s+11 succeeded, 1 failed, 0 missing$/m);
      expect(text.stdout).toMatch(/^1\s+Internal error$/m);

      const piped = await cli(env, ['results', jobId, '--out', '-']);
      expect(piped.stdout).toBe(results);

      const rejected = (
        await cli(env, ['--json', 'jobs', '--status', 'REJECTED', '--limit', '1'])
      ).json<JobRecord[]>();
      const refused = await cli(env, ['results', rejected[0]?.jobId ?? '']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /has no results: its input was refused \(REJECTED: INPUT.INVALID_JSONL\)/,
      );
    });

    it('results of a manifest that wrote to BigQuery: the summary, and the table named instead of a file', async () => {
      const table = { project: PROJECT, dataset: BIGQUERY_DATASET, table: 'cli_reviews' };
      stack.bigquery.store.createTable(table, [
        { name: 'request', type: 'JSON', mode: 'REQUIRED' },
      ]);
      stack.bigquery.store.insertRows(table, [
        { request: (JSON.parse(firstLine) as { request: unknown }).request },
      ]);
      const manifest = {
        source: `bq://${PROJECT}.${BIGQUERY_DATASET}.cli_reviews`,
        destination: `bq://${PROJECT}.${BIGQUERY_DATASET}`,
      };
      await submit('inputs/cli-table.batch.json', JSON.stringify(manifest));
      const jobId = await jobIdOf('inputs/cli-table.batch.json');
      const event = await finish(jobId);
      expect(event.results?.rows).toEqual({ succeeded: 1, failed: 0, missing: 0 });
      const text = await cli(env, ['results', jobId]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/^rows\s+1 succeeded, 0 failed, 0 missing$/m);
      const out = await cli(env, ['results', jobId, '--out', join(root, 'table.jsonl')]);
      expect(out.code).toBe(1);
      expect(out.stderr).toContain(
        `the results of ${jobId} are the BigQuery table ${event.output?.directory ?? '?'}, not a file`,
      );
      expect(out.stderr).toMatch(/bq head --max_rows=20 demo-batch-courier:reviews\.predictions_/);
    });

    it('retry: failed.jsonl becomes a new input with the original model and region, once', async () => {
      await submit('inputs/retried.jsonl', example);
      const jobId = await jobIdOf('inputs/retried.jsonl');
      await finish(jobId);
      await putDigest(jobId);

      const run = await cli(env, ['retry', jobId, '--json']);
      expect(run.code, run.stderr).toBe(0);
      const sent = run.json<{ sent: boolean; uri: string; rows: number; newJobId: string }>();
      const name = `inputs/retried.retry-${jobId.slice(-16)}.jsonl`;
      expect(sent).toMatchObject({ sent: true, uri: `gs://${INPUT_BUCKET}/${name}`, rows: 1 });
      const [metadata] = await stack.storage.bucket(INPUT_BUCKET).file(name).getMetadata();
      expect(metadata.metadata).toEqual({
        model: 'publishers/google/models/gemini-2.5-flash',
        location: 'us-central1',
      });
      const [content] = await stack.storage.bucket(INPUT_BUCKET).file(name).download();
      expect(content.toString('utf8')).toBe(firstLine);

      // A new input: its own job (and, when it ends, its own event).
      await stack.deliveriesIdle();
      const retried = await record(sent.newJobId);
      expect(retried).toMatchObject({ object: name, requestCount: 1, status: 'SUBMITTED' });
      const event = await finish(sent.newJobId);
      expect(event.input.name).toBe(name);

      const again = await cli(env, ['retry', jobId, '--json']);
      expect(again.code).toBe(0);
      expect(again.json()).toMatchObject({ sent: false, newJobId: sent.newJobId });
    });

    it('doctor: passes over the local stack, cloud-only checks skipped', async () => {
      const run = await cli(env, ['doctor', '--json']);
      const report = run.json<{
        ok: boolean;
        checks: { name: string; status: string; detail: string }[];
      }>();
      expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
      expect(run.code).toBe(0);
      expect(report.ok).toBe(true);
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      expect(byName.topic).toMatchObject({ status: 'ok' });
      expect(byName['job store']).toMatchObject({ status: 'ok' });
      expect(byName['Vertex AI us-central1']).toMatchObject({ status: 'ok' });
      // The input bucket is that of the newest job: the functions' configuration does not name it.
      expect(byName['input bucket']).toMatchObject({
        status: 'ok',
        detail: 'gs://batch-courier-input answers (storage emulator)',
      });
      expect(byName.APIs).toMatchObject({ status: 'skipped', detail: 'skipped: emulator' });
      expect(byName.IAM).toMatchObject({ status: 'skipped' });

      const text = await cli(env, ['doctor']);
      expect(text.stdout).toMatch(/everything checked is wired/);
    });

    it('doctor: a missing topic fails, with the fix', async () => {
      const run = await cli({ ...env, COMPLETION_TOPIC: 'no-such-topic' }, ['doctor']);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        /✗ topic\s+no-such-topic does not exist in project demo-batch-courier/,
      );
      expect(run.stdout).toMatch(/fix: restart `npm start`/);
    });
  },
);
