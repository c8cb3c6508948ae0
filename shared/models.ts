/**
 * Model names: short names are accepted as the genai SDK accepts them and normalised to full
 * publisher resource names (CONTRACT §3).
 */
import { InputError } from './errors.js';

/** Who serves a model: decides the line format and the default region. */
export type Provider = 'google' | 'anthropic';

const SIMPLE_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
const RESOURCE =
  /^(?:projects\/[^/\s]+\/locations\/[a-z0-9-]+\/)?publishers\/[a-z0-9-]+\/models\/[A-Za-z0-9._@-]+$|^projects\/[^/\s]+\/locations\/[a-z0-9-]+\/models\/[A-Za-z0-9._@-]+$/;

/**
 * `gemini-2.5-flash` → `publishers/google/models/gemini-2.5-flash`;
 * `claude-3-5-haiku` or `anthropic/claude-3-5-haiku` → `publishers/anthropic/models/claude-3-5-haiku`;
 * `publishers/...` and `projects/...` pass unchanged. Throws `INPUT.UNKNOWN_MODEL` otherwise.
 */
export function normalizeModel(name: string): string {
  const model = name.trim();
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

function unknownModel(name: string): InputError {
  return new InputError(
    'INPUT.UNKNOWN_MODEL',
    `model "${name.slice(0, 200)}" is not a model name: use e.g. gemini-2.5-flash, claude-3-5-haiku, anthropic/claude-3-5-haiku or publishers/google/models/gemini-2.5-flash`,
  );
}

/** The provider of a normalised model name. */
export function providerOf(model: string): Provider {
  return /(^|\/)publishers\/anthropic\/models\//.test(model) ? 'anthropic' : 'google';
}

/** The location named inside a `projects/P/locations/L/...` model, if any. */
export function locationInModel(model: string): string | undefined {
  return /^projects\/[^/]+\/locations\/([a-z0-9-]+)\//.exec(model)?.[1];
}
