/**
 * What the emulator accepts: a create request, checked strictly enough to catch our mistakes, and
 * the one `list` filter shape the product sends (see {@link parseJobFilter}).
 */
import { isObject } from '../http.js';
import {
  CUSTOM_MODEL_FIELDS,
  GCS_OBJECT,
  GCS_PREFIX,
  invalid,
  LABEL_KEY,
  LABEL_VALUE,
  MAX_DISPLAY_NAME_CHARS,
  MAX_LABELS,
  OUTPUT_ONLY_FIELDS,
  PROJECT_MODEL,
  PUBLISHER_MODEL,
  SETTABLE_FIELDS,
} from './api-facts.js';

type Json = Record<string, unknown>;

/** A valid create request. */
export interface CreateRequest {
  displayName: string;
  model: string;
  anthropic: boolean;
  inputUris: string[];
  outputUriPrefix: string;
  labels: Record<string, string>;
  /** The settable fields as sent, echoed in the job. */
  body: Json;
}

function object(value: unknown, field: string, known: string[]): Json {
  if (value === undefined) throw invalid(`Required field is not set: ${field}.`);
  if (!isObject(value)) throw invalid(`Invalid value at '${field}': expected an object.`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalid(`Invalid JSON payload received. Unknown name "${key}" at '${field}'.`);
    }
  }
  return value;
}

function string(value: unknown, field: string): string {
  if (value === undefined || value === '') throw invalid(`Required field is not set: ${field}.`);
  if (typeof value !== 'string') throw invalid(`Invalid value at '${field}': expected a string.`);
  return value;
}

/** Validates the body of `batchPredictionJobs.create` in `location`; a 400 on the first problem. */
export function validateCreate(body: unknown, location: string): CreateRequest {
  if (!isObject(body)) throw invalid('Invalid JSON payload received. Expected an object.');
  for (const key of Object.keys(body)) {
    if (OUTPUT_ONLY_FIELDS.has(key)) throw invalid(`Field '${key}' is output only.`);
    if (CUSTOM_MODEL_FIELDS.has(key)) {
      throw invalid(`Field '${key}' is not supported for batch prediction with publisher models.`);
    }
    if (!SETTABLE_FIELDS.includes(key)) {
      throw invalid(`Invalid JSON payload received. Unknown name "${key}": Cannot find field.`);
    }
  }
  const displayName = string(body.displayName, 'displayName');
  if ([...displayName].length > MAX_DISPLAY_NAME_CHARS) {
    throw invalid(`displayName must be at most ${MAX_DISPLAY_NAME_CHARS} characters.`);
  }
  const model = string(body.model, 'model');
  const publisher = PUBLISHER_MODEL.exec(model);
  const inProject = PROJECT_MODEL.exec(model);
  if (!publisher && !inProject) {
    throw invalid(
      `Invalid model resource name "${model}": expected publishers/{google|anthropic}/models/{id} or projects/{project}/locations/{location}/...`,
    );
  }
  if (inProject && inProject[1] !== location) {
    throw invalid(`Model ${model} is not in location ${location}.`);
  }
  const anthropic = (publisher?.[1] ?? inProject?.[2]) === 'anthropic';

  const input = object(body.inputConfig, 'inputConfig', [
    'instancesFormat',
    'gcsSource',
    'bigquerySource',
  ]);
  if (string(input.instancesFormat, 'inputConfig.instancesFormat') !== 'jsonl') {
    throw invalid('inputConfig.instancesFormat must be jsonl for publisher models.');
  }
  if (input.bigquerySource !== undefined)
    throw invalid('bigquerySource cannot be used with jsonl.');
  const uris = object(input.gcsSource, 'inputConfig.gcsSource', ['uris']).uris;
  if (!Array.isArray(uris) || uris.length === 0) {
    throw invalid('Required field is not set: inputConfig.gcsSource.uris.');
  }
  const inputUris = uris.map((uri, i) => {
    if (typeof uri !== 'string' || !GCS_OBJECT.test(uri)) {
      throw invalid(`inputConfig.gcsSource.uris[${i}] is not a gs://bucket/object URI.`);
    }
    return uri;
  });

  const output = object(body.outputConfig, 'outputConfig', [
    'predictionsFormat',
    'gcsDestination',
    'bigqueryDestination',
  ]);
  if (string(output.predictionsFormat, 'outputConfig.predictionsFormat') !== 'jsonl') {
    throw invalid('outputConfig.predictionsFormat must be jsonl for publisher models.');
  }
  if (output.bigqueryDestination !== undefined) {
    throw invalid('bigqueryDestination cannot be used with jsonl.');
  }
  const destination = object(output.gcsDestination, 'outputConfig.gcsDestination', [
    'outputUriPrefix',
  ]);
  const outputUriPrefix = string(
    destination.outputUriPrefix,
    'outputConfig.gcsDestination.outputUriPrefix',
  );
  if (!GCS_PREFIX.test(outputUriPrefix)) {
    throw invalid('outputConfig.gcsDestination.outputUriPrefix is not a gs://bucket[/prefix] URI.');
  }

  const labels: Record<string, string> = {};
  if (body.labels !== undefined) {
    if (!isObject(body.labels)) throw invalid("Invalid value at 'labels': expected a map.");
    const entries = Object.entries(body.labels);
    if (entries.length > MAX_LABELS) throw invalid(`At most ${MAX_LABELS} labels are allowed.`);
    for (const [key, value] of entries) {
      if (!LABEL_KEY.test(key)) {
        throw invalid(
          `Label key "${key}" is invalid: 1-63 lowercase letters, digits, '_' or '-', starting with a letter.`,
        );
      }
      if (typeof value !== 'string' || !LABEL_VALUE.test(value)) {
        throw invalid(
          `Label value of "${key}" is invalid: at most 63 lowercase letters, digits, '_' or '-'.`,
        );
      }
      labels[key] = value;
    }
  }
  return { displayName, model, anthropic, inputUris, outputUriPrefix, labels, body };
}

/** A parsed filter: every group must hold, and a group holds when one of its labels matches. */
export type JobFilter = [key: string, value: string][][];

/**
 * Parses the filter shape the product sends (`labels.batch_courier="v1" AND (labels.job_id="a" OR
 * labels.job_id="b" …)`): `labels.KEY="VALUE"` terms joined by AND, each one a term or an OR of
 * terms, with or without parentheses. An empty filter matches every job. Anything else (other
 * fields, unquoted values, NOT, nesting, label keys with `-`, which AIP-160 also reads as negation)
 * is a 400: the emulator would rather refuse than guess what the service does with it.
 */
export function parseJobFilter(filter: string): JobFilter {
  const refuse = () =>
    invalid(`Invalid filter "${filter}": only labels.KEY="VALUE" terms joined by AND and OR.`);
  // Quoted values out of the way first, so that nothing inside them reads as syntax.
  const values: string[] = [];
  const shape = filter.replace(/"((?:[^"\\]|\\.)*)"/g, (_, value: string) => {
    values.push(value.replace(/\\(.)/g, '$1'));
    return `"${values.length - 1}"`;
  });
  if (shape.trim() === '') return [];
  return shape
    .trim()
    .split(/\s+AND\s+/)
    .map((group) =>
      (/^\((.*)\)$/s.exec(group)?.[1] ?? group).split(/\s+OR\s+/).map((term) => {
        const m = /^labels\.([a-z][a-z0-9_]*)\s*=\s*"(\d+)"$/.exec(term.trim());
        if (!m?.[1]) throw refuse();
        return [m[1], values[Number(m[2])] ?? ''];
      }),
    );
}

/** Whether a job's labels satisfy a parsed filter. */
export function matchesFilter(filter: JobFilter, labels: Record<string, string>): boolean {
  return filter.every((group) => group.some(([key, value]) => labels[key] === value));
}
