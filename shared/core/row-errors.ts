/**
 * Whether a failed row may succeed if sent again (README "Failed rows"): the row's status text is
 * read for the reason Vertex AI (or the publisher's API behind it) gave.
 *
 * 1. A JSON object in the text (Gemini: `Too Many Requests: {"error": {"code": 429, …,
 *    "status": "RESOURCE_EXHAUSTED"}}`; Claude: `{"type": "error", "error": {"type":
 *    "overloaded_error", …}}`) decides by, in this order: its canonical `status`
 *    (RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED are transient, any other
 *    permanent), its Claude error `type` (rate_limit_error, overloaded_error, api_error,
 *    timeout_error are transient), its HTTP `code` (429, 500, 502, 503, 504 are transient).
 * 2. Otherwise the words of the text: one of those status names, those HTTP codes, "quota", "rate
 *    limit", "overloaded", "timeout" / "timed out", "temporarily" make it transient.
 * 3. Anything else (INVALID_ARGUMENT, 400, a malformed request, …) is permanent: sending it again
 *    would fail again.
 */

/** The canonical status names of failures that may pass. */
export const TRANSIENT_STATUSES: ReadonlySet<string> = new Set([
  'RESOURCE_EXHAUSTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
]);

const TRANSIENT_CLAUDE_TYPES: ReadonlySet<string> = new Set([
  'rate_limit_error',
  'overloaded_error',
  'api_error',
  'timeout_error',
]);

const TRANSIENT_HTTP_CODES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

const TRANSIENT_WORDS =
  /\b(RESOURCE_EXHAUSTED|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|429|500|502|503|504)\b|quota|rate.?limit|overloaded|time[ds]? ?out|temporar/i;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first JSON object embedded in `text`, if any. */
function embeddedJson(text: string): Json | undefined {
  const at = text.indexOf('{');
  if (at < 0) return undefined;
  try {
    const value: unknown = JSON.parse(text.slice(at));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** True when a row that failed with `text` may succeed if sent again. */
export function isTransientRowError(text: string): boolean {
  const json = embeddedJson(text);
  const error = json && isObject(json.error) ? json.error : json;
  if (error) {
    if (typeof error.status === 'string') return TRANSIENT_STATUSES.has(error.status);
    if (typeof error.type === 'string' && error.type !== 'error')
      return TRANSIENT_CLAUDE_TYPES.has(error.type);
    if (typeof error.code === 'number') return TRANSIENT_HTTP_CODES.has(error.code);
  }
  return TRANSIENT_WORDS.test(text);
}
