/**
 * The Cloud Storage {@link ObjectReader}: streams one exact generation of an object.
 */
import type { Storage } from '@google-cloud/storage';
import { PermanentError, TransientError } from '../errors.js';
import type { ObjectReader } from '../ports.js';

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
