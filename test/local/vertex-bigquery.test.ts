/**
 * The Vertex emulator's jobs over BigQuery, over real HTTP on both sides: a table as the source,
 * a dataset or a table as the destination, in every combination with Cloud Storage; the create
 * requests it refuses; jobs that fail on the table (missing, elsewhere, of the wrong shape, or
 * BigQuery failing); and JSONL input read from several files in order.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startBigQueryEmulator,
  type BigQueryEmulator,
  type BigQueryEmulatorOptions,
  type TableRef,
} from '../../local/bigquery/server.js';
import { outputTableName } from '../../local/vertex/io.js';
import { bigqueryUrl, OptionsError } from '../../local/vertex/options.js';
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
  INSTRUCTION,
  jobBody,
  jobsPath,
  LOCATION,
  MANUAL,
  PROJECT,
  start,
  type Json,
} from './vertex-harness.js';

const bigqueries: BigQueryEmulator[] = [];

afterEach(async () => {
  await closeEmulators();
  await Promise.all(bigqueries.splice(0).map((b) => b.close()));
});

/** A BigQuery emulator with the datasets `reviews` (input) and `out`, both in `location`. */
async function startBigQuery(
  location = LOCATION,
  options: BigQueryEmulatorOptions = {},
): Promise<BigQueryEmulator> {
  const bq = await startBigQueryEmulator(options);
  bigqueries.push(bq);
  bq.store.createDataset(PROJECT, 'reviews', location);
  bq.store.createDataset(PROJECT, 'out', location);
  return bq;
}

/** Both emulators, the Vertex one pointed at the BigQuery one. */
async function startBoth(
  options: { location?: string; bigquery?: BigQueryEmulatorOptions } = {},
): Promise<{
  bq: BigQueryEmulator;
  emu: VertexEmulator;
  blobs: Awaited<ReturnType<typeof start>>['blobs'];
}> {
  const bq = await startBigQuery(options.location, options.bigquery);
  const { emu, blobs } = await start({ timing: FAST, bigqueryHost: bq.host });
  return { bq, emu, blobs };
}

const ref = (table: string, dataset = 'reviews'): TableRef => ({
  project: PROJECT,
  dataset,
  table,
});
const bqUri = (r: TableRef): string => `bq://${r.project}.${r.dataset}.${r.table}`;

const geminiRequest = (review: string): Json => ({
  contents: [{ role: 'user', parts: [{ text: `${INSTRUCTION}${review}` }] }],
});
const claudeRequest = (content: string): Json => ({
  messages: [{ role: 'user', content: `${INSTRUCTION}${content}` }],
  anthropic_version: 'vertex-2023-10-16',
  max_tokens: 8,
});

const bigqueryInput = (r: TableRef): Json => ({
  inputConfig: { instancesFormat: 'bigquery', bigquerySource: { inputUri: bqUri(r) } },
});
const bigqueryOutput = (uri: string): Json => ({
  outputConfig: { predictionsFormat: 'bigquery', bigqueryDestination: { outputUri: uri } },
});

/** The output table's columns, as `tables.get` answers them. */
async function columnsOf(bq: BigQueryEmulator, r: TableRef): Promise<Json[]> {
  const res = await fetch(
    `${bq.url}/bigquery/v2/projects/${r.project}/datasets/${r.dataset}/tables/${r.table}`,
  );
  expect(res.status).toBe(200);
  const table = (await res.json()) as { schema: { fields: Json[] }; location: string };
  return table.schema.fields;
}

/** The output table a finished job names in its outputInfo. */
function outputTable(job: VertexJobJson): TableRef {
  const info = job.outputInfo ?? {};
  const [project = '', dataset = ''] = (info.bigqueryOutputDataset ?? '').slice(5).split('.');
  return { project, dataset, table: info.bigqueryOutputTable ?? '' };
}

const parse = (text: unknown): unknown => (typeof text === 'string' ? JSON.parse(text) : text);

describe('vertex emulator over BigQuery', () => {
  it('reads a table and writes predictions_<createTime> with its columns, response, status and processed_time', async () => {
    const { bq, emu } = await startBoth();
    const input = ref('gemini_input');
    bq.store.createTable(input, [
      { name: 'id', type: 'INTEGER' },
      { name: 'request', type: 'JSON' },
      { name: 'note', type: 'STRING' },
    ]);
    bq.store.insertRows(input, [
      { id: 1, request: geminiRequest('Arrived early and works perfectly.'), note: 'a' },
      { id: 2, request: geminiRequest('The blender broke after two days.'), note: 'b' },
      { id: 3, request: geminiRequest('[invalid] whatever'), note: null },
      { id: 4, request: geminiRequest('[transient] Great value.'), note: 'd' },
    ]);
    const job = await create(emu, {
      ...bigqueryInput(input),
      ...bigqueryOutput(`bq://${PROJECT}.out`),
    });
    const done = await finished(emu, job.name, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '2', failedCount: '2' });
    const table = outputTableName(job.createTime);
    expect(table).toMatch(/^predictions_\d{4}_\d{2}_\d{2}T\d{2}_\d{2}_\d{2}_\d{3}Z_\d{3}$/);
    expect(table).toBe(
      `predictions_${job.createTime.slice(0, 23).replace(/[-:.]/g, '_')}Z_${job.createTime.slice(23, 26)}`,
    );
    expect(done.outputInfo).toEqual({
      bigqueryOutputDataset: `bq://${PROJECT}.out`,
      bigqueryOutputTable: table,
    });

    const output = ref(table, 'out');
    expect(await columnsOf(bq, output)).toEqual([
      { name: 'id', type: 'INTEGER' },
      { name: 'request', type: 'JSON' },
      { name: 'note', type: 'STRING' },
      { name: 'response', type: 'JSON' },
      { name: 'status', type: 'STRING' },
      { name: 'processed_time', type: 'TIMESTAMP' },
    ]);
    const rows = bq.store.rows(output);
    expect(rows).toHaveLength(4);
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get('3')).toMatchObject({ note: null, response: null });
    expect(byId.get('3')?.status).toMatch(
      /^Bad Request: \{"error": \{"code": 400, "message": ".+", "status": "INVALID_ARGUMENT"\}\}$/,
    );
    expect(byId.get('4')?.status).toMatch(/^Too Many Requests: .*RESOURCE_EXHAUSTED/);
    for (const [id, answer] of [
      ['1', 'positive'],
      ['2', 'negative'],
    ]) {
      const row = byId.get(id);
      expect(row?.status).toBe('');
      expect(parse(row?.request)).toEqual(
        parse(bq.store.rows(input).find((r) => r.id === id)?.request),
      );
      expect(answerOf({ response: parse(row?.response) })).toBe(answer);
      expect(row?.processed_time).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/);
    }
    expect(byId.get('1')?.note).toBe('a');
  });

  it('writes Claude rows into the table the URI names, without processed_time', async () => {
    const { bq, emu } = await startBoth({ location: 'us-east5' });
    const input = ref('claude_input');
    bq.store.createTable(input, [
      { name: 'custom_id', type: 'STRING' },
      { name: 'request', type: 'STRING' },
    ]);
    bq.store.insertRows(input, [
      { custom_id: 'r-1', request: JSON.stringify(claudeRequest('Lovely, would buy again.')) },
      { custom_id: 'r-2', request: '{"messages": ' },
    ]);
    const job = await create(
      emu,
      { model: CLAUDE, ...bigqueryInput(input), ...bigqueryOutput(`bq://${PROJECT}.out.results`) },
      'us-east5',
    );
    const done = await finished(emu, job.name, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.outputInfo).toEqual({
      bigqueryOutputDataset: `bq://${PROJECT}.out`,
      bigqueryOutputTable: 'results',
    });
    const output = ref('results', 'out');
    expect((await columnsOf(bq, output)).map((c) => `${String(c.name)} ${String(c.type)}`)).toEqual(
      ['custom_id STRING', 'request STRING', 'response JSON', 'status STRING'],
    );
    const rows = new Map(bq.store.rows(output).map((r) => [r.custom_id, r]));
    expect(rows.get('r-1')?.status).toBe('');
    expect(parse(rows.get('r-1')?.response)).toMatchObject({
      type: 'message',
      content: [{ type: 'text', text: 'positive' }],
    });
    expect(rows.get('r-2')).toMatchObject({ request: '{"messages": ', response: null });
    expect(parse(rows.get('r-2')?.status)).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error' },
    });
  });

  it('reads a table to JSONL files: each line carries the parsed request, the answer and custom_id', async () => {
    const { bq, emu, blobs } = await startBoth();
    const input = ref('mixed');
    bq.store.createTable(input, [
      { name: 'custom_id', type: 'STRING' },
      { name: 'request', type: 'JSON' },
      { name: 'extra', type: 'TIMESTAMP' },
    ]);
    bq.store.insertRows(input, [
      { custom_id: 'a', request: geminiRequest('Works great.'), extra: '2024-05-01T10:00:00Z' },
      { custom_id: 'b', request: null },
    ]);
    const gemini = await create(emu, { displayName: 'gemini-bq', ...bigqueryInput(input) });
    const geminiDone = await finished(emu, gemini.name, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    const directory = `gs://acme-out/results/gemini-bq/prediction-model-${gemini.createTime}`;
    expect(geminiDone.outputInfo).toEqual({ gcsOutputDirectory: directory });
    const lines = blobs.outputLines(directory);
    const ok = lines.find((l) => l.status === '');
    expect(Object.keys(ok ?? {})).toEqual(['status', 'processed_time', 'request', 'response']);
    expect(ok?.request).toEqual(geminiRequest('Works great.'));
    expect(answerOf(ok ?? {})).toBe('positive');
    const bad = lines.find((l) => l.status !== '');
    expect(bad).not.toHaveProperty('request');
    expect(bad).not.toHaveProperty('response');

    // Claude jobs run in another location: the same rows from a table there.
    const claudeBq = await startBigQuery('us-east5');
    const claudeVertex = await start({ timing: FAST, bigqueryHost: claudeBq.host }, blobs);
    claudeBq.store.createTable(ref('claude'), [
      { name: 'custom_id', type: 'STRING' },
      { name: 'request', type: 'JSON' },
    ]);
    claudeBq.store.insertRows(ref('claude'), [
      { custom_id: 'c-1', request: claudeRequest('Awful.') },
    ]);
    const claude = await create(
      claudeVertex.emu,
      { displayName: 'claude-bq', model: CLAUDE, ...bigqueryInput(ref('claude')) },
      'us-east5',
    );
    const claudeDone = await finished(claudeVertex.emu, claude.name, 'JOB_STATE_SUCCEEDED');
    const [line] = blobs.outputLines(claudeDone.outputInfo?.gcsOutputDirectory);
    expect(Object.keys(line ?? {})).toEqual(['custom_id', 'request', 'response', 'status']);
    expect(line).toMatchObject({ custom_id: 'c-1', request: claudeRequest('Awful.'), status: '' });
    expect(answerOf(line ?? {})).toBe('negative');
  });

  it('writes JSONL input to a table: request as JSON, a line that is not JSON as NULL', async () => {
    const { bq, emu, blobs } = await startBoth();
    blobs.put('gs://acme-in/reviews.jsonl', [geminiLine('Nice.'), '{oops']);
    const job = await create(emu, bigqueryOutput(`bq://${PROJECT}.out.from_files`));
    const done = await finished(emu, job.name, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.outputInfo).toEqual({
      bigqueryOutputDataset: `bq://${PROJECT}.out`,
      bigqueryOutputTable: 'from_files',
    });
    const output = ref('from_files', 'out');
    expect((await columnsOf(bq, output)).map((c) => c.name)).toEqual([
      'request',
      'response',
      'status',
      'processed_time',
    ]);
    const rows = bq.store.rows(output);
    const good = rows.find((r) => r.status === '');
    expect({ request: parse(good?.request) }).toEqual(parse(geminiLine('Nice.')));
    expect(answerOf({ response: parse(good?.response) })).toBe('positive');
    const broken = rows.find((r) => r.status !== '');
    expect(broken).toMatchObject({ request: null, response: null });
    expect(broken?.status).toContain('Invalid JSON payload received.');
    expect(blobs.writes).toEqual([]);
  });

  it('streams a large output in batches of 500 rows and reads a table page after page', async () => {
    const { bq, emu } = await startBoth({ bigquery: { maxPageBytes: 64 * 1024 } });
    const input = ref('large');
    bq.store.createTable(input, [
      { name: 'n', type: 'INTEGER' },
      { name: 'request', type: 'JSON' },
    ]);
    bq.store.insertRows(
      input,
      Array.from({ length: 1100 }, (_, n) => ({ n, request: geminiRequest(`Review ${n}: fine.`) })),
    );
    const job = await create(emu, {
      ...bigqueryInput(input),
      ...bigqueryOutput(`bq://${PROJECT}.out`),
    });
    const done = await finished(emu, job.name, 'JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '1100' });
    expect(bq.requests['tabledata.list']).toBeGreaterThan(1);
    expect(bq.requests['tabledata.insertAll']).toBe(3);
    const rows = bq.store.rows(outputTable(done));
    expect(rows.map((r) => Number(r.n)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 1100 }, (_, n) => n),
    );
    // Rows come out in an order of their own, as the service writes them.
    expect(rows.map((r) => Number(r.n))).not.toEqual(Array.from({ length: 1100 }, (_, n) => n));
  });

  it('reads every input URI, in the order given', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    const files = ['gs://acme-in/1.jsonl', 'gs://acme-in/2.jsonl', 'gs://acme-in/3.jsonl'];
    const ids = [['a', 'b'], ['c'], ['d', 'e', 'f']];
    files.forEach((uri, i) =>
      blobs.put(
        uri,
        (ids[i] ?? []).map((id) => claudeLine(id, `Review ${id}: good.`)),
      ),
    );
    const job = await create(
      emu,
      { model: CLAUDE, inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: files } } },
      'us-east5',
    );
    const done = await finished(emu, job.name, 'JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '6' });
    const jobId = job.name.slice(job.name.lastIndexOf('/') + 1);
    // A Claude answer's id derives from the row's index in the input: files are read in order.
    const messageId = (index: number): string =>
      `msg_vrtx_${createHash('sha256').update(`${jobId}:${index}`).digest('base64url').replace(/[-_]/g, '').slice(0, 24)}`;
    const lines = blobs.outputLines(done.outputInfo?.gcsOutputDirectory);
    const byId = Object.fromEntries(lines.map((l) => [l.custom_id, (l.response as Json).id]));
    expect(byId).toEqual(Object.fromEntries(ids.flat().map((id, index) => [id, messageId(index)])));

    const missing = await create(emu, {
      displayName: 'missing',
      inputConfig: {
        instancesFormat: 'jsonl',
        gcsSource: { uris: [files[0], 'gs://acme-in/gone.jsonl'] },
      },
    });
    const failed = await finished(emu, missing.name, 'JOB_STATE_FAILED');
    expect(failed.error).toEqual({
      code: 5,
      message: 'Input file not found: gs://acme-in/gone.jsonl.',
    });
  });

  describe('jobs that fail on BigQuery', () => {
    it('fails NOT_FOUND naming a missing input table or output dataset, with no output', async () => {
      const { bq, emu } = await startBoth();
      const job = await create(emu, {
        ...bigqueryInput(ref('missing')),
        ...bigqueryOutput(`bq://${PROJECT}.out`),
      });
      const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
      expect(done.error).toEqual({
        code: 5,
        message: `Failed to read the input table ${bqUri(ref('missing'))}: Not found: Table ${PROJECT}:reviews.missing`,
      });
      expect(done).not.toHaveProperty('outputInfo');
      expect(done).not.toHaveProperty('completionStats');

      bq.store.createTable(ref('present'), [{ name: 'request', type: 'JSON' }]);
      bq.store.insertRows(ref('present'), [{ request: geminiRequest('Fine.') }]);
      const other = await create(emu, {
        displayName: 'no-dataset',
        ...bigqueryInput(ref('present')),
        ...bigqueryOutput(`bq://${PROJECT}.nowhere`),
      });
      const otherDone = await finished(emu, other.name, 'JOB_STATE_FAILED');
      expect(otherDone.error?.code).toBe(5);
      expect(otherDone.error?.message).toContain(`Not found: Dataset ${PROJECT}:nowhere`);
    });

    it('fails when the table the URI names exists already: the service creates it', async () => {
      const { bq, emu, blobs } = await startBoth();
      bq.store.createTable(ref('taken', 'out'), [{ name: 'x', type: 'STRING' }]);
      blobs.put('gs://acme-in/reviews.jsonl', [geminiLine('Good.')]);
      const job = await create(emu, bigqueryOutput(`bq://${PROJECT}.out.taken`));
      const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
      expect(done.error).toEqual({
        code: 6,
        message: `Failed to create the output table bq://${PROJECT}.out.taken: Already Exists: Table ${PROJECT}:out.taken`,
      });
      expect(bq.store.rows(ref('taken', 'out'))).toEqual([]);
    });

    it('fails INVALID_ARGUMENT when a dataset is in another location than the job', async () => {
      const { bq, emu } = await startBoth({ location: 'US' });
      bq.store.createTable(ref('t'), [{ name: 'request', type: 'JSON' }]);
      bq.store.insertRows(ref('t'), [{ request: geminiRequest('Fine.') }]);
      const job = await create(emu, bigqueryInput(ref('t')));
      const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
      expect(done.error?.code).toBe(3);
      expect(done.error?.message).toContain(`${bqUri(ref('t'))} is in US, the job in ${LOCATION}`);

      bq.store.createDataset(PROJECT, 'here', LOCATION);
      bq.store.createTable(ref('t', 'here'), [{ name: 'request', type: 'JSON' }]);
      bq.store.insertRows(ref('t', 'here'), [{ request: geminiRequest('Fine.') }]);
      const out = await create(emu, {
        displayName: 'out-elsewhere',
        ...bigqueryInput(ref('t', 'here')),
        ...bigqueryOutput(`bq://${PROJECT}.out`),
      });
      const outDone = await finished(emu, out.name, 'JOB_STATE_FAILED');
      expect(outDone.error?.code).toBe(3);
      expect(outDone.error?.message).toContain(`bq://${PROJECT}.out is in US`);
    });

    it.each<[string, unknown[], boolean, RegExp]>([
      ['no request column', [{ name: 'prompt', type: 'JSON' }], false, /has no request column/],
      [
        'no custom_id column for Claude',
        [{ name: 'request', type: 'JSON' }],
        true,
        /has no custom_id column/,
      ],
      [
        'an INTEGER request column',
        [{ name: 'request', type: 'INTEGER' }],
        false,
        /JSON or STRING/,
      ],
      [
        'a reserved status column',
        [
          { name: 'request', type: 'JSON' },
          { name: 'Status', type: 'STRING' },
        ],
        false,
        /has a status column/,
      ],
      [
        'a REPEATED column',
        [
          { name: 'request', type: 'JSON' },
          { name: 'tags', type: 'STRING', mode: 'REPEATED' },
        ],
        false,
        /tags .* REPEATED STRING/,
      ],
      [
        'a RECORD column',
        [
          { name: 'request', type: 'JSON' },
          { name: 'meta', type: 'RECORD', fields: [{ name: 'a', type: 'STRING' }] },
        ],
        false,
        /meta .* RECORD/,
      ],
    ])(
      'fails INVALID_ARGUMENT for an input table with %s',
      async (_what, fields, claude, message) => {
        const location = claude ? 'us-east5' : LOCATION;
        const { bq, emu } = await startBoth({ location });
        bq.store.createTable(ref('shape'), fields);
        const job = await create(
          emu,
          { ...(claude ? { model: CLAUDE } : {}), ...bigqueryInput(ref('shape')) },
          location,
        );
        const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
        expect(done.error?.code).toBe(3);
        expect(done.error?.message).toMatch(message);
      },
    );

    it('fails INVALID_ARGUMENT for an empty table', async () => {
      const { bq, emu } = await startBoth();
      bq.store.createTable(ref('empty'), [{ name: 'request', type: 'JSON' }]);
      const job = await create(emu, bigqueryInput(ref('empty')));
      const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
      expect(done.error).toEqual({
        code: 3,
        message: `The input is empty: ${bqUri(ref('empty'))}.`,
      });
    });

    it.each<[string, number, number]>([
      ['tabledata.list', 403, 7],
      ['tables.get', 503, 13],
      ['tabledata.insertAll', 503, 13],
      ['tables.insert', 403, 7],
    ])('fails when BigQuery answers %s with %i', async (op, status, code) => {
      const { bq, emu } = await startBoth();
      bq.store.createTable(ref('t'), [{ name: 'request', type: 'JSON' }]);
      bq.store.insertRows(ref('t'), [{ request: geminiRequest('Fine.') }]);
      bq.inject({ op: op as 'tables.get', status: status as 403 });
      const job = await create(emu, {
        ...bigqueryInput(ref('t')),
        ...bigqueryOutput(`bq://${PROJECT}.out`),
      });
      const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
      expect(done.error?.code).toBe(code);
      expect(done.error?.message).toContain(`bq://${PROJECT}.`);
    });
  });

  describe('create requests', () => {
    const gcsInput = { instancesFormat: 'jsonl', gcsSource: { uris: ['gs://acme-in/a.jsonl'] } };
    const gcsOutput = {
      predictionsFormat: 'jsonl',
      gcsDestination: { outputUriPrefix: 'gs://acme-out/x' },
    };
    const bqSource = { inputUri: `bq://${PROJECT}.reviews.t` };
    const bqDestination = { outputUri: `bq://${PROJECT}.out` };

    it.each<[string, Json, string?]>([
      [
        'bigquery instances without bigquerySource',
        { inputConfig: { instancesFormat: 'bigquery', gcsSource: gcsInput.gcsSource } },
      ],
      [
        'jsonl instances from bigquerySource',
        { inputConfig: { instancesFormat: 'jsonl', bigquerySource: bqSource } },
      ],
      ['two sources', { inputConfig: { ...gcsInput, bigquerySource: bqSource } }],
      ['no source', { inputConfig: { instancesFormat: 'bigquery' } }],
      [
        'bigquery predictions to gcsDestination',
        { outputConfig: { ...gcsOutput, predictionsFormat: 'bigquery' } },
      ],
      [
        'jsonl predictions to bigqueryDestination',
        { outputConfig: { predictionsFormat: 'jsonl', bigqueryDestination: bqDestination } },
      ],
      ['two destinations', { outputConfig: { ...gcsOutput, bigqueryDestination: bqDestination } }],
      [
        'an input URI without a table',
        bigqueryInput({ project: PROJECT, dataset: 'reviews', table: '' }),
      ],
      [
        'a gs:// input URI',
        {
          inputConfig: {
            instancesFormat: 'bigquery',
            bigquerySource: { inputUri: 'gs://acme-in/a.jsonl' },
          },
        },
      ],
      [
        'an upper-case project',
        {
          inputConfig: {
            instancesFormat: 'bigquery',
            bigquerySource: { inputUri: 'bq://Demo-Project.reviews.t' },
          },
        },
      ],
      ['a dataset with a dash', bigqueryOutput(`bq://${PROJECT}.my-dataset`)],
      ['a project-only destination', bigqueryOutput(`bq://${PROJECT}`)],
      ['four parts', bigqueryOutput(`bq://${PROJECT}.out.t.x`)],
      ['a 2,001-character URI', bigqueryOutput(`bq://${PROJECT}.out.${'t'.repeat(2001)}`)],
      [
        'an unknown field in bigquerySource',
        { inputConfig: { instancesFormat: 'bigquery', bigquerySource: { ...bqSource, uri: 'x' } } },
      ],
      [
        'csv predictions',
        { outputConfig: { predictionsFormat: 'csv', bigqueryDestination: bqDestination } },
      ],
      ['BigQuery in the global location', bigqueryOutput(`bq://${PROJECT}.out`), 'global'],
    ])(
      'refuses %s (400 INVALID_ARGUMENT, no job)',
      async (_what, overrides, location = LOCATION) => {
        const bq = await startBigQuery();
        const { emu } = await start({ timing: MANUAL, bigqueryHost: bq.host });
        const res = await call(emu, 'POST', jobsPath(location), jobBody(overrides));
        expect(res.status, JSON.stringify(res.body)).toBe(400);
        expect((res.body.error as Json).status).toBe('INVALID_ARGUMENT');
        expect(emu.jobs()).toEqual([]);
      },
    );

    it('accepts every combination of the two sources and destinations', async () => {
      const bq = await startBigQuery();
      const { emu } = await start({ timing: MANUAL, bigqueryHost: bq.host });
      for (const inputConfig of [
        gcsInput,
        { instancesFormat: 'bigquery', bigquerySource: bqSource },
      ]) {
        for (const outputConfig of [
          gcsOutput,
          { predictionsFormat: 'bigquery', bigqueryDestination: bqDestination },
          {
            predictionsFormat: 'bigquery',
            bigqueryDestination: { outputUri: `bq://${PROJECT}.out.t-1` },
          },
        ]) {
          const job = await create(emu, { inputConfig, outputConfig });
          // The request is echoed as sent.
          expect(job.inputConfig).toEqual(inputConfig);
          expect(job.outputConfig).toEqual(outputConfig);
        }
      }
      expect(emu.jobs()).toHaveLength(6);
    });

    it('refuses BigQuery jobs with FAILED_PRECONDITION when it has no BigQuery', async () => {
      const { emu } = await start({ timing: MANUAL });
      const res = await call(
        emu,
        'POST',
        jobsPath(),
        jobBody(bigqueryOutput(`bq://${PROJECT}.out`)),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ status: 'FAILED_PRECONDITION' });
      expect(emu.jobs()).toEqual([]);
    });
  });

  it('takes bigqueryHost as host:port or http://host:port, else BIGQUERY_EMULATOR_HOST', () => {
    expect(bigqueryUrl('127.0.0.1:9050', {})).toBe('http://127.0.0.1:9050');
    expect(bigqueryUrl('http://localhost:9050/', {})).toBe('http://localhost:9050');
    expect(bigqueryUrl(undefined, { BIGQUERY_EMULATOR_HOST: ' 127.0.0.1:1 ' })).toBe(
      'http://127.0.0.1:1',
    );
    expect(bigqueryUrl(undefined, { BIGQUERY_EMULATOR_HOST: '' })).toBeUndefined();
    expect(bigqueryUrl(undefined, {})).toBeUndefined();
    expect(() => bigqueryUrl('https://x:1', {})).toThrow(OptionsError);
    expect(() => bigqueryUrl('', {})).toThrow(/bigqueryHost/);
    expect(() => bigqueryUrl(undefined, { BIGQUERY_EMULATOR_HOST: 'nohost' })).toThrow(
      /BIGQUERY_EMULATOR_HOST/,
    );
  });
});
