/**
 * Typed errors. Every failure is classified: a permanent error is recorded, reported and
 * acknowledged; a transient one is thrown so that the platform retries.
 */

/** Stable machine-readable codes (the `error.code` of rejection events uses the `INPUT.*` ones). */
export type ErrorCode =
  | 'INPUT.INVALID_JSONL'
  | 'INPUT.EMPTY'
  | 'INPUT.TOO_LARGE'
  | 'INPUT.TOO_MANY_LINES'
  | 'INPUT.NOT_FOUND'
  | 'INPUT.UNKNOWN_MODEL'
  | 'INPUT.INVALID_ENCODING'
  | 'INPUT.UNSUPPORTED_ENCODING'
  | 'INPUT.WRONG_FORMAT'
  | 'INPUT.INVALID_LOCATION'
  | 'INPUT.MODEL_NOT_ALLOWED'
  | 'INPUT.LOCATION_NOT_ALLOWED'
  | 'INPUT.LINE_TOO_LONG'
  | 'INPUT.FILE_URI_NOT_ALLOWED'
  | 'INPUT.OVER_BUDGET'
  | 'INPUT.INVALID_MANIFEST'
  | 'INPUT.SOURCE_NOT_FOUND'
  | 'INPUT.SOURCE_NOT_ALLOWED'
  | 'INPUT.INVALID_TABLE'
  | 'INPUT.TOO_MANY_FILES'
  | 'BIGQUERY.UNAVAILABLE'
  | 'BIGQUERY.PERMISSION_DENIED'
  | 'BIGQUERY.INVALID_ARGUMENT'
  | 'CAPACITY.EXHAUSTED'
  | 'VERTEX.INVALID_ARGUMENT'
  | 'VERTEX.PERMISSION_DENIED'
  | 'VERTEX.NOT_FOUND'
  | 'VERTEX.RESOURCE_EXHAUSTED'
  | 'VERTEX.UNAVAILABLE'
  | 'VERTEX.UNKNOWN'
  | 'STORAGE.UNAVAILABLE'
  | 'STORAGE.PERMISSION_DENIED'
  | 'JOBS.UNAVAILABLE'
  | 'JOBS.CONFLICT'
  | 'JOBS.INVALID'
  | 'DEADLINE.EXCEEDED'
  | 'DIGEST.LINE_TOO_LONG'
  | 'DIGEST.INPUT_CHANGED'
  | 'EVENTS.UNAVAILABLE'
  | 'EVENTS.INVALID';

/** Base class: a code, whether retrying can help, and the underlying cause. */
export class BatchCourierError extends Error {
  override readonly name: string = 'BatchCourierError';
  readonly code: ErrorCode;
  /** True when the same call may succeed later (429, 5xx, timeouts, unavailable dependencies). */
  readonly retryable: boolean;
  /** HTTP status of the remote answer, when there was one. */
  readonly status: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable: boolean; cause?: unknown; status?: number },
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable;
    this.status = options.status;
  }
}

/** A problem that retrying cannot fix: bad input, unknown model, 400/403/404 from Vertex. */
export class PermanentError extends BatchCourierError {
  override readonly name: string = 'PermanentError';
  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(code, message, { ...options, retryable: false });
  }
}

/** A problem that may pass: 429, 5xx, timeouts, a dependency that is down. */
export class TransientError extends BatchCourierError {
  override readonly name: string = 'TransientError';
  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(code, message, { ...options, retryable: true });
  }
}

/** The input file breaks a rule; `line` (1-based) or `byteOffset` says where. */
export class InputError extends PermanentError {
  override readonly name = 'InputError';
  readonly line: number | undefined;
  readonly byteOffset: number | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    where: { line?: number; byteOffset?: number } = {},
  ) {
    super(code, message);
    this.line = where.line;
    this.byteOffset = where.byteOffset;
  }
}

/** True when an error should make the platform retry (unknown errors count as retryable). */
export function isRetryable(err: unknown): boolean {
  return err instanceof BatchCourierError ? err.retryable : true;
}

/** A log- and JSON-friendly view of an error: `{name, code, message, stack}`. */
export function describeError(err: unknown): {
  name: string;
  code?: string;
  message: string;
  stack?: string;
} {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
      message: err.message,
      ...(err.stack ? { stack: err.stack } : {}),
    };
  }
  return { name: 'NonError', message: String(err) };
}
