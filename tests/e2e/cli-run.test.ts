import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

/** A next hop that accepts TCP connections and never greets: deliveries to it stay in flight. */
async function startSilentHop(): Promise<{ port: number; connected: Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let onConnect!: () => void;
  const connected = new Promise<void>((resolve) => (onConnect = resolve));
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnect();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connected,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let dir: TempDir;

function baseConfig(extra: ConfigInput = {}): ConfigInput {
  return testDaemonConfig({ dir: dir.path, extra });
}

describe('rookery run as a process', () => {
  let daemon: DaemonProcess | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-cli-run');
  });
  afterEach(async () => {
    await killDaemon(daemon);
    daemon = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await dir.remove();
  });

  it('exits 1 at once on a second SIGTERM while a graceful stop waits for deliveries', async () => {
    const hop = await startSilentHop();
    cleanups.push(() => hop.close());
    daemon = await startDaemonProcess(
      dir.path,
      baseConfig({ delivery: { routes: { '*': `127.0.0.1:${hop.port}` }, shutdownTimeout: '5m', timeouts: { greeting: '5m' } } }),
    );
    const client = submissionClient(daemon.smtp[0]!);
    await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<stuck@app.test>' }));
    client.close();
    // The delivery is now waiting for a greeting that never comes.
    await hop.connected;

    daemon.kill('SIGTERM');
    await waitForLog(daemon, 'daemon.stopping');
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(1);
    const forced = daemon.logs.find((entry) => entry.event === 'shutdown.forced');
    expect(forced).toMatchObject({ signal: 'SIGTERM', first: 'SIGTERM', component: 'cli' });
    expect(daemon.logs.some((entry) => entry.event === 'daemon.stopped')).toBe(false);
  });

  it('stops on SIGINT like on SIGTERM: exit 0 after a graceful stop', async () => {
    daemon = await startDaemonProcess(dir.path, baseConfig());
    daemon.kill('SIGINT');
    expect(await daemon.exited).toBe(0);
    expect(daemon.logs.map((entry) => entry.event)).toEqual(expect.arrayContaining(['shutdown.signal', 'daemon.stopping', 'daemon.stopped']));
    // The control API is on loopback: nothing to warn of.
    expect(daemon.logs.some((entry) => entry.event === 'api.exposed')).toBe(false);
  });

  it('warns at start when the control API listens beyond loopback without authentication', async () => {
    daemon = await startDaemonProcess(dir.path, baseConfig({ api: { listen: { host: '0.0.0.0', port: 0 } } }));
    const warning = daemon.logs.find((entry) => entry.event === 'api.exposed');
    expect(warning).toMatchObject({ level: 40, component: 'daemon', code: 'API_EXPOSED', api: { host: '0.0.0.0', port: daemon.api.port } });
    expect(warning!.msg).toMatch(/^api\.listen\.host: the control API has no API tokens configured/);
  });

  it('exits 1 with a fatal log line when the daemon cannot start (port taken)', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;

    const configPath = dir.file('rookery.yaml');
    writeFileSync(configPath, stringify(baseConfig({ api: { listen: { host: '127.0.0.1', port } } })));
    // Through the launcher, as systemd runs it.
    const child = spawn(join(ROOT, 'bin/rookery'), ['run', '--config', configPath], {
      cwd: dir.path,
      env: { ...process.env, DATABASE_URL: undefined, REDIS_URL: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // 'close', not 'exit': by then every line of stdout has been read.
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(1);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const fatal = lines.find((entry) => entry.event === 'daemon.start.failed');
    expect(fatal).toMatchObject({ level: 60, component: 'cli' });
    expect(JSON.stringify(fatal)).toContain('EADDRINUSE');
  });
});

/** Resolves when the daemon has logged `event` (logs arrive as the process writes them). */
async function waitForLog(daemon: DaemonProcess, event: string): Promise<void> {
  while (!daemon.logs.some((entry) => entry.event === event)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
