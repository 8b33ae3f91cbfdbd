import type { Readable } from 'node:stream';
import type { BufferBudget } from '../engine/buffer-budget.ts';
import { BareLineEndingScanner } from './line-ending-scanner.ts';

export type CollectedMessage =
  | { ok: true; body: Buffer }
  | { ok: false; reason: 'MESSAGE_TOO_LARGE' | 'BARE_LINE_ENDING' | 'BUFFERS_FULL'; bytes: number };

/**
 * Reads a DATA stream to its end. Buffers at most `maxBytes`, and only while `buffers` has room:
 * past the limit, over the budget, or once a bare CR or LF is seen, the rest is read and dropped
 * so the client can finish sending and get its reply, without the server holding the message.
 * Rejects when the stream fails (the client went away mid-message). A collected body is still
 * held in the budget (its length in bytes): the caller releases it once the message is
 * committed; anything else is released here.
 */
export function collectMessage(stream: Readable, maxBytes: number, buffers: BufferBudget): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const scanner = new BareLineEndingScanner();
    let chunks: Buffer[] = [];
    let bytes = 0;
    let held = 0;
    let overBudget = false;
    let settled = false;
    const drop = () => {
      buffers.release(held);
      held = 0;
      chunks = [];
    };
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };

    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      scanner.update(chunk);
      if (bytes > maxBytes || scanner.detected || overBudget) return drop();
      if (!buffers.take(chunk.length)) {
        overBudget = true;
        return drop();
      }
      held += chunk.length;
      chunks.push(chunk);
    });
    stream.once('end', () =>
      settle(() => {
        const bare = scanner.finish();
        const refusal = bytes > maxBytes ? 'MESSAGE_TOO_LARGE' : bare ? 'BARE_LINE_ENDING' : overBudget ? 'BUFFERS_FULL' : null;
        if (refusal) {
          drop();
          resolve({ ok: false, reason: refusal, bytes });
        } else resolve({ ok: true, body: Buffer.concat(chunks, bytes) });
      }),
    );
    const fail = (err: Error) =>
      settle(() => {
        drop();
        reject(err);
      });
    stream.once('error', fail);
    stream.once('close', () => fail(new Error('connection closed before the message was received in full')));
  });
}
