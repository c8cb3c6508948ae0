/**
 * Deterministic "randomness" for the Vertex emulator: the same request, or the same job, always
 * gives the same numbers, so outputs are realistic (shuffled rows, varied usage, some failures)
 * and still reproducible from one run to the next.
 */
import { createHash } from 'node:crypto';
import { isObject } from '../http.js';

/** JSON with the keys of every object sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A short stable digest of a text (base64url SHA-256). */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** A number in [0, 1) that depends only on `key` and `salt` (independent for different salts). */
export function hashUnit(key: string, salt: string): number {
  return createHash('sha256').update(`${salt}\n${key}`).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * A permutation of `0..n-1` that depends only on `seed`: a Fisher–Yates shuffle driven by sfc32
 * (a small, well-tested 128-bit generator) seeded from the SHA-256 of the seed.
 */
export function shuffledOrder(n: number, seed: string): number[] {
  const state = createHash('sha256').update(seed).digest();
  let a = state.readUInt32BE(0);
  let b = state.readUInt32BE(4);
  let c = state.readUInt32BE(8);
  let d = state.readUInt32BE(12);
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 2 ** 32;
  };
  for (let i = 0; i < 12; i += 1) next();
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j] ?? j, order[i] ?? i];
  }
  return order;
}
