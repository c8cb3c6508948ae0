/**
 * What one line of an input must contain, per provider (FACTS.md "JSONL formats"). A rule set is
 * made per file: Anthropic `custom_id`s must be unique within the file.
 */
import type { Provider } from './models.js';

/** A problem with a line: its text, and whether the rest of the file need not be read. */
export interface LineProblem {
  message: string;
  /** The file is in the other provider's format: every line would fail the same way. */
  fatal?: boolean;
}

/** Checks one parsed line (a JSON object); returns its first problem, or undefined. */
export type LineCheck = (value: Record<string, unknown>) => LineProblem | undefined;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const problem = (message: string): LineProblem => ({ message });
const shortModel = (model: string): string => model.split('/').pop() ?? model;

/** The fields Vertex accepts at the top of a Gemini `request`. */
export const GEMINI_REQUEST_FIELDS: ReadonlySet<string> = new Set([
  'contents',
  'systemInstruction',
  'generationConfig',
  'safetySettings',
  'tools',
  'toolConfig',
  'labels',
  'cachedContent',
]);

/** The kinds of a Gemini `Part`: each part has exactly one. */
export const GEMINI_PART_KINDS: readonly string[] = [
  'text',
  'inlineData',
  'fileData',
  'functionCall',
  'functionResponse',
  'executableCode',
  'codeExecutionResult',
];

const GEMINI_ROLES = new Set(['user', 'model', 'function']);
const ANTHROPIC_ROLES = new Set(['user', 'assistant']);
const CUSTOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

function looksAnthropic(value: Json): boolean {
  const request = value.request;
  return (
    'custom_id' in value ||
    (isObject(request) &&
      ('messages' in request || 'anthropic_version' in request) &&
      !('contents' in request))
  );
}

function looksGemini(value: Json): boolean {
  const request = value.request;
  return isObject(request) && 'contents' in request && !('messages' in request);
}

function checkGeminiPart(part: unknown, where: string): LineProblem | undefined {
  if (!isObject(part)) return problem(`${where} must be an object`);
  const kinds = GEMINI_PART_KINDS.filter((k) => k in part);
  if (kinds.length !== 1) {
    return problem(
      kinds.length === 0
        ? `${where} has no content: it needs exactly one of ${GEMINI_PART_KINDS.join(', ')}`
        : `${where} has ${kinds.join(' and ')}: a part holds exactly one kind`,
    );
  }
  if ('text' in part && typeof part.text !== 'string')
    return problem(`${where}.text must be a string`);
  if ('inlineData' in part) {
    const d = part.inlineData;
    if (!isObject(d) || typeof d.mimeType !== 'string' || typeof d.data !== 'string') {
      return problem(`${where}.inlineData needs string "mimeType" and "data" (base64)`);
    }
  }
  if ('fileData' in part) {
    const f = part.fileData;
    if (!isObject(f) || typeof f.fileUri !== 'string') {
      return problem(`${where}.fileData needs a string "fileUri"`);
    }
    if (!/^(gs|https):\/\//.test(f.fileUri)) {
      return problem(`${where}.fileData.fileUri must start with gs:// or https://`);
    }
  }
  return undefined;
}

function checkGeminiContent(content: unknown, where: string): LineProblem | undefined {
  if (!isObject(content)) return problem(`${where} must be an object`);
  if (
    content.role !== undefined &&
    !(typeof content.role === 'string' && GEMINI_ROLES.has(content.role))
  ) {
    return problem(`${where}.role must be "user" or "model"`);
  }
  const parts = content.parts;
  if (!Array.isArray(parts) || parts.length === 0)
    return problem(`${where}.parts must be a non-empty array`);
  for (let i = 0; i < parts.length; i++) {
    const p = checkGeminiPart(parts[i], `${where}.parts[${i}]`);
    if (p) return p;
  }
  return undefined;
}

/** The rules of a Gemini line: `{"request": GenerateContentRequest}`. */
export function geminiLineCheck(model: string): LineCheck {
  return (value) => {
    if (looksAnthropic(value)) {
      return {
        message: `this file is in Anthropic format but the model is ${shortModel(model)}`,
        fatal: true,
      };
    }
    const request = value.request;
    if (request === undefined) return problem('has no "request" field');
    if (!isObject(request)) return problem('"request" must be a JSON object');
    for (const key of Object.keys(request)) {
      if (!GEMINI_REQUEST_FIELDS.has(key)) {
        return problem(
          `request has an unknown field "${key.slice(0, 40)}" (allowed: ${[...GEMINI_REQUEST_FIELDS].join(', ')})`,
        );
      }
    }
    const contents = request.contents;
    if (!Array.isArray(contents) || contents.length === 0) {
      return problem('request.contents must be a non-empty array');
    }
    for (let i = 0; i < contents.length; i++) {
      const p = checkGeminiContent(contents[i], `request.contents[${i}]`);
      if (p) return p;
    }
    if (request.systemInstruction !== undefined) {
      const p = checkGeminiContent(request.systemInstruction, 'request.systemInstruction');
      if (p) return p;
    }
    for (const key of ['generationConfig', 'toolConfig', 'labels'] as const) {
      if (request[key] !== undefined && !isObject(request[key]))
        return problem(`request.${key} must be an object`);
    }
    for (const key of ['safetySettings', 'tools'] as const) {
      if (request[key] !== undefined && !Array.isArray(request[key]))
        return problem(`request.${key} must be an array`);
    }
    return undefined;
  };
}

/** The rules of an Anthropic line: `{"custom_id", "request": {messages, anthropic_version, max_tokens}}`. */
export function anthropicLineCheck(model: string): LineCheck {
  const seen = new Set<string>();
  return (value) => {
    if (looksGemini(value)) {
      return {
        message: `this file is in Gemini format but the model is ${shortModel(model)}`,
        fatal: true,
      };
    }
    const id = value.custom_id;
    if (typeof id !== 'string') return problem('needs a string "custom_id"');
    if (!CUSTOM_ID.test(id))
      return problem('"custom_id" must be 1 to 64 letters, digits, "_" or "-"');
    if (seen.has(id))
      return problem(
        `"custom_id" "${id}" is used by an earlier line: it must be unique within the file`,
      );
    seen.add(id);
    const request = value.request;
    if (request === undefined) return problem('has no "request" field');
    if (!isObject(request)) return problem('"request" must be a JSON object');
    if ('model' in request)
      return problem("request.model must not be set: the job's model applies");
    const messages = request.messages;
    if (!Array.isArray(messages) || messages.length === 0) {
      return problem('request.messages must be a non-empty array');
    }
    for (let i = 0; i < messages.length; i++) {
      const m: unknown = messages[i];
      const where = `request.messages[${i}]`;
      if (!isObject(m)) return problem(`${where} must be an object`);
      if (typeof m.role !== 'string' || !ANTHROPIC_ROLES.has(m.role)) {
        return problem(`${where}.role must be "user" or "assistant"`);
      }
      if (i === 0 && m.role !== 'user') return problem('request.messages[0].role must be "user"');
      const c = m.content;
      if (!(typeof c === 'string' && c.length > 0) && !(Array.isArray(c) && c.length > 0)) {
        return problem(`${where}.content must be a non-empty string or array of content blocks`);
      }
    }
    if (typeof request.anthropic_version !== 'string' || request.anthropic_version === '') {
      return problem('request.anthropic_version must be a string such as "vertex-2023-10-16"');
    }
    const max = request.max_tokens;
    if (typeof max !== 'number' || !Number.isInteger(max) || max <= 0) {
      return problem('request.max_tokens must be a positive integer');
    }
    return undefined;
  };
}

/** The line rules of a file for `provider`'s model. */
export function lineCheckFor(provider: Provider, model: string): LineCheck {
  return provider === 'anthropic' ? anthropicLineCheck(model) : geminiLineCheck(model);
}
