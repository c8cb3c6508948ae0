import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLE_NAMES, ConfigError, loadConfig } from '../../shared/config.js';

const REQUIRED = {
  GOOGLE_CLOUD_PROJECT: 'demo-project',
  OUTPUT_URI_PREFIX: 'gs://out-bucket/results/',
  COMPLETION_TOPIC: 'batch-events',
};

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(REQUIRED);
    expect(config).toMatchObject({
      GOOGLE_CLOUD_PROJECT: 'demo-project',
      VERTEX_LOCATION: 'us-central1',
      DEFAULT_MODEL: 'publishers/google/models/gemini-2.5-flash',
      ANTHROPIC_LOCATION: 'us-east5',
      OUTPUT_URI_PREFIX: 'gs://out-bucket/results',
      INPUT_PREFIX: '',
      COMPLETION_TOPIC: 'batch-events',
      JOBS_COLLECTION: 'batchJobs',
      MAX_EVENT_AGE_SECONDS: 86400,
      LOG_LEVEL: 'info',
      ANTHROPIC_MAX_CONCURRENT_JOBS: 4,
      MAX_JOB_AGE_HOURS: 96,
      MAX_QUEUE_HOURS: 72,
      ALLOWED_MODELS: [],
      ALLOWED_LOCATIONS: [],
      ALLOWED_FILE_URI_PREFIXES: [],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names every missing required variable in one error', () => {
    try {
      loadConfig({});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toEqual([
        'GOOGLE_CLOUD_PROJECT: is required',
        'OUTPUT_URI_PREFIX: is required',
        'COMPLETION_TOPIC: is required',
      ]);
    }
  });

  it.each([
    ['GOOGLE_CLOUD_PROJECT', 'Bad_Project'],
    ['VERTEX_LOCATION', 'Mars 1'],
    ['ANTHROPIC_LOCATION', 'us_east5'],
    ['OUTPUT_URI_PREFIX', 's3://bucket'],
    ['OUTPUT_URI_PREFIX', 'gs://'],
    ['COMPLETION_TOPIC', 'projects/x/subscriptions/y'],
    ['JOBS_COLLECTION', 'a/b'],
    ['MAX_EVENT_AGE_SECONDS', '-5'],
    ['MAX_EVENT_AGE_SECONDS', 'soon'],
    ['LOG_LEVEL', 'verbose'],
    ['FIRESTORE_EMULATOR_HOST', 'localhost'],
    ['STORAGE_EMULATOR_HOST', 'localhost:9000'],
    ['VERTEX_AI_EMULATOR_HOST', 'http://x:1'],
    ['MAX_QUEUE_HOURS', '0'],
    ['MAX_QUEUE_HOURS', 'forever'],
    ['MAX_JOB_AGE_HOURS', '-1'],
    ['ALLOWED_MODELS', 'gemini-2.5-flash, rm -rf /'],
    ['ALLOWED_LOCATIONS', 'us-central1,Mars'],
    ['ALLOWED_FILE_URI_PREFIXES', 's3://bucket/'],
  ])('refuses a malformed %s (%s)', (name, value) => {
    expect(() => loadConfig({ ...REQUIRED, [name]: value })).toThrow(new RegExp(`${name}: `));
  });

  it('reports malformed and missing variables together', () => {
    expect(() => loadConfig({ GOOGLE_CLOUD_PROJECT: 'demo-project', LOG_LEVEL: 'loud' })).toThrow(
      /OUTPUT_URI_PREFIX: is required; COMPLETION_TOPIC: is required; LOG_LEVEL: /,
    );
  });

  it.each([
    ['VERTEX_LOCATION', 'global', 'global'],
    ['LOG_LEVEL', 'DEBUG', 'debug'],
    ['MAX_EVENT_AGE_SECONDS', '60', 60],
    [
      'COMPLETION_TOPIC',
      'projects/demo-project/topics/events',
      'projects/demo-project/topics/events',
    ],
    ['VERTEX_LOCATION', '', 'us-central1'],
    ['STORAGE_EMULATOR_HOST', 'http://127.0.0.1:9023', 'http://127.0.0.1:9023'],
    ['FIRESTORE_EMULATOR_HOST', '127.0.0.1:8080', '127.0.0.1:8080'],
  ])('accepts %s=%s', (name, value, expected) => {
    expect(
      loadConfig({ ...REQUIRED, [name]: value })[name as keyof ReturnType<typeof loadConfig>],
    ).toBe(expected);
  });

  it.each([
    [
      'ALLOWED_MODELS',
      'gemini-2.5-flash, claude-3-5-haiku@20241022,',
      ['gemini-2.5-flash', 'claude-3-5-haiku@20241022'],
    ],
    ['ALLOWED_MODELS', '*', ['*']],
    ['ALLOWED_MODELS', '', []],
    ['ALLOWED_LOCATIONS', 'us-central1 , global', ['us-central1', 'global']],
    [
      'ALLOWED_FILE_URI_PREFIXES',
      'gs://media/, https://example.com/',
      ['gs://media/', 'https://example.com/'],
    ],
  ])('reads the list %s=%s', (name, value, expected) => {
    expect(
      loadConfig({ ...REQUIRED, [name]: value })[name as keyof ReturnType<typeof loadConfig>],
    ).toEqual(expected);
  });

  it('lists exactly the deployed variables', () => {
    expect([...CONFIG_VARIABLE_NAMES].sort()).toEqual(
      [
        'GOOGLE_CLOUD_PROJECT',
        'VERTEX_LOCATION',
        'DEFAULT_MODEL',
        'ANTHROPIC_LOCATION',
        'OUTPUT_URI_PREFIX',
        'INPUT_PREFIX',
        'COMPLETION_TOPIC',
        'JOBS_COLLECTION',
        'MAX_EVENT_AGE_SECONDS',
        'LOG_LEVEL',
        'ANTHROPIC_MAX_CONCURRENT_JOBS',
        'MAX_JOB_AGE_HOURS',
        'MAX_QUEUE_HOURS',
        'ALLOWED_MODELS',
        'ALLOWED_LOCATIONS',
        'ALLOWED_FILE_URI_PREFIXES',
        'ALLOWED_BIGQUERY_DATASETS',
        'MAX_ESTIMATED_COST_USD',
        'PRICE_TABLE',
        'RETRY_FAILED_ROWS',
      ].sort(),
    );
  });

  it('ALLOWED_BIGQUERY_DATASETS: none by default, project.dataset names or *', () => {
    expect(loadConfig(REQUIRED).ALLOWED_BIGQUERY_DATASETS).toEqual([]);
    expect(
      loadConfig({ ...REQUIRED, ALLOWED_BIGQUERY_DATASETS: 'acme-prod.prompts, acme-prod.out' })
        .ALLOWED_BIGQUERY_DATASETS,
    ).toEqual(['acme-prod.prompts', 'acme-prod.out']);
    expect(() => loadConfig({ ...REQUIRED, ALLOWED_BIGQUERY_DATASETS: 'prompts' })).toThrow(
      /ALLOWED_BIGQUERY_DATASETS: .*must be project\.dataset names/,
    );
  });

  it('BIGQUERY_EMULATOR_HOST: host:port or http://host:port', () => {
    for (const host of ['localhost:9050', 'http://127.0.0.1:9050']) {
      expect(loadConfig({ ...REQUIRED, BIGQUERY_EMULATOR_HOST: host }).BIGQUERY_EMULATOR_HOST).toBe(
        host,
      );
    }
    expect(() => loadConfig({ ...REQUIRED, BIGQUERY_EMULATOR_HOST: 'localhost' })).toThrow(
      /BIGQUERY_EMULATOR_HOST/,
    );
  });

  it('MAX_ESTIMATED_COST_USD: 0 (no limit) by default, a number of dollars otherwise', () => {
    expect(loadConfig(REQUIRED).MAX_ESTIMATED_COST_USD).toBe(0);
    expect(loadConfig({ ...REQUIRED, MAX_ESTIMATED_COST_USD: '12.5' }).MAX_ESTIMATED_COST_USD).toBe(
      12.5,
    );
    expect(() => loadConfig({ ...REQUIRED, MAX_ESTIMATED_COST_USD: '-1' })).toThrow(
      /MAX_ESTIMATED_COST_USD: must be 0 \(no limit\) or a positive amount/,
    );
  });

  it('PRICE_TABLE: the built-in table by default; JSON merged over it, model by model', () => {
    const builtIn = loadConfig(REQUIRED).PRICE_TABLE;
    expect(builtIn.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(builtIn.models['gemini-2.5-flash']).toBeDefined();
    const merged = loadConfig({
      ...REQUIRED,
      PRICE_TABLE: JSON.stringify({
        date: '2026-11-01',
        models: {
          'gemini-2.5-flash': { input: 1, output: 2 },
          'my-tuned-model': { input: 3, output: 4 },
        },
      }),
    }).PRICE_TABLE;
    expect(merged.date).toBe('2026-11-01');
    // Thinking defaults to the output price, cached input to the input price.
    expect(merged.models['gemini-2.5-flash']).toMatchObject({
      input: 1,
      output: 2,
      thinking: 2,
      cached: 1,
    });
    expect(merged.models['my-tuned-model']).toMatchObject({ input: 3, output: 4 });
    expect(merged.models['claude-3-5-haiku']).toEqual(builtIn.models['claude-3-5-haiku']);
  });

  it('PRICE_TABLE: a malformed table fails at cold start, saying where', () => {
    expect(() => loadConfig({ ...REQUIRED, PRICE_TABLE: 'cheap' })).toThrow(
      /PRICE_TABLE: must be JSON/,
    );
    expect(() =>
      loadConfig({
        ...REQUIRED,
        PRICE_TABLE: JSON.stringify({
          date: '2026-11-01',
          models: { m: { input: -1, output: 1 } },
        }),
      }),
    ).toThrow(/PRICE_TABLE: models\.m\.input: must be a price/);
    expect(() => loadConfig({ ...REQUIRED, PRICE_TABLE: JSON.stringify({ models: {} }) })).toThrow(
      /PRICE_TABLE: date/,
    );
  });
});
