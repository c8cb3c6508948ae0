/**
 * Streaming JSONL validation: one pass over the bytes, one line in memory at a time. The file
 * rules (size, line count, line length, BOM, blank lines, UTF-8, JSON objects, a truncated last
 * line) live here; what a line must contain is the provider's {@link LineCheck}
 * (`shared/line-rules.ts`).
 *
 * Memory is bounded by a constant plus the longest allowed line, whatever the file holds (a run of
 * blank lines costs two numbers, not one entry each), and time is linear in the bytes: a line that
 * spans many chunks is joined once, at its newline.
 */
import { isUtf8 } from 'node:buffer';
import { lineCheckFor, type FileUriAllowList, type LineCheck } from './line-rules.js';
import type { Provider } from './models.js';

/** Vertex's limits for one input file. */
export const MAX_INPUT_LINES = 200_000;
export const MAX_INPUT_BYTES = 1_000_000_000;
/**
 * Longest line accepted (16 MiB), in bytes, not counting its line ending (LF or CRLF). A line is
 * parsed whole, so this bounds the validator's memory; a longer line is refused with
 * `INPUT.LINE_TOO_LONG` and the rest of the file is not read.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
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
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Validates a JSONL byte stream. Never throws for bad content (only for a failing stream); keeps
 * one line (at most {@link MAX_LINE_BYTES}, plus one read chunk) in memory. Chunks are kept by
 * reference until their line ends: the source must not reuse a chunk's memory after yielding it
 * (Node streams never do).
 */
export async function validateJsonl(
  source: AsyncIterable<Uint8Array>,
  options: ValidateOptions,
): Promise<ValidationResult> {
  const check: LineCheck = lineCheckFor(
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
  // Blank lines are an error only when content follows, which is known later. Of a run of them
  // (consecutive, so their line numbers follow the first's) only the first is remembered, plus
  // the offsets of as many more as can still be reported: never one entry per blank line.
  let firstBlank: { line: number; offset: number } | undefined;
  let moreBlankOffsets: number[] = [];
  // The pieces of a line that began in an earlier chunk, joined once when its newline arrives.
  let pieces: Buffer[] = [];
  let piecesLength = 0;
  let lineStart = 0;

  const fail = (
    c: ValidationCode,
    line: number,
    message: string,
    byteOffset: number,
    excerpt = '',
  ): void => {
    code ??= c;
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
    pieces = [];
    piecesLength = 0;
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
    let value: unknown;
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch (err) {
      const column = parseErrorColumn(err);
      fail(
        'INPUT.INVALID_JSONL',
        lineNo,
        `is not valid JSON (${column === undefined ? 'unexpected content' : `at column ${column}`})`,
        offset,
        excerptOf(line, column === undefined ? 0 : Math.max(0, column - EXCERPT_CHARS / 2)),
      );
      return;
    }
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
      if (piecesLength > 0) {
        const length = piecesLength + part.length;
        const head = pieces[0] ?? part;
        if (overLimit(length, part.length > 0 ? part[part.length - 1] : lastByte(pieces))) {
          tooLong(head, lineStart);
          break;
        }
        pieces.push(part);
        line = Buffer.concat(pieces, length);
        pieces = [];
        piecesLength = 0;
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
      // Kept by reference, not copied (the chunk is not reused), and joined once at the newline.
      const rest = chunk.subarray(start);
      pieces.push(rest);
      piecesLength += rest.length;
      // Stop as soon as the line cannot fit, rather than buffering the rest of it. One byte
      // over is still fine when it is the CR of a CRLF.
      if (overLimit(piecesLength, rest[rest.length - 1])) {
        tooLong(pieces[0] ?? rest, lineStart);
        break;
      }
    }
  }

  const complete = !stopped();
  if (complete && piecesLength > 0) {
    // The last line has no final newline: fine when it is complete JSON.
    const before = errors.length;
    checkLine(Buffer.concat(pieces, piecesLength), lineStart);
    pieces = [];
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
  return { requestCount: Math.min(requestCount, maxLines), bytes, errors, code, complete };
}

/**
 * True when a line of `length` bytes (line ending excluded, but a CR before the LF included) whose
 * last byte is `last` is longer than {@link MAX_LINE_BYTES}: a final CR is part of the line ending.
 */
function overLimit(length: number, last: number | undefined): boolean {
  return length > MAX_LINE_BYTES && !(length === MAX_LINE_BYTES + 1 && last === CR);
}

function lastByte(pieces: Buffer[]): number | undefined {
  const last = pieces[pieces.length - 1];
  return last?.[last.length - 1];
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
function firstInvalidUtf8(line: Buffer): number {
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
