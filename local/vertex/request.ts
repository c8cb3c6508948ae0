/**
 * What the emulator accepts: a create request, checked strictly enough to catch our mistakes, and
 * the one `list` filter shape the product sends (see {@link parseJobFilter}).
 */
import { z } from 'zod';
import { isObject } from '../http.js';
import {
  CREATE_REQUEST,
  CUSTOM_MODEL_FIELDS,
  invalid,
  OUTPUT_ONLY_FIELDS,
  PROJECT_MODEL,
  PUBLISHER_MODEL,
} from './api-facts.js';

/** A valid create request: its fields as sent (echoed in the job), and what they mean. */
export interface CreateRequest {
  body: z.infer<typeof CREATE_REQUEST>;
  anthropic: boolean;
  labels: Record<string, string>;
}

/** Validates the body of `batchPredictionJobs.create` in `location`; a 400 names what is wrong. */
export function validateCreate(body: unknown, location: string): CreateRequest {
  for (const key of Object.keys(isObject(body) ? body : {})) {
    if (OUTPUT_ONLY_FIELDS.has(key)) throw invalid(`Field '${key}' is output only.`);
    if (CUSTOM_MODEL_FIELDS.has(key)) throw invalid(`Field '${key}' is not for publisher models.`);
  }
  const parsed = CREATE_REQUEST.safeParse(body);
  if (!parsed.success) {
    throw invalid(`Invalid create request: ${z.prettifyError(parsed.error).replace(/\n/g, ' ')}`);
  }
  const { model } = parsed.data;
  const publisher = PUBLISHER_MODEL.exec(model);
  const inProject = PROJECT_MODEL.exec(model);
  if (!publisher && !inProject) {
    throw invalid(`Invalid model "${model}": expected publishers/{google|anthropic}/models/{id}.`);
  }
  if (inProject && inProject[1] !== location) {
    throw invalid(`Model ${model} is not in location ${location}.`);
  }
  const anthropic = (publisher?.[1] ?? inProject?.[2]) === 'anthropic';
  return { body: parsed.data, anthropic, labels: parsed.data.labels ?? {} };
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
