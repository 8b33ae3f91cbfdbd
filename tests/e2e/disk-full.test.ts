import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apiGet, killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { mountSmallDisk, requireSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { startSubmissionLoad, undelivered, type SubmissionLoad } from '../helpers/submission-load.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig, UNSHAPED } from '../helpers/test-config.ts';
import { until } from '../helpers/until.ts';

const canMount = await requireSmallDisk();

const SESSIONS = 8;

/**
 * The disk under the SQLite queue fills up under load, then space comes back. While it is full
 * the daemon refuses what it cannot store with a temporary reply and /readyz says the storage
 * cannot write; once space is back, the same process takes mail again, and every message it
 * answered 250 is delivered.
 */
describe.skipIf(!canMount)('disk full under the SQLite queue', () => {
  let dir: TempDir;
  let disk: SmallDisk;
  let sink: SmtpSink;
  let daemon: DaemonProcess | undefined;
  let load: SubmissionLoad | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-disk-full');
    disk = await mountSmallDisk(64 << 20);
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await load?.stop();
    load = undefined;
    await killDaemon(daemon);
    daemon = undefined;
    await sink.close();
    await disk.remove();
    await dir.remove();
  });

  const readiness = async () => (await apiGet(daemon!, '/readyz')) as { status: number; body: { checks: Record<string, { ok: boolean; error?: string }> } };

  it('451 while the disk is full, /readyz 503, and recovery the moment space returns', { timeout: 120_000 }, async () => {
    const config = testDaemonConfig({
      dir: dir.path,
      sink,
      extra: { ...UNSHAPED, storage: { path: `${disk.path}/queue.db` }, delivery: { retry: { initial: '200ms', max: '1s' } } },
    });
    daemon = await startDaemonProcess(dir.path, config);
    load = startSubmissionLoad(daemon.smtp[0]!, { sessions: SESSIONS, prefix: 'disk-full' });
    await load.moreAcknowledged(100);

    disk.fill();
    await load.moreRefused(3 * SESSIONS);
    const full = await readiness();
    expect(full.status).toBe(503);
    expect(full.body.checks.storage).toEqual({ ok: false, error: expect.stringMatching(/full/) });

    disk.free();
    await until(async () => (await readiness()).status === 200, '/readyz 200 once space is back');
    await load.moreAcknowledged(100);
    await load.stop();

    // Refused while full with a temporary reply (the client keeps its copy), never a bounce.
    expect([...load.refusals.keys()].filter((k) => !/^45[12] /.test(k))).toEqual([]);
    expect(await undelivered(sink, load.acknowledged, 30_000)).toEqual([]);
    // Deliveries made while the disk was full were recorded once it had room, not sent again.
    expect(sink.messages).toHaveLength(new Set(sink.messages.map((m) => m.messageId)).size);
    expect(daemon.child.exitCode).toBeNull();
  });
});
