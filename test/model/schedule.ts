/**
 * Schedules: random sequences of everything that can happen to the pipeline, as plain data (so a
 * failure prints one readable line per action and fast-check can shrink it), and how each action
 * is applied to a {@link World}.
 */
import fc from 'fast-check';
import { requestLine } from '../../shared/app/sources.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import type { TransitionName } from '../../shared/core/transitions.js';
import {
  isTerminalState,
  type BatchJobRequest,
  type VertexBatchJob,
  requestInputUris,
} from '../../shared/core/vertex.js';
import type { FakeTable } from '../fakes.js';
import {
  BQ_PROJECT,
  BUCKET,
  datasetOf,
  type CrashPoint,
  type ManifestSpec,
  type Upload,
  type World,
} from './world.js';

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

/** Manifest names: two, so that a manifest is overwritten; one hostile. */
const MANIFEST_NAMES = ['inputs/m.batch.json', 'inputs/nïghtly ✓.batch.json'] as const;

/** Every name a `delete` may pick (JSONL inputs first, so classic schedules are unchanged). */
const ALL_NAMES = [...NAMES, ...MANIFEST_NAMES] as const;

/** What a manifest names as its model and region (its own fields), and its data folder. */
const MANIFEST_TARGETS = [
  { label: 'gemini-flash', fields: {}, location: 'us-central1', claude: false },
  {
    label: 'gemini-pro@europe-west4',
    fields: { model: 'gemini-2.5-pro', location: 'europe-west4' },
    location: 'europe-west4',
    claude: false,
  },
  { label: 'claude', fields: { model: 'claude-3-5-haiku' }, location: 'us-east5', claude: true },
] as const;

/** The folder of data files for one kind of model: outside INPUT_PREFIX, so no job of its own. */
const dataDir = (claude: boolean): string => (claude ? 'data/claude/' : 'data/gemini/');

/** Transitions a crash may follow (by name, beside the crash after the n-th side effect). */
const TRANSITIONS: (TransitionName | 'create')[] = [
  'create',
  'claim',
  'release',
  'toManifest',
  'toCreating',
  'toWaiting',
  'toSubmitted',
  'toRejected',
  'toStateSeen',
  'toCancelRequested',
  'toCompleted',
  'claimAnnouncement',
  'toDigested',
  'toRetrying',
  'toAttemptDone',
  'toHandedOver',
  'markAnnounced',
];

type Crash = CrashPoint;

export type Action =
  | { kind: 'upload'; name: number; target: number; content: (typeof CONTENTS)[number] }
  | {
      kind: 'manifest';
      name: number;
      target: number;
      /** A pattern over the data folder, a list of 1–3 files, or a table. */
      source: 'pattern' | 'list' | 'table';
      files: number;
      destination: 'none' | 'gcs' | 'bq' | 'bq-table';
      flaw: 'none' | 'invalid' | 'missing' | 'other-region';
    }
  | { kind: 'data'; claude: boolean; file: number; change: 'replace' | 'invalid' | 'delete' }
  | { kind: 'table-change'; upload: number; change: 'touch' | 'grow' | 'break' }
  | { kind: 'bigquery-fault'; fault: 'unavailable' | 'denied' }
  | { kind: 'delete'; name: number }
  | {
      kind: 'deliver';
      upload: number;
      copies: number;
      crashAfter: Crash;
      freezeAt: number | undefined;
    }
  | {
      kind: 'poll';
      overlap: number;
      crashAfter: Crash;
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

const crashAt = fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined, freq: 3 });
/** Manifest schedules: after the n-th side effect (more of them: a copy per file), or a transition. */
const crashOrTransition: fc.Arbitrary<Crash> = fc.option(
  fc.oneof(
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 14 }) },
    { weight: 1, arbitrary: fc.constant('create' as const) },
    { weight: 2, arbitrary: fc.constantFrom(...TRANSITIONS) },
  ),
  { nil: undefined, freq: 3 },
);
const freeze = fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined, freq: 3 });

/** The manifest actions: uploads of manifests, changes of what they read, BigQuery faults. */
const manifestActions = [
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('manifest' as const),
      name: fc.nat({ max: MANIFEST_NAMES.length - 1 }),
      target: fc.nat({ max: MANIFEST_TARGETS.length - 1 }),
      source: fc.constantFrom(
        'pattern' as const,
        'list' as const,
        'table' as const,
        'table' as const,
      ),
      files: fc.integer({ min: 1, max: 3 }),
      destination: fc.constantFrom(
        'none' as const,
        'gcs' as const,
        'bq' as const,
        'bq-table' as const,
      ),
      flaw: fc.constantFrom(
        'none' as const,
        'none' as const,
        'none' as const,
        'none' as const,
        'invalid' as const,
        'missing' as const,
        'other-region' as const,
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('data' as const),
      claude: fc.boolean(),
      file: fc.nat({ max: 3 }),
      change: fc.constantFrom(
        'replace' as const,
        'replace' as const,
        'invalid' as const,
        'delete' as const,
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('table-change' as const),
      upload: fc.nat({ max: 7 }),
      change: fc.constantFrom(
        'touch' as const,
        'grow' as const,
        'break' as const,
        'break' as const,
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('bigquery-fault' as const),
      fault: fc.constantFrom('unavailable' as const, 'denied' as const),
    }),
  },
];

/**
 * One random action: `classic` schedules are about JSONL inputs; `manifests` schedules add
 * manifests, data files and tables changing between deliveries, and BigQuery faults.
 */
export function actionArb(mix: 'classic' | 'manifests' = 'classic'): fc.Arbitrary<Action> {
  const manifests = mix === 'manifests';
  const crash = manifests ? crashOrTransition : crashAt;
  return fc.oneof(
    {
      weight: manifests ? 2 : 5,
      arbitrary: fc.record({
        kind: fc.constant('upload' as const),
        name: fc.nat({ max: NAMES.length - 1 }),
        target: fc.nat({ max: TARGETS.length - 1 }),
        content: fc.constantFrom(...CONTENTS, 'valid', 'valid'),
      }),
    },
    ...(manifests ? manifestActions : []),
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('delete' as const),
        name: fc.nat({ max: (manifests ? ALL_NAMES : NAMES).length - 1 }),
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
      weight: manifests ? 3 : 2,
      arbitrary: fc.record({
        kind: fc.constant('vertex-fault' as const),
        fault: fc.constantFrom(
          // Manifest schedules: more lost creates (a job to adopt while its source changes).
          ...(manifests
            ? (['create-lost', 'create-lost', 'create-lost', 'create-lost'] as const)
            : []),
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
      arbitrary: fc.record({
        kind: fc.constant('vertex-forget' as const),
        job: fc.nat({ max: 7 }),
      }),
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
}

/**
 * A schedule: 1 to `max` actions; `manifestShare` of the schedules (by weight, out of 10) are
 * manifest schedules.
 */
export const scheduleArb = (max = 40, manifestShare = 3): fc.Arbitrary<Action[]> =>
  fc.oneof(
    {
      weight: 10 - manifestShare,
      arbitrary: fc.array(actionArb('classic'), { minLength: 1, maxLength: max }),
    },
    {
      // Longer: a manifest's story (files or table changing between deliveries) takes more steps.
      weight: manifestShare,
      arbitrary: fc.array(actionArb('manifests'), {
        minLength: 1,
        maxLength: Math.min(max, 30),
        size: '+1',
      }),
    },
  );

const crashText = (c: number | TransitionName | 'create'): string =>
  typeof c === 'number' ? `side effect ${c}` : `its first ${c}`;

/** One line per action. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'upload':
      return `upload ${JSON.stringify(NAMES[a.name])} (${TARGETS[a.target]?.label}, ${a.content})`;
    case 'manifest':
      return `upload manifest ${JSON.stringify(MANIFEST_NAMES[a.name])} (${MANIFEST_TARGETS[a.target]?.label}, ${a.source === 'table' ? 'table' : `${a.source} of ${a.files} file(s)`}, destination ${a.destination}${a.flaw === 'none' ? '' : `, ${a.flaw}`})`;
    case 'data':
      return `data file ${dataDir(a.claude)}f${a.file}.jsonl: ${a.change}`;
    case 'table-change':
      return `table of manifest upload #${a.upload}: ${a.change}`;
    case 'bigquery-fault':
      return `bigquery: next call ${a.fault}`;
    case 'delete':
      return `delete newest generation of ${JSON.stringify(ALL_NAMES[a.name])}`;
    case 'deliver':
      return `deliver upload #${a.upload} ×${a.copies}${a.crashAfter ? `, first copy crashes after ${crashText(a.crashAfter)}` : ''}${a.freezeAt ? `, first copy stalls before side effect ${a.freezeAt}` : ''}`;
    case 'poll':
      return `poll ×${a.overlap}${a.crashAfter ? `, first crashes after ${crashText(a.crashAfter)}` : ''}${a.freezeAt ? `, first stalls before side effect ${a.freezeAt}` : ''}${a.budgetMs ? `, budget ${a.budgetMs} ms` : ''}`;
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
    if (state === 'JOB_STATE_FAILED') patch.error = { code: 13, message: 'internal error' };
    const request = w.vertex.jobs.get(job.name)?.request;
    const output = request?.outputConfig;
    if (request && output && 'bigqueryDestination' in output) {
      // A BigQuery destination: an output table, named after the job unless the manifest named it.
      const m = /^bq:\/\/([^.]+)\.([^.]+)(?:\.(.+))?$/.exec(output.bigqueryDestination.outputUri);
      const dataset = `bq://${m?.[1]}.${m?.[2]}`;
      const table = m?.[3] ?? `predictions_${job.name.replace(/.*\//, '')}`;
      if (writeOutputTable(w, request, state, `${dataset}.${table}`)) {
        patch.outputInfo = { bigqueryOutputDataset: dataset, bigqueryOutputTable: table };
      }
    } else {
      const directory = `${job.name.replace(/.*\//, 'gs://acme-batch-output/results/')}/prediction-model-x`;
      patch.outputInfo = { gcsOutputDirectory: directory };
      writePredictions(w, job, state, directory);
    }
  }
  w.vertex.setState(job.name, patch);
}

/**
 * The lines a job read, in order: its input's pinned copy, a manifest's pinned copies one after
 * the other, a retry's file of failed rows, or a table's rows as they were when the job was
 * created (as JSONL lines).
 */
function linesRead(w: World, request: BatchJobRequest): string[] | undefined {
  const input = request.inputConfig;
  if ('bigquerySource' in input) {
    const table = w.tableAtCreate.get(request);
    return table && tableRequestLines(table);
  }
  const lines: string[] = [];
  for (const uri of requestInputUris(request)) {
    const written = w.reports.objects.get(uri);
    const bytes =
      w.reports.copies.get(uri) ?? (written === undefined ? undefined : Buffer.from(written));
    if (!bytes) return undefined;
    lines.push(
      ...bytes
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== ''),
    );
  }
  return lines;
}

/** A table's rows as the JSONL lines they stand for (as the digest reads them). */
export function tableRequestLines(table: FakeTable): string[] {
  const claude = table.columns.some((c) => c.name === 'custom_id');
  return table.rows.map((r) => requestLine(r.request, claude ? (r.custom_id ?? null) : undefined));
}

const FAILED_ROW = 'Internal Server Error: {"error": {"code": 500, "status": "INTERNAL"}}';
const RESPONSE = {
  candidates: [{ content: { parts: [{ text: 'ok' }] } }],
  usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 1 },
};

/**
 * What Vertex writes when a job ends: an output line per request of the input it read, in
 * reverse order (output order is not input order); the last request fails when the job partly
 * succeeded; a failed job writes nothing. The digest reads these before the event.
 */
function writePredictions(w: World, job: VertexBatchJob, state: string, directory: string): void {
  if (state === 'JOB_STATE_FAILED' || state === 'JOB_STATE_EXPIRED') return;
  const request = w.vertex.jobs.get(job.name)?.request;
  const lines = request && linesRead(w, request);
  if (!lines) return;
  const out = lines.map((l, i) => {
    const value = JSON.parse(l) as Record<string, unknown>;
    const failed = state === 'JOB_STATE_PARTIALLY_SUCCEEDED' && i === lines.length - 1;
    return JSON.stringify({
      ...(value.custom_id === undefined ? {} : { custom_id: value.custom_id }),
      request: value.request,
      status: failed ? FAILED_ROW : '',
      ...(failed ? {} : { response: RESPONSE }),
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

/**
 * The output table of a job with a BigQuery destination: a row per request (its request, and
 * custom_id for Claude), with `response` and `status`, in reverse order; the last request fails
 * when the job partly succeeded. A failed job writes no table (and reports no output).
 */
function writeOutputTable(w: World, request: BatchJobRequest, state: string, uri: string): boolean {
  if (state === 'JOB_STATE_FAILED' || state === 'JOB_STATE_EXPIRED') return false;
  const lines = linesRead(w, request);
  if (!lines) return false;
  const claude = request.model.includes('/anthropic/');
  const rows = lines.map((l, i) => {
    const value = JSON.parse(l) as Record<string, unknown>;
    const failed = state === 'JOB_STATE_PARTIALLY_SUCCEEDED' && i === lines.length - 1;
    return {
      ...(claude
        ? { custom_id: typeof value.custom_id === 'string' ? value.custom_id : null }
        : {}),
      request: JSON.stringify(value.request),
      response: failed ? null : JSON.stringify(RESPONSE),
      status: failed ? FAILED_ROW : '',
    };
  });
  w.putTable(uri, {
    columns: [
      ...(claude ? [{ name: 'custom_id', type: 'STRING', mode: 'NULLABLE' }] : []),
      { name: 'request', type: 'JSON', mode: 'NULLABLE' },
      { name: 'response', type: 'JSON', mode: 'NULLABLE' },
      { name: 'status', type: 'STRING', mode: 'NULLABLE' },
    ],
    rows: rows.reverse(),
  });
  return true;
}

/** The lines of a data file: 1 or 2 requests, Claude's with ids unique across files. */
function dataLines(claude: boolean, n: number): string {
  const count = 1 + (n % 2);
  return Array.from({ length: count }, (_, i) =>
    claude ? CLAUDE(`d${n}-r${i + 1}`, `data ${n}.${i + 1}`) : GEMINI(`data ${n}.${i + 1}`),
  )
    .map((l) => `${l}\n`)
    .join('');
}

/** A valid source table of 2 or 3 rows for a model (Claude's with custom_id). */
function sourceTable(claude: boolean, n: number, location: string): FakeTable {
  const count = 2 + (n % 2);
  const rows = Array.from({ length: count }, (_, i) => {
    const line = JSON.parse(
      claude ? CLAUDE(`t${n}-r${i + 1}`, `row ${n}.${i + 1}`) : GEMINI(`row ${n}.${i + 1}`),
    ) as { custom_id?: string; request: unknown };
    return {
      ...(claude ? { custom_id: line.custom_id ?? null } : { id: String(i + 1) }),
      request: JSON.stringify(line.request),
    };
  });
  return {
    columns: claude
      ? [
          { name: 'custom_id', type: 'STRING', mode: 'NULLABLE' },
          { name: 'request', type: 'STRING', mode: 'NULLABLE' },
        ]
      : [
          { name: 'id', type: 'INTEGER', mode: 'NULLABLE' },
          { name: 'request', type: 'JSON', mode: 'NULLABLE' },
        ],
    rows,
    location,
  };
}

/** True when a data file has a live generation. */
function dataExists(w: World, name: string): boolean {
  const live = [...w.data].reverse().find((d) => d.name === name);
  return live !== undefined && w.reader.bytes(BUCKET, name, live.generation) !== undefined;
}

/** Uploads a manifest (writing the files or the table it reads first). */
function uploadManifest(w: World, a: Action & { kind: 'manifest' }): string {
  const target = MANIFEST_TARGETS[a.target] ?? MANIFEST_TARGETS[0];
  const index = w.uploads.length;
  const dir = dataDir(target.claude);
  let source: ManifestSpec['source'];
  if (a.source === 'table') {
    const uri = `bq://${BQ_PROJECT}.${datasetOf('prompts', target.location)}.t${index}`;
    const table = sourceTable(target.claude, index, target.location);
    if (a.flaw === 'invalid' && table.rows[1]) table.rows[1].request = 'not json';
    if (a.flaw === 'other-region') table.location = 'US';
    if (a.flaw !== 'missing') w.putTable(uri, table);
    source = { kind: 'table', uri };
  } else {
    for (let k = 0; k < a.files; k++) {
      const name = `${dir}f${k}.jsonl`;
      if (!dataExists(w, name))
        w.putData(name, Buffer.from(dataLines(target.claude, w.data.length)));
    }
    if (a.flaw === 'invalid') w.putData(`${dir}f0.jsonl`, Buffer.from('{"request": \n'));
    const uris =
      a.source === 'pattern'
        ? [`gs://${BUCKET}/${dir}*.jsonl`]
        : Array.from({ length: a.files }, (_, k) => `gs://${BUCKET}/${dir}f${k}.jsonl`);
    // A list naming a file not there yet (a data action may add it before the delivery).
    if (a.flaw === 'missing' && a.source === 'list') uris.push(`gs://${BUCKET}/${dir}f3.jsonl`);
    source = { kind: 'files', uris };
  }
  const region =
    a.flaw === 'other-region' && a.source !== 'table' ? 'us-central1' : target.location;
  const destination = {
    none: undefined,
    gcs: `gs://acme-batch-output/custom/m${index}`,
    bq: `bq://${BQ_PROJECT}.${datasetOf('results', region)}`,
    'bq-table': `bq://${BQ_PROJECT}.${datasetOf('results', region)}.out${index}`,
  }[a.destination];
  const text = JSON.stringify({
    source:
      source.kind === 'table' ? source.uri : a.source === 'pattern' ? source.uris[0] : source.uris,
    ...(destination ? { destination } : {}),
    ...target.fields,
  });
  const up = w.upload(
    MANIFEST_NAMES[a.name] ?? MANIFEST_NAMES[0],
    Buffer.from(text),
    {},
    {
      source,
      destination,
    },
  );
  return `#${index} ${up.jobId}`;
}

/**
 * Changes the table of a manifest while the manifest waits: before its delivery, or while its
 * record waits with no live claim (queued, or between attempts). Once a job may read it, only a
 * job writing to BigQuery has its table changed (its digest does not read the source again), or
 * the table is rewritten as it was (a new lastModifiedTime only).
 */
async function changeTable(w: World, a: Action & { kind: 'table-change' }): Promise<string> {
  // The tables that may change now: of the manifests waiting, the ones picked among.
  const now = w.clock().getTime();
  const open: { up: Upload; created: boolean }[] = [];
  for (const up of w.uploads) {
    if (up.manifest?.source.kind !== 'table') continue;
    const record = await w.jobs.get(up.jobId);
    const idle =
      !record ||
      ((record.status === 'WAITING' || record.status === 'SUBMITTING') &&
        (!record.lease || Date.parse(record.lease.until) <= now));
    const created = w.creates.some((c) => c.jobId === up.jobId && c.made);
    const free =
      !created || a.change === 'touch' || up.manifest.destination?.startsWith('bq://') === true;
    if (idle && free) open.push({ up, created });
  }
  const picked = open[a.upload % Math.max(1, open.length)];
  const spec = picked?.up.manifest;
  if (!picked || spec?.source.kind !== 'table') return 'no table manifest waiting';
  const { up, created } = picked;
  const uri = spec.source.uri;
  const claude = up.bytes.toString('utf8').includes('claude');
  const location = /prompts_([a-z0-9_]+)\./.exec(uri)?.[1]?.replace(/_/g, '-') ?? 'us-central1';
  const table = structuredClone(
    w.tables.get(uri) ?? sourceTable(claude, w.uploads.length, location),
  );
  const n = table.rows.length + 1;
  if (a.change === 'grow') {
    const line = JSON.parse(claude ? CLAUDE(`g${n}`, `more ${n}`) : GEMINI(`more ${n}`)) as {
      custom_id?: string;
      request: unknown;
    };
    table.rows.push({
      ...(claude ? { custom_id: line.custom_id ?? null } : { id: String(n) }),
      request: JSON.stringify(line.request),
    });
  }
  const last = table.rows[table.rows.length - 1];
  if (a.change === 'break' && last) {
    if (claude) last.custom_id = null;
    else last.request = 'not json';
  }
  w.putTable(uri, table);
  return `${uri} ${a.change}${created ? ' (after a create)' : ''}`;
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
    case 'manifest':
      return uploadManifest(w, a);
    case 'data': {
      const name = `${dataDir(a.claude)}f${a.file}.jsonl`;
      if (a.change === 'delete') return w.removeData(name) ? 'deleted' : 'nothing to delete';
      const bytes = a.change === 'invalid' ? '{"request": \n' : dataLines(a.claude, w.data.length);
      return `generation ${w.putData(name, Buffer.from(bytes)).generation}`;
    }
    case 'table-change':
      return changeTable(w, a);
    case 'bigquery-fault':
      w.bigquery.failNext(
        a.fault === 'unavailable'
          ? new TransientError('BIGQUERY.UNAVAILABLE', 'HTTP 503')
          : new TransientError('BIGQUERY.PERMISSION_DENIED', 'HTTP 403 (IAM propagating)'),
      );
      return '';
    case 'delete':
      w.remove(ALL_NAMES[a.name] ?? NAMES[0]);
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
      w.forgotten.push(job.name);
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
  await w.clearBigQueryFault();
  // The worst time for stalled instances to come back: after their claims ran out and another
  // worker took their work over.
  if (w.anyFrozen()) {
    w.clock.advance(3600_000);
    await w.poll(1);
    await w.resumeAll();
  }
  w.vertex.clearFaults();
  w.publisher.clearFaults();
  await w.clearBigQueryFault();
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
