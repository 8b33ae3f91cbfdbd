import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'src/cli/main.ts');

const temp = await createTempDir('rookery-cli-token');
afterAll(() => temp.remove());

/** Runs the real CLI in a fresh process. */
function rookery(args: string[]) {
  const env = { ...process.env };
  delete env.ROOKERY_CONFIG;
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  const result = spawnSync(NODE, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The token and the config entry, read from the human output the way a person would copy them. */
function readOutput(stdout: string): { token: string; entryLine: string } {
  const token = /^ {2}(rk_\S+)$/m.exec(stdout)?.[1];
  const entryLine = /^ {2}(- \{.*\})$/m.exec(stdout)?.[1];
  expect(token, stdout).toBeDefined();
  expect(entryLine, stdout).toBeDefined();
  return { token: token!, entryLine: entryLine! };
}

describe('rookery token create', () => {
  let daemon: DaemonProcess | undefined;
  afterEach(async () => {
    await killDaemon(daemon);
    daemon = undefined;
  });

  it('prints a token once and a config line; a daemon configured with the line accepts the token', async () => {
    const created = rookery(['token', 'create', '--name', 'ops-1', '--role', 'operator', '--tenant', 'acme']);
    expect(created.code).toBe(0);
    expect(created.stderr).toBe('');
    const { token, entryLine } = readOutput(created.stdout);
    expect(token).toMatch(/^rk_[A-Za-z0-9_-]{43}$/);
    expect(entryLine).not.toContain(token);
    const [entry] = parse(entryLine) as [Record<string, string>];
    expect(entry).toEqual({ name: 'ops-1', role: 'operator', tenant: 'acme', hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });

    // Each run makes a new token.
    expect(readOutput(rookery(['token', 'create', '--name', 'ops-1', '--role', 'operator']).stdout).token).not.toBe(token);

    // The line pasted under api.tokens: check-config takes it, and so does the daemon.
    const config: ConfigInput = testDaemonConfig({ dir: temp.path, extra: { tenants: { acme: { senderDomains: ['*'] } } } });
    const yaml = stringify(config).replace(/^api:\n {2}listen:\n(( {4}.*\n)+)/m, (block) => `${block}  tokens:\n    ${entryLine}\n`);
    const path = join(temp.path, 'with-token.yaml');
    writeFileSync(path, yaml);
    expect(rookery(['check-config', '--config', path])).toEqual({ code: 0, stdout: `configuration OK: ${path}\n`, stderr: '' });

    daemon = await startDaemonProcess(temp.path, parse(yaml) as ConfigInput);
    const url = `http://127.0.0.1:${daemon.api.port}/v1/whoami`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'ops-1', role: 'operator', tenant: 'acme' });
    expect((await fetch(url, { headers: { authorization: `Bearer ${token}x` } })).status).toBe(401);
    expect(JSON.stringify(daemon.logs)).not.toContain(token);
  });

  it('prints JSON for scripts', () => {
    const result = rookery(['token', 'create', '--name', 'ci', '--role', 'viewer', '--json']);
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as { token: string; entry: Record<string, string> };
    expect(out.token).toMatch(/^rk_/);
    expect(out.entry).toEqual({ name: 'ci', role: 'viewer', hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
  });

  it('refuses a missing or bad name, role or tenant as a usage error', () => {
    expect(rookery(['token', 'create', '--role', 'viewer'])).toEqual({ code: 2, stdout: '', stderr: 'rookery token create: --name is required\n' });
    const bad = rookery(['token', 'create', '--name', 'a b', '--role', 'root', '--tenant=-x']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('--name "a b": not a name');
    expect(bad.stderr).toContain('--role "root": not a role: use one of admin, operator, sender, viewer');
    expect(bad.stderr).toContain('--tenant "-x": not a name');
    // The configuration's own rules: a sender acts for a tenant, an admin for none.
    expect(rookery(['token', 'create', '--name', 'app', '--role', 'sender'])).toEqual({ code: 2, stdout: '', stderr: 'rookery token create: --tenant is required for role sender (a sender sends for one tenant)\n' });
    expect(rookery(['token', 'create', '--name', 'root', '--role', 'admin', '--tenant', 'acme'])).toEqual({ code: 2, stdout: '', stderr: 'rookery token create: --tenant: an admin token belongs to no tenant (it acts for all)\n' });
  });
});

describe('rookery check-config with api.tokens', () => {
  it('names the path of each bad token entry', () => {
    const hash = `sha256:${'a1'.repeat(32)}`;
    const path = join(temp.path, 'bad-tokens.yaml');
    writeFileSync(
      path,
      stringify({
        api: {
          tokens: [
            { name: 'ops', role: 'operator', hash },
            { name: 'ops', role: 'viewer', hash: `sha256:${'b2'.repeat(32)}` },
            { name: 'ci', role: 'root', hash: 'rk_not-a-hash' },
            { name: 'ci2', role: 'viewer', hash, token: 'rk_x' },
          ],
        },
      }),
    );
    const result = rookery(['check-config', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('api.tokens[1].name: duplicate token name "ops" (also api.tokens[0])');
    expect(result.stderr).toContain('api.tokens[2].role: not a role: use one of admin, operator, sender, viewer');
    expect(result.stderr).toContain('api.tokens[2].hash: not a token hash');
    expect(result.stderr).toContain('api.tokens[3].token: unknown key');
    expect(result.stderr).not.toContain('rk_x');
  });
});
