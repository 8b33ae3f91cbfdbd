import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { requirePostgres, requireRedis } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'src/cli/main.ts');
/** Resolved here, as the CLI runs from another directory. */
const TSX = import.meta.resolve('tsx');
const SECRET = 's3cret-Pa55';

let dir: TempDir;
let deadPort: number;
beforeAll(async () => {
  dir = await createTempDir('rookery-cli-secrets');
  // A port nothing listens on: connections to it are refused at once.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  deadPort = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
afterAll(() => dir.remove());

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  logs: Array<Record<string, unknown>>;
}

/**
 * Runs `rookery <command>` to its end with `env` over a test config. A daemon that does start is
 * stopped with SIGTERM, so its stop is part of the output too.
 */
async function rookery(command: 'run' | 'check-config', env: NodeJS.ProcessEnv, extra: object = {}): Promise<Run> {
  const configPath = join(dir.path, `${command}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(configPath, stringify(testDaemonConfig({ dir: dir.path, extra })));
  const child = spawn(NODE, ['--import', TSX, CLI, command, '--config', configPath], {
    cwd: dir.path,
    env: { ...process.env, DATABASE_URL: undefined, REDIS_URL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.includes('"event":"daemon.started"')) child.kill('SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  const logs = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code, stdout, stderr, logs };
}

function expectNoSecret(run: Run): void {
  expect(run.stdout).not.toContain(SECRET);
  expect(run.stderr).not.toContain(SECRET);
}

describe('secrets in connection addresses never reach the output', () => {
  it('an unreachable Redis with a password: the log names it, masked', async () => {
    const run = await rookery('run', { REDIS_URL: `redis://:${SECRET}@127.0.0.1:${deadPort}/0` });
    expectNoSecret(run);
    const failure = run.logs.find((entry) => entry.event === 'redis.error');
    expect(failure).toMatchObject({ target: `redis://***@127.0.0.1:${deadPort}/0` });
  });

  it('a Redis socket path with a password parameter', async () => {
    const run = await rookery('run', { REDIS_URL: `${dir.file('no-redis.sock')}?password=${SECRET}` });
    expectNoSecret(run);
    expect(run.logs.find((entry) => entry.event === 'redis.error')).toMatchObject({ target: `${dir.file('no-redis.sock')}?password=***` });
  });

  it('an unreachable PostgreSQL with a password: the fatal line names the storage', async () => {
    const run = await rookery('run', { DATABASE_URL: `postgres://rookery:${SECRET}@127.0.0.1:${deadPort}/rookery` }, { storage: { driver: 'postgres' } });
    expectNoSecret(run);
    expect(run.code).toBe(1);
    const fatal = run.logs.find((entry) => entry.event === 'daemon.start.failed');
    expect(JSON.stringify(fatal)).toContain('storage: connect ECONNREFUSED');
  });

  it.each([
    ['run', 'REDIS_URL', `redis://:${SECRET}@127.0.0.1:99999/0`, 'redis.url: not a Redis address'],
    ['run', 'REDIS_URL', `redis://:${SECRET} @[::1/0`, 'redis.url: not a Redis address'],
    ['run', 'DATABASE_URL', `postgres://rookery:${SECRET}@db host/rookery`, 'storage.url: not a postgres:// URL'],
    ['check-config', 'DATABASE_URL', `mysql://rookery:${SECRET}@db/rookery`, 'storage.url: not a postgres:// URL'],
    ['check-config', 'REDIS_URL', `redis://:${SECRET}@cache:port/`, 'redis.url: not a Redis address'],
  ] as const)('%s with a malformed %s: the problem names the path, not the value', async (command, variable, value, problem) => {
    const run = await rookery(command, { [variable]: value }, { storage: { driver: 'postgres', url: 'postgres://127.0.0.1/rookery' } });
    expectNoSecret(run);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`\n  ${problem}`);
  });
});

describe.skipIf(!(await requirePostgres()))('secrets with a reachable PostgreSQL', () => {
  it('a role that does not exist: the fatal line says so, without the password', async () => {
    const run = await rookery('run', { DATABASE_URL: `postgres://no_such_role:${SECRET}@127.0.0.1:5432/test` }, { storage: { driver: 'postgres' } });
    expectNoSecret(run);
    expect(run.code).toBe(1);
    expect(JSON.stringify(run.logs.find((entry) => entry.event === 'daemon.start.failed'))).toContain('no_such_role');
  });
});

describe.skipIf(!(await requireRedis()))('secrets with a reachable Redis', () => {
  it('refused credentials: the failed AUTH command is logged without its arguments', async () => {
    const run = await rookery('run', { REDIS_URL: `redis://no_such_user:${SECRET}@127.0.0.1:6379/0` });
    expectNoSecret(run);
    const failure = run.logs.find((entry) => entry.event === 'redis.error');
    expect(failure).toMatchObject({ target: 'redis://***@127.0.0.1:6379/0', error: expect.stringContaining('WRONGPASS') });
  });
});
