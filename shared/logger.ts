/**
 * JSON-lines logging for Cloud Logging: one object per line with `severity`, `message`, a stable
 * `event` name and fields. Messages never carry ids (they go in fields) and no caller passes prompt
 * or response contents; as a second guard, fields named like payloads are dropped.
 */
import { describeError } from './core/errors.js';
import type { LogLevel } from './config.js';
import type { LogEvent } from './log-events.js';

/** Fields of a log line: ids, states, counts; an `error` is serialised as `{name, code, message, stack}`. */
export type LogFields = Record<string, unknown>;

/** The logger handed to handlers. */
export interface Logger {
  debug(event: LogEvent, message: string, fields?: LogFields): void;
  info(event: LogEvent, message: string, fields?: LogFields): void;
  warning(event: LogEvent, message: string, fields?: LogFields): void;
  error(event: LogEvent, message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };
const SEVERITY: Record<LogLevel, string> = {
  debug: 'DEBUG',
  info: 'INFO',
  warning: 'WARNING',
  error: 'ERROR',
};

/** Field names that could carry customer data; never logged. */
const FORBIDDEN_FIELDS = new Set([
  'request',
  'response',
  'prompt',
  'contents',
  'messages',
  'text',
  'body',
  'line',
]);

/**
 * Creates a logger writing one JSON object per line to `sink` (default: stdout for debug/info,
 * stderr for warning/error).
 */
export function createLogger(
  level: LogLevel,
  sink: (line: string, level: LogLevel) => void = defaultSink,
): Logger {
  const emit = (lvl: LogLevel, event: LogEvent, message: string, fields?: LogFields): void => {
    if (RANK[lvl] < RANK[level]) return;
    const entry: Record<string, unknown> = { severity: SEVERITY[lvl], message, event };
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined || FORBIDDEN_FIELDS.has(key)) continue;
        entry[key] = key === 'error' || value instanceof Error ? describeError(value) : value;
      }
    }
    sink(safeStringify(entry), lvl);
  };
  return {
    debug: (e, m, f) => emit('debug', e, m, f),
    info: (e, m, f) => emit('info', e, m, f),
    warning: (e, m, f) => emit('warning', e, m, f),
    error: (e, m, f) => emit('error', e, m, f),
  };
}

function defaultSink(line: string, level: LogLevel): void {
  (RANK[level] >= RANK.warning ? process.stderr : process.stdout).write(line + '\n');
}

function safeStringify(entry: Record<string, unknown>): string {
  try {
    return JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return JSON.stringify({ severity: entry.severity, message: entry.message, event: entry.event });
  }
}

/** A logger that keeps lines in memory (tests and the local stack). */
export function createMemoryLogger(level: LogLevel = 'debug'): Logger & {
  readonly lines: Record<string, unknown>[];
  readonly raw: string[];
} {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logger = createLogger(level, (line) => {
    raw.push(line);
    lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  return Object.assign(logger, { lines, raw });
}
