/** The Vertex AI emulator's entry point at its former path, for importers outside `local/`. */
export * from './vertex/server.js';
