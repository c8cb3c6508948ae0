/**
 * Model names: short names are accepted as the genai SDK accepts them and normalised to full
 * publisher resource names (`publishers/{publisher}/models/{id}`, see
 * https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs#BatchPredictionJob).
 */
import { InputError } from './errors.js';

/** Who serves a model: decides the line format and the default region. */
export type Provider = 'google' | 'anthropic';

/**
 * The longest model name accepted, in characters. A full name
 * (`projects/{P}/locations/{L}/publishers/{publisher}/models/{id}`) is well under it; the name
 * comes from custom metadata (up to 8 KiB) and ends up in records, events and Pub/Sub attributes.
 */
export const MAX_MODEL_NAME_LENGTH = 256;

/** How much of a refused name an error message quotes. */
const QUOTED_CHARACTERS = 64;

/** The characters of a model name: ASCII letters, digits, `.`, `_`, `@`, `-`, and `/` between parts. */
const MODEL_NAME_CHARACTERS = /^[A-Za-z0-9._@/-]+$/;

const SIMPLE_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
const RESOURCE =
  /^(?:projects\/[^/\s]+\/locations\/[a-z0-9-]+\/)?publishers\/[a-z0-9-]+\/models\/[A-Za-z0-9._@-]+$|^projects\/[^/\s]+\/locations\/[a-z0-9-]+\/models\/[A-Za-z0-9._@-]+$/;

/**
 * `gemini-2.5-flash` → `publishers/google/models/gemini-2.5-flash`;
 * `claude-3-5-haiku` or `anthropic/claude-3-5-haiku` → `publishers/anthropic/models/claude-3-5-haiku`;
 * `publishers/...` and `projects/...` pass unchanged. Throws `INPUT.UNKNOWN_MODEL` otherwise,
 * also for a name longer than {@link MAX_MODEL_NAME_LENGTH} characters or with a character
 * other than ASCII letters, digits, `.`, `_`, `@`, `-` and `/` (surrounding blanks are ignored).
 */
export function normalizeModel(name: string): string {
  const model = name.trim();
  if (model.length > MAX_MODEL_NAME_LENGTH) {
    throw unknownModel(name, `is longer than ${MAX_MODEL_NAME_LENGTH} characters`);
  }
  if (!MODEL_NAME_CHARACTERS.test(model)) {
    throw unknownModel(
      name,
      model === ''
        ? 'is empty'
        : "may only contain ASCII letters, digits, '.', '_', '@', '-' and '/'",
    );
  }
  if (model.startsWith('publishers/') || model.startsWith('projects/')) {
    if (RESOURCE.test(model)) return model;
    throw unknownModel(name);
  }
  const slash = model.indexOf('/');
  if (slash >= 0) {
    const publisher = model.slice(0, slash);
    const id = model.slice(slash + 1).replace(/^models\//, '');
    if (publisher === 'models' && SIMPLE_ID.test(id)) return `publishers/google/models/${id}`;
    if (/^[a-z0-9-]+$/.test(publisher) && SIMPLE_ID.test(id)) {
      return `publishers/${publisher}/models/${id}`;
    }
    throw unknownModel(name);
  }
  if (!SIMPLE_ID.test(model)) throw unknownModel(name);
  return model.startsWith('claude')
    ? `publishers/anthropic/models/${model}`
    : `publishers/google/models/${model}`;
}

function unknownModel(name: string, problem = 'is not a model name'): InputError {
  return new InputError(
    'INPUT.UNKNOWN_MODEL',
    `model ${quoteExcerpt(name.trim())} ${problem}: use e.g. gemini-2.5-flash, claude-3-5-haiku, anthropic/claude-3-5-haiku or publishers/google/models/gemini-2.5-flash`,
  );
}

/**
 * The first {@link QUOTED_CHARACTERS} characters of a name as a JSON string (control characters
 * escaped), never splitting a character; `…` and the full length mark a longer name.
 */
function quoteExcerpt(name: string): string {
  const chars = [...name];
  if (chars.length <= QUOTED_CHARACTERS) return JSON.stringify(name);
  return `${JSON.stringify(chars.slice(0, QUOTED_CHARACTERS).join(''))}… (${chars.length} characters)`;
}

/** The provider of a normalised model name. */
export function providerOf(model: string): Provider {
  return /(^|\/)publishers\/anthropic\/models\//.test(model) ? 'anthropic' : 'google';
}

/** The location named inside a `projects/P/locations/L/...` model, if any. */
export function locationInModel(model: string): string | undefined {
  return /^projects\/[^/]+\/locations\/([a-z0-9-]+)\//.exec(model)?.[1];
}
