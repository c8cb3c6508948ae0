/**
 * Reading prediction output lines and matching them to input lines (README "Results and cost").
 *
 * A Gemini output line echoes its `request`; it is matched to the input line whose request has
 * the same canonical JSON (object keys sorted, snake_case field names read as lowerCamelCase, since
 * the service accepts both spellings and may echo either). Should the echo differ in some detail
 * (a default filled in), the request's `contents` and `systemInstruction` alone are tried next.
 * Identical requests are matched in order. A Claude line is matched by its `custom_id`.
 */
import { createHash } from 'node:crypto';
import type { Provider } from './models.js';
import type { Usage } from './pricing.js';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `generation_config` → `generationConfig`. */
function camel(key: string): string {
  return key.includes('_') ? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) : key;
}

/**
 * Canonical JSON of a value: object keys in lowerCamelCase, sorted; arrays in order; scalars as
 * `JSON.stringify` writes them (so `1.0` and `1` are the same).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value)
      .map((k) => [camel(k), k] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return `{${keys.map(([c, k]) => `${JSON.stringify(c)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function hashOf(text: string): string {
  return createHash('sha1').update(text).digest('base64').slice(0, 16);
}

/**
 * The keys a line is matched by, most precise first: Claude `c:<custom_id>`; Gemini `r:<hash of the
 * whole request>` then `p:<hash of its prompt: contents and system instruction>`.
 */
export function matchKeys(provider: Provider, line: Json): string[] {
  if (provider === 'anthropic' && typeof line.custom_id === 'string') {
    return [`c:${line.custom_id}`];
  }
  const request = line.request;
  if (!isObject(request)) return [];
  const prompt = {
    contents: request.contents,
    systemInstruction: request.systemInstruction ?? request.system_instruction,
  };
  return [`r:${hashOf(canonicalJson(request))}`, `p:${hashOf(canonicalJson(prompt))}`];
}

/**
 * Input line numbers by match key: built from the input in order, taken from in output order.
 * Memory: one entry per key of each request (a short hash or the custom_id), not the requests.
 */
export class LineIndex {
  /** key → the line numbers (0-based) with that key, in input order, and how many were looked at. */
  private readonly byKey = new Map<string, number | { lines: number[]; next: number }>();
  private taken = new Uint8Array(0);

  /** Every line was added: `lineCount` lines, none taken yet. */
  seal(lineCount: number): void {
    this.taken = new Uint8Array(lineCount);
  }

  add(key: string, line: number): void {
    const seen = this.byKey.get(key);
    if (seen === undefined) this.byKey.set(key, line);
    else if (typeof seen === 'number') this.byKey.set(key, { lines: [seen, line], next: 0 });
    else seen.lines.push(line);
  }

  /** The first line not yet taken under one of `keys` (tried in order), now taken; or undefined. */
  take(keys: readonly string[]): number | undefined {
    for (const key of keys) {
      const entry = this.byKey.get(key);
      if (entry === undefined) continue;
      if (typeof entry === 'number') {
        if (this.taken[entry] === 0) {
          this.taken[entry] = 1;
          return entry;
        }
        continue;
      }
      while (entry.next < entry.lines.length) {
        const line = entry.lines[entry.next++] ?? -1;
        if (this.taken[line] === 0) {
          this.taken[line] = 1;
          return line;
        }
      }
    }
    return undefined;
  }
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
