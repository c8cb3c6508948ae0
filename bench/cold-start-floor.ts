/**
 * Floors of a first request, for `npm run bench:cold-start`: bundled like a function (same esbuild
 * options, each client a chunk loaded on first use), each makes the fewest calls through the
 * product's own adapters that every invocation of a function makes, with nothing else: no
 * configuration check, no handler, no other client.
 *
 *   - `jobStoreFloor`: one job store read (Firestore). Both functions make one on every
 *     invocation: submit records the input, poll reads what is outstanding.
 *   - `submitFloor`: that read, and one Cloud Storage listing. Every valid upload also reads its
 *     object (and creates a Vertex AI job, left out here).
 */
import type { Storage } from '@google-cloud/storage';

/** Loads the Firestore client and reads one (absent) record through the job store. */
export async function jobStoreFloor(): Promise<void> {
  const [{ default: firestore }, { createFirestoreJobStore }] = await Promise.all([
    import('@google-cloud/firestore'),
    import('../shared/adapters/firestore-job-store.js'),
  ]);
  const db = new firestore.Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT });
  await createFirestoreJobStore(db, process.env.JOBS_COLLECTION ?? 'jobs').get('cold-start-floor');
}

/** {@link jobStoreFloor}, then the Cloud Storage client loaded and one folder listed. */
export async function submitFloor(): Promise<void> {
  await jobStoreFloor();
  const [storage, { createGcsObjectReader }] = await Promise.all([
    import('@google-cloud/storage'),
    import('../shared/adapters/gcs-objects.js'),
  ]);
  const bucket = /^gs:\/\/([^/]+)/.exec(process.env.OUTPUT_URI_PREFIX ?? '')?.[1] ?? 'unknown';
  const client: Storage = new storage.Storage({ projectId: process.env.GOOGLE_CLOUD_PROJECT });
  await createGcsObjectReader(client).list(bucket, 'cold-start-floor/');
}
