import { spawnSync } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/smtp/password-hash.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const LAUNCHER = join(ROOT, 'bin/rookery');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const temp = await createTempDir('rookery-cli');
const dir = temp.path;
afterAll(() => temp.remove());

function rookery(args: string[], input?: string) {
  const result = spawnSync(NODE, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, input, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('rookery', () => {
  it('prints help listing every command', () => {
    for (const flag of ['--help', '-h', 'help']) {
      const result = rookery([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: rookery <command>/);
      for (const command of ['run', 'check-config', 'hash-password']) expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
    expect(rookery(['run', '--help'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: rookery run \[--config PATH\]/) });
  });

  it('prints the package version', () => {
    expect(rookery(['--version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    expect(rookery(['-V']).stdout).toBe(`${VERSION}\n`);
  });

  it('exits 2 with usage on stderr for a missing or unknown command', () => {
    expect(rookery([])).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^Usage: rookery/) });
    expect(rookery(['start'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^rookery: unknown command "start"/) });
  });

  it('run refuses to start on an invalid configuration: exit 1, problems on stderr', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'ips:\n  - address: 127.0.0.2\n  - address: 127.0.0.3\n  - address: nope\n');
    const result = rookery(['run', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`invalid configuration: ${path}\n  ips[2].address: not an IP address\n`);
    expect(result.stdout).toBe('');
  });
});

describe('rookery hash-password', () => {
  it('hashes the password read from stdin, without its final newline', async () => {
    const result = rookery(['hash-password'], 'correct horse battery staple\n');
    expect(result.code).toBe(0);
    const hash = result.stdout.trim();
    expect(hash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await verifyPassword('correct horse battery staple\n', hash)).toBe(false);
  });

  it('uses a fresh salt each time', () => {
    expect(rookery(['hash-password'], 'pw').stdout).not.toBe(rookery(['hash-password'], 'pw').stdout);
  });

  it('refuses an empty password', () => {
    expect(rookery(['hash-password'], '\n')).toMatchObject({ code: 1, stdout: '', stderr: 'rookery hash-password: empty password\n' });
  });
});

describe('bin/rookery launcher', () => {
  it('runs from any directory and through a symlink, with a system node too old for Rookery', () => {
    const link = join(dir, 'rookery');
    symlinkSync(LAUNCHER, link);
    // Only the system directories on PATH: the launcher must find the repository's own Node.
    const result = spawnSync(link, ['--version'], { cwd: dir, env: { PATH: '/usr/bin:/bin', HOME: dir }, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`${VERSION}\n`);
    expect(result.status).toBe(0);
  });

  it('passes arguments and exit codes through', () => {
    const result = spawnSync(LAUNCHER, ['check-config', '--config', join(ROOT, 'config/rookery.example.yaml')], { cwd: dir, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`configuration OK: ${join(ROOT, 'config/rookery.example.yaml')}\n`);
    expect(spawnSync(LAUNCHER, ['check-config', '--config', join(dir, 'missing.yaml')], { cwd: dir }).status).toBe(1);
  });
});
