/**
 * Table schemas and values as the BigQuery v2 REST API has them: the type names `tables.get`
 * answers (the legacy ones: `INTEGER` for `INT64`, `RECORD` for `STRUCT`, …), how
 * `tabledata.insertAll` converts the JSON value of a column (or why it refuses it), and how
 * `tabledata.list` encodes a stored value: every scalar as a string (a JSON column's value is its
 * JSON text, a TIMESTAMP is seconds since the epoch, or microseconds with
 * `formatOptions.useInt64Timestamp`), NULL as `null`, a RECORD as `{"f": [cells]}`, a REPEATED
 * column as a list of `{"v": …}` cells.
 */
import { isObject } from '../http.js';

/** A column as `tables.insert` takes it and `tables.get` answers it. */
export interface Field {
  name: string;
  type: string;
  /** Absent means NULLABLE, as in the API (which echoes it only when it was given). */
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  /** The sub-columns of a RECORD. */
  fields?: Field[];
}

/** A stored value: the canonical text of a scalar, null, a REPEATED list or a RECORD. */
export type Stored = string | null | Stored[] | { [name: string]: Stored };

/** A stored row, by column name as the schema spells it. */
export type StoredRow = Record<string, Stored>;

/** A `tabledata.list` cell. */
export interface Cell {
  v: string | null | Cell[] | { f: Cell[] };
}

/** Standard SQL names of the types the API answers with their legacy names. */
const ALIASES: Record<string, string> = {
  INT64: 'INTEGER',
  FLOAT64: 'FLOAT',
  BOOL: 'BOOLEAN',
  STRUCT: 'RECORD',
  BIGDECIMAL: 'BIGNUMERIC',
};
const TYPES: ReadonlySet<string> = new Set(
  `STRING BYTES INTEGER FLOAT NUMERIC BIGNUMERIC BOOLEAN TIMESTAMP DATE TIME DATETIME GEOGRAPHY
    JSON RECORD`.split(/\s+/),
);
const MODES: ReadonlySet<string> = new Set(['NULLABLE', 'REQUIRED', 'REPEATED']);

/** A schema the API would refuse (`tables.insert` answers 400 invalid with the message). */
export class SchemaError extends Error {}

/** A value `insertAll` refuses for a column: `location` names the column (`a.b` when nested). */
export class ValueError extends Error {
  constructor(
    readonly location: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The fields of a `schema.fields` list, checked and with their types as the API answers them.
 * Column names start with a letter or `_`, hold letters, digits and `_` (up to 300), and are
 * unique ignoring case, as BigQuery compares them.
 */
export function checkFields(fields: unknown, path = ''): Field[] {
  if (fields === undefined) return [];
  if (!Array.isArray(fields)) throw new SchemaError('schema.fields must be a list.');
  const seen = new Set<string>();
  return fields.map((field: unknown) => {
    if (!isObject(field) || typeof field.name !== 'string' || typeof field.type !== 'string') {
      throw new SchemaError(
        `Invalid field in ${path || 'the schema'}: a name and a type are required.`,
      );
    }
    const name = field.name;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,299}$/.test(name)) {
      throw new SchemaError(
        `Invalid field name "${name}". Fields must contain only letters, numbers, and underscores, start with a letter or underscore, and be at most 300 characters long.`,
      );
    }
    if (seen.has(name.toLowerCase())) {
      throw new SchemaError(`Field ${path}${name} already exists in schema`);
    }
    seen.add(name.toLowerCase());
    const upper = field.type.toUpperCase();
    const type = ALIASES[upper] ?? upper;
    if (!TYPES.has(type)) {
      throw new SchemaError(`Invalid value for type: ${field.type} is not a valid value`);
    }
    const mode = typeof field.mode === 'string' ? field.mode.toUpperCase() : field.mode;
    if (mode !== undefined && (typeof mode !== 'string' || !MODES.has(mode))) {
      throw new SchemaError(
        `Invalid value for mode: ${JSON.stringify(field.mode)} is not a valid value`,
      );
    }
    const out: Field = { name, type, ...(mode ? { mode: mode as Field['mode'] } : {}) };
    if (type === 'RECORD') {
      const sub = checkFields(field.fields, `${path}${name}.`);
      if (sub.length === 0) {
        throw new SchemaError(`Field ${path}${name} is type RECORD but has no schema`);
      }
      out.fields = sub;
    }
    return out;
  });
}

/** The field of `fields` named `name`, ignoring case as BigQuery does. */
export function fieldNamed(fields: readonly Field[], name: string): Field | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

const INT64_MAX = 2n ** 63n - 1n;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIME = /^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(\.\d{1,6})?$/;
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/** What `insertAll` takes for a TIMESTAMP: a date, a time of day, fractions, a zone. */
const TIMESTAMP =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2})(\.\d{1,6})?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i;

/** A real calendar date (`2024-02-30` is not). */
const validDate = (text: string): boolean => {
  const date = new Date(`${text}T00:00:00Z`);
  return DATE.test(text) && !Number.isNaN(date.getTime()) && date.toISOString().startsWith(text);
};

/** Microseconds since the epoch as RFC 3339 UTC with six fraction digits. */
function microsToIso(micros: bigint): string {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = micros - ms * 1000n;
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`;
}

/** A TIMESTAMP value in microseconds: a number is seconds since the epoch. */
function timestampMicros(value: unknown): bigint | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return BigInt(Math.round(value * 1e6));
  }
  if (typeof value !== 'string') return undefined;
  const m = TIMESTAMP.exec(value.trim());
  if (!m?.[1] || !validDate(m[1])) return undefined;
  const [, date, time = '00:00:00', fraction = '', zone = 'Z'] = m;
  if (!TIME.test(time)) return undefined;
  const [, hours, minutes = '00'] = /^([+-]\d{2}):?(\d{2})?$/.exec(zone) ?? [];
  const ms = Date.parse(`${date}T${time}${hours ? `${hours}:${minutes}` : 'Z'}`);
  if (Number.isNaN(ms)) return undefined;
  const micros = (fraction.slice(1) + '000000').slice(0, 6);
  return BigInt(ms) * 1000n + BigInt(micros);
}

/** The canonical text of a scalar of `type`, or undefined when `value` is not one. */
function scalar(type: string, value: unknown): string | undefined {
  switch (type) {
    case 'STRING':
    case 'GEOGRAPHY':
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? String(value)
        : undefined;
    case 'BYTES':
      return typeof value === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value)
        ? value
        : undefined;
    case 'INTEGER': {
      const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
      if (typeof text !== 'string' || !/^[+-]?\d+$/.test(text.trim())) return undefined;
      const n = BigInt(text.trim());
      return n <= INT64_MAX && n >= -INT64_MAX - 1n ? n.toString() : undefined;
    }
    case 'FLOAT': {
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value !== 'string') return undefined;
      const text = value.trim();
      // JSON has no NaN or infinities: they come as strings.
      return DECIMAL.test(text) || /^([+-]?Infinity|NaN)$/.test(text)
        ? String(Number(text))
        : undefined;
    }
    case 'NUMERIC':
    case 'BIGNUMERIC': {
      const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
      return typeof text === 'string' && DECIMAL.test(text.trim()) ? text.trim() : undefined;
    }
    case 'BOOLEAN':
      if (typeof value === 'boolean') return String(value);
      return typeof value === 'string' && /^(true|false)$/i.test(value.trim())
        ? value.trim().toLowerCase()
        : undefined;
    case 'TIMESTAMP': {
      const micros = timestampMicros(value);
      return micros === undefined ? undefined : microsToIso(micros);
    }
    case 'DATE':
      return typeof value === 'string' && validDate(value.trim()) ? value.trim() : undefined;
    case 'TIME':
      return typeof value === 'string' && TIME.test(value.trim()) ? value.trim() : undefined;
    case 'DATETIME': {
      if (typeof value !== 'string') return undefined;
      const [date = '', time] = value.trim().split(/[T ]/);
      if (!validDate(date) || (time !== undefined && !TIME.test(time))) return undefined;
      return time === undefined ? `${date}T00:00:00` : `${date}T${time}`;
    }
    case 'JSON':
      // A string is JSON text; any other value is the JSON itself.
      if (typeof value === 'string') {
        try {
          return JSON.stringify(JSON.parse(value));
        } catch {
          return undefined;
        }
      }
      return JSON.stringify(value);
    default:
      return undefined;
  }
}

/** The message BigQuery gives a value it cannot convert. */
function badValue(field: Field, value: unknown): string {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  return `Cannot convert value to ${field.type.toLowerCase()} (bad value): ${shown}`;
}

/**
 * The stored form of `value` for `field` (`insertAll`'s conversion), or a {@link ValueError}.
 * A missing value is NULL: an error for a REQUIRED column, an empty list for a REPEATED one.
 * With `ignoreUnknown`, keys of a RECORD that name no sub-column are dropped instead of refused.
 */
export function toStored(field: Field, value: unknown, ignoreUnknown: boolean, path = ''): Stored {
  const location = `${path}${field.name}`;
  if (field.mode === 'REPEATED') {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      throw new ValueError(location, `Array value expected for repeated field: ${location}.`);
    }
    return value.map((element: unknown) => {
      if (element === null) {
        throw new ValueError(location, `Null value in repeated field: ${location}.`);
      }
      return toStored({ ...field, mode: 'REQUIRED' }, element, ignoreUnknown, path);
    });
  }
  if (value === undefined || value === null) {
    if (field.mode === 'REQUIRED') {
      throw new ValueError(location, `Missing required field: ${location}.`);
    }
    return null;
  }
  if (Array.isArray(value) && field.type !== 'JSON') {
    throw new ValueError(location, `Array specified for non-repeated field: ${location}.`);
  }
  if (field.type === 'RECORD') {
    if (!isObject(value)) {
      throw new ValueError(location, `This field: ${location} is not a record.`);
    }
    return recordOf(field.fields ?? [], value, ignoreUnknown, `${location}.`);
  }
  const text = scalar(field.type, value);
  if (text === undefined) throw new ValueError(location, badValue(field, value));
  return text;
}

/**
 * A RECORD (or a whole row) from its JSON object: every sub-column, in schema order; keys are
 * matched ignoring case. Throws the first {@link ValueError}.
 */
export function recordOf(
  fields: readonly Field[],
  json: Record<string, unknown>,
  ignoreUnknown: boolean,
  path = '',
): Record<string, Stored> {
  if (!ignoreUnknown) {
    for (const key of Object.keys(json)) {
      if (!fieldNamed(fields, key)) throw new ValueError(`${path}${key}`, 'no such field.');
    }
  }
  const given = new Map(Object.entries(json).map(([k, v]) => [k.toLowerCase(), v]));
  return Object.fromEntries(
    fields.map((f) => [f.name, toStored(f, given.get(f.name.toLowerCase()), ignoreUnknown, path)]),
  );
}

/**
 * Seconds since the epoch as BigQuery's JSON writes them (Java's `Double.toString`): plain below
 * 10^7 (`1.5`, `0.0`), else in E notation (`1.7040672E9`).
 */
function secondsText(micros: bigint): string {
  const seconds = Number(micros) / 1e6;
  const abs = Math.abs(seconds);
  if (abs === 0 || (abs >= 1e-3 && abs < 1e7)) {
    const plain = String(seconds);
    return plain.includes('.') ? plain : `${plain}.0`;
  }
  const [mantissa = '', exponent = ''] = seconds.toExponential().split('e');
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${exponent.replace('+', '')}`;
}

/** The `tabledata.list` cell of a stored value. */
export function cellOf(field: Field, value: Stored, int64Timestamp: boolean): Cell {
  if (field.mode === 'REPEATED') {
    const elements = Array.isArray(value) ? value : [];
    return { v: elements.map((e) => cellOf({ ...field, mode: 'REQUIRED' }, e, int64Timestamp)) };
  }
  if (value === null || Array.isArray(value)) return { v: null };
  if (typeof value !== 'string') {
    return {
      v: { f: (field.fields ?? []).map((f) => cellOf(f, value[f.name] ?? null, int64Timestamp)) },
    };
  }
  if (field.type === 'TIMESTAMP') {
    const micros = timestampMicros(value) ?? 0n;
    return { v: int64Timestamp ? micros.toString() : secondsText(micros) };
  }
  return { v: value };
}
