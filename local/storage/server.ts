/**
 * A local Cloud Storage emulator: the JSON API calls `@google-cloud/storage` 7.x makes for the
 * product and the offline stack, over plain HTTP on 127.0.0.1. Both endpoint styles work:
 * `STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` (`/b/...`) and `apiEndpoint` (`/storage/v1/b/...`);
 * uploads go to `/upload/storage/v1/...`, and `/download/storage/v1/...` (the `mediaLink` form) reads.
 *
 * Implemented: object upload (media, multipart, resumable), download, metadata get, list with
 * `prefix` and paging, `rewriteTo` (copy); `generation`, `sourceGeneration` and `ifGenerationMatch`.
 * Buckets are created in process ({@link StorageEmulator.createBucket}). Everything else is a 404.
 */
import { createWriteStream } from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { readJson, sendJson, serve, target } from '../http.js';
import {
  checkObjectName,
  digestFile,
  fieldsOf,
  ObjectStore,
  storageError,
  type ObjectFields,
  type ObjectResource,
  type StoredObject,
} from './store.js';
import { multipartUpload, Resumable } from './uploads.js';

export { crc32cBase64, type ObjectResource } from './store.js';

/** Options of {@link startStorageEmulator}. */
export interface StorageEmulatorOptions {
  /** Folder that holds buckets, objects and metadata (the stack uses `.local/storage`). */
  root: string;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Called after every upload or copy that creates a new generation. */
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

/** Starts the emulator on 127.0.0.1 and loads any buckets and objects already under `root`. */
export async function startStorageEmulator(
  options: StorageEmulatorOptions,
): Promise<StorageEmulator> {
  const store = new ObjectStore(options.root);
  await store.open();
  let url = '';

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

  /** Commits a new generation, calls the finalize hook, answers the resource. */
  const commit = async (spec: Parameters<ObjectStore['commit']>[0]): Promise<ObjectResource> => {
    const object = resource(await store.commit(spec));
    try {
      options.onFinalize?.(object);
    } catch (err) {
      log({ severity: 'ERROR', message: 'onFinalize threw', error: String(err) });
    }
    return object;
  };
  const resumable = new Resumable(store, commit);

  const log = (line: object): void => {
    if (options.log) options.log(line);
    else process.stderr.write(`${JSON.stringify(line)}\n`);
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = target(req);
    let segments = path.split('/').slice(1);
    const upload = segments[0] === 'upload';
    if (upload || segments[0] === 'download') segments = segments.slice(1);
    if (segments[0] === 'storage' && segments[1] === 'v1') segments = segments.slice(2);
    const [b, bucketSegment = '', o, ...rest] = segments;
    if (b !== 'b' || o !== 'o') throw storageError(404, 'notFound', 'Not Found');
    const bucket = decodeURIComponent(bucketSegment);
    const method = req.method ?? 'GET';
    const ifGenerationMatch = query.get('ifGenerationMatch');

    if (rest.length === 0 || (rest.length === 1 && rest[0] === '')) {
      const uploadType = query.get('uploadType');
      const uploadId = query.get('upload_id');
      if (uploadId && (method === 'PUT' || method === 'POST')) {
        return resumable.chunk(req, res, uploadId);
      }
      if (method === 'GET') return list(res, bucket, query);
      if (method !== 'POST' || !upload)
        throw storageError(405, 'methodNotAllowed', 'Method not allowed');
      store.bucket(bucket);
      if (uploadType === 'resumable') return resumable.start(req, res, bucket, query, url);
      const tmpPath = store.tmpPath();
      try {
        let fields: ObjectFields = {};
        let name = query.get('name') ?? undefined;
        if (uploadType === 'multipart') {
          const part = await multipartUpload(req);
          fields = fieldsOf(part.metadata);
          fields.contentType ??= part.contentType;
          if (name === undefined && typeof part.metadata.name === 'string')
            name = part.metadata.name;
          await writeFile(tmpPath, part.media);
        } else {
          fields.contentType = req.headers['content-type'];
          await pipeline(req, createWriteStream(tmpPath));
        }
        const digest = await digestFile(tmpPath);
        const object = await commit({
          bucket,
          name: checkObjectName(name),
          fields,
          ifGenerationMatch,
          digest,
          tmpPath,
        });
        return sendJson(res, 200, object);
      } finally {
        await rm(tmpPath, { force: true });
      }
    }

    // Clients encode `/` in names; a raw `/` splits the name into segments, joined back here.
    const at = rest.indexOf('rewriteTo');
    if (method === 'POST' && at > 0 && rest[at + 1] === 'b' && rest[at + 3] === 'o') {
      const source = rest.slice(0, at).map(decodeURIComponent).join('/');
      const toBucket = decodeURIComponent(rest[at + 2] ?? '');
      const toName = checkObjectName(
        rest
          .slice(at + 4)
          .map(decodeURIComponent)
          .join('/'),
      );
      return rewrite(req, res, bucket, source, toBucket, toName, query);
    }
    const name = rest.map(decodeURIComponent).join('/');
    if (method !== 'GET') throw storageError(405, 'methodNotAllowed', 'Method not allowed');
    if (query.get('alt') !== 'media' && !path.startsWith('/download/')) {
      return sendJson(res, 200, resource(store.live(bucket, name, query.get('generation'))));
    }
    // Opened under the lock: the descriptor keeps these bytes even if a new generation replaces them.
    const { stored, handle } = await store.exclusive(async () => {
      const live = store.live(bucket, name, query.get('generation'));
      return { stored: live, handle: await open(store.absolute(live.dataPath), 'r') };
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

  function list(res: ServerResponse, bucket: string, query: URLSearchParams): void {
    const prefix = query.get('prefix') ?? '';
    const max = Math.min(1000, Math.max(1, Number(query.get('maxResults') || 1000)));
    const after = query.get('pageToken');
    const byBytes = (a: string, b: string): number =>
      Buffer.compare(Buffer.from(a), Buffer.from(b));
    const names = [...store.bucket(bucket).keys()]
      .filter((n) => n.startsWith(prefix) && (!after || byBytes(n, after) > 0))
      .sort(byBytes);
    const page = names.slice(0, max);
    const objects = store.bucket(bucket);
    sendJson(res, 200, {
      kind: 'storage#objects',
      ...(names.length > max ? { nextPageToken: page.at(-1) } : {}),
      items: page.map((n) => objects.get(n)).flatMap((o) => (o ? [resource(o)] : [])),
    });
  }

  async function rewrite(
    req: IncomingMessage,
    res: ServerResponse,
    fromBucket: string,
    fromName: string,
    toBucket: string,
    toName: string,
    query: URLSearchParams,
  ): Promise<void> {
    const body = await readJson(req);
    store.bucket(toBucket);
    const generation = query.get('sourceGeneration');
    const { source, handle } = await store.exclusive(async () => {
      const live = store.live(fromBucket, fromName, generation);
      return { source: live, handle: await open(store.absolute(live.dataPath), 'r') };
    });
    const tmpPath = store.tmpPath();
    try {
      await pipeline(handle.createReadStream(), createWriteStream(tmpPath));
      const object = await commit({
        bucket: toBucket,
        name: toName,
        // The destination starts from the source's fields; the body's fields override them.
        fields: fieldsOf(body, source.fields),
        ifGenerationMatch: query.get('ifGenerationMatch'),
        digest: { size: source.size, md5Hash: source.md5Hash, crc32c: source.crc32c },
        tmpPath,
      });
      sendJson(res, 200, {
        kind: 'storage#rewriteResponse',
        totalBytesRewritten: object.size,
        objectSize: object.size,
        done: true,
        resource: object,
      });
    } finally {
      await rm(tmpPath, { force: true });
    }
  }

  const server = await serve(route, {
    port: options.port,
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
    createBucket: (name) => store.createBucket(name),
    close: () => server.close(),
  };
}
