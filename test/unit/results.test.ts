/** The pure parts of the results digest and of cost: matching, usage, prices, estimates. */
import { describe, expect, it } from 'vitest';
import { Batcher, Channel } from '../../shared/app/channel.js';
import { upgradeRecord, type JobRecord } from '../../shared/core/jobs.js';
import { splitLines } from '../../shared/core/lines.js';
import {
  actualCost,
  BUILT_IN_PRICES,
  estimateCost,
  maxOutputTokensOf,
  modelId,
  priceOf,
} from '../../shared/core/pricing.js';
import {
  canonicalJson,
  ErrorTally,
  LineIndex,
  matchKeys,
  readOutputRow,
  resultLine,
  usageOf,
} from '../../shared/core/results.js';
import { completedRecord } from '../records.js';

describe('matching output lines to input lines', () => {
  it('canonical JSON ignores key order and snake_case spelling, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { max_output_tokens: 5, temperature: 1.0 } })).toBe(
      canonicalJson({ a: { temperature: 1, maxOutputTokens: 5 }, b: 1 }),
    );
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson({ a: 'x' })).not.toBe(canonicalJson({ a: 'y' }));
  });

  it('Gemini lines are matched by the whole request, then by the prompt alone', () => {
    const line = {
      request: { contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { a: 1 } },
    };
    const echoedWithDefaults = {
      request: { contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { a: 1, b: 2 } },
    };
    const [whole, prompt] = matchKeys('google', line);
    const [otherWhole, samePrompt] = matchKeys('google', echoedWithDefaults);
    expect(whole).not.toBe(otherWhole);
    expect(prompt).toBe(samePrompt);
    expect(matchKeys('anthropic', { custom_id: 'r1', request: {} })).toEqual(['c:r1']);
  });

  it('identical requests are taken in input order, each once; an unknown key takes nothing', () => {
    const index = new LineIndex();
    index.add('k', 0);
    index.add('j', 1);
    index.add('k', 2);
    index.seal(3);
    expect(index.take(['k'])).toBe(0);
    expect(index.take(['k'])).toBe(2);
    expect(index.take(['k'])).toBeUndefined();
    expect(index.take(['x', 'j'])).toBe(1);
    expect(index.take(['j'])).toBeUndefined();
  });

  it('a line taken under its first key is not taken again under its second', () => {
    const index = new LineIndex();
    index.add('r:1', 0);
    index.add('p:1', 0);
    index.add('p:1', 1);
    index.seal(2);
    expect(index.take(['r:1', 'p:1'])).toBe(0);
    expect(index.take(['r:x', 'p:1'])).toBe(1);
  });

  it('hash keys and other keys are taken alike: in input order, each line once, across keys', () => {
    const line = (text: string) => ({ request: { contents: [{ parts: [{ text }] }] } });
    const [r1, p1] = matchKeys('google', line('a'));
    const [r2, p2] = matchKeys('google', {
      request: { contents: [{ parts: [{ text: 'a' }] }], generation_config: { top_k: 1 } },
    });
    const index = new LineIndex();
    for (const [at, keys] of [[r1, p1], [r2, p2], [r1, p1], ['c:x']].entries()) {
      for (const key of keys) index.add(key ?? '', at);
    }
    index.seal(4);
    expect(p1).toBe(p2);
    expect(index.take([r2 ?? '', p2 ?? ''])).toBe(1);
    // Line 1 is taken: the prompt key gives the first line not taken, then the next.
    expect(index.take(['r:AAAAAAAAAAAAAAAA', p1 ?? ''])).toBe(0);
    expect(index.take([r1 ?? ''])).toBe(2);
    expect(index.take([r1 ?? '', p1 ?? ''])).toBeUndefined();
    expect(index.take(['c:x'])).toBe(3);
  });

  it('keys do not depend on key order, spelling, or a null systemInstruction beside a system_instruction', () => {
    const system = { parts: [{ text: 's' }] };
    const a = matchKeys('google', {
      request: {
        contents: [],
        systemInstruction: system,
        generationConfig: { maxOutputTokens: 1 },
      },
    });
    const b = matchKeys('google', {
      request: {
        generation_config: { max_output_tokens: 1 },
        systemInstruction: null,
        system_instruction: system,
        contents: [],
      },
    });
    expect(a[1]).toBe(b[1]);
    expect(a[0]).not.toBe(b[0]); // the whole requests differ: one has two system fields
    expect(matchKeys('google', { request: { contents: [] } })[0]).not.toBe(
      matchKeys('google', { request: { contents: null } })[0],
    );
  });

  it('reads succeeded and failed rows of both providers, leniently', () => {
    expect(
      readOutputRow('google', { status: '', request: {}, response: { candidates: [] } }),
    ).toMatchObject({ ok: true, error: null });
    expect(readOutputRow('google', { status: 'Bad Request: {…}', request: {} })).toMatchObject({
      ok: false,
      error: 'Bad Request: {…}',
      response: null,
    });
    expect(readOutputRow('google', { request: {} })).toMatchObject({ ok: false });
    expect(
      readOutputRow('anthropic', {
        custom_id: 'a',
        response: { type: 'error', error: { type: 'overloaded_error' } },
      }),
    ).toMatchObject({ ok: false, key: 'a', error: '{"type":"overloaded_error"}' });
    expect(
      readOutputRow('anthropic', { custom_id: 'a', status: { code: 429 }, extra: true }),
    ).toMatchObject({ ok: false, error: '{"code":429}' });
  });

  it('a results line has the fields of the contract, in that order', () => {
    expect(JSON.parse(resultLine(3, 'k', 'succeeded', null, { a: 1 }))).toEqual({
      line: 3,
      key: 'k',
      status: 'succeeded',
      error: null,
      response: { a: 1 },
    });
    expect(resultLine(1, null, 'failed', 'x', null)).toBe(
      '{"line":1,"key":null,"status":"failed","error":"x","response":null}\n',
    );
  });

  it('counts errors by text, the most frequent first, with a bound on distinct texts', () => {
    const tally = new ErrorTally(2);
    for (const e of ['a', 'b', 'b', 'c', 'c', 'c']) tally.add(e);
    expect(tally.top(5)).toEqual([
      { error: 'b', count: 2 },
      { error: 'a', count: 1 },
      { error: '(other errors, not told apart)', count: 3 },
    ]);
  });
});

describe('usage and cost', () => {
  it('Gemini usageMetadata and Claude usage give the same totals', () => {
    expect(
      usageOf({
        usageMetadata: {
          promptTokenCount: 10,
          candidatesTokenCount: 2,
          thoughtsTokenCount: 5,
          cachedContentTokenCount: 4,
        },
      }),
    ).toEqual({ inputTokens: 10, outputTokens: 2, thinkingTokens: 5, cachedTokens: 4 });
    expect(
      usageOf({
        usage: {
          input_tokens: 6,
          output_tokens: 2,
          cache_read_input_tokens: 4,
          cache_creation_input_tokens: 1,
        },
      }),
    ).toEqual({ inputTokens: 11, outputTokens: 2, thinkingTokens: 0, cachedTokens: 4 });
    expect(usageOf({ usageMetadata: { promptTokenCount: '7' } }).inputTokens).toBe(7);
    expect(usageOf(null)).toEqual({
      inputTokens: 0,
      outputTokens: 0,
      thinkingTokens: 0,
      cachedTokens: 0,
    });
  });

  it('prices a model by its id, a version or preview suffix aside; an unknown model has none', () => {
    expect(modelId('publishers/google/models/gemini-2.5-flash@001')).toBe('gemini-2.5-flash');
    expect(
      priceOf(BUILT_IN_PRICES, 'publishers/google/models/gemini-2.5-flash-preview-09-2025'),
    ).toBe(BUILT_IN_PRICES.models['gemini-2.5-flash']);
    expect(priceOf(BUILT_IN_PRICES, 'gemini-2.5-flash-lite')).toBe(
      BUILT_IN_PRICES.models['gemini-2.5-flash-lite'],
    );
    expect(priceOf(BUILT_IN_PRICES, 'publishers/anthropic/models/claude-3-5-haiku@20241022')).toBe(
      BUILT_IN_PRICES.models['claude-3-5-haiku'],
    );
    expect(priceOf(BUILT_IN_PRICES, 'my-model')).toBeUndefined();
    expect(actualCost(BUILT_IN_PRICES, 'my-model', usageOf(null))).toBeNull();
  });

  it('every built-in price is a non-negative number, thinking and cached included', () => {
    for (const [id, p] of Object.entries(BUILT_IN_PRICES.models)) {
      for (const v of [p.input, p.output, p.thinking, p.cached]) {
        expect(v, id).toBeGreaterThanOrEqual(0);
      }
      expect(p.cached, id).toBeLessThanOrEqual(p.input);
    }
  });

  it('the estimate: bytes / 4 of input, each request at its maximum of output (the model maximum where unset)', () => {
    const e = estimateCost(BUILT_IN_PRICES, 'gemini-2.5-flash', {
      bytes: 4001,
      maxOutputTokens: 100,
      withoutMax: 2,
    });
    expect(e).toMatchObject({ inputTokens: 1001, outputTokens: 100 + 2 * 65536 });
    expect(e.usd).toBeCloseTo((1001 * 0.15 + (100 + 2 * 65536) * 1.25) / 1e6, 6);
    expect(
      estimateCost(BUILT_IN_PRICES, 'unknown', { bytes: 4, maxOutputTokens: 1, withoutMax: 0 }).usd,
    ).toBeNull();
  });

  it('reads the output maximum of a request in either spelling', () => {
    expect(maxOutputTokensOf({ request: { max_tokens: 9 } })).toBe(9);
    expect(maxOutputTokensOf({ request: { generationConfig: { maxOutputTokens: 8 } } })).toBe(8);
    expect(maxOutputTokensOf({ request: { generation_config: { max_output_tokens: 7 } } })).toBe(7);
    expect(
      maxOutputTokensOf({ request: { generationConfig: { maxOutputTokens: -1 } } }),
    ).toBeUndefined();
    expect(maxOutputTokensOf({ request: 'x' })).toBeUndefined();
  });
});

describe('streams', () => {
  async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
    for (const p of parts) yield Buffer.from(p);
  }
  const collect = async (source: AsyncIterable<Buffer>): Promise<string[]> => {
    const out: string[] = [];
    for await (const l of source) out.push(l.toString());
    return out;
  };

  it('splits lines across chunks: CRLF, a byte-order mark, a last line without newline', async () => {
    expect(await collect(splitLines(chunks('\uFEFFa\r', '\nb', 'c\nd'), 'f', 100))).toEqual([
      'a',
      'bc',
      'd',
    ]);
    expect(await collect(splitLines(chunks('a\n'), 'f', 100))).toEqual(['a']);
  });

  it('refuses a line longer than the limit, naming the file', async () => {
    await expect(collect(splitLines(chunks('123', '456', '7\n'), 'gs://b/o', 5))).rejects.toThrow(
      /gs:\/\/b\/o: a line is longer than 5 bytes/,
    );
  });

  it('a channel applies backpressure, and a consumer that stops makes the producer stop', async () => {
    const channel = new Channel(4);
    let pushed = 0;
    const producer = (async () => {
      for (let i = 0; i < 5; i++) {
        await channel.push(Buffer.from('abc'));
        pushed++;
      }
      channel.close();
    })();
    await new Promise((r) => setTimeout(r, 10));
    expect(pushed).toBeLessThan(5); // waiting for the consumer
    const read: string[] = [];
    for await (const c of channel) read.push(Buffer.from(c).toString());
    await producer;
    expect(read.join('')).toBe('abc'.repeat(5));

    const failing = new Channel(1);
    const stuck = failing.push(Buffer.from('abc'));
    failing.stop(new Error('upload failed'));
    await expect(stuck).rejects.toThrow('upload failed');
  });
});

describe('the batcher', () => {
  it('copies pieces, texts and records into chunks of its size, in order; a larger piece goes alone', async () => {
    const channel = new Channel(1 << 20);
    const batcher = new Batcher(channel, 16);
    const piece = Buffer.from('abc');
    await batcher.add(piece);
    piece.write('xyz'); // the owner reuses its buffer: what was added stays
    await batcher.addText('é€');
    const length = await batcher.addRecord(7, 'hi');
    await batcher.add(Buffer.from('0123456789abcdefXY'));
    await batcher.addText('end');
    await batcher.flush();
    channel.close();
    const chunks: Buffer[] = [];
    for await (const c of channel) chunks.push(Buffer.from(c));
    expect(length).toBe(2);
    expect(chunks.every((c) => c.length <= 16 || c.toString() === '0123456789abcdefXY')).toBe(true);
    const all = Buffer.concat(chunks);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(7, 0);
    head.writeUInt32LE(2, 4);
    expect(all).toEqual(
      Buffer.concat([Buffer.from('abcé€'), head, Buffer.from('hi0123456789abcdefXYend')]),
    );
  });
});

describe('records of an earlier version', () => {
  it('read with the new fields at their initial values', () => {
    const old = completedRecord() as Partial<JobRecord>;
    delete old.estimate;
    delete old.digest;
    delete old.digestAttempts;
    expect(upgradeRecord(old as JobRecord)).toMatchObject({
      estimate: null,
      digest: null,
      digestAttempts: 0,
    });
  });
});
