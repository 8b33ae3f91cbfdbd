import { expect } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { apiGet, killDaemon, startDaemonProcess, type DaemonProcess } from './daemon-process.ts';
import { startSmtpSink, type SmtpSink } from './smtp-sink.ts';
import { startSubmissionLoad, undelivered, type SubmissionLoad } from './submission-load.ts';
import { createTempDir, type TempDir } from './temp-dir.ts';
import { testDaemonConfig, UNSHAPED } from './test-config.ts';

/**
 * What every fault test under load shares: a daemon process delivering to a loopback sink, SMTP
 * submission load against it from the start, its readiness, and the closing check that every
 * message answered 250 was delivered by that same process.
 */
export interface FaultHarness {
  dir: TempDir;
  sink: SmtpSink;
  /** Starts the daemon with `extra` laid over the test config, then the load (`sessions` SMTP sessions). */
  start(extra: ConfigInput, sessions: number): Promise<{ daemon: DaemonProcess; load: SubmissionLoad }>;
  readiness(): Promise<{ status: number; checks: Record<string, { ok: boolean; error?: string }> }>;
  /** Stops the load, then expects every acknowledged message at the sink within `timeoutMs`, and the daemon still up. */
  expectEveryAcknowledgedDelivered(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function createFaultHarness(name: string): Promise<FaultHarness> {
  const dir = await createTempDir(`rookery-${name}`);
  const sink = await startSmtpSink();
  let daemon: DaemonProcess | undefined;
  let load: SubmissionLoad | undefined;
  return {
    dir,
    sink,
    async start(extra, sessions) {
      const config = testDaemonConfig({
        dir: dir.path,
        sink,
        extra: {
          ...UNSHAPED,
          ...extra,
          // A delivery that failed, or could not start, is tried again within a second.
          delivery: { retry: { initial: '200ms', max: '1s' }, ...extra.delivery },
        },
      });
      daemon = await startDaemonProcess(dir.path, config);
      load = startSubmissionLoad(daemon.smtp[0]!, { sessions, prefix: name });
      return { daemon, load };
    },
    async readiness() {
      const { status, body } = await apiGet(daemon!, '/readyz');
      return { status, checks: (body?.checks ?? {}) as Record<string, { ok: boolean; error?: string }> };
    },
    async expectEveryAcknowledgedDelivered(timeoutMs = 30_000) {
      await load!.stop();
      expect(await undelivered(sink, load!.acknowledged, timeoutMs)).toEqual([]);
      // Recovered in place: the process that saw the fault is the one that delivered.
      expect(daemon!.child.exitCode).toBeNull();
      expect((await apiGet(daemon!, '/healthz')).status).toBe(200);
    },
    async close() {
      await load?.stop();
      await killDaemon(daemon);
      await sink.close();
      await dir.remove();
    },
  };
}
