import { describe, expect, it } from 'vitest';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { CompletionEventSchema } from '../../shared/core/events.js';
import { deriveJobId } from '../../shared/core/job-id.js';
import { JOB_ID_LABEL, OWNER_LABEL } from '../../shared/core/vertex.js';
import { ANTHROPIC_LINES, createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';

const BUCKET = 'acme-batch-input';
const NAME = 'inputs/customer-reviews.jsonl';
const GEN = '1764150067498213';
const JOB_ID = deriveJobId(BUCKET, NAME, GEN);

function world(overrides: Record<string, string> = {}) {
  const w = createWorld(overrides);
  w.reader.put(BUCKET, NAME, GEN, GEMINI_LINES);
  return w;
}

describe('submitBatchJob handler', () => {
  it('creates one Vertex job for a valid input and records it', async () => {
    const w = world();
    const outcome = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(outcome).toMatchObject({ outcome: 'submitted', jobId: JOB_ID, recovered: false });
    expect(w.vertex.creates).toHaveLength(1);
    const create = w.vertex.creates[0]!;
    expect(create.location).toBe('us-central1');
    expect(create.request).toEqual({
      displayName: JOB_ID,
      model: 'publishers/google/models/gemini-2.5-flash',
      // The job reads the pinned copy of exactly the validated generation.
      inputConfig: {
        instancesFormat: 'jsonl',
        gcsSource: { uris: [`gs://acme-batch-output/results/${JOB_ID}/input.jsonl`] },
      },
      outputConfig: {
        predictionsFormat: 'jsonl',
        gcsDestination: { outputUriPrefix: `gs://acme-batch-output/results/${JOB_ID}/` },
      },
      labels: { [OWNER_LABEL]: 'v1', [JOB_ID_LABEL]: JOB_ID },
    });
    expect(w.reports.copies.get(`gs://acme-batch-output/results/${JOB_ID}/input.jsonl`)).toEqual(
      Buffer.from(GEMINI_LINES),
    );
    const record = await w.jobs.get(JOB_ID);
    expect(record).toMatchObject({
      status: 'SUBMITTED',
      requestCount: 3,
      vertexState: 'JOB_STATE_PENDING',
      outstanding: true,
      lease: null,
      createAttempts: 1,
    });
    expect(record?.vertexJob).toMatch(/batchPredictionJobs\/\d+$/);
    expect(w.publisher.events).toHaveLength(0);
    expect(w.log.lines.map((l) => l.event)).toEqual([
      'input.received',
      'input.validated',
      'job.submitted',
    ]);
  });

  it('accepts generation as a JSON number, and structured-mode string data', async () => {
    const w = world();
    await handleStorageEvent(finalizeEvent({ generation: Number(GEN) }), w.submitDeps);
    expect(w.vertex.creates).toHaveLength(1);
    const w2 = world();
    const ev = finalizeEvent();
    await handleStorageEvent({ ...ev, data: JSON.stringify(ev.data) }, w2.submitDeps);
    expect(w2.vertex.creates).toHaveLength(1);
  });

  it('6 concurrent deliveries of one event make exactly 1 create', async () => {
    const w = world();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => handleStorageEvent(finalizeEvent(), w.submitDeps)),
    );
    expect(w.vertex.creates).toHaveLength(1);
    // All acknowledged: one submitted, the others saw it in progress or done.
    expect(results.filter((r) => r.outcome === 'submitted')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(5);
    // A later redelivery changes nothing either.
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'duplicate',
      status: 'SUBMITTED',
    });
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.publisher.events).toHaveLength(0);
  });

  it('a duplicate delivery after success is acknowledged with no second create', async () => {
    const w = world();
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    const again = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(again).toEqual({ outcome: 'duplicate', jobId: JOB_ID, status: 'SUBMITTED' });
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.reader.reads).toBe(1);
  });

  it('503 from Vertex throws (HTTP 500) and loses nothing: the retry lists by label, then creates', async () => {
    const w = world();
    w.vertex.fail('create', new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503', { status: 503 }));
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(
      TransientError,
    );
    const pending = await w.jobs.get(JOB_ID);
    expect(pending).toMatchObject({
      status: 'SUBMITTING',
      createAttempts: 1,
      lease: null,
      outstanding: true,
    });
    expect(w.log.lines.some((l) => l.event === 'submit.retry')).toBe(true);

    const retry = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(retry).toMatchObject({ outcome: 'submitted', recovered: false });
    // Looked for a job from the first attempt before creating, and after recording the second
    // create, for a stray from the first (none here).
    expect(w.vertex.calls.list).toBe(2);
    expect(w.vertex.calls.cancel).toBe(0);
    expect(w.vertex.jobs.size).toBe(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ status: 'SUBMITTED', createAttempts: 2 });
  });

  it('429 from Vertex queues the input (acknowledged, not retried for hours)', async () => {
    const w = world();
    w.vertex.fail(
      'create',
      new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 }),
    );
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'waiting',
    });
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ status: 'WAITING', outstanding: true });
    expect(w.publisher.events).toHaveLength(0);
  });

  it('a lost create answer is found by label: no second job', async () => {
    const w = world();
    w.vertex.loseNextCreateAnswer();
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(
      TransientError,
    );
    expect(w.vertex.jobs.size).toBe(1);
    const retry = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(retry).toMatchObject({ outcome: 'submitted', recovered: true });
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.vertex.jobs.size).toBe(1);
    const record = await w.jobs.get(JOB_ID);
    expect(record?.vertexJob).toBe([...w.vertex.jobs.keys()][0]);
    expect(w.log.lines.some((l) => l.event === 'job.recovered')).toBe(true);
  });

  it('400 from Vertex is permanent: recorded SUBMIT_FAILED, one input.rejected event, acknowledged', async () => {
    const w = world();
    w.vertex.fail(
      'create',
      new PermanentError(
        'VERTEX.INVALID_ARGUMENT',
        'Vertex AI create: HTTP 400 INVALID_ARGUMENT: bad model',
        {
          status: 400,
        },
      ),
    );
    const outcome = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(outcome).toEqual({
      outcome: 'rejected',
      jobId: JOB_ID,
      code: 'VERTEX.INVALID_ARGUMENT',
    });
    const record = await w.jobs.get(JOB_ID);
    expect(record).toMatchObject({ status: 'SUBMIT_FAILED', outstanding: false, lease: null });
    expect(w.publisher.events).toHaveLength(1);
    const event = w.publisher.events[0]!;
    expect(CompletionEventSchema.parse(event)).toEqual(event);
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      state: 'INPUT_REJECTED',
      jobId: JOB_ID,
      vertexJob: null,
      output: null,
      stats: null,
      error: { code: 'VERTEX.INVALID_ARGUMENT' },
      input: { bucket: BUCKET, name: NAME, generation: GEN, requestCount: 3 },
    });
    // A redelivery neither creates nor publishes again.
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.vertex.calls.create).toBe(1);
  });

  it.each([
    ['an empty file', '', 'INPUT.EMPTY', 'line 1: the file is empty'],
    [
      'a line that is not JSON',
      '{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\nnot json\n',
      'INPUT.INVALID_JSONL',
      'line 2: is not valid JSON',
    ],
    [
      'a line without request',
      '{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\n{"req":{}}\n',
      'INPUT.INVALID_JSONL',
      'line 2: has no "request" field',
    ],
    [
      'an interior blank line',
      '{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\n\n{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\n',
      'INPUT.INVALID_JSONL',
      'line 2: is blank',
    ],
    ['an array line', '[1,2]\n', 'INPUT.INVALID_JSONL', 'line 1: is an array, not a JSON object'],
  ])('rejects %s naming the line, with no create', async (_what, content, code, message) => {
    const w = createWorld();
    w.reader.put(BUCKET, NAME, GEN, content);
    const outcome = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(outcome).toMatchObject({ outcome: 'rejected', code });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.publisher.events[0]!.error?.code).toBe(code);
    expect(w.publisher.events[0]!.error?.message).toContain(`${NAME} ${message}`);
    const record = await w.jobs.get(JOB_ID);
    expect(record).toMatchObject({ status: 'REJECTED', outstanding: false });
    expect(record?.lineErrors.length).toBeGreaterThan(0);
  });

  it('a final CRLF newline is fine', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, NAME, GEN, `${GEMINI_LINES.trim().split('\n').join('\r\n')}\r\n`);
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'submitted',
    });
  });

  it('an object whose generation is gone is rejected as INPUT.NOT_FOUND', async () => {
    const w = createWorld();
    const outcome = await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.NOT_FOUND' });
    expect(w.publisher.events).toHaveLength(1);
  });

  it('storage unavailable while reading is transient', async () => {
    const w = world();
    w.reader.failNext(new TransientError('STORAGE.UNAVAILABLE', 'could not read'));
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(
      TransientError,
    );
    expect(await handleStorageEvent(finalizeEvent(), w.submitDeps)).toMatchObject({
      outcome: 'submitted',
    });
  });

  it('a failed rejection publish throws; the redelivery publishes it once', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, NAME, GEN, 'nope\n');
    w.publisher.fail(new TransientError('EVENTS.UNAVAILABLE', 'Pub/Sub down'));
    await expect(handleStorageEvent(finalizeEvent(), w.submitDeps)).rejects.toBeInstanceOf(
      TransientError,
    );
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ status: 'REJECTED', outstanding: true });
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ outstanding: false });
  });

  it.each([
    ['not .jsonl', { name: 'inputs/readme.txt' }, {}, 'not-jsonl'],
    [
      'outside INPUT_PREFIX',
      { name: 'other/x.jsonl' },
      { INPUT_PREFIX: 'inputs/' },
      'outside-input-prefix',
    ],
    [
      'under the output location',
      { bucket: 'shared-bucket', name: 'results/job/prediction-model-1/predictions.jsonl' },
      { OUTPUT_URI_PREFIX: 'gs://shared-bucket/results' },
      'output-location',
    ],
  ])('ignores an object %s: no record, no create', async (_what, ev, cfg, reason) => {
    const w = createWorld(cfg);
    const outcome = await handleStorageEvent(finalizeEvent(ev), w.submitDeps);
    expect(outcome).toEqual({ outcome: 'ignored', reason });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.jobs.all()).toHaveLength(0);
    expect(w.log.lines).toEqual([
      expect.objectContaining({ severity: 'DEBUG', event: 'input.ignored', reason }),
    ]);
  });

  it('accepts .JSONL in any case', async () => {
    const w = createWorld();
    w.reader.put(BUCKET, 'inputs/BIG.JSONL', GEN, GEMINI_LINES);
    expect(
      await handleStorageEvent(finalizeEvent({ name: 'inputs/BIG.JSONL' }), w.submitDeps),
    ).toMatchObject({
      outcome: 'submitted',
    });
  });

  it('drops an event older than MAX_EVENT_AGE_SECONDS with a log line', async () => {
    const w = world({ MAX_EVENT_AGE_SECONDS: '3600' });
    const outcome = await handleStorageEvent(
      finalizeEvent({ time: '2026-11-26T08:00:00.000Z' }),
      w.submitDeps,
    );
    expect(outcome).toMatchObject({ outcome: 'stale' });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.jobs.all()).toHaveLength(0);
    expect(w.log.lines[0]).toMatchObject({ severity: 'WARNING', event: 'event.stale' });
  });

  it('an event that is not a storage finalize event has no side effect', async () => {
    const w = world();
    expect(await handleStorageEvent({}, w.submitDeps)).toEqual({ outcome: 'unsupported' });
    expect(
      await handleStorageEvent(
        { type: 'google.cloud.storage.object.v1.deleted', data: {} },
        w.submitDeps,
      ),
    ).toEqual({ outcome: 'unsupported' });
    expect(w.jobs.all()).toHaveLength(0);
    expect(w.log.lines[0]).toMatchObject({ severity: 'WARNING', event: 'event.unsupported' });
  });

  it('metadata model=claude-3-5-haiku makes an Anthropic job in ANTHROPIC_LOCATION', async () => {
    const w = createWorld({ ANTHROPIC_LOCATION: 'europe-west1' });
    w.reader.put(BUCKET, NAME, GEN, ANTHROPIC_LINES);
    await handleStorageEvent(
      finalizeEvent({ metadata: { model: 'claude-3-5-haiku' } }),
      w.submitDeps,
    );
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.vertex.creates[0]!.location).toBe('europe-west1');
    expect(w.vertex.creates[0]!.request.model).toBe('publishers/anthropic/models/claude-3-5-haiku');
    expect(await w.jobs.get(JOB_ID)).toMatchObject({
      provider: 'anthropic',
      location: 'europe-west1',
    });
  });

  it('metadata location overrides the region; VERTEX_LOCATION applies otherwise', async () => {
    const w = world({ VERTEX_LOCATION: 'global' });
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(w.vertex.creates[0]!.location).toBe('global');
    const w2 = world();
    await handleStorageEvent(
      finalizeEvent({ metadata: { location: 'europe-west4' } }),
      w2.submitDeps,
    );
    expect(w2.vertex.creates[0]!.location).toBe('europe-west4');
  });

  it('an unknown model name is rejected before any create', async () => {
    const w = world();
    const outcome = await handleStorageEvent(
      finalizeEvent({ metadata: { model: 'not a model!' } }),
      w.submitDeps,
    );
    expect(outcome).toMatchObject({ outcome: 'rejected', code: 'INPUT.UNKNOWN_MODEL' });
    expect(w.vertex.calls.create).toBe(0);
    expect(w.publisher.events[0]!.model).toBe('not a model!');
  });

  it('two generations of one object are two jobs', async () => {
    const w = world();
    w.reader.put(BUCKET, NAME, '2', GEMINI_LINES);
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    await handleStorageEvent(finalizeEvent({ generation: '2' }), w.submitDeps);
    expect(w.vertex.creates).toHaveLength(2);
  });

  it('never logs prompt contents', async () => {
    const w = createWorld();
    const canary = 'CANARY-7f3a prompt text';
    w.reader.put(
      BUCKET,
      NAME,
      GEN,
      JSON.stringify({ request: { contents: [{ parts: [{ text: canary }] }] } }) +
        '\n{bad ' +
        canary,
    );
    await handleStorageEvent(finalizeEvent(), w.submitDeps);
    expect(w.log.raw.join('\n')).not.toContain('CANARY-7f3a');
    expect(JSON.stringify(w.publisher.events)).not.toContain('CANARY-7f3a');
  });
});
