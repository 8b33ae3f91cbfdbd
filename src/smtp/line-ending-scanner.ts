import { hasBareLineEnding } from '../mail/wire-form.ts';

const CR = 0x0d;
const LF = 0x0a;

/**
 * Finds bare line endings in a message as it streams in: a CR not followed by LF, or an LF not
 * preceded by CR. Receivers disagree on what such bytes mean (some end a line, or even DATA, on
 * them), which is what SMTP smuggling exploits, so a message containing one is refused whole.
 * A CR that ends one chunk is judged by the first byte of the next.
 */
export class BareLineEndingScanner {
  private pendingCr = false;
  private found = false;

  /** Scans the next chunk of the (dot-unstuffed) message. */
  update(chunk: Buffer): void {
    if (this.found || chunk.length === 0) return;
    let start = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] !== LF) {
        this.found = true;
        return;
      }
      start = 1;
    }
    // A CR that ends the chunk is judged by the first byte of the next.
    const end = chunk[chunk.length - 1] === CR ? chunk.length - 1 : chunk.length;
    if (end < chunk.length) this.pendingCr = true;
    if (end > start && hasBareLineEnding(chunk.subarray(start, end))) this.found = true;
  }

  /** True when a bare CR or LF was seen; call after the last chunk (a final lone CR counts). */
  finish(): boolean {
    if (this.pendingCr) this.found = true;
    this.pendingCr = false;
    return this.found;
  }

  /** True as soon as a bare CR or LF has been seen, before the end of the message. */
  get detected(): boolean {
    return this.found;
  }
}
