/**
 * The bytes of messages being received, held in memory from their first byte until they are
 * committed (or refused), counted over every session against smtp.maxBufferedBytes. A message
 * that would take the total past the limit stops being held (it is read to its end and refused
 * with 452 4.3.1), and no new DATA starts while the limit is reached, so many clients streaming
 * large messages at once cannot push the daemon's memory past the limit.
 */
export class BufferBudget {
  private held = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.held;
  }

  /** True while nothing more can be held: new DATA is refused. */
  get exhausted(): boolean {
    return this.held >= this.limit;
  }

  /** Holds `bytes` more, or returns false (and holds nothing) when that would pass the limit. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }
}
