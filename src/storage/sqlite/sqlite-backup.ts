import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, realpath, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { moveIntoPlace, syncPath } from '../durable-file.ts';
import { SQLITE_MIGRATIONS } from './migrations.ts';

/**
 * A consistent copy of the SQLite store, taken beside a running daemon.
 *
 * VACUUM INTO rather than node:sqlite's backup(): VACUUM INTO reads the whole database in one
 * read transaction, a snapshot that WAL mode lets the daemon keep writing beside, so it finishes
 * however busy the daemon is. The online backup API copies pages in steps and starts over
 * whenever another connection (the daemon, in its own process) writes between two steps, which
 * under steady load may be always. VACUUM INTO also leaves out free pages, so the copy is as small
 * as the data.
 *
 * The copy never appears at its final name unchecked: it is written to a temporary file beside
 * it (mode 0600: it holds every queued message), checked, synced, then renamed.
 */

export interface SqliteBackupResult {
  /** The file written, absolute. */
  path: string;
  /** The database copied, absolute. */
  source: string;
  bytes: number;
  /** The newest migration in the copy. */
  schemaVersion: number;
  /** The newest migration this build of Rookery knows. */
  supportedVersion: number;
  messages: number;
  /** Recipients by state (queued, delivering, delivered, bounced). */
  recipients: Record<string, number>;
}

/** A problem the operator can fix (the message says how); anything else is a bug or an I/O error. */
export class BackupError extends Error {}

export async function backupSqlite(options: { source: string; target: string; force?: boolean; busyTimeoutMs?: number }): Promise<SqliteBackupResult> {
  const source = resolve(options.source);
  const target = resolve(options.target);
  const sourceStat = await stat(source).catch(() => null);
  if (!sourceStat?.isFile()) throw new BackupError(`no database at ${source} (storage.path, relative to the current directory)`);
  const targetStat = await stat(target).catch(() => null);
  if (targetStat?.isDirectory()) throw new BackupError(`${target} is a directory; give the file to write`);
  if (targetStat && !options.force) throw existsError(target);
  if (!(await stat(dirname(target)).catch(() => null))?.isDirectory()) throw new BackupError(`the directory ${dirname(target)} does not exist`);
  if (targetStat && (await realpath(target)) === (await realpath(source))) throw new BackupError(`${target} is the database itself`);

  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  // Created empty and private first: VACUUM INTO fills an empty file and keeps its mode.
  await (await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600)).close();
  try {
    copyInto(source, temp, options.busyTimeoutMs ?? 30_000);
    const facts = inspectCopy(temp);
    await syncPath(temp);
    // A file that appeared at the target meanwhile is kept, as one there at the start would be.
    if (!(await moveIntoPlace(temp, target, { force: options.force }))) throw existsError(target);
    await syncPath(dirname(target));
    return { path: target, source, bytes: (await stat(target)).size, ...facts, supportedVersion: Math.max(...SQLITE_MIGRATIONS.map((m) => m.version)) };
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

function existsError(target: string): BackupError {
  return new BackupError(`${target} already exists; nothing was written (--force replaces it)`);
}

/** One read transaction: read-only, so the backup can never write to the daemon's database. */
function copyInto(source: string, temp: string, busyTimeoutMs: number): void {
  const db = new DatabaseSync(source, { readOnly: true });
  try {
    // A checkpoint or a recovery in progress holds a lock for a moment; wait for it.
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
    db.prepare('VACUUM INTO ?').run(temp);
  } catch (err) {
    throw new BackupError(`could not copy ${source}: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/** Checks the copy as a database and as a Rookery store, and counts what it holds. */
function inspectCopy(path: string): Pick<SqliteBackupResult, 'schemaVersion' | 'messages' | 'recipients'> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const problems = (db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>).map((row) => row.integrity_check);
    if (problems.join() !== 'ok') throw new BackupError(`the copy fails PRAGMA integrity_check: ${problems.slice(0, 5).join('; ')}`);
    const hasMigrations = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (!hasMigrations) throw new BackupError('the database is not a Rookery store (it has no schema_migrations table)');
    const { version } = db.prepare('SELECT max(version) AS version FROM schema_migrations').get() as { version: number | null };
    if (version === null) throw new BackupError('the database is not a Rookery store (no migration was ever applied)');
    const { messages } = db.prepare('SELECT count(*) AS messages FROM messages').get() as { messages: number };
    const rows = db.prepare('SELECT state, count(*) AS n FROM recipients GROUP BY state ORDER BY state').all() as Array<{ state: string; n: number }>;
    return { schemaVersion: version, messages, recipients: Object.fromEntries(rows.map((row) => [row.state, row.n])) };
  } finally {
    db.close();
  }
}
