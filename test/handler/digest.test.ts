/**
 * The results digest (README "Results and cost"): what a finished job's event says about its rows,
 * tokens and cost, and the three files written under the job's prefix before it.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { TransientError } from '../../shared/core/errors.js';
import type { CompletionEvent } from '../../shared/core/events.js';
import { MISSING_ROW_ERROR } from '../../shared/core/results.js';
import { ANTHROPIC_LINES, createWorld, finalizeEvent } from '../fakes.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';
const OUT = 'acme-batch-output';

type World = ReturnType<typeof createWorld>;

/** A Gemini input line asking `text`, with optional extra request fields. */
function geminiLine(text: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    request: { contents: [{ role: 'user', parts: [{ text }] }], ...extra },
  });
}

/** A Gemini output line for `request`: succeeded with `answer`, or failed with `status`. */
function geminiOut(
  request: unknown,
  answer: string | { status: string },
  usage: Record<string, number> = { promptTokenCount: 10, candidatesTokenCount: 2 },
): string {
  if (typeof answer !== 'string') {
    return JSON.stringify({ status: answer.status, processed_time: 'x', request });
  }
  return JSON.stringify({
    status: '',
    processed_time: '2026-11-26T10:10:00.000+00:00',
    request,
    response: {
      candidates: [{ content: { role: 'model', parts: [{ text: answer }] } }],
      usageMetadata: { ...usage, totalTokenCount: 0 },
    },
  });
}

/** Submits `content` as one input and returns the world, job id and Vertex job name. */
async function submit(content: string, config: Record<string, string> = {}, model?: string) {
  // These tests are about one job's digest: no retry of its failed rows (test/handler/retry.test.ts).
  const w = createWorld({ RETRY_FAILED_ROWS: '0', ...config });
  const name = 'inputs/reviews.jsonl';
  w.reader.put(BUCKET, name, GEN, content);
  const out = await handleStorageEvent(
    finalizeEvent({ name, ...(model ? { metadata: { model } } : {}) }),
    w.submitDeps,
  );
  if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
  return { w, jobId: out.jobId, vertexJob: out.vertexJob };
}

/** Ends the job with these prediction files (name → lines) and polls; returns the events. */
async function finish(
  w: World,
  jobId: string,
  vertexJob: string,
  files: Record<string, string[]>,
  state = 'JOB_STATE_SUCCEEDED',
): Promise<{ dir: string; events: CompletionEvent[] }> {
  const dirName = `results/${jobId}/prediction-model-2026-11-26T10:00:00.000000Z`;
  let n = 0;
  for (const [file, lines] of Object.entries(files)) {
    w.reader.put(OUT, `${dirName}/${file}`, String(++n), lines.map((l) => `${l}\n`).join(''));
  }
  const dir = `gs://${OUT}/${dirName}`;
  w.vertex.setState(vertexJob, {
    state,
    outputInfo: { gcsOutputDirectory: dir },
    startTime: '2026-11-26T10:05:00.000Z',
    endTime: '2026-11-26T10:20:00.000Z',
  });
  await pollBatchJobs(w.pollDeps);
  return { dir, events: w.publisher.events };
}

/** A file the digest wrote under the job's prefix. */
function written(w: World, jobId: string, file: string): string | undefined {
  return w.reports.objects.get(`gs://${OUT}/results/${jobId}/${file}`);
}

function resultRows(w: World, jobId: string): Record<string, unknown>[] {
  return (written(w, jobId, 'results.jsonl') ?? '')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const answerOf = (row: Record<string, unknown>): unknown =>
  (row.response as { candidates: { content: { parts: { text: string }[] } }[] } | null)
    ?.candidates[0]?.content.parts[0]?.text;

describe('results digest', () => {
  it('matches out-of-order Gemini rows by their request: identical ones in order, key order and spelling aside', async () => {
    const a = geminiLine('Classify: it broke.');
    const b = geminiLine('Classify: works.');
    const c = geminiLine('Classify: meh.', {
      generation_config: { max_output_tokens: 5, temperature: 0 },
    });
    const input = [a, b, a, c].join('\n') + '\n';
    const { w, jobId, vertexJob } = await submit(input);
    const parse = (l: string) => (JSON.parse(l) as { request: unknown }).request;
    // Vertex echoes c's request in camelCase with its keys in another order.
    const cEcho = {
      generationConfig: { temperature: 0, maxOutputTokens: 5 },
      contents: [{ parts: [{ text: 'Classify: meh.' }], role: 'user' }],
    };
    const status =
      'Bad Request: {"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}';
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [
        geminiOut(cEcho, 'neutral'),
        geminiOut(parse(a), 'first'),
        geminiOut(parse(b), { status }),
        geminiOut(parse(a), 'second'),
      ],
    });

    expect(events).toHaveLength(1);
    const event = events[0]!;
    const prefix = `gs://${OUT}/results/${jobId}/`;
    expect(event.results).toEqual({
      rows: { succeeded: 3, failed: 1, missing: 0 },
      summaryUri: `${prefix}summary.json`,
      resultsUri: `${prefix}results.jsonl`,
      failedRowsUri: `${prefix}failed.jsonl`,
    });
    const rows = resultRows(w, jobId);
    expect(rows.map((r) => [r.line, r.status, answerOf(r) ?? r.error])).toEqual([
      [1, 'succeeded', 'first'],
      [2, 'failed', status],
      [3, 'succeeded', 'second'],
      [4, 'succeeded', 'neutral'],
    ]);
    expect(rows.every((r) => r.key === null)).toBe(true);
    // The failed input line, byte for byte.
    expect(written(w, jobId, 'failed.jsonl')).toBe(`${b}\n`);
    const summary = JSON.parse(written(w, jobId, 'summary.json')!) as Record<string, unknown>;
    expect(summary).toMatchObject({
      results: event.results,
      usage: event.usage,
      cost: event.cost,
      topErrors: [{ error: status, count: 1 }],
      unmatchedOutputLines: 0,
    });
    expect(summary.predictionFiles).toEqual([`${event.output!.directory}/predictions.jsonl`]);
  });

  it('matches Claude rows by custom_id; a row with no output line is missing, and listed as failed', async () => {
    const { w, jobId, vertexJob } = await submit(
      ANTHROPIC_LINES + ANTHROPIC_LINES.replaceAll('"r1"', '"r3"').replaceAll('"r2"', '"r4"'),
      {},
      'claude-3-5-haiku',
    );
    const claude = (id: string, text: string) =>
      JSON.stringify({
        custom_id: id,
        request: { messages: [] },
        response: {
          type: 'message',
          content: [{ type: 'text', text }],
          usage: { input_tokens: 20, output_tokens: 3, cache_read_input_tokens: 5 },
        },
        status: '',
      });
    const limited = JSON.stringify({
      custom_id: 'r2',
      request: {},
      status: '{"type":"error","error":{"type":"rate_limit_error","message":"quota"}}',
    });
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [claude('r4', 'four'), limited, claude('r1', 'one')],
    });
    const event = events[0]!;
    expect(event.results?.rows).toEqual({ succeeded: 2, failed: 1, missing: 1 });
    const rows = resultRows(w, jobId);
    expect(rows.map((r) => [r.line, r.key, r.status])).toEqual([
      [1, 'r1', 'succeeded'],
      [2, 'r2', 'failed'],
      [3, 'r3', 'failed'],
      [4, 'r4', 'succeeded'],
    ]);
    expect(rows[2]!.error).toBe(MISSING_ROW_ERROR);
    const lines = ANTHROPIC_LINES.split('\n');
    expect(written(w, jobId, 'failed.jsonl')).toBe(
      `${lines[1]}\n${lines[0]!.replaceAll('"r1"', '"r3"')}\n`,
    );
    // Cache reads are input tokens, and cached ones.
    expect(event.usage).toEqual({
      inputTokens: 50,
      outputTokens: 6,
      thinkingTokens: 0,
      cachedTokens: 10,
    });
  });

  it('reads every prediction file of the directory, and only those', async () => {
    const lines = ['one', 'two', 'three'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const req = (i: number) => (JSON.parse(lines[i]!) as { request: unknown }).request;
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions_00002-of-00002.jsonl': [geminiOut(req(0), 'a')],
      'predictions_00001-of-00002.jsonl': [geminiOut(req(2), 'c'), geminiOut(req(1), 'b')],
      'incremental_predictions/predictions.jsonl': [geminiOut(req(1), 'stale')],
      'errors.txt': ['not a prediction file'],
    });
    expect(events[0]!.results?.rows).toEqual({ succeeded: 3, failed: 0, missing: 0 });
    expect(resultRows(w, jobId).map(answerOf)).toEqual(['a', 'b', 'c']);
    expect(events[0]!.results?.failedRowsUri).toBeNull();
    expect(written(w, jobId, 'failed.jsonl')).toBeUndefined();
  });

  it('sums tokens (thinking and cached included) and prices them at batch prices', async () => {
    const lines = ['one', 'two'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const req = (i: number) => (JSON.parse(lines[i]!) as { request: unknown }).request;
    const usage = {
      promptTokenCount: 1_000_000,
      candidatesTokenCount: 100_000,
      thoughtsTokenCount: 200_000,
      cachedContentTokenCount: 400_000,
    };
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [geminiOut(req(0), 'a', usage), geminiOut(req(1), 'b', usage)],
    });
    const event = events[0]!;
    expect(event.usage).toEqual({
      inputTokens: 2_000_000,
      outputTokens: 200_000,
      thinkingTokens: 400_000,
      cachedTokens: 800_000,
    });
    // gemini-2.5-flash at batch prices (USD per million): input 0.15, output and thinking 1.25,
    // cached 0.0375: 1.2 × 0.15 + 0.8 × 0.0375 + 0.2 × 1.25 + 0.4 × 1.25 = 0.96.
    expect(event.cost).toMatchObject({ currency: 'USD', actualUsd: 0.96 });
    expect(event.cost?.pricing).toMatch(/^vertex-ai-batch-\d{4}-\d{2}-\d{2}$/);
    // The estimate is an upper bound: bytes / 4 of input, the model's maximum of output.
    expect(event.cost?.estimatedUsd).toBeGreaterThan(0);
  });

  it('a price override (PRICE_TABLE) changes the cost and names its own date', async () => {
    const { w, jobId, vertexJob } = await submit(`${geminiLine('x')}\n`, {
      PRICE_TABLE: JSON.stringify({
        date: '2026-11-01',
        models: { 'gemini-2.5-flash': { input: 1, output: 10 } },
      }),
    });
    const req = (JSON.parse(geminiLine('x')) as { request: unknown }).request;
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [
        geminiOut(req, 'a', { promptTokenCount: 1_000_000, candidatesTokenCount: 1_000_000 }),
      ],
    });
    expect(events[0]!.cost).toMatchObject({
      actualUsd: 11,
      pricing: 'vertex-ai-batch-2026-11-01',
    });
  });

  it('a model without a price: actualUsd and estimatedUsd are null, with a warning, never an error', async () => {
    const { w, jobId, vertexJob } = await submit(
      `${geminiLine('x')}\n`,
      { ALLOWED_MODELS: '*' },
      'gemini-7-experimental',
    );
    const req = (JSON.parse(geminiLine('x')) as { request: unknown }).request;
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [geminiOut(req, 'a')],
    });
    expect(events).toHaveLength(1);
    expect(events[0]!.cost).toMatchObject({ estimatedUsd: null, actualUsd: null });
    expect(events[0]!.usage?.inputTokens).toBe(10);
    expect(w.log.lines.filter((l) => l.event === 'cost.unpriced').length).toBeGreaterThan(0);
  });

  it('a job that wrote nothing: results and usage null, the event still goes out', async () => {
    const { w, jobId, vertexJob } = await submit(`${geminiLine('x')}\n`);
    const { events } = await finish(w, jobId, vertexJob, {}, 'JOB_STATE_FAILED');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ results: null, usage: null });
    expect(events[0]!.cost).toMatchObject({ actualUsd: null });
    expect(events[0]!.cost?.estimatedUsd).toBeGreaterThan(0);
    expect(written(w, jobId, 'results.jsonl')).toBeUndefined();
  });

  it('a FAILED job that wrote some output is digested too', async () => {
    const lines = ['one', 'two'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const req = (JSON.parse(lines[0]!) as { request: unknown }).request;
    const { events } = await finish(
      w,
      jobId,
      vertexJob,
      { 'predictions.jsonl': [geminiOut(req, 'a')] },
      'JOB_STATE_CANCELLED',
    );
    expect(events[0]!.results?.rows).toEqual({ succeeded: 1, failed: 0, missing: 1 });
    expect(written(w, jobId, 'failed.jsonl')).toBe(`${lines[1]}\n`);
  });

  it('spreads large outputs over temporary parts, with the same files as in memory, and removes the parts', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => geminiLine(`review ${i}`));
    const input = lines.join('\n') + '\n';
    const out = lines
      .map((l, i) => {
        const req = (JSON.parse(l) as { request: unknown }).request;
        return geminiOut(req, i % 7 === 0 ? { status: `Internal error ${i % 2}` } : `answer ${i}`);
      })
      .reverse();
    const digests: Record<string, string | undefined>[] = [];
    for (const partBytes of [undefined, 512]) {
      const { w, jobId, vertexJob } = await submit(input);
      if (partBytes) w.pollDeps.digest = { partBytes };
      const { events } = await finish(w, jobId, vertexJob, { 'predictions.jsonl': out });
      expect(events[0]!.results?.rows).toEqual({ succeeded: 51, failed: 9, missing: 0 });
      digests.push({
        results: written(w, jobId, 'results.jsonl'),
        failed: written(w, jobId, 'failed.jsonl'),
      });
      const left = [...w.reports.objects.keys()].filter((k) => k.includes('/.digest/'));
      expect(left).toEqual([]);
      if (partBytes) {
        expect(w.log.lines.filter((l) => l.event === 'job.digested')).toHaveLength(1);
      }
    }
    expect(digests[1]).toEqual(digests[0]);
    expect(resultRowsFrom(digests[0]!.results!).map((r) => r.line)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
  });

  it('a crash between the digest and the publish: one event later, with the same files', async () => {
    const lines = ['one', 'two'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const req = (i: number) => (JSON.parse(lines[i]!) as { request: unknown }).request;
    w.publisher.fail(new TransientError('EVENTS.UNAVAILABLE', 'Pub/Sub is down'));
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [geminiOut(req(1), 'b'), geminiOut(req(0), { status: 'Internal' })],
    });
    expect(events).toHaveLength(0);
    const files = new Map([...w.reports.objects].filter(([k]) => k.includes(jobId)));
    const record = await w.jobs.get(jobId);
    expect(record?.digest?.results?.rows).toEqual({ succeeded: 1, failed: 1, missing: 0 });
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.results?.rows).toEqual({ succeeded: 1, failed: 1, missing: 0 });
    expect(new Map([...w.reports.objects].filter(([k]) => k.includes(jobId)))).toEqual(files);
    expect(w.log.lines.filter((l) => l.event === 'job.digested')).toHaveLength(1);
  });

  it('a crash in the middle of the digest: digested again by a later run, one event, the same files', async () => {
    const lines = ['one', 'two'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const req = (i: number) => (JSON.parse(lines[i]!) as { request: unknown }).request;
    // results.jsonl is written; then writing failed.jsonl fails (the instance "dies" there).
    w.reports.fail(new TransientError('STORAGE.UNAVAILABLE', 'down'));
    const { events } = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [geminiOut(req(1), 'b'), geminiOut(req(0), { status: 'Internal' })],
    });
    expect(events).toHaveLength(0);
    expect((await w.jobs.get(jobId))?.digest).toBeNull();
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.results?.rows).toEqual({ succeeded: 1, failed: 1, missing: 0 });
    expect(written(w, jobId, 'failed.jsonl')).toBe(`${lines[0]}\n`);
    expect(resultRows(w, jobId).map((r) => r.status)).toEqual(['failed', 'succeeded']);
  });

  it('a digest that keeps failing does not hold the event back: after 3 attempts it goes out without', async () => {
    const { w, jobId, vertexJob } = await submit(`${geminiLine('x')}\n`);
    const down = () => new TransientError('STORAGE.UNAVAILABLE', 'storage is down');
    const list = w.reader.list.bind(w.reader);
    let failing = true;
    w.reader.list = (bucket, prefix) =>
      failing && bucket === OUT ? Promise.reject(down()) : list(bucket, prefix);
    const { events } = await finish(w, jobId, vertexJob, { 'predictions.jsonl': [] });
    expect(events).toHaveLength(0);
    await pollBatchJobs(w.pollDeps);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]).toMatchObject({ results: null, usage: null });
    const errors = w.log.lines.filter((l) => l.event === 'digest.failed' && l.severity === 'ERROR');
    expect(errors).toHaveLength(1);
    failing = false;
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
  });
});

describe('budget', () => {
  it('an input estimated above MAX_ESTIMATED_COST_USD is rejected before any spend, with the estimate and the limit', async () => {
    const w = createWorld({ MAX_ESTIMATED_COST_USD: '0.01' });
    const name = 'inputs/big.jsonl';
    // 3 requests at gemini-2.5-flash's 65,536 output tokens each: ~$0.25, above $0.01.
    w.reader.put(BUCKET, name, GEN, [1, 2, 3].map((i) => geminiLine(`r${i}`)).join('\n') + '\n');
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.OVER_BUDGET' });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.reports.copies.size).toBe(0);
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      error: { code: 'INPUT.OVER_BUDGET' },
      results: null,
      usage: null,
    });
    expect(event.error?.message).toMatch(
      /estimated cost is \$0\.2\d.*MAX_ESTIMATED_COST_USD \$0\.01/,
    );
    expect(event.error?.message).toContain('rejection.json');
    expect(event.cost?.estimatedUsd).toBeCloseTo(0.245763, 4);
    expect(event.cost?.actualUsd).toBeNull();
  });

  it('requests that set their maximum are estimated at it, and pass a budget they fit', async () => {
    const w = createWorld({ MAX_ESTIMATED_COST_USD: '0.01' });
    const name = 'inputs/small.jsonl';
    const line = geminiLine('r', { generationConfig: { maxOutputTokens: 100 } });
    w.reader.put(BUCKET, name, GEN, `${line}\n${line}\n`);
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
    const record = await w.jobs.get(out.jobId);
    expect(record?.estimate).toMatchObject({
      inputTokens: Math.ceil((line.length * 2) / 4),
      outputTokens: 200,
    });
  });

  it('no limit by default', async () => {
    const w = createWorld();
    const name = 'inputs/big.jsonl';
    w.reader.put(BUCKET, name, GEN, `${geminiLine('r')}\n`);
    expect((await handleStorageEvent(finalizeEvent({ name }), w.submitDeps)).outcome).toBe(
      'submitted',
    );
  });
});

function resultRowsFrom(text: string): { line: number }[] {
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { line: number });
}
