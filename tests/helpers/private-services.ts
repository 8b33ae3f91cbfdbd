import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './free-port.ts';
import { requireCapability } from './services.ts';
import { createTempDir, type TempDir } from './temp-dir.ts';

/*
 * PostgreSQL and Redis servers of a test's own, on free loopback ports, that the test may stop
 * and start again: the machine's shared instances serve other test files at the same time and
 * must never be restarted. Each is a child process of the test, so the open-handle check sees
 * one left running; destroy() in afterEach stops it and removes its files.
 */

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface PrivateServer {
  /** The URL clients connect with. */
  url: string;
  port: number;
  /** Stops the server with `signal` and waits for it to exit. Does nothing when it is not running. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data, and waits until it answers. */
  start(): Promise<void>;
  /** Stops it (at once) and deletes its files. Safe to call twice. */
  destroy(): Promise<void>;
}

interface ServerSpec {
  name: string;
  command: string;
  args: string[];
  options: SpawnOptions;
  /** Resolves once the server answers; throws while it does not. */
  probe(): Promise<void>;
  /** The signal stop() uses when the caller names none. */
  stopSignal: NodeJS.Signals;
  dir: TempDir;
}

function privateServer(spec: ServerSpec, url: string, port: number): PrivateServer {
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  async function start(): Promise<void> {
    if (child) return;
    output = '';
    const proc = spawn(spec.command, spec.args, { ...spec.options, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    let gone = false;
    exited = new Promise((resolve) =>
      proc.once('exit', () => {
        gone = true;
        if (child === proc) child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (gone) throw new Error(`${spec.name} exited while starting:\n${output}`);
      try {
        await spec.probe();
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          proc.kill('SIGKILL');
          await exited;
          throw new Error(`${spec.name} did not answer within ${START_TIMEOUT_MS} ms (${(err as Error).message}):\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  async function stop(signal: NodeJS.Signals = spec.stopSignal): Promise<void> {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (child === proc) {
      proc.kill('SIGKILL');
      await exited;
    }
  }

  let destroyed: Promise<void> | undefined;
  return {
    url,
    port,
    start,
    stop,
    destroy() {
      destroyed ??= stop('SIGKILL').then(() => spec.dir.remove());
      return destroyed;
    },
  };
}

/** Runs a server's programs as this user, or as `user` when this process is root (PostgreSQL refuses root). */
function runAs(user: string, dir: TempDir): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  chownSync(dir.path, uid, gid);
  return { uid, gid };
}

/** The directory of PostgreSQL's server programs: PG_BIN, else the newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir(): string | null {
  if (process.env.PG_BIN) return existsSync(join(process.env.PG_BIN, 'postgres')) ? process.env.PG_BIN : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres')));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : null;
}

/** True when a private PostgreSQL can be started here; false locally when not; throws under CI. */
export function requirePrivatePostgres(): boolean {
  return requireCapability(postgresBinDir() ? null : 'PostgreSQL server programs (initdb, postgres) not found: set PG_BIN');
}

/** True when a private Redis can be started here; false locally when not; throws under CI. */
export function requirePrivateRedis(): boolean {
  let found = true;
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    found = false;
  }
  return requireCapability(found ? null : 'redis-server not found on PATH');
}

/**
 * A fresh PostgreSQL cluster (initdb, trust authentication) on a free port, started. stop()
 * defaults to a fast shutdown (SIGINT, as `pg_ctl restart` does); SIGQUIT is an immediate one,
 * the server's crash. fsync is off: the tests kill the server, never the machine, so whatever
 * a commit wrote is still in the page cache when the server starts again.
 */
export async function startPrivatePostgres(): Promise<PrivateServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server programs not found (set PG_BIN to the directory holding initdb and postgres)');
  const dir = await createTempDir('rookery-private-pg');
  try {
    const options = runAs('postgres', dir);
    const data = join(dir.path, 'data');
    execFileSync(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'], { ...options, stdio: 'pipe', cwd: dir.path });
    const port = await freePort();
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const server = privateServer(
      {
        name: 'private PostgreSQL',
        command: join(bin, 'postgres'),
        args: ['-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', dir.path, '-c', 'fsync=off', '-c', 'max_connections=60', '-c', 'shared_buffers=32MB'],
        options: { ...options, cwd: dir.path },
        stopSignal: 'SIGINT',
        dir,
        async probe() {
          const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
          client.on('error', () => {});
          try {
            await client.connect();
            await client.query('SELECT 1');
          } finally {
            await client.end().catch(() => {});
          }
        },
      },
      url,
      port,
    );
    await server.start();
    return server;
  } catch (err) {
    await dir.remove();
    throw err;
  }
}

/** A Redis on a free port without persistence (as the machine's own runs); stop() is SIGTERM. */
export async function startPrivateRedis(): Promise<PrivateServer> {
  const dir = await createTempDir('rookery-private-redis');
  mkdirSync(join(dir.path, 'data'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const server = privateServer(
    {
      name: 'private Redis',
      command: 'redis-server',
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', join(dir.path, 'data')],
      options: { cwd: dir.path },
      stopSignal: 'SIGTERM',
      dir,
      async probe() {
        const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
        client.on('error', () => {});
        try {
          await client.connect();
          await client.ping();
        } finally {
          client.disconnect();
        }
      },
    },
    url,
    port,
  );
  try {
    await server.start();
  } catch (err) {
    await dir.remove();
    throw err;
  }
  return server;
}
