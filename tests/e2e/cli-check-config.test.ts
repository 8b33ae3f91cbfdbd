import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsFixture } from '../helpers/tls-fixture.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'src/cli/main.ts');

const temp = await createTempDir('rookery-check-config');
const dir = temp.path;
afterAll(() => temp.remove());

/** Runs the real CLI in a fresh process, from a directory other than the repository. */
function rookery(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env };
  delete clean.ROOKERY_CONFIG;
  delete clean.DATABASE_URL;
  delete clean.REDIS_URL;
  const result = spawnSync(NODE, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...clean, ...env }, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('rookery check-config', () => {
  it('accepts the shipped example and local configurations', () => {
    for (const file of ['config/rookery.example.yaml', 'config/rookery.local.yaml']) {
      const path = join(ROOT, file);
      const result = rookery(['check-config', '--config', path]);
      expect(result).toEqual({ code: 0, stdout: `configuration OK: ${path}\n`, stderr: '' });
    }
  });

  it('lists every problem with its path on stderr and exits 1', () => {
    const path = write(
      'bad.yaml',
      ['ips:', '  - address: 127.0.0.2', '  - address: 127.0.0.3', '  - address: 10.0.0.256', 'smtp:', '  trustedNetworks: [10.0.0.0/40]', 'delivery:', '  maxAge: forever', 'colour: blue', ''].join('\n'),
    );
    const result = rookery(['check-config', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`invalid configuration: ${path}`);
    expect(lines.slice(1).map((l) => l.trim()).sort()).toEqual(
      [
        'colour: unknown key',
        'delivery.maxAge: not a duration (use e.g. 500ms, 25s, 10m, 1h, 5d): "forever"',
        'ips[2].address: not an IP address',
        'smtp.trustedNetworks[0]: not a network in CIDR form (e.g. 10.0.0.0/8)',
      ].sort(),
    );
  });

  it('reports YAML syntax errors with their position', () => {
    const path = write('syntax.yaml', 'log:\n  level: info\napi: {listen: {port: 8025}\n');
    const result = rookery(['check-config', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^invalid configuration: .*syntax\.yaml\n {2}.+ at line \d+, column \d+\n/);
  });

  it('reads the DKIM key files as the daemon would, naming the key that cannot be used', () => {
    const notAKey = write('not-a-key.pem', 'hello\n');
    const path = write(
      'dkim.yaml',
      `dkim:\n  domains:\n    example.com:\n      keys:\n        - { selector: s1, privateKey: ${join(dir, 'missing.pem')} }\n        - { selector: s2, privateKey: ${notAKey} }\n`,
    );
    const result = rookery(['check-config', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('dkim.domains.example.com.keys[0].privateKey: cannot read file: ENOENT');
    expect(result.stderr).toMatch(/dkim\.domains\.example\.com\.keys\[1\]\.privateKey: /);
  });

  describe('refuses whatever the daemon would refuse at start, naming the path', () => {
    const tlsListener = { listeners: [{ port: 0, tls: 'starttls' }] };
    const files = { key: join(dir, 'tls-key.pem'), cert: join(dir, 'tls-cert.pem'), otherKey: join(dir, 'other-key.pem'), junk: join(dir, 'junk.pem') };
    // A data directory holding half of the self-signed pair the daemon makes when smtp.tls is not set.
    const halfPair = join(dir, 'half-pair');
    beforeAll(async () => {
      mkdirSync(join(halfPair, 'tls'), { recursive: true });
      writeFileSync(join(halfPair, 'tls', 'key.pem'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const tls = await tlsFixture();
      writeFileSync(files.key, tls.key);
      writeFileSync(files.cert, tls.cert);
      writeFileSync(files.otherKey, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
      writeFileSync(files.junk, 'junk\n');
    });

    const user = (username: string, passwordHash = 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g=') => ({ username, passwordHash, allowedSenders: ['*'] });
    const rule = { name: 'r', action: 'suspend-provider', duration: '1h' };
    const cases: Array<[what: string, config: object, problem: string]> = [
      ['two users of one name', { smtp: { users: [user('app'), user('app')] } }, 'smtp.users[1].username: duplicate user "app"'],
      ['a malformed password hash', { smtp: { users: [user('app', 'scrypt$3$8$1$c2FsdHNhbHQ=$aGFzaA==')] } }, 'smtp.users[0].passwordHash: password hash: N must be a power of two'],
      ['an unreadable TLS key', { smtp: { ...tlsListener, tls: { key: join(dir, 'nowhere.pem'), cert: files.cert } } }, 'smtp.tls.key: cannot read file: ENOENT'],
      ['a TLS certificate that is not PEM', { smtp: { ...tlsListener, tls: { key: files.key, cert: files.junk } } }, `smtp.tls: ${files.junk} is not a PEM certificate`],
      ['a TLS key of another certificate', { smtp: { ...tlsListener, tls: { key: files.otherKey, cert: files.cert } } }, `smtp.tls: the key in ${files.otherKey} does not belong`],
      ['half of the self-signed TLS pair in dataDir', { dataDir: halfPair, smtp: tlsListener }, `smtp.tls: not set, and the self-signed pair kept in ${join(halfPair, 'tls')} cannot be used: found`],
      ['an unknown warm-up plan', { ips: [{ address: '127.0.0.2', warmup: { plan: 'turbo', start: '2026-11-01' } }] }, 'ips[0].warmup.plan: unknown warm-up plan "turbo"'],
      ['a reaction rule for an unknown provider', { reactionRules: [{ ...rule, match: 'x', provider: 'gmial' }] }, 'reactionRules[0].provider: unknown provider "gmial"'],
      ['shaping for an unknown provider', { shaping: { providers: { gmial: { maxConnections: 2 } } } }, 'shaping.providers.gmial: unknown provider "gmial"'],
      ['a reaction rule that is not a regular expression', { reactionRules: [{ ...rule, match: '(' }] }, 'reactionRules[0].match: not a valid regular expression'],
      ['a bounce rule that is not a regular expression', { bounceRules: [{ name: 'b', text: '[', bounceClass: 'policy' }] }, 'bounceRules[0].text: not a valid regular expression'],
      ['two listeners on one port', { smtp: { listeners: [{ port: 2600 }, { host: '0.0.0.0', port: 2600 }] } }, 'smtp.listeners[1]: 0.0.0.0:2600 overlaps smtp.listeners[0]'],
      ['a listener on every address (empty host) and the API on its port', { smtp: { listeners: [{ host: '', port: 2600 }] }, api: { listen: { port: 2600 } } }, 'api.listen: 127.0.0.1:2600 overlaps smtp.listeners[0]'],
      ['the API on a listener\'s port', { smtp: { listeners: [{ port: 2600 }] }, api: { listen: { port: 2600 } } }, 'api.listen: 127.0.0.1:2600 overlaps smtp.listeners[0]'],
      ['a PostgreSQL URL that is not one', { storage: { driver: 'postgres', url: 'db.internal' } }, 'storage.url: not a postgres:// URL'],
      ['a Redis URL that is not one', { redis: { url: 'http://cache:6379' } }, 'redis.url: not a Redis address'],
    ];

    it.each(cases)('%s', (what, config, problem) => {
      // JSON is YAML.
      const path = write(`refused-${what.replaceAll(/\W+/g, '-')}.yaml`, JSON.stringify(config));
      const result = rookery(['check-config', '--config', path]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`invalid configuration: ${path}\n`);
      expect(result.stderr).toContain(`\n  ${problem}`);
    });
  });

  it('reports a file that cannot be read', () => {
    const path = join(dir, 'nowhere.yaml');
    const result = rookery(['check-config', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`invalid configuration: ${path}\n  cannot read file: ENOENT`);
  });

  it('reads the path from ROOKERY_CONFIG when --config is absent, and --config wins over it', () => {
    const good = write('env-good.yaml', 'log:\n  level: warn\n');
    const bad = write('env-bad.yaml', 'log:\n  level: loud\n');
    expect(rookery(['check-config'], { ROOKERY_CONFIG: good })).toMatchObject({ code: 0, stdout: `configuration OK: ${good}\n` });
    expect(rookery(['check-config'], { ROOKERY_CONFIG: bad })).toMatchObject({ code: 1 });
    expect(rookery(['check-config', '-c', good], { ROOKERY_CONFIG: bad })).toMatchObject({ code: 0, stdout: `configuration OK: ${good}\n` });
  });

  it('checks the built-in defaults when no file is given', () => {
    expect(rookery(['check-config'])).toEqual({ code: 0, stdout: 'configuration OK: (built-in defaults)\n', stderr: '' });
  });

  it('applies environment overrides as the daemon would', () => {
    const path = write('postgres.yaml', 'storage:\n  driver: postgres\n');
    const missing = rookery(['check-config', '--config', path]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('storage.url: required when storage.driver is postgres (or set DATABASE_URL)');
    expect(rookery(['check-config', '--config', path], { DATABASE_URL: 'postgres://127.0.0.1/rookery' }).code).toBe(0);
  });

  it('warns on stderr of a control API beyond loopback, and still exits 0', () => {
    const exposed = write('api-exposed.yaml', 'api:\n  listen:\n    host: 0.0.0.0\n    port: 8025\n');
    expect(rookery(['check-config', '--config', exposed])).toEqual({
      code: 0,
      stdout: `configuration OK: ${exposed}\n`,
      stderr: 'warning: api.listen.host: the control API has no API tokens configured and listens beyond this machine (0.0.0.0, port 8025): whoever reaches it reads its health and metrics; bind it to 127.0.0.1, or keep the port behind a firewall\n',
    });
    const loopback = write('api-loopback.yaml', 'api:\n  listen:\n    host: "::1"\n');
    expect(rookery(['check-config', '--config', loopback])).toEqual({ code: 0, stdout: `configuration OK: ${loopback}\n`, stderr: '' });
  });

  it('rejects unknown options as a usage error (exit 2)', () => {
    const result = rookery(['check-config', '--confg', 'x.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown option '--confg'");
    expect(result.stderr).toContain('Usage: rookery check-config');
  });
});
