/**
 * Schedules: random sequences of everything that can happen to the pipeline, as plain data (so a
 * failure prints one readable line per action and fast-check can shrink it), and how each action
 * is applied to a {@link World}.
 */
import fc from 'fast-check';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import {
  isTerminalState,
  type VertexBatchJob,
  requestInputUris,
} from '../../shared/core/vertex.js';
import type { World } from './world.js';

/** Object names: a few, so that overwrites happen; one hostile. */
const NAMES = ['inputs/a.jsonl', 'inputs/b.jsonl', 'inputs/ünï cødé\n🚀.jsonl'] as const;

/** What an upload names as its model and region. */
const TARGETS = [
  { label: 'gemini-flash', metadata: {} },
  {
    label: 'gemini-pro@europe-west4',
    metadata: { model: 'gemini-2.5-pro', location: 'europe-west4' },
  },
  { label: 'claude', metadata: { model: 'claude-3-5-haiku' } },
  { label: 'claude-sonnet', metadata: { model: 'claude-3-7-sonnet' } },
] as const;

const CONTENTS = ['valid', 'invalid', 'deputy', 'empty'] as const;

export type Action =
  | { kind: 'upload'; name: number; target: number; content: (typeof CONTENTS)[number] }
  | { kind: 'delete'; name: number }
  | {
      kind: 'deliver';
      upload: number;
      copies: number;
      crashAfter: number | undefined;
      freezeAt: number | undefined;
    }
  | {
      kind: 'poll';
      overlap: number;
      crashAfter: number | undefined;
      budgetMs: number | undefined;
      freezeAt: number | undefined;
    }
  | { kind: 'resume'; which: number }
  | {
      kind: 'vertex-fault';
      fault:
        'create-429' | 'create-503' | 'create-lost' | 'list-refused' | 'get-503' | 'cancel-503';
    }
  | { kind: 'vertex-step'; job: number; choice: number }
  | { kind: 'vertex-forget'; job: number }
  | { kind: 'store-fault'; fault: 'conflict' | 'unavailable' }
  | { kind: 'publish-fault'; fault: 'unavailable' | 'timeout-after-send' | 'refused' }
  | { kind: 'clock'; seconds: number };

const crash = fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined, freq: 3 });
const freeze = fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined, freq: 3 });

/** One random action. */
export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('upload' as const),
      name: fc.nat({ max: NAMES.length - 1 }),
      target: fc.nat({ max: TARGETS.length - 1 }),
      content: fc.constantFrom(...CONTENTS, 'valid', 'valid'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      name: fc.nat({ max: NAMES.length - 1 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('deliver' as const),
      upload: fc.nat({ max: 7 }),
      copies: fc.integer({ min: 1, max: 3 }),
      crashAfter: crash,
      freezeAt: freeze,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('poll' as const),
      overlap: fc.integer({ min: 1, max: 2 }),
      crashAfter: crash,
      budgetMs: fc.option(fc.constantFrom(1, 5, 50), { nil: undefined, freq: 4 }),
      freezeAt: freeze,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('resume' as const), which: fc.nat({ max: 3 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('vertex-fault' as const),
      fault: fc.constantFrom(
        'create-429' as const,
        'create-503' as const,
        'create-lost' as const,
        'list-refused' as const,
        'get-503' as const,
        'cancel-503' as const,
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('vertex-step' as const),
      job: fc.nat({ max: 7 }),
      choice: fc.nat({ max: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('vertex-forget' as const), job: fc.nat({ max: 7 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('store-fault' as const),
      fault: fc.constantFrom('conflict' as const, 'unavailable' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('publish-fault' as const),
      fault: fc.constantFrom(
        'unavailable' as const,
        'timeout-after-send' as const,
        'refused' as const,
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('clock' as const),
      seconds: fc.constantFrom(1, 30, 120, 600, 1000, 3600, 6 * 3600, 30 * 3600),
    }),
  },
);

/** A schedule: 1 to `max` actions. */
export const scheduleArb = (max = 40): fc.Arbitrary<Action[]> =>
  fc.array(actionArb, { minLength: 1, maxLength: max });

/** One line per action. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'upload':
      return `upload ${JSON.stringify(NAMES[a.name])} (${TARGETS[a.target]?.label}, ${a.content})`;
    case 'delete':
      return `delete newest generation of ${JSON.stringify(NAMES[a.name])}`;
    case 'deliver':
      return `deliver upload #${a.upload} ×${a.copies}${a.crashAfter ? `, first copy crashes after side effect ${a.crashAfter}` : ''}${a.freezeAt ? `, first copy stalls before side effect ${a.freezeAt}` : ''}`;
    case 'poll':
      return `poll ×${a.overlap}${a.crashAfter ? `, first crashes after side effect ${a.crashAfter}` : ''}${a.freezeAt ? `, first stalls before side effect ${a.freezeAt}` : ''}${a.budgetMs ? `, budget ${a.budgetMs} ms` : ''}`;
    case 'resume':
      return `a stalled instance resumes (#${a.which})`;
    case 'vertex-fault':
      return `vertex: next ${a.fault}`;
    case 'vertex-step':
      return `vertex: job #${a.job} takes transition ${a.choice}`;
    case 'vertex-forget':
      return `vertex: forgets job #${a.job}`;
    case 'store-fault':
      return `firestore: next write ${a.fault}`;
    case 'publish-fault':
      return `pubsub: next publish ${a.fault}`;
    case 'clock':
      return `clock +${a.seconds} s`;
  }
}

const GEMINI = (text: string, uri?: string): string =>
  JSON.stringify({
    request: {
      contents: [
        {
          role: 'user',
          parts: [uri ? { fileData: { mimeType: 'image/png', fileUri: uri } } : { text }],
        },
      ],
    },
  });
const CLAUDE = (id: string, text: string): string =>
  JSON.stringify({
    custom_id: id,
    request: {
      messages: [{ role: 'user', content: text }],
      anthropic_version: 'vertex-2023-10-16',
      max_tokens: 16,
    },
  });

function contentFor(target: number, content: Action & { kind: 'upload' }, n: number): Buffer {
  const claude = TARGETS[target]?.label.startsWith('claude') === true;
  const line = (i: number): string =>
    claude ? CLAUDE(`r${i}`, `review ${n}.${i}`) : GEMINI(`review ${n}.${i}`);
  switch (content.content) {
    case 'valid':
      return Buffer.from(`${line(1)}\n${line(2)}\n`);
    case 'invalid':
      return Buffer.from(`${line(1)}\n{"request": \n`);
    case 'deputy':
      return Buffer.from(
        claude ? `${line(1)}\n${line(1)}\n` : `${GEMINI('x', 'gs://someone-elses-bucket/a.png')}\n`,
      );
    case 'empty':
      return Buffer.alloc(0);
  }
}

/** Legal next states of a Vertex job (best effort cancel can still end in success). */
const NEXT: Record<string, string[]> = {
  JOB_STATE_PENDING: [
    'JOB_STATE_QUEUED',
    'JOB_STATE_RUNNING',
    'JOB_STATE_EXPIRED',
    'JOB_STATE_FAILED',
  ],
  JOB_STATE_QUEUED: ['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_EXPIRED'],
  JOB_STATE_RUNNING: [
    'JOB_STATE_SUCCEEDED',
    'JOB_STATE_PARTIALLY_SUCCEEDED',
    'JOB_STATE_FAILED',
    'JOB_STATE_PAUSED',
    'JOB_STATE_UPDATING',
  ],
  JOB_STATE_UPDATING: ['JOB_STATE_RUNNING'],
  JOB_STATE_PAUSED: ['JOB_STATE_RUNNING', 'JOB_STATE_CANCELLING'],
  JOB_STATE_CANCELLING: ['JOB_STATE_CANCELLED', 'JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED'],
};

/** Moves a Vertex job to `state`, with the fields Vertex sets on the way. */
export function moveJob(w: World, job: VertexBatchJob, state: string): void {
  const patch: Partial<VertexBatchJob> = { state };
  if (state === 'JOB_STATE_RUNNING' && !job.startTime) patch.startTime = w.clock().toISOString();
  if (isTerminalState(state)) {
    patch.endTime = w.clock().toISOString();
    patch.completionStats = {
      successfulCount: state === 'JOB_STATE_FAILED' ? '0' : '2',
      ...(state === 'JOB_STATE_PARTIALLY_SUCCEEDED' ? { failedCount: '1' } : {}),
    };
    const directory = `${job.name.replace(/.*\//, 'gs://acme-batch-output/results/')}/prediction-model-x`;
    patch.outputInfo = { gcsOutputDirectory: directory };
    if (state === 'JOB_STATE_FAILED') patch.error = { code: 13, message: 'internal error' };
    writePredictions(w, job, state, directory);
  }
  w.vertex.setState(job.name, patch);
}

/**
 * What Vertex writes when a job ends: an output line per request of the input it read, in
 * reverse order (output order is not input order); the last request fails when the job partly
 * succeeded; a failed job writes nothing. The digest reads these before the event.
 */
function writePredictions(w: World, job: VertexBatchJob, state: string, directory: string): void {
  if (state === 'JOB_STATE_FAILED' || state === 'JOB_STATE_EXPIRED') return;
  const request = w.vertex.jobs.get(job.name)?.request;
  const uri = (request && requestInputUris(request)[0]) ?? '';
  // An input's job reads its pinned copy; a retry's, the file of its failed rows.
  const written = w.reports.objects.get(uri);
  const input =
    w.reports.copies.get(uri) ?? (written === undefined ? undefined : Buffer.from(written));
  if (!input) return;
  const lines = input
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const out = lines.map((l, i) => {
    const value = JSON.parse(l) as Record<string, unknown>;
    const failed = state === 'JOB_STATE_PARTIALLY_SUCCEEDED' && i === lines.length - 1;
    return JSON.stringify({
      ...(value.custom_id === undefined ? {} : { custom_id: value.custom_id }),
      request: value.request,
      status: failed ? 'Internal Server Error: {"error": {"code": 500, "status": "INTERNAL"}}' : '',
      ...(failed
        ? {}
        : {
            response: {
              candidates: [{ content: { parts: [{ text: 'ok' }] } }],
              usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 1 },
            },
          }),
    });
  });
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(directory);
  if (!m?.[1] || !m[2]) return;
  w.reader.put(
    m[1],
    `${m[2]}/predictions.jsonl`,
    String(w.clock().getTime()),
    `${out.reverse().join('\n')}\n`,
  );
}

/** Jobs Vertex has and that can still change, in creation order. */
function openJobs(w: World): VertexBatchJob[] {
  return [...w.vertex.jobs.values()].filter((j) => !isTerminalState(j.state ?? ''));
}

/** Applies one action; returns a short note of what happened (for the trace). */
export async function apply(w: World, a: Action): Promise<string> {
  switch (a.kind) {
    case 'upload': {
      const target = TARGETS[a.target] ?? TARGETS[0];
      const up = w.upload(NAMES[a.name] ?? NAMES[0], contentFor(a.target, a, w.uploads.length), {
        ...target.metadata,
      });
      return `#${w.uploads.length - 1} ${up.jobId}`;
    }
    case 'delete':
      w.remove(NAMES[a.name] ?? NAMES[0]);
      return '';
    case 'deliver': {
      if (w.uploads.length === 0) return 'nothing uploaded';
      const index = a.upload % w.uploads.length;
      return (await w.deliver(index, a.copies, a.crashAfter, a.freezeAt)).join(', ');
    }
    case 'poll':
      if (a.budgetMs) w.disruptions.count++;
      return (await w.poll(a.overlap, a.crashAfter, a.budgetMs, a.freezeAt)).join(', ');
    case 'resume':
      return w.resume(a.which);
    case 'vertex-fault': {
      const unavailable = (): TransientError =>
        new TransientError('VERTEX.UNAVAILABLE', 'HTTP 503', { status: 503 });
      if (a.fault === 'create-429')
        w.vertex.fail(
          'create',
          new TransientError('VERTEX.RESOURCE_EXHAUSTED', 'HTTP 429', { status: 429 }),
        );
      if (a.fault === 'create-503') w.vertex.fail('create', unavailable());
      if (a.fault === 'create-lost') {
        w.disruptions.count++;
        w.vertex.loseNextCreateAnswer();
      }
      if (a.fault === 'list-refused')
        w.vertex.fail('list', new PermanentError('VERTEX.INVALID_ARGUMENT', 'HTTP 400 filter'));
      if (a.fault === 'get-503') w.vertex.fail('get', unavailable());
      if (a.fault === 'cancel-503') w.vertex.fail('cancel', unavailable());
      return '';
    }
    case 'vertex-step': {
      const jobs = openJobs(w);
      const job = jobs[a.job % Math.max(1, jobs.length)];
      if (!job) return 'no open job';
      const next = NEXT[job.state ?? ''] ?? [];
      const state = next[a.choice % Math.max(1, next.length)];
      if (!state) return `${job.state} stays`;
      moveJob(w, job, state);
      return `${job.displayName}: ${state}`;
    }
    case 'vertex-forget': {
      const all = [...w.vertex.jobs.values()];
      const job = all[a.job % Math.max(1, all.length)];
      if (!job) return 'no job';
      w.vertex.jobs.delete(job.name);
      return job.displayName ?? '';
    }
    case 'store-fault': {
      w.disruptions.count++;
      const update = w.jobs.update.bind(w.jobs);
      let armed = true;
      w.jobs.update = (id, change) => {
        if (!armed) return update(id, change);
        armed = false;
        w.jobs.update = update;
        return Promise.reject(
          a.fault === 'conflict'
            ? new TransientError('JOBS.CONFLICT', 'ABORTED: contention')
            : new TransientError('JOBS.UNAVAILABLE', 'UNAVAILABLE'),
        );
      };
      return '';
    }
    case 'publish-fault': {
      if (a.fault === 'unavailable')
        w.publisher.fail(new TransientError('EVENTS.UNAVAILABLE', 'UNAVAILABLE'));
      if (a.fault === 'refused')
        w.publisher.fail(new PermanentError('EVENTS.INVALID', 'NOT_FOUND: topic'));
      if (a.fault === 'timeout-after-send') {
        w.disruptions.count++;
        // The message is sent, but the answer is lost: the caller sees a timeout.
        const publish = w.publisher.publish.bind(w.publisher);
        w.publisher.publish = async (event) => {
          w.publisher.publish = publish;
          await publish(event);
          throw new TransientError('EVENTS.UNAVAILABLE', 'DEADLINE_EXCEEDED after send');
        };
      }
      return '';
    }
    case 'clock':
      w.clock.advance(a.seconds * 1000);
      return '';
  }
}

/**
 * Quiescence: faults cleared, every owed delivery made, every job driven to an end, the clock
 * moved past leases and backoffs, and polls repeated until nothing changes (bounded).
 */
export async function quiesce(w: World): Promise<void> {
  w.vertex.clearFaults();
  w.publisher.clearFaults();
  // The worst time for stalled instances to come back: after their claims ran out and another
  // worker took their work over.
  if (w.anyFrozen()) {
    w.clock.advance(3600_000);
    await w.poll(1);
    await w.resumeAll();
  }
  w.vertex.clearFaults();
  w.publisher.clearFaults();
  for (let round = 0; round < 80; round++) {
    for (const index of [...w.pending]) await w.deliver(index, 1);
    for (const job of openJobs(w)) {
      moveJob(
        w,
        job,
        job.state === 'JOB_STATE_CANCELLING' ? 'JOB_STATE_CANCELLED' : 'JOB_STATE_SUCCEEDED',
      );
    }
    await w.poll(1);
    const outstanding = (await w.jobs.listOutstanding(1000)).records.length;
    if (outstanding === 0 && w.pending.length === 0) return;
    w.clock.advance(20 * 60_000);
  }
  const left = (await w.jobs.listOutstanding(1000)).records.map((r) => `${r.jobId} ${r.status}`);
  throw new Error(
    `no quiescence after 80 rounds: outstanding ${left.join('; ')}; owed deliveries ${w.pending.join(', ')}`,
  );
}
