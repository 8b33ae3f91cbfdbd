import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { acceptingConnections } from './free-port.ts';

/**
 * A throwaway stock Postfix, for the comparison benchmark (bench/postfix.ts) and for tests that
 * need a real MTA's behaviour (tests/integration/feedback-postfix.test.ts): its own
 * config_directory, queue_directory and data_directory in a temporary folder (on the same
 * filesystem as the benchmark's SQLite queue), listening on a loopback port, relaying everything
 * to a loopback sink. It runs beside the system's Postfix, which it never touches.
 *
 * Stock means Postfix's compiled-in defaults (Debian's master.cf) plus only what a relay-only
 * instance needs; what differs, and why, is said next to each setting below. The master runs as
 * our descendant (`postfix start-fg`), so it cannot outlive a run that stops it; `stop()` stops
 * it and removes the folder.
 */

const run = promisify(execFile);
export const POSTFIX = process.env.POSTFIX ?? 'postfix';
const POSTCONF = process.env.POSTCONF ?? 'postconf';

export interface PostfixInstance {
  dir: string;
  host: string;
  port: number;
  version: string;
  /** The main.cf written for it (beside the compiled-in defaults). */
  settings: string[];
  /** CPU seconds of the master and its daemons so far, ended ones included. */
  cpuSeconds(): number;
  /** Stops the instance (a graceful stop, then a kill) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** uid and gid of a system user, from /etc/passwd (Node has no getpwnam). */
function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user "${name}" (installed with the postfix package)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function ticks(pid: number, withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(stat[11]) + Number(stat[12]) + (withChildren ? Number(stat[13]) + Number(stat[14]) : 0);
  } catch {
    return 0; // ended between listing and reading: its time is in the master's children's
  }
}

/** The master's own CPU with that of the daemons it has reaped, plus that of those still running. */
function instanceCpuSeconds(masterPid: number): number {
  let total = ticks(masterPid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === masterPid) total += ticks(Number(entry), false);
    } catch {
      // gone meanwhile
    }
  }
  return total / 100;
}

/**
 * Writes the instance's folders and config under `dir`: main.cf (returned) beside the compiled-in
 * defaults, and Debian's master.cf with the smtpd listener moved from port 25 to ours and no
 * chroot (a chroot would need copies of /etc files inside the temporary queue folder, which
 * Debian's init script makes for the system instance only).
 */
async function writeInstance(dir: string, listener: string, relay: { host: string; port: number }, extra: readonly string[]): Promise<{ settings: string[]; version: string }> {
  const owner = systemUser('postfix');
  // mkdtemp makes it 0700; Postfix's daemons (user postfix) must reach the queue and data folders.
  chmodSync(dir, 0o755);
  const [etc, spool, data] = ['etc', 'spool', 'data'].map((name) => join(dir, name)) as [string, string, string];
  for (const folder of [etc, spool, data]) mkdirSync(folder);
  // data_directory belongs to mail_owner (the master's lock file lives there).
  chownSync(data, owner.uid, owner.gid);
  chmodSync(data, 0o700);

  const settings = [
    'compatibility_level = 3.6', // as Debian's stock main.cf: no backwards-compatibility logging
    `queue_directory = ${spool}`,
    `data_directory = ${data}`,
    'myhostname = postfix.bench.test',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8', // smtp-source on loopback may relay
    'mydestination =', // no domain is local: everything is relayed ...
    `relayhost = [${relay.host}]:${relay.port}`, // ... to the sink, without MX lookups
    'local_transport = error:local delivery is disabled',
    'alias_maps =',
    'alias_database =',
    // Its log in its folder (through postlogd), as a system instance would log through syslog.
    `maillog_file = ${join(dir, 'postfix.log')}`,
    `maillog_file_prefixes = ${dir}`,
    ...extra,
  ];
  writeFileSync(join(etc, 'main.cf'), settings.join('\n') + '\n');
  copyFileSync('/etc/postfix/master.cf', join(etc, 'master.cf'));
  if (existsSync('/etc/postfix/dynamicmaps.cf')) copyFileSync('/etc/postfix/dynamicmaps.cf', join(etc, 'dynamicmaps.cf'));
  await run(POSTCONF, ['-c', etc, '-MX', 'smtp/inet']);
  await run(POSTCONF, ['-c', etc, '-M', `${listener}/inet=${listener} inet n - n - - smtpd`]);
  await run(POSTCONF, ['-c', etc, '-F', '*/*/chroot = n']);
  const version = (await run(POSTCONF, ['-c', etc, '-h', 'mail_version'])).stdout.trim();
  return { settings, version };
}

export interface PostfixInstanceOptions {
  port: number;
  /** Where everything is relayed (no MX lookups). */
  relay: { host: string; port: number };
  host?: string;
  /** More main.cf lines, after (and so overriding) the ones above: a transport map, a bounce setting. */
  settings?: readonly string[];
}

export async function startPostfixInstance(options: PostfixInstanceOptions): Promise<PostfixInstance> {
  if (process.getuid?.() !== 0) {
    throw new Error('a private Postfix instance needs root: its master binds as root and runs its daemons as the postfix user');
  }
  const host = options.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'rookery-postfix-'));
  const etc = join(dir, 'etc');
  const spool = join(dir, 'spool');
  let written: { settings: string[]; version: string };
  try {
    written = await writeInstance(dir, `${host}:${options.port}`, options.relay, options.settings ?? []);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const { settings, version } = written;

  // start-fg: the master stays in the foreground, a descendant of this process.
  const child = spawn(POSTFIX, ['-c', etc, 'start-fg'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let alive = true;
  const exited = new Promise<void>((resolve) => child.once('close', () => ((alive = false), resolve())));
  child.once('error', (err) => (output += `${POSTFIX} could not be started: ${err.message}\n`));
  const masterPid = (): number | null => {
    try {
      return Number(readFileSync(join(spool, 'pid', 'master.pid'), 'utf8').trim()) || null;
    } catch {
      return null;
    }
  };

  /** The last resort: the master by its pid file, only while that pid is still a Postfix master. */
  const killMaster = () => {
    const pid = masterPid();
    if (!pid) return;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'master') process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  // A run that dies on an error, or is interrupted (process.exit), still stops this instance
  // and removes its folder: synchronously, as an 'exit' listener must.
  const stopOnExit = () => {
    if (alive) {
      try {
        execFileSync(POSTFIX, ['-c', etc, 'stop'], { stdio: 'ignore', timeout: 15_000 });
      } catch {
        killMaster();
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (alive) {
        await run(POSTFIX, ['-c', etc, 'stop']).catch(() => undefined);
        const stopped = await Promise.race([exited.then(() => true), sleep(15_000, undefined, { ref: false }).then(() => false)]);
        if (!stopped) {
          killMaster();
          child.kill('SIGKILL');
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
      process.off('exit', stopOnExit);
    })());

  try {
    await acceptingConnections({ name: 'postfix', host, port: options.port, alive: () => alive, timeoutMs: 30_000, pollMs: 50 });
  } catch (err) {
    const log = existsSync(join(dir, 'postfix.log')) ? readFileSync(join(dir, 'postfix.log'), 'utf8') : '';
    await stop();
    throw new Error(`${(err as Error).message}\n${output}${log}`);
  }
  const pid = masterPid();
  return {
    dir,
    host,
    port: options.port,
    version,
    settings,
    cpuSeconds: () => (pid ? instanceCpuSeconds(pid) : Number.NaN),
    stop,
  };
}
