/**
 * Prices, cost estimates and actual cost (README "Results and cost").
 *
 * The price table is data (`prices.json` beside this file): per model, USD per million tokens at
 * batch prices, for input, output, thinking and cached input tokens. A deployment replaces or
 * adds models without a code change with `PRICE_TABLE` (JSON of the same shape, merged over the
 * built-in table, model by model; its `date` names the result in events).
 *
 * The estimate, made while validating, is an upper bound for text: input tokens are the request
 * lines' UTF-8 bytes divided by 4, rounded up (JSON syntax counts too, and most text has more than
 * 4 bytes per token); output tokens are each request's `maxOutputTokens` / `max_tokens`, or the
 * model's maximum where a request sets none. Media given by URI (`fileData`, Claude url sources)
 * is not in the bytes, so it is not in the estimate.
 */
import { z } from 'zod';
import builtIn from './prices.json' with { type: 'json' };

/** USD per million tokens of one model, at batch prices. */
export interface ModelPrice {
  input: number;
  output: number;
  thinking: number;
  /** Input tokens served from a context cache. */
  cached: number;
  /** Output tokens a request may produce when it sets no maximum. */
  maxOutputTokens?: number | undefined;
}

/** A price table: its date and each model's prices, keyed by model id (`gemini-2.5-flash`). */
export interface PriceTable {
  /** The date the prices were read (YYYY-MM-DD); named by `cost.pricing` in events. */
  date: string;
  /** Output tokens of a request that sets no maximum, for a model that names none. */
  defaultMaxOutputTokens: number;
  models: Readonly<Record<string, ModelPrice>>;
}

const price = z.number().nonnegative('must be a price in USD per million tokens (0 or more)');

const modelPriceSchema = z
  .object({
    input: price,
    output: price,
    thinking: price.optional(),
    cached: price.optional(),
    maxOutputTokens: z.number().int().positive().optional(),
  })
  .strict()
  .transform((p): ModelPrice => ({
    input: p.input,
    output: p.output,
    thinking: p.thinking ?? p.output,
    cached: p.cached ?? p.input,
    maxOutputTokens: p.maxOutputTokens,
  }));

/** The shape of a price table given as JSON (the built-in one, or `PRICE_TABLE`). */
export const priceTableSchema = z.object({
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD'),
  defaultMaxOutputTokens: z.number().int().positive().optional(),
  models: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'must be a model id such as gemini-2.5-flash'),
    modelPriceSchema,
  ),
});

/** The table in the repository. */
export const BUILT_IN_PRICES: PriceTable = (() => {
  const parsed = priceTableSchema.parse(builtIn);
  return {
    date: parsed.date,
    defaultMaxOutputTokens: parsed.defaultMaxOutputTokens ?? 8192,
    models: parsed.models,
  };
})();

/**
 * The built-in table with `override` merged over it (models replaced or added one by one; the
 * override's date and default). `override` is the JSON text of `PRICE_TABLE`.
 */
export function priceTableWith(override: z.infer<typeof priceTableSchema> | undefined): PriceTable {
  if (!override) return BUILT_IN_PRICES;
  return {
    date: override.date,
    defaultMaxOutputTokens:
      override.defaultMaxOutputTokens ?? BUILT_IN_PRICES.defaultMaxOutputTokens,
    models: { ...BUILT_IN_PRICES.models, ...override.models },
  };
}

/** How a table is named in events: `vertex-ai-batch-<date>`. */
export function pricingName(table: PriceTable): string {
  return `vertex-ai-batch-${table.date}`;
}

/**
 * The model id of a model resource name: `publishers/google/models/gemini-2.5-flash@001` →
 * `gemini-2.5-flash`.
 */
export function modelId(model: string): string {
  return (model.split('/').pop() ?? model).replace(/@.*$/, '').toLowerCase();
}

/**
 * The prices of `model`: its own entry, else the longest entry it extends at a `-`
 * (`gemini-2.5-flash-preview-09-2025` → `gemini-2.5-flash`); undefined when none.
 */
export function priceOf(table: PriceTable, model: string): ModelPrice | undefined {
  const id = modelId(model);
  const exact = table.models[id];
  if (exact) return exact;
  let best: string | undefined;
  for (const key of Object.keys(table.models)) {
    if (id.startsWith(`${key}-`) && (!best || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : table.models[best];
}

/** Token totals over output lines. */
export interface Usage {
  /** Prompt tokens, cached ones included. */
  inputTokens: number;
  /** Response tokens, thinking excluded. */
  outputTokens: number;
  thinkingTokens: number;
  /** The part of `inputTokens` served from a context cache. */
  cachedTokens: number;
}

/** What validation measured of the requests, for the estimate. */
export interface RequestSizing {
  /** UTF-8 bytes of the request lines. */
  bytes: number;
  /** The sum of the output maximums the requests set (times their candidates). */
  maxOutputTokens: number;
  /** Requests that set no output maximum (counted once per candidate they ask for). */
  withoutMax: number;
}

/** The cost estimate of an input, made before submit. */
export interface CostEstimate {
  inputTokens: number;
  /** Upper bound of output tokens (thinking included). */
  outputTokens: number;
  /** Null when the model has no price. */
  usd: number | null;
  /** The price table used. */
  pricing: string;
}

/** USD rounded to a millionth of a dollar (a float sum would show 0.30000000000000004). */
function usd(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/** The estimate of `sizing` for `model`. */
export function estimateCost(
  table: PriceTable,
  model: string,
  sizing: RequestSizing,
): CostEstimate {
  const p = priceOf(table, model);
  const inputTokens = Math.ceil(sizing.bytes / 4);
  const perRequest = p?.maxOutputTokens ?? table.defaultMaxOutputTokens;
  const outputTokens = sizing.maxOutputTokens + sizing.withoutMax * perRequest;
  // Output tokens may be thinking ones: each is priced at the dearer of the two.
  return {
    inputTokens,
    outputTokens,
    usd: p
      ? usd((inputTokens * p.input + outputTokens * Math.max(p.output, p.thinking)) / 1e6)
      : null,
    pricing: pricingName(table),
  };
}

/** The cost of `usage` for `model` at batch prices; null when the model has no price. */
export function actualCost(table: PriceTable, model: string, usage: Usage): number | null {
  const p = priceOf(table, model);
  if (!p) return null;
  const cached = Math.min(usage.cachedTokens, usage.inputTokens);
  return usd(
    ((usage.inputTokens - cached) * p.input +
      cached * p.cached +
      usage.outputTokens * p.output +
      usage.thinkingTokens * p.thinking) /
      1e6,
  );
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const positive = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;

/**
 * The output maximum a valid input line sets, or undefined: Claude `request.max_tokens`, Gemini
 * `request.generationConfig.maxOutputTokens` (either spelling of both names).
 */
export function maxOutputTokensOf(line: Json): number | undefined {
  const request = line.request;
  if (!isObject(request)) return undefined;
  const claude = positive(request.max_tokens);
  if (claude !== undefined) return claude;
  const config = request.generationConfig ?? request.generation_config;
  if (!isObject(config)) return undefined;
  return positive(config.maxOutputTokens ?? config.max_output_tokens);
}

/** How many answers a Gemini request asks for (`generationConfig.candidateCount`, default 1). */
export function candidatesOf(line: Json): number {
  const request = line.request;
  if (!isObject(request)) return 1;
  const config = request.generationConfig ?? request.generation_config;
  if (!isObject(config)) return 1;
  return positive(config.candidateCount ?? config.candidate_count) ?? 1;
}

/** Adds a valid input line of `bytes` bytes to `sizing`. */
export function addToSizing(sizing: RequestSizing, line: Json, bytes: number): void {
  sizing.bytes += bytes;
  const max = maxOutputTokensOf(line);
  const candidates = candidatesOf(line);
  if (max === undefined) sizing.withoutMax += candidates;
  else sizing.maxOutputTokens += max * candidates;
}
