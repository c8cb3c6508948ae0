/**
 * The promise, as invariants over a {@link World}: checked after every step (`always`) and once
 * the world is quiet (`atQuiescence`). Each returns the first violation it finds, in words.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { finalStateOf, INPUT_REJECTED_STATE } from '../../shared/core/events.js';
import { MAX_DIGEST_ATTEMPTS } from '../../shared/core/transitions.js';
import { isTerminalState, requestInputUris } from '../../shared/core/vertex.js';
import type { World } from './world.js';

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
      const source = up ? up.bytes.toString('utf8').split('\n') : [];
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
    const bytes = w.reports.copies.get(uri);
    if (!up || !bytes || !bytes.equals(up.bytes)) {
      return `invariant 5: the job of ${c.jobId} reads ${uri}, which does not hold the uploaded bytes of that generation`;
    }
  }
  // 6. Each event agrees with its record and validates against the JSON Schema.
  for (const { event, record } of w.publishes) {
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
      (event.output !== null && event.output.uriPrefix !== record.outputUriPrefix)
    ) {
      return `invariant 6: event ${event.eventId} (${event.state}, ${event.vertexJob}) disagrees with its record (${state}, ${record.vertexJob})`;
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
        const lines = (w.reports.objects.get(results.resultsUri) ?? '').trim().split('\n');
        if (
          succeeded + failed + missing !== record.requestCount ||
          lines.length !== record.requestCount
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
        const order = lines.map((l) => (JSON.parse(l) as { line: number }).line);
        if (order.some((n, i) => n !== i + 1)) {
          return `invariant 8: ${event.jobId}: results.jsonl is not in input order (${order.join(',')})`;
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
