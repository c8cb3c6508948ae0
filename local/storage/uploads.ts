/**
 * The upload protocols of `POST /upload/storage/v1/b/{bucket}/o`: `uploadType=media` (bytes only),
 * `multipart` (`multipart/related`: JSON metadata, then the bytes) and `resumable` (a session URI,
 * then chunks with `Content-Range`, answered 308 until the last byte arrived), which
 * `@google-cloud/storage` uses by default for streams and files.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat, truncate, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { isObject, readBody, readJson, sendJson } from '../http.js';
import { checkObjectName, fieldsOf, storageError, type ObjectStore, type Target } from './store.js';

const invalid = (message: string) => storageError(400, 'invalid', message);

/** Reads a `multipart/related` body: its JSON metadata part and its media part. */
async function readMultipart(
  req: IncomingMessage,
): Promise<{ metadata: unknown; media: Buffer; type?: string }> {
  const boundary = /^multipart\/related.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(
    req.headers['content-type'] ?? '',
  );
  if (!boundary)
    throw invalid('Multipart uploads need Content-Type: multipart/related; boundary=…');
  const body = await readBody(req, 2 ** 31);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const parts: { head: string; content: Buffer }[] = [];
  for (let at = body.indexOf(delimiter); at >= 0 && parts.length < 2;) {
    const next = body.indexOf(delimiter, at + delimiter.length);
    if (next < 0) break;
    // A part: CRLF, headers, an empty line, the content, and the CRLF before the next delimiter.
    const part = body.subarray(at + delimiter.length, next - 2);
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) throw invalid('A multipart part has no header block.');
    parts.push({ head: part.subarray(0, split).toString(), content: part.subarray(split + 4) });
    at = next;
  }
  const [meta, media] = parts;
  if (!meta || !media) throw invalid('The multipart body needs a metadata and a media part.');
  const type = /^content-type:\s*(.+)$/im.exec(media.head)?.[1]?.trim();
  try {
    return { metadata: JSON.parse(meta.content.toString() || '{}'), media: media.content, type };
  } catch {
    throw storageError(400, 'parseError', 'Parse Error');
  }
}

interface Session extends Target {
  path: string;
  /** Bytes received so far. */
  size: number;
  /** One request at a time: a retried chunk must not interleave with the original. */
  tail: Promise<unknown>;
  result?: unknown;
}

/** Uploads into one store; `commit` makes a finished upload the live generation and answers it. */
export class Uploads {
  private readonly sessions = new Map<string, Session>();
  private nextId = 1;

  constructor(
    private readonly store: ObjectStore,
    private readonly commit: (target: Target, tmpPath: string) => Promise<unknown>,
  ) {}

  /** A `media` or `multipart` upload: the whole object in one request. */
  async simple(req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
    const tmpPath = this.store.tmpPath();
    try {
      let name: unknown = target.name;
      if (/^multipart\//i.test(req.headers['content-type'] ?? '')) {
        const { metadata, media, type } = await readMultipart(req);
        target.fields = fieldsOf(metadata);
        target.fields.contentType ??= type;
        if (!name && isObject(metadata)) name = metadata.name;
        await writeFile(tmpPath, media);
      } else {
        target.fields = { contentType: req.headers['content-type'] };
        await pipeline(req, createWriteStream(tmpPath));
      }
      target.name = checkObjectName(typeof name === 'string' ? name : undefined);
      sendJson(res, 200, await this.commit(target, tmpPath));
    } finally {
      await rm(tmpPath, { force: true });
    }
  }

  /** Opens a resumable session; its URI (under `origin`) is the `Location` header. */
  async start(req: IncomingMessage, res: ServerResponse, target: Target, origin: string) {
    const body = await readJson(req);
    const bodyName = isObject(body) && typeof body.name === 'string' ? body.name : undefined;
    target.name = checkObjectName(target.name || bodyName);
    target.fields = fieldsOf(body);
    const type = req.headers['x-upload-content-type'];
    if (typeof type === 'string') target.fields.contentType ??= type;
    const id = `${Date.now().toString(36)}${(this.nextId++).toString(36)}`;
    const path = this.store.tmpPath('.uploads');
    await writeFile(path, '');
    this.sessions.set(id, { ...target, path, size: 0, tail: Promise.resolve() });
    const bucket = encodeURIComponent(target.bucket);
    const query = `uploadType=resumable&name=${encodeURIComponent(target.name)}&upload_id=${id}`;
    res.writeHead(200, { location: `${origin}/upload/storage/v1/b/${bucket}/o?${query}` }).end();
  }

  /** A chunk of a session, or a status query (`Content-Range: bytes *\/T`). */
  chunk(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) throw storageError(404, 'notFound', 'No such upload session.');
    const run = session.tail.then(() => this.receive(req, res, session, id));
    session.tail = run.catch(() => undefined);
    return run;
  }

  private async receive(req: IncomingMessage, res: ServerResponse, session: Session, id: string) {
    if (session.result) {
      req.resume();
      return sendJson(res, 200, session.result);
    }
    // `bytes A-B/T`, `bytes A-B/*` (more to come), `bytes A-*/*` (the rest is in this request),
    // `bytes */T` (a status query), or no header (everything is in this request).
    const header = req.headers['content-range']?.trim();
    const range = header && /^bytes (?:\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(header);
    if (header && !range) throw invalid(`Invalid Content-Range: ${header}`);
    if (range && range[1] === undefined) {
      req.resume();
    } else {
      const start = Number(range?.[1] ?? 0);
      if (start > session.size) throw invalid(`A chunk at ${start}; ${session.size} bytes so far.`);
      // A chunk sent again after a lost answer overlaps what is stored: it replaces it.
      await truncate(session.path, start);
      try {
        await pipeline(req, createWriteStream(session.path, { flags: 'a' }));
      } finally {
        session.size = (await stat(session.path)).size;
      }
    }
    const whole = !range || (range[2] === '*' && range[3] === '*');
    const total = whole ? session.size : range[3] === '*' ? Infinity : Number(range[3]);
    if (session.size < total) {
      const done = session.size > 0 ? { range: `bytes=0-${session.size - 1}` } : {};
      return void res.writeHead(308, done).end();
    }
    try {
      if (session.size > total) throw invalid(`Received ${session.size} bytes, not ${total}.`);
      session.result = await this.commit(session, session.path);
      sendJson(res, 200, session.result);
    } catch (err) {
      // A completed upload that cannot be committed ends the session.
      this.sessions.delete(id);
      await rm(session.path, { force: true });
      throw err;
    }
  }
}
