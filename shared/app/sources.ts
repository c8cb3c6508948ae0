/**
 * The sources of a manifest (README "Manifests"): reading the manifest object, then validating
 * what it names before anything is created — every Cloud Storage file it matches, pinned to its
 * generation, or a BigQuery table's schema, region and rows — by the same rules as a JSONL file.
 */
import { fileUriRule, type FileUriRule } from '../core/allow-lists.js';
import type { Config } from '../config.js';
import { PermanentError, TransientError } from '../core/errors.js';
import {
  queueOf,
  type JobError,
  type JobRecord,
  type ManifestRecord,
  type SourceFile,
} from '../core/jobs.js';
import {
  MAX_INPUT_BYTES,
  MAX_INPUT_LINES,
  validateJsonl,
  type ValidationResult,
} from '../core/jsonl.js';
import {
  isPattern,
  listPrefix,
  manifestPolicyProblem,
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_FILES,
  parseGcsUri,
  parseManifest,
  parseTableUri,
  sameRegion,
  wildcardMatcher,
  type Manifest,
} from '../core/manifest.js';
import { locationInModel, normalizeModel, providerOf } from '../core/models.js';
import type { RequestSizing } from '../core/pricing.js';
import { RowFingerprint, validateTableRows } from '../core/table-rows.js';
import { lineCheckFor } from '../core/line-rules.js';
import type { BigQueryTables, ObjectReader, ObjectWriter, TableRef } from '../ports.js';

/** What reading and validating sources needs. */
export interface SourceDeps {
  config: Config;
  reader: ObjectReader;
  reports: ObjectWriter;
  /** Absent where no manifest names BigQuery (tests); then such a manifest fails loudly. */
  bigquery?: BigQueryTables | undefined;
}

/** The record's fields a manifest sets (for `toManifest`). */
export type ManifestFields = Pick<
  JobRecord,
  'manifest' | 'model' | 'provider' | 'location' | 'queue' | 'inputUri'
>;

/** Problems found in the sources: the first one, and the rest for the rejection report. */
export interface SourceProblem {
  error: JobError;
  found?: Pick<ValidationResult, 'errors' | 'complete' | 'requestCount'>;
}

/** Valid sources: what they hold, and the record's manifest with the files pinned. */
export interface ValidSources {
  requestCount: number;
  bytes: number;
  sizing: RequestSizing;
  manifest: ManifestRecord;
}

/**
 * Reads the manifest object of a record and checks what needs only its text and the
 * configuration. Throws a TransientError when storage fails, PermanentError `INPUT.NOT_FOUND`
 * when the manifest's generation is gone.
 */
export async function readManifest(
  record: JobRecord,
  deps: SourceDeps,
): Promise<ManifestFields | JobError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of deps.reader.read(record.bucket, record.object, record.generation)) {
    size += chunk.byteLength;
    // One byte more than the limit is enough to refuse it: the rest is not read.
    if (size > MAX_MANIFEST_BYTES) {
      chunks.push(
        Buffer.from(chunk).subarray(0, MAX_MANIFEST_BYTES + 1 - (size - chunk.byteLength)),
      );
      break;
    }
    chunks.push(Buffer.from(chunk));
  }
  const parsed = parseManifest(Buffer.concat(chunks), record.object);
  if ('code' in parsed) return parsed;

  let model = record.model;
  if (parsed.model !== undefined) {
    try {
      model = normalizeModel(parsed.model);
    } catch {
      // Recorded as given: the submission refuses it with the reason (as for metadata).
      model = parsed.model;
    }
  }
  const provider = providerOf(model);
  // The manifest's own region first; else the model's; else the region the object's metadata
  // chose, unless the manifest changed the provider (then that provider's default region).
  const location =
    parsed.location ??
    locationInModel(model) ??
    (provider === record.provider
      ? record.location
      : provider === 'anthropic'
        ? deps.config.ANTHROPIC_LOCATION
        : deps.config.VERTEX_LOCATION);
  const policy = manifestPolicyProblem(
    parsed,
    location,
    deps.config,
    fileUriRule(deps.config, record.bucket),
    record.object,
  );
  if (policy) return policy;
  return {
    model,
    provider,
    location,
    queue: queueOf(model, location),
    inputUri: parsed.source.kind === 'bigquery' ? parsed.source.uri : parsed.source.uris.join(','),
    manifest: manifestRecord(parsed),
  };
}

function manifestRecord(manifest: Manifest): ManifestRecord {
  return {
    source:
      manifest.source.kind === 'bigquery'
        ? { kind: 'bigquery', uri: manifest.source.uri }
        : { kind: 'gcs', uris: manifest.source.uris },
    destination: manifest.destination?.uri ?? null,
    files: [],
    tableModified: null,
    tableFingerprint: null,
  };
}

/**
 * Validates every source of a manifest's record. Returns the problems, or what the sources hold
 * (with the files matched and the names of their pinned copies, which the caller makes once the
 * budget allows). Throws when a dependency fails.
 */
export async function validateSources(
  record: JobRecord,
  deps: SourceDeps,
): Promise<SourceProblem | ValidSources> {
  const manifest = record.manifest;
  if (!manifest) throw new Error(`${record.jobId} is not a manifest's record`);
  return manifest.source.kind === 'bigquery'
    ? validateTable(record, manifest, manifest.source.uri, deps)
    : validateFiles(record, manifest, manifest.source.uris, deps);
}

/** The pinned copy of the k-th file (0-based) of a manifest, named after its generation. */
export function pinnedFileUri(
  record: Pick<JobRecord, 'outputUriPrefix'>,
  k: number,
  generation: string,
): string {
  return `${record.outputUriPrefix}inputs/${String(k + 1).padStart(3, '0')}-${generation}.jsonl`;
}

interface Matched {
  bucket: string;
  name: string;
  generation: string;
}

/** The objects the URIs name, in order (each pattern's matches by name), without repeats. */
async function expand(
  record: JobRecord,
  uris: string[],
  reader: ObjectReader,
): Promise<Matched[] | SourceProblem> {
  const found: Matched[] = [];
  const seen = new Set<string>();
  for (const [i, uri] of uris.entries()) {
    const field = uris.length > 1 ? `"source"[${i}]` : '"source"';
    const at = parseGcsUri(uri);
    if (!at) throw new Error(`unparsed source ${uri}`); // parseManifest refused it already
    const pattern = isPattern(at.name);
    const matches = pattern ? wildcardMatcher(at.name) : (n: string) => n === at.name;
    const listed = (await reader.list(at.bucket, pattern ? listPrefix(at.name) : at.name)).filter(
      (o) =>
        matches(o.name) &&
        !o.name.endsWith('/') &&
        // The manifest itself is not one of its inputs, whatever a pattern matches.
        !(at.bucket === record.bucket && o.name === record.object),
    );
    if (listed.length === 0) {
      return {
        error: {
          code: 'INPUT.SOURCE_NOT_FOUND',
          message: `${record.object}: ${field} ${uri} ${pattern ? 'matches no object' : 'does not exist'}`,
        },
      };
    }
    for (const o of listed) {
      const key = `${at.bucket}/${o.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      found.push({ bucket: at.bucket, name: o.name, generation: o.generation });
      if (found.length > MAX_MANIFEST_FILES) {
        return {
          error: {
            code: 'INPUT.TOO_MANY_FILES',
            message: `${record.object}: "source" matches more than ${MAX_MANIFEST_FILES} files, the limit per manifest; split it or narrow the pattern`,
          },
        };
      }
    }
  }
  return found;
}

async function validateFiles(
  record: JobRecord,
  manifest: ManifestRecord,
  uris: string[],
  deps: SourceDeps,
): Promise<SourceProblem | ValidSources> {
  if (manifest.destination?.startsWith('bq://')) {
    const problem = await checkDestination(record, manifest, bigquery(deps));
    if (problem) return { error: problem };
  }
  const matched = await expand(record, uris, deps.reader);
  if ('error' in matched) return matched;
  const sizing: RequestSizing = { bytes: 0, maxOutputTokens: 0, withoutMax: 0 };
  let requestCount = 0;
  let bytes = 0;
  const files: SourceFile[] = [];
  // One set of line rules for all the files: a Claude custom_id is unique across them.
  const check = lineCheckFor(record.provider, record.model, {
    fileUriAllowed: fileUriRule(deps.config, record.bucket),
  });
  for (const [k, file] of matched.entries()) {
    const uri = `gs://${file.bucket}/${file.name}`;
    // The limits apply to all files together: each file gets what the ones before it left.
    const result = await validateJsonl(deps.reader.read(file.bucket, file.name, file.generation), {
      provider: record.provider,
      model: record.model,
      maxLines: MAX_INPUT_LINES - requestCount,
      maxBytes: MAX_INPUT_BYTES - bytes,
      check,
    });
    if (result.code !== undefined) {
      const together =
        k > 0 && (result.code === 'INPUT.TOO_MANY_LINES' || result.code === 'INPUT.TOO_LARGE')
          ? ` (the limit applies to the ${matched.length} files together: ${MAX_INPUT_LINES} requests, ${MAX_INPUT_BYTES} bytes)`
          : '';
      const first = result.errors[0];
      return {
        error: {
          code: result.code,
          message: `${uri} line ${first?.line ?? 1}: ${first?.message ?? 'invalid input'}${together}`,
        },
        found: {
          ...result,
          errors: result.errors.map((e) => ({ ...e, message: `${uri}: ${e.message}` })),
        },
      };
    }
    requestCount += result.requestCount;
    bytes += result.bytes;
    sizing.bytes += result.sizing.bytes;
    sizing.maxOutputTokens += result.sizing.maxOutputTokens;
    sizing.withoutMax += result.sizing.withoutMax;
    files.push({
      uri,
      generation: file.generation,
      requests: result.requestCount,
      pinnedUri: pinnedFileUri(record, k, file.generation),
    });
  }
  return { requestCount, bytes, sizing, manifest: { ...manifest, files } };
}

function optionalRule(config: Config, bucket: string): { fileUriAllowed?: FileUriRule } {
  const rule = fileUriRule(config, bucket);
  return rule ? { fileUriAllowed: rule } : {};
}

function bigquery(deps: SourceDeps): BigQueryTables {
  if (!deps.bigquery) throw new Error('no BigQuery client: the functions always configure one');
  return deps.bigquery;
}

/**
 * Column types an input table may not have (the repeated mode is the array kind): Vertex AI's
 * batch prediction from BigQuery documents these as unsupported.
 */
const UNSUPPORTED_TYPES = ['RECORD', 'STRUCT', 'RANGE', 'DATETIME', 'GEOGRAPHY'];

/** The columns Vertex AI writes into an output table: an input may not have them. */
const RESERVED_COLUMNS = ['response', 'status'];

async function validateTable(
  record: JobRecord,
  manifest: ManifestRecord,
  uri: string,
  deps: SourceDeps,
): Promise<SourceProblem | ValidSources> {
  const bq = bigquery(deps);
  const ref = parseTableUri(uri);
  if (!ref) throw new Error(`unparsed source ${uri}`); // parseManifest refused it already
  const refuse = (code: JobError['code'], message: string): SourceProblem => ({
    error: { code, message: `${record.object}: "source" ${uri} ${message}` },
  });
  const table = await bq.table(ref);
  if (!table) return refuse('INPUT.SOURCE_NOT_FOUND', 'does not exist (nor, perhaps, its dataset)');
  if (table.kind !== 'TABLE') {
    return refuse(
      'INPUT.INVALID_TABLE',
      `is a ${table.kind}, not a table: Vertex AI batch prediction reads tables`,
    );
  }
  const column = (name: string) => table.columns.find((c) => c.name.toLowerCase() === name);
  const request = column('request');
  if (!request) {
    return refuse(
      'INPUT.INVALID_TABLE',
      'has no "request" column: each row\'s request goes in a "request" column (JSON or STRING)',
    );
  }
  if (!['JSON', 'STRING'].includes(request.type) || request.mode === 'REPEATED') {
    return refuse(
      'INPUT.INVALID_TABLE',
      `has a "request" column of type ${request.mode === 'REPEATED' ? 'REPEATED ' : ''}${request.type}: it must be JSON or STRING (JSON text)`,
    );
  }
  const customId = record.provider === 'anthropic' ? column('custom_id') : undefined;
  if (
    record.provider === 'anthropic' &&
    (customId?.type !== 'STRING' || customId.mode === 'REPEATED')
  ) {
    return refuse(
      'INPUT.INVALID_TABLE',
      customId
        ? `has a "custom_id" column of type ${customId.type}: Claude rows need a STRING custom_id`
        : 'has no "custom_id" column: Claude rows need a STRING "custom_id" column beside "request"',
    );
  }
  // Other columns are copied to the output, except kinds Vertex AI does not take.
  const unsupported = table.columns.find(
    (c) => c !== request && (c.mode === 'REPEATED' || UNSUPPORTED_TYPES.includes(c.type)),
  );
  if (unsupported) {
    return refuse(
      'INPUT.INVALID_TABLE',
      `has a column "${unsupported.name}" of type ${unsupported.mode === 'REPEATED' ? 'ARRAY' : unsupported.type}: Vertex AI batch prediction reads tables without array, struct, range, datetime or geography columns`,
    );
  }
  const reserved = RESERVED_COLUMNS.find((name) => column(name));
  if (reserved) {
    return refuse(
      'INPUT.INVALID_TABLE',
      `has a "${reserved}" column: Vertex AI writes "response" and "status" into the output; rename it`,
    );
  }
  if (!sameRegion(table.location, record.location)) {
    return refuse(
      'INPUT.INVALID_LOCATION',
      `is in ${table.location}, but the job runs in ${record.location}: a batch job reads BigQuery in its own region; name the dataset's region in "location"`,
    );
  }
  if (table.rowCount > MAX_INPUT_LINES) {
    return refuse(
      'INPUT.TOO_MANY_LINES',
      `has ${table.rowCount} rows: the limit is ${MAX_INPUT_LINES} requests per job; split it`,
    );
  }
  const destinationProblem = await checkDestination(record, manifest, bq);
  if (destinationProblem) return { error: destinationProblem };

  const columns = customId ? [request.name, customId.name] : [request.name];
  const result = await validateTableRows(bq.rows(ref, columns), {
    provider: record.provider,
    model: record.model,
    ...optionalRule(deps.config, record.bucket),
  });
  if (result.code !== undefined) {
    const first = result.errors[0];
    // A problem of the whole table (it has no rows) is at no row.
    const where = first?.line ? `${uri} row ${first.line}` : `${record.object}: "source" ${uri}`;
    return {
      error: {
        code: result.code,
        message: `${where}: ${first?.message ?? 'invalid input'}`,
      },
      found: result,
    };
  }
  // Rows changed while they were read: what was validated is not what the job would read.
  const after = await bq.table(ref);
  if (after?.modified !== table.modified) {
    throw new TransientError(
      'BIGQUERY.UNAVAILABLE',
      `${uri} changed while it was validated; validating it again later`,
    );
  }
  return {
    requestCount: result.requestCount,
    bytes: result.bytes,
    sizing: result.sizing,
    manifest: { ...manifest, tableModified: table.modified, tableFingerprint: result.fingerprint },
  };
}

/** A BigQuery destination's dataset must exist in the job's region. */
async function checkDestination(
  record: JobRecord,
  manifest: ManifestRecord,
  bq: BigQueryTables,
): Promise<JobError | undefined> {
  const m = /^bq:\/\/([^.]+)\.([^.]+)(?:\.(.+))?$/.exec(manifest.destination ?? '');
  if (!m) return undefined;
  const ref = { project: m[1] ?? '', dataset: m[2] ?? '' };
  const dataset = await bq.dataset(ref);
  const name = `${ref.project}.${ref.dataset}`;
  if (!dataset) {
    return {
      code: 'INPUT.SOURCE_NOT_FOUND',
      message: `${record.object}: "destination" dataset ${name} does not exist: create it in ${record.location}`,
    };
  }
  if (!sameRegion(dataset.location, record.location)) {
    return {
      code: 'INPUT.INVALID_LOCATION',
      message: `${record.object}: "destination" dataset ${name} is in ${dataset.location}, but the job runs in ${record.location}: Vertex AI writes BigQuery output in its own region`,
    };
  }
  // Vertex AI creates a destination table it is given: one that exists fails the job, hours later.
  if (m[3] && (await bq.table({ ...ref, table: m[3] }))) {
    return {
      code: 'INPUT.INVALID_TABLE',
      message: `${record.object}: "destination" table ${manifest.destination} exists already: name a new table, or only the dataset`,
    };
  }
  return undefined;
}

/**
 * True when a BigQuery source changed since it was validated (its `lastModifiedTime`): a queued
 * manifest is validated again before its job is created.
 */
export async function tableChanged(record: JobRecord, deps: SourceDeps): Promise<boolean> {
  const source = record.manifest?.source;
  if (source?.kind !== 'bigquery') return false;
  const ref = parseTableUri(source.uri) as TableRef;
  const table = await bigquery(deps).table(ref);
  return table?.modified !== record.manifest?.tableModified;
}

/**
 * A BigQuery source's rows as the JSONL lines they stand for (`{"request": …}`, Claude's with
 * `custom_id` first), in table order: what the digest matches output against. With `expected`
 * (the fingerprint of the rows validated), rows that differ from those are refused when the read
 * ends (PermanentError `DIGEST.INPUT_CHANGED`): they are not the rows the job read, and matching
 * its output to them would put answers beside the wrong requests.
 */
export async function* tableLines(
  bq: BigQueryTables,
  uri: string,
  provider: JobRecord['provider'],
  expected?: string | null,
): AsyncGenerator<Buffer> {
  const ref = parseTableUri(uri) as TableRef;
  const anthropic = provider === 'anthropic';
  const fingerprint = new RowFingerprint();
  for await (const [request, customId] of bq.rows(
    ref,
    anthropic ? ['request', 'custom_id'] : ['request'],
  )) {
    fingerprint.add(request, anthropic ? customId : undefined);
    yield Buffer.from(requestLine(request, anthropic ? (customId ?? null) : undefined));
  }
  if (expected && fingerprint.value() !== expected) {
    throw new PermanentError(
      'DIGEST.INPUT_CHANGED',
      `${uri} changed after the job read it: its output cannot be matched to its rows`,
    );
  }
}

/**
 * A table row's request as one JSONL line, `{"request": …}` (Claude's with `custom_id` first): the
 * cell's JSON written anew, since a STRING cell may hold pretty-printed JSON over several lines.
 */
export function requestLine(request: string | null | undefined, customId?: string | null): string {
  let json = 'null';
  if (request !== null && request !== undefined) {
    try {
      json = JSON.stringify(JSON.parse(request));
    } catch {
      json = JSON.stringify(request); // not JSON (the table changed since it was validated)
    }
  }
  const id = customId === undefined ? '' : `"custom_id":${JSON.stringify(customId)},`;
  return `{${id}"request":${json}}`;
}

/** The create request's input: the pinned files, or the table. */
export function manifestInputUris(manifest: ManifestRecord): string[] {
  return manifest.source.kind === 'bigquery'
    ? [manifest.source.uri]
    : manifest.files.map((f) => f.pinnedUri);
}
