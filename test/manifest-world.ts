/** The world of the manifest tests: one manifest object, a source table, datasets, and helpers. */
import { expect } from 'vitest';
import { handleStorageEvent } from '../shared/app/submit.js';
import { CompletionEventSchema, type CompletionEvent } from '../shared/core/events.js';
import { deriveJobId } from '../shared/core/job-id.js';
import { createWorld, finalizeEvent, type FakeTable } from './fakes.js';

export type World = ReturnType<typeof createWorld>;

export const BUCKET = 'acme-batch-input';
export const OUT = 'acme-batch-output';
export const NAME = 'inputs/nightly.batch.json';
export const GEN = '1764150067498213';
export const JOB_ID = deriveJobId(BUCKET, NAME, GEN);
export const PREFIX = `gs://${OUT}/results/${JOB_ID}/`;
export const TABLE = 'bq://acme-prod.prompts.reviews';

/** A Gemini request for a prompt. */
export const request = (text: string) => ({
  contents: [{ role: 'user', parts: [{ text }] }],
  generationConfig: { maxOutputTokens: 16 },
});

/** A Gemini source table with these prompts (an `id` beside each JSON `request`). */
export function geminiTable(texts: string[], extra: Partial<FakeTable> = {}): FakeTable {
  return {
    columns: [
      { name: 'id', type: 'INTEGER', mode: 'NULLABLE' },
      { name: 'request', type: 'JSON', mode: 'NULLABLE' },
    ],
    rows: texts.map((t, i) => ({ id: String(i + 1), request: JSON.stringify(request(t)) })),
    ...extra,
  };
}

/** The fakes, with two allowed datasets in us-central1 and no retry of failed rows by default. */
export function world(config: Record<string, string> = {}): World {
  const w = createWorld({
    ALLOWED_BIGQUERY_DATASETS: 'acme-prod.prompts,acme-prod.results',
    RETRY_FAILED_ROWS: '0',
    ...config,
  });
  w.bigquery.addDataset('acme-prod.prompts', 'us-central1');
  w.bigquery.addDataset('acme-prod.results', 'us-central1');
  return w;
}

/** The manifest's finalize event. */
export function manifestEvent(text: string | Buffer, metadata?: Record<string, string>) {
  return finalizeEvent({
    name: NAME,
    size: String(Buffer.byteLength(text)),
    ...(metadata ? { metadata } : {}),
  });
}

/** Stores the manifest (without delivering its event). */
export function put(w: World, manifest: unknown): string | Buffer {
  const text =
    typeof manifest === 'string' || Buffer.isBuffer(manifest) ? manifest : JSON.stringify(manifest);
  w.reader.put(BUCKET, NAME, GEN, text);
  return text;
}

/** Uploads the manifest and delivers its event. */
export async function upload(w: World, manifest: unknown, metadata?: Record<string, string>) {
  const text = put(w, manifest);
  return handleStorageEvent(manifestEvent(text, metadata), w.submitDeps);
}

/** The one rejection event of the manifest, checked against the schema, with its report. */
export function rejection(w: World): CompletionEvent {
  expect(w.vertex.creates).toHaveLength(0);
  expect(w.publisher.events).toHaveLength(1);
  const event = CompletionEventSchema.parse(w.publisher.events[0]);
  expect(event.eventType).toBe('input.rejected');
  expect(event.input.name).toBe(NAME);
  // The report file, as for a bad JSONL line.
  expect(event.error?.message).toContain(`(report: ${PREFIX}rejection.json)`);
  expect(w.reports.objects.get(`${PREFIX}rejection.json`)).toContain(event.error?.code ?? '?');
  return event;
}
