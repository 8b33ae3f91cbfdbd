import type { Readable } from 'node:stream';

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
