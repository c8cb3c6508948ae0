/**
 * A local Cloud Storage emulator: the JSON API calls `@google-cloud/storage` 7.x makes for the
 * product and the offline stack, over plain HTTP on 127.0.0.1. Both endpoint styles work:
 * `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` (`/b/...`) and `apiEndpoint` (`/storage/v1/b/...`);
 * uploads go to `/upload/storage/v1/...`, and `/download/storage/v1/...` (the `mediaLink`) reads.
 *
 * Implemented: object upload (media, multipart, resumable), download, metadata, list with `prefix`
 * and paging, `rewriteTo` (copy) and delete, with `generation`, `sourceGeneration` and
 * `ifGenerationMatch`. Buckets are created in process ({@link StorageEmulator.createBucket}).
 * Anything else is a 404 or 405.
 */
import { copyFile, open, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { readJson, sendJson, serve, target } from '../http.js';
import {
  checkObjectName,
  fieldsOf,
  ObjectStore,
  storageError,
  type StoredObject,
} from './store.js';
import { Uploads } from './uploads.js';

export { crc32cBase64 } from './store.js';

/** A Cloud Storage object resource as the JSON API returns it (int64 fields as strings). */
export interface ObjectResource {
  kind: 'storage#object';
  /** `bucket/name/generation`. */
  id: string;
  selfLink: string;
  mediaLink: string;
  name: string;
  bucket: string;
  generation: string;
  metageneration: string;
  contentType: string;
  contentEncoding?: string;
  storageClass: string;
  size: string;
  md5Hash: string;
  crc32c: string;
  etag: string;
  timeCreated: string;
  updated: string;
  metadata?: Record<string, string>;
}

/** Options of {@link startStorageEmulator}. */
export interface StorageEmulatorOptions {
  /** Folder that holds buckets, objects and metadata (the stack uses `.local/storage`). */
  root: string;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Called after every upload or copy, with the new generation. */
  onFinalize?: (object: ObjectResource) => void;
  /** One JSON object per unexpected error; default writes a JSON line to stderr. */
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
  close(): Promise<void>;
}

/** Starts the emulator on 127.0.0.1 with the buckets and objects already under `root`. */
export async function startStorageEmulator(
  options: StorageEmulatorOptions,
): Promise<StorageEmulator> {
  const store = new ObjectStore(options.root);
  await store.open();
  let url = '';
  const log = options.log ?? ((line) => void process.stderr.write(`${JSON.stringify(line)}\n`));

  const resource = (o: StoredObject): ObjectResource => {
    const path = `b/${encodeURIComponent(o.bucket)}/o/${encodeURIComponent(o.name)}`;
    const { contentType = 'application/octet-stream', contentEncoding, metadata } = o.fields;
    return {
      kind: 'storage#object',
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${url}/storage/v1/${path}`,
      mediaLink: `${url}/download/storage/v1/${path}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: o.generation,
      metageneration: '1',
      contentType,
      ...(contentEncoding ? { contentEncoding } : {}),
      storageClass: 'STANDARD',
      size: String(o.size),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: Buffer.from(`${o.generation}/1`).toString('base64'),
      timeCreated: o.timeCreated,
      updated: o.timeCreated,
      ...(metadata && Object.keys(metadata).length > 0 ? { metadata } : {}),
    };
  };

  /** Commits a new generation, tells `onFinalize`, answers the resource. */
  const commit = async (...args: Parameters<ObjectStore['commit']>): Promise<ObjectResource> => {
    const object = resource(await store.commit(...args));
    try {
      options.onFinalize?.(object);
    } catch (err) {
      log({ severity: 'ERROR', message: 'onFinalize threw', error: String(err) });
    }
    return object;
  };
  const uploads = new Uploads(store, commit);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = target(req);
    const method = req.method ?? 'GET';
    let segments = path.split('/').slice(1);
    const mode = segments[0] === 'upload' || segments[0] === 'download' ? segments.shift() : '';
    if (segments[0] === 'storage' && segments[1] === 'v1') segments = segments.slice(2);
    const [b, bucketSegment = '', o, ...rest] = segments;
    if (b !== 'b' || o !== 'o') throw storageError(404, 'notFound', 'Not Found');
    const bucket = decodeURIComponent(bucketSegment);
    const ifGenerationMatch = query.get('ifGenerationMatch');
    // Clients encode `/` in names; a raw `/` splits a name into segments, joined back here.
    const name = (parts: string[]): string => parts.map(decodeURIComponent).join('/');
    const at = rest.indexOf('rewriteTo');

    if (rest.join('') === '') {
      const uploadId = query.get('upload_id');
      if (uploadId && (method === 'PUT' || method === 'POST')) {
        return uploads.chunk(req, res, uploadId);
      }
      if (method === 'GET') return list(res, bucket, query);
      if (method !== 'POST' || mode !== 'upload') {
        throw storageError(405, 'methodNotAllowed', 'Method not allowed');
      }
      store.bucket(bucket);
      const spec = { bucket, name: query.get('name') ?? '', fields: {}, ifGenerationMatch };
      if (query.get('uploadType') === 'resumable') return uploads.start(req, res, spec, url);
      return uploads.simple(req, res, spec);
    }
    if (method === 'POST' && at > 0 && rest[at + 1] === 'b' && rest[at + 3] === 'o') {
      const body = await readJson(req);
      const to = decodeURIComponent(rest[at + 2] ?? '');
      store.bucket(to);
      const toName = checkObjectName(name(rest.slice(at + 4)));
      const tmpPath = store.tmpPath();
      try {
        const stored = await store.exclusive(async () => {
          const live = store.live(bucket, name(rest.slice(0, at)), query.get('sourceGeneration'));
          await copyFile(live.path, tmpPath);
          return live;
        });
        // The destination starts from the source's fields; the body's fields override them.
        const fields = fieldsOf(body, stored.fields);
        const copy = await commit(
          { bucket: to, name: toName, fields, ifGenerationMatch },
          tmpPath,
          stored,
        );
        const size = copy.size;
        const done = { totalBytesRewritten: size, objectSize: size, done: true, resource: copy };
        return sendJson(res, 200, { kind: 'storage#rewriteResponse', ...done });
      } finally {
        await rm(tmpPath, { force: true });
      }
    }
    if (method === 'DELETE' && mode === '') {
      await store.delete(
        bucket,
        checkObjectName(name(rest)),
        query.get('generation'),
        ifGenerationMatch,
      );
      res.writeHead(204).end();
      return;
    }
    if (method !== 'GET') throw storageError(405, 'methodNotAllowed', 'Method not allowed');
    if (query.get('alt') !== 'media' && mode !== 'download') {
      return sendJson(res, 200, resource(store.live(bucket, name(rest), query.get('generation'))));
    }
    // Opened under the lock: the descriptor keeps these bytes if a new generation replaces them.
    const { stored, handle } = await store.exclusive(async () => {
      const live = store.live(bucket, name(rest), query.get('generation'));
      return { stored: live, handle: await open(live.path, 'r') };
    });
    const encoding = stored.fields.contentEncoding;
    res.writeHead(200, {
      'content-type': stored.fields.contentType ?? 'application/octet-stream',
      'content-length': stored.size,
      ...(encoding ? { 'content-encoding': encoding } : {}),
      'x-goog-generation': stored.generation,
      'x-goog-metageneration': '1',
      'x-goog-hash': `crc32c=${stored.crc32c},md5=${stored.md5Hash}`,
      'x-goog-stored-content-encoding': encoding ?? 'identity',
      'x-goog-stored-content-length': stored.size,
    });
    await pipeline(handle.createReadStream(), res);
  }

  /** Every object under `prefix`, in one page, by name in UTF-8 byte order. */
  function list(res: ServerResponse, bucket: string, query: URLSearchParams): void {
    const prefix = query.get('prefix') ?? '';
    const items = [...store.bucket(bucket).values()]
      .filter((o) => o.name.startsWith(prefix))
      .sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
      .map(resource);
    sendJson(res, 200, { kind: 'storage#objects', items });
  }

  const server = await serve(route, {
    ...(options.port ? { port: options.port } : {}),
    onUnexpected: (err, req) =>
      log({
        severity: 'ERROR',
        message: 'storage emulator request failed',
        method: req.method,
        url: req.url,
        error: err instanceof Error ? err.stack : String(err),
      }),
  });
  url = `http://${server.host}`;
  return {
    url,
    port: server.port,
    root: store.root,
    createBucket: (bucket) => store.createBucket(bucket),
    close: () => server.close(),
  };
}
