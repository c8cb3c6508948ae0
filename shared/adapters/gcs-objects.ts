/**
 * Cloud Storage: the {@link ObjectReader} streams one exact generation of an object (a media
 * download of its own, with the client's endpoint and credentials: see `mediaDownloads`) and lists
 * a folder; the {@link ObjectWriter} writes rejection reports and the results digest (streamed),
 * copies one exact generation, and deletes the digest's temporary parts.
 *
 * Every call is bounded: a read fails when no bytes arrive for a while (a stall timeout, not a
 * total one: reading a 1 GB input takes long, but it never stops moving), a write or a copy when
 * it has not finished in time (the client's own retries would last up to 10 minutes).
 */
import { Agent as HttpAgent, get as httpGet, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, get as httpsGet } from 'node:https';
import { pipeline as pipelineCallback, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import type { Storage } from '@google-cloud/storage';
import { BatchCourierError, PermanentError, TransientError } from '../core/errors.js';
import type { ListedObject, ObjectReader, ObjectWriter } from '../ports.js';
import { formatSeconds, withTimeLimit } from '../time-limit.js';
import { crc32c, crc32cBase64 } from './crc32c.js';

/** Default of {@link GcsReaderOptions.stallTimeoutMs}. */
export const DEFAULT_READ_STALL_TIMEOUT_MS = 15_000;
/** Default of {@link GcsWriterOptions.deadlineMs}. */
export const DEFAULT_WRITE_DEADLINE_MS = 20_000;

/** Options of {@link createGcsObjectReader}. */
export interface GcsReaderOptions {
  /**
   * A read that receives no bytes for this long (before the first chunk or between two) fails
   * with TransientError `STORAGE.UNAVAILABLE`. Default {@link DEFAULT_READ_STALL_TIMEOUT_MS}.
   */
  stallTimeoutMs?: number;
}

/** Options of {@link createGcsObjectWriter}. */
export interface GcsWriterOptions {
  /**
   * A write or a copy not finished after this long fails with TransientError
   * `STORAGE.UNAVAILABLE`. Default {@link DEFAULT_WRITE_DEADLINE_MS}. A copy within one location
   * and storage class is a single rewrite call whatever the object's size.
   */
  deadlineMs?: number;
}

/** Creates a reader over a `Storage` client (which honours `STORAGE_EMULATOR_HOST`). */
export function createGcsObjectReader(
  storage: Storage,
  options: GcsReaderOptions = {},
): ObjectReader {
  const stallMs = options.stallTimeoutMs ?? DEFAULT_READ_STALL_TIMEOUT_MS;
  const media = mediaDownloads(storage);
  return {
    async *read(bucket, name, generation) {
      const uri = `gs://${bucket}/${name}#${generation}`;
      const stop = new AbortController();
      // One watchdog for the whole read rather than a timer per chunk (a large input is tens of
      // thousands of chunks, and the functions framework's request domain tracks every timer and
      // promise): it fails the read when no bytes come for `stallMs` while the reader waits for
      // them (the answer's headers included). Only that wait counts, not the time the consumer
      // spends on a chunk.
      let waiting = true;
      const watchdog: NodeJS.Timeout = setTimeout(() => {
        if (!waiting) {
          watchdog.refresh();
          return;
        }
        stop.abort(
          new TransientError(
            'STORAGE.UNAVAILABLE',
            `could not read ${uri}: Cloud Storage sent no bytes for ${formatSeconds(stallMs)}`,
          ),
        );
      }, stallMs);
      let download: MediaDownload | undefined;
      try {
        download = await media.open(bucket, name, generation, stop.signal);
        for await (const chunk of download.chunks) {
          waiting = false;
          yield chunk;
          waiting = true;
          watchdog.refresh();
        }
        // Checked end to end against the object's CRC32C: bytes damaged on the way fail the read
        // at its end, so a verdict on them never stands. Not the input's fault: retried.
        if (download.checkable && download.expectedCrc32c === undefined) {
          throw new TransientError(
            'STORAGE.UNAVAILABLE',
            `could not read ${uri}: the answer carries no CRC32C (x-goog-hash) to check the bytes against`,
          );
        }
        if (download.checkable && download.crc32c() !== download.expectedCrc32c) {
          throw new TransientError(
            'STORAGE.UNAVAILABLE',
            `could not read ${uri}: the bytes received do not match the object's CRC32C`,
          );
        }
      } catch (err) {
        if (stop.signal.aborted && stop.signal.reason instanceof BatchCourierError) {
          throw stop.signal.reason;
        }
        throw mapStorageError(err, uri);
      } finally {
        clearTimeout(watchdog);
        stop.abort();
        download?.close();
      }
    },
    async list(bucket, prefix) {
      const where = `gs://${bucket}/${prefix}`;
      try {
        const [files] = await withTimeLimit(
          storage.bucket(bucket).getFiles({ prefix, autoPaginate: true }),
          stallMs,
          () =>
            new TransientError(
              'STORAGE.UNAVAILABLE',
              `could not list ${where}: Cloud Storage did not answer within ${formatSeconds(stallMs)}`,
            ),
        );
        return files
          .map((f): ListedObject => ({
            name: f.name,
            generation: String(f.metadata.generation ?? ''),
            size: Number(f.metadata.size ?? 0),
          }))
          .sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
      } catch (err) {
        if (isStatus(err, 404)) return [];
        throw mapStorageError(err, where, 'list');
      }
    },
  };
}

/** `gs://bucket/name` → `[bucket, name]`. */
function splitUri(uri: string): [string, string] {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m?.[1] || !m[2])
    throw new PermanentError('STORAGE.UNAVAILABLE', `not an object URI: ${uri}`);
  return [m[1], m[2]];
}

const isStatus = (err: unknown, status: number): boolean => {
  const e = err as { code?: unknown; status?: unknown } | null;
  return e?.code === status || e?.status === status;
};

/** Creates a writer of small objects over a `Storage` client. */
export function createGcsObjectWriter(
  storage: Storage,
  options: GcsWriterOptions = {},
): ObjectWriter {
  const deadlineMs = options.deadlineMs ?? DEFAULT_WRITE_DEADLINE_MS;
  const tooLate = (what: string) => () =>
    new TransientError(
      'STORAGE.UNAVAILABLE',
      `could not ${what}: Cloud Storage did not answer within ${formatSeconds(deadlineMs)}`,
    );
  return {
    async copy(source, destinationUri) {
      const [bucket, name] = splitUri(destinationUri);
      const from = `gs://${source.bucket}/${source.name}#${source.generation}`;
      const file = storage
        .bucket(source.bucket)
        .file(source.name, { generation: Number(source.generation) });
      try {
        // `generation` on the source file sends `sourceGeneration`: exactly the validated bytes are
        // copied, never a newer upload of the same name. Create only: a copy made by an earlier
        // attempt of this job is the same generation's bytes, so it is kept (412).
        await withTimeLimit(
          file.copy(storage.bucket(bucket).file(name), {
            preconditionOpts: { ifGenerationMatch: 0 },
          }),
          deadlineMs,
          tooLate(`copy ${from} to ${destinationUri}`),
        );
      } catch (err) {
        if (isStatus(err, 412)) return;
        if (isStatus(err, 404)) {
          // A 404 names no side: the source generation, or the destination bucket. Only the first
          // is the input's fault; ask which (a failed check is treated as unknown: retried).
          const exists = await withTimeLimit(file.exists(), deadlineMs, tooLate(`read ${from}`))
            .then(([e]) => e)
            .catch(() => undefined);
          if (exists !== false) {
            throw new TransientError(
              'STORAGE.UNAVAILABLE',
              exists
                ? `could not copy ${from} to ${destinationUri}: the destination bucket was not found (check OUTPUT_URI_PREFIX)`
                : `could not copy ${from} to ${destinationUri}: Cloud Storage answered 404`,
              { cause: err, status: 404 },
            );
          }
        }
        throw mapStorageError(err, from, 'copy');
      }
    },
    async write(uri, content, contentType) {
      const m = splitUri(uri);
      try {
        // Create only (the function may hold objectCreator, which cannot overwrite): the report of
        // one object generation is the same on every delivery, so an existing one is kept.
        await withTimeLimit(
          storage
            .bucket(m[0])
            .file(m[1])
            .save(content, {
              resumable: false,
              contentType,
              preconditionOpts: { ifGenerationMatch: 0 },
            }),
          deadlineMs,
          tooLate(`write ${uri}`),
        );
      } catch (err) {
        if (isStatus(err, 412)) return;
        if (err instanceof BatchCourierError) throw err;
        throw new TransientError('STORAGE.UNAVAILABLE', `could not write ${uri}`, { cause: err });
      }
    },
    async writeStream(uri, chunks, contentType) {
      const [bucket, name] = splitUri(uri);
      const stall = tooLate(`write ${uri}`);
      // A stall watchdog, not a total deadline (a large digest takes long, but never stops moving).
      // It measures Cloud Storage only: armed when a chunk is handed to the upload (until the
      // upload asks for the next one) and after the last one (until the object is final), never
      // while the upload waits for our producer, which may be busy reading for a while.
      let timer: NodeJS.Timeout | undefined;
      let fail: (err: Error) => void = () => undefined;
      const stalled = new Promise<never>((_, reject) => (fail = reject));
      const arm = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => fail(stall()), deadlineMs);
      };
      async function* watched(): AsyncGenerator<Uint8Array> {
        const source = chunks[Symbol.asyncIterator]();
        for (;;) {
          clearTimeout(timer);
          const next = await source.next();
          if (next.done) break;
          arm();
          yield next.value;
        }
        arm();
      }
      // Create only, as `write`: the digest of one job is the same bytes on every attempt.
      const upload = storage
        .bucket(bucket)
        .file(name)
        .createWriteStream({
          resumable: true,
          contentType,
          preconditionOpts: { ifGenerationMatch: 0 },
        });
      const source = Readable.from(watched(), { objectMode: false });
      try {
        await Promise.race([pipeline(source, upload), stalled]);
      } catch (err) {
        source.destroy();
        upload.destroy();
        if (isStatus(err, 412)) return;
        if (err instanceof BatchCourierError) throw err;
        throw new TransientError('STORAGE.UNAVAILABLE', `could not write ${uri}`, { cause: err });
      } finally {
        clearTimeout(timer);
      }
    },
    async remove(uri) {
      const [bucket, name] = splitUri(uri);
      try {
        await withTimeLimit(
          storage.bucket(bucket).file(name).delete({ ignoreNotFound: true }),
          deadlineMs,
          tooLate(`delete ${uri}`),
        );
      } catch (err) {
        if (isStatus(err, 404)) return;
        if (err instanceof BatchCourierError) throw err;
        throw new TransientError('STORAGE.UNAVAILABLE', `could not delete ${uri}`, { cause: err });
      }
    },
  };
}

/** One media download: its body (decompressed if it came compressed), and its CRC32C check. */
interface MediaDownload {
  /** The bytes, read once. */
  chunks: AsyncIterable<Buffer>;
  /** Ends the download (its connection is not reused when it was not read to the end). */
  close(): void;
  /**
   * The bytes received are the object as stored (so they can be checked): then the read must end
   * with the CRC32C of `x-goog-hash`, and an answer without one fails, as with the client.
   */
  checkable: boolean;
  /** The object's CRC32C (base64) from `x-goog-hash`. */
  expectedCrc32c: string | undefined;
  /** The CRC32C (base64) of the bytes received so far, as sent (before decompression). */
  crc32c(): string;
}

/** Attempts of a download's request (before any byte), and the pause before each retry. */
const MEDIA_ATTEMPTS = 3;
const MEDIA_BACKOFF_MS = [250, 1000];

/**
 * Downloads of one object generation over the JSON API's media endpoint, with the client's own
 * endpoint (`STORAGE_EMULATOR_HOST` included) and credentials, each chunk as the socket delivers
 * it. The client's `createReadStream` passes every chunk through four streams (its HTTP library's
 * body, its own pass-throughs, its hash validator), CPU time spent on each of the tens of thousands
 * of chunks of a large input (README "Speed"); this reads the answer directly and computes the
 * CRC32C on the way, with the same rules: `Accept-Encoding: gzip` as the client sends, the check
 * applies to the bytes as stored (so an object stored gzip and sent gzip is checked, then
 * decompressed; one decompressed by Cloud Storage on the way cannot be checked, as with the
 * client), and a request answered 429 or 5xx, or refused before any byte, is tried again.
 */
function mediaDownloads(storage: Storage) {
  const endpoint = new URL(storage.apiEndpoint);
  const secure = endpoint.protocol === 'https:';
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  // With an emulator (a custom endpoint) the client sends no credentials, unless told to.
  const authenticated = !storage.customEndpoint || storage.useAuthWithCustomEndpoint === true;

  async function headersFor(url: string): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      'accept-encoding': 'gzip',
      'cache-control': 'no-store',
    };
    if (!authenticated) return headers;
    const auth: unknown = await storage.authClient.getRequestHeaders(url);
    // google-auth-library answers a plain object (version 9, the client's) or Headers (10).
    if (auth instanceof Headers) auth.forEach((v, k) => (headers[k.toLowerCase()] = v));
    else for (const [k, v] of Object.entries(auth as object)) headers[k.toLowerCase()] = String(v);
    return headers;
  }

  function request(url: string, headers: Record<string, string>, signal: AbortSignal) {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (secure ? httpsGet : httpGet)(url, { agent, headers, signal }, resolve);
      req.on('error', reject);
    });
  }

  async function answer(url: string, signal: AbortSignal): Promise<IncomingMessage> {
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      try {
        // Credentials may wait on a token server: the watchdog's abort ends that wait too.
        const res = await request(url, await untilAborted(headersFor(url), signal), signal);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return res;
        failure = await statusError(res);
        if (status !== 429 && status < 500) throw failure;
      } catch (err) {
        if (signal.aborted || err === failure) throw err;
        failure = err;
      }
      if (attempt >= MEDIA_ATTEMPTS) throw failure;
      await sleep(MEDIA_BACKOFF_MS[attempt - 1] ?? 1000, undefined, { signal });
    }
  }

  return {
    async open(
      bucket: string,
      name: string,
      generation: string,
      signal: AbortSignal,
    ): Promise<MediaDownload> {
      const url = new URL(
        `${endpoint.pathname.replace(/\/$/, '')}/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(name)}`,
        endpoint,
      );
      url.searchParams.set('alt', 'media');
      url.searchParams.set('generation', generation);
      const res = await answer(url.href, signal);
      const compressed = res.headers['content-encoding'] === 'gzip';
      const stored = res.headers['x-goog-stored-content-encoding'];
      const checkable = (stored === 'gzip' && compressed) || stored === 'identity';
      const expectedCrc32c = checkable ? hashOf(res.headers['x-goog-hash'], 'crc32c') : undefined;
      let crc = 0;
      const crc32cOf = (): string => crc32cBase64(crc);
      if (!compressed) {
        // The check on the way, in the one loop that reads the answer: no stream in between.
        const chunks = async function* (): AsyncGenerator<Buffer> {
          for await (const chunk of res as AsyncIterable<Buffer>) {
            crc = crc32c(chunk, crc);
            yield chunk;
          }
        };
        return {
          chunks: chunks(),
          close: () => res.destroy(),
          checkable,
          expectedCrc32c,
          crc32c: crc32cOf,
        };
      }
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          crc = crc32c(chunk, crc);
          done(null, chunk);
        },
      });
      const gunzip = pipelineCallback(res, tap, createGunzip(), () => undefined);
      return {
        chunks: gunzip,
        close: () => {
          gunzip.destroy();
          res.destroy();
        },
        checkable,
        expectedCrc32c,
        crc32c: crc32cOf,
      };
    },
  };
}

/** `promise`, or the signal's reason once it is aborted, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** One hash of an `x-goog-hash` header (`crc32c=…,md5=…`, possibly sent as two headers). */
function hashOf(header: string | string[] | undefined, kind: string): string | undefined {
  const parts = (Array.isArray(header) ? header : [header ?? '']).flatMap((h) => h.split(','));
  for (const part of parts) {
    const at = part.indexOf('=');
    if (part.slice(0, at).trim() === kind) return part.slice(at + 1).trim();
  }
  return undefined;
}

/** An error answer as an error with the status as `code` (what mapStorageError reads). */
async function statusError(res: IncomingMessage): Promise<Error> {
  let text = '';
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (text.length < 2048) text += chunk.toString('utf8');
  }
  let message = '';
  try {
    const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof m === 'string') message = m;
  } catch {
    // Not JSON: the status alone.
  }
  return Object.assign(
    new Error(`Cloud Storage answered ${res.statusCode}${message ? `: ${message}` : ''}`),
    { code: res.statusCode },
  );
}

/**
 * Classifies a failed read or copy of one generation: 404 → PermanentError `INPUT.NOT_FOUND`
 * (replaced or deleted); 403 → TransientError `STORAGE.PERMISSION_DENIED` (a missing or still
 * propagating grant, not a bad input); anything else → TransientError `STORAGE.UNAVAILABLE`.
 * Our own errors (a stall) pass unchanged.
 */
export function mapStorageError(
  err: unknown,
  uri: string,
  op: 'read' | 'copy' | 'list' = 'read',
): Error {
  if (err instanceof BatchCourierError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 404) {
    return new PermanentError(
      'INPUT.NOT_FOUND',
      `${uri} no longer exists: this generation was replaced by a newer upload or deleted before it was submitted`,
      { cause: err, status: 404 },
    );
  }
  if (code === 403) {
    // Not a bad input: an IAM grant is missing or still propagating after a deploy. Retried.
    return new TransientError(
      'STORAGE.PERMISSION_DENIED',
      `no permission to ${op} ${uri}: grant the function's service account roles/storage.objectViewer on the input bucket (and roles/storage.objectCreator on the output bucket); new grants can take a few minutes to apply`,
      { cause: err, status: 403 },
    );
  }
  return new TransientError('STORAGE.UNAVAILABLE', `could not ${op} ${uri}`, { cause: err });
}
