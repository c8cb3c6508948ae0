/**
 * End to end on the offline stack: uploads go through the storage emulator, Eventarc-like
 * delivery, submitBatchJob, the Vertex emulator, pollBatchJobs and Pub/Sub.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../local/stack.js';

let stack: Stack;
let root: string;
const logs: Record<string, unknown>[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bc-stack-'));
  stack = await startStack({
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root,
    pollIntervalMs: 200,
    vertexTiming: { pendingMs: 50, runningMs: 100 },
    onLog: (line) => logs.push(line),
    eventarcRetry: { initialDelayMs: 50, maxDelayMs: 200 },
  });
  process.stdout.write(
    `e2e stack: Firestore ${stack.services.firestore}; Pub/Sub ${stack.services.pubsub}\n`,
  );
});
afterAll(async () => {
  await stack?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** An object of the output bucket, as text. */
async function download(name: string): Promise<string> {
  const [content] = await stack.storage.bucket('batch-courier-output').file(name).download();
  return content.toString('utf8');
}

const example = readFileSync(new URL('../../examples/customer-reviews.jsonl', import.meta.url));
const claude = readFileSync(new URL('../../examples/claude-reviews.jsonl', import.meta.url));

describe('the offline stack', () => {
  it('a Gemini file becomes a job, the job succeeds, predictions are written, one event arrives', async () => {
    await stack.upload('inputs/reviews.jsonl', example);
    const event = await stack.waitForEvent((e) => e.input.name === 'inputs/reviews.jsonl', 20_000);
    expect(event).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      model: 'publishers/google/models/gemini-2.5-flash',
      input: { bucket: 'batch-courier-input', requestCount: 12 },
      stats: { successfulCount: 12, failedCount: 0, incompleteCount: 0 },
      error: null,
    });
    const dir = event.output?.directory ?? '';
    expect(dir).toMatch(
      /^gs:\/\/batch-courier-output\/results\/reviews-[0-9a-f]{16}\/prediction-model-/,
    );
    // The digest: counts, tokens and cost in the event; its three files in the output bucket.
    const prefix = `gs://batch-courier-output/results/${event.jobId}/`;
    expect(event.results).toEqual({
      rows: { succeeded: 12, failed: 0, missing: 0 },
      summaryUri: `${prefix}summary.json`,
      resultsUri: `${prefix}results.jsonl`,
      failedRowsUri: null,
    });
    expect(event.usage?.inputTokens).toBeGreaterThan(0);
    expect(event.usage?.outputTokens).toBeGreaterThanOrEqual(12);
    expect(event.cost).toMatchObject({
      currency: 'USD',
      pricing: expect.stringMatching(/^vertex-ai-batch-/),
    });
    expect(event.cost?.actualUsd).toBeGreaterThan(0);
    expect(event.cost!.estimatedUsd!).toBeGreaterThan(event.cost!.actualUsd!);
    const rows = (await download(`results/${event.jobId}/results.jsonl`))
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            line: number;
            status: string;
            response: { candidates: { content: { parts: { text: string }[] } }[] };
          },
      );
    // In input order, whatever order Vertex wrote them in.
    expect(rows.map((r) => r.line)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(rows.map((r) => r.response.candidates[0]!.content.parts[0]!.text).slice(0, 2)).toEqual([
      'positive',
      'negative',
    ]);
    const summary = JSON.parse(await download(`results/${event.jobId}/summary.json`)) as Record<
      string,
      unknown
    >;
    expect(summary).toMatchObject({ results: event.results, usage: event.usage, cost: event.cost });
  });

  it('a row Vertex refuses: the event counts it, failed.jsonl holds its line, the summary names the error', async () => {
    const good = (t: string) =>
      JSON.stringify({ request: { contents: [{ role: 'user', parts: [{ text: t }] }] } });
    const bad = good('Classify the sentiment: [invalid] broken on arrival.');
    const input = [good('Classify the sentiment: great.'), bad, good('Classify: fine.')].join('\n');
    await stack.upload('inputs/one-bad-row.jsonl', `${input}\n`);
    const event = await stack.waitForEvent(
      (e) => e.input.name === 'inputs/one-bad-row.jsonl',
      20_000,
    );
    expect(event.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(event.results?.rows).toEqual({ succeeded: 2, failed: 1, missing: 0 });
    expect(event.results?.failedRowsUri).toMatch(/failed\.jsonl$/);
    expect(await download(`results/${event.jobId}/failed.jsonl`)).toBe(`${bad}\n`);
    const rows = (await download(`results/${event.jobId}/results.jsonl`)).trim().split('\n');
    expect(rows.map((l) => (JSON.parse(l) as { status: string }).status)).toEqual([
      'succeeded',
      'failed',
      'succeeded',
    ]);
    const summary = JSON.parse(await download(`results/${event.jobId}/summary.json`)) as {
      topErrors: { error: string; count: number }[];
    };
    expect(summary.topErrors).toEqual([
      { error: expect.stringContaining('INVALID_ARGUMENT'), count: 1 },
    ]);
  });

  it('rows that fail for a transient reason are sent again: one event after the retry, every row final', async () => {
    const flaky = readFileSync(new URL('../../examples/flaky-reviews.jsonl', import.meta.url));
    await stack.upload('inputs/flaky.jsonl', flaky);
    const event = await stack.waitForEvent((e) => e.input.name === 'inputs/flaky.jsonl', 40_000);
    // [transient] rows fail once with a quota error and succeed when sent again; [invalid] fails
    // for good and is not sent again.
    expect(event.attempts).toHaveLength(2);
    expect(event.attempts[1]).toMatchObject({ rows: { succeeded: 2, failed: 0 } });
    expect(event).toMatchObject({
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      results: { rows: { succeeded: 5, failed: 1, missing: 0 } },
    });
    const retried = await download(`results/${event.jobId}/attempt-2/input.jsonl`);
    const lines = flaky.toString('utf8').trim().split('\n');
    expect(retried).toBe(`${lines[1]}\n${lines[4]}\n`);
    expect(await download(`results/${event.jobId}/failed.jsonl`)).toBe(`${lines[3]}\n`);
    const rows = (await download(`results/${event.jobId}/results.jsonl`))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; status: string });
    expect(rows.map((r) => r.status)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
      'failed',
      'succeeded',
      'succeeded',
    ]);
  });

  it('a Claude file (metadata model) becomes an Anthropic job in us-east5', async () => {
    await stack.upload('inputs/claude.jsonl', claude, { model: 'claude-3-5-haiku' });
    const event = await stack.waitForEvent((e) => e.input.name === 'inputs/claude.jsonl', 20_000);
    expect(event).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      model: 'publishers/anthropic/models/claude-3-5-haiku',
      stats: { successfulCount: 4 },
    });
    expect(event.vertexJob).toMatch(/\/locations\/us-east5\//);
  });

  it('a bad file is rejected with one input.rejected event naming the line, and no job', async () => {
    const jobsBefore = stack.vertex.jobs().length;
    await stack.upload(
      'inputs/bad.jsonl',
      '{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\n{"request": oops}\n',
    );
    const event = await stack.waitForEvent((e) => e.input.name === 'inputs/bad.jsonl', 20_000);
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      state: 'INPUT_REJECTED',
      vertexJob: null,
      error: {
        code: 'INPUT.INVALID_JSONL',
        message: expect.stringContaining('inputs/bad.jsonl line 2'),
      },
    });
    expect(stack.vertex.jobs().length).toBe(jobsBefore);
    const [report] = await stack.storage
      .bucket('batch-courier-output')
      .file(`results/${event.jobId}/rejection.json`)
      .download();
    expect(JSON.parse(report.toString('utf8'))).toMatchObject({
      jobId: event.jobId,
      errors: [expect.objectContaining({ line: 2 })],
    });
  });

  it('a duplicate delivery makes no second job and no second event', async () => {
    await stack.upload('inputs/dup.jsonl', example);
    await stack.deliveriesIdle();
    stack.redeliver('inputs/dup.jsonl');
    stack.redeliver('inputs/dup.jsonl');
    await stack.deliveriesIdle();
    const event = await stack.waitForEvent((e) => e.input.name === 'inputs/dup.jsonl', 20_000);
    await stack.poll();
    expect(stack.events.filter((e) => e.input.name === 'inputs/dup.jsonl')).toHaveLength(1);
    expect(stack.vertex.jobs().filter((j) => j.displayName === event.jobId)).toHaveLength(1);
    expect(
      logs.filter((l) => l.event === 'input.duplicate' && l.object === 'inputs/dup.jsonl').length,
    ).toBe(2);
  });

  it('objects outside INPUT_PREFIX and non-JSONL objects are ignored', async () => {
    await stack.upload('notes/readme.jsonl', example);
    await stack.upload('inputs/readme.txt', 'hello');
    await stack.deliveriesIdle();
    const ignored = logs.filter((l) => l.event === 'input.ignored').map((l) => l.reason);
    expect(ignored).toEqual(expect.arrayContaining(['outside-input-prefix', 'not-jsonl']));
  });
});
