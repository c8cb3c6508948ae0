/**
 * The bad-input corpus (test/fixtures/bad-input, one file per rule): every file is refused before
 * any Vertex call, with one input.rejected event whose message names the line, a record, and a
 * rejection.json report under the job's output prefix.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import { EXCERPT_CHARS, MAX_LINE_BYTES, validateJsonl } from '../../shared/core/jsonl.js';
import { createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';

interface Case {
  file: string;
  code: string;
  line: number;
  contains: string;
  model?: string;
}

const DIR = new URL('../fixtures/bad-input/', import.meta.url);
const CASES = JSON.parse(readFileSync(new URL('cases.json', DIR), 'utf8')) as Case[];
const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';

interface Report {
  jobId: string;
  error: { code: string; message: string };
  errorCount: number;
  truncated: boolean;
  errors: { line: number; message: string; byteOffset: number; excerpt: string }[];
}

async function submitFile(
  content: Buffer | string,
  opts: { model?: string; name?: string; size?: string; contentEncoding?: string } = {},
) {
  const w = createWorld();
  const name = opts.name ?? 'inputs/bad.jsonl';
  w.reader.put(BUCKET, name, GEN, content);
  const outcome = await handleStorageEvent(
    finalizeEvent({
      name,
      ...(opts.model ? { metadata: { model: opts.model } } : {}),
      ...(opts.size ? { size: opts.size } : {}),
      ...(opts.contentEncoding ? { contentEncoding: opts.contentEncoding } : {}),
    }),
    w.submitDeps,
  );
  const jobId = deriveJobId(BUCKET, name, GEN);
  const reportUri = `gs://acme-batch-output/results/${jobId}/rejection.json`;
  const raw = w.reports.objects.get(reportUri);
  return { w, outcome, jobId, reportUri, report: raw ? (JSON.parse(raw) as Report) : undefined };
}

describe('bad-input corpus', () => {
  it('has one file per rule', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(33);
    expect(new Set(CASES.map((c) => c.file)).size).toBe(CASES.length);
  });

  it.each(CASES)('$file → $code at line $line, no create, one event, report', async (c) => {
    const { w, outcome, jobId, reportUri, report } = await submitFile(
      readFileSync(new URL(c.file, DIR)),
      c.model ? { model: c.model } : {},
    );
    expect(outcome).toEqual({ outcome: 'rejected', jobId, code: c.code });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      state: 'INPUT_REJECTED',
      vertexJob: null,
      output: { uriPrefix: `gs://acme-batch-output/results/${jobId}/`, directory: null },
      error: { code: c.code },
    });
    expect(event.error?.message).toContain(`inputs/bad.jsonl line ${c.line}: `);
    expect(event.error?.message).toContain(c.contains);
    expect(event.error?.message).toContain(`(report: ${reportUri})`);
    expect(report).toBeDefined();
    expect(report!.errors[0]).toMatchObject({ line: c.line });
    expect(report!.errors[0]!.message).toContain(c.contains);
    for (const e of report!.errors)
      expect([...e.excerpt.replace(/^…|…$/g, '')].length).toBeLessThanOrEqual(EXCERPT_CHARS);
    const record = await w.jobs.get(jobId);
    expect(record).toMatchObject({ status: 'REJECTED', outstanding: false });
    expect(record?.lineErrors[0]?.line).toBe(c.line);
    if (c.code === 'INPUT.FILE_URI_NOT_ALLOWED') {
      // Only the scheme and bucket (or host) of the refused URI: its path is customer content.
      const published = JSON.stringify([event, report]);
      expect(published).not.toContain('private');
      expect(published).not.toContain('contract.pdf');
    }
  });

  it('a line over 16 MiB is refused with INPUT.LINE_TOO_LONG and its line number', async () => {
    const valid = '{"request":{"contents":[{"role":"user","parts":[{"text":"x"}]}]}}\n';
    const head = '{"request":{"contents":[{"role":"user","parts":[{"text":"';
    const long = Buffer.alloc(MAX_LINE_BYTES + 1024, 0x78);
    long.write(head);
    const { outcome, w, report } = await submitFile(
      Buffer.concat([Buffer.from(valid), long, Buffer.from(`"}]}]}}\n${valid}`)]),
    );
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.LINE_TOO_LONG' });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events[0]?.error).toMatchObject({ code: 'INPUT.LINE_TOO_LONG' });
    expect(w.publisher.events[0]?.error?.message).toContain(
      `line 2: is longer than ${MAX_LINE_BYTES} bytes`,
    );
    expect(report?.errors).toHaveLength(1);
    expect(report?.errors[0]).toMatchObject({ line: 2, byteOffset: valid.length });
    expect([...report!.errors[0]!.excerpt.replace(/…$/, '')].length).toBeLessThanOrEqual(
      EXCERPT_CHARS,
    );
  });

  it('contentEncoding gzip is refused clearly, before reading', async () => {
    const { w, outcome, event } = await submitFile(GEMINI_LINES, { contentEncoding: 'gzip' }).then(
      (r) => ({ ...r, event: r.w.publisher.events[0] }),
    );
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.UNSUPPORTED_ENCODING' });
    expect(w.reader.reads).toBe(0);
    expect(event?.error?.message).toContain('contentEncoding "gzip"');
  });

  it('a file over 1 GB is refused from its size, before reading', async () => {
    const { w, outcome } = await submitFile(GEMINI_LINES, { size: '1000000001' });
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.TOO_LARGE' });
    expect(w.reader.reads).toBe(0);
  });

  it('more than 200,000 requests is refused at line 200,001', async () => {
    const line = '{"request":{"contents":[{"role":"user","parts":[{"text":"x"}]}]}}\n';
    const { outcome, w } = await submitFile(line.repeat(200_001));
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.TOO_MANY_LINES' });
    expect(w.publisher.events[0]?.error?.message).toContain(
      'line 200001: exceeds the limit of 200000 requests',
    );
  });

  it('the report lists up to 1,000 problems, the record the first 100, the event the first', async () => {
    const { report, w, jobId } = await submitFile('not json\n'.repeat(1500));
    expect(report?.errors).toHaveLength(1000);
    expect(report?.truncated).toBe(true);
    expect(report?.errors.map((e) => e.line).slice(0, 3)).toEqual([1, 2, 3]);
    expect((await w.jobs.get(jobId))?.lineErrors).toHaveLength(100);
    expect(w.publisher.events[0]?.error?.message).toContain('line 1: ');
  });

  it('never puts a whole prompt into the report, the event or the logs', async () => {
    const secret = 'SECRET-PROMPT-' + 'x'.repeat(200);
    const { report, w } = await submitFile(
      JSON.stringify({
        request: { contents: [{ role: 'user', parts: [{ text: secret }] }], temprature: 1 },
      }) + '\n',
    );
    expect(JSON.stringify(report)).not.toContain(secret);
    expect(JSON.stringify(w.publisher.events)).not.toContain('SECRET-PROMPT');
    expect(w.log.raw.join('\n')).not.toContain('SECRET-PROMPT');
  });

  it('a failed report write is transient: nothing recorded as rejected, the retry completes', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/customer-reviews.jsonl', GEN, 'nope\n');
    w.reports.fail(new Error('storage down'));
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toThrow('storage down');
    expect(w.jobs.all()[0]).toMatchObject({ status: 'SUBMITTING' });
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.reports.objects.size).toBe(1);
  });
});

describe('validator properties', () => {
  const collect = async (bytes: Uint8Array, provider: 'google' | 'anthropic') =>
    validateJsonl(
      (async function* () {
        for (let i = 0; i < bytes.length; i += 5) yield bytes.subarray(i, i + 5);
      })(),
      { provider },
    );

  it('random bytes never crash it, and every rejection names a line (and byte offset)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 400 }),
        fc.constantFrom('google' as const, 'anthropic' as const),
        async (bytes, provider) => {
          const result = await collect(bytes, provider);
          if (result.code !== undefined) {
            expect(result.errors.length).toBeGreaterThan(0);
            for (const e of result.errors) {
              expect(e.line).toBeGreaterThanOrEqual(1);
              expect(e.byteOffset).toBeGreaterThanOrEqual(0);
              expect(e.message.length).toBeGreaterThan(0);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random JSON lines never crash it, and every rejection names a line', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.jsonValue(), { maxLength: 8 }),
        fc.constantFrom('google' as const, 'anthropic' as const),
        async (values, provider) => {
          const text = values.map((v) => JSON.stringify(v)).join('\n');
          const result = await collect(Buffer.from(text), provider);
          if (result.code !== undefined) {
            expect(result.errors[0]!.line).toBeGreaterThanOrEqual(1);
            expect(result.errors[0]!.line).toBeLessThanOrEqual(Math.max(1, values.length));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('line numbers and validity do not depend on how the stream is chunked', async () => {
    const text = Buffer.from(GEMINI_LINES + 'oops\n' + GEMINI_LINES);
    const whole = await validateJsonl(
      (async function* () {
        yield text;
      })(),
      { provider: 'google' },
    );
    const split = await collect(text, 'google');
    expect(split).toEqual(whole);
    expect(whole.errors.map((e) => e.line)).toEqual([4]);
  });
});
