/**
 * Rows that fail although their request is valid, as a real batch job has them: quota
 * (`RESOURCE_EXHAUSTED`), `INTERNAL`, `UNAVAILABLE` and `DEADLINE_EXCEEDED` errors, which are
 * transient, and `INVALID_ARGUMENT`, which is permanent. Which rows fail, and why, depends only on
 * the request:
 *
 * - a prompt containing `[invalid]` always fails with 400 `INVALID_ARGUMENT`;
 * - a prompt containing `[transient]` fails with the 429 quota error;
 * - otherwise a share of the requests (`failedRowShare`), picked by a hash of the request, fails
 *   with a mix of reasons (mostly quota).
 *
 * A transient failure happens only the first time the emulator sees a request (it remembers their
 * hashes), so a second job over the same lines succeeds; a permanent one happens every time.
 */

import { hashUnit } from './seeded.js';

/** Why a valid request fails. */
export type FailureKind = 'quota' | 'internal' | 'unavailable' | 'deadline' | 'invalid';

interface KindFacts {
  /** HTTP status, its reason phrase and the google.rpc status name. */
  code: number;
  phrase: string;
  status: string;
  transient: boolean;
  /** The Anthropic error type of the same failure. */
  claudeType: string;
  /** How often a row picked by the share fails this way. */
  weight: number;
}

const KINDS: Record<FailureKind, KindFacts> = {
  quota: {
    code: 429,
    phrase: 'Too Many Requests',
    status: 'RESOURCE_EXHAUSTED',
    transient: true,
    claudeType: 'rate_limit_error',
    weight: 0.5,
  },
  internal: {
    code: 500,
    phrase: 'Internal Server Error',
    status: 'INTERNAL',
    transient: true,
    claudeType: 'api_error',
    weight: 0.15,
  },
  unavailable: {
    code: 503,
    phrase: 'Service Unavailable',
    status: 'UNAVAILABLE',
    transient: true,
    claudeType: 'overloaded_error',
    weight: 0.15,
  },
  deadline: {
    code: 504,
    phrase: 'Gateway Timeout',
    status: 'DEADLINE_EXCEEDED',
    transient: true,
    claudeType: 'api_error',
    weight: 0.1,
  },
  invalid: {
    code: 400,
    phrase: 'Bad Request',
    status: 'INVALID_ARGUMENT',
    transient: false,
    claudeType: 'invalid_request_error',
    weight: 0.1,
  },
};

export const FAILURE_KINDS = Object.keys(KINDS) as FailureKind[];

export function isTransient(kind: FailureKind): boolean {
  return KINDS[kind].transient;
}

/** The markers a prompt can carry to fail on purpose. */
export const INVALID_MARKER = '[invalid]';
export const TRANSIENT_MARKER = '[transient]';

/** The message of each kind, as the service words it. */
function message(kind: FailureKind, modelId: string, claude: boolean): string {
  switch (kind) {
    case 'quota': {
      const metric = claude
        ? 'online_prediction_requests_per_base_model'
        : 'generate_content_requests_per_minute_per_project_per_base_model';
      const model = claude ? `anthropic-${modelId}` : modelId;
      return `Quota exceeded for aiplatform.googleapis.com/${metric} with base model: ${model}. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.`;
    }
    case 'internal':
      return claude ? 'Internal server error' : 'Internal error encountered.';
    case 'unavailable':
      return claude ? 'Overloaded' : 'The service is currently unavailable.';
    case 'deadline':
      return claude ? 'Request timed out' : 'Deadline expired before operation could complete.';
    case 'invalid':
      return 'Request contains an invalid argument.';
  }
}

/**
 * A failed Gemini row's `status`: the HTTP reason phrase, then the error body as the service's
 * Python front end prints it (`", "` and `": "` separators, non-ASCII escaped), for example
 * `Bad Request: {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}`.
 */
export function geminiStatus(kind: FailureKind, modelId: string, text?: string): string {
  const { code, phrase, status } = KINDS[kind];
  const body = { error: { code, message: text ?? message(kind, modelId, false), status } };
  return `${phrase}: ${pythonJson(body)}`;
}

/** A failed Claude row's `status`: an Anthropic error body as JSON text. */
export function claudeStatus(kind: FailureKind, modelId: string, text?: string): string {
  const error = { type: KINDS[kind].claudeType, message: text ?? message(kind, modelId, true) };
  return JSON.stringify({ type: 'error', error });
}

/** `json.dumps` of Python's standard library with its defaults. */
function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`);
    return `{${entries.join(', ')}}`;
  }
  return (JSON.stringify(value) ?? 'null').replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The kind of a row picked by the share, from a number in [0, 1). */
function kindAt(unit: number): FailureKind {
  let left = unit;
  for (const kind of FAILURE_KINDS) {
    left -= KINDS[kind].weight;
    if (left < 0) return kind;
  }
  return 'quota';
}

/** Decides which valid requests fail; one per emulator, it remembers the requests it has seen. */
export class RowFailures {
  /** Hashes of the requests that already failed transiently once. */
  private readonly seen = new Set<string>();

  constructor(readonly share: number) {}

  /** Forgets every request seen. */
  clear(): void {
    this.seen.clear();
  }

  /**
   * The decision function of one job: `key` is the request's hash, `prompt` its text. Rows of the
   * same job with the same request get the same outcome.
   */
  forJob(): (key: string, prompt: string) => FailureKind | undefined {
    const failingHere = new Set<string>();
    return (key, prompt) => {
      if (prompt.includes(INVALID_MARKER)) return 'invalid';
      const kind: FailureKind | undefined = prompt.includes(TRANSIENT_MARKER)
        ? 'quota'
        : hashUnit(key, 'fails') < this.share
          ? kindAt(hashUnit(key, 'kind'))
          : undefined;
      if (kind === undefined || !isTransient(kind) || failingHere.has(key)) return kind;
      if (this.seen.has(key)) return undefined;
      this.seen.add(key);
      failingHere.add(key);
      return kind;
    };
  }
}
