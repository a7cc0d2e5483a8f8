/**
 * Batches the bytes a guest writes to its serial port and hands them to the
 * frontend in chunks, so a console burst costs one write per event-loop turn
 * rather than one per byte. A full buffer is flushed at once.
 */

export class ConsoleOutputBuffer {
  private readonly buffer: Uint8Array;
  private length = 0;
  private scheduled = false;
  /** Set once the first byte arrives (performance.now()), for boot-time reporting. */
  firstByteAt: number | undefined;

  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    capacity = 16384,
  ) {
    this.buffer = new Uint8Array(capacity);
  }

  /** Appends one byte; called per guest byte, so it allocates nothing. */
  push = (byte: number): void => {
    if (this.firstByteAt === undefined) this.firstByteAt = performance.now();
    this.buffer[this.length++] = byte;
    if (this.length === this.buffer.length) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  };

  /** Hands every buffered byte to the sink. */
  flush = (): void => {
    this.scheduled = false;
    if (this.length === 0) return;
    const chunk = this.buffer.slice(0, this.length);
    this.length = 0;
    this.sink(chunk);
  };
}
