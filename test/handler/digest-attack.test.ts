/**
 * Attacks on the results digest (README "Results and cost"): each test names the bug it found (all
 * fixed since) or the promise that was attacked and held.
 */
import { Writable } from 'node:stream';
import type { Storage } from '@google-cloud/storage';
import { describe, expect, it } from 'vitest';
import { createGcsObjectWriter } from '../../shared/adapters/gcs-objects.js';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import type { CompletionEvent } from '../../shared/core/events.js';
import { TransientError } from '../../shared/core/errors.js';
import { createWorld, finalizeEvent, nextGeneration } from '../fakes.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';
const OUT = 'acme-batch-output';

type World = ReturnType<typeof createWorld>;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function geminiLine(text: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    request: { contents: [{ role: 'user', parts: [{ text }] }], ...extra },
  });
}

const requestOf = (line: string): unknown => (JSON.parse(line) as { request: unknown }).request;

function geminiOut(
  request: unknown,
  answer: string | { status: string },
  usage: Record<string, number> = { promptTokenCount: 10, candidatesTokenCount: 2 },
): string {
  if (typeof answer !== 'string') return JSON.stringify({ status: answer.status, request });
  return JSON.stringify({
    status: '',
    request,
    response: {
      candidates: [{ content: { role: 'model', parts: [{ text: answer }] } }],
      usageMetadata: usage,
    },
  });
}

async function submit(content: string, config: Record<string, string> = {}) {
  // These tests are about one job's digest: no retry of its failed rows (test/handler/retry.test.ts).
  const w = createWorld({ RETRY_FAILED_ROWS: '0', ...config });
  const name = 'inputs/reviews.jsonl';
  w.reader.put(BUCKET, name, GEN, content);
  const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
  if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
  return { w, jobId: out.jobId, vertexJob: out.vertexJob };
}

async function finish(
  w: World,
  jobId: string,
  vertexJob: string,
  files: Record<string, string[]>,
): Promise<CompletionEvent[]> {
  const dirName = `results/${jobId}/prediction-model-2026-11-26T10:00:00.000000Z`;
  let n = 0;
  for (const [file, lines] of Object.entries(files)) {
    w.reader.put(OUT, `${dirName}/${file}`, String(++n), lines.map((l) => `${l}\n`).join(''));
  }
  w.vertex.setState(vertexJob, {
    state: 'JOB_STATE_SUCCEEDED',
    outputInfo: { gcsOutputDirectory: `gs://${OUT}/${dirName}` },
    endTime: '2026-11-26T10:20:00.000Z',
  });
  await pollBatchJobs(w.pollDeps);
  return w.publisher.events;
}

/**
 * A `Storage` stand-in under the real Cloud Storage writer (createGcsObjectWriter): what it
 * creates goes to the fake reader (so parts can be read back), create-only (412 on an existing
 * name). The writer's own stall watchdog is what these tests exercise.
 */
function stubStorage(w: World, objects: Map<string, string>): Storage {
  const file = (bucket: string, name: string) => {
    const uri = `gs://${bucket}/${name}`;
    const store = (bytes: Buffer): void => {
      if (objects.has(uri)) throw Object.assign(new Error('precondition failed'), { code: 412 });
      objects.set(uri, bytes.toString('utf8'));
      w.reader.put(bucket, name, nextGeneration(), bytes);
    };
    return {
      createWriteStream: () => {
        const parts: Buffer[] = [];
        return new Writable({
          write(chunk: Buffer, _enc, cb) {
            parts.push(Buffer.from(chunk));
            cb();
          },
          final(cb) {
            try {
              store(Buffer.concat(parts));
              cb();
            } catch (err) {
              cb(err as Error);
            }
          },
        });
      },
      save: (content: string) => Promise.resolve(store(Buffer.from(content))),
      delete: async () => {
        objects.delete(uri);
        for (const o of await w.reader.list(bucket, name))
          if (o.name === name) w.reader.remove(bucket, name, o.generation);
      },
    };
  };
  return { bucket: (b: string) => ({ file: (n: string) => file(b, n) }) } as unknown as Storage;
}

/** Makes reads of the objects `which` selects slow: one line per `ms`. */
function slowReads(w: World, which: (name: string) => boolean, ms: number): void {
  const read = w.reader.read.bind(w.reader);
  w.reader.read = async function* (bucket, name, generation) {
    if (!which(name)) {
      yield* read(bucket, name, generation);
      return;
    }
    const bytes = w.reader.bytes(bucket, name, generation);
    if (!bytes) {
      yield* read(bucket, name, generation);
      return;
    }
    let start = 0;
    for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, start)) {
      await sleep(ms);
      yield bytes.subarray(start, nl + 1);
      start = nl + 1;
    }
    if (start < bytes.length) yield bytes.subarray(start);
  };
}

/**
 * Runs `fn` with this process's unhandled-rejection listeners swapped for one that records: in
 * the functions framework an unhandled rejection kills the instance.
 */
async function recordingUnhandled<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; unhandled: unknown[] }> {
  const unhandled: unknown[] = [];
  const saved = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  const record = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', record);
  try {
    const value = await fn();
    await sleep(50);
    return { value, unhandled };
  } finally {
    process.off('unhandledRejection', record);
    for (const l of saved) process.on('unhandledRejection', l);
  }
}

describe('digest attacks: uploads under the real writer stall watchdog', () => {
  // Bug: the uploads of results.jsonl and failed.jsonl (`writing`) get no rejection handler until
  // the final pass ends; one that fails mid-pass (a network error, a 403, a stall) while the pass
  // awaits I/O is an unhandled rejection, which kills a Cloud Functions instance (the whole poll
  // run, the claim kept until it expires) instead of a transient error. StoredParts guards its own
  // uploads with `.catch(() => undefined)`; these two lack it.
  it('an upload of failed.jsonl that fails mid-pass is a handled, transient failure', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const writeStream = w.reports.writeStream.bind(w.reports);
    w.reports.writeStream = (uri, chunks, type) =>
      uri.endsWith('/failed.jsonl')
        ? Promise.reject(new TransientError('STORAGE.UNAVAILABLE', 'connection reset'))
        : writeStream(uri, chunks, type);
    slowReads(w, (name) => name.endsWith('/input.jsonl'), 1);
    const out = lines.map((l, i) =>
      geminiOut(requestOf(l), i === 0 ? { status: 'Internal' } : 'a'),
    );
    const { unhandled } = await recordingUnhandled(() =>
      finish(w, jobId, vertexJob, { 'predictions.jsonl': out }),
    );
    expect(unhandled).toEqual([]);
  });

  // Bug: failed.jsonl is opened as a streamed upload at the start of the final pass, but its
  // Batcher pushes only every 256 KiB; with few failed rows nothing reaches the upload until the
  // end of the pass, and the writer's stall watchdog (20 s by default, 150 ms here) fails it. The
  // digest fails the same way on every attempt and the event goes out without one.
  it('a few failed rows in a slow final pass still give a digest', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const objects = new Map<string, string>();
    w.pollDeps.reports = createGcsObjectWriter(stubStorage(w, objects), { deadlineMs: 150 });
    slowReads(w, (name) => name.endsWith('/input.jsonl'), 15);
    // Large answers keep results.jsonl moving (a push every few rows); only the last row failed.
    const big = 'x'.repeat(100_000);
    const out = lines.map((l, i) =>
      geminiOut(requestOf(l), i === lines.length - 1 ? { status: 'Internal' } : big),
    );
    const { value: events } = await recordingUnhandled(() =>
      finish(w, jobId, vertexJob, { 'predictions.jsonl': out }),
    );
    expect(events[0]?.results?.rows).toEqual({ succeeded: 29, failed: 1, missing: 0 });
  });

  // Bug: every temporary part is opened as a streamed upload before the output is read, and gets
  // a chunk only per 64 KiB of its own results; output that comes back roughly in input order
  // leaves each part idle from the end of its range to sealed(), and the stall watchdog fails it.
  it('output in input order, spread over parts, still gives a digest', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const objects = new Map<string, string>();
    w.pollDeps.reports = createGcsObjectWriter(stubStorage(w, objects), { deadlineMs: 150 });
    w.pollDeps.digest = { partBytes: 100_000 };
    slowReads(w, (name) => name.endsWith('/predictions.jsonl'), 15);
    const answer = 'y'.repeat(20_000);
    const out = lines.map((l) => geminiOut(requestOf(l), answer));
    const events = await finish(w, jobId, vertexJob, { 'predictions.jsonl': out });
    expect(events[0]?.results?.rows).toEqual({ succeeded: 40, failed: 0, missing: 0 });
  });

  it('held: results.jsonl and failed.jsonl left by an attempt that died are kept (412), the producer is not blocked, one event', async () => {
    const lines = ['one', 'two', 'three'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const objects = new Map<string, string>();
    w.pollDeps.reports = createGcsObjectWriter(stubStorage(w, objects), { deadlineMs: 2_000 });
    const prefix = `gs://${OUT}/results/${jobId}/`;
    // Stale bytes under both names: create-only keeps them, and the digest still completes.
    objects.set(`${prefix}results.jsonl`, 'EARLIER\n');
    objects.set(`${prefix}failed.jsonl`, 'EARLIER\n');
    const out = [geminiOut(requestOf(lines[2]!), 'c'), geminiOut(requestOf(lines[0]!), 'a')];
    const events = await finish(w, jobId, vertexJob, { 'predictions.jsonl': out });
    expect(events).toHaveLength(1);
    expect(events[0]!.results?.rows).toEqual({ succeeded: 2, failed: 0, missing: 1 });
    expect(objects.get(`${prefix}results.jsonl`)).toBe('EARLIER\n');
    expect(objects.has(`${prefix}summary.json`)).toBe(true);
  });
});

describe('digest attacks: parts and memory', () => {
  // Bug: parts are removed only by the attempt that wrote them (`.digest/<workId>/`); an attempt
  // that dies (instance killed at the function timeout, OOM, or stuck past the time limit) leaves
  // its parts for good, and the later attempt that succeeds does not look at other workIds.
  it('no temporary part is left once the event is out, even after an attempt died', async () => {
    const lines = Array.from({ length: 20 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    w.pollDeps.digest = { partBytes: 300, timeLimitMs: 1_000 };
    // Attempt 1 hangs in its last pass (the parts are already written) and is abandoned.
    const read = w.reader.read.bind(w.reader);
    let inputReads = 0;
    w.reader.read = (bucket, name, generation) => {
      if (name.endsWith('/input.jsonl') && ++inputReads === 2) {
        return (async function* () {
          await new Promise(() => undefined);
          yield Buffer.alloc(0);
        })();
      }
      return read(bucket, name, generation);
    };
    const out = lines.map((l, i) => geminiOut(requestOf(l), `answer ${i}`));
    const events = await finish(w, jobId, vertexJob, { 'predictions.jsonl': out });
    expect(events).toHaveLength(0);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.results?.rows.succeeded).toBe(20);
    const left = [...w.reports.objects.keys()].filter((k) => k.includes('/.digest/'));
    expect(left).toEqual([]);
  });

  // Was a bug: parts split the input's lines evenly, so a part holding the long answers was read
  // whole, far above partBytes. Parts are now read back a window of lines at a time (the lines
  // whose results fit in partBytes together): a part of long answers is read more than once.
  it('answers of very uneven length: a part is read back in windows that fit, the results unchanged', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const partBytes = 20_000;
    w.pollDeps.digest = { partBytes };
    const read = w.reader.read.bind(w.reader);
    const partReads = new Map<string, number>();
    w.reader.read = async function* (bucket, name, generation) {
      if (name.includes('/.digest/')) partReads.set(name, (partReads.get(name) ?? 0) + 1);
      yield* read(bucket, name, generation);
    };
    const out = lines.map((l, i) => geminiOut(requestOf(l), i < 4 ? 'z'.repeat(30_000) : 'ok'));
    const events = await finish(w, jobId, vertexJob, { 'predictions.jsonl': out });
    expect(events[0]?.results?.rows.succeeded).toBe(40);
    // A part holding two of the long answers (each above partBytes) is read once for each.
    expect(Math.max(...partReads.values())).toBeGreaterThanOrEqual(2);
    const results = (w.reports.objects.get(`gs://${OUT}/results/${jobId}/results.jsonl`) ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number });
    expect(results.map((r) => r.line)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });
});

describe('digest attacks: tokens and cost', () => {
  // Bug: an output line that matches no request is counted in unmatchedOutputLines but its tokens
  // are dropped, although Vertex billed them: usage and actualUsd are too low.
  it('tokens of an output line that matched no request still count', async () => {
    const a = geminiLine('one');
    const { w, jobId, vertexJob } = await submit(`${a}\n`);
    const other = { contents: [{ role: 'user', parts: [{ text: 'not in the input' }] }] };
    const events = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [
        geminiOut(requestOf(a), 'a'),
        geminiOut(other, 'b', { promptTokenCount: 1000, candidatesTokenCount: 500 }),
      ],
    });
    expect(events[0]!.usage?.inputTokens).toBe(1010);
  });

  // Bug: the estimate counts each request's maxOutputTokens once; generationConfig.candidateCount
  // (accepted by the validator) asks for that many candidates, each up to maxOutputTokens.
  it('the estimate bounds the output of a request asking for several candidates', async () => {
    const w = createWorld();
    const name = 'inputs/candidates.jsonl';
    const line = geminiLine('r', {
      generationConfig: { maxOutputTokens: 100, candidateCount: 4 },
    });
    w.reader.put(BUCKET, name, GEN, `${line}\n`);
    const out = await handleStorageEvent(finalizeEvent({ name }), w.submitDeps);
    if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
    expect((await w.jobs.get(out.jobId))?.estimate?.outputTokens).toBeGreaterThanOrEqual(400);
  });

  // Bug: the estimate prices every output token at the output price; thinking tokens (inside
  // maxOutputTokens) are billed at the thinking price, which PRICE_TABLE may set higher.
  it('the estimate stays an upper bound when thinking costs more than output', async () => {
    const table = JSON.stringify({
      date: '2026-11-01',
      models: { 'gemini-2.5-flash': { input: 0, output: 1, thinking: 10 } },
    });
    const line = geminiLine('r', { generationConfig: { maxOutputTokens: 1000 } });
    const { w, jobId, vertexJob } = await submit(`${line}\n`, { PRICE_TABLE: table });
    const events = await finish(w, jobId, vertexJob, {
      'predictions.jsonl': [
        geminiOut(requestOf(line), 'a', {
          promptTokenCount: 10,
          candidatesTokenCount: 100,
          thoughtsTokenCount: 900,
        }),
      ],
    });
    const cost = events[0]!.cost!;
    expect(cost.estimatedUsd!).toBeGreaterThanOrEqual(cost.actualUsd!);
  });
});

describe('digest attacks that held', () => {
  it('a part upload that fails mid-stream while the producer pushes: no hang, a transient failure, digested by the next run', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => geminiLine(`review ${i}`));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    w.pollDeps.digest = { partBytes: 200_000 };
    const writeStream = w.reports.writeStream.bind(w.reports);
    let broken = false;
    w.reports.writeStream = async (uri, chunks, type) => {
      if (broken || !uri.endsWith('/part-00000')) return writeStream(uri, chunks, type);
      broken = true;
      for await (const _ of chunks) break;
      throw new TransientError('STORAGE.UNAVAILABLE', 'connection reset');
    };
    const answer = 'w'.repeat(30_000);
    const out = lines.map((l) => geminiOut(requestOf(l), answer));
    expect(await finish(w, jobId, vertexJob, { 'predictions.jsonl': out })).toHaveLength(0);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.results?.rows.succeeded).toBe(30);
    expect([...w.reports.objects.keys()].filter((k) => k.includes('/.digest/'))).toEqual([]);
  });

  it('a crash after summary.json, before the digest is recorded: the next attempt reuses its figures, one event', async () => {
    const lines = ['one', 'two'].map((t) => geminiLine(t));
    const { w, jobId, vertexJob } = await submit(lines.join('\n') + '\n');
    const update = w.jobs.update.bind(w.jobs);
    let crashes = 1;
    w.jobs.update = (id, change) =>
      (change as { transition?: string }).transition === 'toDigested' && crashes-- > 0
        ? Promise.reject(new TransientError('JOBS.UNAVAILABLE', 'instance died'))
        : update(id, change);
    const out = [
      geminiOut(requestOf(lines[1]!), 'b'),
      geminiOut(requestOf(lines[0]!), { status: 'x' }),
    ];
    expect(await finish(w, jobId, vertexJob, { 'predictions.jsonl': out })).toHaveLength(0);
    const summary = w.reports.objects.get(`gs://${OUT}/results/${jobId}/summary.json`);
    expect(summary).toBeDefined();
    // The claim is still held (nothing released it): no one else digests before it expires.
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(0);
    w.clock.advance(241_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    const recorded = JSON.parse(summary!) as { results: unknown; usage: unknown };
    expect(event.results).toEqual(recorded.results);
    expect(event.usage).toEqual(recorded.usage);
    expect(event.results?.rows).toEqual({ succeeded: 1, failed: 1, missing: 0 });
  });
});
