/**
 * The storage emulator's objects: the bytes on disk, so a user can open results in a file
 * browser; their metadata in memory. Layout under `root`:
 *
 *     <root>/<bucket>/<object name>      live bytes, when the name is a safe relative path
 *     <root>/<bucket>/.encoded/<sha256>  live bytes of any other name (`../x`, `a//b`, `dir/`)
 *     <root>/.tmp/, <root>/.uploads/     uploads in progress (cleared at start)
 *
 * Only the live generation is kept. Bytes are written to a temporary file and renamed into place,
 * so a reader never sees half an object. An emulator starts with no objects: files an earlier run
 * left stay on disk, but are not served.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { CRC32C } from '@google-cloud/storage';
import { HttpError, isObject } from '../http.js';

/** What a client sets on an object. */
export interface ObjectFields {
  contentType?: string;
  contentEncoding?: string;
  /** Custom metadata (`x-goog-meta-*`). */
  metadata?: Record<string, string>;
}

/** Where a new generation goes, and its precondition (`"0"`: the object must not exist). */
export interface Target {
  bucket: string;
  name: string;
  fields: ObjectFields;
  ifGenerationMatch: string | null;
}

/** A live object; hashes are base64 (CRC32C big-endian). */
export interface StoredObject {
  bucket: string;
  name: string;
  generation: string;
  timeCreated: string;
  fields: ObjectFields;
  size: number;
  md5Hash: string;
  crc32c: string;
  /** The file that holds the bytes. */
  path: string;
}

/** Size and hashes of an object's bytes. */
export type Digest = Pick<StoredObject, 'size' | 'md5Hash' | 'crc32c'>;

export const storageError = (code: number, reason: string, message: string): HttpError =>
  new HttpError(code, message, { reason });

/** Object fields from a JSON resource body, over `base`; custom metadata values become strings. */
export function fieldsOf(body: unknown, base: ObjectFields = {}): ObjectFields {
  const out: ObjectFields = { ...base };
  if (!isObject(body)) return out;
  if (typeof body.contentType === 'string') out.contentType = body.contentType;
  if (typeof body.contentEncoding === 'string') out.contentEncoding = body.contentEncoding;
  if (isObject(body.metadata)) {
    const set = Object.entries(body.metadata).filter(([, v]) => v !== null && v !== undefined);
    out.metadata = { ...out.metadata, ...Object.fromEntries(set.map(([k, v]) => [k, String(v)])) };
  }
  return out;
}

/** Base64 of the big-endian CRC32C of `data`, as in the `crc32c` field and `x-goog-hash`. */
export function crc32cBase64(data: Buffer): string {
  const crc = new CRC32C();
  crc.update(data);
  return crc.toString();
}

/**
 * Object names as Cloud Storage accepts them: 1–1024 bytes of UTF-8, no carriage return or line
 * feed, not `.` or `..`. Everything else (spaces, unicode, `/`, `../` inside) is legal.
 */
export function checkObjectName(name: string | undefined): string {
  if (!name) throw storageError(400, 'required', 'Required: object name');
  if (Buffer.byteLength(name) > 1024 || /[\r\n]/.test(name) || name === '.' || name === '..') {
    throw storageError(400, 'invalid', `Invalid object name: ${JSON.stringify(name)}`);
  }
  return name;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Whether a name can be its own path under the bucket folder: no empty, `.` or `..` segment. */
function isSafePath(name: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (name.includes('\\') || /[\u0000-\u001f\u007f]/.test(name)) return false;
  const segments = name.split('/');
  return (
    segments[0] !== '.encoded' &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..' && Buffer.byteLength(s) <= 255)
  );
}

/** Buckets and their live objects. */
export class ObjectStore {
  readonly root: string;
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private lastGeneration = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Clears what uploads in progress left. */
  async open(): Promise<void> {
    for (const dir of ['.tmp', '.uploads']) {
      await rm(join(this.root, dir), { recursive: true, force: true });
      await mkdir(join(this.root, dir), { recursive: true });
    }
  }

  /**
   * Runs `fn` alone: a commit (precondition check, rename into place, record) must be atomic
   * with respect to other commits and to the snapshot a reader takes before streaming.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** A fresh path for a temporary file (`.tmp/`) or an upload session (`.uploads/`). */
  tmpPath(kind: '.tmp' | '.uploads' = '.tmp'): string {
    return join(this.root, kind, randomUUID());
  }

  async createBucket(name: string): Promise<void> {
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(name) || name.includes('..')) {
      throw new Error(`invalid bucket name: ${name}`);
    }
    await mkdir(join(this.root, name), { recursive: true });
    if (!this.buckets.has(name)) this.buckets.set(name, new Map());
  }

  bucket(name: string): Map<string, StoredObject> {
    const objects = this.buckets.get(name);
    if (!objects) throw storageError(404, 'notFound', 'The specified bucket does not exist.');
    return objects;
  }

  /** The live object, or 404; `generation` (when given) must be the live one. */
  live(bucket: string, name: string, generation: string | null): StoredObject {
    const stored = this.bucket(bucket).get(name);
    if (!stored || (generation && generation !== stored.generation)) {
      throw storageError(404, 'notFound', `No such object: ${bucket}/${name}`);
    }
    return stored;
  }

  /**
   * Deletes the live object: 404 when there is none, or when `generation` is given and is not the
   * live one; 412 when `ifGenerationMatch` is given and is not the live generation.
   */
  async delete(
    bucket: string,
    name: string,
    generation: string | null,
    ifGenerationMatch: string | null,
  ): Promise<void> {
    await this.exclusive(async () => {
      const live = this.live(bucket, name, generation);
      if (ifGenerationMatch !== null && ifGenerationMatch !== live.generation) {
        const message = 'At least one of the pre-conditions you specified did not hold.';
        throw storageError(412, 'conditionNotMet', message);
      }
      this.bucket(bucket).delete(name);
      await this.remove(live);
    });
  }

  /** Makes the file at `tmpPath` the new live generation of the target (hashing it unless given). */
  async commit(target: Target, tmpPath: string, digest?: Digest): Promise<StoredObject> {
    const { size, md5Hash, crc32c } = digest ?? (await digestFile(tmpPath));
    return this.exclusive(async () => {
      const objects = this.bucket(target.bucket);
      const live = objects.get(target.name);
      const expected = target.ifGenerationMatch;
      if (expected !== null && expected !== (live?.generation ?? '0')) {
        const message = 'At least one of the pre-conditions you specified did not hold.';
        throw storageError(412, 'conditionNotMet', message);
      }
      // Microseconds since the epoch, strictly increasing.
      this.lastGeneration = Math.max(this.lastGeneration + 1, Date.now() * 1000);
      const path = await this.place(target.bucket, target.name, tmpPath);
      if (live && live.path !== path) await this.remove(live);
      const record: StoredObject = {
        bucket: target.bucket,
        name: target.name,
        generation: String(this.lastGeneration),
        size,
        md5Hash,
        crc32c,
        timeCreated: new Date().toISOString(),
        fields: target.fields,
        path,
      };
      objects.set(target.name, record);
      return record;
    });
  }

  /**
   * Renames the temporary file to the object's path; a name that is not a safe relative path, or
   * that collides with another object's file or folder (`a` and `a/b`), goes to `.encoded/`.
   */
  private async place(bucket: string, name: string, tmpPath: string): Promise<string> {
    const moveTo = async (path: string): Promise<string> => {
      await mkdir(dirname(path), { recursive: true });
      await rename(tmpPath, path);
      return path;
    };
    const encoded = join(this.root, bucket, '.encoded', sha256(name));
    if (!isSafePath(name)) return moveTo(encoded);
    return moveTo(join(this.root, bucket, ...name.split('/'))).catch(() => moveTo(encoded));
  }

  /** Deletes an object's bytes and the folders that become empty. */
  private async remove(record: StoredObject): Promise<void> {
    await unlink(record.path).catch(() => undefined);
    const bucketDir = join(this.root, record.bucket);
    for (let dir = dirname(record.path); dir.startsWith(bucketDir + sep); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
  }
}

/** Size, MD5 and CRC32C of a file. */
export async function digestFile(path: string): Promise<Digest> {
  const md5 = createHash('md5');
  const crc = new CRC32C();
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    md5.update(chunk);
    crc.update(chunk);
    size += chunk.length;
  }
  return { size, md5Hash: md5.digest('base64'), crc32c: crc.toString() };
}
