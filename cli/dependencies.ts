/**
 * The command's composition root: the product's own adapters (`createDependencies` of the
 * functions: the Firestore job store, the Cloud Storage reader, the Vertex AI client, the Pub/Sub
 * publisher), plus what only operators need: an uploader of new inputs (`retry`), the topic check
 * and the cloud-only checks of `doctor`. Like the functions' composition root, the only place of
 * the command that imports Google SDKs, each loaded when first needed.
 */
import { createDependencies } from '../functions/dependencies.js';
import type { CloudChecks } from '../shared/adapters/cloud-checks.js';
import type { InputUploader } from '../shared/adapters/gcs-input-upload.js';
import type { Config } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import type { EventPublisher, JobStore, ObjectReader, VertexJobs } from '../shared/ports.js';

/** What the commands use. */
export interface CliDependencies {
  jobs: JobStore;
  reader: ObjectReader;
  vertex: VertexJobs;
  publisher: EventPublisher;
  uploader(): Promise<InputUploader>;
  /** Whether COMPLETION_TOPIC exists (through the Pub/Sub client: works against emulators). */
  topicExists(): Promise<boolean>;
  /** The cloud-only checks; undefined against emulators. */
  cloud(): Promise<CloudChecks | undefined>;
}

/** The emulator variables that are set, by name. */
export function emulatorHosts(config: Config): Record<string, string> {
  const hosts: Record<string, string> = {};
  for (const name of [
    'STORAGE_EMULATOR_HOST',
    'FIRESTORE_EMULATOR_HOST',
    'PUBSUB_EMULATOR_HOST',
    'VERTEX_AI_EMULATOR_HOST',
  ] as const) {
    const value = config[name];
    if (value) hosts[name] = value;
  }
  return hosts;
}

/** Builds the command's dependencies; SDK clients are created on first use. */
export async function createCliDependencies(
  config: Config,
  stderr: (line: string) => void,
): Promise<CliDependencies> {
  // The product's adapters log only what goes wrong; a command shows that on stderr.
  const product = createDependencies(config, {
    log: createLogger('warning', (line) => stderr(line)),
  });
  // The submit target's set: store, reader, Vertex client; its publisher loads Pub/Sub on first use.
  const { jobs, reader, vertex, publisher } = await product.submit();
  const emulated = Object.keys(emulatorHosts(config)).length > 0;

  let storage: Promise<import('@google-cloud/storage').Storage> | undefined;
  const storageClient = (): Promise<import('@google-cloud/storage').Storage> =>
    (storage ??= import('@google-cloud/storage').then(
      ({ Storage }) => new Storage({ projectId: config.GOOGLE_CLOUD_PROJECT }),
    ));

  return {
    jobs,
    reader,
    vertex,
    publisher,
    async uploader() {
      const [client, { createGcsInputUploader }] = await Promise.all([
        storageClient(),
        import('../shared/adapters/gcs-input-upload.js'),
      ]);
      return createGcsInputUploader(client);
    },
    async topicExists() {
      const [{ PubSub }, { topicExists }] = await Promise.all([
        import('@google-cloud/pubsub'),
        import('../shared/adapters/pubsub-topic-check.js'),
      ]);
      const pubsub = new PubSub({ projectId: config.GOOGLE_CLOUD_PROJECT });
      try {
        return await topicExists(pubsub, config.GOOGLE_CLOUD_PROJECT, config.COMPLETION_TOPIC);
      } finally {
        await pubsub.close().catch(() => undefined);
      }
    },
    async cloud() {
      if (emulated) return undefined;
      const [{ GoogleAuth }, { createCloudChecks }] = await Promise.all([
        import('google-auth-library'),
        import('../shared/adapters/cloud-checks.js'),
      ]);
      const auth = new GoogleAuth({
        scopes: ['https://www.googleapis.com/auth/cloud-platform'],
        projectId: config.GOOGLE_CLOUD_PROJECT,
      });
      return createCloudChecks({ project: config.GOOGLE_CLOUD_PROJECT, auth });
    },
  };
}
