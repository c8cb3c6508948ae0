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
 *   - `pollFloor`: that read, and one Vertex AI read (google-auth-library and the product's REST
 *     client): a poll run that finds a job outstanding asks Vertex AI about it.
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

/** {@link jobStoreFloor}, then the Vertex AI client loaded and one job asked for. */
export async function pollFloor(): Promise<void> {
  await jobStoreFloor();
  const [{ default: authLibrary }, { createVertexClient }] = await Promise.all([
    import('google-auth-library'),
    import('../shared/adapters/vertex-rest-client.js'),
  ]);
  // A static token, never refreshed, as the functions use with an emulator.
  const auth = new authLibrary.OAuth2Client();
  auth.setCredentials({ access_token: 'emulator', expiry_date: Date.now() + 3600e3 });
  const vertex = createVertexClient({
    project: process.env.GOOGLE_CLOUD_PROJECT ?? 'unknown',
    auth,
    emulatorHost: process.env.VERTEX_AI_EMULATOR_HOST,
  });
  const location = process.env.VERTEX_LOCATION ?? 'us-central1';
  // A job that does not exist: the answer (not found) is the round trip measured.
  await vertex
    .get(`projects/${process.env.GOOGLE_CLOUD_PROJECT}/locations/${location}/batchPredictionJobs/0`)
    .catch(() => undefined);
}
