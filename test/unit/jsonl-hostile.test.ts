/**
 * Hostile inputs for the streaming validator: memory stays bounded by a constant plus the longest
 * allowed line, time stays linear in the bytes read (counted as bytes copied, never as wall-clock
 * time), and an over-long line is refused without reading the rest of it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_LINE_BYTES, validateJsonl, type ValidateOptions } from '../../shared/core/jsonl.js';

const MiB = 1024 * 1024;
const GEMINI = { provider: 'google' } as const satisfies ValidateOptions;
const VALID_LINE = '{"request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}\n';
const LINE_HEAD = '{"request":{"contents":[{"role":"user","parts":[{"text":"';
const LINE_TAIL = '"}]}]}}';

/** A valid Gemini line of exactly `bytes` bytes, not counting its line ending. */
function lineOf(bytes: number): Buffer {
  const fill = bytes - LINE_HEAD.length - LINE_TAIL.length;
  return Buffer.concat([Buffer.from(LINE_HEAD), Buffer.alloc(fill, 0x78), Buffer.from(LINE_TAIL)]);
}

/** Yields `data` in chunks of `size` bytes (views, no copies), counting what was pulled. */
function chunked(data: Buffer[], size: number, pulled = { bytes: 0 }): AsyncIterable<Buffer> {
  return (async function* () {
    for (const buf of data) {
      for (let i = 0; i < buf.length; i += size) {
        const chunk = buf.subarray(i, i + size);
        pulled.bytes += chunk.length;
        yield chunk;
      }
    }
  })();
}

/**
 * `count` blank lines (`\n`) after `before` and before `after`, 64 KiB at a time from one reused
 * buffer, sampling the heap at every chunk: the peak heap growth over the run is what the
 * validator kept (the source itself holds one 64 KiB buffer).
 */
function blankLines(count: number, before: string, after = '') {
  const heap = { base: process.memoryUsage().heapUsed, peak: 0 };
  const block = Buffer.alloc(1 << 16, 0x0a);
  const source = (async function* () {
    yield Buffer.from(before);
    for (let left = count; left > 0; left -= block.length) {
      yield left >= block.length ? block : block.subarray(0, left);
      heap.peak = Math.max(heap.peak, process.memoryUsage().heapUsed);
    }
    if (after) yield Buffer.from(after);
  })();
  return { source, growth: () => heap.peak - heap.base };
}

/** Bytes copied by Buffer.concat, Buffer.from and buffer.copy while `run` runs. */
async function bytesCopied<T>(run: () => Promise<T>): Promise<{ result: T; copied: number }> {
  let copied = 0;
  const concat = Buffer.concat.bind(Buffer);
  const from = Buffer.from.bind(Buffer) as (...args: unknown[]) => Buffer;
  type Copy = (this: Buffer, target: Uint8Array, at?: number, from?: number, to?: number) => number;
  const proto = Buffer.prototype as unknown as { copy: Copy };
  const copy = proto.copy;
  vi.spyOn(proto, 'copy').mockImplementation(function (this: Buffer, target, at, start, end) {
    const n = copy.call(this, target, at, start, end);
    copied += n;
    return n;
  });
  vi.spyOn(Buffer, 'concat').mockImplementation((list, length) => {
    const out = concat(list, length);
    copied += out.length;
    return out;
  });
  vi.spyOn(Buffer, 'from').mockImplementation(((...args: unknown[]) => {
    const out = from(...args);
    copied += out.length;
    return out;
  }) as typeof Buffer.from);
  try {
    return { result: await run(), copied };
  } finally {
    vi.restoreAllMocks();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('hostile inputs', () => {
  it('item 1: MAX_LINE_BYTES is 16 MiB', () => {
    expect(MAX_LINE_BYTES).toBe(16 * MiB);
  });

  it('item 1: 10 million trailing blank lines after a valid line: valid, bounded memory', async () => {
    const { source, growth } = blankLines(10_000_000, VALID_LINE);
    const result = await validateJsonl(source, GEMINI);
    expect(result).toMatchObject({ code: undefined, requestCount: 1, complete: true });
    expect(result.bytes).toBe(VALID_LINE.length + 10_000_000);
    expect(growth()).toBeLessThan(64 * MiB);
  });

  it('item 1: 10 million blank lines before content: the first is reported, the errors are capped', async () => {
    const { source, growth } = blankLines(10_000_000, VALID_LINE, VALID_LINE);
    const result = await validateJsonl(source, { ...GEMINI, maxErrors: 50 });
    expect(result.code).toBe('INPUT.INVALID_JSONL');
    expect(result.errors).toHaveLength(50);
    expect(result.errors[0]).toMatchObject({
      line: 2,
      byteOffset: VALID_LINE.length,
      message: 'is blank: remove empty lines',
    });
    expect(result.errors[49]).toMatchObject({ line: 51, byteOffset: VALID_LINE.length + 49 });
    expect(growth()).toBeLessThan(64 * MiB);
  });

  it('item 1: several blank lines before content report each (first first), up to maxErrors', async () => {
    const text = `${VALID_LINE}\n \r\n\t\n${VALID_LINE}`;
    const result = await validateJsonl(chunked([Buffer.from(text)], 3), GEMINI);
    expect(result.code).toBe('INPUT.INVALID_JSONL');
    const at = VALID_LINE.length;
    expect(result.errors.map((e) => [e.line, e.byteOffset])).toEqual([
      [2, at],
      [3, at + 1],
      [4, at + 4],
    ]);
    const capped = await validateJsonl(chunked([Buffer.from(text)], 3), {
      ...GEMINI,
      maxErrors: 2,
    });
    expect(capped.errors.map((e) => e.line)).toEqual([2, 3]);
    expect(capped.complete).toBe(false);
  });

  it('item 1: a 20 MiB line is refused with INPUT.LINE_TOO_LONG, without reading the rest of it', async () => {
    const pulled = { bytes: 0 };
    const long = lineOf(20 * MiB);
    const source = chunked(
      [Buffer.from(VALID_LINE), long, Buffer.from(`\n${VALID_LINE}`)],
      64 * 1024,
      pulled,
    );
    const result = await validateJsonl(source, GEMINI);
    expect(result.code).toBe('INPUT.LINE_TOO_LONG');
    expect(result.complete).toBe(false);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ line: 2, byteOffset: VALID_LINE.length });
    expect(result.errors[0]!.message).toContain(`${MAX_LINE_BYTES} bytes`);
    expect(result.errors[0]!.excerpt.startsWith('{"request"')).toBe(true);
    // Stopped within one chunk of the limit: the other ~4 MiB of the line were never pulled.
    expect(pulled.bytes).toBeLessThanOrEqual(VALID_LINE.length + MAX_LINE_BYTES + 2 * 64 * 1024);
    expect(result.bytes).toBe(pulled.bytes);
  });

  it('item 1: an over-long last line without a final newline is refused too', async () => {
    const result = await validateJsonl(chunked([lineOf(MAX_LINE_BYTES + 1)], 1 << 20), GEMINI);
    expect(result.code).toBe('INPUT.LINE_TOO_LONG');
    expect(result.errors[0]?.line).toBe(1);
  });

  it('item 1: a 15 MiB line is accepted', async () => {
    const result = await validateJsonl(
      chunked([lineOf(15 * MiB), Buffer.from(`\n${VALID_LINE}`)], 64 * 1024),
      GEMINI,
    );
    expect(result).toMatchObject({ code: undefined, requestCount: 2, complete: true });
  });

  it('item 1: the limit is exact: MAX_LINE_BYTES passes (also before CRLF), one byte more does not', async () => {
    const exact = lineOf(MAX_LINE_BYTES);
    const ok = await validateJsonl(chunked([exact, Buffer.from('\n')], 1 << 20), GEMINI);
    expect(ok.code).toBeUndefined();
    const crlf = await validateJsonl(chunked([exact, Buffer.from('\r\n')], 1 << 20), GEMINI);
    expect(crlf.code).toBeUndefined();
    const over = await validateJsonl(
      chunked([lineOf(MAX_LINE_BYTES + 1), Buffer.from('\n')], 1 << 20),
      GEMINI,
    );
    expect(over.code).toBe('INPUT.LINE_TOO_LONG');
  });

  it('item 1: a 15 MiB line in 1 KiB chunks completes, copying each byte at most 3 times', async () => {
    const line = lineOf(15 * MiB);
    const { result, copied } = await bytesCopied(() =>
      validateJsonl(chunked([line, Buffer.from('\n')], 1024), GEMINI),
    );
    expect(result).toMatchObject({ code: undefined, requestCount: 1 });
    expect(copied).toBeLessThanOrEqual(3 * line.length);
  });

  it('item 1: a long line in small chunks is copied a bounded number of times (linear time)', async () => {
    const line = lineOf(4 * MiB);
    const tail = Buffer.from(`\n${VALID_LINE}`);
    const { result, copied } = await bytesCopied(() =>
      validateJsonl(chunked([line, tail], 4096), GEMINI),
    );
    expect(result).toMatchObject({ code: undefined, requestCount: 2 });
    // Each byte of the line is copied a bounded number of times (kept from its chunk, plus the
    // geometric growth of the buffer); re-joining the carry on every chunk would copy ~2 GiB here.
    expect(copied).toBeLessThanOrEqual(3 * line.length);
  });
});

describe('hostile inputs found by review', () => {
  const CLAUDE = { provider: 'anthropic', model: 'claude-3-5-haiku' } as const;
  const allowed = { test: () => false, describe: 'gs://acme-input/ (ALLOWED_FILE_URI_PREFIXES)' };
  /** A Claude line whose content nests `depth` levels around a url source. */
  const nested = (depth: number, id: string): string =>
    `{"custom_id":"${id}","request":{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[{"role":"user","content":[` +
    '{"content":['.repeat(depth) +
    '{"type":"image","source":{"type":"url","url":"https://evil.example/x.png"}}' +
    ']}'.repeat(depth) +
    ']}]}}\n';

  it('deeply nested Claude content gives a short message, whatever the depth, and bounded memory', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => Buffer.from(nested(70_000, `r${i}`)));
    const base = process.memoryUsage().heapUsed;
    const result = await validateJsonl(chunked(lines, 1 << 16), {
      ...CLAUDE,
      fileUriAllowed: allowed,
    });
    expect(result.errors).toHaveLength(40);
    for (const e of result.errors) expect(e.message.length).toBeLessThanOrEqual(301);
    expect(result.errors[0]?.message).toMatch(/nests content more than 16 levels deep/);
    expect(process.memoryUsage().heapUsed - base).toBeLessThan(64 * MiB);
  });

  it('a 16 MiB line of millions of tiny values is refused by count, not parsed into memory', async () => {
    const head = '{"request":{"contents":[{"parts":[{"text":"hi"}]}],"tools":[';
    const body = '{},'.repeat(Math.floor((MAX_LINE_BYTES - head.length - 10) / 3));
    const line = Buffer.from(`${head}${body}{}]}}\n`);
    expect(line.length).toBeLessThanOrEqual(MAX_LINE_BYTES + 1);
    const result = await validateJsonl(chunked([line], 1 << 16), GEMINI);
    expect(result.code).toBe('INPUT.INVALID_JSONL');
    expect(result.errors[0]).toMatchObject({ line: 1 });
    expect(result.errors[0]?.message).toMatch(/more than 500000 JSON values/);
  });
});
