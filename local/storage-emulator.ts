/**
 * A local Cloud Storage emulator: the subset of the JSON API that `@google-cloud/storage` 7.x uses,
 * served by `node:http`, with objects on disk so a user can open results in a file browser.
 *
 * Both endpoint styles work at once: `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` (the client
 * drops the `/storage/v1` prefix: `/b/...`) and `apiEndpoint: 'http://127.0.0.1:PORT'`
 * (`/storage/v1/b/...`). Uploads always go to `/upload/storage/v1/...`; `/download/storage/v1/...`
 * (the `mediaLink` form) is accepted for reads.
 *
 * Layout under `root`:
 *
 *     <root>/<bucket>/<object name>          live bytes, when the name is a safe relative path
 *     <root>/<bucket>/.encoded/<sha256>      live bytes of any other name (`../x`, `a//b`, `dir/`)
 *     <root>/.meta/<bucket>/<enc(name)>.json object metadata (the sidecar store)
 *     <root>/.buckets/<bucket>.json          bucket metadata
 *     <root>/.tmp/, <root>/.uploads/         uploads in progress (cleared at start)
 *
 * Only the live generation is kept. Bytes are streamed to a temporary file and renamed into place,
 * so a reader never sees half an object, and nothing is held in memory whole.
 */
import { createHash, randomBytes, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

/** A Cloud Storage object resource as the JSON API returns it (int64 fields as strings). */
export interface ObjectResource {
  kind: 'storage#object';
  /** `bucket/name/generation`. */
  id: string;
  name: string;
  bucket: string;
  generation: string;
  metageneration: string;
  size: string;
  contentType?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  cacheControl?: string;
  contentLanguage?: string;
  /** Base64 MD5 of the bytes. */
  md5Hash: string;
  /** Base64 big-endian CRC32C of the bytes. */
  crc32c: string;
  etag: string;
  timeCreated: string;
  updated: string;
  timeStorageClassUpdated?: string;
  storageClass: string;
  /** Custom metadata (`x-goog-meta-*`); present only when non-empty. */
  metadata?: Record<string, string>;
  selfLink: string;
  mediaLink: string;
}

/** Options of {@link startStorageEmulator}. */
export interface StorageEmulatorOptions {
  /** Folder that holds buckets, objects and metadata (the stack uses `.local/storage`). */
  root: string;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Called after every insert, copy, rewrite or move that creates a new generation. */
  onFinalize?: (object: ObjectResource) => void;
  /** One JSON object per line for unexpected errors; default writes to stderr. */
  log?: (line: object) => void;
}

/** A running emulator. */
export interface StorageEmulator {
  /** `http://127.0.0.1:PORT`: the `STORAGE_EMULATOR_HOST` and `apiEndpoint` form. */
  readonly url: string;
  readonly port: number;
  /** The folder given in the options, resolved. */
  readonly root: string;
  /** Creates a bucket; does nothing when it already exists. */
  createBucket(name: string): Promise<void>;
  /** Absolute path of the live bytes of an object, or undefined when it does not exist. */
  objectPath(bucket: string, name: string): string | undefined;
  /** Deletes every bucket, object and upload session. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), as Cloud Storage reports it: base64 of the big-endian 32-bit value.

const CRC32C_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Continues a CRC32C over `data` (start with 0). */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) {
    c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  }
  return ~c >>> 0;
}

/** Base64 of the big-endian CRC32C of `data`, as in the `crc32c` field and `x-goog-hash`. */
export function crc32cBase64(data: Uint8Array): string {
  return crcToBase64(crc32cUpdate(0, data));
}

function crcToBase64(crc: number): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc >>> 0);
  return out.toString('base64');
}

/** Size, MD5 and CRC32C of a byte stream, computed as it passes. */
class ContentHasher {
  private md5: Hash = createHash('md5');
  private crc = 0;
  size = 0;

  update(chunk: Buffer): void {
    this.md5.update(chunk);
    this.crc = crc32cUpdate(this.crc, chunk);
    this.size += chunk.length;
  }

  digest(): Digest {
    return { size: this.size, md5Hash: this.md5.digest('base64'), crc32c: crcToBase64(this.crc) };
  }
}

interface Digest {
  size: number;
  md5Hash: string;
  crc32c: string;
}

function hashingTransform(hasher: ContentHasher): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hasher.update(chunk);
      callback(null, chunk);
    },
  });
}

/** Drops the first `count` bytes (a resumable chunk that overlaps bytes already stored). */
function skipTransform(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        callback();
        return;
      }
      const rest = chunk.subarray(left);
      left = 0;
      callback(null, rest);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Errors in Google's JSON shape.

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (message: string): ApiError => new ApiError(404, 'notFound', message);
const invalid = (message: string): ApiError => new ApiError(400, 'invalid', message);
const noSuchObject = (bucket: string, name: string): ApiError =>
  notFound(`No such object: ${bucket}/${name}`);
const noSuchBucket = (): ApiError => notFound('The specified bucket does not exist.');
const conditionNotMet = (): ApiError =>
  new ApiError(
    412,
    'conditionNotMet',
    'At least one of the pre-conditions you specified did not hold.',
  );

// ---------------------------------------------------------------------------------------------
// Small helpers.

/** Serialises async critical sections (a promise chain). */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

async function ignoreMissing(op: Promise<unknown>): Promise<void> {
  try {
    await op;
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError('unexpected chunk type');
}

/** Compares two names by UTF-8 bytes, the order Cloud Storage lists objects in. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** An object's etag as Cloud Storage builds it: base64 of protobuf varints (generation, metageneration). */
function etagOf(generation: string, metageneration: string): string {
  const bytes: number[] = [];
  const varint = (value: bigint): void => {
    let v = value;
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
  };
  bytes.push(0x08);
  varint(BigInt(generation));
  bytes.push(0x10);
  varint(BigInt(metageneration));
  return Buffer.from(bytes).toString('base64');
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

function isValidBucketName(name: string): boolean {
  return BUCKET_NAME.test(name) && !name.includes('..');
}

/**
 * Object names as Cloud Storage accepts them (cloud.google.com/storage/docs/objects#naming):
 * 1–1024 bytes of UTF-8, no carriage return or line feed, not `.` or `..`, not under
 * `.well-known/acme-challenge/`. Everything else (spaces, unicode, `/`, `../` inside) is legal.
 */
function validateObjectName(name: string | undefined): string {
  if (name === undefined || name.length === 0) {
    throw new ApiError(400, 'required', 'Required: object name');
  }
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > 1024) throw invalid('The object name is longer than 1024 bytes.');
  if (/[\r\n]/.test(name)) {
    throw invalid('Object names cannot contain carriage return or line feed characters.');
  }
  if (name === '.' || name === '..') throw invalid('Object names cannot be "." or "..".');
  if (name.startsWith('.well-known/acme-challenge/')) {
    throw invalid('Object names cannot start with ".well-known/acme-challenge/".');
  }
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    throw invalid('The object name is not valid UTF-8.');
  }
  return name;
}

/**
 * Whether an object name can be its own file path under the bucket folder: relative, no `.`,
 * `..` or empty segment, no control character, no backslash, segments short enough for a file
 * system, and not inside the `.encoded` folder that holds the other names.
 */
function isSafeRelativePath(name: string): boolean {
  if (name.startsWith('/') || name.includes('\\')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return false;
  const segments = name.split('/');
  if (segments[0] === ENCODED_DIR) return false;
  return segments.every(
    (s) => s !== '' && s !== '.' && s !== '..' && Buffer.byteLength(s, 'utf8') <= 255,
  );
}

const ENCODED_DIR = '.encoded';

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** File name of an object's sidecar: `encodeURIComponent(name).json`, hashed when too long. */
function sidecarFileName(name: string): string {
  const encoded = encodeURIComponent(name);
  // `%s` can never come out of encodeURIComponent, so hashed names cannot collide with encoded ones.
  return encoded.length <= 200 ? `${encoded}.json` : `%sha256-${sha256Hex(name)}.json`;
}

// ---------------------------------------------------------------------------------------------
// Object metadata: what a client can set, and what we store.

const WRITABLE_FIELDS = [
  'contentType',
  'contentEncoding',
  'contentDisposition',
  'cacheControl',
  'contentLanguage',
] as const;

type WritableField = (typeof WRITABLE_FIELDS)[number];

type ObjectFields = Partial<Record<WritableField, string>> & { metadata?: Record<string, string> };

/** The sidecar record of a live object. */
interface StoredObject {
  bucket: string;
  name: string;
  generation: string;
  metageneration: string;
  size: number;
  md5Hash: string;
  crc32c: string;
  timeCreated: string;
  updated: string;
  fields: ObjectFields;
  /** Location of the bytes relative to the root, `/`-separated. */
  dataPath: string;
}

interface StoredBucket {
  name: string;
  timeCreated: string;
}

interface BucketState {
  record: StoredBucket;
  objects: Map<string, StoredObject>;
}

/**
 * Applies a JSON object-resource body to `base` with patch semantics: a string sets a field, null
 * clears it, absent leaves it; `metadata` merges key by key (null deletes a key; `metadata: null`
 * clears all). Other resource fields are ignored, as output-only fields are by the real API.
 */
function patchFields(base: ObjectFields, body: Record<string, unknown>): ObjectFields {
  const out: ObjectFields = { ...base };
  if (base.metadata) out.metadata = { ...base.metadata };
  for (const field of WRITABLE_FIELDS) {
    const value = body[field];
    if (value === undefined) continue;
    if (value === null) delete out[field];
    else if (typeof value === 'string') out[field] = value;
    else throw invalid(`Invalid value for ${field}: expected a string.`);
  }
  const metadata = body.metadata;
  if (metadata === null) {
    delete out.metadata;
  } else if (metadata !== undefined) {
    if (!isRecord(metadata)) throw invalid('Invalid value for metadata: expected an object.');
    const merged: Record<string, string> = { ...(out.metadata ?? {}) };
    for (const [key, value] of Object.entries(metadata)) {
      if (value === null) delete merged[key];
      else if (typeof value === 'string') merged[key] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') merged[key] = String(value);
      else throw invalid(`Invalid value for metadata.${key}: expected a string.`);
    }
    if (Object.keys(merged).length > 0) out.metadata = merged;
    else delete out.metadata;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Preconditions.

interface Preconditions {
  generationMatch?: bigint;
  generationNotMatch?: bigint;
  metagenerationMatch?: bigint;
  metagenerationNotMatch?: bigint;
}

function parseInt64(query: URLSearchParams, key: string): bigint | undefined {
  const raw = query.get(key);
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d{1,20}$/.test(raw)) throw invalid(`Invalid value for ${key}: ${raw}`);
  return BigInt(raw);
}

/** Reads `ifGenerationMatch`…, or `ifSourceGenerationMatch`… with `prefix = 'ifSource'`. */
function parsePreconditions(query: URLSearchParams, prefix: 'if' | 'ifSource'): Preconditions {
  const p: Preconditions = {};
  const gm = parseInt64(query, `${prefix}GenerationMatch`);
  const gn = parseInt64(query, `${prefix}GenerationNotMatch`);
  const mm = parseInt64(query, `${prefix}MetagenerationMatch`);
  const mn = parseInt64(query, `${prefix}MetagenerationNotMatch`);
  if (gm !== undefined) p.generationMatch = gm;
  if (gn !== undefined) p.generationNotMatch = gn;
  if (mm !== undefined) p.metagenerationMatch = mm;
  if (mn !== undefined) p.metagenerationNotMatch = mn;
  return p;
}

/**
 * Checks preconditions against the live object (undefined when there is none). `ifGenerationMatch=0`
 * means "must not exist". Reads answer 304 for a failed `…NotMatch`, as the real API does.
 */
function checkPreconditions(
  live: StoredObject | undefined,
  p: Preconditions,
  kind: 'read' | 'write',
): void {
  const generation = live ? BigInt(live.generation) : 0n;
  const metageneration = live ? BigInt(live.metageneration) : undefined;
  if (p.generationMatch !== undefined && p.generationMatch !== generation) throw conditionNotMet();
  if (
    p.metagenerationMatch !== undefined &&
    (metageneration === undefined || p.metagenerationMatch !== metageneration)
  ) {
    throw conditionNotMet();
  }
  const notMatchFailed =
    (p.generationNotMatch !== undefined && p.generationNotMatch === generation) ||
    (p.metagenerationNotMatch !== undefined && p.metagenerationNotMatch === metageneration);
  if (notMatchFailed) {
    throw kind === 'read' ? new ApiError(304, 'notModified', 'Not Modified') : conditionNotMet();
  }
}

/** Parses `x-goog-hash: crc32c=…,md5=…`. */
function parseGoogHash(header: string | string[] | undefined): { md5?: string; crc32c?: string } {
  const out: { md5?: string; crc32c?: string } = {};
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const value of values) {
    for (const pair of value.split(',')) {
      const i = pair.indexOf('=');
      if (i < 0) continue;
      const key = pair.slice(0, i).trim().toLowerCase();
      const hash = pair.slice(i + 1).trim();
      if (key === 'md5') out.md5 = hash;
      else if (key === 'crc32c') out.crc32c = hash;
    }
  }
  return out;
}

interface ExpectedHashes {
  md5?: string;
  crc32c?: string;
}

function expectedFromBody(body: Record<string, unknown>): ExpectedHashes {
  const out: ExpectedHashes = {};
  if (typeof body.md5Hash === 'string') out.md5 = body.md5Hash;
  if (typeof body.crc32c === 'string') out.crc32c = body.crc32c;
  return out;
}

function verifyHashes(digest: Digest, ...expected: ExpectedHashes[]): void {
  for (const e of expected) {
    if (e.crc32c !== undefined && e.crc32c !== digest.crc32c) {
      throw invalid(
        `Provided CRC32C "${e.crc32c}" doesn't match calculated CRC32C "${digest.crc32c}".`,
      );
    }
    if (e.md5 !== undefined && e.md5 !== digest.md5Hash) {
      throw invalid(
        `Provided MD5 hash "${e.md5}" doesn't match calculated MD5 hash "${digest.md5Hash}".`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// multipart/related, streamed.

const CRLF = Buffer.from('\r\n');

/** Pulls bytes from a stream and splits them at delimiters without holding more than a chunk. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<unknown>;

  constructor(source: AsyncIterable<unknown>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done === true) {
      this.done = true;
      return false;
    }
    const chunk = toBuffer(next.value);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /** Yields the bytes before the next `delim` and consumes the delimiter. */
  async *until(delim: Buffer): AsyncGenerator<Buffer> {
    for (;;) {
      const at = this.buf.indexOf(delim);
      if (at >= 0) {
        const before = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + delim.length);
        if (before.length > 0) yield before;
        return;
      }
      // Keep a possible partial delimiter at the end for the next round.
      const keep = delim.length - 1;
      if (this.buf.length > keep) {
        const out = this.buf.subarray(0, this.buf.length - keep);
        this.buf = this.buf.subarray(this.buf.length - keep);
        yield out;
      }
      if (!(await this.fill())) throw invalid('The multipart body ended early.');
    }
  }

  async readUntil(delim: Buffer, max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of this.until(delim)) {
      total += chunk.length;
      if (total > max) throw invalid('A multipart part is too large.');
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }

  async peek(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.fill()));
    return this.buf.subarray(0, n);
  }

  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) this.buf = Buffer.alloc(0);
  }
}

function parseBoundary(contentType: string | undefined): string {
  const match = contentType
    ? /^multipart\/related\s*;(?:.*;)?\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)
    : null;
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary)
    throw invalid('Multipart uploads need Content-Type: multipart/related; boundary=…');
  return boundary;
}

/** Reads the headers of a part, after its boundary line. */
async function readPartHeaders(reader: ByteReader): Promise<Map<string, string>> {
  const headers = new Map<string, string>();
  // The rest of the boundary line (transport padding) up to CRLF.
  const line = await reader.readUntil(CRLF, 1024);
  if (line.toString('latin1').startsWith('--'))
    throw invalid('The multipart body has too few parts.');
  if ((await reader.peek(2)).equals(CRLF)) {
    await reader.readUntil(CRLF, 0);
    return headers;
  }
  const block = await reader.readUntil(Buffer.from('\r\n\r\n'), 64 * 1024);
  for (const raw of block.toString('utf8').split('\r\n')) {
    const i = raw.indexOf(':');
    if (i > 0) headers.set(raw.slice(0, i).trim().toLowerCase(), raw.slice(i + 1).trim());
  }
  return headers;
}

// ---------------------------------------------------------------------------------------------
// Requests.

interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: URLSearchParams;
  /** `http://host:port` as the client addressed us, for the resumable session URI. */
  origin: string;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendEmpty(res: ServerResponse, status: number, headers = {}): void {
  res.writeHead(status, { 'Content-Length': 0, ...headers });
  res.end();
}

async function readJsonBody(
  req: IncomingMessage,
  max = 8 * 1024 * 1024,
): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = toBuffer(chunk);
    total += buf.length;
    if (total > max) throw invalid('The request body is too large.');
    chunks.push(buf);
  }
  return parseJsonObject(Buffer.concat(chunks));
}

function parseJsonObject(bytes: Buffer): Record<string, unknown> {
  const text = bytes.toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'parseError', 'Parse Error');
  }
  if (!isRecord(parsed)) throw new ApiError(400, 'parseError', 'Expected a JSON object.');
  return parsed;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalid('The request path is not valid percent-encoding.');
  }
}

/** A parsed `Range: bytes=…` header, or undefined to serve the whole object. */
function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, from = '', to = ''] = match;
  if (from === '' && to === '') return undefined;
  if (size === 0) return undefined;
  if (from === '') {
    const suffix = Number(to);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(from);
  if (start >= size) return 'unsatisfiable';
  const end = to === '' ? size - 1 : Math.min(Number(to), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

/** Parses `Content-Range`: `bytes A-B/T`, a status query `bytes \*\/T`, and the client's `bytes A-\*\/T`. */
function parseContentRange(
  header: string | undefined,
):
  | { kind: 'none' }
  | { kind: 'query'; total?: number }
  | { kind: 'data'; start: number; end?: number; total?: number } {
  if (header === undefined) return { kind: 'none' };
  const match = /^bytes\s+(?:\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(header.trim());
  if (!match) throw invalid(`Invalid Content-Range: ${header}`);
  const [, from, to, totalRaw] = match;
  const total = totalRaw === undefined || totalRaw === '*' ? undefined : Number(totalRaw);
  if (from === undefined) return total === undefined ? { kind: 'query' } : { kind: 'query', total };
  const result: { kind: 'data'; start: number; end?: number; total?: number } = {
    kind: 'data',
    start: Number(from),
  };
  if (to !== undefined && to !== '*') result.end = Number(to);
  if (total !== undefined) result.total = total;
  return result;
}

interface UploadSession {
  id: string;
  bucket: string;
  name: string;
  fields: ObjectFields;
  expected: ExpectedHashes;
  preconditions: Preconditions;
  declaredSize?: number;
  path: string;
  hasher: ContentHasher;
  mutex: Mutex;
  result?: StoredObject;
}

// ---------------------------------------------------------------------------------------------

class Emulator implements StorageEmulator {
  readonly root: string;
  url = '';
  port = 0;
  private readonly buckets = new Map<string, BucketState>();
  private readonly sessions = new Map<string, UploadSession>();
  /**
   * Why one lock: a commit (precondition check, rename into place, sidecar write, index update)
   * must be atomic with respect to other commits, deletes and the snapshot a reader takes before
   * streaming. The critical sections are a few file system calls; uploads stream outside it.
   */
  private readonly lock = new Mutex();
  private lastGeneration = 0;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => this.fail(req, res, err));
  });

  constructor(private readonly options: StorageEmulatorOptions) {
    this.root = resolve(options.root);
    // A 1 GB upload over a slow link must not hit Node's default 5-minute request timeout.
    this.server.requestTimeout = 0;
  }

  private get tmpDir(): string {
    return join(this.root, '.tmp');
  }

  private get uploadsDir(): string {
    return join(this.root, '.uploads');
  }

  private bucketDir(bucket: string): string {
    return join(this.root, bucket);
  }

  private sidecarPath(bucket: string, name: string): string {
    return join(this.root, '.meta', bucket, sidecarFileName(name));
  }

  /** Resolves a stored relative path, refusing anything that would leave the root. */
  private absolute(relPath: string): string {
    const abs = resolve(this.root, ...relPath.split('/'));
    if (!abs.startsWith(this.root + sep)) throw new Error(`path escapes the root: ${relPath}`);
    return abs;
  }

  private log(line: object): void {
    try {
      if (this.options.log) this.options.log(line);
      else process.stderr.write(`${JSON.stringify(line)}\n`);
    } catch {
      // A broken logger must not break a request.
    }
  }

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await rm(this.tmpDir, { recursive: true, force: true });
    await rm(this.uploadsDir, { recursive: true, force: true });
    await this.ensureLayout();
    await this.load();
    await new Promise<void>((resolveListen, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolveListen();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  private async ensureLayout(): Promise<void> {
    for (const dir of [
      this.tmpDir,
      this.uploadsDir,
      join(this.root, '.meta'),
      join(this.root, '.buckets'),
    ]) {
      await mkdir(dir, { recursive: true });
    }
  }

  /** Loads buckets and objects left by an earlier run. */
  private async load(): Promise<void> {
    const bucketFiles = await readdir(join(this.root, '.buckets'));
    for (const file of bucketFiles) {
      if (!file.endsWith('.json')) continue;
      const raw = parseJsonObject(await readFile(join(this.root, '.buckets', file)));
      const name = raw.name;
      if (typeof name !== 'string' || !isValidBucketName(name) || `${name}.json` !== file) continue;
      const record: StoredBucket = {
        name,
        timeCreated:
          typeof raw.timeCreated === 'string' ? raw.timeCreated : new Date().toISOString(),
      };
      const state: BucketState = { record, objects: new Map() };
      this.buckets.set(name, state);
      const metaDir = join(this.root, '.meta', name);
      await mkdir(metaDir, { recursive: true });
      await mkdir(this.bucketDir(name), { recursive: true });
      for (const metaFile of await readdir(metaDir)) {
        if (!metaFile.endsWith('.json')) continue;
        const stored = this.parseSidecar(await readFile(join(metaDir, metaFile)), name);
        if (!stored || sidecarFileName(stored.name) !== metaFile) continue;
        try {
          const info = await stat(this.absolute(stored.dataPath));
          if (!info.isFile()) continue;
        } catch {
          continue;
        }
        state.objects.set(stored.name, stored);
        this.lastGeneration = Math.max(this.lastGeneration, Number(stored.generation));
      }
    }
  }

  private parseSidecar(bytes: Buffer, bucket: string): StoredObject | undefined {
    let raw: Record<string, unknown>;
    try {
      raw = parseJsonObject(bytes);
    } catch {
      return undefined;
    }
    const str = (key: string): string | undefined =>
      typeof raw[key] === 'string' ? raw[key] : undefined;
    const name = str('name');
    const generation = str('generation');
    const metageneration = str('metageneration');
    const md5Hash = str('md5Hash');
    const crc32c = str('crc32c');
    const timeCreated = str('timeCreated');
    const updated = str('updated');
    const dataPath = str('dataPath');
    const size = raw.size;
    if (
      name === undefined ||
      generation === undefined ||
      !/^\d+$/.test(generation) ||
      metageneration === undefined ||
      !/^\d+$/.test(metageneration) ||
      md5Hash === undefined ||
      crc32c === undefined ||
      timeCreated === undefined ||
      updated === undefined ||
      dataPath === undefined ||
      !dataPath.startsWith(`${bucket}/`) ||
      dataPath.split('/').some((s) => s === '..' || s === '.' || s === '') ||
      typeof size !== 'number'
    ) {
      return undefined;
    }
    let fields: ObjectFields = {};
    try {
      fields = isRecord(raw.fields) ? patchFields({}, raw.fields) : {};
    } catch {
      return undefined;
    }
    return {
      bucket,
      name,
      generation,
      metageneration,
      size,
      md5Hash,
      crc32c,
      timeCreated,
      updated,
      fields,
      dataPath,
    };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolveClose) => {
      this.server.close(() => resolveClose());
      this.server.closeAllConnections();
    });
  }

  async createBucket(name: string): Promise<void> {
    await this.lock.run(async () => {
      if (this.buckets.has(name)) return;
      await this.insertBucket(name);
    });
  }

  objectPath(bucket: string, name: string): string | undefined {
    const stored = this.buckets.get(bucket)?.objects.get(name);
    return stored ? this.absolute(stored.dataPath) : undefined;
  }

  async reset(): Promise<void> {
    await this.lock.run(async () => {
      this.buckets.clear();
      this.sessions.clear();
      for (const entry of await readdir(this.root)) {
        await rm(join(this.root, entry), { recursive: true, force: true });
      }
      await this.ensureLayout();
    });
  }

  /** Must run under the lock. */
  private async insertBucket(name: string): Promise<StoredBucket> {
    if (!isValidBucketName(name)) throw invalid(`Invalid bucket name: '${name}'`);
    const record: StoredBucket = { name, timeCreated: new Date().toISOString() };
    await mkdir(this.bucketDir(name), { recursive: true });
    await mkdir(join(this.root, '.meta', name), { recursive: true });
    await this.writeAtomic(join(this.root, '.buckets', `${name}.json`), JSON.stringify(record));
    this.buckets.set(name, { record, objects: new Map() });
    return record;
  }

  private async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = this.tmpPath();
    await writeFile(tmp, text);
    await rename(tmp, path);
  }

  private tmpPath(): string {
    return join(this.tmpDir, randomUUID());
  }

  private nextGeneration(): string {
    // Microseconds since the epoch, strictly increasing (fits a double exactly until year 2255).
    this.lastGeneration = Math.max(this.lastGeneration + 1, Date.now() * 1000);
    return String(this.lastGeneration);
  }

  private requireBucket(name: string): BucketState {
    const state = this.buckets.get(name);
    if (!state) throw noSuchBucket();
    return state;
  }

  private bucketResource(b: StoredBucket): Record<string, unknown> {
    return {
      kind: 'storage#bucket',
      selfLink: `${this.url}/storage/v1/b/${encodeURIComponent(b.name)}`,
      id: b.name,
      name: b.name,
      projectNumber: '0',
      metageneration: '1',
      location: 'US',
      locationType: 'multi-region',
      storageClass: 'STANDARD',
      etag: 'CAE=',
      timeCreated: b.timeCreated,
      updated: b.timeCreated,
    };
  }

  private resource(o: StoredObject): ObjectResource {
    const bucket = encodeURIComponent(o.bucket);
    const name = encodeURIComponent(o.name);
    const r: ObjectResource = {
      kind: 'storage#object',
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${this.url}/storage/v1/b/${bucket}/o/${name}`,
      mediaLink: `${this.url}/download/storage/v1/b/${bucket}/o/${name}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: o.generation,
      metageneration: o.metageneration,
      contentType: o.fields.contentType ?? 'application/octet-stream',
      storageClass: 'STANDARD',
      size: String(o.size),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: etagOf(o.generation, o.metageneration),
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
    };
    for (const field of WRITABLE_FIELDS) {
      const value = o.fields[field];
      if (field !== 'contentType' && value !== undefined) r[field] = value;
    }
    if (o.fields.metadata && Object.keys(o.fields.metadata).length > 0) {
      r.metadata = { ...o.fields.metadata };
    }
    return r;
  }

  /** The live object, or 404; `generation` (when given) must be the live one. */
  private liveObject(bucket: string, name: string, generation: string | null): StoredObject {
    const stored = this.requireBucket(bucket).objects.get(name);
    if (!stored) throw noSuchObject(bucket, name);
    if (generation !== null && generation !== '') {
      if (!/^\d+$/.test(generation)) throw invalid(`Invalid value for generation: ${generation}`);
      if (BigInt(generation) !== BigInt(stored.generation)) throw noSuchObject(bucket, name);
    }
    return stored;
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (!(err instanceof ApiError)) {
      const aborted = req.destroyed || req.readableAborted;
      if (!aborted) {
        this.log({
          severity: 'ERROR',
          message: 'storage emulator request failed',
          event: 'storage-emulator.error',
          method: req.method,
          url: req.url,
          error:
            err instanceof Error
              ? { name: err.name, message: err.message, stack: err.stack }
              : String(err),
        });
      }
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const apiError =
      err instanceof ApiError
        ? err
        : new ApiError(500, 'backendError', err instanceof Error ? err.message : 'Internal error');
    // An unread request body would otherwise be read and discarded before the next request.
    if (!req.complete) res.setHeader('Connection', 'close');
    if (apiError.code === 304) {
      sendEmpty(res, 304);
      return;
    }
    sendJson(res, apiError.code, {
      error: {
        code: apiError.code,
        message: apiError.message,
        errors: [{ message: apiError.message, domain: 'global', reason: apiError.reason }],
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Routing.

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    // Split the raw path ourselves: URL parsing would resolve `.`/`..` segments and change names.
    const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const query = new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : '');
    const override = req.headers['x-http-method-override'];
    const method = (
      req.method === 'POST' && typeof override === 'string' ? override : (req.method ?? 'GET')
    ).toUpperCase();
    const ctx: RequestContext = {
      req,
      res,
      method,
      query,
      origin: `http://${req.headers.host ?? `127.0.0.1:${this.port}`}`,
    };

    if (rawPath === '/' || rawPath === '') {
      if (method !== 'GET' && method !== 'HEAD')
        throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 2 });
      res.end('Ok');
      return;
    }

    let segments = rawPath.split('/').slice(1);
    let mode: 'json' | 'upload' | 'download' = 'json';
    if (segments[0] === 'upload' || segments[0] === 'download') {
      mode = segments[0];
      segments = segments.slice(1);
    }
    if (segments[0] === 'storage' && segments[1] === 'v1') segments = segments.slice(2);
    if (segments[0] !== 'b') throw notFound('Not Found');

    if (segments.length === 1) return this.routeBuckets(ctx);
    const bucket = decodeSegment(segments[1] ?? '');
    if (segments.length === 2) return this.routeBucket(ctx, bucket);
    if (segments[2] !== 'o') throw notFound('Not Found');
    if (segments.length === 3 || (segments.length === 4 && segments[3] === '')) {
      return this.routeObjects(ctx, bucket, mode);
    }
    return this.routeObject(ctx, bucket, segments.slice(3), mode);
  }

  private async routeBuckets(ctx: RequestContext): Promise<void> {
    if (ctx.method === 'GET') {
      const prefix = ctx.query.get('prefix') ?? '';
      const items = [...this.buckets.values()]
        .map((b) => b.record)
        .filter((b) => b.name.startsWith(prefix))
        .sort((a, b) => compareNames(a.name, b.name))
        .map((b) => this.bucketResource(b));
      sendJson(ctx.res, 200, { kind: 'storage#buckets', items });
      return;
    }
    if (ctx.method === 'POST') {
      const body = await readJsonBody(ctx.req);
      const name = body.name;
      if (typeof name !== 'string' || name === '')
        throw new ApiError(400, 'required', 'Required: bucket name');
      const record = await this.lock.run(async () => {
        if (this.buckets.has(name)) {
          throw new ApiError(
            409,
            'conflict',
            'Your previous request to create the named bucket succeeded and you already own it.',
          );
        }
        return this.insertBucket(name);
      });
      sendJson(ctx.res, 200, this.bucketResource(record));
      return;
    }
    throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
  }

  private async routeBucket(ctx: RequestContext, bucket: string): Promise<void> {
    if (ctx.method === 'GET') {
      sendJson(ctx.res, 200, this.bucketResource(this.requireBucket(bucket).record));
      return;
    }
    if (ctx.method === 'DELETE') {
      await this.lock.run(async () => {
        const state = this.requireBucket(bucket);
        if (state.objects.size > 0) {
          throw new ApiError(409, 'conflict', 'The bucket you tried to delete is not empty.');
        }
        this.buckets.delete(bucket);
        await rm(this.bucketDir(bucket), { recursive: true, force: true });
        await rm(join(this.root, '.meta', bucket), { recursive: true, force: true });
        await rm(join(this.root, '.buckets', `${bucket}.json`), { force: true });
      });
      sendEmpty(ctx.res, 204);
      return;
    }
    throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
  }

  private async routeObjects(ctx: RequestContext, bucket: string, mode: string): Promise<void> {
    const uploadType = ctx.query.get('uploadType');
    const uploadId = ctx.query.get('upload_id');
    if (uploadId !== null) {
      if (ctx.method === 'PUT' || ctx.method === 'POST') return this.resumableChunk(ctx, uploadId);
      if (ctx.method === 'DELETE') return this.resumableCancel(ctx, uploadId);
      throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
    }
    if (ctx.method === 'GET') {
      this.listObjects(ctx, bucket);
      return;
    }
    if (ctx.method === 'POST' && (mode === 'upload' || uploadType !== null)) {
      if (uploadType === 'resumable') return this.resumableStart(ctx, bucket);
      if (uploadType === 'multipart' || uploadType === 'media' || uploadType === null) {
        return this.simpleUpload(ctx, bucket, uploadType ?? 'media');
      }
      throw invalid(`Unsupported uploadType: ${uploadType}`);
    }
    if (ctx.method === 'POST') {
      throw new ApiError(400, 'invalid', 'Object inserts go to /upload/storage/v1/b/BUCKET/o.');
    }
    throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
  }

  private async routeObject(
    ctx: RequestContext,
    bucket: string,
    raw: string[],
    mode: string,
  ): Promise<void> {
    if (ctx.method === 'POST') {
      // Clients encode `/` in names, so operation keywords are whole segments.
      for (let i = 1; i < raw.length; i++) {
        const op = raw[i];
        if (
          (op === 'rewriteTo' || op === 'copyTo') &&
          raw[i + 1] === 'b' &&
          raw[i + 3] === 'o' &&
          raw.length > i + 4
        ) {
          const source = raw.slice(0, i).map(decodeSegment).join('/');
          const destBucket = decodeSegment(raw[i + 2] ?? '');
          const dest = raw
            .slice(i + 4)
            .map(decodeSegment)
            .join('/');
          return this.copyObject(ctx, bucket, source, destBucket, dest, op);
        }
        if (op === 'moveTo' && raw[i + 1] === 'o' && raw.length > i + 2) {
          const source = raw.slice(0, i).map(decodeSegment).join('/');
          const dest = raw
            .slice(i + 2)
            .map(decodeSegment)
            .join('/');
          return this.copyObject(ctx, bucket, source, bucket, dest, 'moveTo');
        }
      }
      if (raw[raw.length - 1] === 'compose') {
        throw new ApiError(501, 'notImplemented', 'compose is not implemented by this emulator.');
      }
      throw notFound('Not Found');
    }
    const name = raw.map(decodeSegment).join('/');
    switch (ctx.method) {
      case 'GET':
      case 'HEAD':
        if (mode === 'download' || ctx.query.get('alt') === 'media')
          return this.download(ctx, bucket, name);
        this.getMetadata(ctx, bucket, name);
        return;
      case 'PATCH':
      case 'PUT':
        return this.updateMetadata(ctx, bucket, name, ctx.method === 'PUT');
      case 'DELETE':
        return this.deleteObject(ctx, bucket, name);
      default:
        throw new ApiError(405, 'methodNotAllowed', 'Method not allowed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads.

  private getMetadata(ctx: RequestContext, bucket: string, name: string): void {
    const stored = this.liveObject(bucket, name, ctx.query.get('generation'));
    checkPreconditions(stored, parsePreconditions(ctx.query, 'if'), 'read');
    sendJson(ctx.res, 200, this.resource(stored));
  }

  private async download(ctx: RequestContext, bucket: string, name: string): Promise<void> {
    const { stored, handle } = await this.lock.run(async () => {
      const live = this.liveObject(bucket, name, ctx.query.get('generation'));
      checkPreconditions(live, parsePreconditions(ctx.query, 'if'), 'read');
      // Open under the lock: the descriptor keeps these bytes even if a new generation is renamed
      // over the path right after.
      return { stored: live, handle: await open(this.absolute(live.dataPath), 'r') };
    });
    let stream: Readable | undefined;
    try {
      const res = ctx.res;
      const storedEncoding = stored.fields.contentEncoding;
      const headers: Record<string, string | number> = {
        'Content-Type': stored.fields.contentType ?? 'application/octet-stream',
        'Accept-Ranges': 'bytes',
        ETag: `"${Buffer.from(stored.md5Hash, 'base64').toString('hex')}"`,
        'Last-Modified': new Date(stored.updated).toUTCString(),
        'Cache-Control':
          stored.fields.cacheControl ?? 'no-cache, no-store, max-age=0, must-revalidate',
        'x-goog-generation': stored.generation,
        'x-goog-metageneration': stored.metageneration,
        'x-goog-stored-content-encoding': storedEncoding ?? 'identity',
        'x-goog-stored-content-length': stored.size,
        'x-goog-hash': `crc32c=${stored.crc32c},md5=${stored.md5Hash}`,
        'x-goog-storage-class': 'STANDARD',
      };
      if (stored.fields.contentDisposition)
        headers['Content-Disposition'] = stored.fields.contentDisposition;
      if (stored.fields.contentLanguage)
        headers['Content-Language'] = stored.fields.contentLanguage;
      const acceptsGzip = /\bgzip\b/i.test(String(ctx.req.headers['accept-encoding'] ?? ''));
      if (storedEncoding === 'gzip' && !acceptsGzip) {
        // Decompressive transcoding, as Cloud Storage does for clients that do not accept gzip.
        res.writeHead(200, headers);
        if (ctx.method === 'HEAD') {
          res.end();
          return;
        }
        stream = handle.createReadStream();
        await pipeline(stream, createGunzip(), res);
        return;
      }
      if (storedEncoding) headers['Content-Encoding'] = storedEncoding;
      const range = parseRange(
        typeof ctx.req.headers.range === 'string' ? ctx.req.headers.range : undefined,
        stored.size,
      );
      if (range === 'unsatisfiable') {
        throw new ApiError(416, 'requestedRangeNotSatisfiable', 'Request range not satisfiable');
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? stored.size - 1;
      headers['Content-Length'] = Math.max(0, end - start + 1);
      if (range) headers['Content-Range'] = `bytes ${start}-${end}/${stored.size}`;
      res.writeHead(range ? 206 : 200, headers);
      if (ctx.method === 'HEAD' || stored.size === 0) {
        res.end();
        return;
      }
      stream = handle.createReadStream({ start, end });
      await pipeline(stream, res);
    } finally {
      if (!stream) await handle.close();
    }
  }

  private listObjects(ctx: RequestContext, bucket: string): void {
    const state = this.requireBucket(bucket);
    const q = ctx.query;
    if (q.get('matchGlob'))
      throw new ApiError(501, 'notImplemented', 'matchGlob is not implemented by this emulator.');
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const startOffset = q.get('startOffset') ?? '';
    const endOffset = q.get('endOffset') ?? '';
    const includeTrailing = q.get('includeTrailingDelimiter') === 'true';
    const maxRaw = q.get('maxResults');
    let maxResults = 1000;
    if (maxRaw !== null && maxRaw !== '') {
      if (!/^\d+$/.test(maxRaw)) throw invalid(`Invalid value for maxResults: ${maxRaw}`);
      maxResults = Math.min(1000, Math.max(1, Number(maxRaw)));
    }
    const after = decodePageToken(q.get('pageToken'));

    const names = [...state.objects.keys()]
      .filter((n) => n.startsWith(prefix))
      .filter((n) => startOffset === '' || compareNames(n, startOffset) >= 0)
      .filter((n) => endOffset === '' || compareNames(n, endOffset) < 0)
      .sort(compareNames);

    const items: ObjectResource[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let lastKey: { key: string; prefix: boolean } | undefined;
    let nextPageToken: string | undefined;
    for (const name of names) {
      if (after) {
        if (compareNames(name, after.key) <= 0) continue;
        if (after.prefix && name.startsWith(after.key)) continue;
      }
      let key = name;
      let isPrefix = false;
      if (delimiter !== '') {
        const at = name.indexOf(delimiter, prefix.length);
        if (at >= 0) {
          key = name.slice(0, at + delimiter.length);
          isPrefix = true;
        }
      }
      if (isPrefix && lastKey?.prefix && lastKey.key === key) {
        continue;
      }
      if (count >= maxResults) {
        if (lastKey) nextPageToken = encodePageToken(lastKey);
        break;
      }
      count++;
      lastKey = { key, prefix: isPrefix };
      if (isPrefix) {
        prefixes.push(key);
        if (includeTrailing && name === key) {
          const stored = state.objects.get(name);
          if (stored) items.push(this.resource(stored));
        }
      } else {
        const stored = state.objects.get(name);
        if (stored) items.push(this.resource(stored));
      }
    }
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (nextPageToken) body.nextPageToken = nextPageToken;
    if (prefixes.length > 0) body.prefixes = prefixes;
    body.items = items;
    sendJson(ctx.res, 200, body);
  }

  // -------------------------------------------------------------------------------------------
  // Writes.

  /**
   * Puts `tmpPath` in place as the new live generation of `bucket/name`, atomically with the
   * precondition check, then calls the finalize hook.
   */
  private async commit(spec: {
    bucket: string;
    name: string;
    fields: ObjectFields;
    preconditions: Preconditions;
    digest: Digest;
    tmpPath: string;
    /** For moveTo: the source generation to delete in the same critical section. */
    moveSource?: StoredObject;
  }): Promise<StoredObject> {
    const stored = await this.lock.run(async () => {
      const state = this.requireBucket(spec.bucket);
      const live = state.objects.get(spec.name);
      checkPreconditions(live, spec.preconditions, 'write');
      const source = spec.moveSource;
      if (source && state.objects.get(source.name)?.generation !== source.generation) {
        throw conditionNotMet();
      }
      const generation = this.nextGeneration();
      const now = new Date().toISOString();
      const dataPath = await this.place(spec.bucket, spec.name, spec.tmpPath);
      if (live && live.dataPath !== dataPath) await this.removeData(live);
      const record: StoredObject = {
        bucket: spec.bucket,
        name: spec.name,
        generation,
        metageneration: '1',
        size: spec.digest.size,
        md5Hash: spec.digest.md5Hash,
        crc32c: spec.digest.crc32c,
        timeCreated: now,
        updated: now,
        fields: spec.fields,
        dataPath,
      };
      await this.writeSidecar(record);
      state.objects.set(spec.name, record);
      if (source) await this.removeObject(state, source);
      return record;
    });
    this.finalized(stored);
    return stored;
  }

  private finalized(stored: StoredObject): void {
    if (!this.options.onFinalize) return;
    try {
      this.options.onFinalize(this.resource(stored));
    } catch (err) {
      this.log({
        severity: 'ERROR',
        message: 'onFinalize hook threw',
        event: 'storage-emulator.finalize-hook-failed',
        bucket: stored.bucket,
        object: stored.name,
        generation: stored.generation,
        error:
          err instanceof Error
            ? { name: err.name, message: err.message, stack: err.stack }
            : String(err),
      });
    }
  }

  /**
   * Renames the temporary file to the object's file path; names that are not safe relative paths,
   * or that collide with another object's file or folder (`a` and `a/b`), go to `.encoded/`.
   * Returns the root-relative path. Runs under the lock.
   */
  private async place(bucket: string, name: string, tmpPath: string): Promise<string> {
    const bucketDir = this.bucketDir(bucket);
    if (isSafeRelativePath(name)) {
      const target = join(bucketDir, ...name.split('/'));
      if (target.startsWith(bucketDir + sep)) {
        try {
          await mkdir(dirname(target), { recursive: true });
          await rename(tmpPath, target);
          return relative(this.root, target).split(sep).join('/');
        } catch (err) {
          const code = errnoCode(err);
          const collision = [
            'EEXIST',
            'ENOTDIR',
            'EISDIR',
            'ENOTEMPTY',
            'ENAMETOOLONG',
            'EINVAL',
            'EILSEQ',
          ];
          if (code === undefined || !collision.includes(code)) throw err;
        }
      }
    }
    const encodedDir = join(bucketDir, ENCODED_DIR);
    await mkdir(encodedDir, { recursive: true });
    const target = join(encodedDir, sha256Hex(name));
    await rename(tmpPath, target);
    return relative(this.root, target).split(sep).join('/');
  }

  private async writeSidecar(record: StoredObject): Promise<void> {
    await this.writeAtomic(this.sidecarPath(record.bucket, record.name), JSON.stringify(record));
  }

  /** Deletes an object's bytes and the folders that become empty. Runs under the lock. */
  private async removeData(record: StoredObject): Promise<void> {
    const abs = this.absolute(record.dataPath);
    await ignoreMissing(unlink(abs));
    const bucketDir = this.bucketDir(record.bucket);
    let dir = dirname(abs);
    while (dir.startsWith(bucketDir + sep)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
      dir = dirname(dir);
    }
  }

  private async removeObject(state: BucketState, record: StoredObject): Promise<void> {
    await this.removeData(record);
    await ignoreMissing(unlink(this.sidecarPath(record.bucket, record.name)));
    state.objects.delete(record.name);
  }

  private async simpleUpload(
    ctx: RequestContext,
    bucket: string,
    uploadType: 'multipart' | 'media',
  ): Promise<void> {
    this.requireBucket(bucket);
    const { req, query } = ctx;
    let fields: ObjectFields;
    let expected: ExpectedHashes = {};
    let name = query.get('name') ?? undefined;
    let media: AsyncIterable<unknown>;
    let reader: ByteReader | undefined;
    if (uploadType === 'multipart') {
      const boundary = parseBoundary(req.headers['content-type']);
      reader = new ByteReader(req);
      // Skip any preamble, then the JSON part, then stream the media part.
      await reader.readUntil(Buffer.from(`--${boundary}`), 64 * 1024);
      await readPartHeaders(reader);
      const delimiter = Buffer.from(`\r\n--${boundary}`);
      const body = parseJsonObject(await reader.readUntil(delimiter, 8 * 1024 * 1024));
      const mediaHeaders = await readPartHeaders(reader);
      fields = patchFields({}, body);
      fields.contentType ??= mediaHeaders.get('content-type');
      if (fields.contentType === undefined) delete fields.contentType;
      expected = expectedFromBody(body);
      if (name === undefined && typeof body.name === 'string') name = body.name;
      media = reader.until(delimiter);
    } else {
      fields = {};
      const contentType = req.headers['content-type'];
      if (contentType) fields.contentType = contentType;
      media = req;
    }
    const objectName = validateObjectName(name);
    const tmp = this.tmpPath();
    try {
      const hasher = new ContentHasher();
      await pipeline(media, hashingTransform(hasher), createWriteStream(tmp));
      if (reader) await reader.drain();
      const digest = hasher.digest();
      verifyHashes(digest, expected, parseGoogHash(req.headers['x-goog-hash']));
      const stored = await this.commit({
        bucket,
        name: objectName,
        fields,
        preconditions: parsePreconditions(query, 'if'),
        digest,
        tmpPath: tmp,
      });
      sendJson(ctx.res, 200, this.resource(stored));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async resumableStart(ctx: RequestContext, bucket: string): Promise<void> {
    this.requireBucket(bucket);
    const body = await readJsonBody(ctx.req);
    const nameParam =
      ctx.query.get('name') ?? (typeof body.name === 'string' ? body.name : undefined);
    const name = validateObjectName(nameParam);
    const fields = patchFields({}, body);
    const headerType = ctx.req.headers['x-upload-content-type'];
    if (fields.contentType === undefined && typeof headerType === 'string')
      fields.contentType = headerType;
    const preconditions = parsePreconditions(ctx.query, 'if');
    // Fail early, as Cloud Storage does; the check is repeated when the upload completes.
    checkPreconditions(this.buckets.get(bucket)?.objects.get(name), preconditions, 'write');
    const id = randomBytes(16).toString('hex');
    const session: UploadSession = {
      id,
      bucket,
      name,
      fields,
      expected: expectedFromBody(body),
      preconditions,
      path: join(this.uploadsDir, id),
      hasher: new ContentHasher(),
      mutex: new Mutex(),
    };
    const declared = ctx.req.headers['x-upload-content-length'];
    if (typeof declared === 'string' && /^\d+$/.test(declared))
      session.declaredSize = Number(declared);
    await writeFile(session.path, '');
    this.sessions.set(id, session);
    const location =
      `${ctx.origin}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o` +
      `?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    sendEmpty(ctx.res, 200, { Location: location, 'X-GUploader-UploadID': id });
  }

  private async resumableCancel(ctx: RequestContext, id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) throw notFound('No such upload session.');
    await session.mutex.run(async () => {
      this.sessions.delete(id);
      await rm(session.path, { force: true });
    });
    sendEmpty(ctx.res, 499);
  }

  private async resumableChunk(ctx: RequestContext, id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) throw notFound('No such upload session.');
    // One request at a time per session: a retried chunk must not interleave with the original.
    await session.mutex.run(() => this.resumableChunkLocked(ctx, session));
  }

  private async resumableChunkLocked(ctx: RequestContext, session: UploadSession): Promise<void> {
    const { req, res } = ctx;
    if (session.result) {
      await drain(req);
      sendJson(res, 200, this.resource(session.result));
      return;
    }
    if (!this.sessions.has(session.id)) throw notFound('No such upload session.');
    const range = parseContentRange(
      typeof req.headers['content-range'] === 'string' ? req.headers['content-range'] : undefined,
    );
    let total: number | undefined;
    if (range.kind === 'query') {
      await drain(req);
      total = range.total;
    } else {
      const start = range.kind === 'data' ? range.start : 0;
      const received = session.hasher.size;
      if (start > received) {
        await drain(req);
        throw invalid(
          `Invalid request: the chunk starts at ${start}, but ${received} bytes were received.`,
        );
      }
      try {
        await pipeline(
          req,
          skipTransform(received - start),
          hashingTransform(session.hasher),
          createWriteStream(session.path, { flags: 'a' }),
        );
      } catch (err) {
        // The hash state may be ahead of what reached the disk: rebuild it from the file.
        session.hasher = await rehash(session.path);
        throw err;
      }
      if (range.kind === 'none') total = session.hasher.size;
      else if (range.total !== undefined) total = range.total;
      else if (range.end === undefined) total = session.hasher.size; // `bytes A-*/*`: all in one request.
    }
    const size = session.hasher.size;
    if (total !== undefined && size > total) {
      throw invalid(`Received ${size} bytes, more than the declared total of ${total}.`);
    }
    if (total === undefined || size < total) {
      sendEmpty(res, 308, size > 0 ? { Range: `bytes=0-${size - 1}` } : {});
      return;
    }
    if (session.declaredSize !== undefined && session.declaredSize !== size) {
      throw invalid(
        `X-Upload-Content-Length was ${session.declaredSize}, but ${size} bytes were sent.`,
      );
    }
    const digest = session.hasher.digest();
    try {
      verifyHashes(digest, session.expected, parseGoogHash(req.headers['x-goog-hash']));
      const stored = await this.commit({
        bucket: session.bucket,
        name: session.name,
        fields: session.fields,
        preconditions: session.preconditions,
        digest,
        tmpPath: session.path,
      });
      session.result = stored;
      sendJson(res, 200, this.resource(stored));
    } catch (err) {
      // A completed upload that cannot be committed ends the session, as in Cloud Storage.
      this.sessions.delete(session.id);
      await rm(session.path, { force: true });
      throw err;
    }
  }

  private async copyObject(
    ctx: RequestContext,
    srcBucket: string,
    srcName: string,
    dstBucket: string,
    dstName: string,
    op: 'rewriteTo' | 'copyTo' | 'moveTo',
  ): Promise<void> {
    const body = await readJsonBody(ctx.req);
    validateObjectName(dstName);
    this.requireBucket(dstBucket);
    const sourceGeneration = ctx.query.get('sourceGeneration') ?? ctx.query.get('generation');
    const { source, handle } = await this.lock.run(async () => {
      const live = this.liveObject(srcBucket, srcName, sourceGeneration);
      checkPreconditions(live, parsePreconditions(ctx.query, 'ifSource'), 'write');
      return { source: live, handle: await open(this.absolute(live.dataPath), 'r') };
    });
    const tmp = this.tmpPath();
    try {
      await pipeline(handle.createReadStream(), createWriteStream(tmp));
      const stored = await this.commit({
        bucket: dstBucket,
        name: dstName,
        // The destination starts from the source's metadata; the body patches it.
        fields: patchFields(source.fields, body),
        preconditions: parsePreconditions(ctx.query, 'if'),
        digest: { size: source.size, md5Hash: source.md5Hash, crc32c: source.crc32c },
        tmpPath: tmp,
        ...(op === 'moveTo' ? { moveSource: source } : {}),
      });
      const resource = this.resource(stored);
      if (op === 'rewriteTo') {
        sendJson(ctx.res, 200, {
          kind: 'storage#rewriteResponse',
          totalBytesRewritten: String(stored.size),
          objectSize: String(stored.size),
          done: true,
          resource,
        });
      } else {
        sendJson(ctx.res, 200, resource);
      }
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async updateMetadata(
    ctx: RequestContext,
    bucket: string,
    name: string,
    replace: boolean,
  ): Promise<void> {
    const body = await readJsonBody(ctx.req);
    const stored = await this.lock.run(async () => {
      const live = this.liveObject(bucket, name, ctx.query.get('generation'));
      checkPreconditions(live, parsePreconditions(ctx.query, 'if'), 'write');
      const base: ObjectFields = replace ? {} : live.fields;
      const fields = patchFields(
        base,
        replace ? { ...body, metadata: body.metadata ?? null } : body,
      );
      if (replace && fields.contentType === undefined && live.fields.contentType !== undefined) {
        fields.contentType = live.fields.contentType;
      }
      const record: StoredObject = {
        ...live,
        fields,
        metageneration: String(BigInt(live.metageneration) + 1n),
        updated: new Date().toISOString(),
      };
      await this.writeSidecar(record);
      this.requireBucket(bucket).objects.set(name, record);
      return record;
    });
    sendJson(ctx.res, 200, this.resource(stored));
  }

  private async deleteObject(ctx: RequestContext, bucket: string, name: string): Promise<void> {
    await this.lock.run(async () => {
      const live = this.liveObject(bucket, name, ctx.query.get('generation'));
      checkPreconditions(live, parsePreconditions(ctx.query, 'if'), 'write');
      await this.removeObject(this.requireBucket(bucket), live);
    });
    sendEmpty(ctx.res, 204);
  }
}

/** Reads and discards the rest of a request body. */
async function drain(req: IncomingMessage): Promise<void> {
  req.resume();
  await finished(req);
}

async function rehash(path: string): Promise<ContentHasher> {
  const hasher = new ContentHasher();
  try {
    for await (const chunk of createReadStream(path)) hasher.update(toBuffer(chunk));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  return hasher;
}

function encodePageToken(last: { key: string; prefix: boolean }): string {
  return Buffer.from(JSON.stringify({ k: last.key, p: last.prefix }), 'utf8').toString('base64url');
}

function decodePageToken(token: string | null): { key: string; prefix: boolean } | undefined {
  if (token === null || token === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isRecord(parsed) && typeof parsed.k === 'string' && typeof parsed.p === 'boolean') {
      return { key: parsed.k, prefix: parsed.p };
    }
  } catch {
    // fall through
  }
  throw invalid('Invalid pageToken.');
}

/**
 * Starts the emulator on 127.0.0.1 and loads any buckets and objects already under `root`.
 * Use `url` as `STORAGE_EMULATOR_HOST` or as the client's `apiEndpoint`.
 */
export async function startStorageEmulator(
  options: StorageEmulatorOptions,
): Promise<StorageEmulator> {
  const emulator = new Emulator(options);
  await emulator.start();
  return emulator;
}
