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
export function createGcsObjectWriter(storage: Storage): ObjectWriter {
  return {
    async copy(source, destinationUri) {
      const [bucket, name] = splitUri(destinationUri);
      const from = `gs://${source.bucket}/${source.name}#${source.generation}`;
      try {
        // `generation` on the source file sends `sourceGeneration`: exactly the validated bytes are
        // copied, never a newer upload of the same name. Create only: a copy made by an earlier
        // attempt of this job is the same generation's bytes, so it is kept (412).
        await storage
          .bucket(source.bucket)
          .file(source.name, { generation: Number(source.generation) })
          .copy(storage.bucket(bucket).file(name), {
            preconditionOpts: { ifGenerationMatch: 0 },
          });
      } catch (err) {
        if (isStatus(err, 412)) return;
        throw mapStorageError(err, from);
      }
    },
    async write(uri, content, contentType) {
      const m = splitUri(uri);
      try {
        // Create only (the function may hold objectCreator, which cannot overwrite): the report of
        // one object generation is the same on every delivery, so an existing one is kept.
        await storage
          .bucket(m[0])
          .file(m[1])
          .save(content, {
            resumable: false,
            contentType,
            preconditionOpts: { ifGenerationMatch: 0 },
          });
      } catch (err) {
        if (isStatus(err, 412)) return;
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
      `${uri} no longer exists: this generation was replaced by a newer upload or deleted before it was submitted`,
      { cause: err, status: 404 },
    );
  }
  if (code === 403) {
    // Not a bad input: an IAM grant is missing or still propagating after a deploy. Retried.
    return new TransientError(
      'STORAGE.PERMISSION_DENIED',
      `no permission to read ${uri}: grant the function's service account roles/storage.objectViewer on the input bucket (and roles/storage.objectCreator on the output bucket); new grants can take a few minutes to apply`,
      { cause: err, status: 403 },
    );
  }
  return new TransientError('STORAGE.UNAVAILABLE', `could not read ${uri}`, { cause: err });
}
