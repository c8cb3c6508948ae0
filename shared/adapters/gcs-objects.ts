/**
 * Cloud Storage: the {@link ObjectReader} streams one exact generation of an object; the
 * {@link ObjectWriter} writes rejection reports.
 */
import type { Storage } from '@google-cloud/storage';
import { PermanentError, TransientError } from '../errors.js';
import type { ObjectReader, ObjectWriter } from '../ports.js';

/** Creates a reader over a `Storage` client (which honours `STORAGE_EMULATOR_HOST`). */
export function createGcsObjectReader(storage: Storage): ObjectReader {
  return {
    async *read(bucket, name, generation) {
      const uri = `gs://${bucket}/${name}#${generation}`;
      const stream = storage
        .bucket(bucket)
        .file(name, { generation: Number(generation) })
        .createReadStream();
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } catch (err) {
        throw mapStorageError(err, uri);
      } finally {
        stream.destroy();
      }
    },
  };
}

/** Creates a writer of small objects over a `Storage` client. */
export function createGcsObjectWriter(storage: Storage): ObjectWriter {
  return {
    async write(uri, content, contentType) {
      const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
      if (!m?.[1] || !m[2])
        throw new PermanentError('STORAGE.UNAVAILABLE', `not an object URI: ${uri}`);
      try {
        // Create only (the function may hold objectCreator, which cannot overwrite): the report of
        // one object generation is the same on every delivery, so an existing one is kept.
        await storage
          .bucket(m[1])
          .file(m[2])
          .save(content, {
            resumable: false,
            contentType,
            preconditionOpts: { ifGenerationMatch: 0 },
          });
      } catch (err) {
        const e = err as { code?: unknown; status?: unknown } | null;
        if (e?.code === 412 || e?.status === 412) return;
        throw new TransientError('STORAGE.UNAVAILABLE', `could not write ${uri}`, { cause: err });
      }
    },
  };
}

function mapStorageError(err: unknown, uri: string): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 404) {
    return new PermanentError(
      'INPUT.NOT_FOUND',
      `${uri} no longer exists (deleted or overwritten before it was read)`,
      { cause: err, status: 404 },
    );
  }
  if (code === 403) {
    return new PermanentError('INPUT.NOT_FOUND', `no permission to read ${uri}`, {
      cause: err,
      status: 403,
    });
  }
  return new TransientError('STORAGE.UNAVAILABLE', `could not read ${uri}`, { cause: err });
}
