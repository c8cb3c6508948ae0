/** `batch-courier show <jobId | gs://uri>`: one record, its Vertex job, its event, its files. */
import { buildCompletionEvent, type CompletionEvent } from '../../shared/core/events.js';
import { describeError } from '../../shared/core/errors.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import type { ListedObject } from '../../shared/ports.js';
import type { VertexBatchJob } from '../../shared/core/vertex.js';
import type { Context } from '../context.js';
import { ago, bytes, fields, shortModel } from '../format.js';
import type { JobReference } from '../options.js';
import { requireRecord, resolveJobId, splitPrefix, stateText } from '../records.js';

/** What `show --json` prints. */
export interface ShowResult {
  record: JobRecord;
  /** Vertex's live view of the job; null when there is none (or it could not be read). */
  vertexJob: VertexBatchJob | null;
  vertexError: string | null;
  /** The published event, as it was published; null until it is. */
  event: CompletionEvent | null;
  /** The objects under the job's output prefix. */
  files: { uri: string; size: number; generation: string }[];
  filesError: string | null;
}

/** The event a record's announcement published (same id, same publish time). */
export function publishedEvent(record: JobRecord): CompletionEvent | null {
  if (record.eventId === null || record.publishedAt === null) return null;
  return buildCompletionEvent(record, new Date(record.publishedAt));
}

export async function showCommand(ctx: Context, ref: JobReference): Promise<number> {
  const jobId = await resolveJobId(ctx, ref);
  const record = await requireRecord(ctx, jobId);
  const { vertex, reader } = await ctx.deps();
  const [bucket, path] = splitPrefix(record.outputUriPrefix);
  const [job, listed] = await Promise.all([
    record.vertexJob
      ? vertex.get(record.vertexJob).then(
          (j): [VertexBatchJob | null, string | null] => [j, null],
          (err: unknown): [VertexBatchJob | null, string | null] => [
            null,
            describeError(err).message,
          ],
        )
      : Promise.resolve<[VertexBatchJob | null, string | null]>([null, null]),
    reader.list(bucket, path).then(
      (o): [ListedObject[], string | null] => [o, null],
      (err: unknown): [ListedObject[], string | null] => [[], describeError(err).message],
    ),
  ]);
  const result: ShowResult = {
    record,
    vertexJob: job[0],
    vertexError: job[1],
    event: publishedEvent(record),
    files: listed[0].map((o) => ({
      uri: `gs://${bucket}/${o.name}`,
      size: o.size,
      generation: o.generation,
    })),
    filesError: listed[1],
  };
  if (ctx.json) ctx.printJson(result);
  else ctx.say(render(ctx, result));
  return 0;
}

function render(ctx: Context, r: ShowResult): string {
  const { c } = ctx;
  const now = ctx.io.clock();
  const rec = r.record;
  const rows: [string, string][] = [
    ['job', c.bold(rec.jobId)],
    ['status', stateText(rec)],
    [
      'input',
      `${rec.inputUri}#${rec.generation}${rec.requestCount === null ? '' : ` (${rec.requestCount} requests)`}`,
    ],
    ['model', `${shortModel(rec.model)} in ${rec.location} (${rec.model})`],
    ['created', `${rec.createTime} (${ago(rec.createTime, now)})`],
  ];
  if (rec.status === 'WAITING') {
    rows.push([
      'queue',
      `${rec.queue}: waiting since ${ago(rec.waitingSince, now)}${rec.nextAttemptAt ? `, next attempt ${ago(rec.nextAttemptAt, now)}` : ''}`,
    ]);
  }
  if (rec.vertexJob) {
    const job = r.vertexJob;
    const stats = job?.completionStats;
    rows.push(['vertex job', rec.vertexJob]);
    rows.push([
      '  now',
      job
        ? `${job.state ?? '?'}${stats ? `: ${stats.successfulCount ?? 0} succeeded, ${stats.failedCount ?? 0} failed` : ''}`
        : c.red(`could not read it: ${r.vertexError ?? 'unknown error'}`),
    ]);
    rows.push([
      '  times',
      `created ${rec.vertexCreateTime ?? '-'}, started ${rec.vertexStartTime ?? '-'}, ended ${rec.vertexEndTime ?? '-'}`,
    ]);
  }
  if (rec.stats) {
    rows.push([
      'counts',
      `${rec.stats.successfulCount} succeeded, ${rec.stats.failedCount} failed, ${rec.stats.incompleteCount} incomplete`,
    ]);
  }
  if (rec.error) rows.push(['error', c.red(`${rec.error.code}: ${rec.error.message}`)]);
  for (const [i, l] of rec.lineErrors.slice(0, 5).entries()) {
    rows.push([i === 0 ? 'bad lines' : '', `line ${l.line}: ${l.message}`]);
  }
  if (rec.lineErrors.length > 5) rows.push(['', `… ${rec.lineErrors.length - 5} more`]);
  rows.push(['output', rec.outputUriPrefix]);
  if (r.filesError) rows.push(['', c.red(`could not list it: ${r.filesError}`)]);
  else if (r.files.length === 0) rows.push(['', c.dim('(nothing written yet)')]);
  for (const f of r.files) {
    rows.push(['', `${f.uri.slice(rec.outputUriPrefix.length)}  ${c.dim(bytes(f.size))}`]);
  }
  rows.push([
    'event',
    r.event
      ? `${r.event.eventType} ${r.event.state}, eventId ${r.event.eventId}, published ${r.event.publishTime} (${ago(r.event.publishTime, now)})`
      : c.yellow(rec.outstanding ? 'not announced yet' : 'none'),
  ]);
  return fields(rows, c);
}
