/**
 * Reading prediction output lines and matching them to input lines (README "Results and cost").
 *
 * A Gemini output line echoes its `request`; it is matched to the input line whose request has
 * the same canonical JSON (object keys sorted, snake_case field names read as lowerCamelCase, since
 * the service accepts both spellings and may echo either). Should the echo differ in some detail
 * (a default filled in), the request's `contents` and `systemInstruction` alone are tried next.
 * Identical requests are matched in order. A Claude line is matched by its `custom_id`.
 */
import { hash } from 'node:crypto';
import type { Provider } from './models.js';
import type { Usage } from './pricing.js';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `generation_config` → `generationConfig`. */
function camel(key: string): string {
  return key.includes('_') ? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) : key;
}

const byCanonicalName = (a: readonly [string, string], b: readonly [string, string]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;

/**
 * An object's keys in canonical order, as [canonical name, own name]. Most objects come with their
 * keys sorted and in camelCase already, so the sort (and its arrays) is skipped for them.
 */
function canonicalKeys(value: Json): (readonly [string, string])[] {
  const keys = Object.keys(value);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (k.includes('_') || (i > 0 && !((keys[i - 1] as string) < k))) {
      sorted = false;
      break;
    }
  }
  if (sorted) return keys.map((k) => [k, k] as const);
  return keys.map((k) => [camel(k), k] as const).sort(byCanonicalName);
}

/**
 * Canonical JSON of a value: object keys in lowerCamelCase, sorted; arrays in order; scalars as
 * `JSON.stringify` writes them (so `1.0` and `1` are the same). Built by appending to one string:
 * it runs over every request of the input and of the output.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) text += ',';
      text += canonicalJson(value[i]);
    }
    return `${text}]`;
  }
  if (isObject(value)) {
    let text = '{';
    let first = true;
    for (const [name, own] of canonicalKeys(value)) {
      if (!first) text += ',';
      first = false;
      text += `${JSON.stringify(name)}:${canonicalJson(value[own])}`;
    }
    return `${text}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** 96 bits of the SHA-1 of `text`, in base64 (one call: no hash object per key). */
function hashOf(text: string): string {
  return hash('sha1', text, 'base64').slice(0, 16);
}

/**
 * The keys a line is matched by, most precise first: Claude `c:<custom_id>`; Gemini `r:<hash of the
 * whole request>` then `p:<hash of its prompt: contents and system instruction>`. The contents,
 * most of a request, are hashed once, and that hash stands for them in both keys (a fixed-length
 * text where they were: the keys are equal exactly when the canonical texts are).
 */
export function matchKeys(provider: Provider, line: Json): string[] {
  if (provider === 'anthropic' && typeof line.custom_id === 'string') {
    return [`c:${line.custom_id}`];
  }
  const request = line.request;
  if (!isObject(request)) return [];
  // The request's canonical JSON with `#` (outside any string, so in no canonical text) for the
  // contents, followed by their hash.
  let rest = '{';
  let first = true;
  let contents = 'null';
  let camelSystem: string | undefined;
  let snakeSystem: string | undefined;
  for (const [name, own] of canonicalKeys(request)) {
    const text = canonicalJson(request[own]);
    if (!first) rest += ',';
    first = false;
    rest += `${JSON.stringify(name)}:`;
    if (own === 'contents') {
      contents = text;
      rest += '#';
      continue;
    }
    if (own === 'systemInstruction') camelSystem = text;
    else if (own === 'system_instruction') snakeSystem = text;
    rest += text;
  }
  rest += '}';
  // As `request.systemInstruction ?? request.system_instruction` reads: a null camelCase one gives
  // way to the snake_case one.
  const system =
    camelSystem !== undefined && camelSystem !== 'null' ? camelSystem : (snakeSystem ?? 'null');
  // All 160 bits, 28 characters: a fixed length, so each text below reads back one way only.
  const contentsHash = hash('sha1', contents, 'base64');
  return [`r:${hashOf(rest + contentsHash)}`, `p:${hashOf(contentsHash + system)}`];
}

/** A key made by {@link matchKeys} from a hash: `r:` or `p:` and 16 base64 characters. */
const HASH_KEY = /^[rp]:[A-Za-z0-9+/]{16}$/;

/** Base64 character code → its 6 bits. */
const BASE64 = new Uint8Array(128);
for (const [i, c] of [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
].entries()) {
  BASE64[c.charCodeAt(0)] = i;
}

/**
 * Input line numbers by match key: built from the input in order, taken from in output order.
 * Memory: a few numbers per key of each request, not the requests. A hash key is held as its 96
 * bits in typed arrays (an open-addressing table built once every line was added); any other key
 * (a Claude custom_id) as a string.
 */
export class LineIndex {
  /** Other keys → the line numbers with that key, in input order, and how many were looked at. */
  private readonly byKey = new Map<string, number | { lines: number[]; next: number }>();
  /** Hash keys in the order added: 3 words of bits and a tag (r or p) each, and the line. */
  private words = new Uint32Array(3 << 10);
  private tags = new Uint8Array(1 << 10);
  private lines = new Int32Array(1 << 10);
  private count = 0;
  /** The table: slot → its key's first entry (-1: empty), and the next entry not looked at. */
  private heads = new Int32Array(0);
  private cursors = new Int32Array(0);
  /** Entry → the next entry of the same key (-1: none). */
  private next = new Int32Array(0);
  private mask = 0;
  private readonly key = new Uint32Array(3);
  private taken = new Uint8Array(0);

  /** Every line was added: `lineCount` lines, none taken yet. */
  seal(lineCount: number): void {
    this.taken = new Uint8Array(lineCount);
    const n = this.count;
    this.words = this.words.slice(0, 3 * n);
    this.tags = this.tags.slice(0, n);
    this.lines = this.lines.slice(0, n);
    let size = 16;
    while (size < 2 * n) size *= 2;
    this.mask = size - 1;
    this.heads = new Int32Array(size).fill(-1);
    this.next = new Int32Array(n).fill(-1);
    const tails = new Int32Array(size).fill(-1);
    for (let e = 0; e < n; e++) {
      const s = this.slot(this.words, 3 * e, this.tags[e] ?? 0);
      const tail = tails[s] ?? -1;
      if (tail === -1) this.heads[s] = e;
      else this.next[tail] = e;
      tails[s] = e;
    }
    this.cursors = this.heads.slice();
  }

  add(key: string, line: number): void {
    if (!HASH_KEY.test(key)) {
      const seen = this.byKey.get(key);
      if (seen === undefined) this.byKey.set(key, line);
      else if (typeof seen === 'number') this.byKey.set(key, { lines: [seen, line], next: 0 });
      else seen.lines.push(line);
      return;
    }
    if (this.count === this.lines.length) {
      const grow = <T extends Uint32Array | Uint8Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.words = grow(this.words);
      this.tags = grow(this.tags);
      this.lines = grow(this.lines);
    }
    const e = this.count++;
    this.tags[e] = decodeHashKey(key, this.words, 3 * e);
    this.lines[e] = line;
  }

  /** The slot of the key at `words[at..at+3)` with `tag`: its own, or the empty one it would take. */
  private slot(words: Uint32Array, at: number, tag: number): number {
    const w0 = words[at] ?? 0;
    const w1 = words[at + 1] ?? 0;
    const w2 = words[at + 2] ?? 0;
    let s = (w0 ^ Math.imul(w1, 0x85ebca6b) ^ tag) & this.mask;
    for (;;) {
      const e = this.heads[s] ?? -1;
      if (
        e === -1 ||
        (this.words[3 * e] === w0 &&
          this.words[3 * e + 1] === w1 &&
          this.words[3 * e + 2] === w2 &&
          this.tags[e] === tag)
      ) {
        return s;
      }
      s = (s + 1) & this.mask;
    }
  }

  /** Lets go of the index's memory once every output line was looked for: nothing is taken after. */
  clear(): void {
    this.byKey.clear();
    this.words = new Uint32Array(0);
    this.tags = new Uint8Array(0);
    this.lines = new Int32Array(0);
    this.count = 0;
    this.heads = new Int32Array(0);
    this.cursors = new Int32Array(0);
    this.next = new Int32Array(0);
    this.mask = 0;
    this.taken = new Uint8Array(0);
  }

  /** The first line not yet taken under one of `keys` (tried in order), now taken; or undefined. */
  take(keys: readonly string[]): number | undefined {
    for (const key of keys) {
      const line = HASH_KEY.test(key) ? this.takeHashed(key) : this.takeOther(key);
      if (line !== undefined) return line;
    }
    return undefined;
  }

  private takeHashed(key: string): number | undefined {
    if (this.heads.length === 0) return undefined;
    const tag = decodeHashKey(key, this.key, 0);
    const s = this.slot(this.key, 0, tag);
    let e = this.cursors[s] ?? -1;
    // The cursor moves past lines taken, under this key or under another one.
    while (e !== -1) {
      const line = this.lines[e] ?? -1;
      e = this.next[e] ?? -1;
      this.cursors[s] = e;
      if (this.taken[line] === 0) {
        this.taken[line] = 1;
        return line;
      }
    }
    return undefined;
  }

  private takeOther(key: string): number | undefined {
    const entry = this.byKey.get(key);
    if (entry === undefined) return undefined;
    if (typeof entry === 'number') {
      if (this.taken[entry] === 0) {
        this.taken[entry] = 1;
        return entry;
      }
      return undefined;
    }
    while (entry.next < entry.lines.length) {
      const line = entry.lines[entry.next++] ?? -1;
      if (this.taken[line] === 0) {
        this.taken[line] = 1;
        return line;
      }
    }
    return undefined;
  }
}

/**
 * The 96 bits of a hash key (16 base64 characters, 24 bits per 4) into `words[at..at+3)`; returns
 * its tag (0 for `r:`, 1 for `p:`). The same key always gives the same words, distinct keys
 * distinct ones.
 */
function decodeHashKey(key: string, words: Uint32Array, at: number): number {
  const group = (g: number): number => {
    const i = 2 + 4 * g;
    return (
      ((BASE64[key.charCodeAt(i)] ?? 0) << 18) |
      ((BASE64[key.charCodeAt(i + 1)] ?? 0) << 12) |
      ((BASE64[key.charCodeAt(i + 2)] ?? 0) << 6) |
      (BASE64[key.charCodeAt(i + 3)] ?? 0)
    );
  };
  const g0 = group(0);
  const g1 = group(1);
  const g2 = group(2);
  const g3 = group(3);
  words[at] = (g0 | (g1 << 24)) >>> 0;
  words[at + 1] = ((g1 >>> 8) | (g2 << 16)) >>> 0;
  words[at + 2] = ((g2 >>> 16) | (g3 << 8)) >>> 0;
  return key.charCodeAt(0) === 0x72 ? 0 : 1;
}

/** What one output line says. */
export interface OutputRow {
  /** The keys to match it by (see {@link matchKeys}). */
  keys: string[];
  /** `custom_id` of a Claude line, else null. */
  key: string | null;
  ok: boolean;
  /** The status text of a failed row. */
  error: string | null;
  /** The response of a succeeded row (null when failed). */
  response: unknown;
  usage: Usage;
}

const ZERO: Usage = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  thinkingTokens: 0,
  cachedTokens: 0,
});

const count = (v: unknown): number => {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
};

/**
 * Token counts of a response: Gemini `usageMetadata` (prompt, candidates, thoughts, cached
 * content), Claude `usage` (input, output; cache reads and writes count as input, cache reads as
 * cached).
 */
export function usageOf(response: unknown): Usage {
  if (!isObject(response)) return ZERO;
  const gemini = response.usageMetadata ?? response.usage_metadata;
  if (isObject(gemini)) {
    return {
      inputTokens: count(gemini.promptTokenCount ?? gemini.prompt_token_count),
      outputTokens: count(gemini.candidatesTokenCount ?? gemini.candidates_token_count),
      thinkingTokens: count(gemini.thoughtsTokenCount ?? gemini.thoughts_token_count),
      cachedTokens: count(gemini.cachedContentTokenCount ?? gemini.cached_content_token_count),
    };
  }
  const claude = response.usage;
  if (isObject(claude)) {
    const cacheRead = count(claude.cache_read_input_tokens);
    return {
      inputTokens:
        count(claude.input_tokens) + cacheRead + count(claude.cache_creation_input_tokens),
      outputTokens: count(claude.output_tokens),
      thinkingTokens: 0,
      cachedTokens: cacheRead,
    };
  }
  return ZERO;
}

/** Adds `b` into `a`. */
export function addUsage(a: Usage, b: Usage): void {
  a.inputTokens += b.inputTokens;
  a.outputTokens += b.outputTokens;
  a.thinkingTokens += b.thinkingTokens;
  a.cachedTokens += b.cachedTokens;
}

/** Zero usage, to add into. */
export function emptyUsage(): Usage {
  return { ...ZERO };
}

/**
 * Reads one parsed output line of either provider, leniently (unknown fields are ignored). A row
 * failed when its `status` is a non-empty text (or object), when it has an `error`, when its
 * response is an error (`"type": "error"`), or when it has no response at all.
 */
export function readOutputRow(provider: Provider, line: Json): OutputRow {
  const keys = matchKeys(provider, line);
  const key = typeof line.custom_id === 'string' ? line.custom_id : null;
  const status = line.status;
  const statusText =
    typeof status === 'string' ? status : status == null ? '' : JSON.stringify(status);
  const response = line.response;
  let error: string | null = null;
  if (statusText !== '') error = statusText;
  else if (line.error != null)
    error = typeof line.error === 'string' ? line.error : JSON.stringify(line.error);
  else if (isObject(response) && response.type === 'error')
    error = JSON.stringify(response.error ?? response);
  else if (response == null) error = 'the output line has no response and no status';
  const ok = error === null;
  return {
    keys,
    key,
    ok,
    error,
    response: ok ? response : null,
    // A failed line has no usage as a rule; if it has, it was billed.
    usage: usageOf(response),
  };
}

/** The status of a row in `results.jsonl`. */
export type RowStatus = 'succeeded' | 'failed';

/** Why a row with no output line failed. */
export const MISSING_ROW_ERROR = 'missing: Vertex AI wrote no output line for this request';

/** One line of `results.jsonl` (with its newline). */
export function resultLine(
  line: number,
  key: string | null,
  status: RowStatus,
  error: string | null,
  response: unknown,
): string {
  return `{"line":${line},"key":${JSON.stringify(key)},"status":"${status}","error":${JSON.stringify(error)},"response":${response == null ? 'null' : JSON.stringify(response)}}\n`;
}

/** Most frequent row errors: counted per distinct text (cut to 300 characters), bounded. */
export class ErrorTally {
  private readonly counts = new Map<string, number>();
  private other = 0;

  constructor(private readonly maxDistinct = 1000) {}

  add(text: string): void {
    const key = text.length > 300 ? `${text.slice(0, 299)}…` : text;
    const seen = this.counts.get(key);
    if (seen !== undefined) this.counts.set(key, seen + 1);
    else if (this.counts.size < this.maxDistinct) this.counts.set(key, 1);
    else this.other++;
  }

  /** The `n` most frequent, most first (ties by text), and a count of the rest untracked. */
  top(n: number): { error: string; count: number }[] {
    const rows = [...this.counts.entries()]
      .map(([error, c]) => ({ error, count: c }))
      .sort((a, b) => b.count - a.count || (a.error < b.error ? -1 : 1))
      .slice(0, n);
    if (this.other > 0 && rows.length < n)
      rows.push({ error: '(other errors, not told apart)', count: this.other });
    return rows;
  }
}
