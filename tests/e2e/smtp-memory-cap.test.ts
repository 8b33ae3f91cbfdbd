import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const MiB = 2 ** 20;
const CAP = 32 * MiB;
const CLIENTS = 50;
/**
 * What the daemon may grow by besides the held message bytes, whatever the number of clients:
 * garbage from the streams not yet collected, and the copies made while held messages are
 * committed. Measured at about 220 MiB on a 2-core machine with 50 and with 100 clients, and at
 * 249-294 MiB on another (six runs, 2026-12-01, where the test failed one run in three at 256 MiB):
 * when the collector frees the dropped buffers varies from run to run. Without the cap the same
 * load grows the daemon by about 880 MiB.
 */
const FIXED_OVERHEAD = 320 * MiB;

/** A /proc/<pid>/status figure in bytes (VmRSS now, VmHWM the peak). */
function memory(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

let dir: TempDir | undefined;
let daemon: DaemonProcess | undefined;

afterEach(async () => {
  await killDaemon(daemon);
  await dir?.remove();
  daemon = dir = undefined;
});

describe('smtp.maxBufferedBytes', () => {
  it(`${CLIENTS} clients each streaming a 20 MB message never push the daemon's memory past the cap plus a fixed overhead`, async () => {
    dir = await createTempDir('rookery-memory-cap');
    const config = testDaemonConfig({ dir: dir.path, extra: { smtp: { maxBufferedBytes: CAP, maxConnectionsPerClient: CLIENTS } } });
    daemon = await startDaemonProcess(dir.path, config, { keepLogs: false });
    const before = memory(daemon.pid, 'VmRSS');
    const line = `${'0123456789'.repeat(7)}\r\n`;
    const message = Buffer.from(`Subject: large\r\n\r\n${line.repeat(Math.ceil(20_000_000 / line.length))}`);

    const replies = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = await SmtpTestClient.connect({ ...daemon!.smtp[0]!, timeoutMs: 120_000 });
        try {
          await client.ehlo();
          await client.send('MAIL FROM:<a@app.example>');
          await client.send('RCPT TO:<b@dest.example>');
          return await client.data(message);
        } finally {
          await client.close();
        }
      }),
    );

    const growth = memory(daemon.pid, 'VmHWM') - before;
    expect(growth).toBeLessThan(CAP + FIXED_OVERHEAD);
    // Every client got an answer: its message queued, or refused for now with 452 4.3.1.
    const otherReplies = replies.filter((r) => !(r.code === 250 || (r.code === 452 && r.text.startsWith('4.3.1 '))));
    expect(otherReplies.map((r) => `${r.code} ${r.text}`)).toEqual([]);
    expect(replies.some((r) => r.code === 452)).toBe(true);
  }, 90_000);
});
