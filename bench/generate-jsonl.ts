/**
 * Synthetic, valid batch input files for the validation benchmark: lines of mixed sizes (mostly
 * short prompts, a tail of long ones up to ~50 KB), text with occasional non-ASCII (é, 日本語,
 * emoji) and JSON escapes, in one provider's line format, written as a stream and reproducible from
 * a seed. A file is for one provider, as a job has one model: to cover both, make one file each.
 * Hostile but valid variants: every line of one (large) size (`lineBytes`), and a long run of
 * trailing blank lines (`trailingBlankLines`).
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Provider } from '../shared/core/models.js';

/** Options of {@link generateJsonl}. */
export interface GenerateOptions {
  /** Exact size of the requests in bytes (at least {@link MIN_LINE_BYTES}). */
  bytes: number;
  /** Whose line format to write (default `google`). */
  provider?: Provider;
  /** Same seed, same options → the same bytes. */
  seed: number;
  /**
   * Every line this many bytes, newline included (the last one takes what is left), instead of
   * the mixed sizes: long lines that span many read chunks.
   */
  lineBytes?: number;
  /** Blank lines (`\n`) appended after the requests; the file is that many bytes longer. */
  trailingBlankLines?: number;
}

/** What was written. */
export interface GenerateResult {
  /** Size of the file, trailing blank lines included. */
  bytes: number;
  /** Requests (non-blank lines). */
  lines: number;
}

/** Shortest line, and longest line of the mixed sizes, newline included. */
export const MIN_LINE_BYTES = 256;
export const MAX_MIXED_LINE_BYTES = 51_200;

/**
 * Line sizes: a share of lines and a log-uniform size range each. Mostly short (median ~900 B), with
 * a mean of ~6.4 KB so that a 1 GB file has ~156,000 lines, safely under Vertex's 200,000.
 */
const SIZE_BUCKETS: readonly { share: number; min: number; max: number }[] = [
  { share: 0.55, min: MIN_LINE_BYTES, max: 1_024 },
  { share: 0.25, min: 1_024, max: 10_240 },
  { share: 0.2, min: 10_240, max: MAX_MIXED_LINE_BYTES },
];

/** Shortest text in a slot, so that no content is ever empty. */
const MIN_TEXT_BYTES = 24;
/** Size of the text pool that prompts are sliced from; far larger than the longest line. */
const CORPUS_BYTES = 1 << 20;
/** Bytes buffered before a write. */
const WRITE_BATCH_BYTES = 1 << 20;

const WORDS = (
  'the a of to and in is for on with as by at from that this it be are was or an which ' +
  'summarize translate classify review customer product order delivery invoice refund account ' +
  'please answer question following text document report sentence paragraph quickly carefully ' +
  'score sentiment positive negative neutral reason step list table json format output example ' +
  'weather city river mountain market price quarter revenue growth forecast team meeting notes'
).split(' ');

/** Rare fragments: non-ASCII, and text that needs JSON escapes (written here unescaped). */
const SPECIALS = [
  'café',
  'résumé',
  'naïve',
  'Größe',
  'déjà vu',
  '日本語',
  'こんにちは世界',
  '東京タワー',
  '🚀',
  '😀',
  '👍🏽',
  '🇫🇷',
  '"quoted"',
  'say "hi"',
  '\n',
  '\n\n',
  'tab\there',
  'C:\\temp\\file.txt',
  '</script>',
];
/** Already-escaped JSON source: a `\u` escape that JSON.stringify would never produce. */
const RAW_ESCAPED = ['\\u00e9t\\u00e9', '\\u65e5\\u672c'];

/** ASCII filler that brings a text to its exact byte size. */
const PAD = 'x'.repeat(64);

export type Random = () => number;

/** mulberry32: small, fast, good enough for test data, and deterministic. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rng: Random, items: readonly T[]): T => {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
};

/**
 * A pool of JSON-escaped text with the char and byte offsets of its fragment boundaries, so that a
 * slice of exactly N bytes never cuts an escape sequence or a multi-byte character.
 */
interface Corpus {
  text: string;
  charAt: Uint32Array;
  byteAt: Uint32Array;
}

function buildCorpus(rng: Random): Corpus {
  const fragments: string[] = [];
  const chars: number[] = [0];
  const bytes: number[] = [0];
  let charPos = 0;
  let bytePos = 0;
  while (bytePos < CORPUS_BYTES) {
    const r = rng();
    const fragment =
      r < 0.015
        ? JSON.stringify(pick(rng, SPECIALS)).slice(1, -1) + ' '
        : r < 0.017
          ? pick(rng, RAW_ESCAPED) + ' '
          : pick(rng, WORDS) + (rng() < 0.08 ? '. ' : ' ');
    fragments.push(fragment);
    charPos += fragment.length;
    bytePos += Buffer.byteLength(fragment);
    chars.push(charPos);
    bytes.push(bytePos);
  }
  return {
    text: fragments.join(''),
    charAt: Uint32Array.from(chars),
    byteAt: Uint32Array.from(bytes),
  };
}

/** Index of the last element ≤ value in an ascending array (assumes array[0] ≤ value). */
function lastAtMost(array: Uint32Array, value: number): number {
  let lo = 0;
  let hi = array.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if ((array[mid] ?? Infinity) <= value) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * JSON string contents (without quotes) of exactly `bytes` UTF-8 bytes; longer than half the pool,
 * it is several slices of it (each cut at fragment boundaries, so the joins are clean).
 */
function text(corpus: Corpus, rng: Random, bytes: number): string {
  const most = CORPUS_BYTES / 2;
  if (bytes > most) {
    const slices: string[] = [];
    let left = bytes;
    for (; left > most; left -= most) slices.push(slice(corpus, rng, most));
    slices.push(slice(corpus, rng, left));
    return slices.join('');
  }
  return slice(corpus, rng, bytes);
}

/** A slice of the pool of exactly `bytes` (at most half the pool) UTF-8 bytes. */
function slice(corpus: Corpus, rng: Random, bytes: number): string {
  const { byteAt, charAt } = corpus;
  const total = byteAt[byteAt.length - 1] ?? 0;
  const start = Math.floor(rng() * (lastAtMost(byteAt, total - bytes) + 1));
  const from = byteAt[start] ?? 0;
  const end = lastAtMost(byteAt, from + bytes);
  const got = (byteAt[end] ?? 0) - from;
  return corpus.text.substring(charAt[start] ?? 0, charAt[end] ?? 0) + PAD.slice(0, bytes - got);
}

/**
 * A line's shape: ASCII JSON around text slots (`statics.length === weights.length + 1`), filled
 * as statics[0] + text0 + statics[1] + … ; each slot's share of the text grows with its weight.
 */
interface Shape {
  statics: string[];
  weights: number[];
}

/** Builds a shape piece by piece: `slot(w)` closes the current static part and opens a slot. */
function shapeBuilder(): {
  add: (s: string) => void;
  slot: (w: number) => void;
  done: () => Shape;
} {
  const statics: string[] = [];
  const weights: number[] = [];
  let current = '';
  return {
    add: (s) => void (current += s),
    slot: (w) => {
      statics.push(current);
      weights.push(w);
      current = '';
    },
    done: () => ({ statics: [...statics, current], weights }),
  };
}

interface Features {
  system: boolean;
  /** Earlier exchanges (user + model/assistant) before the final user turn. */
  exchanges: number;
  /** Gemini: a fileData part; Anthropic: content as an array of blocks. */
  extra: boolean;
}

const PLAIN: Features = { system: false, exchanges: 0, extra: false };

function geminiShape(n: number, f: Features): Shape {
  const b = shapeBuilder();
  b.add('{"request":{');
  if (f.system) {
    b.add('"systemInstruction":{"parts":[{"text":"');
    b.slot(0.5);
    b.add('"}]},');
  }
  b.add('"contents":[');
  for (let i = 0; i < f.exchanges; i++) {
    b.add('{"role":"user","parts":[{"text":"');
    b.slot(1);
    b.add('"}]},{"role":"model","parts":[{"text":"');
    b.slot(1);
    b.add('"}]},');
  }
  b.add('{"role":"user","parts":[');
  if (f.extra) {
    b.add(`{"fileData":{"fileUri":"gs://bucket/img-${n}.png","mimeType":"image/png"}},`);
  }
  b.add('{"text":"');
  b.slot(2);
  b.add('"}]}],"generationConfig":{"temperature":0.2,"maxOutputTokens":256}}}');
  return b.done();
}

function anthropicShape(n: number, f: Features): Shape {
  const b = shapeBuilder();
  b.add(`{"custom_id":"req-${n}","request":{"messages":[`);
  for (let i = 0; i < f.exchanges; i++) {
    b.add('{"role":"user","content":"');
    b.slot(1);
    b.add('"},{"role":"assistant","content":"');
    b.slot(1);
    b.add('"},');
  }
  if (f.extra) {
    b.add('{"role":"user","content":[{"type":"text","text":"');
    b.slot(2);
    b.add('"}]}');
  } else {
    b.add('{"role":"user","content":"');
    b.slot(2);
    b.add('"}');
  }
  b.add('],"anthropic_version":"vertex-2023-10-16","max_tokens":256}}');
  return b.done();
}

function lineSize(rng: Random): number {
  let u = rng();
  for (const bucket of SIZE_BUCKETS) {
    u -= bucket.share;
    if (u < 0) return Math.floor(bucket.min * Math.pow(bucket.max / bucket.min, rng()));
  }
  return MIN_LINE_BYTES;
}

/** Line `n` (1-based) of exactly `size` bytes, newline included. */
function line(provider: Provider, corpus: Corpus, rng: Random, n: number, size: number): string {
  const features: Features = {
    system: rng() < 0.15,
    exchanges: rng() < 0.2 ? 1 + Math.floor(rng() * 2) : 0,
    extra: rng() < 0.1,
  };
  const shapeOf = provider === 'anthropic' ? anthropicShape : geminiShape;
  let shape = shapeOf(n, features);
  let budget = size - 1 - shape.statics.join('').length; // the statics are ASCII: chars = bytes
  if (budget < shape.weights.length * MIN_TEXT_BYTES) {
    shape = shapeOf(n, PLAIN);
    budget = size - 1 - shape.statics.join('').length;
    if (budget < MIN_TEXT_BYTES) throw new Error(`a line of ${size} bytes is too short`);
  }
  const spare = budget - shape.weights.length * MIN_TEXT_BYTES;
  const totalWeight = shape.weights.reduce((a, w) => a + w, 0);
  let out = shape.statics[0] ?? '';
  let left = budget;
  shape.weights.forEach((w, i) => {
    const last = i === shape.weights.length - 1;
    const bytes = last ? left : MIN_TEXT_BYTES + Math.floor((spare * w) / totalWeight);
    left -= bytes;
    out += text(corpus, rng, bytes) + (shape.statics[i + 1] ?? '');
  });
  return out + '\n';
}

/**
 * Writes a valid JSONL file of exactly `options.bytes` bytes of requests (plus any trailing blank
 * lines) to `path` (through `path.tmp`, renamed when complete, so an interrupted run never leaves a
 * plausible-looking file). Gemini lines sometimes
 * carry a `systemInstruction`, a multi-turn conversation or a `fileData` part; Anthropic lines have
 * unique `custom_id`s (`req-1`, `req-2`, …) and sometimes a conversation or content blocks.
 */
export async function generateJsonl(
  path: string,
  options: GenerateOptions,
): Promise<GenerateResult> {
  const provider = options.provider ?? 'google';
  if (options.bytes < MIN_LINE_BYTES) {
    throw new Error(`a file needs at least ${MIN_LINE_BYTES} bytes`);
  }
  if (options.lineBytes !== undefined && options.lineBytes < 2 * MIN_LINE_BYTES) {
    throw new Error(`lineBytes must be at least ${2 * MIN_LINE_BYTES}`);
  }
  const rng = mulberry32(options.seed);
  const corpus = buildCorpus(rng);
  const tmp = `${path}.tmp`;
  const out = createWriteStream(tmp);
  let written = 0;
  let lines = 0;
  let batch: string[] = [];
  let batchBytes = 0;
  const flush = async (): Promise<void> => {
    const ok = out.write(batch.join(''));
    batch = [];
    batchBytes = 0;
    if (!ok) await once(out, 'drain'); // rejects when the stream fails
  };
  try {
    const longest = options.lineBytes ?? MAX_MIXED_LINE_BYTES;
    while (written < options.bytes) {
      const left = options.bytes - written;
      // The last line takes what is left; the one before leaves room for a legal last line.
      const size =
        left <= longest
          ? left
          : Math.min(options.lineBytes ?? lineSize(rng), left - MIN_LINE_BYTES);
      lines++;
      batch.push(line(provider, corpus, rng, lines, size));
      written += size;
      batchBytes += size;
      if (batchBytes >= WRITE_BATCH_BYTES) await flush();
    }
    await flush();
    const blanks = Buffer.alloc(WRITE_BATCH_BYTES, 0x0a);
    for (let left = options.trailingBlankLines ?? 0; left > 0; left -= blanks.length) {
      const ok = out.write(left >= blanks.length ? blanks : blanks.subarray(0, left));
      if (!ok) await once(out, 'drain');
    }
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  const total = options.bytes + (options.trailingBlankLines ?? 0);
  if (out.bytesWritten !== total) {
    throw new Error(`generator bug: wrote ${out.bytesWritten} bytes, wanted ${total}`);
  }
  await rename(tmp, path);
  return { bytes: total, lines };
}
