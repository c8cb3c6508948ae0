/**
 * Streaming JSONL validation: one pass over the bytes, one line in memory at a time. The file
 * rules (size, line count, blank lines, UTF-8, JSON objects) live here; what a line must contain
 * is a {@link LineRule} per provider, so per-provider validation grows without touching the reader.
 */
import { isUtf8 } from 'node:buffer';
import type { LineError } from './jobs.js';
import type { Provider } from './models.js';

/** Vertex's limits for one input file. */
export const MAX_INPUT_LINES = 200_000;
export const MAX_INPUT_BYTES = 1_000_000_000;

/** What a rule sees of a line; it returns a problem, or undefined when the line is fine. */
export type LineRule = (value: Record<string, unknown>, line: number) => string | undefined;

/** The minimal rule shared by both providers: `request` must be an object. */
const requestIsObject: LineRule = (value) => {
  const request = value.request;
  if (request === undefined) return 'has no "request" field';
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return '"request" must be a JSON object';
  }
  return undefined;
};

/** The rules for each provider's line format. */
export const LINE_RULES: Record<Provider, LineRule[]> = {
  google: [requestIsObject],
  anthropic: [requestIsObject],
};

/** Which rule failed first, in the event's `error.code` vocabulary. */
export type ValidationCode =
  | 'INPUT.EMPTY'
  | 'INPUT.INVALID_JSONL'
  | 'INPUT.TOO_LARGE'
  | 'INPUT.TOO_MANY_LINES'
  | 'INPUT.INVALID_ENCODING';

/** The result of validating a file. */
export interface ValidationResult {
  /** Number of requests (non-blank lines). */
  requestCount: number;
  /** Bytes read. */
  bytes: number;
  /** The first problems, in file order (at most `maxErrors`). */
  errors: LineError[];
  /** The code of the first problem, when there is one. */
  code: ValidationCode | undefined;
  /** False when validation stopped early (too many errors or a file-level limit). */
  complete: boolean;
}

/** Options of {@link validateJsonl}. */
export interface ValidateOptions {
  provider: Provider;
  /** How many line errors to collect before stopping (default 100). */
  maxErrors?: number;
  maxLines?: number;
  maxBytes?: number;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * Validates a JSONL byte stream. Never throws for bad content (only for a failing stream); never
 * keeps more than one line (plus one read chunk) in memory; never copies line contents into errors.
 */
export async function validateJsonl(
  source: AsyncIterable<Uint8Array>,
  options: ValidateOptions,
): Promise<ValidationResult> {
  const rules = LINE_RULES[options.provider];
  const maxErrors = options.maxErrors ?? 100;
  const maxLines = options.maxLines ?? MAX_INPUT_LINES;
  const maxBytes = options.maxBytes ?? MAX_INPUT_BYTES;

  const errors: LineError[] = [];
  let code: ValidationCode | undefined;
  let bytes = 0;
  let lineNo = 0;
  let requestCount = 0;
  let blankRun: number[] = [];
  let carry: Buffer | undefined;
  let lineStartOffset = 0;

  const fail = (c: ValidationCode, line: number, message: string): void => {
    code ??= c;
    if (errors.length < maxErrors) errors.push({ line, message });
  };

  const checkLine = (raw: Buffer, offset: number): void => {
    lineNo++;
    const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, -1) : raw;
    if (isBlank(line)) {
      // A blank line is fine only as part of the file's end; decide when the next line comes.
      blankRun.push(lineNo);
      return;
    }
    for (const blank of blankRun)
      fail('INPUT.INVALID_JSONL', blank, 'is blank: remove empty lines');
    blankRun = [];
    requestCount++;
    if (requestCount > maxLines) {
      fail('INPUT.TOO_MANY_LINES', lineNo, `exceeds the limit of ${maxLines} requests per file`);
      return;
    }
    if (!isUtf8(line)) {
      const at = offset + firstInvalidUtf8(line);
      fail(
        'INPUT.INVALID_ENCODING',
        lineNo,
        `is not valid UTF-8 (first bad byte at file offset ${at})`,
      );
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch (err) {
      fail('INPUT.INVALID_JSONL', lineNo, `is not valid JSON (${parseErrorPosition(err)})`);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail('INPUT.INVALID_JSONL', lineNo, `is ${describeJsonType(value)}, not a JSON object`);
      return;
    }
    for (const rule of rules) {
      const problem = rule(value as Record<string, unknown>, lineNo);
      if (problem !== undefined) {
        fail('INPUT.INVALID_JSONL', lineNo, problem);
        return;
      }
    }
  };

  const stopped = (): boolean =>
    errors.length >= maxErrors || code === 'INPUT.TOO_MANY_LINES' || code === 'INPUT.TOO_LARGE';

  for await (const piece of source) {
    const chunk = Buffer.isBuffer(piece)
      ? piece
      : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    bytes += chunk.length;
    if (bytes > maxBytes) {
      fail('INPUT.TOO_LARGE', lineNo + 1, `the file exceeds the limit of ${maxBytes} bytes`);
      break;
    }
    let start = 0;
    let nl = chunk.indexOf(NEWLINE, start);
    while (nl !== -1) {
      const part = chunk.subarray(start, nl);
      const line = carry ? Buffer.concat([carry, part]) : part;
      carry = undefined;
      checkLine(line, lineStartOffset);
      lineStartOffset += line.length + 1;
      if (stopped()) break;
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (stopped()) break;
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
    }
  }

  const complete = !stopped();
  if (complete && carry !== undefined && carry.length > 0) {
    // The last line has no newline: fine when it is complete JSON.
    const before = errors.length;
    checkLine(carry, lineStartOffset);
    const last = errors[errors.length - 1];
    if (errors.length > before && last && last.message.startsWith('is not valid JSON')) {
      last.message += ' — the last line has no final newline: was the file truncated?';
    }
  }
  if (complete && requestCount === 0 && code === undefined) {
    code = 'INPUT.EMPTY';
    errors.push({
      line: 1,
      message: bytes === 0 ? 'the file is empty' : 'the file has no requests (only blank lines)',
    });
  }
  return { requestCount: Math.min(requestCount, maxLines), bytes, errors, code, complete };
}

function isBlank(line: Buffer): boolean {
  for (const b of line) {
    if (b !== 0x20 && b !== 0x09 && b !== CR) return false;
  }
  return true;
}

function firstInvalidUtf8(line: Buffer): number {
  // Binary search on the longest valid prefix is overkill: scan with the fatal decoder by halves.
  let lo = 0;
  let hi = line.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (isUtf8Prefix(line.subarray(0, mid))) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function isUtf8Prefix(bytes: Buffer): boolean {
  // A prefix is acceptable when it is valid UTF-8 or ends inside a (so far) valid sequence.
  for (let cut = 0; cut <= 3 && cut <= bytes.length; cut++) {
    if (isUtf8(bytes.subarray(0, bytes.length - cut))) {
      return cut === 0 || isIncompleteSequence(bytes.subarray(bytes.length - cut));
    }
  }
  return false;
}

function isIncompleteSequence(tail: Buffer): boolean {
  const lead = tail[0];
  if (lead === undefined) return true;
  const need =
    lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 && lead < 0xe0 ? 2 : 0;
  if (need === 0 || tail.length >= need) return false;
  for (let i = 1; i < tail.length; i++) if (((tail[i] ?? 0) & 0xc0) !== 0x80) return false;
  return true;
}

/** JSON.parse messages quote the input; keep only the position so no content leaks into errors. */
function parseErrorPosition(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const col = /column (\d+)/.exec(message)?.[1];
  if (col) return `at column ${col}`;
  const pos = /position (\d+)/.exec(message)?.[1];
  if (pos) return `at column ${Number(pos) + 1}`;
  if (/Unexpected end of JSON input/.test(message)) return 'it ends early';
  return 'unexpected content';
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string';
  return `a ${typeof value}`;
}
