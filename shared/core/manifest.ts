/**
 * Manifests (README "Manifests"): an object whose name ends in `.batch.json` describes one job
 * over a BigQuery table or over several Cloud Storage files, instead of being its input:
 *
 *     {"source": "bq://project.dataset.table" | "gs://bucket/path/*.jsonl" | ["gs://…", …],
 *      "destination": "bq://project.dataset[.table]" | "gs://bucket/prefix",   (optional)
 *      "model": "…", "location": "…"}                                         (optional)
 *
 * This module reads the manifest's text and checks what needs nothing but the text and the
 * configuration; what needs BigQuery or a listing (the table, its region, the files a pattern
 * matches) is checked by the submission (`shared/app/sources.ts`). Every problem is an
 * `INPUT.INVALID_MANIFEST` (or a more precise `INPUT.*` code) whose message names the field.
 */
import { isUtf8 } from 'node:buffer';
import type { Config } from '../config.js';
import { firstInvalidUtf8, parseJsonSkeleton } from './jsonl.js';
import type { JobError } from './jobs.js';
import type { DatasetRef, TableRef } from '../ports.js';

/** Names of manifests end in this (any case). */
export const MANIFEST_SUFFIX = '.batch.json';

/** A manifest is a few lines of JSON: anything longer is not one. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

/**
 * Most files one job reads (patterns expanded). Each is validated and pinned (copied) during one
 * delivery of the upload event, so the count bounds the time that takes.
 */
export const MAX_MANIFEST_FILES = 100;

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The fields a manifest may have. */
const FIELDS = ['source', 'destination', 'model', 'location'] as const;

/** Where a job reads its requests. */
export type ManifestSource =
  | { kind: 'bigquery'; uri: string; table: TableRef }
  /** `uris` as written: each may hold `*`, `**` or `?` in its object name. */
  | { kind: 'gcs'; uris: string[] };

/** Where a job writes its predictions. */
export type ManifestDestination =
  | { kind: 'bigquery'; uri: string; dataset: DatasetRef; table: string | undefined }
  /** `uri` ends in `/`. */
  | { kind: 'gcs'; uri: string };

/** A parsed manifest. */
export interface Manifest {
  source: ManifestSource;
  /** Undefined: `<OUTPUT_URI_PREFIX>/<jobId>/`, as for a JSONL file. */
  destination: ManifestDestination | undefined;
  model: string | undefined;
  location: string | undefined;
}

/** True when the object is a manifest (by name). */
export function isManifestName(name: string): boolean {
  return name.toLowerCase().endsWith(MANIFEST_SUFFIX);
}

const PROJECT = '[a-z][a-z0-9-]{4,28}[a-z0-9]';
const DATASET = '[A-Za-z0-9_]{1,1024}';
/** Table ids may hold letters, marks, digits, `_`, `-` and spaces; Vertex names the common ones. */
const TABLE = '[A-Za-z0-9_-]{1,1024}';
const BQ_TABLE = new RegExp(`^bq://(${PROJECT})\\.(${DATASET})\\.(${TABLE})$`);
const BQ_DATASET = new RegExp(`^bq://(${PROJECT})\\.(${DATASET})(?:\\.(${TABLE}))?$`);
const GCS_BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

/** `bq://p.d.t` as the manifest and the event write it. */
export function tableUri(ref: TableRef): string {
  return `bq://${ref.project}.${ref.dataset}.${ref.table}`;
}

/** Parses `bq://p.d.t`, or undefined. */
export function parseTableUri(uri: string): TableRef | undefined {
  const m = BQ_TABLE.exec(uri);
  return m ? { project: m[1] ?? '', dataset: m[2] ?? '', table: m[3] ?? '' } : undefined;
}

/** `gs://bucket/name` split, or undefined when it is not one (a name is required). */
export function parseGcsUri(uri: string): { bucket: string; name: string } | undefined {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m || !GCS_BUCKET.test(m[1] ?? '')) return undefined;
  return { bucket: m[1] ?? '', name: m[2] ?? '' };
}

/**
 * Reads a manifest. `name` is the manifest object's name, for messages. Returns the manifest, or
 * the first problem (naming the field).
 */
export function parseManifest(bytes: Uint8Array, name: string): Manifest | JobError {
  const bad = (message: string): JobError => ({
    code: 'INPUT.INVALID_MANIFEST',
    message: `${name}: ${message}`,
  });
  if (bytes.length > MAX_MANIFEST_BYTES) {
    return bad(`a manifest is at most ${MAX_MANIFEST_BYTES} bytes; this one is ${bytes.length}`);
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.subarray(0, 3).equals(BOM)) {
    return bad('starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM');
  }
  if (!isUtf8(buffer)) {
    return bad(`is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(buffer)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(buffer.toString('utf8'));
  } catch {
    return bad(`is not valid JSON (${where(buffer)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return bad('must be a JSON object with a "source" field');
  }
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      return bad(
        `"${key.slice(0, 64)}" is not a manifest field (the fields are ${FIELDS.join(', ')})`,
      );
    }
  }
  if (!('source' in fields)) return bad('"source" is required');
  const source = parseSource(fields.source);
  if ('message' in source) return bad(source.message);
  let destination: ManifestDestination | undefined;
  if (fields.destination !== undefined && fields.destination !== null) {
    const parsed = parseDestination(fields.destination);
    if ('message' in parsed) return bad(parsed.message);
    destination = parsed;
  }
  const model = optionalText(fields.model, 'model', 512);
  if (typeof model === 'object') return bad(model.message);
  const location = optionalText(fields.location, 'location', 64);
  if (typeof location === 'object') return bad(location.message);
  return { source, destination, model, location };
}

function optionalText(
  value: unknown,
  field: string,
  max: number,
): string | undefined | { message: string } {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    return { message: `"${field}" must be a non-empty string` };
  }
  if (value.length > max) return { message: `"${field}" is longer than ${max} characters` };
  return value.trim();
}

function parseSource(value: unknown): ManifestSource | { message: string } {
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  if (list.length === 0) return { message: '"source" is an empty list: name at least one file' };
  if (list.length > MAX_MANIFEST_FILES) {
    return {
      message: `"source" lists ${list.length} files: at most ${MAX_MANIFEST_FILES} files per manifest; split it`,
    };
  }
  const uris: string[] = [];
  for (const [i, item] of list.entries()) {
    const field = Array.isArray(value) ? `"source"[${i}]` : '"source"';
    if (typeof item !== 'string') {
      return { message: `${field} must be a bq:// or gs:// URI string` };
    }
    uris.push(item.trim());
  }
  const kinds = new Set(uris.map((u) => (u.startsWith('bq://') ? 'bq' : 'other')));
  if (kinds.size > 1) {
    return {
      message:
        '"source" mixes a BigQuery table with Cloud Storage files: a job reads one kind; use two manifests',
    };
  }
  if (kinds.has('bq')) {
    if (uris.length > 1) {
      return { message: '"source" names several BigQuery tables: a job reads one table' };
    }
    const uri = uris[0] ?? '';
    const table = parseTableUri(uri);
    if (!table) {
      return {
        message: `"source" ${quote(uri)} is not a BigQuery table URI: bq://project.dataset.table`,
      };
    }
    return { kind: 'bigquery', uri, table };
  }
  for (const [i, uri] of uris.entries()) {
    const field = Array.isArray(value) ? `"source"[${i}]` : '"source"';
    const parsed = parseGcsUri(uri);
    if (!parsed) {
      return {
        message: `${field} ${quote(uri)} is not a gs://bucket/object URI or a bq://project.dataset.table URI`,
      };
    }
    const problem = patternProblem(parsed.name);
    if (problem) return { message: `${field} ${quote(uri)}: ${problem}` };
  }
  return { kind: 'gcs', uris };
}

function parseDestination(value: unknown): ManifestDestination | { message: string } {
  if (typeof value !== 'string') {
    return { message: '"destination" must be a bq:// or gs:// URI string' };
  }
  const uri = value.trim();
  if (uri.startsWith('bq://')) {
    const m = BQ_DATASET.exec(uri);
    if (!m) {
      return {
        message: `"destination" ${quote(uri)} is not a BigQuery dataset or table URI: bq://project.dataset[.table]`,
      };
    }
    return {
      kind: 'bigquery',
      uri,
      dataset: { project: m[1] ?? '', dataset: m[2] ?? '' },
      table: m[3],
    };
  }
  const m = /^gs:\/\/([^/]+)(\/.*)?$/.exec(uri);
  if (!m || !GCS_BUCKET.test(m[1] ?? '') || /[*?[\]]/.test(uri)) {
    return {
      message: `"destination" ${quote(uri)} is not a gs://bucket/prefix or bq://project.dataset[.table] URI`,
    };
  }
  return { kind: 'gcs', uri: `${uri.replace(/\/+$/, '')}/` };
}

/** Why an object name (or pattern) cannot be read, or undefined. */
function patternProblem(name: string): string | undefined {
  if (/(^|\/)\.{1,2}(\/|$)/.test(name) || name.includes('\\')) {
    return 'a path may not hold "." or ".." segments or backslashes';
  }
  if (/[[\]]/.test(name)) return 'character classes ([…]) are not supported: use * or ?';
  if (/\*{3,}/.test(name)) return '"***" is not a wildcard: use * or **';
  return undefined;
}

/** True when the URI's object name holds a wildcard. */
export function isPattern(uri: string): boolean {
  return /[*?]/.test(uri);
}

/** The part of a pattern's name before its first wildcard: the prefix to list. */
export function listPrefix(name: string): string {
  const at = name.search(/[*?]/);
  return at < 0 ? name : name.slice(0, at);
}

/**
 * A matcher for a Cloud Storage wildcard, as Vertex AI and gcloud read one
 * (https://cloud.google.com/storage/docs/wildcards): `*` matches any characters except `/`, `**`
 * any characters including `/`, `?` one character except `/`.
 */
export function wildcardMatcher(name: string): (candidate: string) => boolean {
  let source = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] ?? '';
    if (c === '*' && name[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') {
      source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else {
      source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  const re = new RegExp(`^${source}$`, 's');
  return (candidate) => re.test(candidate);
}

/**
 * What the configuration refuses in a parsed manifest, knowing the job's region: BigQuery on the
 * `global` endpoint, datasets outside ALLOWED_BIGQUERY_DATASETS, Cloud Storage files outside the
 * allowed buckets, a destination outside the output bucket.
 */
export function manifestPolicyProblem(
  manifest: Manifest,
  location: string,
  config: Pick<Config, 'ALLOWED_BIGQUERY_DATASETS' | 'OUTPUT_URI_PREFIX'>,
  readable: { test(uri: string): boolean; describe: string } | undefined,
  name: string,
): JobError | undefined {
  const { source, destination } = manifest;
  const usesBigQuery = source.kind === 'bigquery' || destination?.kind === 'bigquery';
  if (usesBigQuery && location === 'global') {
    return {
      code: 'INPUT.INVALID_LOCATION',
      message: `${name}: BigQuery ${source.kind === 'bigquery' ? 'sources' : 'destinations'} are not available on the global endpoint; name a region in "location" (the dataset's)`,
    };
  }
  const datasets: { field: string; ref: DatasetRef }[] = [];
  if (source.kind === 'bigquery') datasets.push({ field: 'source', ref: source.table });
  if (destination?.kind === 'bigquery') {
    datasets.push({ field: 'destination', ref: destination.dataset });
  }
  for (const { field, ref } of datasets) {
    if (!isDatasetAllowed(config, ref)) {
      const allowed = config.ALLOWED_BIGQUERY_DATASETS;
      return {
        code: 'INPUT.SOURCE_NOT_ALLOWED',
        message: `${name}: "${field}" dataset ${ref.project}.${ref.dataset} is not allowed in this deployment; allowed: ${allowed.length > 0 ? allowed.join(', ') : 'none'} (ALLOWED_BIGQUERY_DATASETS)`,
      };
    }
  }
  if (source.kind === 'gcs' && readable) {
    for (const [i, uri] of source.uris.entries()) {
      // A pattern may only match inside an allowed prefix: its fixed part must be in one.
      const fixed = `gs://${parseGcsUri(uri)?.bucket}/${listPrefix(parseGcsUri(uri)?.name ?? '')}`;
      if (!readable.test(uri.replace(/[*?].*$/s, '')) || !readable.test(fixed)) {
        const field = source.uris.length > 1 ? `"source"[${i}]` : '"source"';
        return {
          code: 'INPUT.SOURCE_NOT_ALLOWED',
          message: `${name}: ${field} ${quote(uri)} is outside what this deployment may read: ${readable.describe}`,
        };
      }
    }
  }
  if (destination?.kind === 'gcs') {
    const output = /^gs:\/\/([^/]+)/.exec(config.OUTPUT_URI_PREFIX)?.[1];
    if (parseGcsUri(`${destination.uri}x`)?.bucket !== output) {
      return {
        code: 'INPUT.SOURCE_NOT_ALLOWED',
        message: `${name}: "destination" ${quote(destination.uri)} is outside the output bucket gs://${output} (OUTPUT_URI_PREFIX), the only bucket this deployment lets Vertex AI write to`,
      };
    }
  }
  return undefined;
}

/** True when ALLOWED_BIGQUERY_DATASETS lets a manifest use this dataset. */
export function isDatasetAllowed(
  config: Pick<Config, 'ALLOWED_BIGQUERY_DATASETS'>,
  ref: DatasetRef,
): boolean {
  const allowed = config.ALLOWED_BIGQUERY_DATASETS;
  return allowed.includes('*') || allowed.includes(`${ref.project}.${ref.dataset}`);
}

/**
 * True when BigQuery data in `bigQueryLocation` can be used by a job in `region`: the same
 * region, whatever the case (BigQuery spells regions in lower case and multi-regions in upper).
 */
export function sameRegion(bigQueryLocation: string, region: string): boolean {
  return bigQueryLocation.toLowerCase() === region.toLowerCase();
}

function quote(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

/**
 * `at line L column C` of the first syntax error (columns in bytes): found by the repository's own
 * JSON reader, since `JSON.parse` does not say where for every error.
 */
function where(buffer: Buffer): string {
  const parsed = parseJsonSkeleton(buffer);
  const at = 'errorAt' in parsed ? parsed.errorAt : buffer.length;
  if (at >= buffer.length) return 'it ends before the JSON does';
  const before = buffer.subarray(0, at);
  const line = before.filter((b) => b === 0x0a).length + 1;
  const column = at - before.lastIndexOf(0x0a);
  return `at line ${line} column ${column}`;
}
