import type { Readable } from 'node:stream';
import { SMTP_REPLIES, smtpReplyText } from '../errors.ts';
import type { Rejections } from './rejections.ts';
import type { SessionState } from './session-registry.ts';

/**
 * The time limit of a DATA transfer: `graceMs`, plus one second for every `minBytesPerSecond`
 * bytes received. A client that trickles its message (a byte every few seconds keeps the idle
 * timer from ever firing) is cut off once it falls behind; one that sends at any reasonable
 * speed never meets the limit. One timer per transfer, re-armed only when it fires.
 */
export function watchDataRate(stream: Readable, options: { graceMs: number; minBytesPerSecond: number; onTooSlow: (bytes: number) => void }): () => void {
  const started = performance.now();
  let bytes = 0;
  let timer: NodeJS.Timeout | null = null;
  const deadline = () => started + options.graceMs + (bytes / options.minBytesPerSecond) * 1000;
  const arm = () => {
    timer = setTimeout(() => {
      if (deadline() > performance.now()) return arm();
      timer = null;
      options.onTooSlow(bytes);
    }, Math.max(1, deadline() - performance.now()));
  };
  const count = (chunk: Buffer) => void (bytes += chunk.length);
  stream.on('data', count);
  arm();
  return () => {
    stream.off('data', count);
    if (timer) clearTimeout(timer);
    timer = null;
  };
}

/**
 * A session's DATA held to the minimum rate, for every listener: a client that falls behind is
 * refused (DATA_TOO_SLOW) and its session ended with a 421. Without the session's state (it has
 * ended already) there is nothing to watch.
 */
export function watchSessionDataRate(
  stream: Readable,
  state: SessionState | undefined,
  options: { graceMs: number; minBytesPerSecond: number; rejections: Rejections },
): () => void {
  if (!state) return () => undefined;
  return watchDataRate(stream, {
    graceMs: options.graceMs,
    minBytesPerSecond: options.minBytesPerSecond,
    onTooSlow: (bytes) => {
      options.rejections.reject(state, 'DATA_TOO_SLOW', { bytes });
      state.server.endSession(state.id, smtpReplyText(SMTP_REPLIES.DATA_TOO_SLOW));
    },
  });
}
