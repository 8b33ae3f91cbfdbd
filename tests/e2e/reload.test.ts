import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { generateDkimKey } from '../helpers/dkim-keys.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

async function logged(daemon: DaemonProcess, event: string, count: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = daemon.logs.filter((l) => l.event === event);
    if (found.length >= count) return found[count - 1]!;
    if (Date.now() > deadline) throw new Error(`no ${event} #${count} in the log`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SIGHUP', () => {
  let dir: TempDir;
  let daemon: DaemonProcess | undefined;

  afterEach(async () => {
    await killDaemon(daemon);
    await dir?.remove();
  });

  it('rereads the DKIM key files: a broken one is reported and the old key kept, a good one is taken', async () => {
    dir = await createTempDir('rookery-reload');
    const keyPath = dir.file('example.com.s1.pem');
    writeFileSync(keyPath, generateDkimKey('ed25519').pem);
    daemon = await startDaemonProcess(
      dir.path,
      testDaemonConfig({
        dir: dir.path,
        extra: { hostname: 'reload.rookery.test', dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keyPath }] } } } },
      }),
    );

    writeFileSync(keyPath, 'not a key\n');
    daemon.kill('SIGHUP');
    const broken = await logged(daemon, 'daemon.reloaded', 1);
    expect(broken.problems).toEqual([expect.stringMatching(/^dkim\.domains\.example\.com\.keys\[0\]\.privateKey: /)]);

    writeFileSync(keyPath, generateDkimKey('ed25519').pem);
    daemon.kill('SIGHUP');
    expect((await logged(daemon, 'daemon.reloaded', 2)).problems).toEqual([]);
    // Still running: a reload is not a stop.
    expect(daemon.child.exitCode).toBeNull();
  });
});
