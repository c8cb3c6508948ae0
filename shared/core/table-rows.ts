/**
 * Validating the rows of a BigQuery source table (README "Manifests") by the same rules as the
 * lines of a JSONL file: each row's `request` value (and, for Claude, its `custom_id`) must make
 * the line `{"request": …}` (`{"custom_id": …, "request": …}`) that a JSONL file would hold.
 * Rows arrive page by page; one row is in memory at a time.
 */
import { createHash, type Hash } from 'node:crypto';
import { lineCheckFor, type FileUriAllowList } from './line-rules.js';
import {
  MAX_INPUT_LINES,
  MAX_LINE_BYTES,
  MAX_MESSAGE_CHARS,
  type ValidationError,
  type ValidationResult,
} from './jsonl.js';
import type { Provider } from './models.js';
import { addToSizing, type RequestSizing } from './pricing.js';

/**
 * A fingerprint of a table's requests (and Claude's custom_ids), in order: the digest compares the
 * rows it reads with the rows validated, since a table's `lastModifiedTime` also moves when
 * nothing a job reads has changed.
 */
export class RowFingerprint {
  private readonly hash: Hash = createHash('sha256');

  add(request: string | null | undefined, customId?: string | null): void {
    this.hash.update(request ?? '\u0000');
    this.hash.update('\u0001');
    this.hash.update(customId ?? '');
    this.hash.update('\u0002');
  }

  /** The hex digest (once). */
  value(): string {
    return this.hash.digest('hex');
  }
}

/** Options of {@link validateTableRows}. */
export interface TableRowOptions {
  provider: Provider;
  model: string;
  /** How many problems to collect before stopping (default 1,000). */
  maxErrors?: number;
  /** Most rows (default {@link MAX_INPUT_LINES}, Vertex's limit per job). */
  maxRows?: number;
  fileUriAllowed?: FileUriAllowList;
}

/**
 * Validates rows given as `[request]` or, for Claude, `[request, custom_id]` cells (BigQuery's
 * JSON encoding: text, or null). `line` in the result's errors is the 1-based row number in the
 * order `tabledata.list` returns the rows.
 */
export async function validateTableRows(
  rows: AsyncIterable<(string | null)[]>,
  options: TableRowOptions,
): Promise<ValidationResult & { fingerprint: string }> {
  const fingerprint = new RowFingerprint();
  const check = lineCheckFor(options.provider, options.model, {
    fileUriAllowed: options.fileUriAllowed,
  });
  const maxErrors = options.maxErrors ?? 1000;
  const maxRows = options.maxRows ?? MAX_INPUT_LINES;
  const errors: ValidationError[] = [];
  let code: ValidationResult['code'];
  let complete = true;
  let row = 0;
  let bytes = 0;
  const sizing: RequestSizing = { bytes: 0, maxOutputTokens: 0, withoutMax: 0 };
  const fail = (c: NonNullable<ValidationResult['code']>, message: string): void => {
    code ??= c;
    const short =
      message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
    errors.push({ line: row, message: short, byteOffset: 0, excerpt: '' });
  };

  for await (const [request, customId] of rows) {
    row++;
    if (row > maxRows) {
      fail('INPUT.TOO_MANY_LINES', `exceeds the limit of ${maxRows} requests per job`);
      complete = false;
      break;
    }
    fingerprint.add(request, options.provider === 'anthropic' ? customId : undefined);
    const size = request === null || request === undefined ? 0 : Buffer.byteLength(request);
    bytes += size;
    const read = readRow(request, customId, options.provider, size);
    if ('message' in read) {
      fail(read.code, read.message);
    } else {
      const line: Record<string, unknown> = { request: read.request };
      if (options.provider === 'anthropic') line.custom_id = customId;
      const found = check(line);
      if (found) {
        fail(
          found.fatal ? 'INPUT.WRONG_FORMAT' : (found.code ?? 'INPUT.INVALID_JSONL'),
          found.message,
        );
        if (found.fatal) complete = false;
      } else {
        addToSizing(sizing, line, size);
      }
    }
    if (!complete || errors.length >= maxErrors) {
      complete = false;
      break;
    }
  }
  if (row === 0) {
    fail('INPUT.EMPTY', 'the table has no rows');
  }
  return {
    requestCount: Math.min(row, maxRows),
    bytes,
    errors,
    code,
    complete,
    sizing,
    fingerprint: fingerprint.value(),
  };
}

/** A row's request, parsed, or what is wrong with its cells. */
function readRow(
  request: string | null | undefined,
  customId: string | null | undefined,
  provider: Provider,
  size: number,
): { code: NonNullable<ValidationResult['code']>; message: string } | { request: object } {
  if (request === null || request === undefined) {
    return { code: 'INPUT.INVALID_JSONL', message: 'has no "request" value (NULL)' };
  }
  if (size > MAX_LINE_BYTES) {
    return {
      code: 'INPUT.LINE_TOO_LONG',
      message: `has a "request" longer than ${MAX_LINE_BYTES} bytes (16 MiB)`,
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(request);
  } catch {
    return {
      code: 'INPUT.INVALID_JSONL',
      message: 'has a "request" that is not valid JSON (a STRING column must hold JSON text)',
    };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { code: 'INPUT.INVALID_JSONL', message: 'has a "request" that is not a JSON object' };
  }
  if (provider === 'anthropic' && (customId === null || customId === undefined)) {
    return { code: 'INPUT.INVALID_JSONL', message: 'has no "custom_id" value (NULL)' };
  }
  return { request: parsed };
}
