/**
 * Finding a job record from what the user typed, and the few facts about a record every command
 * needs (is it finished, where are its files).
 */
import { deriveJobId } from '../shared/core/job-id.js';
import type { JobRecord } from '../shared/core/jobs.js';
import { isTerminalState } from '../shared/core/vertex.js';
import type { Context } from './context.js';
import { CliError, type JobReference } from './options.js';

/** True when the record's outcome is known (it may still wait for its announcement). */
export function isFinished(record: JobRecord): boolean {
  return (
    record.status === 'COMPLETED' ||
    record.status === 'REJECTED' ||
    record.status === 'SUBMIT_FAILED' ||
    isTerminalState(record.vertexState ?? '')
  );
}

/** What the record is doing, in a few words: `SUBMITTED (JOB_STATE_RUNNING)`. */
export function stateText(record: JobRecord): string {
  return record.vertexState ? `${record.status} (${record.vertexState})` : record.status;
}

/** `gs://bucket/path/` → `[bucket, path/]`. */
export function splitPrefix(uri: string): [string, string] {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m?.[1]) throw new CliError(`not a gs:// location: ${uri}`);
  return [m[1], m[2] ?? ''];
}

/** The record `jobId`, or a CliError that says how to find the right id. */
export async function requireRecord(ctx: Context, jobId: string): Promise<JobRecord> {
  const { jobs } = await ctx.deps();
  const record = await jobs.get(jobId);
  if (record) return record;
  const config = ctx.config();
  throw new CliError(
    `no job ${jobId} in collection ${config.JOBS_COLLECTION} of project ${config.GOOGLE_CLOUD_PROJECT}`,
    '`batch-courier jobs` lists the recent jobs; check --project and --collection',
  );
}

/**
 * The job id a reference names: the id itself; for a `gs://` object of the output location, the
 * job whose folder it is in; for an input object, the job of that generation (the live one when
 * no `#generation` is given).
 */
export async function resolveJobId(ctx: Context, ref: JobReference): Promise<string> {
  if (ref.kind === 'job') return ref.jobId;
  const config = ctx.config();
  const uri = `gs://${ref.bucket}/${ref.name}`;
  const output = `${config.OUTPUT_URI_PREFIX}/`;
  if (uri.startsWith(output)) {
    const jobId = uri.slice(output.length).split('/')[0];
    if (jobId) return jobId;
  }
  if (ref.generation) return deriveJobId(ref.bucket, ref.name, ref.generation);
  const { reader } = await ctx.deps();
  const live = (await reader.list(ref.bucket, ref.name)).find((o) => o.name === ref.name);
  if (!live) {
    throw new CliError(
      `${uri} does not exist (any more), so its generation is unknown`,
      `name the generation (${uri}#<generation>) or the job id: \`batch-courier jobs\` lists them`,
    );
  }
  return deriveJobId(ref.bucket, ref.name, live.generation);
}

/** The object `file` (`summary.json`, …) directly under the record's output prefix, if it exists. */
export async function outputFile(
  ctx: Context,
  record: JobRecord,
  file: string,
): Promise<{ bucket: string; name: string; generation: string; size: number } | undefined> {
  const [bucket, path] = splitPrefix(record.outputUriPrefix);
  const name = `${path}${file}`;
  const { reader } = await ctx.deps();
  const found = (await reader.list(bucket, name)).find((o) => o.name === name);
  return found ? { bucket, ...found } : undefined;
}

/** Why a record has no results digest (yet), and what to do: a CliError. */
export function noDigest(record: JobRecord, missing: string): CliError {
  if (record.status === 'REJECTED' || record.status === 'SUBMIT_FAILED') {
    return new CliError(
      `job ${record.jobId} has no results: its input was refused (${record.status}${record.error ? `: ${record.error.code}` : ''})`,
      record.status === 'REJECTED'
        ? `the bad lines are listed in ${record.outputUriPrefix}rejection.json (and by \`batch-courier show ${record.jobId}\`); fix the file and upload it again`
        : `\`batch-courier show ${record.jobId}\` says why Vertex AI refused it`,
    );
  }
  if (!isFinished(record)) {
    return new CliError(
      `no digest yet: job ${record.jobId} is still ${record.vertexState ?? record.status}`,
      'the poller writes the digest when the job ends, before its event; `batch-courier watch` follows it',
    );
  }
  if (record.outstanding) {
    return new CliError(
      `no digest yet: job ${record.jobId} ended (${record.vertexState ?? record.status}) and the poller has not finished its digest`,
      'it is written before the completion event; try again after the next poll',
    );
  }
  return new CliError(
    `job ${record.jobId} has no ${missing} under ${record.outputUriPrefix}`,
    record.outputDirectory
      ? `Vertex AI's own output is under ${record.outputDirectory}/`
      : 'Vertex AI wrote no output for this job',
  );
}
