/** The Cloud Storage emulator's entry point at its former path, for importers outside `local/`. */
export * from './storage/server.js';
