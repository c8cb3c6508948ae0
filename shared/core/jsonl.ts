/**
 * Streaming JSONL validation: one pass over the bytes, one line in memory at a time. The file
 * rules (size, line count, line length, BOM, blank lines, UTF-8, JSON objects, a truncated last
 * line) live here; what a line must contain is the provider's {@link LineCheck}
 * (`shared/core/line-rules.ts`).
 *
 * Memory is bounded by a constant plus the longest allowed line, whatever the file holds (a run of
 * blank lines costs two numbers, not one entry each), and time is linear in the bytes: a line that
 * spans many chunks is joined once, at its newline.
 */
import { isUtf8 } from 'node:buffer';
import { lineCheckFor, type FileUriAllowList, type LineCheck } from './line-rules.js';
import type { Provider } from './models.js';
import { addToSizing, type RequestSizing } from './pricing.js';

/** Vertex's limits for one input file. */
export const MAX_INPUT_LINES = 200_000;
export const MAX_INPUT_BYTES = 1_000_000_000;
/**
 * Longest line accepted (16 MiB), in bytes, not counting its line ending (LF or CRLF). A line is
 * parsed whole, so this bounds the validator's memory; a longer line is refused with
 * `INPUT.LINE_TOO_LONG` and the rest of the file is not read.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
/**
 * Lines of at least this many bytes are parsed by {@link parseJsonSkeleton} rather than
 * `JSON.parse`: decoding a line of megabytes into one string and parsing it costs ~3 times its
 * size in short-lived memory, which made the peak of a file of 8 MiB lines ~210 MiB.
 */
export const SKELETON_MIN_BYTES = 1 << 20;
/**
 * Most JSON values (objects, arrays, strings, numbers, literals) in one line. Far above any real
 * request (a line under 1 MiB cannot hold more), it bounds the memory of parsing a 16 MiB line
 * (each value costs tens of bytes once parsed).
 */
export const MAX_LINE_VALUES = 500_000;
/** Longest problem message kept (messages may name a path into a deeply nested line). */
export const MAX_MESSAGE_CHARS = 300;
/** Longest excerpt of a bad line kept in a report (never a whole prompt). */
export const EXCERPT_CHARS = 40;

/** Which rule failed first, in the event's `error.code` vocabulary. */
export type ValidationCode =
  | 'INPUT.EMPTY'
  | 'INPUT.INVALID_JSONL'
  | 'INPUT.WRONG_FORMAT'
  | 'INPUT.TOO_LARGE'
  | 'INPUT.TOO_MANY_LINES'
  | 'INPUT.INVALID_ENCODING'
  | 'INPUT.LINE_TOO_LONG'
  | 'INPUT.FILE_URI_NOT_ALLOWED';

/** One problem, where it is, and a short excerpt of the line for the report. */
export interface ValidationError {
  /** 1-based line number. */
  line: number;
  /** What is wrong (no file content). */
  message: string;
  /** Byte offset in the file of the line's start, or of the bad byte. */
  byteOffset: number;
  /** At most {@link EXCERPT_CHARS} characters of the line near the problem; for the report only. */
  excerpt: string;
}

/** The result of validating a file. */
export interface ValidationResult {
  /** Number of requests (non-blank lines). */
  requestCount: number;
  /** Bytes read. */
  bytes: number;
  /** The first problems, in file order (at most `maxErrors`). */
  errors: ValidationError[];
  /** The code of the first problem, when there is one. */
  code: ValidationCode | undefined;
  /** False when validation stopped early (too many errors, a file limit, the wrong format). */
  complete: boolean;
  /** What the valid requests ask for, for the cost estimate. */
  sizing: RequestSizing;
}

/** Options of {@link validateJsonl}. */
export interface ValidateOptions {
  provider: Provider;
  /** The job's model, named in messages (default: the provider's default model). */
  model?: string;
  /** How many problems to collect before stopping (default 1,000). */
  maxErrors?: number;
  maxLines?: number;
  maxBytes?: number;
  /**
   * Where file URIs in requests may point (Gemini `fileData.fileUri`, Claude `source.url` of an
   * image or document): a URI that fails `test` is a line error `INPUT.FILE_URI_NOT_ALLOWED`.
   * Absent: any `gs://` or `https://` URI.
   */
  fileUriAllowed?: FileUriAllowList;
  /**
   * The line rules to apply (default: the provider's, fresh for this file). Files validated as
   * one input (a manifest's) share one, so that what must be unique is unique across them.
   */
  check?: LineCheck;
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Validates a JSONL byte stream. Never throws for bad content (only for a failing stream); keeps
 * one line (at most {@link MAX_LINE_BYTES}, plus one read chunk) in memory.
 */
export async function validateJsonl(
  source: AsyncIterable<Uint8Array>,
  options: ValidateOptions,
): Promise<ValidationResult> {
  const check: LineCheck =
    options.check ??
    lineCheckFor(
      options.provider,
      options.model ??
        (options.provider === 'anthropic' ? 'claude' : 'publishers/google/models/gemini-2.5-flash'),
      { fileUriAllowed: options.fileUriAllowed },
    );
  const maxErrors = options.maxErrors ?? 1000;
  const maxLines = options.maxLines ?? MAX_INPUT_LINES;
  const maxBytes = options.maxBytes ?? MAX_INPUT_BYTES;

  const errors: ValidationError[] = [];
  let code: ValidationCode | undefined;
  /** Nothing more is read: the wrong format, or a file limit (size, lines, line length). */
  let halted = false;
  let bytes = 0;
  let lineNo = 0;
  let requestCount = 0;
  const sizing: RequestSizing = { bytes: 0, maxOutputTokens: 0, withoutMax: 0 };
  // Blank lines are an error only when content follows, which is known later. Of a run of them
  // (consecutive, so their line numbers follow the first's) only the first is remembered, plus
  // the offsets of as many more as can still be reported: never one entry per blank line.
  let firstBlank: { line: number; offset: number } | undefined;
  let moreBlankOffsets: number[] = [];
  // The start of a line that began in an earlier chunk. One buffer, grown geometrically (so each
  // byte is copied a bounded number of times) up to the longest allowed line, and reused: a long
  // line costs no allocation of its size, and no garbage of its size, every time it comes.
  let carry = Buffer.alloc(0);
  let carryLength = 0;
  const keep = (bytes: Buffer): void => {
    const need = carryLength + bytes.length;
    if (need > carry.length) {
      const grown = Buffer.allocUnsafe(
        Math.min(Math.max(need, 2 * carry.length, 1 << 16), MAX_LINE_BYTES + 1),
      );
      carry.copy(grown, 0, 0, carryLength);
      carry = grown;
    }
    bytes.copy(carry, carryLength);
    carryLength = need;
  };
  let lineStart = 0;

  const fail = (
    c: ValidationCode,
    line: number,
    message: string,
    byteOffset: number,
    excerpt = '',
  ): void => {
    code ??= c;
    // A message may quote a path into the line; however deep the line, a message stays short.
    if (message.length > MAX_MESSAGE_CHARS) message = `${message.slice(0, MAX_MESSAGE_CHARS)}…`;
    if (errors.length < maxErrors) errors.push({ line, message, byteOffset, excerpt });
  };

  /** Content follows the pending blank lines: each is an error, the first first. */
  const reportBlanks = (): void => {
    if (firstBlank === undefined) return;
    const { line, offset } = firstBlank;
    fail('INPUT.INVALID_JSONL', line, 'is blank: remove empty lines', offset);
    moreBlankOffsets.forEach((at, i) => {
      fail('INPUT.INVALID_JSONL', line + 1 + i, 'is blank: remove empty lines', at);
    });
    firstBlank = undefined;
    moreBlankOffsets = [];
  };

  /** The next line is longer than MAX_LINE_BYTES; `head` is its start, for the excerpt. */
  const tooLong = (head: Buffer, offset: number): void => {
    lineNo++;
    reportBlanks();
    fail(
      'INPUT.LINE_TOO_LONG',
      lineNo,
      `is longer than ${MAX_LINE_BYTES} bytes (16 MiB), the limit per line`,
      offset,
      excerptOf(head, 0),
    );
    halted = true;
    carryLength = 0;
  };

  const checkLine = (raw: Buffer, offset: number): void => {
    lineNo++;
    let line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, -1) : raw;
    if (lineNo === 1 && line.subarray(0, 3).equals(BOM)) {
      fail(
        'INPUT.INVALID_ENCODING',
        1,
        'starts with a UTF-8 byte order mark (BOM): save the file as UTF-8 without BOM',
        0,
      );
      line = line.subarray(3);
      offset += 3;
    }
    if (isBlank(line)) {
      // A blank line is fine only at the end of the file; decided when a next line comes.
      if (firstBlank === undefined) firstBlank = { line: lineNo, offset };
      else if (moreBlankOffsets.length < maxErrors - errors.length - 1)
        moreBlankOffsets.push(offset);
      return;
    }
    reportBlanks();
    requestCount++;
    if (requestCount > maxLines) {
      fail(
        'INPUT.TOO_MANY_LINES',
        lineNo,
        `exceeds the limit of ${maxLines} requests per file`,
        offset,
      );
      halted = true;
      return;
    }
    if (!isUtf8(line)) {
      const at = firstInvalidUtf8(line);
      fail(
        'INPUT.INVALID_ENCODING',
        lineNo,
        `is not valid UTF-8 (first bad byte at file offset ${offset + at})`,
        offset + at,
        excerptOf(line.subarray(0, at), Math.max(0, at - EXCERPT_CHARS)),
      );
      return;
    }
    const parsed = parseLine(line);
    if ('tooManyValues' in parsed) {
      fail(
        'INPUT.INVALID_JSONL',
        lineNo,
        `has more than ${MAX_LINE_VALUES} JSON values: no request needs that many; split or simplify it`,
        offset,
      );
      return;
    }
    if (!('value' in parsed)) {
      const column = parsed.column;
      fail(
        'INPUT.INVALID_JSONL',
        lineNo,
        `is not valid JSON (${column === undefined ? 'unexpected content' : `at column ${column}`})`,
        offset,
        excerptOf(line, column === undefined ? 0 : Math.max(0, column - EXCERPT_CHARS / 2)),
      );
      return;
    }
    const value = parsed.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail(
        'INPUT.INVALID_JSONL',
        lineNo,
        `is ${describeJsonType(value)}, not a JSON object`,
        offset,
        excerptOf(line, 0),
      );
      return;
    }
    const problem = check(value as Record<string, unknown>);
    if (!problem) addToSizing(sizing, value as Record<string, unknown>, line.length);
    if (problem) {
      fail(
        problem.fatal ? 'INPUT.WRONG_FORMAT' : (problem.code ?? 'INPUT.INVALID_JSONL'),
        lineNo,
        problem.message,
        offset,
        excerptOf(line, 0),
      );
      halted ||= problem.fatal === true;
    }
  };

  const stopped = (): boolean => halted || errors.length >= maxErrors;

  for await (const piece of source) {
    const chunk = Buffer.isBuffer(piece)
      ? piece
      : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    bytes += chunk.length;
    if (bytes > maxBytes) {
      fail(
        'INPUT.TOO_LARGE',
        lineNo + 1,
        `the file exceeds the limit of ${maxBytes} bytes`,
        maxBytes,
      );
      halted = true;
      break;
    }
    let start = 0;
    let nl = chunk.indexOf(NEWLINE, start);
    while (nl !== -1) {
      const part = chunk.subarray(start, nl);
      let line = part;
      if (carryLength > 0) {
        const length = carryLength + part.length;
        const last = part.length > 0 ? part[part.length - 1] : carry[carryLength - 1];
        if (overLimit(length, last)) {
          tooLong(carry.subarray(0, carryLength), lineStart);
          break;
        }
        keep(part);
        line = carry.subarray(0, carryLength);
        carryLength = 0;
      } else if (overLimit(part.length, part[part.length - 1])) {
        tooLong(part, lineStart);
        break;
      }
      checkLine(line, lineStart);
      lineStart += line.length + 1;
      if (stopped()) break;
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (stopped()) break;
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      // Stop as soon as the line cannot fit, rather than buffering the rest of it. One byte
      // over is still fine when it is the CR of a CRLF.
      if (overLimit(carryLength + rest.length, rest[rest.length - 1])) {
        tooLong(carryLength > 0 ? carry.subarray(0, carryLength) : rest, lineStart);
        break;
      }
      keep(rest);
    }
  }

  const complete = !stopped();
  if (complete && carryLength > 0) {
    // The last line has no final newline: fine when it is complete JSON.
    const before = errors.length;
    checkLine(carry.subarray(0, carryLength), lineStart);
    const last = errors[errors.length - 1];
    if (errors.length > before && last?.message.startsWith('is not valid JSON')) {
      last.message += ': the last line has no final newline; was the file truncated?';
    }
  }
  if (complete && requestCount === 0 && code === undefined) {
    fail(
      'INPUT.EMPTY',
      1,
      bytes === 0 ? 'the file is empty' : 'the file has no requests (only blank lines)',
      0,
    );
  }
  return {
    requestCount: Math.min(requestCount, maxLines),
    bytes,
    errors,
    code,
    complete,
    sizing,
  };
}

/**
 * True when a line of `length` bytes (line ending excluded, but a CR before the LF included) whose
 * last byte is `last` is longer than {@link MAX_LINE_BYTES}: a final CR is part of the line ending.
 */
function overLimit(length: number, last: number | undefined): boolean {
  return length > MAX_LINE_BYTES && !(length === MAX_LINE_BYTES + 1 && last === CR);
}

function isBlank(line: Buffer): boolean {
  for (const b of line) {
    if (b !== 0x20 && b !== 0x09 && b !== CR) return false;
  }
  return true;
}

/** At most EXCERPT_CHARS characters of `line` from character `from`, control characters escaped. */
function excerptOf(line: Buffer, from: number): string {
  // Decode a little more than needed from roughly the right byte; characters are ≤ 4 bytes.
  const bytesFrom = Math.min(line.length, Math.floor(from));
  const slice = line.subarray(bytesFrom, bytesFrom + EXCERPT_CHARS * 4).toString('utf8');
  // Control characters are escaped so the report stays one readable line per problem.
  const chars = [...slice].slice(0, EXCERPT_CHARS);
  const text = chars
    .map((c) => {
      const code = c.charCodeAt(0);
      return code < 0x20 || code === 0x7f ? `\\u${code.toString(16).padStart(4, '0')}` : c;
    })
    .join('');
  const more = bytesFrom + Buffer.byteLength(chars.join('')) < line.length;
  return `${bytesFrom > 0 ? '…' : ''}${text}${more ? '…' : ''}`;
}

/** Byte index of the first byte that makes `line` invalid UTF-8. */
export function firstInvalidUtf8(line: Buffer): number {
  let i = 0;
  while (i < line.length) {
    const b = line[i] ?? 0;
    const need =
      b < 0x80
        ? 1
        : b >= 0xc2 && b <= 0xdf
          ? 2
          : b >= 0xe0 && b <= 0xef
            ? 3
            : b >= 0xf0 && b <= 0xf4
              ? 4
              : 0;
    if (need === 0 || i + need > line.length || !isUtf8(line.subarray(i, i + need))) return i;
    i += need;
  }
  return i;
}

/** A line's JSON value, or the 1-based column of its first syntax error (when known). */
function parseLine(
  line: Buffer,
): { value: unknown } | { column: number | undefined } | { tooManyValues: true } {
  if (line.length >= SKELETON_MIN_BYTES) {
    const parsed = parseJsonSkeleton(line);
    if ('tooManyValues' in parsed) return parsed;
    return 'value' in parsed ? parsed : { column: parsed.errorAt + 1 };
  }
  try {
    return { value: JSON.parse(line.toString('utf8')) };
  } catch (err) {
    return { column: parseErrorColumn(err) };
  }
}

/** Strings longer than this many bytes (as written) are kept by {@link parseJsonSkeleton} as a prefix. */
export const SKELETON_STRING_BYTES = 4096;

type Container = unknown[] | Record<string, unknown>;

/**
 * Parses JSON from bytes (valid UTF-8) exactly as `JSON.parse` accepts it (RFC 8259: the same
 * syntax errors, duplicate keys keep the last value, `"__proto__"` is an ordinary key), except
 * that a string longer than `keepBytes` bytes as written becomes its first ~`keepBytes` bytes
 * (decoded): what the line rules look at (roles, types, URIs, ids) is short, and a long prompt is
 * checked without a copy of it being made. Iterative: any nesting depth, like `JSON.parse`.
 * Returns the value, or the byte index of the first error.
 */
export function parseJsonSkeleton(
  buf: Buffer,
  keepBytes = SKELETON_STRING_BYTES,
  maxValues = MAX_LINE_VALUES,
): { value: unknown } | { errorAt: number } | { tooManyValues: true } {
  let values = 0;
  const n = buf.length;
  let i = 0;
  const skipSpace = (): void => {
    while (i < n) {
      const b = buf[i];
      if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return;
      i++;
    }
  };
  /** The string starting at `i` (a quote); advances past it; undefined on a syntax error. */
  const string = (): string | undefined => {
    const open = i++;
    const limit = open + 1 + keepBytes;
    let cut = -1;
    let escapes = false;
    for (;;) {
      if (i >= n) return undefined;
      const b = buf[i] ?? 0;
      // Remember the last character boundary within the kept part (not inside an escape or a
      // multi-byte character), in case the string is longer than that.
      if (i <= limit && (b & 0xc0) !== 0x80) cut = i;
      if (b === 0x22) break;
      if (b < 0x20) return undefined;
      if (b === 0x5c) {
        escapes = true;
        const e = buf[i + 1];
        if (e === 0x75) {
          for (let k = i + 2; k < i + 6; k++) {
            if (!isHexDigit(buf[k])) {
              i = Math.min(k, n);
              return undefined;
            }
          }
          i += 6;
        } else if (e !== undefined && SIMPLE_ESCAPES.has(e)) {
          i += 2;
        } else {
          i++;
          return undefined;
        }
        continue;
      }
      i++;
    }
    const close = i++;
    const end = close - open - 1 <= keepBytes ? close : cut;
    if (!escapes) return buf.toString('utf8', open + 1, end);
    // Escapes are decoded by JSON.parse itself, on the (short) kept part.
    return JSON.parse(`${buf.toString('utf8', open, end)}"`) as string;
  };
  const literal = (text: string, value: unknown): { value: unknown } | undefined => {
    for (let k = 0; k < text.length; k++) {
      if (buf[i + k] !== text.charCodeAt(k)) {
        i += k;
        return undefined;
      }
    }
    i += text.length;
    return { value };
  };
  const number = (): number | undefined => {
    const start = i;
    if (buf[i] === 0x2d) i++;
    if (buf[i] === 0x30) i++;
    else if (isDigit(buf[i]) && buf[i] !== 0x30) while (isDigit(buf[i])) i++;
    else return undefined;
    if (buf[i] === 0x2e) {
      i++;
      if (!isDigit(buf[i])) return undefined;
      while (isDigit(buf[i])) i++;
    }
    if (buf[i] === 0x65 || buf[i] === 0x45) {
      i++;
      if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
      if (!isDigit(buf[i])) return undefined;
      while (isDigit(buf[i])) i++;
    }
    return Number(buf.toString('latin1', start, i));
  };
  /** After `{` or `,` in an object: `"key" :`, stored as the frame's pending key. */
  const keys: string[] = [];
  const key = (): boolean => {
    skipSpace();
    if (buf[i] !== 0x22) return false;
    const k = string();
    if (k === undefined) return false;
    skipSpace();
    if (buf[i] !== 0x3a) return false;
    i++;
    keys[stack.length - 1] = k;
    return true;
  };
  const stack: Container[] = [];
  const error = (): { errorAt: number } => ({ errorAt: Math.min(i, n) });

  for (;;) {
    // A value is expected at i.
    skipSpace();
    const b = buf[i];
    let value: unknown;
    if (b === 0x7b || b === 0x5b) {
      i++;
      skipSpace();
      const close = b === 0x7b ? 0x7d : 0x5d;
      if (buf[i] === close) {
        i++;
        value = b === 0x7b ? {} : [];
      } else {
        stack.push(b === 0x7b ? {} : []);
        if (b === 0x7b && !key()) return error();
        continue;
      }
    } else if (b === 0x22) {
      value = string();
      if (value === undefined) return error();
    } else if (b === 0x74 || b === 0x66 || b === 0x6e) {
      const got =
        b === 0x74
          ? literal('true', true)
          : b === 0x66
            ? literal('false', false)
            : literal('null', null);
      if (!got) return error();
      value = got.value;
    } else {
      value = number();
      if (value === undefined) return error();
    }
    // A complete value: store it in its container, then close containers or go to the next one.
    if (++values > maxValues) return { tooManyValues: true };
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        skipSpace();
        return i === n ? { value } : error();
      }
      if (Array.isArray(top)) top.push(value);
      else setOwn(top, keys[stack.length - 1] ?? '', value);
      skipSpace();
      const c = buf[i];
      if (c === 0x2c) {
        i++;
        if (!Array.isArray(top) && !key()) return error();
        break;
      }
      if (c !== (Array.isArray(top) ? 0x5d : 0x7d)) return error();
      i++;
      stack.pop();
      value = top;
    }
  }
}

/** `"`, `\`, `/`, `b`, `f`, `n`, `r`, `t`: the one-character escapes of JSON. */
const SIMPLE_ESCAPES: ReadonlySet<number> = new Set([
  0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74,
]);
const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;
const isHexDigit = (b: number | undefined): boolean =>
  b !== undefined && (isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));

/** `obj[key] = value` as JSON.parse does it: `"__proto__"` is an own property, not the prototype. */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  } else {
    obj[key] = value;
  }
}

/** JSON.parse messages quote the input; keep only the position, so no content leaks into errors. */
function parseErrorColumn(err: unknown): number | undefined {
  const message = err instanceof Error ? err.message : '';
  const col = /column (\d+)/.exec(message)?.[1];
  if (col) return Number(col);
  const pos = /position (\d+)/.exec(message)?.[1];
  return pos ? Number(pos) + 1 : undefined;
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string';
  return `a ${typeof value}`;
}
