import { describe, expect, it } from 'vitest';
import { DataStream, SMTPConnection } from '../../src/vendor/nodemailer.ts';
import { dotStuffingTransform } from '../../src/vendor/nodemailer-data-stream.ts';
import { startSmtpSink } from '../helpers/smtp-sink.ts';

type Stream = NodeJS.ReadWriteStream & { inByteCount: number; outByteCount: number };
const NewDataStream = DataStream as unknown as new () => Stream;

/** What nodemailer's DataStream writes for `chunks`, and its byte counts. */
async function stuffed(chunks: Buffer[]): Promise<{ out: Buffer; inBytes: number; outBytes: number }> {
  const stream = new NewDataStream();
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return { out: Buffer.concat(out), inBytes: stream.inByteCount, outBytes: stream.outByteCount };
}

/** The rules byte by byte, as the library writes them: every line ending CRLF, a dot opening a line doubled, the final dot line. */
function reference(message: Buffer): Buffer {
  const out: number[] = [];
  let prev: number | false = false;
  for (const byte of message) {
    if (prev === 0x0d && byte !== 0x0a) out.push(0x0a, ...(byte === 0x2e ? [0x2e] : []));
    else if (byte === 0x0a && prev !== 0x0d) out.push(0x0d);
    else if (byte === 0x2e && (prev === 0x0a || prev === false)) out.push(0x2e);
    out.push(byte);
    prev = byte;
  }
  const end = prev === 0x0a ? '.\r\n' : prev === 0x0d ? '\n.\r\n' : '\r\n.\r\n';
  return Buffer.concat([Buffer.from(out), Buffer.from(end)]);
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

describe("nodemailer's DATA writer", () => {
  it('is replaced by the transform that skips from line end to line end', () => {
    expect(DataStream.prototype._transform).toBe(dotStuffingTransform);
  });

  it("is what the SMTP client writes DATA with: a message of leading dots and bare LFs arrives whole", async () => {
    const sink = await startSmtpSink();
    const calls: number[] = [];
    const prototype = DataStream.prototype as { _transform: typeof dotStuffingTransform };
    prototype._transform = function (this: ThisParameterType<typeof dotStuffingTransform>, ...args: Parameters<typeof dotStuffingTransform>) {
      calls.push(1);
      return dotStuffingTransform.apply(this, args);
    };
    try {
      const connection = new SMTPConnection({ host: sink.host, port: sink.port, logger: false, name: 'client.test' });
      connection.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
      const message = 'Subject: dots\r\n\r\n.\r\n..two\r\nbare\nend.\r\n.';
      await new Promise<void>((resolve, reject) => connection.send({ from: 'a@rookery.test', to: ['b@rookery.test'] }, message, (err) => (err ? reject(err) : resolve())));
      connection.quit();
      expect(calls.length).toBeGreaterThan(0);
      expect(sink.messages[0]!.raw.toString()).toBe('Subject: dots\r\n\r\n.\r\n..two\r\nbare\r\nend.\r\n.\r\n');
    } finally {
      prototype._transform = dotStuffingTransform;
      await sink.close();
    }
  });

  it('stuffs dots and repairs line endings as the byte-by-byte rules do, however the message is cut', async () => {
    const next = random(42);
    // Dense in the bytes that matter: CR, LF and dot, so every case and chunk boundary comes up.
    const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x0d, 0x0a, 0x2e];
    for (let round = 0; round < 2000; round++) {
      const length = Math.floor(next() * 40);
      const message = Buffer.from(Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]!));
      const chunks: Buffer[] = [];
      for (let at = 0; at < length; ) {
        const size = 1 + Math.floor(next() * 8);
        chunks.push(message.subarray(at, at + size));
        at += size;
      }
      const result = await stuffed(chunks);
      const expected = reference(message);
      expect(result.out.toString('latin1'), JSON.stringify(message.toString('latin1'))).toBe(expected.toString('latin1'));
      expect(result.inBytes).toBe(length);
      expect(result.outBytes).toBe(expected.length);
    }
  });

  it('passes a chunk that needs nothing through as it is', async () => {
    const chunk = Buffer.from('Subject: x\r\n\r\nline one\r\nline two.\r\n');
    const stream = new NewDataStream();
    const out: Buffer[] = [];
    stream.on('data', (c: Buffer) => out.push(c));
    stream.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out[0]).toBe(chunk);
  });

  it('a 4 KB message of 60 lines, dots leading some', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => (i % 7 === 0 ? `.line ${i} ${'x'.repeat(60)}` : `line ${i} ${'y'.repeat(60)}`));
    const message = Buffer.from(`${lines.join('\r\n')}\r\n`);
    expect((await stuffed([message])).out.toString()).toBe(reference(message).toString());
    expect((await stuffed([message])).out.toString()).toContain('\r\n..line 7 ');
  });
});
