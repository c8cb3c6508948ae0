/**
 * The promise, as invariants over a {@link World}: checked after every step (`always`) and once
 * the world is quiet (`atQuiescence`). Each returns the first violation it finds, in words.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import {
  CompletionEventSchema,
  finalStateOf,
  INPUT_REJECTED_STATE,
} from '../../shared/core/events.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import { MAX_DIGEST_ATTEMPTS } from '../../shared/core/transitions.js';
import { isTerminalState, requestInputUris, requestOutputUri } from '../../shared/core/vertex.js';
import { tableRequestLines } from './schedule.js';
import { BUCKET, type CreateSeen, type ManifestSpec, type Upload, type World } from './world.js';

const schema = JSON.parse(
  readFileSync(new URL('../../schema/completion-event.schema.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;
const ajv = new Ajv2020({ strict: false });
addFormats.default(ajv);
const validateEvent = ajv.compile(schema);

/** Live (not cancelled) Vertex jobs per input. */
function liveJobsByInput(w: World): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const job of w.vertex.jobs.values()) {
    if (job.state === 'JOB_STATE_CANCELLING' || job.state === 'JOB_STATE_CANCELLED') continue;
    const id = job.displayName ?? '';
    out.set(id, [...(out.get(id) ?? []), job.name]);
  }
  return out;
}

const linesOf = (bytes: Buffer | string): string[] =>
  bytes
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '');

/** What a manifest's event names as its input: its source, as written. */
function sourceUri(spec: ManifestSpec): string {
  return spec.source.kind === 'table' ? spec.source.uri : spec.source.uris.join(',');
}

/** The bytes of one generation of a data file, as the model wrote it. */
function dataBytes(w: World, uri: string, generation: string): Buffer | undefined {
  return w.data.find((d) => `gs://${BUCKET}/${d.name}` === uri && d.generation === generation)
    ?.bytes;
}

/**
 * The lines a manifest's job read, in order: the pinned copies its record names, or its table's
 * rows as they were when its (last) job was created.
 */
function manifestLines(w: World, up: Upload, record: JobRecord | undefined): string[] | undefined {
  if (up.manifest?.source.kind === 'table') {
    const table = [...w.creates].reverse().find((c) => c.jobId === up.jobId && c.made)?.table;
    return table && tableRequestLines(table);
  }
  const files = record?.manifest?.files ?? [];
  if (files.length === 0) return undefined;
  const lines: string[] = [];
  for (const f of files) {
    const copy = w.reports.copies.get(f.pinnedUri);
    if (!copy) return undefined;
    lines.push(...linesOf(copy));
  }
  return lines;
}

/** Publishes of manifests already found to keep M4 (an event and its snapshot do not change). */
const manifestEventsChecked = new WeakSet<object>();

/** The files each manifest's record pinned, as first seen (they never change after). */
const pinnedSeen = new WeakMap<World, Map<string, string>>();

/**
 * M2/M3. The create of a manifest's job: it reads exactly the pinned copies its record names,
 * each holding the bytes of the generation validated, in the source's order; or the table the
 * manifest names, as it was validated; and writes where the manifest says.
 */
function checkManifestCreate(w: World, c: CreateSeen, up: Upload): string | undefined {
  const spec = up.manifest;
  const record = c.record;
  if (!spec) return undefined;
  if (!record?.manifest || record.requestCount === null) {
    return `invariant M2: the job of manifest ${c.jobId} was created before its record named its validated source`;
  }
  const expectedOut =
    spec.destination === undefined
      ? record.outputUriPrefix
      : spec.destination.startsWith('gs://')
        ? `${spec.destination.replace(/\/+$/, '')}/`
        : spec.destination;
  if (requestOutputUri(c.request) !== expectedOut) {
    return `invariant M2: the job of manifest ${c.jobId} writes to ${requestOutputUri(c.request)}, not ${expectedOut}`;
  }
  const uris = requestInputUris(c.request);
  if (spec.source.kind === 'table') {
    if (!('bigquerySource' in c.request.inputConfig) || uris.join() !== spec.source.uri) {
      return `invariant M3: the job of manifest ${c.jobId} reads ${uris.join()}, not its table ${spec.source.uri}`;
    }
    const rows = c.table?.rows ?? [];
    const claude = record.provider === 'anthropic';
    const bad = rows.findIndex((r) => {
      try {
        const v = JSON.parse(r.request ?? '') as unknown;
        return typeof v !== 'object' || v === null || (claude && !r.custom_id);
      } catch {
        return true;
      }
    });
    if (!c.table || rows.length !== record.requestCount || bad >= 0) {
      return `invariant M3: the job of manifest ${c.jobId} was created over ${spec.source.uri} as it was not validated (${rows.length} rows, ${record.requestCount} validated${bad >= 0 ? `, row ${bad + 1} invalid` : ''})`;
    }
    return undefined;
  }
  const files = record.manifest.files;
  const pinned = files.map((f) => f.pinnedUri);
  if (files.length === 0 || JSON.stringify(uris) !== JSON.stringify(pinned)) {
    return `invariant M2: the job of manifest ${c.jobId} reads ${uris.join(', ')}, but its record pins ${pinned.join(', ') || 'nothing'}`;
  }
  let total = 0;
  for (const f of files) {
    const original = dataBytes(w, f.uri, f.generation);
    const copy = w.reports.copies.get(f.pinnedUri);
    if (!original || !copy?.equals(original)) {
      return `invariant M2: the pinned copy ${f.pinnedUri} of manifest ${c.jobId} does not hold generation ${f.generation} of ${f.uri}`;
    }
    if (f.requests !== linesOf(original).length) {
      return `invariant M2: manifest ${c.jobId} records ${f.requests} requests for ${f.uri}#${f.generation}, which has ${linesOf(original).length}`;
    }
    total += f.requests;
  }
  if (total !== record.requestCount) {
    return `invariant M2: manifest ${c.jobId} records ${record.requestCount} requests, its files hold ${total}`;
  }
  const names = files.map((f) => f.uri);
  const [first] = spec.source.uris;
  if (spec.source.uris.length === 1 && first?.endsWith('*.jsonl')) {
    const dir = first.slice(0, -'*.jsonl'.length);
    const inOrder = names.every(
      (n, i) =>
        n.startsWith(dir) &&
        !n.slice(dir.length).includes('/') &&
        n.endsWith('.jsonl') &&
        (i === 0 || Buffer.compare(Buffer.from(names[i - 1] ?? ''), Buffer.from(n)) < 0),
    );
    if (!inOrder) {
      return `invariant M2: manifest ${c.jobId} pins ${names.join(', ')} for ${first}: not its matches in name order`;
    }
  } else if (JSON.stringify(names) !== JSON.stringify(spec.source.uris)) {
    return `invariant M2: manifest ${c.jobId} pins ${names.join(', ')}, not the files it lists (${spec.source.uris.join(', ')})`;
  }
  return undefined;
}

/** Invariants that hold after every step. */
export async function always(w: World, cap: number): Promise<string | undefined> {
  // 1. Never more than one live Vertex job per input generation, once the records settle: a
  // fenced loser's job may exist for a moment, but only while its input's record does not name
  // another job (then the loser cancels it before its call returns).
  // While an instance is stalled, a job it created may still await its cancel: checked strictly
  // once every stalled instance has resumed.
  for (const [jobId, names] of w.anyFrozen() ? [] : liveJobsByInput(w)) {
    if (names.length <= 1) continue;
    const record = await w.jobs.get(jobId);
    if (record?.status !== 'SUBMITTING' || record.vertexJob !== null) {
      return `invariant 1: input ${jobId} has ${names.length} live Vertex jobs (${names.join(', ')}) and its record is ${record?.status} naming ${record?.vertexJob}`;
    }
  }
  // 4. No Claude job created past the cap.
  for (const c of w.creates) {
    if (c.request.model.includes('/anthropic/') && c.claudeRunning >= cap) {
      return `invariant 4: a Claude job for ${c.jobId} was created while ${c.claudeRunning} Claude inputs had live jobs (cap ${cap})`;
    }
  }
  // 7. Queues are per model and region: an input waits for queue order only behind its own.
  if (w.queueViolations.length > 0) return `invariant 7: ${w.queueViolations[0]}`;
  // 5. Every job reads the bytes of the generation that was validated; a retry of failed rows
  // reads some of those lines, as they were, in their order.
  for (const c of w.creates) {
    const uri = requestInputUris(c.request)[0] ?? '';
    const retryOf = /^(.*)-a\d+$/.exec(c.jobId)?.[1];
    if (retryOf !== undefined) {
      const up = w.uploads.find((u) => u.jobId === retryOf);
      const lines = (w.reports.objects.get(uri) ?? '').split('\n').filter((l) => l !== '');
      const source = !up
        ? []
        : up.manifest
          ? (manifestLines(w, up, await w.jobs.get(retryOf)) ?? [])
          : up.bytes.toString('utf8').split('\n');
      let at = 0;
      const subsequence = lines.every((l) => {
        while (at < source.length && source[at] !== l) at++;
        return at++ < source.length;
      });
      if (!up || lines.length === 0 || !subsequence) {
        return `invariant 5: the retry ${c.jobId} reads ${uri}, which is not a part of its input's lines`;
      }
      continue;
    }
    const up = w.uploads.find((u) => u.jobId === c.jobId);
    if (up?.manifest) {
      const problem = checkManifestCreate(w, c, up);
      if (problem) return problem;
      continue;
    }
    const bytes = w.reports.copies.get(uri);
    if (!up || !bytes || !bytes.equals(up.bytes)) {
      return `invariant 5: the job of ${c.jobId} reads ${uri}, which does not hold the uploaded bytes of that generation`;
    }
  }
  // M2. A manifest's pinned files, once recorded, are the ones its job reads: never re-chosen.
  const seen = pinnedSeen.get(w) ?? new Map<string, string>();
  pinnedSeen.set(w, seen);
  for (const up of w.uploads) {
    if (up.manifest?.source.kind !== 'files') continue;
    const files = (await w.jobs.get(up.jobId))?.manifest?.files ?? [];
    if (files.length === 0) continue;
    const now = JSON.stringify(files);
    const before = seen.get(up.jobId);
    if (before !== undefined && before !== now) {
      return `invariant M2: manifest ${up.jobId} pinned ${before} and later ${now}`;
    }
    seen.set(up.jobId, now);
  }
  // 6. Each event agrees with its record and validates against the JSON Schema.
  for (const publish of w.publishes) {
    const { event, record, liveJobs } = publish;
    if (!validateEvent(structuredClone(event))) {
      return `invariant 6: event ${event.eventId} does not validate: ${ajv.errorsText(validateEvent.errors)}`;
    }
    if (!record) return `invariant 6: event ${event.eventId} published for a missing record`;
    const retried = record.attempts.length > 1;
    const state = record.status === 'COMPLETED' ? finalStateOf(record) : INPUT_REJECTED_STATE;
    if (
      event.state !== state ||
      event.vertexJob !== record.vertexJob ||
      (!retried && JSON.stringify(event.stats) !== JSON.stringify(record.stats)) ||
      (event.eventType === 'job.completed' &&
        event.attempts.length !== Math.max(1, record.attempts.length)) ||
      (event.output !== null &&
        event.output.uriPrefix !==
          (record.status === 'REJECTED'
            ? record.outputUriPrefix
            : (record.manifest?.destination ?? record.outputUriPrefix)))
    ) {
      return `invariant 6: event ${event.eventId} (${event.state}, ${event.vertexJob}) disagrees with its record (${state}, ${record.vertexJob})`;
    }
    // M4. A manifest's event: valid by the event's own schema, naming the manifest and its source;
    // never while a job of it still runs (unless the job was given up on).
    const up = w.uploads.find((u) => u.jobId === event.jobId);
    if (up?.manifest && !manifestEventsChecked.has(publish)) {
      const parsed = CompletionEventSchema.safeParse(event);
      if (!parsed.success) {
        return `invariant M4: event ${event.eventId} of manifest ${up.jobId} does not parse: ${parsed.error.message}`;
      }
      const uri = record.manifest ? sourceUri(up.manifest) : `gs://${BUCKET}/${up.name}`;
      if (
        event.input.name !== up.name ||
        event.input.generation !== up.generation ||
        event.input.uri !== uri
      ) {
        return `invariant M4: event ${event.eventId} names input ${event.input.name} ${event.input.uri}, not manifest ${up.name} ${uri}`;
      }
      const gaveUp = event.error?.message.includes('no longer tracked') === true;
      if (liveJobs.length > 0 && !gaveUp) {
        return `invariant M4: ${event.jobId} was announced (${event.state}) while its job ${liveJobs.join(', ')} still ran`;
      }
      manifestEventsChecked.add(publish);
    }
    // 8. A finished job's event carries its digest: rows that add up to the requests, and a
    // results.jsonl of one line per request, in input order. Without one only when the job wrote
    // nothing, or the digest was given up after its attempts.
    if (event.eventType === 'job.completed') {
      const results = event.results;
      const gaveUp = record.digestAttempts >= MAX_DIGEST_ATTEMPTS;
      const nothing = /^(no prediction file|Vertex AI reported no output)/.test(
        record.digest?.note ?? '',
      );
      if (!results) {
        if (!nothing && !gaveUp) {
          return `invariant 8: ${event.jobId} (${event.state}) was announced without a digest: ${record.digest?.note}`;
        }
      } else {
        const { succeeded, failed, missing } = results.rows;
        // A BigQuery destination: the output table is the results (rows counted, not listed).
        const table = results.resultsUri.startsWith('bq://');
        if (table && results.resultsUri !== record.outputDirectory) {
          return `invariant 8: ${event.jobId}: results in ${results.resultsUri}, but the job wrote ${record.outputDirectory}`;
        }
        const lines = table
          ? []
          : (w.reports.objects.get(results.resultsUri) ?? '').trim().split('\n');
        if (
          succeeded + failed + missing !== record.requestCount ||
          (!table && lines.length !== record.requestCount)
        ) {
          return `invariant 8: ${event.jobId}: rows ${succeeded}+${failed}+${missing} and ${lines.length} result lines for ${record.requestCount} requests`;
        }
        // The model's Vertex writes a line per request, the last one failed when it partly succeeded.
        const expectFailed = event.state === 'JOB_STATE_PARTIALLY_SUCCEEDED' ? 1 : 0;
        if (missing !== 0 || failed !== expectFailed) {
          return `invariant 8: ${event.jobId} (${event.state}): ${failed} failed and ${missing} missing rows, expected ${expectFailed} and 0`;
        }
        // Every failure of the model's Vertex is transient: rows sent again end as the last attempt
        // that wrote results left them.
        const lastRun = [...record.attempts].reverse().find((a) => a.digest.results);
        const lastRows = lastRun?.digest.results?.rows;
        if (
          record.attempts.length > 1 &&
          lastRows &&
          lastRows.failed + lastRows.missing !== failed + missing
        ) {
          return `invariant 8: ${event.jobId}: ${failed + missing} rows failed in the end, but its last attempt left ${lastRows.failed + lastRows.missing}`;
        }
        const rowsOut = lines.map((l) => JSON.parse(l) as { line: number; key: string | null });
        const order = rowsOut.map((r) => r.line);
        if (order.some((n, i) => n !== i + 1)) {
          return `invariant 8: ${event.jobId}: results.jsonl is not in input order (${order.join(',')})`;
        }
        // A manifest's rows follow its files (or table) in order: a Claude row's key is the
        // custom_id of that input line.
        const source = up?.manifest && !table ? manifestLines(w, up, record) : undefined;
        const wrong = rowsOut.findIndex(
          (r, i) =>
            r.key !== null &&
            source !== undefined &&
            (JSON.parse(source[i] ?? '{}') as { custom_id?: string }).custom_id !== r.key,
        );
        if (wrong >= 0) {
          return `invariant 8: ${event.jobId}: results line ${wrong + 1} is for ${rowsOut[wrong]?.key}, not the request on that line of the manifest's inputs`;
        }
      }
    }
    // A job is announced only in the state Vertex reported (never ahead of a best-effort cancel),
    // unless Vertex itself forgot the job or never ended it after our cancel.
    if (event.eventType === 'job.completed' && event.vertexJob) {
      const job = w.vertex.jobs.get(event.vertexJob);
      const gaveUp = event.error?.message.includes('no longer tracked') === true;
      if (job && !isTerminalState(job.state ?? '') && !gaveUp) {
        return `invariant 6: ${event.jobId} announced ${event.state} while Vertex says ${job.state}`;
      }
    }
  }
  return undefined;
}

/** Invariants that hold once the world is quiet. */
export async function atQuiescence(w: World): Promise<string | undefined> {
  const all = await Promise.all(w.uploads.map((u) => w.jobs.get(u.jobId)));
  const now = w.clock().getTime();
  for (const [i, up] of w.uploads.entries()) {
    const record = all[i];
    const events = new Set(
      w.publishes.filter((p) => p.event.jobId === up.jobId).map((p) => p.event.eventId),
    );
    // An input whose every delivery came too late (dropped as stale, by design) has no record and
    // no event; anything that got a record must end with exactly one outcome and one event id.
    if (!record) {
      if (events.size > 0) return `invariant 2: ${up.jobId} has an event but no record`;
      continue;
    }
    // 2. One final record, one distinct event id.
    if (record.outstanding || !['COMPLETED', 'REJECTED', 'SUBMIT_FAILED'].includes(record.status)) {
      return `invariant 2/3: ${up.jobId} is still ${record.status}, outstanding=${record.outstanding}`;
    }
    if (events.size !== 1) {
      return `invariant 2: ${up.jobId} has ${events.size} distinct event ids (${[...events].join(', ')})`;
    }
    // Without a crash, stall, lost answer or store fault, an outcome is published exactly once.
    const sends = w.publishes.filter((p) => p.event.jobId === up.jobId).length;
    if (w.disruptions.count === 0 && sends !== 1) {
      return `invariant 2: ${up.jobId} was published ${sends} times with nothing going wrong`;
    }
    if (record.eventId === null || !events.has(record.eventId)) {
      return `invariant 2: ${up.jobId} records event ${record.eventId}, not the one published`;
    }
    // M1. One job per manifest generation, none for a rejected one (creates of jobs Vertex later
    // forgot aside: after those the job is created again, or given up on).
    if (up.manifest) {
      const made = w.creates.filter((c) => c.jobId === up.jobId && c.made);
      const kept = made.filter((c) => !w.forgotten.includes(c.job ?? ''));
      const wanted = record.status === 'COMPLETED' ? 1 : 0;
      if (kept.length > wanted || (wanted === 1 && made.length === 0)) {
        return `invariant M1: manifest ${up.jobId} ended ${record.status} with ${made.length} job(s) created (${kept.map((c) => c.job).join(', ')})`;
      }
    }
    // 3. No lease kept past its expiry.
    if (record.lease && Date.parse(record.lease.until) <= now) {
      return `invariant 3: ${up.jobId} keeps an expired lease of ${record.lease.owner}`;
    }
  }
  // 1. At quiescence every job other than the recorded one is cancelled.
  for (const [jobId, names] of liveJobsByInput(w)) {
    const record = await w.jobs.get(jobId);
    const extra = names.filter((n) => n !== record?.vertexJob);
    if (extra.length > 0) {
      return `invariant 1: input ${jobId} keeps a second job ${extra.join(', ')} besides ${record?.vertexJob}`;
    }
  }
  return undefined;
}
