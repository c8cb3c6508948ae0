/**
 * Manifests (README "Manifests"): a `.batch.json` object runs one job over a BigQuery table or
 * several Cloud Storage files, validated first and announced like any other input.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { MAX_MANIFEST_FILES } from '../../shared/core/manifest.js';
import { JOB_ID_LABEL, OWNER_LABEL } from '../../shared/core/vertex.js';
import { CompletionEventSchema } from '../../shared/core/events.js';
import {
  ANTHROPIC_LINES,
  finalizeEvent,
  GEMINI_LINES,
  nextGeneration,
  type FakeTable,
} from '../fakes.js';
import {
  BUCKET,
  GEN,
  geminiTable,
  JOB_ID,
  NAME,
  OUT,
  PREFIX,
  rejection,
  request,
  TABLE,
  upload,
  world,
} from '../manifest-world.js';

describe('manifests: what the text says', () => {
  it.each([
    [
      'not JSON',
      '{"source": "gs://acme-batch-input/a.jsonl",}',
      /is not valid JSON \(at line 1 column \d+\)/,
    ],
    [
      'not an object',
      '["gs://acme-batch-input/a.jsonl"]',
      /must be a JSON object with a "source" field/,
    ],
    ['no source', { model: 'gemini-2.5-flash' }, /"source" is required/],
    [
      'an unknown field',
      { source: 'gs://acme-batch-input/a.jsonl', destinaton: 'gs://acme-batch-output/x' },
      /"destinaton" is not a manifest field \(the fields are source, destination, model, location\)/,
    ],
    [
      'a bad URI',
      { source: 's3://bucket/a.jsonl' },
      /"source" "s3:\/\/bucket\/a.jsonl" is not a gs:\/\/bucket\/object URI/,
    ],
    [
      'a bad table URI',
      { source: 'bq://acme-prod.prompts' },
      /"source" "bq:\/\/acme-prod.prompts" is not a BigQuery table URI/,
    ],
    [
      'mixed source kinds',
      { source: ['gs://acme-batch-input/a.jsonl', TABLE] },
      /"source" mixes a BigQuery table with Cloud Storage files/,
    ],
    ['two tables', { source: [TABLE, `${TABLE}2`] }, /names several BigQuery tables/],
    [
      'an element that is not a string',
      { source: ['gs://acme-batch-input/a.jsonl', 7] },
      /"source"\[1\] must be a bq:\/\/ or gs:\/\/ URI string/,
    ],
    [
      'too many files listed',
      {
        source: Array.from(
          { length: MAX_MANIFEST_FILES + 1 },
          (_, i) => `gs://acme-batch-input/f${i}.jsonl`,
        ),
      },
      /"source" lists 101 files: at most 100 files per manifest/,
    ],
    [
      'a bad destination',
      { source: TABLE, destination: 'bq://acme-prod' },
      /"destination" "bq:\/\/acme-prod" is not a BigQuery dataset or table URI/,
    ],
    ['an empty model', { source: TABLE, model: ' ' }, /"model" must be a non-empty string/],
    [
      'dot segments',
      { source: 'gs://acme-batch-input/in/../secret/*.jsonl' },
      /may not hold "\." or "\.\." segments/,
    ],
  ])('%s: rejected, naming the field', async (_, manifest, message) => {
    const w = world();
    const out = await upload(w, manifest);
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.INVALID_MANIFEST' });
    const event = rejection(w);
    expect(event.error?.message).toMatch(message);
    expect(event.error?.message).toContain(NAME);
  });

  it('BigQuery on the global endpoint is refused', async () => {
    const w = world({ ALLOWED_LOCATIONS: '*' });
    await upload(w, { source: TABLE, location: 'global' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.INVALID_LOCATION',
      message: expect.stringMatching(/BigQuery sources are not available on the global endpoint/),
    });
  });

  it('a dataset outside ALLOWED_BIGQUERY_DATASETS is refused, before any BigQuery call', async () => {
    const w = world({ ALLOWED_BIGQUERY_DATASETS: 'acme-prod.results' });
    await upload(w, { source: TABLE });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.SOURCE_NOT_ALLOWED',
      message: expect.stringMatching(
        /"source" dataset acme-prod.prompts is not allowed.*ALLOWED_BIGQUERY_DATASETS/,
      ),
    });
    expect(w.bigquery.calls).toEqual({ table: 0, dataset: 0, rows: 0 });
  });

  it('files outside the buckets the deployment may read, and a destination outside the output bucket, are refused', async () => {
    const w = world();
    await upload(w, { source: 'gs://someone-else/data/*.jsonl' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.SOURCE_NOT_ALLOWED',
      message: expect.stringMatching(
        /"source" "gs:\/\/someone-else\/data\/\*.jsonl" is outside what this deployment may read/,
      ),
    });
    const w2 = world();
    w2.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w2, {
      source: 'gs://acme-batch-input/in/a.jsonl',
      destination: 'gs://elsewhere/out',
    });
    expect(rejection(w2).error?.message).toMatch(
      /"destination" "gs:\/\/elsewhere\/out\/" is outside the output bucket/,
    );
  });
});

describe('manifests over Cloud Storage files', () => {
  it('expands wildcards as Vertex AI does (* within a folder, ** across), validates and pins every file, and creates one job over the copies', async () => {
    const w = world();
    const files = {
      'in/2026/a.jsonl': GEMINI_LINES,
      'in/2026/b.jsonl': GEMINI_LINES.split('\n')[0] + '\n',
      'in/2026/deeper/c.jsonl': GEMINI_LINES,
      'in/2026/notes.txt': 'not a request',
    };
    const gens: Record<string, string> = {};
    for (const [name, content] of Object.entries(files)) {
      gens[name] = nextGeneration();
      w.reader.put(BUCKET, name, gens[name], content);
    }
    const out = await upload(w, { source: 'gs://acme-batch-input/in/2026/*.jsonl' });
    expect(out).toMatchObject({ outcome: 'submitted' });
    const create = w.vertex.creates[0]!;
    const pinned = [
      `${PREFIX}inputs/001-${gens['in/2026/a.jsonl']}.jsonl`,
      `${PREFIX}inputs/002-${gens['in/2026/b.jsonl']}.jsonl`,
    ];
    expect(create.request).toEqual({
      displayName: JOB_ID,
      model: 'publishers/google/models/gemini-2.5-flash',
      inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: pinned } },
      outputConfig: { predictionsFormat: 'jsonl', gcsDestination: { outputUriPrefix: PREFIX } },
      labels: { [OWNER_LABEL]: 'v1', [JOB_ID_LABEL]: JOB_ID },
    });
    expect(w.reports.copies.get(pinned[0]!)?.toString()).toBe(files['in/2026/a.jsonl']);
    const record = await w.jobs.get(JOB_ID);
    expect(record).toMatchObject({
      requestCount: 4,
      inputUri: 'gs://acme-batch-input/in/2026/*.jsonl',
      manifest: {
        source: { kind: 'gcs', uris: ['gs://acme-batch-input/in/2026/*.jsonl'] },
        files: [
          { uri: 'gs://acme-batch-input/in/2026/a.jsonl', requests: 3 },
          { uri: 'gs://acme-batch-input/in/2026/b.jsonl', requests: 1 },
        ],
      },
    });

    // `**` crosses folders; `?` is one character.
    const w2 = world();
    for (const [name, content] of Object.entries(files))
      w2.reader.put(BUCKET, name, gens[name]!, content);
    await upload(w2, {
      source: ['gs://acme-batch-input/in/**.jsonl', 'gs://acme-batch-input/in/2026/?.jsonl'],
    });
    expect(w2.vertex.creates[0]?.request.inputConfig).toEqual({
      instancesFormat: 'jsonl',
      gcsSource: {
        uris: [
          `${PREFIX}inputs/001-${gens['in/2026/a.jsonl']}.jsonl`,
          `${PREFIX}inputs/002-${gens['in/2026/b.jsonl']}.jsonl`,
          `${PREFIX}inputs/003-${gens['in/2026/deeper/c.jsonl']}.jsonl`,
        ],
      },
    });
  });

  it('a pattern matching the manifest itself leaves it out', async () => {
    const w = world();
    w.reader.put(BUCKET, 'inputs/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, { source: 'gs://acme-batch-input/inputs/*' });
    expect(w.vertex.creates[0]?.request.inputConfig).toMatchObject({
      gcsSource: { uris: [expect.stringMatching(/inputs\/001-\d+\.jsonl$/)] },
    });
  });

  it('a bad line is named by file and line, and no file is pinned', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), GEMINI_LINES + '{"request": \n');
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const event = rejection(w);
    expect(event.error).toMatchObject({
      code: 'INPUT.INVALID_JSONL',
      message: expect.stringMatching(
        /^gs:\/\/acme-batch-input\/in\/b\.jsonl line 4: is not valid JSON/,
      ),
    });
    expect(w.reports.copies.size).toBe(0);
    const report = JSON.parse(w.reports.objects.get(`${PREFIX}rejection.json`) ?? '{}') as {
      errors: { line: number; message: string }[];
    };
    expect(report.errors[0]).toMatchObject({
      line: 4,
      message: expect.stringMatching(/^gs:\/\/acme-batch-input\/in\/b\.jsonl: /),
    });
  });

  it('a file that does not exist, a pattern matching nothing, and too many matches are refused', async () => {
    const w = world();
    await upload(w, { source: 'gs://acme-batch-input/in/missing.jsonl' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.SOURCE_NOT_FOUND',
      message: expect.stringMatching(
        /"source" gs:\/\/acme-batch-input\/in\/missing\.jsonl does not exist/,
      ),
    });
    const w2 = world();
    await upload(w2, {
      source: ['gs://acme-batch-input/in/x.jsonl', 'gs://acme-batch-input/in/*.jsonl'],
    });
    expect(rejection(w2).error?.code).toBe('INPUT.SOURCE_NOT_FOUND');
    const w3 = world();
    for (let i = 0; i <= MAX_MANIFEST_FILES; i++)
      w3.reader.put(
        BUCKET,
        `in/f${String(i).padStart(3, '0')}.jsonl`,
        nextGeneration(),
        GEMINI_LINES,
      );
    await upload(w3, { source: 'gs://acme-batch-input/in/*.jsonl' });
    expect(rejection(w3).error).toMatchObject({
      code: 'INPUT.TOO_MANY_FILES',
      message: expect.stringMatching(/matches more than 100 files/),
    });
  });

  it('the request limit applies to all files together', async () => {
    const w = world();
    const line =
      JSON.stringify({ request: { contents: [{ role: 'user', parts: [{ text: 'a' }] }] } }) + '\n';
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), line.repeat(150_000));
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), line.repeat(50_001));
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.TOO_MANY_LINES',
      message: expect.stringMatching(
        /in\/b\.jsonl line 50001: exceeds the limit of 50000 requests.*together: 200000 requests/,
      ),
    });
  });
});

describe('manifests over a BigQuery table', () => {
  it('validates the table and creates a job reading it and writing to a dataset; the event names source, manifest, destination and output table', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one', 'two', 'three']));
    const out = await upload(w, {
      source: TABLE,
      destination: 'bq://acme-prod.results',
      model: 'gemini-2.5-flash',
    });
    expect(out).toMatchObject({ outcome: 'submitted' });
    const create = w.vertex.creates[0]!;
    expect(create.request).toEqual({
      displayName: JOB_ID,
      model: 'publishers/google/models/gemini-2.5-flash',
      inputConfig: { instancesFormat: 'bigquery', bigquerySource: { inputUri: TABLE } },
      outputConfig: {
        predictionsFormat: 'bigquery',
        bigqueryDestination: { outputUri: 'bq://acme-prod.results' },
      },
      labels: { [OWNER_LABEL]: 'v1', [JOB_ID_LABEL]: JOB_ID },
    });
    expect(await w.jobs.get(JOB_ID)).toMatchObject({
      requestCount: 3,
      estimate: { usd: expect.any(Number) },
    });

    // The job ends; its output table holds one failed row.
    const output = 'bq://acme-prod.results.predictions_2026_11_26T10_20_00_000Z';
    const response = (text: string) =>
      JSON.stringify({
        candidates: [{ content: { role: 'model', parts: [{ text }] } }],
        usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 3, totalTokenCount: 13 },
      });
    const rows = geminiTable(['one', 'two', 'three']).rows;
    w.bigquery.put(output, {
      columns: [
        { name: 'id', type: 'INTEGER', mode: 'NULLABLE' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
        { name: 'response', type: 'JSON', mode: 'NULLABLE' },
        { name: 'status', type: 'STRING', mode: 'NULLABLE' },
      ],
      rows: [
        { ...rows[0]!, response: response('positive'), status: '' },
        { ...rows[1]!, response: null, status: 'Bad Request: {"error": {"code": 400}}' },
        { ...rows[2]!, response: response('neutral'), status: null },
      ],
    });
    w.vertex.setState([...w.vertex.jobs.keys()][0]!, {
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      outputInfo: {
        bigqueryOutputDataset: 'bq://acme-prod.results',
        bigqueryOutputTable: 'predictions_2026_11_26T10_20_00_000Z',
      },
      completionStats: { successfulCount: '2', failedCount: '1' },
      endTime: '2026-11-26T10:20:00.000Z',
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      input: { bucket: BUCKET, name: NAME, uri: TABLE, requestCount: 3 },
      output: { uriPrefix: 'bq://acme-prod.results', directory: output },
      results: {
        rows: { succeeded: 2, failed: 1, missing: 0 },
        summaryUri: `${PREFIX}summary.json`,
        resultsUri: output,
        failedRowsUri: `${PREFIX}failed.jsonl`,
      },
      usage: { inputTokens: 20, outputTokens: 6 },
    });
    expect(w.reports.objects.get(`${PREFIX}failed.jsonl`)).toBe(
      `{"request":${JSON.stringify(request('two'))}}\n`,
    );
    const summary = JSON.parse(w.reports.objects.get(`${PREFIX}summary.json`) ?? '{}') as Record<
      string,
      unknown
    >;
    expect(summary).toMatchObject({
      input: { uri: TABLE, requestCount: 3 },
      predictionFiles: [output],
      topErrors: [{ error: 'Bad Request: {"error": {"code": 400}}', count: 1 }],
    });
  });

  it('a Claude table (custom_id beside request) runs in the Claude region, writing to the job prefix', async () => {
    const w = world();
    const lines = ANTHROPIC_LINES.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { custom_id: string; request: unknown });
    w.bigquery.put(TABLE, {
      columns: [
        { name: 'custom_id', type: 'STRING', mode: 'NULLABLE' },
        { name: 'request', type: 'STRING', mode: 'NULLABLE' },
      ],
      rows: lines.map((l) => ({ custom_id: l.custom_id, request: JSON.stringify(l.request) })),
      location: 'us-east5',
    });
    w.bigquery.addDataset('acme-prod.prompts', 'us-east5');
    await upload(w, { source: TABLE, model: 'claude-3-5-haiku' });
    expect(w.vertex.creates[0]).toMatchObject({
      location: 'us-east5',
      request: {
        model: 'publishers/anthropic/models/claude-3-5-haiku',
        inputConfig: { bigquerySource: { inputUri: TABLE } },
        outputConfig: { gcsDestination: { outputUriPrefix: PREFIX } },
      },
    });
  });

  it.each<[string, Partial<FakeTable> | undefined, string, RegExp]>([
    [
      'a missing table',
      undefined,
      'INPUT.SOURCE_NOT_FOUND',
      /"source" bq:\/\/acme-prod\.prompts\.reviews does not exist/,
    ],
    ['a view', { kind: 'VIEW' }, 'INPUT.INVALID_TABLE', /is a VIEW, not a table/],
    [
      'no request column',
      { columns: [{ name: 'prompt', type: 'STRING', mode: 'NULLABLE' }] },
      'INPUT.INVALID_TABLE',
      /has no "request" column/,
    ],
    [
      'a RECORD request',
      { columns: [{ name: 'request', type: 'RECORD', mode: 'NULLABLE' }] },
      'INPUT.INVALID_TABLE',
      /"request" column of type RECORD: it must be JSON or STRING/,
    ],
    [
      'a response column',
      {
        columns: [
          { name: 'request', type: 'JSON', mode: 'NULLABLE' },
          { name: 'response', type: 'JSON', mode: 'NULLABLE' },
        ],
      },
      'INPUT.INVALID_TABLE',
      /has a "response" column: Vertex AI writes "response" and "status"/,
    ],
    [
      'another region',
      { location: 'US' },
      'INPUT.INVALID_LOCATION',
      /is in US, but the job runs in us-central1/,
    ],
    [
      'a DATETIME column',
      {
        columns: [
          { name: 'request', type: 'JSON', mode: 'NULLABLE' },
          { name: 'asked_at', type: 'DATETIME', mode: 'NULLABLE' },
        ],
      },
      'INPUT.INVALID_TABLE',
      /has a column "asked_at" of type DATETIME: Vertex AI batch prediction reads tables without array, struct/,
    ],
    [
      'an array column',
      {
        columns: [
          { name: 'request', type: 'JSON', mode: 'NULLABLE' },
          { name: 'tags', type: 'STRING', mode: 'REPEATED' },
        ],
      },
      'INPUT.INVALID_TABLE',
      /has a column "tags" of type ARRAY/,
    ],
  ])('%s is refused before submit', async (_, table, code, message) => {
    const w = world();
    if (table) w.bigquery.put(TABLE, { ...geminiTable(['one']), ...table });
    await upload(w, { source: TABLE });
    expect(rejection(w).error).toMatchObject({ code, message: expect.stringMatching(message) });
  });

  it('Claude without custom_id is refused', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one'], { location: 'us-east5' }));
    await upload(w, { source: TABLE, model: 'claude-3-5-haiku' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.INVALID_TABLE',
      message: expect.stringMatching(/has no "custom_id" column/),
    });
  });

  it('a destination dataset elsewhere, or missing, is refused', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one']));
    w.bigquery.addDataset('acme-prod.results', 'EU');
    await upload(w, { source: TABLE, destination: 'bq://acme-prod.results' });
    expect(rejection(w).error).toMatchObject({
      code: 'INPUT.INVALID_LOCATION',
      message: expect.stringMatching(
        /"destination" dataset acme-prod\.results is in EU, but the job runs in us-central1/,
      ),
    });
    const w2 = world({ ALLOWED_BIGQUERY_DATASETS: '*' });
    w2.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w2, {
      source: 'gs://acme-batch-input/in/a.jsonl',
      destination: 'bq://acme-prod.nowhere',
    });
    expect(rejection(w2).error).toMatchObject({
      code: 'INPUT.SOURCE_NOT_FOUND',
      message: expect.stringMatching(/"destination" dataset acme-prod\.nowhere does not exist/),
    });
  });

  it('every row is checked by the line rules, and errors name the row', async () => {
    const w = world();
    const table = geminiTable(['one', 'two', 'three', 'four']);
    table.rows[1]!.request =
      '{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "temperature": 1}';
    table.rows[3]!.request = 'not json';
    w.bigquery.put(TABLE, table);
    await upload(w, { source: TABLE });
    const event = rejection(w);
    expect(event.error?.message).toMatch(/^bq:\/\/acme-prod\.prompts\.reviews row 2: /);
    const report = JSON.parse(w.reports.objects.get(`${PREFIX}rejection.json`) ?? '{}') as {
      errors: { line: number; message: string }[];
    };
    expect(report.errors.map((e) => e.line)).toEqual([2, 4]);
    expect(report.errors[1]?.message).toMatch(/not valid JSON/);
  });

  it('a table changed after the job read it: its output is not matched to rows it never read; the event still goes out, once', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one', 'two']));
    await upload(w, { source: TABLE });
    const name = [...w.vertex.jobs.keys()][0]!;
    // Vertex read the two rows; then someone appends a third before the job ends.
    w.bigquery.put(TABLE, geminiTable(['one', 'two', 'three']));
    const dir = `${PREFIX}prediction-model-x`;
    w.reader.put(
      OUT,
      `results/${JOB_ID}/prediction-model-x/predictions.jsonl`,
      nextGeneration(),
      ['one', 'two']
        .map((t) =>
          JSON.stringify({
            status: '',
            request: request(t),
            response: { candidates: [{ content: { parts: [{ text: 'ok' }] } }] },
          }),
        )
        .join('\n') + '\n',
    );
    w.vertex.setState(name, {
      state: 'JOB_STATE_SUCCEEDED',
      outputInfo: { gcsOutputDirectory: dir },
      completionStats: { successfulCount: '2' },
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      stats: { successfulCount: 2 },
      results: null,
    });
    expect(w.reports.objects.has(`${PREFIX}results.jsonl`)).toBe(false);
    expect(w.log.lines.find((l) => l.event === 'digest.failed')).toMatchObject({
      error: expect.objectContaining({
        message: expect.stringMatching(
          /reviews changed after the job read it: its output cannot be matched/,
        ),
      }),
    });
  });

  it('a table only touched after the job read it (same rows, a new lastModifiedTime) is digested as usual', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one', 'two']));
    await upload(w, { source: TABLE });
    const name = [...w.vertex.jobs.keys()][0]!;
    w.bigquery.put(TABLE, geminiTable(['one', 'two'])); // the same rows, written again
    w.reader.put(
      OUT,
      `results/${JOB_ID}/prediction-model-x/predictions.jsonl`,
      nextGeneration(),
      ['two', 'one']
        .map((t) =>
          JSON.stringify({
            status: '',
            request: request(t),
            response: { candidates: [{ content: { parts: [{ text: `ok ${t}` }] } }] },
          }),
        )
        .join('\n') + '\n',
    );
    w.vertex.setState(name, {
      state: 'JOB_STATE_SUCCEEDED',
      outputInfo: { gcsOutputDirectory: `${PREFIX}prediction-model-x` },
      completionStats: { successfulCount: '2' },
    });
    await pollBatchJobs(w.pollDeps);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event.results?.rows).toEqual({ succeeded: 2, failed: 0, missing: 0 });
    const rows = (w.reports.objects.get(`${PREFIX}results.jsonl`) ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; response: unknown });
    expect(rows.map((r) => [r.line, JSON.stringify(r.response)])).toEqual([
      [1, expect.stringContaining('ok one')],
      [2, expect.stringContaining('ok two')],
    ]);
  });

  it('a queued manifest whose table changed is validated again before its create', async () => {
    const w = world({ ANTHROPIC_MAX_CONCURRENT_JOBS: '1' });
    // Another Claude job holds the only slot: the manifest waits.
    w.reader.put(BUCKET, 'inputs/first.jsonl', GEN, ANTHROPIC_LINES);
    await handleStorageEvent(
      finalizeEvent({ name: 'inputs/first.jsonl', metadata: { model: 'claude-3-5-haiku' } }),
      w.submitDeps,
    );
    const lines = ANTHROPIC_LINES.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { custom_id: string; request: unknown });
    const claude: FakeTable = {
      columns: [
        { name: 'custom_id', type: 'STRING', mode: 'NULLABLE' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
      ],
      rows: lines.map((l) => ({ custom_id: l.custom_id, request: JSON.stringify(l.request) })),
      location: 'us-east5',
    };
    w.bigquery.put(TABLE, claude);
    w.bigquery.addDataset('acme-prod.prompts', 'us-east5');
    expect(await upload(w, { source: TABLE, model: 'claude-3-5-haiku' })).toMatchObject({
      outcome: 'waiting',
    });
    // The table changes while the manifest waits: a row is now broken.
    w.bigquery.put(TABLE, {
      ...claude,
      rows: [...claude.rows, { custom_id: null, request: '{}' }],
    });
    const first = [...w.vertex.jobs.keys()][0]!;
    w.vertex.setState(first, { state: 'JOB_STATE_SUCCEEDED', outputInfo: {} });
    w.clock.advance(600_000);
    await pollBatchJobs(w.pollDeps);
    const events = w.publisher.events.filter((e) => e.input.name === NAME);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      eventType: 'input.rejected',
      error: { message: expect.stringMatching(/row 3: has no "custom_id" value/) },
    });
    expect(w.vertex.creates).toHaveLength(1);
  });
});
