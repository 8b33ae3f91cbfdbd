import type { Transform, TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
// Inserted bytes, shared: they are only ever copied by Buffer.concat.
const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');

/** The state nodemailer's DataStream keeps between chunks (its own field names). */
interface DataStreamState {
  inByteCount: number;
  outByteCount: number;
  /** The last byte of the previous chunk, or false before the first. */
  lastByte: number | false;
}

/** What nodemailer's DataStream inserts before byte `i` of `chunk`, or null: its per-byte rules. */
function insertBefore(chunk: Buffer, i: number, lastByte: number | false): Buffer | null {
  const byte = chunk[i];
  const prev = i ? chunk[i - 1] : lastByte;
  // A bare CR becomes CRLF, and a dot after it is stuffed as at the start of any line (a receiver
  // that ends lines on a lone CR would otherwise read "\r.\r" as the end of the data).
  if (prev === CR && byte !== LF) return byte === DOT ? INSERT_LF_DOT : INSERT_LF;
  // A bare LF becomes CRLF.
  if (byte === LF && prev !== CR) return INSERT_CR;
  // A dot at the start of a line is doubled.
  if (byte === DOT && (prev === LF || prev === false)) return INSERT_DOT;
  return null;
}

/**
 * nodemailer's DataStream._transform (dot-stuffing and line-ending repair of the DATA it writes),
 * with the same output, without its loop over every byte in JavaScript: a byte can only need an
 * insertion at the start of the chunk, at an LF, or just after a CR or LF, so only those places
 * are looked at, found with the native Buffer.indexOf (about 60 a 4 KB message instead of 4,000).
 */
export function dotStuffingTransform(this: Transform & DataStreamState, input: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
  if (!input || !input.length) return done();
  const chunk = typeof input === 'string' ? Buffer.from(input) : input;
  this.inByteCount += chunk.length;
  const parts: Buffer[] = [];
  let length = 0;
  let lastPos = 0;
  let evaluated = -1;
  const consider = (i: number) => {
    if (i <= evaluated || i >= chunk.length) return;
    evaluated = i;
    const insert = insertBefore(chunk, i, this.lastByte);
    if (!insert) return;
    if (i > lastPos) {
      parts.push(chunk.subarray(lastPos, i));
      length += i - lastPos;
    }
    parts.push(insert);
    length += insert.length;
    lastPos = i;
  };
  consider(0);
  let nextCr = chunk.indexOf(CR);
  let nextLf = chunk.indexOf(LF);
  while (nextCr !== -1 || nextLf !== -1) {
    let at: number;
    if (nextLf === -1 || (nextCr !== -1 && nextCr < nextLf)) {
      at = nextCr;
      nextCr = chunk.indexOf(CR, at + 1);
    } else {
      at = nextLf;
      nextLf = chunk.indexOf(LF, at + 1);
    }
    consider(at);
    consider(at + 1);
  }
  if (parts.length) {
    if (lastPos < chunk.length) {
      parts.push(chunk.subarray(lastPos));
      length += chunk.length - lastPos;
    }
    this.outByteCount += length;
    this.push(Buffer.concat(parts, length));
  } else {
    this.outByteCount += chunk.length;
    this.push(chunk);
  }
  this.lastByte = chunk[chunk.length - 1]!;
  done();
}
