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

/** Gathers small pieces into chunks of about `size` bytes before pushing them to a channel. */
export class Batcher {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly channel: Channel,
    private readonly size = 1 << 18,
  ) {}

  async add(piece: Buffer): Promise<void> {
    this.parts.push(piece);
    this.bytes += piece.length;
    if (this.bytes >= this.size) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.bytes === 0) return;
    const chunk = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    this.parts = [];
    this.bytes = 0;
    await this.channel.push(chunk);
  }
}
