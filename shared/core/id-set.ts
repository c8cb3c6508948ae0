/**
 * A set of short ASCII strings (Claude `custom_id`s: 1 to 64 letters, digits, `_` or `-`), exact,
 * held in one byte arena and an open-addressing table of offsets: about 2 MiB for 200,000 ids
 * where a `Set<string>` holds about 12 MiB (a heap string and a hash-table entry each), and no
 * garbage while it grows. The validator keeps one per input to refuse a repeated id.
 */

/** FNV-1a over the character codes (bytes, for ASCII). */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class AsciiIdSet {
  /** Each id as its length (one byte) and its characters, one after the other. */
  private arena = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  /** Offset + 1 of each id in the arena, 0 for an empty slot; a power of two, at most half full. */
  private slots = new Uint32Array(1 << 10);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `id` (ASCII, at most 255 characters); false when it was there already. */
  add(id: string): boolean {
    let ascii = id.length <= 255;
    for (let k = 0; ascii && k < id.length; k++) ascii = id.charCodeAt(k) < 0x80;
    if (!ascii) throw new RangeError('AsciiIdSet holds ASCII strings of at most 255 characters');
    const mask = this.slots.length - 1;
    let i = hashOf(id) & mask;
    for (let at = this.slots[i]; at !== 0 && at !== undefined; at = this.slots[i]) {
      if (this.equals(at - 1, id)) return false;
      i = (i + 1) & mask;
    }
    const need = this.used + 1 + id.length;
    if (need > this.arena.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.arena.length * 2));
      this.arena.copy(grown, 0, 0, this.used);
      this.arena = grown;
    }
    this.arena[this.used] = id.length;
    this.arena.write(id, this.used + 1, 'latin1');
    this.slots[i] = this.used + 1;
    this.used = need;
    this.count++;
    if (this.count * 2 > this.slots.length) this.rehash();
    return true;
  }

  private equals(offset: number, id: string): boolean {
    if (this.arena[offset] !== id.length) return false;
    for (let k = 0; k < id.length; k++) {
      if (this.arena[offset + 1 + k] !== id.charCodeAt(k)) return false;
    }
    return true;
  }

  /** Twice the slots, every id placed again (read back from the arena). */
  private rehash(): void {
    const slots = new Uint32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let offset = 0; offset < this.used; offset += 1 + (this.arena[offset] ?? 0)) {
      const id = this.arena.toString('latin1', offset + 1, offset + 1 + (this.arena[offset] ?? 0));
      let i = hashOf(id) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = offset + 1;
    }
    this.slots = slots;
  }
}
