/**
 * Who may choose what: the models, regions and file URIs an upload may name. Anyone who can write
 * to the input bucket chooses the model (a price), the region (where data is processed) and, with
 * Gemini `fileData.fileUri`, which objects Vertex's service agent reads on their behalf. These
 * lists bound those choices; `*` lifts a bound.
 */
import type { Config } from '../config.js';
import { normalizeModel } from './models.js';

/** Models allowed when ALLOWED_MODELS is empty, besides DEFAULT_MODEL. */
export const DEFAULT_ALLOWED_MODELS: readonly string[] = [
  'gemini-2.5-flash',
  'gemini-2.5-flash-lite',
  'gemini-2.5-pro',
  'gemini-2.0-flash-001',
  'gemini-2.0-flash-lite-001',
  'claude-3-5-haiku',
  'claude-3-7-sonnet',
  'claude-sonnet-4',
  'claude-sonnet-4-5',
  'claude-haiku-4-5',
  'claude-opus-4-1',
];

/** Regions allowed when ALLOWED_LOCATIONS is empty, besides VERTEX_LOCATION and ANTHROPIC_LOCATION. */
export const DEFAULT_ALLOWED_LOCATIONS: readonly string[] = [
  'us-central1',
  'us-east5',
  'europe-west1',
  'europe-west4',
  'global',
];

/**
 * The comparable form of a model: its publisher path without a `projects/P/locations/L/` prefix
 * and without an `@version` suffix (an allowed entry without a version allows every version).
 */
function modelKey(model: string, keepVersion: boolean): string {
  const name = model.replace(/^projects\/[^/]+\/locations\/[^/]+\/(?=publishers\/)/, '');
  return keepVersion ? name : name.replace(/@[^/]*$/, '');
}

/** The allowed models of a configuration, normalised; `['*']` allows all. */
export function allowedModels(config: Config): string[] {
  if (config.ALLOWED_MODELS.includes('*')) return ['*'];
  const names =
    config.ALLOWED_MODELS.length > 0
      ? config.ALLOWED_MODELS
      : [config.DEFAULT_MODEL, ...DEFAULT_ALLOWED_MODELS];
  return [
    ...new Set(
      names.flatMap((n) => {
        try {
          return [normalizeModel(n)];
        } catch {
          return [];
        }
      }),
    ),
  ];
}

/** True when an input may use `model` (a normalised name). */
export function isModelAllowed(config: Config, model: string): boolean {
  const allowed = allowedModels(config);
  if (allowed.includes('*')) return true;
  return allowed.some((entry) =>
    entry.includes('@')
      ? modelKey(entry, true) === modelKey(model, true)
      : modelKey(entry, false) === modelKey(model, false),
  );
}

/** The allowed regions of a configuration; `['*']` allows all. */
export function allowedLocations(config: Config): string[] {
  if (config.ALLOWED_LOCATIONS.includes('*')) return ['*'];
  if (config.ALLOWED_LOCATIONS.length > 0) return [...new Set(config.ALLOWED_LOCATIONS)];
  return [
    ...new Set([config.VERTEX_LOCATION, config.ANTHROPIC_LOCATION, ...DEFAULT_ALLOWED_LOCATIONS]),
  ];
}

/** True when an input may run in `location`. */
export function isLocationAllowed(config: Config, location: string): boolean {
  const allowed = allowedLocations(config);
  return allowed.includes('*') || allowed.includes(location);
}

/** A `.` or `..` path segment, plain or percent-encoded, or a backslash. */
const CLIMBS = /(^|\/)(\.|%2e){1,2}(\/|$|\?|#)|\\|%5c/i;

/** Where the `fileUri`s of an input's requests may point. */
export interface FileUriRule {
  test(uri: string): boolean;
  /** The allowed prefixes, for messages. */
  describe: string;
}

/** The rule for an input in `inputBucket`: ALLOWED_FILE_URI_PREFIXES, or that bucket alone. */
export function fileUriRule(config: Config, inputBucket: string): FileUriRule | undefined {
  if (config.ALLOWED_FILE_URI_PREFIXES.includes('*')) return undefined;
  const prefixes =
    config.ALLOWED_FILE_URI_PREFIXES.length > 0
      ? config.ALLOWED_FILE_URI_PREFIXES.map((p) =>
          /^(gs|https):\/\/[^/]+$/.test(p) ? `${p}/` : p,
        )
      : [`gs://${inputBucket}/`];
  return {
    // A prefix match means nothing once a path may climb out of it: dot segments (plain or
    // percent-encoded) and backslashes are refused whatever the prefix.
    test: (uri) => !CLIMBS.test(uri) && prefixes.some((p) => uri.startsWith(p)),
    describe: `${prefixes.join(', ')} (ALLOWED_FILE_URI_PREFIXES)`,
  };
}
