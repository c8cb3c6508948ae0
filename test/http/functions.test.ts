/**
 * The functions through the functions framework over HTTP (getTestServer + supertest): the
 * framework answers 204 to a returned promise and 500 to a throw.
 */
import { getTestServer } from '@google-cloud/functions-framework/testing';
import supertest from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerPollBatchJobs } from '../../functions/poll-batch-jobs/index.js';
import { registerSubmitBatchJob } from '../../functions/submit-batch-job/index.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { createWorld, finalizeEvent, GEMINI_LINES } from '../fakes.js';

const BUCKET = 'acme-batch-input';
const NAME = 'inputs/customer-reviews.jsonl';
const GEN = '1764150067498213';

let world = createWorld();
beforeAll(() => {
  registerSubmitBatchJob(async () => world.submitDeps);
  registerPollBatchJobs(async () => world.pollDeps);
});

function fresh(overrides: Record<string, string> = {}) {
  world = createWorld(overrides);
  world.reader.put(BUCKET, NAME, GEN, GEMINI_LINES);
  world.clock.set(new Date().toISOString());
  return world;
}

/** A binary-mode delivery, as Eventarc sends it. */
function deliver(overrides: Parameters<typeof finalizeEvent>[0] = {}) {
  const ev = finalizeEvent({ time: new Date().toISOString(), ...overrides });
  return supertest(getTestServer(FUNCTION_TARGETS.submit))
    .post('/')
    .set('content-type', 'application/json')
    .set('ce-specversion', '1.0')
    .set('ce-id', ev.id ?? '1')
    .set('ce-type', ev.type ?? '')
    .set('ce-source', ev.source ?? '')
    .set('ce-subject', ev.subject ?? '')
    .set('ce-time', ev.time ?? '')
    .send(JSON.stringify(ev.data));
}

describe('submitBatchJob over HTTP', () => {
  it('a valid input → 204 and one job', async () => {
    const w = fresh();
    await deliver().expect(204);
    expect(w.vertex.creates).toHaveLength(1);
  });

  it('a structured-mode event → 204 and one job', async () => {
    const w = fresh();
    const ev = finalizeEvent({ time: new Date().toISOString() });
    await supertest(getTestServer(FUNCTION_TARGETS.submit))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify({ specversion: '1.0', ...ev }))
      .expect(204);
    expect(w.vertex.creates).toHaveLength(1);
  });

  it('503 from Vertex → 500, and the retry → 204 with one job', async () => {
    const w = fresh();
    w.vertex.fail('create', new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503', { status: 503 }));
    await deliver().expect(500);
    await deliver().expect(204);
    expect(w.vertex.jobs.size).toBe(1);
  });

  it('400 from Vertex → 204, recorded, one event', async () => {
    const w = fresh();
    w.vertex.fail(
      'create',
      new PermanentError('VERTEX.INVALID_ARGUMENT', 'HTTP 400', { status: 400 }),
    );
    await deliver().expect(204);
    expect(w.jobs.all()[0]).toMatchObject({ status: 'SUBMIT_FAILED' });
    expect(w.publisher.events).toHaveLength(1);
  });

  it('bad input → 204 and an input.rejected event', async () => {
    const w = fresh();
    w.reader.put(BUCKET, NAME, GEN, '{"request":{}}\n\n');
    w.reader.put(BUCKET, 'inputs/bad.jsonl', GEN, 'oops\n');
    await deliver({ name: 'inputs/bad.jsonl' }).expect(204);
    expect(w.publisher.events[0]).toMatchObject({ eventType: 'input.rejected' });
  });

  it('ignored and stale objects → 204 with no side effect', async () => {
    const w = fresh();
    await deliver({ name: 'inputs/notes.txt' }).expect(204);
    await deliver({ time: '2020-01-01T00:00:00Z' }).expect(204);
    expect(w.jobs.all()).toHaveLength(0);
  });

  it('a POST without ce-* headers → no side effect', async () => {
    const w = fresh();
    await supertest(getTestServer(FUNCTION_TARGETS.submit))
      .post('/')
      .set('content-type', 'application/json')
      .send('{}')
      .expect(204);
    expect(w.jobs.all()).toHaveLength(0);
    expect(w.log.lines).toEqual([expect.objectContaining({ event: 'event.unsupported' })]);
    expect(w.vertex.calls.create).toBe(0);
  });

  it('Firestore unavailable → 500', async () => {
    const w = fresh();
    w.jobs.createIfAbsent = () =>
      Promise.reject(new TransientError('JOBS.UNAVAILABLE', 'Firestore down'));
    await deliver().expect(500);
  });
});

describe('pollBatchJobs over HTTP', () => {
  it('POST → 200 with the JSON summary', async () => {
    const w = fresh();
    await deliver().expect(204);
    const [name] = [...w.vertex.jobs.keys()];
    w.vertex.setState(name!, {
      state: 'JOB_STATE_SUCCEEDED',
      completionStats: { successfulCount: '3' },
    });
    const res = await supertest(getTestServer(FUNCTION_TARGETS.poll)).post('/').expect(200);
    expect(res.body).toEqual({
      checked: 1,
      changed: 1,
      completed: 1,
      published: 1,
      submitted: 0,
      errors: 0,
      truncated: false,
      waiting: 0,
      oldestWaitingSeconds: 0,
    });
  });

  it('a job store that is unreachable → 500', async () => {
    const w = fresh();
    w.jobs.listOutstanding = () =>
      Promise.reject(new TransientError('JOBS.UNAVAILABLE', 'Firestore down'));
    const res = await supertest(getTestServer(FUNCTION_TARGETS.poll)).post('/').expect(500);
    expect(res.body).toEqual({ error: { code: 'JOBS.UNAVAILABLE', message: 'Firestore down' } });
  });

  it('Vertex down → 200 with errors counted', async () => {
    const w = fresh();
    await deliver().expect(204);
    w.vertex.fail('get', new TransientError('VERTEX.UNAVAILABLE', '503'));
    const res = await supertest(getTestServer(FUNCTION_TARGETS.poll)).post('/').expect(200);
    expect(res.body).toMatchObject({ checked: 1, errors: 1 });
  });

  it('GET → 405', async () => {
    fresh();
    await supertest(getTestServer(FUNCTION_TARGETS.poll)).get('/').expect(405);
  });
});
