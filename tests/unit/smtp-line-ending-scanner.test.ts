import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BufferBudget } from '../../src/engine/buffer-budget.ts';
import { BareLineEndingScanner } from '../../src/smtp/line-ending-scanner.ts';
import { collectMessage } from '../../src/smtp/message-collector.ts';

function scan(...chunks: string[]): boolean {
  const scanner = new BareLineEndingScanner();
  for (const chunk of chunks) scanner.update(Buffer.from(chunk, 'latin1'));
  return scanner.finish();
}

/** Every way of cutting `text` into two chunks. */
function allSplits(text: string): string[][] {
  const splits: string[][] = [];
  for (let i = 0; i <= text.length; i++) splits.push([text.slice(0, i), text.slice(i)]);
  return splits;
}

describe('BareLineEndingScanner', () => {
  it('accepts CRLF-only text, however it is chunked', () => {
    const text = 'Subject: a\r\n\r\nline one\r\n\r\n.. dot\r\nlast\r\n';
    for (const split of allSplits(text)) expect(scan(...split), JSON.stringify(split)).toBe(false);
    expect(scan('')).toBe(false);
    expect(scan('no line ending at all')).toBe(false);
  });

  it.each([
    ['bare LF', 'a\nb\r\n'],
    ['bare CR', 'a\rb\r\n'],
    ['LF.LF', 'a\r\n\n.\nb\r\n'],
    ['LF.CRLF', 'a\n.\r\nb\r\n'],
    ['CRLF.LF', 'a\r\n.\nb\r\n'],
    ['CR.CR', 'a\r.\rb\r\n'],
    ['CR CR LF', 'a\r\r\nb'],
    ['LF at the very start', '\nabc\r\n'],
    ['CR at the very end', 'abc\r\n\r'],
    ['LF CR (reversed)', 'abc\n\r'],
  ])('finds a %s wherever the chunk boundary falls', (_name, text) => {
    for (const split of allSplits(text)) expect(scan(...split), JSON.stringify(split)).toBe(true);
  });

  it('judges a CR that ends a chunk by the next chunk, across empty chunks', () => {
    expect(scan('a\r', '', '\nb')).toBe(false);
    expect(scan('a\r', '', 'b')).toBe(true);
    expect(scan('a\r', '\r', '\n')).toBe(true);
  });

  it('reports a detection before the end', () => {
    const scanner = new BareLineEndingScanner();
    scanner.update(Buffer.from('ok\r\n'));
    expect(scanner.detected).toBe(false);
    scanner.update(Buffer.from('bad\n'));
    expect(scanner.detected).toBe(true);
  });
});

describe('collectMessage', () => {
  it('returns the bytes of a clean message', async () => {
    const stream = new PassThrough();
    const result = collectMessage(stream, 100, new BufferBudget(1_000_000));
    stream.write('Subject: x\r\n');
    stream.end('\r\nbody\r\n');
    expect(await result).toEqual({ ok: true, body: Buffer.from('Subject: x\r\n\r\nbody\r\n') });
  });

  it('reads an oversized message to its end and reports its size', async () => {
    const stream = new PassThrough();
    const result = collectMessage(stream, 10, new BufferBudget(1_000_000));
    for (let i = 0; i < 5; i++) stream.write('0123456789\r\n');
    stream.end();
    expect(await result).toEqual({ ok: false, reason: 'MESSAGE_TOO_LARGE', bytes: 60 });
  });

  it('accepts a message of exactly the limit', async () => {
    const stream = new PassThrough();
    const result = collectMessage(stream, 12, new BufferBudget(1_000_000));
    stream.end('0123456789\r\n');
    expect((await result).ok).toBe(true);
  });

  it('reports a bare line ending', async () => {
    const stream = new PassThrough();
    const result = collectMessage(stream, 1000, new BufferBudget(1_000_000));
    stream.write('a\r');
    stream.end('.\rb\r\n');
    expect(await result).toEqual({ ok: false, reason: 'BARE_LINE_ENDING', bytes: 7 });
  });

  it('rejects when the stream is destroyed before its end, releasing what it held', async () => {
    const stream = new PassThrough();
    const buffers = new BufferBudget(1_000_000);
    const result = collectMessage(stream, 1000, buffers);
    stream.write('partial');
    await new Promise((resolve) => setImmediate(resolve));
    expect(buffers.used).toBe(7);
    stream.destroy(new Error('gone'));
    await expect(result).rejects.toThrow('gone');
    expect(buffers.used).toBe(0);
  });

  it('holds a collected body in the budget, and holds nothing of a refused one', async () => {
    const buffers = new BufferBudget(1_000_000);
    const clean = new PassThrough();
    const collected = collectMessage(clean, 100, buffers);
    clean.end('Subject: x\r\n\r\nbody\r\n');
    expect((await collected).ok).toBe(true);
    expect(buffers.used).toBe(20);
    buffers.release(20);
    const big = new PassThrough();
    const refused = collectMessage(big, 10, buffers);
    big.end('0123456789\r\n');
    expect((await refused).ok).toBe(false);
    expect(buffers.used).toBe(0);
  });

  it('stops holding a message that would pass the budget, reads it to its end and refuses it', async () => {
    const buffers = new BufferBudget(25);
    buffers.take(5);
    const stream = new PassThrough();
    const result = collectMessage(stream, 1000, buffers);
    stream.write('0123456789\r\n');
    stream.write('0123456789\r\n');
    stream.end('0123456789\r\n');
    expect(await result).toEqual({ ok: false, reason: 'BUFFERS_FULL', bytes: 36 });
    expect(buffers.used).toBe(5);
  });
});
