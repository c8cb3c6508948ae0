import { readFileSync, writeFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import {
  buildCompletionEvent,
  capUtf8,
  completionEventJsonSchema,
  CompletionEventSchema,
  eventAttributes,
  eventIdFor,
  MAX_ATTRIBUTE_VALUE_BYTES,
  TRUNCATION_MARKER,
} from '../../shared/core/events.js';
import { completedRecord } from '../records.js';

const SCHEMA_FILE = new URL('../../schema/completion-event.schema.json', import.meta.url);

const SAMPLES = {
  succeeded: buildCompletionEvent(completedRecord(), new Date('2026-11-26T10:05:00Z')),
  rejected: buildCompletionEvent(
    completedRecord({
      status: 'REJECTED',
      vertexJob: null,
      vertexState: null,
      stats: null,
      outputDirectory: null,
      vertexCreateTime: null,
      vertexStartTime: null,
      vertexEndTime: null,
      requestCount: null,
      error: {
        code: 'INPUT.INVALID_JSONL',
        message: 'inputs/customer-reviews.jsonl line 7: is not valid JSON (at column 3)',
      },
    }),
    new Date('2026-11-26T10:05:00Z'),
  ),
  failed: buildCompletionEvent(
    completedRecord({
      vertexState: 'JOB_STATE_FAILED',
      stats: { successfulCount: 0, failedCount: 1, incompleteCount: -1 },
      outputDirectory: null,
      error: { code: 'INVALID_ARGUMENT', message: 'Failed to read input' },
    }),
    new Date('2026-11-26T10:05:00Z'),
  ),
};

describe('completion event schema', () => {
  it('the schema file in the repository is generated from the code (npm run schema rewrites it)', () => {
    const generated = JSON.stringify(completionEventJsonSchema(), null, 2) + '\n';
    if (process.env.UPDATE_SCHEMA === '1') writeFileSync(SCHEMA_FILE, generated);
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(generated);
  });

  let compiled: ValidateFunction | undefined;
  const validate = (data: unknown): boolean => {
    if (!compiled) {
      const ajv = new Ajv2020({ strict: true, allErrors: true });
      addFormats.default(ajv);
      compiled = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object);
    }
    return compiled(data);
  };

  it.each(Object.entries(SAMPLES))(
    'a %s event validates against the schema file',
    (_kind, event) => {
      expect(validate(event), JSON.stringify(compiled?.errors)).toBe(true);
    },
  );

  it.each([
    ['a missing field', (e: Record<string, unknown>) => delete e.stats],
    ['an extra field', (e: Record<string, unknown>) => (e.extra = 1)],
    [
      'a string count',
      (e: Record<string, unknown>) =>
        (e.stats = { successfulCount: '412', failedCount: 0, incompleteCount: 0 }),
    ],
    ['an unknown state', (e: Record<string, unknown>) => (e.state = 'JOB_STATE_RUNNING')],
    [
      'a numeric generation',
      (e: Record<string, unknown>) => ((e.input as Record<string, unknown>).generation = 17),
    ],
    ['a bad publishTime', (e: Record<string, unknown>) => (e.publishTime = 'yesterday')],
  ])('the schema file and the runtime schema both refuse %s', (_what, mutate) => {
    const event = structuredClone(SAMPLES.succeeded) as unknown as Record<string, unknown>;
    mutate(event);
    expect(validate(event)).toBe(false);
    expect(CompletionEventSchema.safeParse(event).success).toBe(false);
  });

  it('every field is present, null when it does not apply', () => {
    expect(Object.keys(SAMPLES.rejected).sort()).toEqual(Object.keys(SAMPLES.succeeded).sort());
    expect(SAMPLES.rejected).toMatchObject({
      vertexJob: null,
      output: {
        uriPrefix: 'gs://acme-batch-output/results/customer-reviews-0123456789abcdef/',
        directory: null,
      },
      stats: null,
      createTime: null,
    });
  });

  it('eventId is stable for an outcome and differs between outcomes', () => {
    const again = buildCompletionEvent(completedRecord(), new Date('2026-11-27T00:00:00Z'));
    expect(again.eventId).toBe(SAMPLES.succeeded.eventId);
    expect(SAMPLES.failed.eventId).not.toBe(SAMPLES.succeeded.eventId);
    expect(eventIdFor('a', 'JOB_STATE_SUCCEEDED')).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('attribute limit: Pub/Sub attributes', () => {
  const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
  /** True when `s` has no lone surrogate (a character cut in two). */
  const wellFormed = (s: string): boolean =>
    !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

  it('attribute limit: a 5,000-character multibyte model is capped at 1,024 bytes, marked, never split', () => {
    const model = 'モデル😀é'.repeat(1000); // 5,000 code points, 3+3+3+4+2 bytes each round
    const event = buildCompletionEvent(
      completedRecord({ status: 'REJECTED', model, vertexJob: null }),
      new Date('2026-11-26T10:05:00Z'),
    );
    expect(event.model).toBe(model); // the data keeps the whole value
    const attributes = eventAttributes(event);
    expect(bytes(attributes.model)).toBeLessThanOrEqual(MAX_ATTRIBUTE_VALUE_BYTES);
    expect(bytes(attributes.model)).toBeGreaterThan(MAX_ATTRIBUTE_VALUE_BYTES - 8);
    expect(attributes.model.endsWith(TRUNCATION_MARKER)).toBe(true);
    expect(model.startsWith(attributes.model.slice(0, -TRUNCATION_MARKER.length))).toBe(true);
    expect(wellFormed(attributes.model)).toBe(true);
    for (const [key, value] of Object.entries(attributes)) {
      expect(bytes(key)).toBeLessThanOrEqual(256);
      expect(bytes(value)).toBeLessThanOrEqual(MAX_ATTRIBUTE_VALUE_BYTES);
    }
  });

  it('attribute limit: values that fit are unchanged', () => {
    expect(eventAttributes(SAMPLES.succeeded)).toEqual({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      jobId: 'customer-reviews-0123456789abcdef',
      model: 'publishers/google/models/gemini-2.5-flash',
      schemaVersion: '1',
    });
    const exact = 'é'.repeat(512); // 1,024 bytes
    expect(capUtf8(exact)).toBe(exact);
  });

  it.each([
    ['ASCII', 'a', 1024 - 3],
    ['2-byte', 'é', 510],
    ['3-byte', '語', 340],
    ['4-byte (a surrogate pair)', '😀', 255],
  ])('attribute limit: %s characters are cut between characters', (_what, char, kept) => {
    const capped = capUtf8(char.repeat(2000));
    expect(capped).toBe(char.repeat(kept) + TRUNCATION_MARKER);
    expect(bytes(capped)).toBeLessThanOrEqual(MAX_ATTRIBUTE_VALUE_BYTES);
    expect(wellFormed(capped)).toBe(true);
  });
});
