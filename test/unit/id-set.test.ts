/**
 * The compact set of Claude custom_ids: it answers exactly as a `Set<string>` would (no false
 * repeat, no repeat missed) through its growth, and refuses what it cannot hold.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsciiIdSet } from '../../shared/core/id-set.js';
import { anthropicLineCheck } from '../../shared/core/line-rules.js';

const CUSTOM_ID = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

describe('AsciiIdSet', () => {
  it('answers like Set<string> for any sequence of ids, repeats included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(CUSTOM_ID, fc.constantFrom('a', 'b', 'req-1', 'req-10')), {
          maxLength: 3000,
        }),
        (ids) => {
          const compact = new AsciiIdSet();
          const plain = new Set<string>();
          for (const id of ids) {
            expect(compact.add(id)).toBe(!plain.has(id));
            plain.add(id);
          }
          expect(compact.size).toBe(plain.size);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('holds 200,000 distinct ids through its growth and finds every one again', () => {
    const set = new AsciiIdSet();
    for (let i = 0; i < 200_000; i++) expect(set.add(`request-${i}`)).toBe(true);
    for (let i = 0; i < 200_000; i += 997) expect(set.add(`request-${i}`)).toBe(false);
    expect(set.add('request-200000')).toBe(true);
    expect(set.size).toBe(200_001);
  });

  it('tells ids apart that differ only in length or in their last character', () => {
    const set = new AsciiIdSet();
    expect(set.add('ab')).toBe(true);
    expect(set.add('a')).toBe(true);
    expect(set.add('abc')).toBe(true);
    expect(set.add('abd')).toBe(true);
    expect(set.add('ab')).toBe(false);
  });

  it('refuses a string it cannot hold exactly', () => {
    expect(() => new AsciiIdSet().add('é')).toThrow(RangeError);
    expect(() => new AsciiIdSet().add('x'.repeat(256))).toThrow(RangeError);
  });
});

describe('a repeated custom_id in a Claude file', () => {
  it('is refused on the line that repeats it, naming the id', () => {
    const check = anthropicLineCheck('publishers/anthropic/models/claude-3-5-haiku');
    const line = (id: string) => ({
      custom_id: id,
      request: {
        anthropic_version: 'vertex-2023-10-16',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'hi' }],
      },
    });
    expect(check(line('r-1'))).toBeUndefined();
    expect(check(line('r-2'))).toBeUndefined();
    expect(check(line('r-1'))?.message).toContain('"custom_id" "r-1" is used by an earlier line');
  });
});
