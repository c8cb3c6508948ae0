/**
 * Manifests under attack (README "Manifests"): duplicate and concurrent deliveries, crashes at
 * every step of a manifest's submission, sources that change under it, odd texts and URIs, the
 * digest of multi-file and BigQuery jobs, retries of their failed rows, budgets and the event.
 *
 * Tests marked `// Found by review:` pinned a bug (described as it was) that is now fixed.
 */
import { describe, expect, it } from 'vitest';
import { pollBatchJobs } from '../../shared/app/poll.js';
import { handleStorageEvent } from '../../shared/app/submit.js';
import { PermanentError, TransientError } from '../../shared/core/errors.js';
import { CompletionEventSchema, type CompletionEvent } from '../../shared/core/events.js';
import { MAX_MANIFEST_BYTES, parseManifest, wildcardMatcher } from '../../shared/core/manifest.js';
import type { Transition, TransitionName } from '../../shared/core/transitions.js';
import { requestInputUris, requestOutputUri } from '../../shared/core/vertex.js';
import { Crash, crashAtTransition } from '../crash.js';
import { ANTHROPIC_LINES, GEMINI_LINES, nextGeneration, type FakeTable } from '../fakes.js';
import { BAD, endJobs, line, QUOTA } from '../retry-world.js';
import {
  BUCKET,
  GEN,
  geminiTable,
  JOB_ID,
  manifestEvent,
  NAME,
  PREFIX,
  put,
  rejection,
  request,
  TABLE,
  upload,
  world,
  type World,
} from '../manifest-world.js';

/** Delivers the manifest's event again (Eventarc's retry after a failure). */
function redeliver(w: World) {
  const text = w.reader.bytes(BUCKET, NAME, GEN) ?? Buffer.alloc(0);
  return handleStorageEvent(manifestEvent(text), w.submitDeps);
}

/** Makes the `n`-th store update applying `transition` crash (before or after it is written). */
function crashAtNth(w: World, transition: TransitionName, n: number, when: 'before' | 'after') {
  const real = w.jobs.update.bind(w.jobs);
  let seen = 0;
  w.jobs.update = async (id, change) => {
    if ((change as Partial<Transition>).transition !== transition || ++seen !== n)
      return real(id, change);
    if (when === 'before') throw new Crash(`crash before ${transition} #${n}`);
    await real(id, change);
    throw new Crash(`crash after ${transition} #${n}`);
  };
}

/** Polls, ending jobs as they come, until an event is out (bounded). */
async function drive(w: World): Promise<CompletionEvent[]> {
  for (let i = 0; i < 16 && w.publisher.events.length === 0; i++) {
    await endJobs(w);
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps);
  }
  return w.publisher.events.map((e) => CompletionEventSchema.parse(e));
}

function resultsOf(
  w: World,
  uri: string,
): { line: number; status: string; error: string | null }[] {
  return (w.reports.objects.get(uri) ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { line: number; status: string; error: string | null });
}

describe('manifest deliveries: one job, whatever arrives', () => {
  it('concurrent deliveries of one manifest create exactly one job over one set of copies', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), GEMINI_LINES);
    const text = put(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const outs = await Promise.all(
      [1, 2, 3].map(() => handleStorageEvent(manifestEvent(text), w.submitDeps)),
    );
    expect(outs.filter((o) => o.outcome === 'submitted')).toHaveLength(1);
    expect(outs.filter((o) => o.outcome === 'duplicate')).toHaveLength(2);
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.publisher.events).toHaveLength(0);
    // A later duplicate changes nothing.
    expect(await redeliver(w)).toMatchObject({ outcome: 'duplicate', status: 'SUBMITTED' });
    expect(w.vertex.creates).toHaveLength(1);
  });

  it('a crash right after the manifest is read: the redelivery creates one job', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    crashAtTransition(w, 'toManifest', 'after');
    await expect(upload(w, { source: 'gs://acme-batch-input/in/a.jsonl' })).rejects.toThrow(Crash);
    expect(await redeliver(w)).toMatchObject({ outcome: 'submitted' });
    expect(w.vertex.creates).toHaveLength(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ requestCount: 3, status: 'SUBMITTED' });
  });

  it('a create whose answer was lost: the redelivery adopts the job, over the same pinned copies', async () => {
    const w = world();
    const gen = nextGeneration();
    w.reader.put(BUCKET, 'in/a.jsonl', gen, GEMINI_LINES);
    w.vertex.loseNextCreateAnswer();
    await expect(upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' })).rejects.toThrow(
      TransientError,
    );
    // The file is replaced meanwhile: the job already reads the copy of the validated generation.
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES.split('\n')[0] + '\n');
    const out = await redeliver(w);
    expect(out).toMatchObject({ outcome: 'submitted', recovered: true });
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.vertex.jobs.size).toBe(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({
      requestCount: 3,
      manifest: { files: [{ generation: gen, pinnedUri: `${PREFIX}inputs/001-${gen}.jsonl` }] },
    });
  });

  it('a crash after the create, polled later: one job, recorded', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    crashAtTransition(w, 'toSubmitted', 'before');
    await expect(upload(w, { source: 'gs://acme-batch-input/in/a.jsonl' })).rejects.toThrow(Crash);
    w.clock.advance(16 * 60_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.creates).toHaveLength(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ status: 'SUBMITTED' });
  });

  // Found by review: a crash after the files were pinned (and recorded) but before the create: the resumed
  // submission expands the patterns again, so the job reads files that were never part of the
  // validated, pinned set (a file uploaded since, for tomorrow's manifest: billed twice) and a
  // replaced file's new generation, not the copies the record names.
  it('a crash after pinning: the resumed submission creates over the pinned copies, not a new expansion', async () => {
    const w = world();
    const genA = nextGeneration();
    const genB = nextGeneration();
    w.reader.put(BUCKET, 'in/a.jsonl', genA, GEMINI_LINES);
    w.reader.put(BUCKET, 'in/b.jsonl', genB, GEMINI_LINES.split('\n')[0] + '\n');
    // The first toManifest records what the manifest says; the second, the pinned files.
    crashAtNth(w, 'toManifest', 2, 'after');
    await expect(upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' })).rejects.toThrow(Crash);
    const pinned = [`${PREFIX}inputs/001-${genA}.jsonl`, `${PREFIX}inputs/002-${genB}.jsonl`];
    expect((await w.jobs.get(JOB_ID))?.manifest?.files.map((f) => f.pinnedUri)).toEqual(pinned);

    // Meanwhile: tomorrow's file arrives, and a.jsonl is replaced.
    w.reader.put(BUCKET, 'in/c.jsonl', nextGeneration(), GEMINI_LINES);
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES.split('\n')[1] + '\n');
    expect(await redeliver(w)).toMatchObject({ outcome: 'submitted' });
    expect(w.vertex.creates).toHaveLength(1);
    expect(requestInputUris(w.vertex.creates[0]!.request)).toEqual(pinned);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ requestCount: 4 });
  });

  // Found by review: a create whose answer was lost for a BigQuery source, then the table changes (a row is
  // appended, here a bad one): the redelivery validates the table again before looking for the
  // job by its label, and rejects the input while its Vertex job runs, untracked and billed.
  it('a lost create over a table that changes afterwards: the job is adopted, never rejected behind it', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one', 'two', 'three']));
    w.vertex.loseNextCreateAnswer();
    await expect(upload(w, { source: TABLE })).rejects.toThrow(TransientError);
    expect(w.vertex.jobs.size).toBe(1);
    const table = geminiTable(['one', 'two', 'three']);
    w.bigquery.put(TABLE, { ...table, rows: [...table.rows, { id: '4', request: null }] });
    const out = await redeliver(w);
    expect(out).toMatchObject({ outcome: 'submitted', recovered: true });
    expect(w.publisher.events).toHaveLength(0);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({
      status: 'SUBMITTED',
      vertexJob: [...w.vertex.jobs.keys()][0],
    });
  });

  it('the same file matched by two patterns and by name is read once', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, {
      source: [
        'gs://acme-batch-input/in/a.jsonl',
        'gs://acme-batch-input/in/*.jsonl',
        'gs://acme-batch-input/**.jsonl',
      ],
    });
    expect(requestInputUris(w.vertex.creates[0]!.request)).toHaveLength(1);
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ requestCount: 3 });
  });

  it('a file replaced between its validation and its pinning is refused, naming it', async () => {
    const w = world();
    const gen = nextGeneration();
    w.reader.put(BUCKET, 'in/a.jsonl', gen, GEMINI_LINES);
    const copy = w.reports.copy.bind(w.reports);
    w.reports.copy = async (from, uri) => {
      w.reader.remove(from.bucket, from.name, from.generation);
      w.reader.put(from.bucket, from.name, nextGeneration(), GEMINI_LINES);
      return copy(from, uri);
    };
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const event = rejection(w);
    expect(event.error).toMatchObject({
      code: 'INPUT.NOT_FOUND',
      message: expect.stringContaining(`gs://acme-batch-input/in/a.jsonl#${gen}`),
    });
  });

  it('a file deleted between listing and reading is refused, naming it', async () => {
    const w = world();
    const gen = nextGeneration();
    w.reader.put(BUCKET, 'in/a.jsonl', gen, GEMINI_LINES);
    const list = w.reader.list.bind(w.reader);
    w.reader.list = async (bucket, prefix) => {
      const found = await list(bucket, prefix);
      if (prefix === 'in/') w.reader.remove(BUCKET, 'in/a.jsonl', gen);
      return found;
    };
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    expect(rejection(w).error?.message).toContain('gs://acme-batch-input/in/a.jsonl');
  });
});

describe('manifest texts and URIs', () => {
  it.each<[string, string | Buffer, RegExp]>([
    [
      'a __proto__ key',
      '{"source": "gs://acme-batch-input/a.jsonl", "__proto__": {"x": 1}}',
      /"__proto__" is not a manifest field/,
    ],
    [
      'a constructor key',
      '{"source": "gs://acme-batch-input/a.jsonl", "constructor": 1}',
      /"constructor" is not a manifest field/,
    ],
    [
      'deep nesting',
      `{"source": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
      /"source" is an empty list|"source"\[0\] must be/,
    ],
    [
      'a model that is an object',
      '{"source": "gs://acme-batch-input/a.jsonl", "model": {"name": "x"}}',
      /"model" must be a non-empty string/,
    ],
    [
      'a bucket-only URI',
      '{"source": "gs://acme-batch-input"}',
      /"source" "gs:\/\/acme-batch-input" is not a gs:\/\/bucket\/object URI/,
    ],
    [
      'a bucket with a trailing slash',
      '{"source": "gs://acme-batch-input/"}',
      /is not a gs:\/\/bucket\/object URI/,
    ],
    ['a character class', '{"source": "gs://acme-batch-input/in/[ab].jsonl"}', /character classes/],
    [
      'a triple star',
      '{"source": "gs://acme-batch-input/in/***.jsonl"}',
      /"\*\*\*" is not a wildcard/,
    ],
    ['a backslash', '{"source": "gs://acme-batch-input/in\\\\..\\\\x.jsonl"}', /backslashes/],
    [
      'a wildcard in the bucket',
      '{"source": "gs://acme-*/in/a.jsonl"}',
      /is not a gs:\/\/bucket\/object URI/,
    ],
    [
      'a destination with a wildcard',
      '{"source": "gs://acme-batch-input/a.jsonl", "destination": "gs://acme-batch-output/*"}',
      /"destination" "gs:\/\/acme-batch-output\/\*" is not a gs:\/\/bucket\/prefix/,
    ],
    ['an empty object', '{}', /"source" is required/],
    ['null', 'null', /must be a JSON object/],
    ['an empty file', '', /is not valid JSON/],
  ])('%s: rejected, naming the field', async (_, text, message) => {
    const w = world();
    const out = await upload(w, text);
    expect(out).toMatchObject({ outcome: 'rejected' });
    const event = rejection(w);
    expect(event.error?.code).toBe('INPUT.INVALID_MANIFEST');
    expect(event.error?.message).toMatch(message);
    expect(event.error?.message.startsWith(NAME)).toBe(true);
    // The event names the manifest as its input.
    expect(event.input.uri).toBe(`gs://${BUCKET}/${NAME}`);
  });

  it('a manifest over the size limit is refused without being read whole', async () => {
    const w = world();
    const text = JSON.stringify({
      source: 'gs://acme-batch-input/a.jsonl',
      model: 'x'.repeat(MAX_MANIFEST_BYTES),
    });
    await upload(w, text);
    expect(rejection(w).error?.message).toMatch(
      /a manifest is at most 65536 bytes; this one is 65537/,
    );
  });

  it('%2e%2e in a source is refused by the read allow-list', async () => {
    const w = world();
    await upload(w, { source: 'gs://acme-batch-input/in/%2e%2e/secret/*.jsonl' });
    expect(rejection(w).error).toMatchObject({ code: 'INPUT.SOURCE_NOT_ALLOWED' });
  });

  it('a pattern under an allowed prefix cannot reach beside it', async () => {
    const w = world({ ALLOWED_FILE_URI_PREFIXES: 'gs://acme-batch-input/public/' });
    w.reader.put(BUCKET, 'public-secret/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, { source: 'gs://acme-batch-input/public*/a.jsonl' });
    expect(rejection(w).error).toMatchObject({ code: 'INPUT.SOURCE_NOT_ALLOWED' });
    const w2 = world({ ALLOWED_FILE_URI_PREFIXES: 'gs://acme-batch-input/public/' });
    await upload(w2, { source: 'gs://acme-batch-input/pub?ic/a.jsonl' });
    expect(rejection(w2).error).toMatchObject({ code: 'INPUT.SOURCE_NOT_ALLOWED' });
  });

  it('URIs with spaces are trimmed at the ends and kept inside', () => {
    const parsed = parseManifest(
      Buffer.from(JSON.stringify({ source: '  gs://acme-batch-input/my files/a b.jsonl ' })),
      NAME,
    );
    expect(parsed).toMatchObject({
      source: { kind: 'gcs', uris: ['gs://acme-batch-input/my files/a b.jsonl'] },
    });
  });

  it('the wildcard matcher takes ., +, (, $ and newlines literally, * within a folder, ** across', () => {
    const m = wildcardMatcher('in/a+(b).$x*.jsonl');
    expect(m('in/a+(b).$x.jsonl')).toBe(true);
    expect(m('in/a+(b).$x-1.jsonl')).toBe(true);
    expect(m('in/aa(b).$x.jsonl')).toBe(false);
    expect(m('in/a+(b)x$x.jsonl')).toBe(false);
    expect(m('in/a+(b).$x/deeper.jsonl')).toBe(false);
    expect(wildcardMatcher('in/*.jsonl')('in/line\nbreak.jsonl')).toBe(true);
    expect(wildcardMatcher('in/**.jsonl')('in/a/b\nc/d.jsonl')).toBe(true);
    expect(wildcardMatcher('in/?.jsonl')('in/\n.jsonl')).toBe(true);
    expect(wildcardMatcher('in/?.jsonl')('in//.jsonl')).toBe(false);
    expect(wildcardMatcher('in/*.jsonl')('in/a.jsonl.bak')).toBe(false);
  });

  it('a stray character where JSON expects a comma: the message says where', async () => {
    const w = world();
    await upload(w, '{"source": "gs://acme-batch-input/a.jsonl"]\n');
    expect(rejection(w).error?.message).toMatch(/is not valid JSON \(at line 1 column 43\)/);
  });

  // Found by review: for an unexpected token (here a URI without its quotes) Node 20's JSON.parse reports no
  // position, and the message then says "unexpected end" for a manifest whose problem is at its
  // start: the wrong "where".
  it('an unquoted value: the message says where it is, not "unexpected end"', async () => {
    const w = world();
    await upload(w, '{"source": gs://acme-batch-input/a.jsonl}\n');
    const message = rejection(w).error?.message ?? '';
    expect(message).not.toMatch(/unexpected end/);
    expect(message).toMatch(/line 1 column 12/);
  });

  // Found by review: a manifest saved with a UTF-8 byte order mark is "not valid JSON (unexpected end)"; a
  // JSONL file with one is told "starts with a UTF-8 byte order mark (BOM)".
  it('a byte order mark is named as such', async () => {
    const w = world();
    await upload(
      w,
      Buffer.concat([
        Buffer.from([0xef, 0xbb, 0xbf]),
        Buffer.from('{"source": "gs://acme-batch-input/a.jsonl"}'),
      ]),
    );
    const message = rejection(w).error?.message ?? '';
    expect(message).not.toMatch(/unexpected end/);
    expect(message).toMatch(/byte order mark|BOM/);
  });

  // Found by review: bytes that are not UTF-8 are silently replaced by U+FFFD, so the manifest names a file
  // the user never wrote ("gs://…/in/\uFFFD.jsonl does not exist"); a JSONL file is refused as
  // "not valid UTF-8".
  it('a manifest that is not UTF-8 is refused as such', async () => {
    const w = world();
    await upload(
      w,
      Buffer.concat([
        Buffer.from('{"source": "gs://acme-batch-input/in/'),
        Buffer.from([0xff]),
        Buffer.from('.jsonl"}'),
      ]),
    );
    const event = rejection(w);
    expect(event.error?.code).toBe('INPUT.INVALID_MANIFEST');
    expect(event.error?.message).toMatch(/UTF-8/);
  });

  // Found by review: a bad "location" in the manifest is reported as "custom metadata location", pointing the
  // user at object metadata they never set instead of the manifest's field.
  it('a bad "location" in the manifest is named as the manifest field', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, { source: 'gs://acme-batch-input/in/a.jsonl', location: 'Mars' });
    const message = rejection(w).error?.message ?? '';
    expect(message).toContain(NAME);
    expect(message).toMatch(/"location"/);
    expect(message).not.toMatch(/custom metadata/);
  });

  // Found by review: same for a model the deployment does not allow, named in the manifest.
  it('a disallowed "model" in the manifest is named as the manifest field', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, { source: 'gs://acme-batch-input/in/a.jsonl', model: 'gemini-1.0-pro-002' });
    const event = rejection(w);
    expect(event.error?.code).toBe('INPUT.MODEL_NOT_ALLOWED');
    expect(event.error?.message).toMatch(/"model"/);
    expect(event.error?.message).not.toMatch(/custom metadata/);
  });
});

describe('manifest sources: what is validated', () => {
  // Found by review: Claude custom_ids are checked for uniqueness per file only: two files of one job may
  // repeat an id; Vertex's job (and the digest, which matches output to input by custom_id)
  // cannot tell the two requests apart.
  it('Claude custom_ids must be unique across the files of one job', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), ANTHROPIC_LINES);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), ANTHROPIC_LINES);
    const out = await upload(w, {
      source: 'gs://acme-batch-input/in/*.jsonl',
      model: 'claude-3-5-haiku',
    });
    expect(out).toMatchObject({ outcome: 'rejected', code: 'INPUT.INVALID_JSONL' });
    expect(rejection(w).error?.message).toMatch(
      /^gs:\/\/acme-batch-input\/in\/b\.jsonl line 1: "custom_id" "r1" is used by an earlier line/,
    );
  });

  it('Claude custom_ids repeated in a table are refused, naming the row', async () => {
    const w = world();
    const lines = ANTHROPIC_LINES.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { custom_id: string; request: unknown });
    w.bigquery.put(TABLE, {
      columns: [
        { name: 'custom_id', type: 'STRING', mode: 'NULLABLE' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
      ],
      rows: [...lines, lines[0]!].map((l) => ({
        custom_id: l.custom_id,
        request: JSON.stringify(l.request),
      })),
      location: 'us-east5',
    });
    w.bigquery.addDataset('acme-prod.prompts', 'us-east5');
    await upload(w, { source: TABLE, model: 'claude-3-5-haiku' });
    expect(rejection(w).error?.message).toMatch(
      /row 3: "custom_id" "r1" is used by an earlier line/,
    );
  });

  // Found by review: Vertex AI needs a destination table that does not exist yet ("When the full table
  // reference is specified, the Dataset must exist and table must not exist"): an existing one
  // (here the source table itself) passes validation and the job fails hours later.
  it('a destination table that exists already is refused before submit', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one']));
    const out = await upload(w, { source: TABLE, destination: TABLE });
    expect(out).toMatchObject({ outcome: 'rejected' });
    const event = rejection(w);
    expect(event.error?.code).toMatch(/^INPUT\./);
    expect(event.error?.message).toMatch(
      /"destination".*bq:\/\/acme-prod\.prompts\.reviews.*exists/,
    );
  });

  it('a destination table that does not exist yet is accepted and sent as given', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one']));
    await upload(w, { source: TABLE, destination: 'bq://acme-prod.results.nightly_out' });
    expect(w.vertex.creates[0]?.request.outputConfig).toEqual({
      predictionsFormat: 'bigquery',
      bigqueryDestination: { outputUri: 'bq://acme-prod.results.nightly_out' },
    });
  });

  it.each<[string, Partial<FakeTable>, RegExp]>([
    [
      'a REPEATED request column',
      { columns: [{ name: 'request', type: 'STRING', mode: 'REPEATED' }] },
      /"request" column of type REPEATED STRING/,
    ],
    [
      'a Status column (any case)',
      {
        columns: [
          { name: 'request', type: 'JSON', mode: 'NULLABLE' },
          { name: 'Status', type: 'STRING', mode: 'NULLABLE' },
        ],
      },
      /has a "status" column/,
    ],
    [
      'a NULL request',
      { rows: [{ request: JSON.stringify(request('a')) }, { request: null }] },
      /row 2: has no "request" value \(NULL\)/,
    ],
    [
      'a request that is a JSON array',
      { rows: [{ request: '[1]' }] },
      /row 1: has a "request" that is not a JSON object/,
    ],
  ])('%s is refused, naming the column or the row', async (_, table, message) => {
    const w = world();
    w.bigquery.put(TABLE, { ...geminiTable(['one']), ...table });
    await upload(w, { source: TABLE });
    expect(rejection(w).error?.message).toMatch(message);
  });

  // Found by review: an empty table is reported at "row 0", a row that does not exist.
  it('an empty table is refused without naming a row 0', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable([]));
    await upload(w, { source: TABLE });
    const event = rejection(w);
    expect(event.error?.code).toBe('INPUT.EMPTY');
    expect(event.error?.message).toMatch(/bq:\/\/acme-prod\.prompts\.reviews.*no rows/);
    expect(event.error?.message).not.toMatch(/row 0/);
  });

  it('rows changing while they are validated: validated again later, not submitted', async () => {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(['one', 'two', 'three']));
    const rows = w.bigquery.rows.bind(w.bigquery);
    let touched = false;
    w.bigquery.rows = async function* (ref, columns) {
      for await (const row of rows(ref, columns)) {
        if (!touched) {
          touched = true;
          w.bigquery.put(TABLE, geminiTable(['one', 'two', 'three', 'four']));
        }
        yield row;
      }
    };
    await expect(upload(w, { source: TABLE })).rejects.toThrow(/changed while it was validated/);
    expect(w.vertex.creates).toHaveLength(0);
    expect(await redeliver(w)).toMatchObject({ outcome: 'submitted' });
    expect(await w.jobs.get(JOB_ID)).toMatchObject({ requestCount: 4 });
  });
});

describe('manifest budgets', () => {
  async function estimateOf(manifest: unknown, files: Record<string, string>, table?: FakeTable) {
    const w = world();
    for (const [name, content] of Object.entries(files))
      w.reader.put(BUCKET, name, nextGeneration(), content);
    if (table) w.bigquery.put(TABLE, table);
    await upload(w, manifest);
    return (await w.jobs.get(JOB_ID))?.estimate?.usd ?? 0;
  }

  it('MAX_ESTIMATED_COST_USD applies to all files of a manifest together', async () => {
    const one = await estimateOf(
      { source: 'gs://acme-batch-input/in/a.jsonl' },
      { 'in/a.jsonl': GEMINI_LINES },
    );
    expect(one).toBeGreaterThan(0);
    const w = world({ MAX_ESTIMATED_COST_USD: String(one * 1.5) });
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), GEMINI_LINES);
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const event = rejection(w);
    expect(event.error).toMatchObject({
      code: 'INPUT.OVER_BUDGET',
      message: expect.stringContaining(NAME),
    });
    expect(event.cost?.estimatedUsd).toBeGreaterThan(one * 1.5);
    expect(w.reports.copies.size).toBe(0);
  });

  it('MAX_ESTIMATED_COST_USD applies to a table', async () => {
    const one = await estimateOf({ source: TABLE }, {}, geminiTable(['one']));
    const w = world({ MAX_ESTIMATED_COST_USD: String(one * 1.5) });
    w.bigquery.put(TABLE, geminiTable(['one', 'two']));
    await upload(w, { source: TABLE });
    expect(rejection(w).error?.code).toBe('INPUT.OVER_BUDGET');
  });
});

describe('digests of manifest jobs', () => {
  it('a multi-file job: results numbered across files in input order, trailing blank lines of the first file skipped', async () => {
    const w = world();
    const a = [line('a1 [ok]'), line('a2 [bad]')].join('\n') + '\n\n\n';
    const b = [line('b1 [ok]'), line('b2 [bad]'), line('b3 [ok]')].join('\n');
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), a);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), b);
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const events = await drive(w);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      eventType: 'job.completed',
      input: { uri: 'gs://acme-batch-input/in/*.jsonl', name: NAME, requestCount: 5 },
      output: { uriPrefix: PREFIX },
      results: {
        rows: { succeeded: 3, failed: 2, missing: 0 },
        failedRowsUri: `${PREFIX}failed.jsonl`,
      },
    });
    expect(resultsOf(w, `${PREFIX}results.jsonl`).map((r) => [r.line, r.status])).toEqual([
      [1, 'succeeded'],
      [2, 'failed'],
      [3, 'succeeded'],
      [4, 'failed'],
      [5, 'succeeded'],
    ]);
    expect(w.reports.objects.get(`${PREFIX}failed.jsonl`)).toBe(
      `${line('a2 [bad]')}\n${line('b2 [bad]')}\n`,
    );
  });

  it('a manifest with a gs destination: output where asked, digest under the job prefix', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), `${line('x [ok]')}\n`);
    await upload(w, {
      source: 'gs://acme-batch-input/in/a.jsonl',
      destination: 'gs://acme-batch-output/custom//',
    });
    expect(requestOutputUri(w.vertex.creates[0]!.request)).toBe('gs://acme-batch-output/custom/');
    const events = await drive(w);
    expect(events[0]).toMatchObject({
      output: {
        uriPrefix: 'gs://acme-batch-output/custom/',
        directory: 'gs://acme-batch-output/custom/prediction-model-x',
      },
      results: {
        rows: { succeeded: 1, failed: 0, missing: 0 },
        failedRowsUri: null,
        summaryUri: `${PREFIX}summary.json`,
      },
    });
  });

  // Found by review: with RETRY_FAILED_ROWS (default 1), a multi-file manifest's transient failures are sent
  // again, but the merge of the attempts reads `<prefix>input.jsonl`, which a manifest never has
  // (its copies are `<prefix>inputs/NNN-<generation>.jsonl`): the merge fails on every attempt and
  // the input is announced with `results: null`, its merged results lost.
  it('failed rows of a multi-file manifest are retried and merged back in input order', async () => {
    const w = world({ RETRY_FAILED_ROWS: '1' });
    w.reader.put(
      BUCKET,
      'in/a.jsonl',
      nextGeneration(),
      `${line('a1 [ok]')}\n${line('a2 [quota]')}\n`,
    );
    w.reader.put(
      BUCKET,
      'in/b.jsonl',
      nextGeneration(),
      `${line('b1 [bad]')}\n${line('b2 [lost]')}\n`,
    );
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    const events = await drive(w);
    expect(events).toHaveLength(1);
    // The merge never failed (it read the input the job read).
    expect(
      w.log.lines
        .filter((l) => JSON.stringify(l).includes('digest.failed'))
        .map((l) => (l.error as { message?: string } | undefined)?.message ?? l.reason),
    ).toEqual([]);
    expect(w.reports.objects.get(`${PREFIX}attempt-2/input.jsonl`)).toBe(
      `${line('a2 [quota]')}\n${line('b2 [lost]')}\n`,
    );
    expect(events[0]).toMatchObject({
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      results: {
        rows: { succeeded: 3, failed: 1, missing: 0 },
        resultsUri: `${PREFIX}results.jsonl`,
        failedRowsUri: `${PREFIX}failed.jsonl`,
      },
    });
    expect(resultsOf(w, `${PREFIX}results.jsonl`).map((r) => [r.line, r.status])).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
      [3, 'failed'],
      [4, 'succeeded'],
    ]);
    expect(w.reports.objects.get(`${PREFIX}failed.jsonl`)).toBe(`${line('b1 [bad]')}\n`);
  });

  // Found by review: the same for a BigQuery source writing to Cloud Storage: no `<prefix>input.jsonl`.
  it('failed rows of a table job writing to Cloud Storage are retried and merged back', async () => {
    const w = world({ RETRY_FAILED_ROWS: '1' });
    const texts = ['t1 [ok]', 't2 [quota]', 't3 [bad]'];
    w.bigquery.put(TABLE, {
      columns: [{ name: 'request', type: 'JSON', mode: 'NULLABLE' }],
      rows: texts.map((t) => ({
        request: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: t }] }] }),
      })),
    });
    await upload(w, { source: TABLE });
    const events = await drive(w);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      input: { uri: TABLE, requestCount: 3 },
      results: {
        rows: { succeeded: 2, failed: 1, missing: 0 },
        resultsUri: `${PREFIX}results.jsonl`,
      },
    });
  });

  // Found by review: a STRING request column may hold pretty-printed JSON (it passes validation); the digest
  // writes each row as `{"request":<cell>}` verbatim, so failed.jsonl (and a retry's input) holds
  // one request over several lines: not JSONL, not "ready to be sent again".
  it('failed rows of a table with pretty-printed STRING requests are written one per line', async () => {
    const w = world();
    const texts = ['p1 [ok]', 'p2 [bad]'];
    w.bigquery.put(TABLE, {
      columns: [{ name: 'request', type: 'STRING', mode: 'NULLABLE' }],
      rows: texts.map((t) => ({
        request: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: t }] }] }, null, 2),
      })),
    });
    await upload(w, { source: TABLE });
    const events = await drive(w);
    expect(events[0]).toMatchObject({ results: { rows: { succeeded: 1, failed: 1, missing: 0 } } });
    const failed = (w.reports.objects.get(`${PREFIX}failed.jsonl`) ?? '')
      .split('\n')
      .filter((l) => l !== '');
    expect(failed).toHaveLength(1);
    expect(JSON.parse(failed[0]!)).toEqual({
      request: { contents: [{ role: 'user', parts: [{ text: 'p2 [bad]' }] }] },
    });
  });
});

describe('digests of BigQuery output tables', () => {
  const OUTPUT = 'bq://acme-prod.results.predictions_2026_11_26T10_20_00_000Z';
  const response = JSON.stringify({
    candidates: [{ content: { role: 'model', parts: [{ text: 'ok' }] } }],
    usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 3, totalTokenCount: 13 },
  });

  async function submittedToTable(texts: string[]) {
    const w = world();
    w.bigquery.put(TABLE, geminiTable(texts));
    await upload(w, { source: TABLE, destination: 'bq://acme-prod.results' });
    const vertexJob = [...w.vertex.jobs.keys()][0]!;
    const end = () =>
      w.vertex.setState(vertexJob, {
        state: 'JOB_STATE_SUCCEEDED',
        outputInfo: {
          bigqueryOutputDataset: 'bq://acme-prod.results',
          bigqueryOutputTable: 'predictions_2026_11_26T10_20_00_000Z',
        },
        completionStats: { successfulCount: String(texts.length) },
      });
    return { w, end };
  }

  function outputTable(rows: Record<string, string | null>[]): FakeTable {
    return {
      columns: [
        { name: 'id', type: 'INTEGER', mode: 'NULLABLE' },
        { name: 'request', type: 'JSON', mode: 'NULLABLE' },
        { name: 'response', type: 'JSON', mode: 'NULLABLE' },
        { name: 'status', type: 'STRING', mode: 'NULLABLE' },
      ],
      rows,
    };
  }

  it('with RETRY_FAILED_ROWS, a job writing a table sends nothing again: its failed rows are listed', async () => {
    const w = world({ RETRY_FAILED_ROWS: '2' });
    w.bigquery.put(TABLE, geminiTable(['one', 'two']));
    await upload(w, { source: TABLE, destination: 'bq://acme-prod.results' });
    const rows = geminiTable(['one', 'two']).rows;
    w.bigquery.put(
      OUTPUT,
      outputTable([
        { ...rows[0]!, response, status: '' },
        { ...rows[1]!, response: null, status: QUOTA },
      ]),
    );
    w.vertex.setState([...w.vertex.jobs.keys()][0]!, {
      state: 'JOB_STATE_PARTIALLY_SUCCEEDED',
      outputInfo: {
        bigqueryOutputDataset: 'bq://acme-prod.results',
        bigqueryOutputTable: 'predictions_2026_11_26T10_20_00_000Z',
      },
    });
    await pollBatchJobs(w.pollDeps);
    expect(w.vertex.creates).toHaveLength(1);
    expect(w.publisher.events).toHaveLength(1);
    expect(CompletionEventSchema.parse(w.publisher.events[0])).toMatchObject({
      results: {
        rows: { succeeded: 1, failed: 1, missing: 0 },
        failedRowsUri: `${PREFIX}failed.jsonl`,
      },
      attempts: [{ rows: { succeeded: 1, failed: 1 } }],
    });
  });

  it('no failed row: failed.jsonl absent, failedRowsUri null; usage summed', async () => {
    const { w, end } = await submittedToTable(['one', 'two']);
    const rows = geminiTable(['one', 'two']).rows;
    w.bigquery.put(OUTPUT, outputTable(rows.map((r) => ({ ...r, response, status: null }))));
    end();
    await pollBatchJobs(w.pollDeps);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      output: { uriPrefix: 'bq://acme-prod.results', directory: OUTPUT },
      results: {
        rows: { succeeded: 2, failed: 0, missing: 0 },
        failedRowsUri: null,
        resultsUri: OUTPUT,
      },
      usage: { inputTokens: 20, outputTokens: 6 },
    });
    expect(w.reports.objects.has(`${PREFIX}failed.jsonl`)).toBe(false);
  });

  it('rows missing from the output table are counted as missing', async () => {
    const { w, end } = await submittedToTable(['one', 'two', 'three']);
    const rows = geminiTable(['one']).rows;
    w.bigquery.put(OUTPUT, outputTable(rows.map((r) => ({ ...r, response, status: '' }))));
    end();
    await pollBatchJobs(w.pollDeps);
    expect(CompletionEventSchema.parse(w.publisher.events[0]).results?.rows).toEqual({
      succeeded: 1,
      failed: 0,
      missing: 2,
    });
  });

  it('a missing output table: one event without results, with a valid schema', async () => {
    const { w, end } = await submittedToTable(['one']);
    end();
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event).toMatchObject({ results: null, output: { directory: OUTPUT } });
  });

  it('BigQuery failing mid-digest: the digest runs again and one event goes out, files written once', async () => {
    const { w, end } = await submittedToTable(['one', 'two', 'three']);
    const rows = geminiTable(['one', 'two', 'three']).rows;
    w.bigquery.put(
      OUTPUT,
      outputTable([
        { ...rows[0]!, response, status: '' },
        { ...rows[1]!, response: null, status: BAD },
        { ...rows[2]!, response, status: '' },
      ]),
    );
    end();
    const realRows = w.bigquery.rows.bind(w.bigquery);
    let broken = true;
    w.bigquery.rows = async function* (ref, columns) {
      let n = 0;
      for await (const row of realRows(ref, columns)) {
        if (broken && ++n === 3) {
          broken = false;
          throw new TransientError('BIGQUERY.UNAVAILABLE', 'tabledata.list: HTTP 503');
        }
        yield row;
      }
    };
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(0);
    w.clock.advance(5 * 60_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event.results?.rows).toEqual({ succeeded: 2, failed: 1, missing: 0 });
    expect(w.reports.objects.get(`${PREFIX}failed.jsonl`)).toBe(
      `{"request":${rows[1]!.request}}\n`,
    );
    // Later runs reuse summary.json and publish nothing more.
    w.clock.advance(5 * 60_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
  });

  it('a crash after the digest was written, before it was recorded: the rerun reuses summary.json', async () => {
    const { w, end } = await submittedToTable(['one']);
    w.bigquery.put(
      OUTPUT,
      outputTable(geminiTable(['one']).rows.map((r) => ({ ...r, response, status: '' }))),
    );
    end();
    crashAtTransition(w, 'toDigested', 'before');
    await pollBatchJobs(w.pollDeps).catch(() => undefined);
    expect(w.reports.objects.has(`${PREFIX}summary.json`)).toBe(true);
    const rowsBefore = w.bigquery.calls.rows;
    w.clock.advance(10 * 60_000);
    await pollBatchJobs(w.pollDeps);
    expect(w.publisher.events).toHaveLength(1);
    expect(w.bigquery.calls.rows).toBe(rowsBefore);
    expect(CompletionEventSchema.parse(w.publisher.events[0]).results?.rows).toEqual({
      succeeded: 1,
      failed: 0,
      missing: 0,
    });
  });
});

describe('manifest events for every outcome', () => {
  it('a create refused by Vertex: SUBMIT_FAILED, one event, output null, valid schema', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), GEMINI_LINES);
    w.vertex.fail(
      'create',
      new PermanentError('VERTEX.INVALID_ARGUMENT', 'Vertex AI create: HTTP 400'),
    );
    await upload(w, { source: 'gs://acme-batch-input/in/*.jsonl' });
    expect(w.publisher.events).toHaveLength(1);
    const event = CompletionEventSchema.parse(w.publisher.events[0]);
    expect(event).toMatchObject({
      eventType: 'input.rejected',
      input: { uri: 'gs://acme-batch-input/in/*.jsonl', name: NAME, requestCount: 3 },
      output: null,
      error: { code: 'VERTEX.INVALID_ARGUMENT' },
    });
  });

  it('a list of sources is the event input.uri joined by ","', async () => {
    const w = world();
    w.reader.put(BUCKET, 'in/a.jsonl', nextGeneration(), `${line('a [ok]')}\n`);
    w.reader.put(BUCKET, 'in/b.jsonl', nextGeneration(), `${line('b [ok]')}\n`);
    await upload(w, {
      source: ['gs://acme-batch-input/in/a.jsonl', 'gs://acme-batch-input/in/b.jsonl'],
    });
    const events = await drive(w);
    expect(events[0]).toMatchObject({
      state: 'JOB_STATE_SUCCEEDED',
      input: {
        uri: 'gs://acme-batch-input/in/a.jsonl,gs://acme-batch-input/in/b.jsonl',
        requestCount: 2,
      },
      attempts: [{ state: 'JOB_STATE_SUCCEEDED', rows: { succeeded: 2, failed: 0 } }],
    });
  });

  it('a rejected table: input.uri is the table, the report under the job prefix', async () => {
    const w = world();
    await upload(w, { source: TABLE });
    const event = rejection(w);
    expect(event).toMatchObject({
      input: { uri: TABLE, name: NAME, requestCount: null },
      output: { uriPrefix: PREFIX, directory: null },
      attempts: [],
    });
  });
});
