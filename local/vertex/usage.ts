/**
 * Token usage of a successful row, in the fields the service reports, deterministic (derived from
 * the request) and of plausible size: prompt tokens from the length of every text of the request,
 * thinking tokens for the Gemini models that think, and a cached part of the prompt on about one
 * row in four. Failed rows have no usage.
 */
import { isObject } from '../http.js';
import { hashUnit } from './seeded.js';
import { estimateTokens } from './sentiment.js';

/** Gemini models that think before they answer: 2.5 and later. */
const THINKING_MODEL = /^gemini-(?:2\.5|[3-9](?:\.\d+)?)-/;

/** Share of the rows whose prompt was partly served from the cache. */
const CACHED_ROW_SHARE = 0.25;

/** The tokens of a prompt served from the cache (0 for most rows), at most the prompt's. */
function cachedTokens(key: string, promptTokens: number): number {
  if (hashUnit(key, 'cached') >= CACHED_ROW_SHARE) return 0;
  return Math.floor(promptTokens * (0.5 + 0.4 * hashUnit(key, 'cached-part')));
}

/** `generationConfig.thinkingConfig.thinkingBudget` (either JSON spelling), when a number. */
function thinkingBudget(request: Record<string, unknown>): number | undefined {
  const config = request.generationConfig ?? request.generation_config;
  if (!isObject(config)) return undefined;
  const thinking = config.thinkingConfig ?? config.thinking_config;
  if (!isObject(thinking)) return undefined;
  const budget = thinking.thinkingBudget ?? thinking.thinking_budget;
  return typeof budget === 'number' ? budget : undefined;
}

/** `generationConfig.maxOutputTokens` (either JSON spelling), when a number. */
function maxOutputTokens(request: Record<string, unknown>): number | undefined {
  const config = request.generationConfig ?? request.generation_config;
  if (!isObject(config)) return undefined;
  const max = config.maxOutputTokens ?? config.max_output_tokens;
  return typeof max === 'number' ? max : undefined;
}

/** A Gemini `usageMetadata`. */
export function geminiUsage(row: {
  request: Record<string, unknown>;
  /** Every text of the request (contents and system instruction). */
  text: string;
  answerTokens: number;
  /** The request's hash. */
  key: string;
  modelId: string;
}): Record<string, unknown> {
  const promptTokenCount = estimateTokens(row.text);
  const candidatesTokenCount = row.answerTokens;
  // A budget of 0 turns thinking off; a positive one caps it; -1 (dynamic) or none lets it be.
  const budget = thinkingBudget(row.request);
  const thinks = THINKING_MODEL.test(row.modelId) && budget !== 0;
  const natural = 96 + Math.floor(640 * hashUnit(row.key, 'thoughts'));
  // Thinking counts against maxOutputTokens on the thinking models: it never exceeds what is left.
  const max = maxOutputTokens(row.request);
  const room = max === undefined ? Infinity : Math.max(0, max - candidatesTokenCount);
  const thoughtsTokenCount = thinks
    ? Math.min(natural, budget && budget > 0 ? budget : natural, room)
    : 0;
  const cached = cachedTokens(row.key, promptTokenCount);
  const text = (tokenCount: number) => [{ modality: 'TEXT', tokenCount }];
  return {
    promptTokenCount,
    candidatesTokenCount,
    totalTokenCount: promptTokenCount + candidatesTokenCount + thoughtsTokenCount,
    ...(cached > 0 ? { cachedContentTokenCount: cached } : {}),
    promptTokensDetails: text(promptTokenCount),
    ...(cached > 0 ? { cacheTokensDetails: text(cached) } : {}),
    candidatesTokensDetails: text(candidatesTokenCount),
    ...(thoughtsTokenCount > 0 ? { thoughtsTokenCount } : {}),
  };
}

/**
 * A Claude `usage`. As in Anthropic's API, `input_tokens` counts only the prompt tokens not read
 * from the cache: the whole prompt is `input_tokens + cache_read_input_tokens`.
 */
export function claudeUsage(row: {
  /** Every text of the request (messages and system prompt). */
  text: string;
  answerTokens: number;
  key: string;
}): Record<string, number> {
  const prompt = estimateTokens(row.text);
  const cached = cachedTokens(row.key, prompt);
  return {
    input_tokens: prompt - cached,
    ...(cached > 0 ? { cache_read_input_tokens: cached } : {}),
    output_tokens: row.answerTokens,
  };
}
