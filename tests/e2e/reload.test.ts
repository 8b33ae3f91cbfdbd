import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateDkimKey } from '../helpers/dkim-keys.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';

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
  let dir: string;
  let daemon: DaemonProcess | undefined;

  afterEach(async () => {
    await killDaemon(daemon);
    rmSync(dir, { recursive: true, force: true });
  });

  it('rereads the DKIM key files: a broken one is reported and the old key kept, a good one is taken', async () => {
    dir = mkdtempSync(join(tmpdir(), 'rookery-reload-'));
    const keyPath = join(dir, 'example.com.s1.pem');
    writeFileSync(keyPath, generateDkimKey('ed25519').pem);
    daemon = await startDaemonProcess(dir, {
      hostname: 'reload.rookery.test',
      smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }] },
      api: { listen: { host: '127.0.0.1', port: 0 } },
      dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keyPath }] } } },
    });

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
