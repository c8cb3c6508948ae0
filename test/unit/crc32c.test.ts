/**
 * The fast CRC32C the Cloud Storage client checks downloads with: the standard check value, and the
 * same answer as the client's own implementation for any data split into any chunks.
 */
import { randomBytes } from 'node:crypto';
import { CRC32C } from '@google-cloud/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cPortable, fastCrc32cGenerator } from '../../shared/adapters/crc32c.js';

describe('crc32c', () => {
  it('gives the check value of CRC-32C (Castagnoli) for "123456789", and 0 for nothing', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('agrees with the Cloud Storage client for any bytes cut into any chunks', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat({ max: 300 }), { maxLength: 5 }),
        (bytes, cuts) => {
          const data = Buffer.from(bytes);
          const reference = new CRC32C();
          reference.update(data);
          const ours = fastCrc32cGenerator();
          let start = 0;
          for (const cut of [...cuts].sort((a, b) => a - b)) {
            const end = Math.min(cut, data.length);
            if (end <= start) continue;
            ours.update(data.subarray(start, end));
            start = end;
          }
          ours.update(data.subarray(start));
          expect(ours.toString()).toBe(reference.toString());
          expect(ours.validate(reference.toString())).toBe(true);
        },
      ),
    );
  });

  it('reads words and bytes alike: at every alignment and length, as the byte-by-byte variant', () => {
    const data = randomBytes(4096);
    for (let start = 0; start < 8; start++) {
      for (const length of [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4000]) {
        const slice = data.subarray(start, start + length);
        const reference = new CRC32C();
        reference.update(Buffer.from(slice));
        expect(crc32c(slice)).toBe(reference.valueOf() >>> 0);
        expect(crc32cPortable(slice)).toBe(reference.valueOf() >>> 0);
      }
    }
  });

  it('agrees on a large unaligned slice, and refuses a CRC that differs', () => {
    const data = randomBytes(1 << 20).subarray(3);
    const reference = new CRC32C();
    reference.update(data);
    const ours = fastCrc32cGenerator();
    ours.update(data);
    expect(ours.toString()).toBe(reference.toString());
    data[12345] = (data[12345] ?? 0) ^ 1;
    const damaged = fastCrc32cGenerator();
    damaged.update(data);
    expect(damaged.validate(reference.toString())).toBe(false);
  });
});
