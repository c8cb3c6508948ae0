import { readFileSync, writeFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import {
  buildCompletionEvent,
  completionEventJsonSchema,
  CompletionEventSchema,
  eventIdFor,
} from '../../shared/events.js';
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
