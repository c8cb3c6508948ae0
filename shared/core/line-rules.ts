/**
 * What one line of an input must contain, per provider. A rule set is made per file: Anthropic
 * `custom_id`s must be unique within the file.
 *
 * Gemini lines are `{"request": GenerateContentRequest}` in proto3 JSON, whose parsers accept both
 * the lowerCamelCase and the original snake_case name of every field (`generationConfig` and
 * `generation_config`, `inlineData` and `inline_data`, …); Google's own samples build requests
 * either way, so every field checked here is accepted under both names. One object that names the
 * same field both ways is refused: which of the two values would win is not defined.
 */
import { AsciiIdSet } from './id-set.js';
import type { Provider } from './models.js';

/** The code of a line problem that is not the generic `INPUT.INVALID_JSONL`. */
export type LineProblemCode = 'INPUT.FILE_URI_NOT_ALLOWED';

/** A problem with a line: its text, and whether the rest of the file need not be read. */
export interface LineProblem {
  message: string;
  /** The file is in the other provider's format: every line would fail the same way. */
  fatal?: boolean;
  /** The problem's code, when it is not `INPUT.INVALID_JSONL` (ignored when `fatal`). */
  code?: LineProblemCode;
}

/**
 * Which files a request may make Vertex read. Vertex reads a request's `fileData.fileUri` (and
 * Claude reads an image or document `source.url`) as its own service agent, which can read more
 * than the uploader may: without a check, anyone who can upload an input can make it read any
 * object the agent can.
 */
export interface FileUriAllowList {
  /** True when `uri` (a whole URI, as written in the request) may be read. */
  test(uri: string): boolean;
  /** What is allowed, for messages, e.g. `gs://acme-input/ (ALLOWED_FILE_URI_PREFIXES)`. */
  describe: string;
}

/** Options of the line rules. */
export interface LineRuleOptions {
  /** When set, every file URI in a request must pass it (`INPUT.FILE_URI_NOT_ALLOWED`). */
  fileUriAllowed?: FileUriAllowList | undefined;
}

/** Checks one parsed line (a JSON object); returns its first problem, or undefined. */
export type LineCheck = (value: Record<string, unknown>) => LineProblem | undefined;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const problem = (message: string): LineProblem => ({ message });
const shortModel = (model: string): string => model.split('/').pop() ?? model;

/** A proto3 JSON field: its lowerCamelCase name and its original snake_case name. */
interface Field {
  camel: string;
  snake: string;
}

function field(camel: string): Field {
  return { camel, snake: camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) };
}

/** The key `obj` uses for `f`, or undefined when it has neither spelling. */
function keyOf(obj: Json, f: Field): string | undefined {
  if (Object.hasOwn(obj, f.camel)) return f.camel;
  return Object.hasOwn(obj, f.snake) ? f.snake : undefined;
}

/** A problem when `obj` names one of `fields` both ways. */
function bothSpellings(
  obj: Json,
  fields: readonly Field[],
  where: string,
): LineProblem | undefined {
  for (const f of fields) {
    if (f.camel !== f.snake && Object.hasOwn(obj, f.camel) && Object.hasOwn(obj, f.snake)) {
      return problem(
        `${where} has both "${f.camel}" and "${f.snake}": they are the same field, use one spelling`,
      );
    }
  }
  return undefined;
}

/** The fields Vertex accepts at the top of a Gemini `request` (lowerCamelCase). */
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

/** The kinds of a Gemini `Part` (lowerCamelCase): each part has exactly one. */
export const GEMINI_PART_KINDS: readonly string[] = [
  'text',
  'inlineData',
  'fileData',
  'functionCall',
  'functionResponse',
  'executableCode',
  'codeExecutionResult',
];

const REQUEST_FIELDS = [...GEMINI_REQUEST_FIELDS].map(field);
/** Every accepted spelling of a request field. */
const REQUEST_KEYS: ReadonlySet<string> = new Set(
  REQUEST_FIELDS.flatMap((f) => [f.camel, f.snake]),
);
const PART_KINDS = GEMINI_PART_KINDS.map(field);
const F = {
  systemInstruction: field('systemInstruction'),
  generationConfig: field('generationConfig'),
  safetySettings: field('safetySettings'),
  tools: field('tools'),
  toolConfig: field('toolConfig'),
  labels: field('labels'),
  inlineData: field('inlineData'),
  fileData: field('fileData'),
  functionResponse: field('functionResponse'),
  mimeType: field('mimeType'),
  fileUri: field('fileUri'),
};
const INLINE_DATA_FIELDS = [F.mimeType];
const FILE_DATA_FIELDS = [F.mimeType, F.fileUri];
/** The kinds of a part of a function response (`FunctionResponse.parts`). */
const RESPONSE_PART_KINDS = [F.inlineData, F.fileData];

const GEMINI_ROLES = new Set(['user', 'model', 'function']);
const ANTHROPIC_ROLES = new Set(['user', 'assistant']);
const CUSTOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Where a URI points, for messages: `gs://bucket` or `https://host`, never the object path or
 * query (they can be customer content), nor user info; undefined when there is no such part.
 */
export function uriLocation(uri: string): string | undefined {
  const match = /^([A-Za-z][A-Za-z0-9+.-]{0,15}):\/\/([^/?#\\]*)/.exec(uri);
  const scheme = match?.[1]?.toLowerCase();
  const host = match?.[2]?.split('@').pop();
  if (!scheme || !host || !/^[A-Za-z0-9._-]{1,222}(:\d{1,5})?$/.test(host)) return undefined;
  return `${scheme}://${host}`;
}

function notAllowed(where: string, uri: string, allowed: FileUriAllowList): LineProblem {
  const location = uriLocation(uri);
  const shown =
    location === undefined ? '' : ` (${location}${uri.length > location.length ? '/…' : ''})`;
  return {
    message: `${where} points to a location that is not allowed${shown}: allowed are ${allowed.describe}`,
    code: 'INPUT.FILE_URI_NOT_ALLOWED',
  };
}

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

/** `inlineData` / `fileData` of a part (or of a function response's part), when present. */
function checkMedia(part: Json, where: string, options: LineRuleOptions): LineProblem | undefined {
  const inlineKey = keyOf(part, F.inlineData);
  if (inlineKey !== undefined) {
    const d = part[inlineKey];
    const at = `${where}.${inlineKey}`;
    if (isObject(d)) {
      const dup = bothSpellings(d, INLINE_DATA_FIELDS, at);
      if (dup) return dup;
    }
    const mimeKey = isObject(d) ? keyOf(d, F.mimeType) : undefined;
    if (
      !isObject(d) ||
      mimeKey === undefined ||
      typeof d[mimeKey] !== 'string' ||
      typeof d.data !== 'string'
    ) {
      return problem(`${at} needs string "mimeType" and "data" (base64)`);
    }
  }
  const fileKey = keyOf(part, F.fileData);
  if (fileKey !== undefined) {
    const f = part[fileKey];
    const at = `${where}.${fileKey}`;
    if (isObject(f)) {
      const dup = bothSpellings(f, FILE_DATA_FIELDS, at);
      if (dup) return dup;
    }
    const uriKey = isObject(f) ? keyOf(f, F.fileUri) : undefined;
    const uri = isObject(f) && uriKey !== undefined ? f[uriKey] : undefined;
    if (typeof uri !== 'string') return problem(`${at} needs a string "fileUri"`);
    if (!/^(gs|https):\/\//.test(uri)) {
      return problem(`${at}.${uriKey} must start with gs:// or https://`);
    }
    const allowed = options.fileUriAllowed;
    if (allowed && !allowed.test(uri)) return notAllowed(`${at}.${uriKey}`, uri, allowed);
  }
  return undefined;
}

function checkGeminiPart(
  part: unknown,
  where: string,
  options: LineRuleOptions,
): LineProblem | undefined {
  if (!isObject(part)) return problem(`${where} must be an object`);
  const dup = bothSpellings(part, PART_KINDS, where);
  if (dup) return dup;
  const kinds: string[] = [];
  for (const f of PART_KINDS) {
    const key = keyOf(part, f);
    if (key !== undefined) kinds.push(key);
  }
  if (kinds.length !== 1) {
    return problem(
      kinds.length === 0
        ? `${where} has no content: it needs exactly one of ${GEMINI_PART_KINDS.join(', ')}`
        : `${where} has ${kinds.join(' and ')}: a part holds exactly one kind`,
    );
  }
  if ('text' in part && typeof part.text !== 'string')
    return problem(`${where}.text must be a string`);
  const media = checkMedia(part, where, options);
  if (media) return media;
  // A function response can carry files of its own (`FunctionResponse.parts[].fileData`).
  const responseKey = keyOf(part, F.functionResponse);
  const response = responseKey === undefined ? undefined : part[responseKey];
  if (isObject(response) && Array.isArray(response.parts)) {
    for (let i = 0; i < response.parts.length; i++) {
      const inner: unknown = response.parts[i];
      if (!isObject(inner)) continue;
      const at = `${where}.${responseKey}.parts[${i}]`;
      const p = bothSpellings(inner, RESPONSE_PART_KINDS, at) ?? checkMedia(inner, at, options);
      if (p) return p;
    }
  }
  return undefined;
}

function checkGeminiContent(
  content: unknown,
  where: string,
  options: LineRuleOptions,
): LineProblem | undefined {
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
    const p = checkGeminiPart(parts[i], `${where}.parts[${i}]`, options);
    if (p) return p;
  }
  return undefined;
}

/** The rules of a Gemini line: `{"request": GenerateContentRequest}`. */
export function geminiLineCheck(model: string, options: LineRuleOptions = {}): LineCheck {
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
      if (!REQUEST_KEYS.has(key)) {
        return problem(
          `request has an unknown field "${key.slice(0, 40)}" (allowed: ${[...GEMINI_REQUEST_FIELDS].join(', ')}, or their snake_case names)`,
        );
      }
    }
    const dup = bothSpellings(request, REQUEST_FIELDS, 'request');
    if (dup) return dup;
    const contents = request.contents;
    if (!Array.isArray(contents) || contents.length === 0) {
      return problem('request.contents must be a non-empty array');
    }
    for (let i = 0; i < contents.length; i++) {
      const p = checkGeminiContent(contents[i], `request.contents[${i}]`, options);
      if (p) return p;
    }
    const systemKey = keyOf(request, F.systemInstruction);
    if (systemKey !== undefined) {
      const p = checkGeminiContent(request[systemKey], `request.${systemKey}`, options);
      if (p) return p;
    }
    for (const f of [F.generationConfig, F.toolConfig, F.labels]) {
      const key = keyOf(request, f);
      if (key !== undefined && !isObject(request[key]))
        return problem(`request.${key} must be an object`);
    }
    for (const f of [F.safetySettings, F.tools]) {
      const key = keyOf(request, f);
      if (key !== undefined && !Array.isArray(request[key]))
        return problem(`request.${key} must be an array`);
    }
    return undefined;
  };
}

/**
 * URL sources of Anthropic content blocks (`{"type": "image" | "document", "source": {"type":
 * "url", "url": …}}`), also inside `tool_result` contents and `content` document sources; walked
 * with an explicit stack, so a deeply nested line cannot overflow the call stack.
 */
/** Deepest nesting of Claude content blocks looked into. */
export const MAX_CONTENT_DEPTH = 16;

function checkAnthropicUrls(
  messages: unknown[],
  allowed: FileUriAllowList,
): LineProblem | undefined {
  const stack: [unknown[], string, number][] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (isObject(m) && Array.isArray(m.content))
      stack.push([m.content, `request.messages[${i}].content`, 1]);
  }
  let top = stack.pop();
  while (top) {
    const [blocks, where, depth] = top;
    // Content nests a few levels in real requests (a tool result holding a document); a path
    // into thousands of levels would make messages (and memory) grow with the depth.
    if (depth > MAX_CONTENT_DEPTH) {
      return problem(`${where} nests content more than ${MAX_CONTENT_DEPTH} levels deep`);
    }
    for (let j = 0; j < blocks.length; j++) {
      const block = blocks[j];
      if (!isObject(block)) continue;
      const at = `${where}[${j}]`;
      const source = block.source;
      if (isObject(source)) {
        if (source.type === 'url') {
          if (typeof source.url !== 'string') return problem(`${at}.source.url must be a string`);
          if (!allowed.test(source.url)) return notAllowed(`${at}.source.url`, source.url, allowed);
        }
        if (Array.isArray(source.content))
          stack.push([source.content, `${at}.source.content`, depth + 1]);
      }
      if (Array.isArray(block.content)) stack.push([block.content, `${at}.content`, depth + 1]);
    }
    top = stack.pop();
  }
  return undefined;
}

/** The rules of an Anthropic line: `{"custom_id", "request": {messages, anthropic_version, max_tokens}}`. */
export function anthropicLineCheck(model: string, options: LineRuleOptions = {}): LineCheck {
  // The ids seen so far, compactly (a file may hold 200,000 of them).
  const seen = new AsciiIdSet();
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
    if (!seen.add(id))
      return problem(
        `"custom_id" "${id}" is used by an earlier line: it must be unique within the job's input (a file, or all files of a manifest)`,
      );
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
    if (options.fileUriAllowed) {
      const p = checkAnthropicUrls(messages, options.fileUriAllowed);
      if (p) return p;
    }
    return undefined;
  };
}

/** The line rules of a file for `provider`'s model. */
export function lineCheckFor(
  provider: Provider,
  model: string,
  options: LineRuleOptions = {},
): LineCheck {
  return provider === 'anthropic'
    ? anthropicLineCheck(model, options)
    : geminiLineCheck(model, options);
}
