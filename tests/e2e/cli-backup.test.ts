import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ownerProblem } from '../../src/cli/backup.ts';
import type { SqliteBackupResult } from '../../src/storage/sqlite/sqlite-backup.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { runRookery } from '../helpers/rookery-cli.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { startSubmissionLoad } from '../helpers/submission-load.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig, UNSHAPED } from '../helpers/test-config.ts';
import { until } from '../helpers/until.ts';

const HOSTNAME = 'backup.rookery.test';

/**
 * `rookery backup` against a daemon taking mail over SMTP from 8 sessions at once: the copy holds
 * every message answered 250 before the backup began, and a daemon started on the copy (the
 * restore) delivers them. The first daemon's remote defers everything, so its mail stays queued
 * and keeps being written (attempts, retries) while the copy is taken.
 */
describe('rookery backup under SMTP load, and a restore from the copy', () => {
  let dir: TempDir;
  let restoreDir: TempDir;
  let deferring: SmtpSink | undefined;
  let accepting: SmtpSink | undefined;
  let daemon: DaemonProcess | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-backup');
    restoreDir = await createTempDir('rookery-restore');
  });
  afterEach(async () => {
    await killDaemon(daemon);
    await deferring?.close();
    await accepting?.close();
    await dir.remove();
    await restoreDir.remove();
  });

  it('copies every acknowledged message while the daemon accepts mail, and the copy delivers them', { timeout: 120_000 }, async () => {
    deferring = await startSmtpSink({ script: { onRcptTo: () => ({ code: 451, message: '4.2.0 mailbox busy' }) } });
    const extra = { ...UNSHAPED, hostname: HOSTNAME, delivery: { retry: { initial: '300ms', max: '1s' } } };
    daemon = await startDaemonProcess(dir.path, testDaemonConfig({ dir: dir.path, sink: deferring, extra }));
    const load = startSubmissionLoad(daemon.smtp[0]!, { sessions: 8, prefix: 'backup' });
    let result;
    let before: Set<string>;
    let during: number;
    try {
      await load.moreAcknowledged(200);
      before = new Set(load.acknowledged);
      result = await runRookery(['backup', '--to', dir.file('copy.db'), '--json', '--config', join(dir.path, 'rookery.yaml')], {});
      during = load.acknowledged.size - before.size;
      // The daemon went on taking mail: the copy was taken beside it, not instead of it.
      await load.moreAcknowledged(20);
    } finally {
      await load.stop();
    }
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    daemon = undefined;
    expect(deferring.messages).toEqual([]);

    const copy = JSON.parse(result.stdout) as SqliteBackupResult;
    expect(copy.path).toBe(dir.file('copy.db'));
    expect(copy.messages).toBeGreaterThanOrEqual(before.size);
    expect(copy.messages).toBeLessThanOrEqual(before.size + during);
    const db = new DatabaseSync(dir.file('copy.db'), { readOnly: true });
    const inCopy = new Set((db.prepare('SELECT message_id_header AS id FROM messages').all() as Array<{ id: string }>).map((row) => row.id));
    expect(db.prepare('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' });
    db.close();
    expect([...before].filter((id) => !inCopy.has(id))).toEqual([]);

    // Restore: the copy put where a daemon with the same hostname keeps its queue.
    accepting = await startSmtpSink();
    const restored = testDaemonConfig({ dir: restoreDir.path, sink: accepting, extra });
    mkdirSync(restoreDir.file('data'));
    copyFileSync(dir.file('copy.db'), (restored.storage as { path: string }).path);
    daemon = await startDaemonProcess(restoreDir.path, restored);
    const delivered = () => new Set(accepting!.messages.map((m) => m.messageId));
    await until(() => [...inCopy].every((id) => delivered().has(id)), `the ${inCopy.size} messages of the copy at the sink`, 60_000);
    expect([...before].filter((id) => !delivered().has(id))).toEqual([]);
  });

  it('refuses to replace a file without --force, and names pg_dump for a PostgreSQL store', { timeout: 60_000 }, async () => {
    const config = testDaemonConfig({ dir: dir.path, extra: { hostname: HOSTNAME } });
    daemon = await startDaemonProcess(dir.path, config);
    const configPath = join(dir.path, 'rookery.yaml');
    writeFileSync(dir.file('taken.db'), 'yesterday');
    const refused = await runRookery(['backup', '--to', dir.file('taken.db'), '--config', configPath], {});
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`rookery backup: ${dir.file('taken.db')} already exists; nothing was written (--force replaces it)\n`);

    const forced = await runRookery(['backup', '--to', dir.file('taken.db'), '--force', '--config', configPath], {});
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`^Wrote ${dir.file('taken.db')} \\(\\d+\\.\\d KiB\\), a consistent copy of ${dir.file('data', `${HOSTNAME}.db`)}\n  integrity check: ok\n  schema version: \\d+\n  messages: 0; recipients: none\n$`));

    writeFileSync(dir.file('pg.yaml'), 'storage:\n  driver: postgres\n  url: postgres://rookery@db.internal/rookery\n');
    const postgres = await runRookery(['backup', '--to', dir.file('pg.db'), '--config', dir.file('pg.yaml')], {});
    expect(postgres.code).toBe(1);
    expect(postgres.stderr).toContain('the store is PostgreSQL');
    expect(postgres.stderr).toContain('pg_dump --format=custom');

    const usage = await runRookery(['backup', '--config', configPath], {});
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--to FILE is required');
  });

  it('keeps root away from another user\'s database', () => {
    expect(ownerProblem('/var/lib/rookery/data/rookery.db', 998, 0)).toMatch(/belongs to uid 998, and this runs as root.*sudo -u rookery rookery backup/);
    expect(ownerProblem('/var/lib/rookery/data/rookery.db', 0, 0)).toBeNull();
    expect(ownerProblem('/var/lib/rookery/data/rookery.db', 998, 998)).toBeNull();
  });
});
