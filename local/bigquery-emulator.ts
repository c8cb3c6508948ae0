/** The BigQuery emulator's entry point beside the other emulators', for importers outside `local/`. */
export * from './bigquery/server.js';
