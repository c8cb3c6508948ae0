/**
 * The byte-level JSON parser used for long lines must accept and refuse exactly what JSON.parse
 * does, and keep every string the line rules look at (only strings longer than the kept size are
 * shortened, to a prefix).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseJsonSkeleton,
  SKELETON_MIN_BYTES,
  SKELETON_STRING_BYTES,
  validateJsonl,
} from '../../shared/core/jsonl.js';

const viaJsonParse = (buf: Buffer): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: JSON.parse(buf.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
};

/** Strings, numbers and structure equal, except that `skel`'s strings may be prefixes. */
function sameSkeleton(real: unknown, skel: unknown, keep: number): void {
  if (typeof real === 'string') {
    expect(typeof skel).toBe('string');
    expect(real.startsWith(skel as string)).toBe(true);
    if (Buffer.byteLength(JSON.stringify(real)) - 2 <= keep) expect(skel).toBe(real);
    return;
  }
  if (Array.isArray(real)) {
    expect(Array.isArray(skel)).toBe(true);
    expect((skel as unknown[]).length).toBe(real.length);
    real.forEach((v, i) => sameSkeleton(v, (skel as unknown[])[i], keep));
    return;
  }
  if (typeof real === 'object' && real !== null) {
    expect(Object.keys(skel as object)).toEqual(Object.keys(real));
    for (const [k, v] of Object.entries(real)) {
      sameSkeleton(v, (skel as Record<string, unknown>)[k], keep);
    }
    return;
  }
  expect(skel).toStrictEqual(real);
}

/** A small edit of a JSON text: delete, insert or replace one character, or truncate. */
const mutated = fc
  .tuple(
    fc.jsonValue(),
    fc.nat(),
    fc.constantFrom('delete', 'insert', 'replace', 'truncate'),
    fc.constantFrom(...'{}[]",:0123456789-+.eE tfnrulas\\/u\n\t\u0001é'.split('')),
  )
  .map(([value, at, edit, char]) => {
    const text = JSON.stringify(value, null, at % 3 === 0 ? 1 : undefined);
    const p = text.length === 0 ? 0 : at % (text.length + 1);
    if (edit === 'delete') return text.slice(0, p) + text.slice(p + 1);
    if (edit === 'insert') return text.slice(0, p) + char + text.slice(p);
    if (edit === 'replace') return text.slice(0, p) + char + text.slice(p + 1);
    return text.slice(0, p);
  });

describe('hostile inputs: the long-line JSON parser', () => {
  it('item 1: parses any JSON value as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        const buf = Buffer.from(JSON.stringify(value, null, pretty ? 2 : undefined));
        expect(parseJsonSkeleton(buf, Infinity)).toEqual({ value: JSON.parse(buf.toString()) });
      }),
      { numRuns: 500 },
    );
  });

  it('item 1: accepts and refuses exactly what JSON.parse does', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          mutated,
          fc.string({ unit: fc.constantFrom(...'{}[]",:01-.e tfnul\\ '.split('')) }),
        ),
        (text) => {
          const buf = Buffer.from(text);
          const expected = viaJsonParse(buf);
          const got = parseJsonSkeleton(buf, Infinity);
          expect('value' in got).toBe(expected.ok);
          if (expected.ok && 'value' in got) expect(got.value).toEqual(expected.value);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['"\\u12"', false],
    ['"\\x"', false],
    ['"a\u0001"', false],
    ['01', false],
    ['-', false],
    ['1.', false],
    ['.5', false],
    ['1e', false],
    ['+1', false],
    ['tru', false],
    ['nul', false],
    ['[1,]', false],
    ['{"a":1,}', false],
    ['{"a" 1}', false],
    ['{} {}', false],
    ['"\\ud800"', true],
    ['-0.5e+10', true],
    ['{"a":1,"a":2}', true],
    [' \t\r\n[ ]\n', true],
    ['"\u2028"', true],
  ])('item 1: %j → valid %s, as JSON.parse', (text, valid) => {
    const buf = Buffer.from(text);
    expect(viaJsonParse(buf).ok).toBe(valid);
    expect('value' in parseJsonSkeleton(buf)).toBe(valid);
  });

  it('item 1: "__proto__" is an ordinary key, as with JSON.parse', () => {
    const got = parseJsonSkeleton(Buffer.from('{"__proto__":{"polluted":1},"a":1}'));
    expect('value' in got).toBe(true);
    const value = (got as { value: Record<string, unknown> }).value;
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('item 1: long strings become prefixes cut at character and escape boundaries', () => {
    fc.assert(
      fc.property(
        fc.record({
          role: fc.string({ maxLength: 8 }),
          text: fc.string({ unit: 'binary', maxLength: 60 }),
          parts: fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { maxLength: 4 }),
        }),
        fc.integer({ min: 5, max: 40 }), // at least the longest key
        (value, keep) => {
          const buf = Buffer.from(JSON.stringify(value));
          const got = parseJsonSkeleton(buf, keep);
          expect('value' in got).toBe(true);
          sameSkeleton(JSON.parse(buf.toString()), (got as { value: unknown }).value, keep);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('item 1: any depth of nesting, without overflowing the stack', () => {
    const depth = 1_000_000;
    const buf = Buffer.from('['.repeat(depth) + ']'.repeat(depth));
    const got = parseJsonSkeleton(buf);
    expect('value' in got).toBe(true);
    expect('value' in parseJsonSkeleton(buf.subarray(0, buf.length - 1))).toBe(false);
  });

  it('item 1: long lines go through it: rules and syntax errors are found as on short lines', async () => {
    const long = 'x'.repeat(SKELETON_MIN_BYTES);
    const run = async (lines: string[], provider: 'google' | 'anthropic' = 'google') =>
      validateJsonl(
        (async function* () {
          yield Buffer.from(lines.join('\n') + '\n');
        })(),
        { provider },
      );
    const gemini = (extra: Record<string, unknown>) =>
      JSON.stringify({
        request: { contents: [{ role: 'user', parts: [{ text: long }] }], ...extra },
      });
    expect((await run([gemini({})])).code).toBeUndefined();
    const unknown = await run([gemini({}), gemini({ temprature: 1 })]);
    expect(unknown.errors[0]).toMatchObject({ line: 2 });
    expect(unknown.errors[0]?.message).toContain('unknown field "temprature"');
    const broken = await run([gemini({}).replace(`${long}"`, `${long}\u0001"`)]);
    expect(broken.code).toBe('INPUT.INVALID_JSONL');
    expect(broken.errors[0]?.message).toMatch(/is not valid JSON \(at column \d+\)/);
    const claude = JSON.stringify({
      custom_id: 'r1',
      request: {
        messages: [{ role: 'user', content: long }],
        anthropic_version: 'vertex-2023-10-16',
        max_tokens: 0,
      },
    });
    const bad = await run([claude], 'anthropic');
    expect(bad.errors[0]?.message).toContain('max_tokens must be a positive integer');
    expect(SKELETON_STRING_BYTES).toBeGreaterThanOrEqual(1024);
  });
});
