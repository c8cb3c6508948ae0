/**
 * CRC32C (Castagnoli), the checksum Cloud Storage keeps for every object, computed sixteen bytes
 * at a time ("slicing-by-16": 16 lookup tables of 256 entries). Every download is checked against
 * the object's CRC32C, but the Cloud Storage client's own implementation goes one byte at a time
 * (~150 MB/s), which made the check cost more than reading the bytes; this one runs at 1–1.5 GB/s
 * in plain JavaScript. The reader (gcs-objects.ts) computes it on each download's chunks, and the
 * client gets it as its `crc32cGenerator` for what it still transfers itself (uploads), so the
 * check stays end to end (every byte the validator sees was hashed) at a tenth of the cost.
 *
 * Node has no CRC32C of its own (`zlib.crc32` is the other polynomial), and MD5, the native
 * alternative, runs at less than half this speed and is missing on composite objects.
 */
import type { CRC32CValidator, CRC32CValidatorGenerator } from '@google-cloud/storage';

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL = 0x82f63b78;
const SLICES = 16;

/** TABLE[k * 256 + b]: the CRC of byte b followed by k zero bytes. */
const TABLE = (() => {
  const table = new Int32Array(SLICES * 256);
  for (let b = 0; b < 256; b++) {
    let crc = b;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    table[b] = crc;
  }
  for (let k = 1; k < SLICES; k++) {
    for (let b = 0; b < 256; b++) {
      const previous = table[(k - 1) * 256 + b] ?? 0;
      table[k * 256 + b] = (previous >>> 8) ^ (table[previous & 0xff] ?? 0);
    }
  }
  return table;
})();

/** Whether this machine stores a 32-bit word least significant byte first (x86, Arm). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The CRC32C of `data` continuing from `crc` (the CRC of what came before; 0 to start), as an
 * unsigned 32-bit number. Sixteen bytes at a time, read as four 32-bit words where the machine is
 * little-endian (a quarter of the loads), byte by byte up to the first aligned word and after the
 * last whole block.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  if (!LITTLE_ENDIAN) return crc32cPortable(data, crc);
  const t = TABLE;
  let c = ~crc;
  let i = 0;
  const n = data.length;
  // The `!`s tell the compiler what the loop bounds guarantee: every index read is in range.
  while (i < n && ((data.byteOffset + i) & 3) !== 0) c = t[(c ^ data[i++]!) & 0xff]! ^ (c >>> 8);
  const words = ((n - i) >>> 4) << 2;
  if (words > 0) {
    const w = new Int32Array(data.buffer, data.byteOffset + i, words);
    for (let j = 0; j < words; j += 4) {
      const a = c ^ w[j]!;
      const b = w[j + 1]!;
      const d = w[j + 2]!;
      const e = w[j + 3]!;
      c =
        t[3840 + (a & 0xff)]! ^
        t[3584 + ((a >>> 8) & 0xff)]! ^
        t[3328 + ((a >>> 16) & 0xff)]! ^
        t[3072 + (a >>> 24)]! ^
        t[2816 + (b & 0xff)]! ^
        t[2560 + ((b >>> 8) & 0xff)]! ^
        t[2304 + ((b >>> 16) & 0xff)]! ^
        t[2048 + (b >>> 24)]! ^
        t[1792 + (d & 0xff)]! ^
        t[1536 + ((d >>> 8) & 0xff)]! ^
        t[1280 + ((d >>> 16) & 0xff)]! ^
        t[1024 + (d >>> 24)]! ^
        t[768 + (e & 0xff)]! ^
        t[512 + ((e >>> 8) & 0xff)]! ^
        t[256 + ((e >>> 16) & 0xff)]! ^
        t[e >>> 24]!;
    }
    i += words * 4;
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * {@link crc32c} reading bytes one by one (sixteen per step all the same): for big-endian machines,
 * where a 32-bit word holds its bytes the other way round.
 */
export function crc32cPortable(data: Uint8Array, crc = 0): number {
  const t = TABLE;
  let c = ~crc;
  let i = 0;
  const n = data.length;
  for (; i <= n - 16; i += 16) {
    const a = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + data[i + 4]!]! ^
      t[2560 + data[i + 5]!]! ^
      t[2304 + data[i + 6]!]! ^
      t[2048 + data[i + 7]!]! ^
      t[1792 + data[i + 8]!]! ^
      t[1536 + data[i + 9]!]! ^
      t[1280 + data[i + 10]!]! ^
      t[1024 + data[i + 11]!]! ^
      t[768 + data[i + 12]!]! ^
      t[512 + data[i + 13]!]! ^
      t[256 + data[i + 14]!]! ^
      t[data[i + 15]!]!;
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Base64 of the big-endian CRC, as in an object's `crc32c` field and the `x-goog-hash` header. */
export function crc32cBase64(crc: number): string {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(crc);
  return bytes.toString('base64');
}

/** A running CRC32C in the shape the Cloud Storage client validates downloads and uploads with. */
function createValidator(): CRC32CValidator {
  let crc = 0;
  return {
    update(data) {
      crc = crc32c(data, crc);
    },
    validate(expected) {
      return expected === crc32cBase64(crc);
    },
    toString() {
      return crc32cBase64(crc);
    },
  };
}

/** For `new Storage({ crc32cGenerator })`: the fast CRC32C for every transfer's integrity check. */
export const fastCrc32cGenerator: CRC32CValidatorGenerator = createValidator;
