import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveJobId } from '../../shared/core/job-id.js';
import { MAX_MODEL_NAME_LENGTH, normalizeModel, providerOf } from '../../shared/core/models.js';

const VALID_ID = /^[a-z][a-z0-9_-]{0,62}$/;

describe('deriveJobId', () => {
  it('is readable and deterministic', () => {
    const id = deriveJobId(
      'acme-batch-input',
      'inputs/2026-11-26/customer-reviews.jsonl',
      '1764150067498213',
    );
    expect(id).toMatch(/^customer-reviews-[0-9a-f]{16}$/);
    expect(
      deriveJobId(
        'acme-batch-input',
        'inputs/2026-11-26/customer-reviews.jsonl',
        '1764150067498213',
      ),
    ).toBe(id);
  });

  it('differs for another bucket, name or generation', () => {
    const ids = new Set([
      deriveJobId('a', 'x/r.jsonl', '1'),
      deriveJobId('b', 'x/r.jsonl', '1'),
      deriveJobId('a', 'y/r.jsonl', '1'),
      deriveJobId('a', 'x/r.jsonl', '2'),
      deriveJobId('a', 'x/R.jsonl', '1'),
    ]);
    expect(ids.size).toBe(5);
  });

  it.each([
    ['a 1,024-byte name', 'x'.repeat(1018) + '.jsonl'],
    ['non-ASCII', 'entrées/Ünïcødé 日本語.jsonl'],
    ['only symbols', '////.jsonl'],
    ['leading digits', '2026-11-26.jsonl'],
    ['spaces and newlines', 'my file\nname .jsonl'],
    ['dot segments', '../../etc/passwd.jsonl'],
  ])('is a valid id and label value for %s', (_what, name) => {
    const id = deriveJobId('bucket', name, '1764150067498213');
    expect(id).toMatch(VALID_ID);
    expect(id.length).toBeLessThanOrEqual(63);
  });

  it('is always valid and never collides for distinct names (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 300 }),
        fc.bigInt({ min: 0n, max: 2n ** 63n }),
        (a, b, gen) => {
          const ia = deriveJobId('bkt', a, String(gen));
          expect(ia).toMatch(VALID_ID);
          if (a !== b) expect(deriveJobId('bkt', b, String(gen))).not.toBe(ia);
        },
      ),
    );
  });
});

describe('normalizeModel', () => {
  it.each([
    ['gemini-2.5-flash', 'publishers/google/models/gemini-2.5-flash', 'google'],
    ['models/gemini-2.5-pro', 'publishers/google/models/gemini-2.5-pro', 'google'],
    ['google/gemini-2.0-flash-001', 'publishers/google/models/gemini-2.0-flash-001', 'google'],
    ['claude-3-5-haiku', 'publishers/anthropic/models/claude-3-5-haiku', 'anthropic'],
    [
      'claude-sonnet-4@20250514',
      'publishers/anthropic/models/claude-sonnet-4@20250514',
      'anthropic',
    ],
    ['anthropic/claude-3-5-haiku', 'publishers/anthropic/models/claude-3-5-haiku', 'anthropic'],
    [
      'publishers/anthropic/models/claude-3-5-haiku',
      'publishers/anthropic/models/claude-3-5-haiku',
      'anthropic',
    ],
    [
      'projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash',
      'projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash',
      'google',
    ],
    [
      'projects/p/locations/us-central1/models/123',
      'projects/p/locations/us-central1/models/123',
      'google',
    ],
    ['  gemini-2.5-flash ', 'publishers/google/models/gemini-2.5-flash', 'google'],
  ])('%s → %s', (input, expected, provider) => {
    expect(normalizeModel(input)).toBe(expected);
    expect(providerOf(normalizeModel(input))).toBe(provider);
  });

  it.each(['', 'not a model', 'publishers/google', 'a/b/c', 'projects/p/models/x', 'gemini 2.5'])(
    'refuses %j with INPUT.UNKNOWN_MODEL',
    (input) => {
      expect(() => normalizeModel(input)).toThrow(
        expect.objectContaining({ code: 'INPUT.UNKNOWN_MODEL' }),
      );
    },
  );

  /** The message of the error `normalizeModel` throws for `input`. */
  const refusal = (input: string): string => {
    try {
      normalizeModel(input);
    } catch (err) {
      expect(err).toMatchObject({ code: 'INPUT.UNKNOWN_MODEL' });
      return (err as Error).message;
    }
    throw new Error(`accepted: ${input}`);
  };

  it('model name: refuses a 5,000-character name, quoting only its first 64 characters', () => {
    const name = `gemini-${'x'.repeat(4993)}`;
    const message = refusal(name);
    expect(message).toContain(`"${name.slice(0, 64)}"… (5000 characters)`);
    expect(message).not.toContain(name.slice(0, 65));
    expect(message).toContain(`longer than ${MAX_MODEL_NAME_LENGTH} characters`);
    expect(message.length).toBeLessThan(400);
  });

  it('model name: accepts names up to the limit, refuses one character more', () => {
    const id = 'g'.repeat(MAX_MODEL_NAME_LENGTH - 'google/'.length);
    expect(normalizeModel(`google/${id}`)).toBe(`publishers/google/models/${id}`);
    expect(refusal(`google/${id}g`)).toMatch(/longer than 256 characters/);
  });

  it.each([
    ['multibyte characters', 'gemini-2.5-flash-日本語'],
    ['an emoji', 'gemini-😀'],
    ['a newline inside', 'gemini-2.5\nflash'],
    ['a quote', 'gemini"2.5'],
    ['a NUL', 'gemini\u00002.5'],
  ])('model name: refuses %s, naming the characters allowed', (_what, name) => {
    expect(refusal(name)).toMatch(/may only contain ASCII letters, digits/);
  });

  it('model name: a long multibyte name is quoted without splitting a character, control characters escaped', () => {
    const name = `${'日本語😀\n'.repeat(1000)}`;
    const message = refusal(name);
    const quoted = /^model (".*?")… \((\d+) characters\)/.exec(message);
    expect(quoted).not.toBeNull();
    const excerpt = JSON.parse(quoted![1]!) as string;
    expect([...excerpt]).toHaveLength(64);
    expect(excerpt).toBe([...name].slice(0, 64).join(''));
    expect(excerpt.at(-1)).not.toMatch(/[\uD800-\uDBFF]$/); // no lone high surrogate
    expect(message).not.toContain('\n');
  });
});
