/**
 * Splits a byte stream into lines, as JSONL files are read here: `\n` ends a line, a `\r` before it
 * is dropped, a byte-order mark at the start is skipped, a last line without a newline counts, and
 * a file's final newline makes no empty line after it. A line within one chunk is a view of it,
 * not a copy.
 */
import { PermanentError } from './errors.js';

const NEWLINE = 0x0a;
const CR = 0x0d;

/** Each line of `source` (without its line ending). Throws when a line exceeds `maxLineBytes`. */
export async function* splitLines(
  source: AsyncIterable<Uint8Array>,
  what: string,
  maxLineBytes: number,
): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let first = true;
  const trim = (line: Buffer): Buffer =>
    line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
  const tooLong = (): PermanentError =>
    new PermanentError(
      'DIGEST.LINE_TOO_LONG',
      `${what}: a line is longer than ${maxLineBytes} bytes`,
    );
  for await (const piece of source) {
    let chunk = Buffer.isBuffer(piece)
      ? piece
      : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    if (first && chunk.length > 0) {
      first = false;
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    }
    let start = 0;
    let nl = chunk.indexOf(NEWLINE, start);
    while (nl >= 0) {
      let line = chunk.subarray(start, nl);
      if (pendingBytes > 0) {
        if (pendingBytes + line.length > maxLineBytes) throw tooLong();
        line = Buffer.concat([...pending, line]);
        pending = [];
        pendingBytes = 0;
      }
      yield trim(line);
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      pendingBytes += rest.length;
      if (pendingBytes > maxLineBytes) throw tooLong();
      // Copied: the source may reuse its buffer for the next chunk.
      pending.push(Buffer.from(rest));
    }
  }
  if (pendingBytes > 0) yield trim(Buffer.concat(pending));
}
