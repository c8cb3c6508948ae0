/**
 * The two upload protocols that carry metadata: `multipart/related` (metadata and bytes in one
 * request) and resumable sessions (a session URI, then chunks with `Content-Range`, 308 until the
 * last byte arrived), which `@google-cloud/storage` uses by default for streams and files.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat, truncate, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { isObject, readBody, readJson, sendEmpty, sendJson } from '../http.js';
import {
  checkObjectName,
  digestFile,
  fieldsOf,
  storageError,
  type ObjectFields,
  type ObjectResource,
  type ObjectStore,
} from './store.js';

const invalid = (message: string) => storageError(400, 'invalid', message);

/** Reads a `multipart/related` upload: its JSON metadata part and its media part. */
export async function multipartUpload(
  req: IncomingMessage,
): Promise<{ metadata: Record<string, unknown>; contentType?: string; media: Buffer }> {
  const type = req.headers['content-type'] ?? '';
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!/^multipart\/related/i.test(type) || !boundary) {
    throw invalid('Multipart uploads need Content-Type: multipart/related; boundary=…');
  }
  const body = await readBody(req, 2 ** 31);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const parts: { headers: string; content: Buffer }[] = [];
  for (let at = body.indexOf(delimiter); at >= 0 && parts.length < 2;) {
    const next = body.indexOf(delimiter, at + delimiter.length);
    if (next < 0) break;
    const part = body.subarray(at + delimiter.length, next);
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) throw invalid('A multipart part has no header block.');
    // The part ends with the CRLF that precedes the next delimiter.
    parts.push({
      headers: part.subarray(0, split).toString(),
      content: part.subarray(split + 4, -2),
    });
    at = next;
  }
  const [meta, media] = parts;
  if (!meta || !media) throw invalid('The multipart body needs a metadata part and a media part.');
  let metadata: unknown;
  try {
    metadata = JSON.parse(meta.content.toString('utf8') || '{}');
  } catch {
    throw storageError(400, 'parseError', 'Parse Error');
  }
  if (!isObject(metadata)) throw storageError(400, 'parseError', 'Expected a JSON object.');
  const contentType = /^content-type:\s*(.+)$/im.exec(media.headers)?.[1]?.trim();
  return { metadata, ...(contentType ? { contentType } : {}), media: media.content };
}

interface Session {
  bucket: string;
  name: string;
  fields: ObjectFields;
  ifGenerationMatch: string | null;
  path: string;
  /** Bytes received so far. */
  size: number;
  /** One request at a time: a retried chunk must not interleave with the original. */
  tail: Promise<unknown>;
  result?: ObjectResource;
}

type Commit = (spec: Parameters<ObjectStore['commit']>[0]) => Promise<ObjectResource>;

/** Resumable upload sessions. */
export class Resumable {
  private readonly sessions = new Map<string, Session>();
  private nextId = 1;

  constructor(
    private readonly store: ObjectStore,
    private readonly commit: Commit,
  ) {}

  /** `POST ?uploadType=resumable`: opens a session, answers its URI in `Location`. */
  async start(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    query: URLSearchParams,
    origin: string,
  ): Promise<void> {
    const body = await readJson(req);
    const bodyName = isObject(body) && typeof body.name === 'string' ? body.name : undefined;
    const name = checkObjectName(query.get('name') ?? bodyName);
    const fields = fieldsOf(body);
    const headerType = req.headers['x-upload-content-type'];
    if (fields.contentType === undefined && typeof headerType === 'string')
      fields.contentType = headerType;
    const id = `${Date.now().toString(36)}${(this.nextId++).toString(36)}`;
    const path = this.store.tmpPath('.uploads');
    await writeFile(path, '');
    const ifGenerationMatch = query.get('ifGenerationMatch');
    this.sessions.set(id, {
      bucket,
      name,
      fields,
      ifGenerationMatch,
      path,
      size: 0,
      tail: Promise.resolve(),
    });
    const location = `${origin}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    sendEmpty(res, 200, { location, 'x-guploader-uploadid': id });
  }

  /** `PUT ?upload_id=…`: a chunk (`Content-Range: bytes A-B/T` or `bytes A-B/*`) or a status query (`bytes *\/T`). */
  chunk(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) throw storageError(404, 'notFound', 'No such upload session.');
    const run = session.tail.then(() => this.receive(req, res, session, id));
    session.tail = run.catch(() => undefined);
    return run;
  }

  private async receive(
    req: IncomingMessage,
    res: ServerResponse,
    session: Session,
    id: string,
  ): Promise<void> {
    if (session.result) {
      req.resume();
      return sendJson(res, 200, session.result);
    }
    // `bytes A-B/T`, `bytes A-*/*` (all in this request), or a status query `bytes *\/T`.
    const header = req.headers['content-range']?.trim();
    const range =
      header === undefined ? null : /^bytes (?:\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(header);
    if (header !== undefined && !range) throw invalid(`Invalid Content-Range: ${header}`);
    const query = range !== null && range[1] === undefined;
    if (query) {
      req.resume();
    } else {
      const start = Number(range?.[1] ?? 0);
      if (start > session.size)
        throw invalid(`The chunk starts at ${start}, but ${session.size} bytes were received.`);
      // A chunk sent again after a lost answer overlaps what is stored: it replaces it.
      await truncate(session.path, start);
      try {
        await pipeline(req, createWriteStream(session.path, { flags: 'a' }));
      } finally {
        session.size = (await stat(session.path)).size;
      }
    }
    const total =
      !range || (!query && range[2] === '*' && range[3] === '*')
        ? session.size
        : range[3] === '*'
          ? undefined
          : Number(range[3]);
    if (total === undefined || session.size < total) {
      return sendEmpty(res, 308, session.size > 0 ? { range: `bytes=0-${session.size - 1}` } : {});
    }
    try {
      if (session.size > total)
        throw invalid(`Received ${session.size} bytes, more than ${total}.`);
      const { bucket, name, fields, ifGenerationMatch, path } = session;
      const digest = await digestFile(path);
      session.result = await this.commit({
        bucket,
        name,
        fields,
        ifGenerationMatch,
        digest,
        tmpPath: path,
      });
      sendJson(res, 200, session.result);
    } catch (err) {
      // A completed upload that cannot be committed ends the session.
      this.sessions.delete(id);
      await rm(session.path, { force: true });
      throw err;
    }
  }
}
