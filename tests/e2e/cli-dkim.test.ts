import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { dkimConfigSchema } from '../../src/config/dkim-schema.ts';
import { parseDkimTxt, publicKeyMatches } from '../../src/sender-domains/dns-record.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'src/cli/main.ts');
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');

const temp = await createTempDir('rookery-cli-dkim');
const dir = temp.path;
afterAll(() => temp.remove());

/** Runs the real CLI in a fresh process, by default from a directory other than the repository. */
function rookery(args: string[], cwd = dir) {
  const env = { ...process.env };
  delete env.ROOKERY_CONFIG;
  const result = spawnSync(NODE, ['--import', TSX, CLI, ...args], { cwd, env, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The record value and zone-file strings from the text output. */
function recordFrom(stdout: string) {
  const name = /^ {2}name: {2}(\S+)$/m.exec(stdout)?.[1];
  const value = /^ {2}value: (v=DKIM1; .+)$/m.exec(stdout)?.[1];
  const zoneLine = stdout.split('\n').find((line) => line.includes(' IN TXT '));
  if (!name || !value || !zoneLine) throw new Error(`no record in output:\n${stdout}`);
  const strings = [...zoneLine.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '');
  return { name, value, zoneLine, strings };
}

describe('rookery dkim generate', () => {
  it('writes an RSA-2048 key 0600 under the configured dataDir and prints the record and the config to add', () => {
    const dataDir = join(dir, 'data-from-config');
    const config = join(dir, 'rookery.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\n`);
    const result = rookery(['dkim', 'generate', '--domain', 'Example.COM', '--selector', 's2025', '--config', config]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);

    const path = join(dataDir, 'dkim', 'example.com.s2025.pem');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const pem = readFileSync(path, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);

    const { name, value, zoneLine, strings } = recordFrom(result.stdout);
    expect(name).toBe('s2025._domainkey.example.com.');
    const record = parseDkimTxt(value);
    expect(record).toMatchObject({ v: 'DKIM1', k: 'rsa' });
    expect(publicKeyMatches(record, pem)).toBe(true);
    // RSA-2048 needs two zone-file strings; together they are the value.
    expect(zoneLine.startsWith('s2025._domainkey.example.com. IN TXT "')).toBe(true);
    expect(strings.length).toBe(2);
    for (const s of strings) expect(s.length).toBeLessThanOrEqual(255);
    expect(strings.join('')).toBe(value);

    // The configuration snippet is valid `dkim:` configuration naming the file.
    const snippet = result.stdout.slice(result.stdout.indexOf('\ndkim:\n') + 1, result.stdout.indexOf('\nOnce the record'));
    const parsed = dkimConfigSchema.parse((parseYaml(snippet) as { dkim: unknown }).dkim);
    expect(parsed.domains['example.com']?.keys).toEqual([{ selector: 's2025', privateKey: path }]);
  });

  it('uses ./data/dkim of the working directory without a configuration', () => {
    const cwd = join(dir, 'plain');
    mkdirSync(cwd);
    const result = rookery(['dkim', 'generate', '--domain', 'example.org', '--selector', 'k1'], cwd);
    expect(result.code).toBe(0);
    expect(readdirSync(join(cwd, 'data', 'dkim'))).toEqual(['example.org.k1.pem']);
    expect(statSync(join(cwd, 'data', 'dkim')).mode & 0o777).toBe(0o700);
  });

  it('refuses to replace an existing key unless --force', () => {
    const keys = join(dir, 'keys');
    const first = rookery(['dkim', 'generate', '--domain', 'example.net', '--selector', 's1', '--dir', keys]);
    expect(first.code).toBe(0);
    const path = join(keys, 'example.net.s1.pem');
    const original = readFileSync(path, 'utf8');

    const again = rookery(['dkim', 'generate', '--domain', 'example.net', '--selector', 's1', '--dir', keys]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain(`${path} already exists; nothing was written`);
    expect(readFileSync(path, 'utf8')).toBe(original);
    expect(readdirSync(keys)).toEqual(['example.net.s1.pem']);

    const forced = rookery(['dkim', 'generate', '--domain', 'example.net', '--selector', 's1', '--dir', keys, '--force']);
    expect(forced.code).toBe(0);
    const replaced = readFileSync(path, 'utf8');
    expect(replaced).not.toBe(original);
    expect(publicKeyMatches(recordFrom(forced.stdout).value, replaced)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('makes Ed25519 keys and prints JSON', () => {
    const keys = join(dir, 'ed');
    const result = rookery(['dkim', 'generate', '--domain', 'example.com', '--selector', 'ed1', '--algorithm', 'ed25519-sha256', '--dir', keys, '--json']);
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as {
      algorithm: string;
      bits: null;
      privateKeyPath: string;
      dns: { name: string; type: string; value: string; zoneFile: string };
      config: { dkim: unknown };
    };
    const path = join(keys, 'example.com.ed1.pem');
    expect(output).toMatchObject({ domain: 'example.com', selector: 'ed1', algorithm: 'ed25519-sha256', bits: null, privateKeyPath: path });
    expect(output.dns).toMatchObject({ name: 'ed1._domainkey.example.com.', type: 'TXT' });
    expect(output.dns.value).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    expect(output.dns.zoneFile).toBe(`ed1._domainkey.example.com. IN TXT "${output.dns.value}"`);
    expect(publicKeyMatches(output.dns.value, readFileSync(path))).toBe(true);
    expect(dkimConfigSchema.parse(output.config.dkim).domains['example.com']?.keys).toEqual([{ selector: 'ed1', privateKey: path }]);
  });

  it.each([
    [['--selector', 's1'], '--domain is required'],
    [['--domain', 'example.com'], '--selector is required'],
    [['--domain', 'example', '--selector', 's1'], 'not a domain name'],
    [['--domain', 'example.com', '--selector', '../../etc/x'], 'not a selector'],
    [['--domain', 'example.com', '--selector', 's1', '--algorithm', 'rsa-sha1'], '--algorithm must be one of rsa-sha256, ed25519-sha256'],
    [['--domain', 'example.com', '--selector', 's1', '--bits', '512'], 'from 1024 to 4096'],
    [['--domain', 'example.com', '--selector', 's1', '--bits', 'lots'], 'not a number'],
    [['--domain', 'example.com', '--selector', 's1', '--algorithm', 'ed25519-sha256', '--bits', '2048'], 'rsa-sha256 keys only'],
  ])('refuses %j as a usage error, writing nothing', (args, message) => {
    const keys = join(dir, 'refused');
    const result = rookery(['dkim', 'generate', '--dir', keys, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(() => readdirSync(keys)).toThrow(/ENOENT/);
  });

  it('reports an invalid configuration when it needs the data directory', () => {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'dataDir: [1]\n');
    const result = rookery(['dkim', 'generate', '--domain', 'example.com', '--selector', 's1', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`invalid configuration: ${config}`);
  });

  it('prints its help', () => {
    const result = rookery(['dkim', 'generate', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: rookery dkim generate --domain DOMAIN --selector SELECTOR');
  });
});

describe('rookery domains check: arguments', () => {
  it('wants exactly one domain', () => {
    expect(rookery(['domains', 'check'])).toMatchObject({ code: 2, stderr: expect.stringContaining('give the domain to check') });
    expect(rookery(['domains', 'check', 'a.example', 'b.example'])).toMatchObject({ code: 2, stderr: expect.stringContaining('give one domain only') });
    expect(rookery(['domains', 'check', 'not a domain'])).toMatchObject({ code: 2, stderr: expect.stringContaining('is not a domain name') });
  });

  it('refuses unknown options and a missing subcommand', () => {
    const unknown = rookery(['domains', 'check', 'example.com', '--verbose']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--verbose'");
    expect(unknown.stderr).toContain('Usage: rookery domains check DOMAIN');
    // `rookery domains` alone lists the domains through the control API; a word after it must be a subcommand.
    expect(rookery(['domains', 'rotate'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown subcommand "domains rotate"') });
    expect(rookery(['dkim', 'rotate'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown or missing subcommand of "dkim"') });
  });

  it('reports an invalid configuration before looking anything up', () => {
    const config = join(dir, 'bad-ips.yaml');
    writeFileSync(config, 'ips:\n  - address: 10.0.0.256\n');
    const result = rookery(['domains', 'check', 'example.com', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('ips[0].address: not an IP address');
  });
});
