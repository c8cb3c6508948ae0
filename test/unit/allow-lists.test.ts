import { describe, expect, it } from 'vitest';
import {
  allowedLocations,
  fileUriRule,
  isLocationAllowed,
  isModelAllowed,
} from '../../shared/core/allow-lists.js';
import { testConfig } from '../fakes.js';

describe('allowed models', () => {
  it.each([
    ['', 'publishers/google/models/gemini-2.5-flash', true],
    ['', 'publishers/google/models/gemini-2.5-pro', true],
    ['', 'publishers/anthropic/models/claude-3-5-haiku@20241022', true],
    ['', 'projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro', true],
    ['', 'publishers/google/models/gemini-1.0-ultra', false],
    ['', 'projects/p/locations/us-central1/models/1234', false],
    ['gemini-2.5-flash', 'publishers/google/models/gemini-2.5-pro', false],
    ['claude-3-5-haiku@20241022', 'publishers/anthropic/models/claude-3-5-haiku@20240101', false],
    ['claude-3-5-haiku@20241022', 'publishers/anthropic/models/claude-3-5-haiku@20241022', true],
    [
      'projects/p/locations/us-central1/models/1234',
      'projects/p/locations/us-central1/models/1234',
      true,
    ],
    ['*', 'projects/p/locations/us-central1/models/1234', true],
  ])('ALLOWED_MODELS=%j allows %s: %s', (list, model, allowed) => {
    expect(isModelAllowed(testConfig({ ALLOWED_MODELS: list }), model)).toBe(allowed);
  });

  it('always allows the configured DEFAULT_MODEL when the list is empty', () => {
    const config = testConfig({ DEFAULT_MODEL: 'publishers/acme/models/house-model' });
    expect(isModelAllowed(config, 'publishers/acme/models/house-model')).toBe(true);
  });
});

describe('allowed locations', () => {
  it('defaults to the configured regions plus the documented list', () => {
    const config = testConfig({ VERTEX_LOCATION: 'asia-northeast1' });
    expect(allowedLocations(config)).toEqual(
      expect.arrayContaining(['asia-northeast1', 'us-east5', 'us-central1', 'europe-west4']),
    );
    expect(isLocationAllowed(config, 'australia-southeast1')).toBe(false);
    expect(isLocationAllowed(testConfig({ ALLOWED_LOCATIONS: '*' }), 'australia-southeast1')).toBe(
      true,
    );
    expect(
      isLocationAllowed(testConfig({ ALLOWED_LOCATIONS: 'europe-west1' }), 'us-central1'),
    ).toBe(false);
  });
});

describe('file URIs', () => {
  it('default: the input bucket only, never a bucket whose name starts the same', () => {
    const rule = fileUriRule(testConfig(), 'acme-in')!;
    expect(rule.test('gs://acme-in/a.png')).toBe(true);
    expect(rule.test('gs://acme-in-secrets/a.png')).toBe(false);
    expect(rule.test('https://example.com/a.png')).toBe(false);
    expect(rule.describe).toContain('gs://acme-in/');
  });

  it('a listed bucket without a slash is a whole bucket; `*` lifts the rule', () => {
    const rule = fileUriRule(testConfig({ ALLOWED_FILE_URI_PREFIXES: 'gs://media' }), 'acme-in')!;
    expect(rule.test('gs://media/x.png')).toBe(true);
    expect(rule.test('gs://media-private/x.png')).toBe(false);
    expect(rule.test('gs://acme-in/x.png')).toBe(false);
    expect(fileUriRule(testConfig({ ALLOWED_FILE_URI_PREFIXES: '*' }), 'acme-in')).toBeUndefined();
  });

  it('a bare https host is a whole host, never a longer host name or a user@host trick', () => {
    const rule = fileUriRule(
      testConfig({ ALLOWED_FILE_URI_PREFIXES: 'https://cdn.acme.example' }),
      'acme-in',
    )!;
    expect(rule.test('https://cdn.acme.example/a.png')).toBe(true);
    expect(rule.test('https://cdn.acme.example.evil.com/a.png')).toBe(false);
    expect(rule.test('https://cdn.acme.example@evil.com/a.png')).toBe(false);
  });

  it('a path that climbs out of an allowed prefix is refused, however it is spelled', () => {
    const rule = fileUriRule(
      testConfig({ ALLOWED_FILE_URI_PREFIXES: 'https://storage.googleapis.com/acme-input/' }),
      'acme-in',
    )!;
    expect(rule.test('https://storage.googleapis.com/acme-input/a/b.png')).toBe(true);
    expect(rule.test('https://storage.googleapis.com/acme-input/a..b.png')).toBe(true);
    for (const uri of [
      'https://storage.googleapis.com/acme-input/../acme-secret/x.pdf',
      'https://storage.googleapis.com/acme-input/%2e%2e/acme-secret/x.pdf',
      'https://storage.googleapis.com/acme-input/%2E./acme-secret/x.pdf',
      'https://storage.googleapis.com/acme-input/./x.pdf',
      'https://storage.googleapis.com/acme-input/..%5cacme-secret/x.pdf',
    ]) {
      expect(rule.test(uri), uri).toBe(false);
    }
  });
});
