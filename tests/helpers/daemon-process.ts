import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
/** Resolved here, so the daemon can run with any working directory. */
const TSX = import.meta.resolve('tsx');

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  smtp: { host: string; port: number }[];
  api: { host: string; port: number };
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts `rookery run` as a real process with the given config (written to `dir`) and waits for
 * its `daemon.started` log line, which carries the ports it bound (config may use port 0).
 */
export async function startDaemonProcess(
  dir: string,
  config: ConfigInput,
  options: {
    env?: NodeJS.ProcessEnv;
    startTimeoutMs?: number;
    name?: string;
    /** false: stop reading log lines once started (benchmarks, where parsing would steal CPU). */
    keepLogs?: boolean;
    /** Extra node flags, e.g. --cpu-prof. */
    nodeArgs?: string[];
  } = {},
): Promise<DaemonProcess> {
  const configPath = join(dir, `${options.name ?? 'rookery'}.yaml`);
  writeFileSync(configPath, stringify(config));
  const child = spawn(NODE, [...(options.nodeArgs ?? []), '--import', TSX, join(ROOT, 'src/cli/main.ts'), 'run', '--config', configPath], {
    cwd: dir,
    // The file decides the backend; a DATABASE_URL / REDIS_URL of the test run must not override it.
    env: { ...process.env, DATABASE_URL: undefined, REDIS_URL: undefined, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );

  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Never leave a daemon behind: one that did not start in time is killed.
      child.kill('SIGKILL');
      reject(new Error(`daemon did not start within ${options.startTimeoutMs ?? 20_000} ms\n${stderr}`));
    }, options.startTimeoutMs ?? 20_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.event === 'daemon.started') {
        clearTimeout(timer);
        if (options.keepLogs === false) {
          lines.close();
          child.stdout!.resume();
        }
        resolve(entry);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code}) before it started\n${stderr}`));
    });
  });
  const entry = await started;
  return {
    child,
    pid: child.pid!,
    smtp: entry.smtp as DaemonProcess['smtp'],
    api: entry.api as DaemonProcess['api'],
    logs,
    exited,
    kill: (signal) => void child.kill(signal),
  };
}

/** Stops a daemon that may already be gone; used in afterEach so no process outlives its test. */
export async function killDaemon(daemon: DaemonProcess | undefined): Promise<void> {
  if (!daemon || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.kill('SIGKILL');
  await daemon.exited;
}

/** GET on the daemon's control API: the status and the JSON body (null when it has none). */
export async function apiGet(daemon: Pick<DaemonProcess, 'api'>, path: string): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const res = await fetch(`http://${daemon.api.host}:${daemon.api.port}${path}`);
  const text = await res.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // /metrics is not JSON.
  }
  return { status: res.status, body };
}
