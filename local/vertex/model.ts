/**
 * What a batch job writes for each input line: a Gemini row (`status`, `processed_time`,
 * `request`, `response` with `candidates` and `usageMetadata`) or a Claude row (`custom_id`,
 * `request`, `response`, `status`), answered by the sentiment model. A line that is not a valid
 * request becomes a failed row with a non-empty `status` and no `response`.
 */
import { createHash } from 'node:crypto';
import { isObject } from '../http.js';
import { analyzeSentiment, estimateTokens } from './sentiment.js';

/** One output line, and whether it succeeded. */
export interface Row {
  ok: boolean;
  line: string;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A Gemini row for one input line. */
export function geminiRow(text: string, modelId: string): Row {
  const processed_time = new Date().toISOString().replace('Z', '+00:00');
  const failed = (message: string, request?: unknown): Row => ({
    ok: false,
    line: JSON.stringify({
      status: `Bad Request: ${JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT' } })}`,
      processed_time,
      ...(request === undefined ? {} : { request }),
    }),
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return failed(`Invalid JSON payload received. ${errorText(err)}`);
  }
  const request = isObject(parsed) ? parsed.request : undefined;
  if (!isObject(request)) {
    return failed('Each line must be a JSON object with a "request" object.', request);
  }
  if (!Array.isArray(request.contents) || request.contents.length === 0) {
    return failed('Unable to submit request because it has an empty contents field.', request);
  }
  const turn = request.contents
    .filter(isObject)
    .filter((c) => c.role === undefined || c.role === 'user')
    .at(-1);
  if (!turn || !Array.isArray(turn.parts)) {
    return failed('Unable to submit request because it has no user content with parts.', request);
  }
  const prompt = turn.parts
    .filter(isObject)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .join('');
  const { label, score } = analyzeSentiment(prompt);
  const promptTokenCount = estimateTokens(prompt);
  const response = {
    candidates: [
      {
        content: { role: 'model', parts: [{ text: label }] },
        finishReason: 'STOP',
        avgLogprobs: -Number((0.01 + 0.1 / (1 + Math.abs(score))).toFixed(4)),
      },
    ],
    usageMetadata: {
      promptTokenCount,
      candidatesTokenCount: 1,
      totalTokenCount: promptTokenCount + 1,
    },
    modelVersion: modelId,
  };
  return { ok: true, line: JSON.stringify({ status: '', processed_time, request, response }) };
}

/** A Claude row for line `index` of job `jobId`. */
export function claudeRow(text: string, modelId: string, jobId: string, index: number): Row {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      line: JSON.stringify({ status: claudeError(`Invalid JSON: ${errorText(err)}`) }),
    };
  }
  const custom =
    isObject(parsed) && parsed.custom_id !== undefined ? { custom_id: parsed.custom_id } : {};
  const request = isObject(parsed) ? parsed.request : undefined;
  const failed = (message: string): Row => ({
    ok: false,
    line: JSON.stringify({
      ...custom,
      ...(request === undefined ? {} : { request }),
      status: claudeError(message),
    }),
  });
  if (!isObject(request)) return failed('Each line must be a JSON object with a "request" object.');
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    return failed('messages: field required');
  }
  if (typeof request.anthropic_version !== 'string')
    return failed('anthropic_version: field required');
  const maxTokens = request.max_tokens;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return failed('max_tokens: field required (a positive integer)');
  }
  const content = request.messages.filter(isObject).findLast((m) => m.role === 'user')?.content;
  const prompt =
    typeof content === 'string'
      ? content
      : Array.isArray(content)
        ? content
            .filter(isObject)
            .map((b) => (b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
            .join('')
        : undefined;
  if (prompt === undefined) return failed('messages: a user message with text content is required');
  const digest = createHash('sha256').update(`${jobId}:${index}`).digest('base64url');
  const response = {
    id: `msg_vrtx_${digest.replace(/[-_]/g, '').slice(0, 24)}`,
    type: 'message',
    role: 'assistant',
    model: modelId,
    content: [{ type: 'text', text: analyzeSentiment(prompt).label }],
    stop_reason: 'end_turn',
    usage: { input_tokens: estimateTokens(prompt), output_tokens: 1 },
  };
  return { ok: true, line: JSON.stringify({ ...custom, request, response, status: '' }) };
}

function claudeError(message: string): string {
  return JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message } });
}

/** The lines of a JSONL file: a byte-order mark and a final newline (LF or CRLF) make no line. */
export function splitLines(data: Buffer): string[] {
  const text = data.toString('utf8').replace(/^\uFEFF/, '');
  if (text === '') return [];
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.at(-1) === '') lines.pop();
  return lines;
}
