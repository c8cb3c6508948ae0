/**
 * `batch-courier retry <jobId>`: sends the job's `failed.jsonl` (the input lines whose request
 * failed, byte for byte) again as a new input object in the input bucket, with the original's
 * model and region as custom metadata: a new generation, so its own job and its own event. The
 * name is derived from the original and the job (`<name>.retry-<hash>.jsonl`): a second retry of
 * the same job finds it taken and sends nothing again.
 */
import { deriveJobId } from '../../shared/core/job-id.js';
import type { JobRecord } from '../../shared/core/jobs.js';
import type { Context } from '../context.js';
import { CliError } from '../options.js';
import { isFinished, noDigest, outputFile, requireRecord, stateText } from '../records.js';

/**
 * The name of the retry input of `record`: beside the original (under INPUT_PREFIX, where inputs
 * are taken from), `.retry-<the job id's hash>.jsonl` in place of its extension.
 */
export function retryObjectName(record: JobRecord, inputPrefix: string): string {
  const hash = record.jobId.slice(record.jobId.lastIndexOf('-') + 1);
  const original = record.object.startsWith(inputPrefix)
    ? record.object
    : `${inputPrefix}${record.object.split('/').pop() ?? ''}`;
  const stem = original.replace(/\.(jsonl|batch\.json)$/i, '');
  return `${stem}.retry-${hash}.jsonl`;
}

export async function retryCommand(ctx: Context, jobId: string): Promise<number> {
  const record = await requireRecord(ctx, jobId);
  if (record.retryOf) {
    throw new CliError(
      `${jobId} is attempt ${record.retryOf.attempt} of input ${record.retryOf.jobId}, not an input`,
      `retry the input once its event is out: \`batch-courier retry ${record.retryOf.jobId}\``,
    );
  }
  // An input whose event is not out may still be sending its failed rows again itself.
  if (!isFinished(record) || record.outstanding) {
    throw new CliError(
      `job ${jobId} has not ended (${stateText(record)}): its failed rows are not known yet`,
      'retry it once its event is out; `batch-courier watch` follows it',
    );
  }
  const failed = await outputFile(ctx, record, 'failed.jsonl');
  if (!failed) {
    const summary = await outputFile(ctx, record, 'summary.json');
    if (summary && !record.outstanding) {
      throw new CliError(
        `job ${jobId}: no row failed (there is no failed.jsonl under ${record.outputUriPrefix}): nothing to retry`,
      );
    }
    throw noDigest(record, 'failed.jsonl');
  }

  const config = ctx.config();
  const name = retryObjectName(record, config.INPUT_PREFIX);
  const uri = `gs://${record.bucket}/${name}`;
  const deps = await ctx.deps();
  let lines = 0;
  let last = 0x0a;
  const counted = async function* (): AsyncGenerator<Uint8Array> {
    for await (const chunk of deps.reader.read(failed.bucket, failed.name, failed.generation)) {
      for (const b of chunk) if (b === 0x0a) lines++;
      if (chunk.length > 0) last = chunk[chunk.length - 1] ?? last;
      yield chunk;
    }
    if (last !== 0x0a) lines++;
  };
  const uploader = await deps.uploader();
  const outcome = await uploader.upload(record.bucket, name, counted(), {
    model: record.model,
    location: record.location,
  });
  const newJobId =
    outcome.generation !== undefined && outcome.generation !== ''
      ? deriveJobId(record.bucket, name, outcome.generation)
      : null;

  if (ctx.json) {
    ctx.printJson({
      jobId,
      sent: outcome.created,
      uri,
      generation: outcome.generation ?? null,
      rows: outcome.created ? lines : null,
      newJobId,
      model: record.model,
      location: record.location,
    });
    return 0;
  }
  if (outcome.created) {
    ctx.say(
      `sent ${lines} failed row${lines === 1 ? '' : 's'} of ${jobId} again as ${uri} (generation ${outcome.generation}, model ${record.model}, ${record.location})`,
    );
  } else {
    ctx.say(
      `already sent: ${uri} exists (generation ${outcome.generation ?? 'unknown'}); nothing was sent again`,
    );
  }
  if (newJobId) {
    ctx.say(`it is a new input with its own job and its own event: batch-courier show ${newJobId}`);
  }
  return 0;
}
