/**
 * What the Vertex emulator's jobs write, made realistic enough for the results digest and the
 * retry of failed rows: rows out of order, several prediction files for a large input, usage
 * numbers, a share of failed rows with the service's status texts, transient failures only the
 * first time a request is seen, and the job state that follows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  claudeStatus,
  FAILURE_KINDS,
  geminiStatus,
  isTransient,
  RowFailures,
} from '../../local/vertex/failures.js';
import { OptionsError, outputOptions } from '../../local/vertex/options.js';
import { shuffledOrder } from '../../local/vertex/seeded.js';
import type { VertexEmulator, VertexJobJson } from '../../local/vertex/server.js';
import {
  answerOf,
  call,
  CLAUDE,
  claudeLine,
  closeEmulators,
  create,
  FAST,
  finished,
  geminiLine,
  get,
  MANUAL,
  MemoryBlobs,
  start,
  type Json,
} from './vertex-harness.js';

afterEach(closeEmulators);

const INPUT = 'gs://acme-in/reviews.jsonl';
const WORDS = ['great', 'awful', 'fine', 'broken', 'lovely', 'slow', 'perfect', 'noisy'];

/** `n` distinct Gemini lines (`tag` is added to every review). */
function reviews(n: number, tag = ''): string[] {
  return Array.from({ length: n }, (_, i) =>
    geminiLine(`Review ${i}${tag}: it was ${WORDS[i % WORDS.length]} and arrived on day ${i}.`),
  );
}

/** `n` distinct Claude lines. */
function claudeReviews(n: number, tag = ''): string[] {
  return Array.from({ length: n }, (_, i) =>
    claudeLine(`r-${i}`, `Review ${i}${tag}: it was ${WORDS[i % WORDS.length]}.`),
  );
}

/** The input line a Gemini output row answers (the request is echoed as sent). */
const inputOf = (row: Json): string => JSON.stringify({ request: row.request });

const sequence = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const idOf = (job: VertexJobJson): string => job.name.slice(job.name.lastIndexOf('/') + 1);
const directoryOf = (job: VertexJobJson): string => job.outputInfo?.gcsOutputDirectory ?? '';

/** Creates a job over `lines` (written to its own input object) and waits for its end. */
async function run(
  emu: VertexEmulator,
  blobs: MemoryBlobs,
  lines: string[],
  state: VertexJobJson['state'],
  overrides: Json = {},
): Promise<{ job: VertexJobJson; rows: Json[] }> {
  const uri = `gs://acme-in/run-${blobs.objects.size}.jsonl`;
  blobs.put(uri, lines);
  const created = await create(
    emu,
    { inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: [uri] } }, ...overrides },
    overrides.model === CLAUDE ? 'us-east5' : undefined,
  );
  const job = await finished(emu, created.name, state);
  return { job, rows: blobs.outputLines(directoryOf(job)) };
}

const failedRows = (rows: Json[]): Json[] => rows.filter((r) => r.status !== '');

/** The kind of a failed Gemini row, from its status text. */
function geminiKind(status: unknown): string {
  const m = /^([A-Za-z ]+): (\{.*\})$/.exec(String(status));
  if (!m?.[2]) throw new Error(`not a Gemini row status: ${String(status)}`);
  const { error } = JSON.parse(m[2]) as { error: { code: number; status: string } };
  return `${error.code} ${error.status}`;
}

describe('row order and prediction files', () => {
  it('writes one output row per input line, in an order seeded by the job id', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const input = reviews(50);
    blobs.put(INPUT, input);
    const a = await create(emu, { displayName: 'a' });
    const b = await create(emu, { displayName: 'b' });
    await emu.whenIdle();
    const orders = [a, b].map((job) => {
      const rows = blobs.outputLines(
        `gs://acme-out/results/${job.displayName}/prediction-model-${job.createTime}`,
      );
      return rows.map((row) => input.indexOf(inputOf(row)));
    });
    for (const [i, order] of orders.entries()) {
      expect([...order].sort((x, y) => x - y)).toEqual(sequence(50));
      expect(order).not.toEqual(sequence(50));
      expect(order).toEqual(shuffledOrder(50, idOf([a, b][i]!)));
    }
    expect(orders[0]).not.toEqual(orders[1]);
  });

  it('shuffles deterministically: a permutation that depends only on the seed', () => {
    const order = shuffledOrder(1000, '1234567890123456789');
    expect([...order].sort((x, y) => x - y)).toEqual(sequence(1000));
    expect(shuffledOrder(1000, '1234567890123456789')).toEqual(order);
    expect(shuffledOrder(1000, '1234567890123456780')).not.toEqual(order);
    // Not a rotation or a reversal: few elements keep their place.
    expect(order.filter((v, i) => v === i).length).toBeLessThan(10);
    expect(shuffledOrder(0, 'x')).toEqual([]);
    expect(shuffledOrder(1, 'x')).toEqual([0]);
  });

  it('splits the rows over predictions_0000N-of-0000M.jsonl files above rowsPerFile', async () => {
    const { emu, blobs } = await start({ timing: FAST, rowsPerFile: 7 });
    const input = reviews(20);
    const { job, rows } = await run(emu, blobs, input, 'JOB_STATE_SUCCEEDED');
    const directory = directoryOf(job);
    expect(directory).toBe(`gs://acme-out/results/reviews-1/prediction-model-${job.createTime}`);
    const files = blobs.files(directory);
    expect(files).toEqual([
      'predictions_00001-of-00003.jsonl',
      'predictions_00002-of-00003.jsonl',
      'predictions_00003-of-00003.jsonl',
    ]);
    expect(files.map((f) => blobs.lines(`${directory}/${f}`).length)).toEqual([7, 7, 6]);
    const order = rows.map((row) => input.indexOf(inputOf(row)));
    expect([...order].sort((x, y) => x - y)).toEqual(sequence(20));
    // The shuffle runs across files: the first file is not the first seven lines.
    expect(order.slice(0, 7).sort((x, y) => x - y)).not.toEqual(sequence(7));
    expect(job.completionStats).toEqual({ successfulCount: '20' });
    // One write per file, none larger than a file.
    expect(blobs.writes.map((w) => w.lines)).toEqual([7, 7, 6]);
  });

  it.each([
    [7, ['predictions.jsonl']],
    [8, ['predictions_00001-of-00002.jsonl', 'predictions_00002-of-00002.jsonl']],
  ])('writes %i rows with 7 per file as %j', async (count, expected) => {
    const { emu, blobs } = await start({ timing: FAST, rowsPerFile: 7 });
    const { job, rows } = await run(emu, blobs, reviews(count), 'JOB_STATE_SUCCEEDED');
    expect(blobs.files(directoryOf(job))).toEqual(expected);
    expect(rows).toHaveLength(count);
  });

  it('writes 1,000 rows per file by default, one file at a time', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const { job, rows } = await run(emu, blobs, reviews(2500), 'JOB_STATE_SUCCEEDED');
    expect(blobs.files(directoryOf(job))).toEqual([
      'predictions_00001-of-00003.jsonl',
      'predictions_00002-of-00003.jsonl',
      'predictions_00003-of-00003.jsonl',
    ]);
    expect(blobs.writes.map((w) => w.lines)).toEqual([1000, 1000, 500]);
    expect(new Set(rows.map(inputOf)).size).toBe(2500);
    expect(job.completionStats).toEqual({ successfulCount: '2500' });
  });

  it('stops writing files when the job is cancelled, and counts the rows written', async () => {
    // The first write waits until the test lets it finish, so the cancel lands mid-output.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    class GatedBlobs extends MemoryBlobs {
      override async write(uri: string, data: Buffer | string): Promise<void> {
        await gate;
        return super.write(uri, data);
      }
    }
    const { emu, blobs } = await start({ timing: MANUAL, rowsPerFile: 2 }, new GatedBlobs());
    blobs.put(INPUT, reviews(6));
    const job = await create(emu);
    await emu.advance(job.name);
    expect((await call(emu, 'POST', `/v1/${job.name}:cancel`, {})).status).toBe(200);
    release();
    await emu.advance(job.name);
    const cancelled = await get(emu, job.name);
    expect(cancelled.state).toBe('JOB_STATE_CANCELLED');
    expect(blobs.files(directoryOf(cancelled))).toEqual(['predictions_00001-of-00003.jsonl']);
    expect(cancelled.completionStats).toEqual({ successfulCount: '2' });
  });
});

describe('usage numbers', () => {
  type GeminiUsage = Record<string, number | undefined>;
  const usageOf = (row: Json): GeminiUsage =>
    (row.response as { usageMetadata: GeminiUsage }).usageMetadata;

  it('Gemini 2.5: prompt, candidates, thoughts and total tokens; cached tokens on some rows', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const input = reviews(40);
    const { rows } = await run(emu, blobs, input, 'JOB_STATE_SUCCEEDED');
    let cachedRows = 0;
    for (const row of rows) {
      const u = usageOf(row);
      const text = (JSON.parse(inputOf(row)) as { request: { contents: Json[] } }).request
        .contents[0] as { parts: { text: string }[] };
      const chars = text.parts[0]!.text.length;
      expect(u.promptTokenCount).toBe(Math.ceil(chars / 4));
      expect(u.candidatesTokenCount).toBe(1);
      expect(u.thoughtsTokenCount).toBeGreaterThanOrEqual(96);
      expect(u.thoughtsTokenCount).toBeLessThan(96 + 640);
      expect(u.totalTokenCount).toBe(u.promptTokenCount! + 1 + u.thoughtsTokenCount!);
      if (u.cachedContentTokenCount !== undefined) {
        cachedRows += 1;
        expect(u.cachedContentTokenCount).toBeGreaterThan(0);
        expect(u.cachedContentTokenCount).toBeLessThanOrEqual(u.promptTokenCount!);
      }
    }
    expect(cachedRows).toBeGreaterThan(0);
    expect(cachedRows).toBeLessThan(rows.length);

    // Derived from the request: the same lines give the same numbers in another job.
    const again = await run(emu, blobs, input, 'JOB_STATE_SUCCEEDED');
    const byInput = new Map(rows.map((r) => [inputOf(r), usageOf(r)]));
    for (const row of again.rows) expect(usageOf(row)).toEqual(byInput.get(inputOf(row)));
  });

  it('Gemini: no thoughts before 2.5 or with a thinking budget of 0; a budget caps them', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const line = (config: Json): string =>
      JSON.stringify({
        request: {
          contents: [{ role: 'user', parts: [{ text: 'Rate it: a long and thoughtful review' }] }],
          generationConfig: config,
        },
      });
    const older = await run(emu, blobs, [line({})], 'JOB_STATE_SUCCEEDED', {
      model: 'publishers/google/models/gemini-2.0-flash-001',
    });
    const u = usageOf(older.rows[0]!);
    expect(u).not.toHaveProperty('thoughtsTokenCount');
    expect(u.totalTokenCount).toBe(u.promptTokenCount! + u.candidatesTokenCount!);

    const off = await run(
      emu,
      blobs,
      [line({ thinkingConfig: { thinkingBudget: 0 } })],
      'JOB_STATE_SUCCEEDED',
    );
    expect(usageOf(off.rows[0]!)).not.toHaveProperty('thoughtsTokenCount');
    const capped = await run(
      emu,
      blobs,
      [line({ thinking_config: { thinking_budget: 24 } })],
      'JOB_STATE_SUCCEEDED',
    );
    expect(usageOf(capped.rows[0]!).thoughtsTokenCount).toBe(24);
  });

  it('Claude: input and output tokens; a cache read on some rows, not counted in input_tokens', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const input = claudeReviews(40);
    const { rows } = await run(emu, blobs, input, 'JOB_STATE_SUCCEEDED', { model: CLAUDE });
    let cachedRows = 0;
    for (const row of rows) {
      const usage = (row.response as { usage: Record<string, number> }).usage;
      const request = row.request as { messages: { content: string }[] };
      const prompt = Math.ceil(request.messages[0]!.content.length / 4);
      expect(Object.keys(usage)).toEqual(
        usage.cache_read_input_tokens === undefined
          ? ['input_tokens', 'output_tokens']
          : ['input_tokens', 'cache_read_input_tokens', 'output_tokens'],
      );
      expect(usage.output_tokens).toBe(1);
      expect(usage.input_tokens! + (usage.cache_read_input_tokens ?? 0)).toBe(prompt);
      if (usage.cache_read_input_tokens !== undefined) {
        cachedRows += 1;
        expect(usage.cache_read_input_tokens).toBeGreaterThan(0);
      }
    }
    expect(cachedRows).toBeGreaterThan(0);
    expect(cachedRows).toBeLessThan(rows.length);
  });
});

describe('failed rows', () => {
  it('fails about failedRowShare of the rows, with the service status texts and no usage', async () => {
    const { emu, blobs } = await start({ timing: FAST, failedRowShare: 0.3 });
    const input = reviews(400);
    const { job, rows } = await run(emu, blobs, input, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    const failed = failedRows(rows);
    expect(failed.length).toBeGreaterThan(400 * 0.23);
    expect(failed.length).toBeLessThan(400 * 0.37);
    expect(job.completionStats).toEqual({
      successfulCount: String(400 - failed.length),
      failedCount: String(failed.length),
    });
    expect(job).not.toHaveProperty('error');
    const kinds = new Map<string, number>();
    for (const row of failed) {
      expect(Object.keys(row)).toEqual(['status', 'processed_time', 'request']);
      expect(input).toContain(inputOf(row));
      const kind = geminiKind(row.status);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    for (const row of rows.filter((r) => r.status === '')) {
      expect(row.response).toHaveProperty('usageMetadata');
    }
    // A realistic mix: mostly quota, and every other kind present.
    expect([...kinds.keys()].sort()).toEqual([
      '400 INVALID_ARGUMENT',
      '429 RESOURCE_EXHAUSTED',
      '500 INTERNAL',
      '503 UNAVAILABLE',
      '504 DEADLINE_EXCEEDED',
    ]);
    const most = [...kinds.entries()].sort((x, y) => y[1] - x[1])[0];
    expect(most?.[0]).toBe('429 RESOURCE_EXHAUSTED');

    // Picked by a hash of the request: another emulator fails the same rows the same way.
    const other = await start({ timing: FAST, failedRowShare: 0.3 });
    const second = await run(
      other.emu,
      other.blobs,
      [...input].reverse(),
      'JOB_STATE_PARTIALLY_SUCCEEDED',
    );
    const statusByInput = (list: Json[]) =>
      Object.fromEntries(failedRows(list).map((r) => [inputOf(r), geminiKind(r.status)]));
    expect(statusByInput(second.rows)).toEqual(statusByInput(rows));
  });

  it('fails transient rows only the first time: a retry of the same lines succeeds', async () => {
    const { emu, blobs } = await start({ timing: FAST, failedRowShare: 0.3 });
    const input = reviews(200);
    const first = await run(emu, blobs, input, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    const failed = failedRows(first.rows);
    const permanent = failed.filter((r) => geminiKind(r.status) === '400 INVALID_ARGUMENT');
    const transient = failed.filter((r) => !permanent.includes(r));
    expect(permanent.length).toBeGreaterThan(0);
    expect(transient.length).toBeGreaterThan(permanent.length);

    // The failed lines again, as the retry sends them: only the permanent ones fail.
    const retry = await run(emu, blobs, failed.map(inputOf), 'JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(failedRows(retry.rows).map(inputOf).sort()).toEqual(permanent.map(inputOf).sort());
    expect(retry.job.completionStats).toEqual({
      successfulCount: String(transient.length),
      failedCount: String(permanent.length),
    });
    // Permanent failures fail every time; transient ones are now seen and succeed.
    const permanentAgain = await run(emu, blobs, permanent.map(inputOf), 'JOB_STATE_FAILED');
    expect(permanentAgain.job.error?.code).toBe(3);
    expect(permanentAgain.job.completionStats).toEqual({ failedCount: String(permanent.length) });
    await run(emu, blobs, transient.map(inputOf), 'JOB_STATE_SUCCEEDED');
  });

  it('fails every row with failedRowShare 1 (FAILED) and none with 0 (SUCCEEDED)', async () => {
    const all = await start({ timing: FAST, failedRowShare: 1 });
    const { job, rows } = await run(all.emu, all.blobs, reviews(30), 'JOB_STATE_FAILED');
    expect(job.completionStats).toEqual({ failedCount: '30' });
    expect(job.error).toEqual({
      code: 3,
      message: expect.stringContaining('All 30 requests failed') as unknown,
    });
    expect(failedRows(rows)).toHaveLength(30);
    const none = await start({ timing: FAST, failedRowShare: 0 });
    const ok = await run(none.emu, none.blobs, reviews(30), 'JOB_STATE_SUCCEEDED');
    expect(ok.job.completionStats).toEqual({ successfulCount: '30' });
  });

  it('[transient] fails with the 429 quota error once; [invalid] fails with 400 every time', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const transient = geminiLine('Fine, I guess [transient]');
    const invalid = geminiLine('Whatever [invalid]');
    const plain = geminiLine('Good.');
    const first = await run(
      emu,
      blobs,
      [transient, invalid, plain],
      'JOB_STATE_PARTIALLY_SUCCEEDED',
    );
    expect(first.job.completionStats).toEqual({ successfulCount: '1', failedCount: '2' });
    const statusOf = (rows: Json[], line: string) => rows.find((r) => inputOf(r) === line)?.status;
    expect(statusOf(first.rows, transient)).toBe(
      'Too Many Requests: {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model with base model: gemini-2.5-flash. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.", "status": "RESOURCE_EXHAUSTED"}}',
    );
    expect(statusOf(first.rows, invalid)).toBe(
      'Bad Request: {"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}',
    );
    expect(statusOf(first.rows, plain)).toBe('');

    const second = await run(
      emu,
      blobs,
      [transient, invalid, plain],
      'JOB_STATE_PARTIALLY_SUCCEEDED',
    );
    expect(second.job.completionStats).toEqual({ successfulCount: '2', failedCount: '1' });
    expect(statusOf(second.rows, transient)).toBe('');
    expect(answerOf(second.rows.find((r) => inputOf(r) === transient)!)).toBe('positive');
    await run(emu, blobs, [invalid], 'JOB_STATE_FAILED');

    // A line seen for the first time fails, also when it is the only one; then it succeeds.
    const fresh = geminiLine('Another one [transient]');
    const alone = await run(emu, blobs, [fresh], 'JOB_STATE_FAILED');
    expect(alone.job.completionStats).toEqual({ failedCount: '1' });
    await run(emu, blobs, [fresh], 'JOB_STATE_SUCCEEDED');

    // reset() forgets the requests seen.
    emu.reset();
    await run(emu, blobs, [fresh], 'JOB_STATE_FAILED');
  });

  it('Claude: failed lines keep custom_id and request, with an Anthropic error in status', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const input = [
      claudeLine('t-1', 'So so [transient]'),
      claudeLine('i-1', 'Meh [invalid]'),
      claudeLine('ok-1', 'Lovely.'),
    ];
    const first = await run(emu, blobs, input, 'JOB_STATE_PARTIALLY_SUCCEEDED', { model: CLAUDE });
    const byId = new Map(first.rows.map((r) => [r.custom_id, r]));
    expect([...byId.keys()].sort()).toEqual(['i-1', 'ok-1', 't-1']);
    for (const [id, type] of [
      ['t-1', 'rate_limit_error'],
      ['i-1', 'invalid_request_error'],
    ] as const) {
      const row = byId.get(id)!;
      expect(Object.keys(row)).toEqual(['custom_id', 'request', 'status']);
      expect(row.request).toEqual(
        (JSON.parse(input.find((l) => l.includes(`"${id}"`))!) as Json).request,
      );
      const status = JSON.parse(String(row.status)) as { type: string; error: Json };
      expect(status).toEqual({
        type: 'error',
        error: { type, message: expect.any(String) as unknown },
      });
    }
    expect(String(byId.get('t-1')?.status)).toContain(
      'Quota exceeded for aiplatform.googleapis.com/',
    );
    expect(byId.get('ok-1')).toMatchObject({ status: '', response: { type: 'message' } });

    const second = await run(emu, blobs, input, 'JOB_STATE_PARTIALLY_SUCCEEDED', { model: CLAUDE });
    expect(failedRows(second.rows).map((r) => r.custom_id)).toEqual(['i-1']);
  });

  it('Claude: the share fails rows with each Anthropic error type, transient ones once', async () => {
    const { emu, blobs } = await start({ timing: FAST, failedRowShare: 1 });
    const input = claudeReviews(80);
    const first = await run(emu, blobs, input, 'JOB_STATE_FAILED', { model: CLAUDE });
    const typeOf = (row: Json) =>
      (JSON.parse(String(row.status)) as { error: { type: string } }).error.type;
    expect([...new Set(first.rows.map(typeOf))].sort()).toEqual([
      'api_error',
      'invalid_request_error',
      'overloaded_error',
      'rate_limit_error',
    ]);
    const invalid = first.rows.filter((r) => typeOf(r) === 'invalid_request_error');
    const second = await run(emu, blobs, input, 'JOB_STATE_PARTIALLY_SUCCEEDED', { model: CLAUDE });
    expect(
      failedRows(second.rows)
        .map((r) => r.custom_id)
        .sort(),
    ).toEqual(invalid.map((r) => r.custom_id).sort());
  });
});

describe('failure texts and decisions', () => {
  it.each([
    ['quota', 'Too Many Requests', 429, 'RESOURCE_EXHAUSTED', 'rate_limit_error'],
    ['internal', 'Internal Server Error', 500, 'INTERNAL', 'api_error'],
    ['unavailable', 'Service Unavailable', 503, 'UNAVAILABLE', 'overloaded_error'],
    ['deadline', 'Gateway Timeout', 504, 'DEADLINE_EXCEEDED', 'api_error'],
    ['invalid', 'Bad Request', 400, 'INVALID_ARGUMENT', 'invalid_request_error'],
  ] as const)('%s: "%s: {...}" with %i %s; Claude %s', (kind, phrase, code, status, type) => {
    const text = geminiStatus(kind, 'gemini-2.5-flash');
    expect(text.startsWith(`${phrase}: {"error": {"code": ${code}, "message": "`)).toBe(true);
    const body = JSON.parse(text.slice(phrase.length + 2)) as { error: Json };
    expect(body.error).toEqual({ code, message: expect.stringMatching(/\S/) as unknown, status });
    expect(JSON.parse(claudeStatus(kind, 'claude-3-5-haiku'))).toEqual({
      type: 'error',
      error: { type, message: expect.stringMatching(/\S/) as unknown },
    });
    expect(isTransient(kind)).toBe(kind !== 'invalid');
  });

  it('writes Gemini status bodies as Python prints JSON: spaced separators, non-ASCII escaped', () => {
    expect(geminiStatus('invalid', 'm', 'café "x"')).toBe(
      'Bad Request: {"error": {"code": 400, "message": "caf\\u00e9 \\"x\\"", "status": "INVALID_ARGUMENT"}}',
    );
    expect(FAILURE_KINDS).toHaveLength(5);
  });

  it('decides per request: the same request fails alike within a job, transiently once overall', () => {
    const failures = new RowFailures(0);
    const job1 = failures.forJob();
    expect(job1('k1', 'hello [transient]')).toBe('quota');
    expect(job1('k1', 'hello [transient]')).toBe('quota');
    expect(job1('k2', 'plain')).toBeUndefined();
    expect(job1('k3', '[invalid]')).toBe('invalid');
    const job2 = failures.forJob();
    expect(job2('k1', 'hello [transient]')).toBeUndefined();
    expect(job2('k3', '[invalid]')).toBe('invalid');
    failures.clear();
    expect(failures.forJob()('k1', 'hello [transient]')).toBe('quota');
  });
});

describe('options', () => {
  it.each<[string, Parameters<typeof outputOptions>[0], NodeJS.ProcessEnv, object]>([
    ['defaults', {}, {}, { failedRowShare: 0, rowsPerFile: 1000 }],
    [
      'the environment',
      {},
      { VERTEX_EMULATOR_FAILED_ROW_SHARE: '0.25', VERTEX_EMULATOR_ROWS_PER_FILE: ' 10 ' },
      { failedRowShare: 0.25, rowsPerFile: 10 },
    ],
    [
      'options over the environment',
      { failedRowShare: 1, rowsPerFile: 3 },
      { VERTEX_EMULATOR_FAILED_ROW_SHARE: '0.5', VERTEX_EMULATOR_ROWS_PER_FILE: '10' },
      { failedRowShare: 1, rowsPerFile: 3 },
    ],
    [
      'empty variables as unset',
      {},
      { VERTEX_EMULATOR_FAILED_ROW_SHARE: '', VERTEX_EMULATOR_ROWS_PER_FILE: ' ' },
      { failedRowShare: 0, rowsPerFile: 1000 },
    ],
  ])('takes %s', (_what, given, env, expected) => {
    expect(outputOptions(given, env)).toEqual(expected);
  });

  it.each<[Parameters<typeof outputOptions>[0], NodeJS.ProcessEnv, RegExp]>([
    [
      { failedRowShare: 1.5 },
      {},
      /^Vertex emulator option failedRowShare must be a number from 0 to 1, got 1\.5\.$/,
    ],
    [{ failedRowShare: -0.1 }, {}, /failedRowShare .* got -0\.1/],
    [{ failedRowShare: Number.NaN }, {}, /failedRowShare .* got NaN/],
    [
      { rowsPerFile: 0 },
      {},
      /^Vertex emulator option rowsPerFile must be a positive integer, got 0\.$/,
    ],
    [{ rowsPerFile: 2.5 }, {}, /rowsPerFile .* got 2\.5/],
    [
      {},
      { VERTEX_EMULATOR_FAILED_ROW_SHARE: 'abc' },
      /^VERTEX_EMULATOR_FAILED_ROW_SHARE must be a number from 0 to 1, got "abc"\.$/,
    ],
    [{}, { VERTEX_EMULATOR_FAILED_ROW_SHARE: '2' }, /VERTEX_EMULATOR_FAILED_ROW_SHARE .* got "2"/],
    [
      {},
      { VERTEX_EMULATOR_ROWS_PER_FILE: '-5' },
      /^VERTEX_EMULATOR_ROWS_PER_FILE must be a positive integer, got "-5"\.$/,
    ],
  ])('refuses %j with env %j', (given, env, message) => {
    expect(() => outputOptions(given, env)).toThrow(OptionsError);
    expect(() => outputOptions(given, env)).toThrow(message);
  });

  it('startVertexEmulator refuses a bad option and reads its defaults from the environment', async () => {
    await expect(start({ rowsPerFile: 0 })).rejects.toThrow(OptionsError);
    const saved = {
      share: process.env.VERTEX_EMULATOR_FAILED_ROW_SHARE,
      rows: process.env.VERTEX_EMULATOR_ROWS_PER_FILE,
    };
    process.env.VERTEX_EMULATOR_FAILED_ROW_SHARE = '1';
    process.env.VERTEX_EMULATOR_ROWS_PER_FILE = '2';
    let started: Awaited<ReturnType<typeof start>>;
    try {
      started = await start({ timing: FAST });
    } finally {
      for (const [key, value] of [
        ['VERTEX_EMULATOR_FAILED_ROW_SHARE', saved.share],
        ['VERTEX_EMULATOR_ROWS_PER_FILE', saved.rows],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
    const { job } = await run(started.emu, started.blobs, reviews(5), 'JOB_STATE_FAILED');
    expect(started.blobs.files(directoryOf(job))).toHaveLength(3);
  });
});
