import type { Readable } from 'node:stream';
import { BareLineEndingScanner } from './line-ending-scanner.ts';

export type CollectedMessage =
  | { ok: true; body: Buffer }
  | { ok: false; reason: 'MESSAGE_TOO_LARGE' | 'BARE_LINE_ENDING'; bytes: number };

/**
 * Reads a DATA stream to its end. Buffers at most `maxBytes`: past the limit, or once a bare CR
 * or LF is seen, the rest is read and dropped so the client can finish sending and get its
 * reply, without the server holding the message. Rejects when the stream fails (the client went
 * away mid-message).
 */
export function collectMessage(stream: Readable, maxBytes: number): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const scanner = new BareLineEndingScanner();
    let chunks: Buffer[] = [];
    let bytes = 0;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };

    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      scanner.update(chunk);
      if (bytes > maxBytes || scanner.detected) chunks = [];
      else chunks.push(chunk);
    });
    stream.once('end', () =>
      settle(() => {
        const bare = scanner.finish();
        if (bytes > maxBytes) resolve({ ok: false, reason: 'MESSAGE_TOO_LARGE', bytes });
        else if (bare) resolve({ ok: false, reason: 'BARE_LINE_ENDING', bytes });
        else resolve({ ok: true, body: Buffer.concat(chunks, bytes) });
      }),
    );
    stream.once('error', (err) => settle(() => reject(err)));
    stream.once('close', () => settle(() => reject(new Error('connection closed before the message was received in full'))));
  });
}
