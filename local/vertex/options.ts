/**
 * The emulator's options, with their defaults from the environment, so that `npm start` users can
 * set them without code: `VERTEX_EMULATOR_FAILED_ROW_SHARE` and `VERTEX_EMULATOR_ROWS_PER_FILE`
 * for outputs, and `BIGQUERY_EMULATOR_HOST` for the BigQuery that jobs read and write. A bad
 * value is an error naming the option or variable.
 */

/** How jobs write their results. */
export interface OutputOptions {
  /** Share of valid requests that fail (0 to 1), picked by a hash of the request. */
  failedRowShare: number;
  /** At most this many rows per prediction file. */
  rowsPerFile: number;
}

interface OptionFacts {
  env: string;
  fallback: number;
  rule: string;
  valid: (n: number) => boolean;
}

const OPTIONS: Record<keyof OutputOptions, OptionFacts> = {
  failedRowShare: {
    env: 'VERTEX_EMULATOR_FAILED_ROW_SHARE',
    fallback: 0,
    rule: 'a number from 0 to 1',
    valid: (n) => n >= 0 && n <= 1,
  },
  rowsPerFile: {
    env: 'VERTEX_EMULATOR_ROWS_PER_FILE',
    fallback: 1000,
    rule: 'a positive integer',
    valid: (n) => Number.isSafeInteger(n) && n >= 1,
  },
};

/** A bad option or environment variable. */
export class OptionsError extends Error {
  override name = 'OptionsError';
}

/**
 * Each option as given, else its environment variable (unset or empty: not given), else its
 * default (`failedRowShare` 0, `rowsPerFile` 1,000).
 */
export function outputOptions(
  given: Partial<OutputOptions>,
  env: NodeJS.ProcessEnv = process.env,
): OutputOptions {
  const value = (name: keyof OutputOptions): number => {
    const { env: variable, fallback, rule, valid } = OPTIONS[name];
    const option = given[name];
    if (option !== undefined) {
      if (typeof option !== 'number' || !valid(option)) {
        throw new OptionsError(
          `Vertex emulator option ${name} must be ${rule}, got ${String(option)}.`,
        );
      }
      return option;
    }
    const text = env[variable]?.trim();
    if (!text) return fallback;
    const parsed = Number(text);
    if (!valid(parsed)) {
      throw new OptionsError(`${variable} must be ${rule}, got ${JSON.stringify(text)}.`);
    }
    return parsed;
  };
  return { failedRowShare: value('failedRowShare'), rowsPerFile: value('rowsPerFile') };
}

/** `host:port`, or `http://host:port`, of a BigQuery emulator. */
const HOST = /^(?:http:\/\/)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})\/?$/;

/**
 * The base URL (`http://host:port`) of the BigQuery that jobs use: `bigqueryHost` as given, else
 * `BIGQUERY_EMULATOR_HOST`; undefined when neither is set (jobs over BigQuery are then refused).
 */
export function bigqueryUrl(
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const [name, value] =
    given !== undefined
      ? ['Vertex emulator option bigqueryHost', given]
      : ['BIGQUERY_EMULATOR_HOST', env.BIGQUERY_EMULATOR_HOST?.trim() ?? ''];
  if (given === undefined && value === '') return undefined;
  const m = HOST.exec(value);
  if (!m) {
    const rule = 'must be host:port or http://host:port';
    throw new OptionsError(`${name} ${rule}, got ${JSON.stringify(value)}.`);
  }
  return `http://${m[1]}:${m[2]}`;
}
