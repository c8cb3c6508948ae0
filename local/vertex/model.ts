/**
 * What a batch job writes for each input line or table row: a Gemini row (`status`,
 * `processed_time`, `request`, `response` with `candidates` and `usageMetadata`) or a Claude row
 * (`custom_id`, `request`, `response`, `status`), answered by the sentiment model. An input that
 * is not a valid request, or a valid one that fails (see `failures.ts`), becomes a failed row: a
 * non-empty `status` holding the error text, no `response`, no usage.
 */
import { createHash } from 'node:crypto';
import { isObject } from '../http.js';
import { claudeStatus, geminiStatus, type FailureKind } from './failures.js';
import { canonicalJson, digest } from './seeded.js';
import { analyzeSentiment } from './sentiment.js';
import { claudeUsage, geminiUsage } from './usage.js';

/** One output row (a JSONL line's fields, in their order), and whether it succeeded. */
export interface Row {
  ok: boolean;
  output: Record<string, unknown>;
}

/**
 * One input: the JSON of a JSONL line (`{"request": …}`, with `custom_id` for Claude) or of a
 * table row's columns, or the reason a line is not JSON.
 */
export type RowInput = { value: unknown } | { error: string };

/** A JSONL line as a {@link RowInput}. */
export function parseLine(text: string): RowInput {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    return { error: errorText(err) };
  }
}

/** What a row needs besides its input. */
export interface RowContext {
  /** The model id, without its `publishers/.../models/` path. */
  modelId: string;
  jobId: string;
  /** The input's index in the job's input (lines of every file, or table rows, in order). */
  index: number;
  /** Whether a valid request fails, and why, from its hash and its text. */
  fail: (key: string, prompt: string) => FailureKind | undefined;
}

/** The answer is one word: one token. */
const ANSWER_TOKENS = 1;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The `text` of the parts of a Gemini `Content` (anything else in it is ignored). */
function partsText(content: unknown): string {
  if (!isObject(content) || !Array.isArray(content.parts)) return '';
  return content.parts
    .filter(isObject)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .join('');
}

/** The text of a Claude message content or system prompt: a string, or text blocks. */
function blocksText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  return content
    .filter(isObject)
    .map((b) => (b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
    .join('');
}

/** A Gemini row for one input. */
export function geminiRow(input: RowInput, ctx: RowContext): Row {
  const processed_time = new Date().toISOString().replace('Z', '+00:00');
  const failed = (kind: FailureKind, request: unknown, message?: string): Row => ({
    ok: false,
    output: {
      status: geminiStatus(kind, ctx.modelId, message),
      processed_time,
      ...(request === undefined ? {} : { request }),
    },
  });
  if ('error' in input) {
    return failed('invalid', undefined, `Invalid JSON payload received. ${input.error}`);
  }
  const parsed = input.value;
  const request = isObject(parsed) ? parsed.request : undefined;
  if (!isObject(request)) {
    return failed('invalid', request, 'Each line must be a JSON object with a "request" object.');
  }
  if (!Array.isArray(request.contents) || request.contents.length === 0) {
    const message = 'Unable to submit request because it has an empty contents field.';
    return failed('invalid', request, message);
  }
  const turn = request.contents
    .filter(isObject)
    .filter((c) => c.role === undefined || c.role === 'user')
    .at(-1);
  if (!turn || !Array.isArray(turn.parts)) {
    const message = 'Unable to submit request because it has no user content with parts.';
    return failed('invalid', request, message);
  }
  const system = request.systemInstruction ?? request.system_instruction;
  const contents: unknown[] = request.contents;
  const allText = [system, ...contents].map(partsText).filter(Boolean).join('\n');
  const key = digest(canonicalJson(request));
  const failure = ctx.fail(key, allText);
  if (failure) return failed(failure, request);
  const { label, score } = analyzeSentiment(partsText(turn));
  const response = {
    candidates: [
      {
        content: { role: 'model', parts: [{ text: label }] },
        finishReason: 'STOP',
        avgLogprobs: -Number((0.01 + 0.1 / (1 + Math.abs(score))).toFixed(4)),
      },
    ],
    usageMetadata: geminiUsage({
      request,
      text: allText,
      answerTokens: ANSWER_TOKENS,
      key,
      modelId: ctx.modelId,
    }),
    modelVersion: ctx.modelId,
  };
  return { ok: true, output: { status: '', processed_time, request, response } };
}

/** A Claude row for one input. */
export function claudeRow(input: RowInput, ctx: RowContext): Row {
  if ('error' in input) {
    const status = claudeStatus('invalid', ctx.modelId, `Invalid JSON: ${input.error}`);
    return { ok: false, output: { status } };
  }
  const parsed = input.value;
  const custom =
    isObject(parsed) && parsed.custom_id !== undefined ? { custom_id: parsed.custom_id } : {};
  const request = isObject(parsed) ? parsed.request : undefined;
  const failed = (kind: FailureKind, message?: string): Row => ({
    ok: false,
    output: {
      ...custom,
      ...(request === undefined ? {} : { request }),
      status: claudeStatus(kind, ctx.modelId, message),
    },
  });
  if (!isObject(request)) {
    return failed('invalid', 'Each line must be a JSON object with a "request" object.');
  }
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    return failed('invalid', 'messages: field required');
  }
  if (typeof request.anthropic_version !== 'string') {
    return failed('invalid', 'anthropic_version: field required');
  }
  const maxTokens = request.max_tokens;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return failed('invalid', 'max_tokens: field required (a positive integer)');
  }
  const messages = request.messages.filter(isObject);
  const prompt = blocksText(messages.findLast((m) => m.role === 'user')?.content);
  if (prompt === undefined) {
    return failed('invalid', 'messages: a user message with text content is required');
  }
  const allText = [request.system, ...messages.map((m) => m.content)]
    .map((c) => blocksText(c) ?? '')
    .filter(Boolean)
    .join('\n');
  const key = digest(canonicalJson({ ...custom, request }));
  const failure = ctx.fail(key, allText);
  if (failure) return failed(failure);
  const id = createHash('sha256').update(`${ctx.jobId}:${ctx.index}`).digest('base64url');
  const response = {
    id: `msg_vrtx_${id.replace(/[-_]/g, '').slice(0, 24)}`,
    type: 'message',
    role: 'assistant',
    model: ctx.modelId,
    content: [{ type: 'text', text: analyzeSentiment(prompt).label }],
    stop_reason: 'end_turn',
    usage: claudeUsage({ text: allText, answerTokens: ANSWER_TOKENS, key }),
  };
  return { ok: true, output: { ...custom, request, response, status: '' } };
}

/** The lines of a JSONL file: a byte-order mark and a final newline (LF or CRLF) make no line. */
export function splitLines(data: Buffer): string[] {
  const text = data.toString('utf8').replace(/^\uFEFF/, '');
  if (text === '') return [];
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.at(-1) === '') lines.pop();
  return lines;
}
