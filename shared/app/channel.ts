/**
 * A byte channel between a producer that pushes and a consumer that reads it as an async iterable
 * (a streamed upload), with backpressure: `push` waits while more than `highWaterBytes` are queued.
 */
export class Channel implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private closed = false;
  private detached = false;
  private failure: Error | undefined;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;

  constructor(private readonly highWaterBytes = 1 << 20) {}

  /** Queues `chunk`; waits while the queue is full. Throws once the consumer failed. */
  async push(chunk: Uint8Array): Promise<void> {
    this.throwIfFailed();
    if (this.detached || chunk.length === 0) return;
    if (this.closed) throw new Error('push after close');
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.wake('reader');
    while (this.queued > this.highWaterBytes && !this.failure && !this.detached) {
      await new Promise<void>((resolve) => (this.wakeWriter = resolve));
    }
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /** No more chunks: the consumer ends once it has read the queue. */
  close(): void {
    this.closed = true;
    this.wake('reader');
  }

  /**
   * The consumer stopped. With an error, later pushes throw it; without, later pushes are dropped
   * (it finished early because what it writes exists already).
   */
  stop(err?: Error): void {
    if (err) this.failure = err;
    else this.detached = true;
    this.queue.length = 0;
    this.queued = 0;
    this.wake('writer');
    this.wake('reader');
  }

  private wake(who: 'reader' | 'writer'): void {
    const wake = who === 'reader' ? this.wakeReader : this.wakeWriter;
    if (who === 'reader') this.wakeReader = undefined;
    else this.wakeWriter = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        this.queued -= chunk.length;
        if (this.queued <= this.highWaterBytes) this.wake('writer');
        yield chunk;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.closed || this.detached) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }
}

/**
 * Gathers small pieces into chunks of `size` bytes before pushing them to a channel. Pieces are
 * copied into the chunk (a piece may be reused by its owner once `add` returns, and no piece is
 * held on to), and a text is encoded straight into it; a piece larger than a chunk goes alone.
 */
export class Batcher {
  private chunk: Buffer | undefined;
  private used = 0;

  constructor(
    private readonly channel: Channel,
    private readonly size = 1 << 18,
  ) {}

  /** The current chunk, with room for `bytes` more (pushing the full one first), or undefined. */
  private async room(bytes: number): Promise<Buffer | undefined> {
    if (bytes > this.size) {
      await this.flush();
      return undefined;
    }
    if (this.used + bytes > this.size) await this.flush();
    this.chunk ??= Buffer.allocUnsafe(this.size);
    return this.chunk;
  }

  async add(piece: Uint8Array): Promise<void> {
    const chunk = await this.room(piece.length);
    if (!chunk) {
      await this.channel.push(Buffer.from(piece));
      return;
    }
    chunk.set(piece, this.used);
    this.used += piece.length;
  }

  /** Adds `text` as UTF-8. */
  async addText(text: string): Promise<void> {
    // At most 3 bytes per UTF-16 unit.
    const chunk = await this.room(3 * text.length);
    if (!chunk) {
      await this.channel.push(Buffer.from(text));
      return;
    }
    this.used += chunk.write(text, this.used);
  }

  /**
   * Adds the record `[u32 line][u32 length][text as UTF-8]` (little-endian); returns the length of
   * the text in bytes.
   */
  async addRecord(line: number, text: string): Promise<number> {
    const chunk = await this.room(8 + 3 * text.length);
    if (!chunk) {
      const bytes = Buffer.from(text);
      const head = Buffer.allocUnsafe(8);
      head.writeUInt32LE(line, 0);
      head.writeUInt32LE(bytes.length, 4);
      await this.add(head);
      await this.add(bytes);
      return bytes.length;
    }
    const at = this.used;
    const length = chunk.write(text, at + 8);
    chunk.writeUInt32LE(line, at);
    chunk.writeUInt32LE(length, at + 4);
    this.used = at + 8 + length;
    return length;
  }

  async flush(): Promise<void> {
    const chunk = this.chunk;
    if (!chunk || this.used === 0) return;
    const full = this.used;
    this.chunk = undefined;
    this.used = 0;
    await this.channel.push(chunk.subarray(0, full));
  }
}
