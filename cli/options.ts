/**
 * The command line's values: parsing and checking what the user typed (durations, limits,
 * statuses, job references), each failure a {@link UsageError} that says what was wrong and what
 * is expected (exit code 2).
 */
import type { JobStatus } from '../shared/core/jobs.js';
import { MAX_RECENT_LIMIT } from '../shared/ports.js';

/** The exit codes. */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2 });

/** A failure the user can act on: what went wrong and, when known, what to do. Exit code 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  readonly exitCode: number = EXIT.failure;
  constructor(
    message: string,
    /** What to do about it. */
    readonly fix?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The command was called wrongly (a bad option value, a missing argument). Exit code 2. */
export class UsageError extends CliError {
  override readonly name = 'UsageError';
  override readonly exitCode = EXIT.usage;
}

/** Our statuses, as `--status` accepts them. */
export const JOB_STATUSES: readonly JobStatus[] = Object.freeze([
  'SUBMITTING',
  'WAITING',
  'SUBMITTED',
  'COMPLETED',
  'RETRYING',
  'REJECTED',
  'SUBMIT_FAILED',
]);

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `90s`, `15m`, `2h`, `7d`, `1w`, or several (`1h30m`) → milliseconds. */
export function parseDuration(text: string, option = '--since'): number {
  const value = text.trim().toLowerCase();
  const parts = [...value.matchAll(/(\d+)([smhdw])/g)];
  if (value === '' || parts.map((p) => p[0]).join('') !== value) {
    throw new UsageError(
      `${option} ${JSON.stringify(text)}: expected a duration such as 30m, 2h, 7d or 1h30m`,
    );
  }
  const ms = parts.reduce((sum, [, n, unit]) => sum + Number(n) * (UNIT_MS[unit ?? ''] ?? 0), 0);
  if (ms <= 0) throw new UsageError(`${option} ${JSON.stringify(text)}: must be longer than 0`);
  return ms;
}

/** A whole number from `min` to `max`. */
export function parseWholeNumber(text: string, option: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${option} ${JSON.stringify(text)}: expected a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

/** `--limit`: 1 to the store's maximum. */
export const parseLimit = (text: string): number =>
  parseWholeNumber(text, '--limit', 1, MAX_RECENT_LIMIT);

/** `--status COMPLETED` or `--status rejected,submit_failed` (any case). */
export function parseStatuses(text: string): JobStatus[] {
  const wanted = text
    .split(',')
    .map((s) => s.trim().toUpperCase().replace(/-/g, '_'))
    .filter((s) => s !== '');
  const unknown = wanted.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s));
  if (wanted.length === 0 || unknown.length > 0) {
    throw new UsageError(
      `--status ${JSON.stringify(text)}: expected one or more of ${JOB_STATUSES.join(', ')} (comma-separated)`,
    );
  }
  return [...new Set(wanted)] as JobStatus[];
}

/** A job id as the functions derive them (also a Firestore document id and a label value). */
export const JOB_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** What `show` was given: a job id, or an object of Cloud Storage (with its generation if known). */
export type JobReference =
  | { kind: 'job'; jobId: string }
  | { kind: 'object'; bucket: string; name: string; generation: string | undefined };

/** Parses `<jobId | gs://bucket/object[#generation]>`. */
export function parseJobReference(text: string): JobReference {
  const value = text.trim();
  const gs = /^gs:\/\/([^/#]+)\/([^#]+)(?:#(\d+))?$/.exec(value);
  if (gs?.[1] && gs[2]) return { kind: 'object', bucket: gs[1], name: gs[2], generation: gs[3] };
  if (JOB_ID.test(value)) return { kind: 'job', jobId: value };
  throw new UsageError(
    `${JSON.stringify(text)} is neither a job id (like customer-reviews-5614f72277a5169c: batch-courier jobs lists them) nor gs://bucket/object[#generation]`,
  );
}

/** A job id argument (for commands that take only an id). */
export function parseJobId(text: string): string {
  const value = text.trim();
  if (JOB_ID.test(value)) return value;
  throw new UsageError(
    `${JSON.stringify(text)} is not a job id (lowercase letters, digits, - and _, like customer-reviews-5614f72277a5169c): batch-courier jobs lists them`,
  );
}
