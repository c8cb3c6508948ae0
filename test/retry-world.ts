/**
 * A world for tests of retried rows: a simulated Vertex AI that answers each request by markers in
 * its prompt, attempt by attempt, and the steps to drive an input to its event.
 */
import { pollBatchJobs } from '../shared/app/poll.js';
import { handleStorageEvent } from '../shared/app/submit.js';
import type { CompletionEvent } from '../shared/core/events.js';
import { createWorld, finalizeEvent } from './fakes.js';
import { requestInputUris, requestOutputUri, type BatchJobRequest } from '../shared/core/vertex.js';

const BUCKET = 'acme-batch-input';
const GEN = '1764150067498213';
const NAME = 'inputs/reviews.jsonl';

export type World = ReturnType<typeof createWorld>;

export const QUOTA =
  'Too Many Requests: {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model.", "status": "RESOURCE_EXHAUSTED"}}';
export const INTERNAL =
  'Internal Server Error: {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}';
export const BAD =
  'Bad Request: {"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}';

/** A Gemini line whose prompt tells the simulated Vertex what to do with it. */
export function line(text: string): string {
  return JSON.stringify({ request: { contents: [{ role: 'user', parts: [{ text }] }] } });
}

/**
 * What the simulated Vertex does with one request on attempt `n`: markers in the prompt.
 * `[quota]` fails with 429 on the first attempt, `[internal]` with 500 on every attempt, `[bad]`
 * with 400 always, `[lost]` gets no output line on the first attempt.
 */
export function outcome(prompt: string, attempt: number): string {
  if (prompt.includes('[bad]')) return BAD;
  if (prompt.includes('[internal]')) return INTERNAL;
  if (prompt.includes('[quota]') && attempt === 1) return QUOTA;
  if (prompt.includes('[lost]') && attempt === 1) return 'none';
  return 'ok';
}

/** Bytes of the live generation of a gs:// object in the fake store. */
export async function bytesOf(w: World, uri: string): Promise<Buffer> {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  const [bucket, name] = [m?.[1] ?? '', m?.[2] ?? ''];
  const o = (await w.reader.list(bucket, name)).find((x) => x.name === name);
  const data = o && w.reader.bytes(bucket, name, o.generation);
  if (!data) throw new Error(`no object ${uri}`);
  return data;
}

/** The request lines a job reads: every file it names, in order, or its table's rows. */
export async function linesRead(w: World, req: BatchJobRequest): Promise<string[]> {
  const input = req.inputConfig;
  if ('bigquerySource' in input) {
    const m = /^bq:\/\/([^.]+)\.([^.]+)\.(.+)$/.exec(input.bigquerySource.inputUri);
    const ref = { project: m?.[1] ?? '', dataset: m?.[2] ?? '', table: m?.[3] ?? '' };
    const lines: string[] = [];
    for await (const [r] of w.bigquery.rows(ref, ['request'])) lines.push(`{"request":${r}}`);
    return lines;
  }
  const lines: string[] = [];
  for (const uri of requestInputUris(req)) {
    const text = (await bytesOf(w, uri)).toString('utf8');
    lines.push(...text.split('\n').filter((l) => l.trim() !== ''));
  }
  return lines;
}

/**
 * Ends every running Vertex job: reads the input it was given, writes its predictions (reversed)
 * and sets its state; `failWhole` names attempts whose job fails with no output at all.
 */
export async function endJobs(w: World, failWhole: number[] = []): Promise<void> {
  for (const [name, job] of w.vertex.jobs) {
    if (/SUCCEEDED|FAILED|CANCELLED$|EXPIRED/.test(job.state ?? '')) continue;
    if (job.state === 'JOB_STATE_CANCELLING') {
      w.vertex.setState(name, { state: 'JOB_STATE_CANCELLED' });
      continue;
    }
    const attempt = Number(/-a(\d+)$/.exec(job.displayName ?? '')?.[1] ?? 1);
    const dir = `${job.request && requestOutputUri(job.request)}prediction-model-x`;
    if (failWhole.includes(attempt)) {
      w.vertex.setState(name, {
        state: 'JOB_STATE_FAILED',
        error: { code: 13, message: 'Internal error.' },
      });
      continue;
    }
    const lines = job.request ? await linesRead(w, job.request) : [];
    let ok = 0;
    let failed = 0;
    const out: string[] = [];
    for (const l of lines) {
      const request = (JSON.parse(l) as { request: { contents: { parts: { text: string }[] }[] } })
        .request;
      const what = outcome(request.contents[0]?.parts[0]?.text ?? '', attempt);
      if (what === 'none') continue;
      if (what === 'ok') {
        ok++;
        out.push(
          JSON.stringify({
            status: '',
            request,
            response: {
              candidates: [{ content: { parts: [{ text: `ok ${attempt}` }] } }],
              usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 1 },
            },
          }),
        );
      } else {
        failed++;
        out.push(JSON.stringify({ status: what, request }));
      }
    }
    const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(dir);
    w.reader.put(
      m?.[1] ?? '',
      `${m?.[2]}/predictions.jsonl`,
      String(Date.now()),
      `${out.reverse().join('\n')}\n`,
    );
    w.vertex.setState(name, {
      state:
        failed === 0
          ? 'JOB_STATE_SUCCEEDED'
          : ok > 0
            ? 'JOB_STATE_PARTIALLY_SUCCEEDED'
            : 'JOB_STATE_FAILED',
      completionStats: {
        ...(ok ? { successfulCount: String(ok) } : {}),
        ...(failed ? { failedCount: String(failed) } : {}),
      },
      outputInfo: { gcsOutputDirectory: dir },
    });
  }
}

/** Polls, ending jobs as they come, until the input's event is out or nothing moves (bounded). */
export async function drive(w: World, failWhole: number[] = []): Promise<CompletionEvent[]> {
  for (let i = 0; i < 12 && w.publisher.events.length === 0; i++) {
    await endJobs(w, failWhole);
    w.clock.advance(61_000);
    await pollBatchJobs(w.pollDeps);
  }
  return w.publisher.events;
}

export async function submitted(lines: string[], config: Record<string, string> = {}, eol = '\n') {
  const w = createWorld(config);
  const content = lines.join(eol) + eol;
  w.reader.put(BUCKET, NAME, GEN, content);
  const out = await handleStorageEvent(finalizeEvent({ name: NAME }), w.submitDeps);
  if (out.outcome !== 'submitted') throw new Error(`not submitted: ${JSON.stringify(out)}`);
  return { w, jobId: out.jobId, prefix: `gs://acme-batch-output/results/${out.jobId}/` };
}

export function files(w: World, prefix: string): Map<string, string> {
  return new Map([...w.reports.objects].filter(([k]) => k.startsWith(prefix)));
}

export function results(
  w: World,
  prefix: string,
): { line: number; status: string; error: string | null }[] {
  return (w.reports.objects.get(`${prefix}results.jsonl`) ?? '')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { line: number; status: string; error: string | null });
}
