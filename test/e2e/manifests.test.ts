/**
 * Manifests end to end on the offline stack (README "Manifests"): a manifest over a BigQuery
 * table the test seeds, writing to a dataset, and one over several Cloud Storage files; each goes
 * through the storage emulator, submitBatchJob, the Vertex emulator (which reads and writes the
 * BigQuery emulator over HTTP), pollBatchJobs and Pub/Sub, and ends in one event.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIGQUERY_DATASET, PROJECT, startStack, type Stack } from '../../local/stack.js';
import { CompletionEventSchema } from '../../shared/core/events.js';
import { seedRequestsTable } from '../../local/bigquery/seed.js';

let stack: Stack;
let root: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bc-manifests-'));
  stack = await startStack({
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root,
    pollIntervalMs: 200,
    vertexTiming: { pendingMs: 50, runningMs: 100 },
    eventarcRetry: { initialDelayMs: 50, maxDelayMs: 200 },
  });
});
afterAll(async () => {
  await stack?.stop();
  rmSync(root, { recursive: true, force: true });
});

const lines = readFileSync(
  new URL('../../examples/customer-reviews.jsonl', import.meta.url),
  'utf8',
)
  .trim()
  .split('\n');

async function download(name: string): Promise<string> {
  const [content] = await stack.storage.bucket('batch-courier-output').file(name).download();
  return content.toString('utf8');
}

describe('manifests on the offline stack', () => {
  it('a manifest over a BigQuery table writing to a dataset: validated, one job, the output table counted, one event', async () => {
    const table = { project: PROJECT, dataset: BIGQUERY_DATASET, table: 'e2e_reviews' };
    seedRequestsTable(stack.bigquery.store, table, lines.join('\n'));
    const source = `bq://${PROJECT}.${BIGQUERY_DATASET}.e2e_reviews`;
    await stack.upload(
      'inputs/e2e-table.batch.json',
      Buffer.from(JSON.stringify({ source, destination: `bq://${PROJECT}.${BIGQUERY_DATASET}` })),
    );
    const event = CompletionEventSchema.parse(
      await stack.waitForEvent((e) => e.input.name === 'inputs/e2e-table.batch.json', 20_000),
    );
    expect(event).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      input: { uri: source, requestCount: 12 },
      output: { uriPrefix: `bq://${PROJECT}.${BIGQUERY_DATASET}` },
      stats: { successfulCount: 12, failedCount: 0 },
      results: { rows: { succeeded: 12, failed: 0, missing: 0 }, failedRowsUri: null },
    });
    // Vertex's output table, named by the event, holds a response per row beside its review_id.
    const output = event.output?.directory ?? '';
    expect(output).toMatch(new RegExp(`^bq://${PROJECT}\\.${BIGQUERY_DATASET}\\.predictions_`));
    expect(event.results?.resultsUri).toBe(output);
    const rows = stack.bigquery.store.rows({
      project: PROJECT,
      dataset: BIGQUERY_DATASET,
      table: output.split('.').pop() ?? '',
    });
    expect(rows.map((r) => Number(r.review_id)).sort((a, b) => a - b)).toEqual(
      lines.map((_, i) => i + 1),
    );
    expect(rows.every((r) => r.status === '' && r.response !== null)).toBe(true);
    expect(event.usage?.inputTokens).toBeGreaterThan(0);
    const summary = JSON.parse(await download(`results/${event.jobId}/summary.json`)) as Record<
      string,
      unknown
    >;
    expect(summary).toMatchObject({
      input: { uri: source, requestCount: 12 },
      predictionFiles: [output],
    });
  });

  it('a manifest over several files: every file validated and pinned, one job over the copies, results in input order across files', async () => {
    await stack.upload('data/e2e/part-1.jsonl', Buffer.from(`${lines.slice(0, 5).join('\n')}\n`));
    await stack.upload('data/e2e/part-2.jsonl', Buffer.from(`${lines.slice(5).join('\n')}\n`));
    await stack.upload('data/e2e/notes.txt', Buffer.from('not matched'));
    const source = 'gs://batch-courier-input/data/e2e/part-*.jsonl';
    await stack.upload('inputs/e2e-files.batch.json', Buffer.from(JSON.stringify({ source })));
    const event = CompletionEventSchema.parse(
      await stack.waitForEvent((e) => e.input.name === 'inputs/e2e-files.batch.json', 20_000),
    );
    const prefix = `gs://batch-courier-output/results/${event.jobId}/`;
    expect(event).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      input: { uri: source, requestCount: 12 },
      output: { uriPrefix: prefix },
      results: {
        rows: { succeeded: 12, failed: 0, missing: 0 },
        resultsUri: `${prefix}results.jsonl`,
      },
    });
    // The job read the two pinned copies, in order.
    const [pinned] = await stack.storage
      .bucket('batch-courier-output')
      .getFiles({ prefix: `results/${event.jobId}/inputs/` });
    expect(pinned.map((f) => f.name.replace(/^.*\/inputs\//, ''))).toEqual([
      expect.stringMatching(/^001-\d+\.jsonl$/),
      expect.stringMatching(/^002-\d+\.jsonl$/),
    ]);
    const results = (await download(`results/${event.jobId}/results.jsonl`))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; status: string });
    expect(results.map((r) => r.line)).toEqual(lines.map((_, i) => i + 1));
    expect(results.every((r) => r.status === 'succeeded')).toBe(true);
  });

  it('a manifest naming a missing table is rejected, naming it, with one event', async () => {
    const source = `bq://${PROJECT}.${BIGQUERY_DATASET}.nowhere`;
    await stack.upload('inputs/e2e-missing.batch.json', Buffer.from(JSON.stringify({ source })));
    const event = await stack.waitForEvent(
      (e) => e.input.name === 'inputs/e2e-missing.batch.json',
      20_000,
    );
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      error: {
        code: 'INPUT.SOURCE_NOT_FOUND',
        message: expect.stringContaining(`"source" ${source} does not exist`),
      },
    });
  });
});
