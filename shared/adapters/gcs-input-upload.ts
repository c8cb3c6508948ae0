/**
 * Uploads a new input object (with the custom metadata `model` and `location` that submitBatchJob
 * reads), create only: `batch-courier retry` sends a job's failed rows again as a new input, and a
 * second retry of the same job must not overwrite the first one's input (that would be yet another
 * generation, with yet another job and event).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Storage } from '@google-cloud/storage';
import { BatchCourierError, TransientError } from '../core/errors.js';
import { formatSeconds, withTimeLimit } from '../time-limit.js';

/** How long one upload may take. */
export const DEFAULT_UPLOAD_DEADLINE_MS = 300_000;

/** The outcome of {@link InputUploader.upload}. */
export type UploadOutcome =
  { created: true; generation: string } | { created: false; generation: string | undefined };

/** Uploads input objects. */
export interface InputUploader {
  /**
   * Creates `gs://bucket/name` with `content` (streamed: any size) and custom metadata, unless
   * the name exists (`created: false` with the existing generation, nothing written). Failures
   * are TransientError `STORAGE.UNAVAILABLE` or `STORAGE.PERMISSION_DENIED`.
   */
  upload(
    bucket: string,
    name: string,
    content: AsyncIterable<Uint8Array>,
    metadata: Record<string, string>,
  ): Promise<UploadOutcome>;
}

const statusOf = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;

/** Creates an uploader over a `Storage` client (which honours `STORAGE_EMULATOR_HOST`). */
export function createGcsInputUploader(
  storage: Storage,
  deadlineMs: number = DEFAULT_UPLOAD_DEADLINE_MS,
): InputUploader {
  return {
    async upload(bucket, name, content, metadata) {
      const uri = `gs://${bucket}/${name}`;
      const file = storage.bucket(bucket).file(name);
      try {
        // One multipart request whose body is streamed; create only (ifGenerationMatch=0).
        const sink = file.createWriteStream({
          resumable: false,
          contentType: 'application/jsonl',
          metadata: { metadata },
          preconditionOpts: { ifGenerationMatch: 0 },
        });
        const source = Readable.from(content, { objectMode: false });
        await withTimeLimit(
          pipeline(source, sink).catch((err: unknown) => {
            source.destroy();
            throw err;
          }),
          deadlineMs,
          () =>
            new TransientError(
              'STORAGE.UNAVAILABLE',
              `could not upload ${uri}: Cloud Storage did not answer within ${formatSeconds(deadlineMs)}`,
            ),
        );
        // The upload's answer is the new object's resource: the client keeps it on the file.
        return { created: true, generation: String(file.metadata.generation ?? '') };
      } catch (err) {
        if (err instanceof BatchCourierError) throw err;
        const status = statusOf(err);
        if (status === 412) {
          const existing = await file
            .getMetadata()
            .then(([m]) => String(m.generation ?? ''))
            .catch(() => undefined);
          return { created: false, generation: existing };
        }
        if (status === 403) {
          throw new TransientError(
            'STORAGE.PERMISSION_DENIED',
            `no permission to create ${uri}: grant your identity roles/storage.objectCreator on gs://${bucket}`,
            { cause: err, status: 403 },
          );
        }
        const detail = err instanceof Error ? `: ${err.message}` : '';
        throw new TransientError('STORAGE.UNAVAILABLE', `could not upload ${uri}${detail}`, {
          cause: err,
        });
      }
    },
  };
}
