/**
 * The local Vertex AI batch prediction emulator, over real HTTP, and its sentiment model.
 * Jobs are driven either by timers of 0 ms (awaiting `whenIdle`) or by manual timing (`Infinity`)
 * and `advance()`, so no test sleeps or depends on wall-clock time. The realism of its outputs
 * (order, files, usage, failed rows) is tested in `vertex-output.test.ts`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { VertexFault, VertexJobJson } from '../../local/vertex/server.js';
import { analyzeSentiment, scoredPart } from '../../local/vertex/sentiment.js';
import {
  answerOf,
  call,
  CLAUDE,
  claudeLine,
  closeEmulators,
  create,
  FAST,
  finished,
  GEMINI,
  geminiLine,
  get,
  INSTRUCTION,
  JOB_NAME,
  jobBody,
  jobsPath,
  LOCATION,
  MANUAL,
  NUMBER,
  PROJECT,
  RFC3339_MICROS,
  start,
  type Answer,
  type Json,
} from './vertex-harness.js';

afterEach(closeEmulators);

function googleError(res: Answer): { code: number; message: string; status: string } {
  const error = res.body.error as { code: number; message: string; status: string };
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(error.code).toBe(res.status);
  expect(typeof error.message).toBe('string');
  return error;
}

function listNames(res: Answer): string[] {
  const jobs = (res.body.batchPredictionJobs ?? []) as VertexJobJson[];
  return jobs.map((j) => j.displayName);
}

describe('sentiment model', () => {
  it.each([
    ['Arrived early and works perfectly.', 'positive'],
    ['The blender broke after two days.', 'negative'],
    ['It is a box.', 'neutral'],
    ['I am not happy with this.', 'negative'],
    ['No problems at all, would recommend!', 'positive'],
    ['It does not work.', 'negative'],
    ['Not good.', 'negative'],
    ['', 'neutral'],
  ] as const)('classifies %j as %s', (review, expected) => {
    expect(analyzeSentiment(review).label).toBe(expected);
    expect(analyzeSentiment(`${INSTRUCTION}${review}`).label).toBe(expected);
  });

  it('scores only the text after the last ": " so the instruction words do not count', () => {
    const prompt = 'Answer positive or negative, and be positive about it: The box arrived.';
    expect(scoredPart(prompt)).toBe('The box arrived.');
    expect(analyzeSentiment(prompt).label).toBe('neutral');
    expect(analyzeSentiment(prompt).score).toBe(0);
    // Without a separator the whole text is scored.
    expect(analyzeSentiment('Answer positive or negative, and be positive about it').label).toBe(
      'positive',
    );
    expect(scoredPart('Rate it:\nterrible')).toBe('terrible');
    expect(analyzeSentiment('Note: ok. Verdict: awful')).toMatchObject({
      label: 'negative',
      score: -3,
      scoredText: 'awful',
    });
  });

  it('is deterministic and negation stops at the end of a sentence', () => {
    expect(analyzeSentiment('Not that. Great').score).toBe(3);
    expect(analyzeSentiment('Not really that great').score).toBe(-3);
    expect(analyzeSentiment('good good bad')).toEqual(analyzeSentiment('good good bad'));
  });
});

describe('vertex emulator', () => {
  it('answers readiness, unknown paths and exposes the host form', async () => {
    const { emu } = await start();
    expect(emu.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(emu.url).toBe(`http://${emu.host}`);
    const ready = await fetch(`${emu.url}/`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('Ok');
    const missing = await call(emu, 'GET', '/v1/projects/p/locations/l/somethingElse');
    expect(missing.status).toBe(404);
    expect(googleError(missing).status).toBe('NOT_FOUND');
  });

  it('creates a Gemini job: PENDING → RUNNING → SUCCEEDED with Vertex-shaped output', async () => {
    const { emu, blobs } = await start({ timing: MANUAL });
    blobs.put('gs://acme-in/reviews.jsonl', [
      geminiLine('Arrived early and works perfectly.'),
      geminiLine('The blender broke after two days.'),
      geminiLine('It is a box.'),
    ]);

    const created = await create(emu);
    expect(created.name).toMatch(JOB_NAME);
    expect(created.state).toBe('JOB_STATE_PENDING');
    expect(created.createTime).toMatch(RFC3339_MICROS);
    expect(created.updateTime).toBe(created.createTime);
    expect(created.labels).toEqual({ batch_courier: 'v1', job_id: 'reviews-1' });
    expect(created.displayName).toBe('reviews-1');
    expect(created.model).toBe(GEMINI);
    for (const field of ['startTime', 'endTime', 'completionStats', 'outputInfo', 'error']) {
      expect(created).not.toHaveProperty(field);
    }
    expect(await get(emu, created.name)).toEqual(created);

    await emu.advance(created.name);
    const started = await get(emu, created.name);
    expect(started.state).toBe('JOB_STATE_RUNNING');
    expect(started.startTime).toMatch(RFC3339_MICROS);
    expect(started.updateTime).toBe(started.startTime);
    expect(started).not.toHaveProperty('endTime');

    await emu.advance(created.name);
    const done = await get(emu, created.name);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '3' });
    expect(done.endTime).toMatch(RFC3339_MICROS);
    expect(done.updateTime).toBe(done.endTime);
    expect(done).not.toHaveProperty('error');
    const directory = `gs://acme-out/results/reviews-1/prediction-model-${created.createTime}`;
    expect(done.outputInfo).toEqual({ gcsOutputDirectory: directory });

    expect(blobs.files(directory)).toEqual(['predictions.jsonl']);
    const lines = blobs.lines(`${directory}/predictions.jsonl`);
    expect(lines).toHaveLength(3);
    const promptOf = (row: Json | undefined): unknown =>
      (row?.request as { contents: { parts: { text: string }[] }[] }).contents[0]?.parts[0]?.text;
    const first = lines.find(
      (l) => promptOf(l) === `${INSTRUCTION}Arrived early and works perfectly.`,
    );
    expect(Object.keys(first ?? {})).toEqual(['status', 'processed_time', 'request', 'response']);
    expect(first).toEqual({
      status: '',
      processed_time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T[\d:.]+\+00:00$/) as unknown,
      request: {
        contents: [
          {
            role: 'user',
            parts: [{ text: `${INSTRUCTION}Arrived early and works perfectly.` }],
          },
        ],
      },
      response: {
        candidates: [
          {
            content: { role: 'model', parts: [{ text: 'positive' }] },
            finishReason: 'STOP',
            avgLogprobs: expect.any(Number) as unknown,
          },
        ],
        usageMetadata: expect.objectContaining({
          promptTokenCount: expect.any(Number) as unknown,
          candidatesTokenCount: 1,
          totalTokenCount: expect.any(Number) as unknown,
        }) as unknown,
        modelVersion: 'gemini-2.5-flash',
      },
    });
    const answers = Object.fromEntries(lines.map((l) => [promptOf(l), answerOf(l)]));
    expect(answers).toEqual({
      [`${INSTRUCTION}Arrived early and works perfectly.`]: 'positive',
      [`${INSTRUCTION}The blender broke after two days.`]: 'negative',
      [`${INSTRUCTION}It is a box.`]: 'neutral',
    });
  });

  it('runs jobs to the end on its own timers and reports idleness', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    blobs.put('gs://acme-in/reviews.jsonl', [geminiLine('Great.')]);
    const job = await create(emu);
    const done = await finished(emu, job.name, 'JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '1' });
    expect(done.startTime).toMatch(RFC3339_MICROS);
    await expect(emu.whenIdle()).resolves.toBeUndefined();
  });

  it('reads every input URI and puts exactly one slash before the output folder', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    blobs.put('gs://acme-in/a.jsonl', [geminiLine('good')]);
    blobs.objects.set('gs://acme-in/b.jsonl', Buffer.from(`${geminiLine('bad')}\r\n`));
    const job = await create(emu, {
      inputConfig: {
        instancesFormat: 'jsonl',
        gcsSource: { uris: ['gs://acme-in/a.jsonl', 'gs://acme-in/b.jsonl'] },
      },
      outputConfig: {
        predictionsFormat: 'jsonl',
        gcsDestination: { outputUriPrefix: 'gs://acme-out/x' },
      },
    });
    const done = await finished(emu, job.name, 'JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '2' });
    expect(done.outputInfo?.gcsOutputDirectory).toBe(
      `gs://acme-out/x/prediction-model-${job.createTime}`,
    );
    const other = await create(emu, {
      displayName: 'other',
      outputConfig: {
        predictionsFormat: 'jsonl',
        gcsDestination: { outputUriPrefix: 'gs://acme-out/y//' },
      },
      inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: ['gs://acme-in/a.jsonl'] } },
    });
    const otherDone = await finished(emu, other.name, 'JOB_STATE_SUCCEEDED');
    expect(otherDone.outputInfo?.gcsOutputDirectory).toBe(
      `gs://acme-out/y/prediction-model-${other.createTime}`,
    );
  });

  it('answers Claude jobs in the Anthropic output shape with custom_id', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    blobs.put('gs://acme-in/reviews.jsonl', [
      claudeLine('review-0007', `${INSTRUCTION}Arrived early and works perfectly.`),
      claudeLine('review-0008', [
        { type: 'text', text: INSTRUCTION },
        { type: 'text', text: 'Terrible, it broke.' },
      ]),
    ]);
    const job = await create(emu, { model: CLAUDE }, 'us-east5');
    expect(job.name).toMatch(
      /^projects\/123456789012\/locations\/us-east5\/batchPredictionJobs\/\d{19}$/,
    );
    const done = await finished(emu, job.name, 'JOB_STATE_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '2' });
    const lines = blobs.lines(`${done.outputInfo?.gcsOutputDirectory}/predictions.jsonl`);
    const byId = new Map(lines.map((l) => [l.custom_id, l]));
    expect([...byId.keys()].sort()).toEqual(['review-0007', 'review-0008']);
    expect(Object.keys(byId.get('review-0007') ?? {})).toEqual([
      'custom_id',
      'request',
      'response',
      'status',
    ]);
    expect(byId.get('review-0007')).toEqual({
      custom_id: 'review-0007',
      request: {
        messages: [{ role: 'user', content: `${INSTRUCTION}Arrived early and works perfectly.` }],
        anthropic_version: 'vertex-2023-10-16',
        max_tokens: 8,
      },
      response: {
        id: expect.stringMatching(/^msg_vrtx_\w+$/) as unknown,
        type: 'message',
        role: 'assistant',
        model: 'claude-3-5-haiku',
        content: [{ type: 'text', text: 'positive' }],
        stop_reason: 'end_turn',
        usage: expect.objectContaining({
          input_tokens: expect.any(Number) as unknown,
          output_tokens: 1,
        }) as unknown,
      },
      status: '',
    });
    expect(byId.get('review-0008')).toMatchObject({
      custom_id: 'review-0008',
      response: { content: [{ type: 'text', text: 'negative' }] },
      status: '',
    });
  });

  it('fails the bad lines of a file and ends PARTIALLY_SUCCEEDED with string counts', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    blobs.put('gs://acme-in/reviews.jsonl', [
      geminiLine('Love it.'),
      '',
      '{not json',
      '{"foo": 1}',
      '{"request": {"contents": []}}',
      geminiLine('Hate it.'),
    ]);
    const job = await create(emu);
    const done = await finished(emu, job.name, 'JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.completionStats).toEqual({ successfulCount: '2', failedCount: '4' });
    expect(done).not.toHaveProperty('error');
    const lines = blobs.lines(`${done.outputInfo?.gcsOutputDirectory}/predictions.jsonl`);
    expect(lines).toHaveLength(6);
    expect(
      lines
        .filter((l) => l.status === '')
        .map(answerOf)
        .sort(),
    ).toEqual(['negative', 'positive']);
    const failed = lines.filter((l) => l.status !== '');
    for (const row of failed) {
      expect(row.status).toMatch(
        /^Bad Request: \{"error": \{"code": 400, "message": ".+", "status": "INVALID_ARGUMENT"\}\}$/,
      );
      expect(row).not.toHaveProperty('response');
    }
    // Lines that are not JSON, or have no request object, echo no request.
    expect(failed.filter((l) => !('request' in l))).toHaveLength(3);
    expect(failed.filter((l) => 'request' in l).map((l) => l.request)).toEqual([{ contents: [] }]);
  });

  it('ends FAILED with INVALID_ARGUMENT when every line fails', async () => {
    const { emu, blobs } = await start({ timing: FAST });
    blobs.put('gs://acme-in/reviews.jsonl', ['[]', '{"request": "text"}']);
    const job = await create(emu, { model: CLAUDE }, 'us-east5');
    const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
    expect(done.error?.code).toBe(3);
    expect(done.completionStats).toEqual({ failedCount: '2' });
  });

  it('ends FAILED with NOT_FOUND when the input cannot be read', async () => {
    const { emu } = await start({ timing: FAST });
    const job = await create(emu);
    const done = await finished(emu, job.name, 'JOB_STATE_FAILED');
    expect(done.error).toEqual({
      code: 5,
      message: expect.stringContaining('gs://acme-in/reviews.jsonl') as unknown,
    });
    expect(done).not.toHaveProperty('completionStats');
    expect(done).not.toHaveProperty('outputInfo');
    expect(done.endTime).toMatch(RFC3339_MICROS);
  });

  it('gets a job by project id or number, and 404s elsewhere', async () => {
    const { emu } = await start({ timing: MANUAL });
    const job = await create(emu);
    const id = job.name.split('/').at(-1) ?? '';
    expect(
      (await get(emu, `projects/${PROJECT}/locations/${LOCATION}/batchPredictionJobs/${id}`)).name,
    ).toBe(job.name);
    expect(
      (await get(emu, `projects/${NUMBER}/locations/${LOCATION}/batchPredictionJobs/${id}`)).name,
    ).toBe(job.name);

    for (const path of [
      `${jobsPath()}/1234567890123456789`,
      `${jobsPath('europe-west4')}/${id}`,
      `${jobsPath(LOCATION, 'someone-else')}/${id}`,
    ]) {
      const res = await call(emu, 'GET', path);
      expect(res.status).toBe(404);
      expect(googleError(res).status).toBe('NOT_FOUND');
    }
    const malformed = await call(emu, 'GET', `${jobsPath()}/not-a-number`);
    expect(malformed.status).toBe(400);
  });

  it('lists newest first, filtered by the label filter the product sends', async () => {
    const { emu } = await start({ timing: MANUAL });
    const a = await create(emu, { displayName: 'a' });
    await create(emu, { displayName: 'b', labels: { job_id: 'b', team: 'x' } });
    await create(emu, { displayName: 'c' });
    await emu.advance(a.name);

    const list = async (filter?: string, location = LOCATION): Promise<Answer> =>
      call(
        emu,
        'GET',
        `${jobsPath(location)}${filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`}`,
      );

    const all = await list();
    expect(all.status).toBe(200);
    expect(listNames(all)).toEqual(['c', 'b', 'a']);
    expect(all.body).not.toHaveProperty('nextPageToken');

    const cases: [string, string[]][] = [
      ['labels.batch_courier="v1" AND labels.job_id="a"', ['a']],
      ['labels.batch_courier="v1" AND (labels.job_id="a" OR labels.job_id="c")', ['c', 'a']],
      ['labels.batch_courier = "v1" AND (labels.job_id="b" OR labels.job_id="zzz")', []],
      ['(labels.job_id="a" OR labels.job_id="b") AND labels.team="x"', ['b']],
      ['labels.job_id="b" OR labels.job_id="c"', ['c', 'b']],
      ['labels.job_id="a\\"b"', []],
      ['', ['c', 'b', 'a']],
    ];
    for (const [filter, expected] of cases) {
      const res = await list(filter);
      expect(res.status, `${filter}: ${JSON.stringify(res.body)}`).toBe(200);
      expect(listNames(res), filter).toEqual(expected);
    }
    // Google omits the empty list.
    expect((await list('labels.job_id="zzz"')).body).toEqual({});
    expect((await list(undefined, 'europe-west4')).body).toEqual({});
    // The project number sees the same jobs.
    const byNumber = await call(emu, 'GET', jobsPath(LOCATION, NUMBER));
    expect(listNames(byNumber)).toEqual(['c', 'b', 'a']);
  });

  it.each([
    'state="JOB_STATE_PENDING"',
    'displayName="a"',
    'createTime>"2026-01-01T00:00:00Z"',
    'labels.job_id=a',
    "labels.job_id='a'",
    'labels.job-id="a"',
    'labels.job_id:*',
    'NOT labels.job_id="a"',
    'labels.job_id!="a"',
    '(labels.job_id="a"',
    'labels.job_id="a" AND',
    'labels.batch_courier="v1" AND (labels.job_id="a" AND labels.job_id="b")',
    'hello',
  ])(
    'refuses the filter %j with 400, as the service refuses what it does not understand',
    async (filter) => {
      const { emu } = await start({ timing: MANUAL });
      const res = await call(emu, 'GET', `${jobsPath()}?filter=${encodeURIComponent(filter)}`);
      expect(res.status).toBe(400);
      expect(googleError(res).status).toBe('INVALID_ARGUMENT');
    },
  );

  it('pages with pageSize and nextPageToken, omitting the token on the last page', async () => {
    const { emu } = await start({ timing: MANUAL });
    for (const name of ['j1', 'j2', 'j3', 'j4', 'j5']) await create(emu, { displayName: name });
    const filter = encodeURIComponent('labels.batch_courier="v1"');
    const seen: string[][] = [];
    let token: string | undefined;
    do {
      const query = `?filter=${filter}&pageSize=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`;
      const res = await call(emu, 'GET', `${jobsPath()}${query}`);
      expect(res.status).toBe(200);
      seen.push(listNames(res));
      token = res.body.nextPageToken as string | undefined;
    } while (token !== undefined && seen.length < 10);
    expect(seen).toEqual([['j5', 'j4'], ['j3', 'j2'], ['j1']]);

    const first = await call(emu, 'GET', `${jobsPath()}?pageSize=2`);
    const next = first.body.nextPageToken as string;
    const otherFilter = await call(
      emu,
      'GET',
      `${jobsPath()}?pageSize=2&pageToken=${next}&filter=${encodeURIComponent('labels.job_id="j1"')}`,
    );
    expect(otherFilter.status).toBe(400);
    expect((await call(emu, 'GET', `${jobsPath()}?pageToken=garbage`)).status).toBe(400);
    expect((await call(emu, 'GET', `${jobsPath()}?pageSize=-1`)).status).toBe(400);
    const exact = await call(emu, 'GET', `${jobsPath()}?pageSize=5`);
    expect(listNames(exact)).toHaveLength(5);
    expect(exact.body).not.toHaveProperty('nextPageToken');
  });

  const long = 'a'.repeat(64);
  it.each<[string, Json | string]>([
    ['output-only name', jobBody({ name: 'projects/1/locations/l/batchPredictionJobs/1' })],
    ['output-only state', jobBody({ state: 'JOB_STATE_PENDING' })],
    ['output-only createTime', jobBody({ createTime: '2026-01-01T00:00:00Z' })],
    ['output-only error', jobBody({ error: { code: 3 } })],
    ['output-only completionStats', jobBody({ completionStats: {} })],
    ['output-only outputInfo', jobBody({ outputInfo: {} })],
    ['an unknown top-level field', jobBody({ jobId: 'x' })],
    ['a snake_case field', jobBody({ display_name: 'x' })],
    ['no displayName', jobBody({ displayName: undefined })],
    ['no model', jobBody({ model: undefined })],
    ['a short model name', jobBody({ model: 'gemini-2.5-flash' })],
    ['an unknown publisher', jobBody({ model: 'publishers/openai/models/gpt' })],
    [
      'a model in another location',
      jobBody({
        model: 'projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash',
      }),
    ],
    ['no inputConfig', jobBody({ inputConfig: undefined })],
    [
      'csv instances',
      jobBody({
        inputConfig: { instancesFormat: 'csv', gcsSource: { uris: ['gs://acme-in/a.csv'] } },
      }),
    ],
    ['no uris', jobBody({ inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: [] } } })],
    [
      'a non-gs uri',
      jobBody({ inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: ['/tmp/a.jsonl'] } } }),
    ],
    [
      'bigquery predictions',
      jobBody({
        outputConfig: {
          predictionsFormat: 'bigquery',
          gcsDestination: { outputUriPrefix: 'gs://acme-o/' },
        },
      }),
    ],
    [
      'no outputUriPrefix',
      jobBody({ outputConfig: { predictionsFormat: 'jsonl', gcsDestination: {} } }),
    ],
    ['an upper-case label key', jobBody({ labels: { JobId: 'x' } })],
    ['a label key starting with a digit', jobBody({ labels: { '1x': 'x' } })],
    ['a 64-character label value', jobBody({ labels: { k: long } })],
    ['a label value with a dot', jobBody({ labels: { k: 'a.b' } })],
    ['a non-string label value', jobBody({ labels: { k: 1 } })],
    ['invalid JSON', '{"displayName": '],
    ['a JSON array', '[]'],
  ])('rejects a create with %s (400 INVALID_ARGUMENT, no job)', async (_what, body) => {
    const { emu } = await start({ timing: MANUAL });
    const res = await call(emu, 'POST', jobsPath(), body);
    expect(res.status).toBe(400);
    expect(googleError(res).status).toBe('INVALID_ARGUMENT');
    expect(emu.jobs()).toEqual([]);
  });

  it('accepts full model names and 63-character label values', async () => {
    const { emu } = await start({ timing: MANUAL });
    const job = await create(emu, {
      model: `projects/${PROJECT}/locations/${LOCATION}/publishers/google/models/gemini-2.5-flash`,
      labels: { k: 'a'.repeat(63), 'job-id': 'x_1-2', job_id: 'x_1-2' },
    });
    expect(job.labels).toEqual({ k: 'a'.repeat(63), 'job-id': 'x_1-2', job_id: 'x_1-2' });
    const bare = await create(emu, { displayName: 'bare', labels: undefined });
    expect(bare).not.toHaveProperty('labels');
  });

  it('allows 4 unfinished Claude jobs per project and answers the 5th 429', async () => {
    const { emu } = await start({ timing: MANUAL });
    const claude: VertexJobJson[] = [];
    for (let i = 1; i <= 4; i += 1) {
      claude.push(await create(emu, { displayName: `c${i}`, model: CLAUDE }, 'us-east5'));
    }
    const fifth = await call(
      emu,
      'POST',
      jobsPath('us-east5'),
      jobBody({ displayName: 'c5', model: CLAUDE }),
    );
    expect(fifth.status).toBe(429);
    expect(googleError(fifth).status).toBe('RESOURCE_EXHAUSTED');
    // Gemini jobs are not limited.
    await create(emu, { displayName: 'g1' });

    const first = claude[0]?.name ?? '';
    expect((await call(emu, 'POST', `/v1/${first}:cancel`, {})).status).toBe(200);
    // CANCELLING is not finished yet.
    expect(
      (await call(emu, 'POST', jobsPath('us-east5'), jobBody({ displayName: 'c5', model: CLAUDE })))
        .status,
    ).toBe(429);
    await emu.advance(first);
    expect((await get(emu, first)).state).toBe('JOB_STATE_CANCELLED');
    await create(emu, { displayName: 'c5', model: CLAUDE }, 'us-east5');
  });

  it('cancels: CANCELLING then CANCELLED with error code 1; terminal jobs refuse', async () => {
    const { emu } = await start({ timing: MANUAL });
    const job = await create(emu);
    const res = await call(emu, 'POST', `/v1/${job.name}:cancel`, {});
    expect(res).toEqual({ status: 200, body: {} });
    expect((await get(emu, job.name)).state).toBe('JOB_STATE_CANCELLING');
    // Cancelling twice is harmless.
    expect((await call(emu, 'POST', `/v1/${job.name}:cancel`, {})).status).toBe(200);
    await emu.advance(job.name);
    const cancelled = await get(emu, job.name);
    expect(cancelled.state).toBe('JOB_STATE_CANCELLED');
    expect(cancelled.error).toEqual({ code: 1, message: expect.any(String) as unknown });
    expect(cancelled.endTime).toMatch(RFC3339_MICROS);
    expect(cancelled).not.toHaveProperty('startTime');

    const again = await call(emu, 'POST', `/v1/${job.name}:cancel`, {});
    expect(again.status).toBe(400);
    expect(googleError(again).status).toBe('FAILED_PRECONDITION');
    const unknown = await call(emu, 'POST', `${jobsPath()}/1234567890123456789:cancel`, {});
    expect(unknown.status).toBe(404);
  });

  it('keeps the output already written when a running job is cancelled', async () => {
    const { emu, blobs } = await start({ timing: MANUAL });
    blobs.put('gs://acme-in/reviews.jsonl', [geminiLine('Nice.'), geminiLine('Awful.')]);
    const job = await create(emu);
    await emu.advance(job.name);
    expect((await call(emu, 'POST', `/v1/${job.name}:cancel`, {})).status).toBe(200);
    await emu.settle();
    const cancelled = await get(emu, job.name);
    expect(cancelled.state).toBe('JOB_STATE_CANCELLED');
    expect(cancelled.completionStats).toEqual({ successfulCount: '2' });
    expect(
      blobs.lines(`${cancelled.outputInfo?.gcsOutputDirectory}/predictions.jsonl`),
    ).toHaveLength(2);
  });

  describe('faults', () => {
    it.each<[Extract<VertexFault, { status: number }>, string]>([
      [{ op: 'create', status: 429, times: 2 }, 'RESOURCE_EXHAUSTED'],
      [{ op: 'get', status: 503, times: 2 }, 'UNAVAILABLE'],
      [{ op: 'list', status: 500, times: 2 }, 'INTERNAL'],
      [{ op: 'cancel', status: 403, times: 2 }, 'PERMISSION_DENIED'],
      [{ op: 'get', status: 404, times: 2 }, 'NOT_FOUND'],
      [{ op: 'get', status: 400, times: 2 }, 'INVALID_ARGUMENT'],
    ])('%j fails the next requests of that kind only', async (fault, statusName) => {
      const { emu } = await start({ timing: MANUAL });
      const job = await create(emu, { displayName: 'target' });
      emu.inject(fault);
      const request = (): Promise<Answer> => {
        switch (fault.op) {
          case 'create':
            return call(emu, 'POST', jobsPath(), jobBody({ displayName: 'second' }));
          case 'list':
            return call(emu, 'GET', jobsPath());
          case 'cancel':
            return call(emu, 'POST', `/v1/${job.name}:cancel`, {});
          default:
            return call(emu, 'GET', `/v1/${job.name}`);
        }
      };
      // Another kind of request is not affected.
      if (fault.op !== 'get') expect((await call(emu, 'GET', `/v1/${job.name}`)).status).toBe(200);
      for (let i = 0; i < 2; i += 1) {
        const res = await request();
        expect(res.status).toBe(fault.status);
        expect(googleError(res).status).toBe(statusName);
      }
      // No side effect while faulted.
      expect(emu.jobs().map((j) => j.displayName)).toEqual(['target']);
      expect((await request()).status).toBe(200);
    });

    it('uses the fault message when given', async () => {
      const { emu } = await start({ timing: MANUAL });
      emu.inject({ op: 'list', status: 503, message: 'try later' });
      const res = await call(emu, 'GET', jobsPath());
      expect(googleError(res).message).toBe('try later');
    });

    it('list: refuseList answers 400 INVALID_ARGUMENT to every list until turned off; other requests work', async () => {
      const { emu } = await start({ timing: MANUAL });
      const job = await create(emu, { displayName: 'r' });
      emu.inject({ refuseList: true });
      for (const filter of ['', 'labels.job_id="r"']) {
        const res = await call(emu, 'GET', `${jobsPath()}?filter=${encodeURIComponent(filter)}`);
        expect(res.status).toBe(400);
        expect(googleError(res)).toMatchObject({
          code: 400,
          status: 'INVALID_ARGUMENT',
          message: 'Request contains an invalid argument.',
        });
      }
      expect(emu.requests.list).toBe(2);
      expect((await call(emu, 'GET', `/v1/${job.name}`)).status).toBe(200);
      emu.inject({ refuseList: false });
      expect(listNames(await call(emu, 'GET', jobsPath()))).toEqual(['r']);
    });

    it('list: refuseList with maxOrTerms refuses only filters that OR more terms', async () => {
      const { emu } = await start({ timing: MANUAL });
      await create(emu, { displayName: 'a' });
      emu.inject({ refuseList: true, maxOrTerms: 2, message: 'nope' });
      const list = (filter: string) =>
        call(emu, 'GET', `${jobsPath()}?filter=${encodeURIComponent(filter)}`);
      const cases: [string, number][] = [
        ['labels.job_id="a"', 200],
        ['labels.batch_courier="v1" AND (labels.job_id="a" OR labels.job_id="b")', 200],
        [
          'labels.batch_courier="v1" AND (labels.job_id="a" OR labels.job_id="b" OR labels.job_id="c")',
          400,
        ],
      ];
      for (const [filter, status] of cases) {
        const res = await list(filter);
        expect(res.status, filter).toBe(status);
        if (status === 400) expect(googleError(res).message).toBe('nope');
      }
      emu.reset();
      expect((await list(cases[2]![0])).status).toBe(200);
    });

    it('adds latency to API requests until reset', async () => {
      const { emu } = await start({ timing: MANUAL });
      emu.inject({ latencyMs: 60_000 });
      await expect(
        fetch(`${emu.url}${jobsPath()}`, { signal: AbortSignal.timeout(200) }),
      ).rejects.toThrow();
      // Readiness is not delayed.
      expect((await fetch(`${emu.url}/`)).status).toBe(200);
      emu.reset();
      expect((await call(emu, 'GET', jobsPath())).status).toBe(200);
    });

    it('reset clears jobs, faults and counters', async () => {
      const { emu } = await start({ timing: FAST });
      emu.inject({ op: 'get', status: 503 });
      const job = await create(emu);
      expect((await call(emu, 'GET', `/v1/${job.name}`)).status).toBe(503);
      emu.inject({ op: 'list', status: 429 });
      emu.reset();
      expect(emu.jobs()).toEqual([]);
      expect(emu.requests).toEqual({ create: 0, get: 0, list: 0, cancel: 0 });
      expect((await call(emu, 'GET', jobsPath())).status).toBe(200);
    });
  });

  it('counts requests per kind', async () => {
    const { emu } = await start({ timing: MANUAL });
    const job = await create(emu);
    await get(emu, job.name);
    await get(emu, job.name);
    await call(emu, 'GET', jobsPath());
    await call(emu, 'POST', `/v1/${job.name}:cancel`, {});
    await call(emu, 'POST', jobsPath(), jobBody({ state: 'bad' }));
    expect(emu.requests).toEqual({ create: 2, get: 2, list: 1, cancel: 1 });
    expect((await call(emu, 'DELETE', `/v1/${job.name}`)).status).toBe(404);
  });

  it('stops its timers on close and releases waiters', async () => {
    const { emu } = await start({ timing: { pendingMs: 60_000, runningMs: 60_000 } });
    await create(emu);
    const waiting = emu.whenIdle();
    await emu.close();
    await expect(waiting).resolves.toBeUndefined();
    expect(emu.jobs().map((j) => j.state)).toEqual(['JOB_STATE_PENDING']);
    await expect(fetch(`${emu.url}/`)).rejects.toThrow();
  });
});
