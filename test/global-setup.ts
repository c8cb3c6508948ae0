/**
 * Starts the emulators the integration tests talk to over the wire, once per run, and tells the
 * test files where they are (vitest `provide`/`inject`). `BATCH_COURIER_EMULATORS=auto|gcloud|builtin`
 * chooses: `gcloud` uses the official Firestore and Pub/Sub emulators from the Google Cloud CLI;
 * `builtin` uses only what this repository ships (no Firestore wire tests are possible then: the
 * Firestore contract suite runs against the in-memory store, and the run says so).
 */
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import {
  resolveEmulatorMode,
  startFirestoreEmulator,
  startPubSubEmulator,
  type RunningEmulator,
} from '../local/gcloud-emulators.js';

declare module 'vitest' {
  export interface ProvidedContext {
    emulatorMode: 'gcloud' | 'builtin';
    firestoreEmulatorHost: string;
    gcloudPubSubEmulatorHost: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const mode = resolveEmulatorMode(process.env.BATCH_COURIER_EMULATORS);
  const running: RunningEmulator[] = [];
  let firestore = '';
  let pubsub = '';
  if (mode === 'gcloud') {
    const [fs, ps] = await Promise.all([startFirestoreEmulator(), startPubSubEmulator()]);
    running.push(fs, ps);
    firestore = fs.host;
    pubsub = ps.host;
  }
  project.provide('emulatorMode', mode);
  project.provide('firestoreEmulatorHost', firestore);
  project.provide('gcloudPubSubEmulatorHost', pubsub);
  process.stdout.write(
    mode === 'gcloud'
      ? `emulators: gcloud (official Firestore at ${firestore}, official Pub/Sub at ${pubsub}) + builtin storage, Pub/Sub, BigQuery and Vertex AI\n`
      : 'emulators: builtin (no gcloud: Firestore contract tests run against the in-memory store only; builtin storage, Pub/Sub, BigQuery and Vertex AI)\n',
  );
  return async () => {
    await Promise.all(running.map((e) => e.stop()));
  };
}
