/** The builtin Pub/Sub emulator's entry point at its former path, for importers outside `local/`. */
export * from './pubsub/server.js';
