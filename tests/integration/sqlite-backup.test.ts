import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { BackupError, backupSqlite } from '../../src/storage/sqlite/sqlite-backup.ts';
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const LATEST = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version));
const NOW = Date.parse('2026-11-30T10:00:00Z');

describe('SQLite backup (VACUUM INTO, checked, renamed)', () => {
  let dir: TempDir;
  let store: Store;
  let source: string;

  beforeEach(async () => {
    dir = await createTempDir('rookery-sqlite-backup');
    source = dir.file('rookery.db');
    store = createSqliteStore({ path: source, logger: createLogger('silent') });
    await store.migrate();
    await store.enqueue([newMessage('m1', NOW), newMessage('m2', NOW, { recipients: ['a@dest.test', 'b@dest.test'] })]);
  });
  afterEach(async () => {
    await store.close();
    await dir.remove();
  });

  it('writes a copy its owner alone can read, which opens as a store holding every message', async () => {
    const result = await backupSqlite({ source, target: dir.file('copy.db') });
    expect(result).toMatchObject({ path: dir.file('copy.db'), source, schemaVersion: LATEST, supportedVersion: LATEST, messages: 2, recipients: { queued: 3 } });
    expect(result.bytes).toBe(statSync(dir.file('copy.db')).size);
    expect(statSync(dir.file('copy.db')).mode & 0o777).toBe(0o600);
    // No temporary file is left beside it.
    expect(readdirSync(dir.path).filter((name) => name.includes('copy'))).toEqual(['copy.db']);

    const copy = createSqliteStore({ path: dir.file('copy.db'), logger: createLogger('silent') });
    try {
      await copy.migrate();
      expect((await copy.listRecipients('m2')).map((r) => [r.recipient, r.state]).sort()).toEqual([['a@dest.test', 'queued'], ['b@dest.test', 'queued']]);
      expect(await copy.getMessageInfo('m1')).toMatchObject({ messageIdHeader: '<m1@sender.test>' });
    } finally {
      await copy.close();
    }
  });

  it('copies what is committed while another connection holds an open write transaction, without waiting for it', async () => {
    const writer = new DatabaseSync(source);
    try {
      writer.exec('BEGIN IMMEDIATE');
      writer.exec("DELETE FROM recipients WHERE message_id = 'm1'");
      writer.exec("DELETE FROM messages WHERE id = 'm1'");
      const result = await backupSqlite({ source, target: dir.file('during-write.db'), busyTimeoutMs: 0 });
      expect(result).toMatchObject({ messages: 2, recipients: { queued: 3 } });
      writer.exec('COMMIT');
    } finally {
      writer.close();
    }
    // And after the commit, a new copy no longer has the message.
    expect(await backupSqlite({ source, target: dir.file('after-write.db') })).toMatchObject({ messages: 1, recipients: { queued: 2 } });
  });

  it('never replaces a file without force, and replaces it whole with it', async () => {
    writeFileSync(dir.file('old.db'), 'an older backup');
    await expect(backupSqlite({ source, target: dir.file('old.db') })).rejects.toThrow(new BackupError(`${dir.file('old.db')} already exists; nothing was written (--force replaces it)`));
    expect(statSync(dir.file('old.db')).size).toBe('an older backup'.length);
    const result = await backupSqlite({ source, target: dir.file('old.db'), force: true });
    expect(result.messages).toBe(2);
    expect(statSync(dir.file('old.db')).size).toBe(result.bytes);
  });

  it('refuses what it cannot copy to, or from, with the reason', async () => {
    await expect(backupSqlite({ source: dir.file('nothing.db'), target: dir.file('x.db') })).rejects.toThrow(/^no database at .*nothing\.db \(storage\.path/);
    await expect(backupSqlite({ source, target: dir.path })).rejects.toThrow(/is a directory; give the file to write/);
    await expect(backupSqlite({ source, target: dir.file('missing', 'x.db') })).rejects.toThrow(/the directory .*missing does not exist/);
    await expect(backupSqlite({ source, target: source, force: true })).rejects.toThrow(/is the database itself/);

    const other = new DatabaseSync(dir.file('other.db'));
    other.exec('CREATE TABLE notes (text TEXT)');
    other.close();
    await expect(backupSqlite({ source: dir.file('other.db'), target: dir.file('y.db') })).rejects.toThrow('the database is not a Rookery store (it has no schema_migrations table)');
    writeFileSync(dir.file('text.db'), 'not a database at all, only some text that is long enough to have a header'.repeat(20));
    await expect(backupSqlite({ source: dir.file('text.db'), target: dir.file('z.db') })).rejects.toThrow(/could not copy .*text\.db: file is not a database/);
    // Whatever failed, nothing was left behind under the names asked for or a temporary one.
    expect(readdirSync(dir.path).filter((name) => /^(x|y|z)\.db|\.tmp$/.test(name))).toEqual([]);
  });
});
