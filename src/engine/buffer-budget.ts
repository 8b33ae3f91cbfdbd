/** New DATA starts only while at most this share of the limit is held. */
const ADMISSION_SHARE = 0.75;

/**
 * The bytes of messages being received, held in memory from their first byte until they are
 * committed (or refused), counted over every session against smtp.maxBufferedBytes: one budget
 * for the SMTP door and the HTTP send routes together (here, below both). A message
 * that would take the total past the limit stops being held (it is read to its end and refused
 * with 452 4.3.1), so many clients streaming large messages at once cannot push the daemon's
 * memory past the limit. New DATA is refused while more than three quarters of the limit is
 * held: the room above that is for messages already under way, which could not finish if every
 * new one took a share.
 */
export class BufferBudget {
  private held = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.held;
  }

  /** True while no new message should start: new DATA is refused. */
  get exhausted(): boolean {
    return this.held > this.limit * ADMISSION_SHARE;
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
