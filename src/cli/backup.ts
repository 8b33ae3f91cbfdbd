import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BackupError, backupSqlite, type SqliteBackupResult } from '../storage/sqlite/sqlite-backup.ts';
import { ConfigError, describeConfigError, loadCliConfig } from './load-cli-config.ts';
import type { CommandContext, CommandResult } from './main.ts';

/**
 * `rookery backup --to FILE`: a consistent copy of the SQLite store, taken while the daemon runs
 * (storage/sqlite/sqlite-backup.ts says how). A PostgreSQL store has its own tool, pg_dump, which
 * the command names instead of pretending to copy a shared database from one node.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  const given = values as { to?: string; force?: boolean; json?: boolean };
  if (given.to === undefined || given.to === '') {
    process.stderr.write('rookery backup: --to FILE is required\n(see rookery backup --help)\n');
    return 2;
  }
  let storage;
  try {
    ({ storage } = loadCliConfig(values, context.env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
  if (storage.driver === 'postgres') {
    process.stderr.write(
      'rookery backup: the store is PostgreSQL (storage.driver: postgres), shared by every node; back it up\n' +
        'with PostgreSQL\'s own tools, from any machine that reaches the database, e.g.\n' +
        '  pg_dump --format=custom --file=rookery-$(date +%F).dump "$DATABASE_URL"\n' +
        'and restore into an empty database with pg_restore --dbname=... FILE (see docs/deployment.md).\n',
    );
    return 1;
  }

  const path = resolve(storage.path);
  const refusal = ownerProblem(path, (await stat(path).catch(() => null))?.uid, process.getuid?.());
  if (refusal) {
    process.stderr.write(`rookery backup: ${refusal}\n`);
    return 1;
  }
  let result: SqliteBackupResult;
  try {
    result = await backupSqlite({ source: path, target: given.to, force: given.force === true });
  } catch (err) {
    if (!(err instanceof BackupError)) throw err;
    process.stderr.write(`rookery backup: ${err.message}\n`);
    return 1;
  }
  process.stdout.write(given.json ? `${JSON.stringify(result, null, 2)}\n` : describeBackup(result));
  return 0;
}

/**
 * Root must not open another user's database: SQLite creates its -wal and -shm files beside it
 * when they are missing (the daemon stopped), and files left owned by root lock the daemon's
 * user out of its own queue at the next start. Null when the process may go ahead.
 */
export function ownerProblem(path: string, fileUid: number | undefined, processUid: number | undefined): string | null {
  if (processUid !== 0 || fileUid === undefined || fileUid === 0) return null;
  return (
    `${path} belongs to uid ${fileUid}, and this runs as root: files SQLite makes beside the database would ` +
    "belong to root and lock the daemon out. Run it as the database's owner, e.g. sudo -u rookery rookery backup ..."
  );
}

function describeBackup(result: SqliteBackupResult): string {
  const recipients = Object.entries(result.recipients).map(([state, n]) => `${state} ${n}`).join(', ') || 'none';
  const newer = result.schemaVersion > result.supportedVersion ? ' (newer than this Rookery: restore it with the same or a later version)' : '';
  return [
    `Wrote ${result.path} (${formatBytes(result.bytes)}), a consistent copy of ${result.source}`,
    '  integrity check: ok',
    `  schema version: ${result.schemaVersion}${newer}`,
    `  messages: ${result.messages}; recipients: ${recipients}`,
    '',
  ].join('\n');
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
