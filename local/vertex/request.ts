/**
 * What the emulator accepts: a create request, checked strictly enough to catch our mistakes, and
 * the one `list` filter shape the product sends (see {@link parseJobFilter}). A request reads
 * JSONL files or a BigQuery table and writes JSONL files or a BigQuery table, in any combination:
 * each format with its own source or destination, exactly one of each, BigQuery only in a region.
 */
import { z } from 'zod';
import { isObject } from '../http.js';
import type { TableRef } from './bigquery.js';
import {
  BIGQUERY_URI,
  CREATE_REQUEST,
  CUSTOM_MODEL_FIELDS,
  invalid,
  OUTPUT_ONLY_FIELDS,
  PROJECT_MODEL,
  PUBLISHER_MODEL,
} from './api-facts.js';

/** Where a job reads its requests. */
export type Source = { kind: 'gcs'; uris: string[] } | { kind: 'bigquery'; table: TableRef };

/** Where a job writes its results: a folder prefix, or a dataset (and the table to create). */
export type Destination =
  | { kind: 'gcs'; prefix: string }
  | { kind: 'bigquery'; project: string; dataset: string; table?: string };

/** A valid create request: its fields as sent (echoed in the job), and what they mean. */
export interface CreateRequest {
  body: z.infer<typeof CREATE_REQUEST>;
  anthropic: boolean;
  labels: Record<string, string>;
  source: Source;
  destination: Destination;
}

type Body = z.infer<typeof CREATE_REQUEST>;

/** The parts of a `bq://` URI, or a 400 naming the field. */
function bigqueryParts(
  uri: string,
  field: string,
  expected: string,
): [string, string, string | undefined] {
  const m = BIGQUERY_URI.exec(uri);
  if (!m?.[1] || !m[2]) throw invalid(`Invalid ${field} "${uri}": expected ${expected}.`);
  return [m[1], m[2], m[3]];
}

/** The one source of `inputConfig`, the one its `instancesFormat` names. */
function sourceOf({ instancesFormat, gcsSource, bigquerySource }: Body['inputConfig']): Source {
  if (gcsSource && bigquerySource) {
    throw invalid('inputConfig: set only one of gcsSource and bigquerySource.');
  }
  if (instancesFormat === 'jsonl') {
    if (!gcsSource) throw invalid('inputConfig: instancesFormat "jsonl" needs gcsSource.');
    return { kind: 'gcs', uris: gcsSource.uris };
  }
  if (!bigquerySource) {
    throw invalid('inputConfig: instancesFormat "bigquery" needs bigquerySource.');
  }
  const { inputUri } = bigquerySource;
  const expected = 'bq://projectId.datasetId.tableId';
  const [project, dataset, table] = bigqueryParts(inputUri, 'bigquerySource.inputUri', expected);
  if (!table) throw invalid(`Invalid bigquerySource.inputUri "${inputUri}": expected ${expected}.`);
  return { kind: 'bigquery', table: { project, dataset, table } };
}

/**
 * The one destination of `outputConfig`. A project alone (`bq://projectId`), which the service
 * accepts, is refused: what Gemini jobs name the dataset they create then is not documented, and
 * the emulator would rather refuse than guess.
 */
function destinationOf(config: Body['outputConfig']): Destination {
  const { predictionsFormat, gcsDestination, bigqueryDestination } = config;
  if (gcsDestination && bigqueryDestination) {
    throw invalid('outputConfig: set only one of gcsDestination and bigqueryDestination.');
  }
  if (predictionsFormat === 'jsonl') {
    if (!gcsDestination) {
      throw invalid('outputConfig: predictionsFormat "jsonl" needs gcsDestination.');
    }
    return { kind: 'gcs', prefix: gcsDestination.outputUriPrefix };
  }
  if (!bigqueryDestination) {
    throw invalid('outputConfig: predictionsFormat "bigquery" needs bigqueryDestination.');
  }
  const { outputUri } = bigqueryDestination;
  if (/^bq:\/\/[^.]+$/.test(outputUri)) {
    throw invalid(
      `bigqueryDestination.outputUri "${outputUri}" names a project only, which this emulator does not take: name a dataset (bq://projectId.datasetId).`,
    );
  }
  const field = 'bigqueryDestination.outputUri';
  const expected = 'bq://projectId.datasetId or bq://projectId.datasetId.tableId';
  const [project, dataset, table] = bigqueryParts(outputUri, field, expected);
  return { kind: 'bigquery', project, dataset, ...(table ? { table } : {}) };
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
  const source = sourceOf(parsed.data.inputConfig);
  const destination = destinationOf(parsed.data.outputConfig);
  if (location === 'global' && (source.kind === 'bigquery' || destination.kind === 'bigquery')) {
    throw invalid(
      'BigQuery input and output are not supported in the global location: use a region.',
    );
  }
  return { body: parsed.data, anthropic, labels: parsed.data.labels ?? {}, source, destination };
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
