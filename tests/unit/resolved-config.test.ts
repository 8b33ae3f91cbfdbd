import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { DATA_FILES } from '../../src/config/data-files.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { resolveConfig, type ResolveOptions } from '../../src/resolved-config.ts';
import { hashPassword } from '../../src/smtp/password-hash.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { copyDataFiles } from '../helpers/data-files.ts';
import { generateDkimKey } from '../helpers/dkim-keys.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { tlsFixture } from '../helpers/tls-fixture.ts';

const temp = await createTempDir('rookery-resolved-config');
const dir = temp.path;
afterAll(() => temp.remove());

function write(name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Resolves with no environment overrides, so the machine's DATABASE_URL cannot leak in. */
function resolve(raw: ConfigInput, options: ResolveOptions = {}) {
  return resolveConfig(raw, { source: 'test', env: {}, ...options });
}

/** The problems a config raises; fails the test when it is accepted. */
function problemsOf(raw: ConfigInput, options: ResolveOptions = {}): string[] {
  try {
    resolve(raw, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

/** A config that uses every part of the resolution: users, TLS files, DKIM keys, operator rules. */
let full: ConfigInput;

beforeAll(async () => {
  const tls = await tlsFixture();
  full = {
    hostname: 'mta.rookery.test',
    dataDir: join(dir, 'data'),
    smtp: {
      listeners: [{ port: 0, tls: 'starttls' }],
      tls: { key: write('tls-key.pem', tls.key), cert: write('tls-cert.pem', tls.cert) },
      users: [
        { username: 'app', passwordHash: await hashPassword('app-secret'), allowedSenders: ['*@app.example'] },
        { username: 'shop', password: 'shop-secret', allowedSenders: ['*'] },
      ],
    },
    ips: [{ address: '127.0.0.2', warmup: { plan: 'conservative', start: '2026-11-01' } }],
    dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: write('dkim.pem', generateDkimKey('ed25519').pem) }] } } },
    reactionRules: [{ name: 'partner-slow-down', match: 'slow down', provider: 'gmail', action: 'suspend-provider', duration: '1h' }],
    bounceRules: [{ name: 'partner-moved', text: 'mailbox has moved', bounceClass: 'unknown-user' }],
  };
});

describe('resolveConfig', () => {
  it('holds the config and everything it refers to, read and parsed', () => {
    const resolved = resolve(full);
    expect(resolved.source).toBe('test');
    expect(resolved.config.hostname).toBe('mta.rookery.test');
    expect(resolved.pool.plans.has('conservative')).toBe(true);
    expect(resolved.pool.providers.providerOfSite('aspmx.l.google.com')).toBe('gmail');
    expect(resolved.reactionRules[0]).toMatchObject({ name: 'partner-slow-down', origin: 'operator' });
    expect(resolved.reactionRules.length).toBeGreaterThan(1);
    expect(resolved.smtpUsers.map((u) => [u.username, Object.keys(u.secret)])).toEqual([
      ['app', ['hash']],
      ['shop', ['password']],
    ]);
    expect(resolved.tls?.cert.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(resolved.dkimKeys.map((k) => [k.where, k.key.algorithm])).toEqual([['dkim.domains.example.com.keys[0].privateKey', 'ed25519-sha256']]);
  });

  it('gives equal values for the same input, and different ones when a file it reads changes', () => {
    const first = resolve(full);
    expect(isDeepStrictEqual(first, resolve(full))).toBe(true);
    expect(isDeepStrictEqual(first, resolve({ ...full, hostname: 'other.rookery.test' }))).toBe(false);
    const otherKey = write('dkim-other.pem', generateDkimKey('ed25519').pem);
    const withOtherKey = { ...full, dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: otherKey }] } } } };
    expect(isDeepStrictEqual(first.dkimKeys.map((k) => k.key), resolve(withOtherKey).dkimKeys.map((k) => k.key))).toBe(false);
  });

  it('is frozen all the way down', () => {
    const resolved = resolve(full);
    for (const value of [resolved, resolved.config, resolved.pool, resolved.reactionRules, resolved.reactionRules[0], resolved.bounceRules[0]]) {
      expect(Object.isFrozen(value)).toBe(true);
    }
    for (const value of [resolved.smtpUsers[0]!.secret, resolved.tls, resolved.dkimKeys[0], resolved.dkimKeys[0]!.key]) expect(Object.isFrozen(value)).toBe(true);
    expect(() => (resolved.smtpUsers as unknown as unknown[]).push({})).toThrow(TypeError);
  });

  it('writes nothing: a TLS listener without smtp.tls gets its self-signed pair at start, not here', () => {
    const dataDir = join(dir, 'untouched');
    const resolved = resolve({ dataDir, smtp: { listeners: [{ port: 0, tls: 'implicit' }] } });
    expect(resolved.tls).toBeNull();
    expect(existsSync(dataDir)).toBe(false);
  });

  it('reads smtp.tls only when a listener uses TLS', () => {
    expect(resolve({ smtp: { tls: { key: join(dir, 'missing-key.pem'), cert: join(dir, 'missing-cert.pem') } } }).tls).toBeNull();
  });
});

describe('problems of the resolution', () => {
  it('names every problem with its config path, all at once', () => {
    const problems = problemsOf({
      ips: [{ address: '127.0.0.2', warmup: { plan: 'turbo', start: '2026-11-01' } }],
      reactionRules: [{ name: 'r', match: 'slow down', provider: 'gmial', action: 'suspend-provider', duration: '1h' }],
      smtp: {
        listeners: [{ port: 0, tls: 'starttls' }],
        tls: { key: join(dir, 'missing-key.pem'), cert: join(dir, 'missing-cert.pem') },
        users: [
          { username: 'a', passwordHash: 'scrypt$16384$8$1$c2FsdA==', allowedSenders: ['*'] },
          { username: 'a', password: 'x', allowedSenders: ['*'] },
        ],
      },
      dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: join(dir, 'missing-dkim.pem') }] } } },
    });
    expect(problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual([
      'ips[0].warmup.plan',
      'reactionRules[0].provider',
      'smtp.users[0].passwordHash',
      'smtp.users[1].username',
      'smtp.tls.key',
      'smtp.tls.cert',
      'dkim.domains.example.com.keys[0].privateKey',
    ]);
    expect(problems.slice(0, 2)).toEqual(['ips[0].warmup.plan: unknown warm-up plan "turbo"', 'reactionRules[0].provider: unknown provider "gmial"']);
  });

  it('reports a problem with the pool data overrides together with the others', () => {
    const problems = problemsOf({
      providers: { newmail: { warmupScale: 2 } },
      smtp: {
        users: [
          { username: 'a', password: 'x', allowedSenders: ['*'] },
          { username: 'a', password: 'y', allowedSenders: ['*'] },
        ],
      },
      dkim: { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: join(dir, 'missing-dkim.pem') }] } } },
    });
    expect(problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual(['providers.newmail.mx', 'smtp.users[1].username', 'dkim.domains.example.com.keys[0].privateKey']);
  });

  it('accepts reaction rules for providers that exist', () => {
    const rule = { name: 'r', match: 'slow down', action: 'suspend-provider', duration: '1h' } as const;
    expect(resolve({ reactionRules: [{ ...rule, provider: 'gmail' }] }).reactionRules[0]).toMatchObject({ name: 'r', provider: 'gmail', durationMs: 3_600_000 });
  });
});

describe('bounce rules', () => {
  it('puts the operator rules first; one named like a built-in rule replaces it', () => {
    const { bounceRules } = resolve({
      bounceRules: [
        { name: 'partner-moved', text: 'mailbox has moved', bounceClass: 'unknown-user' },
        { name: 'greylisting', text: 'greylist|graylist', bounceClass: 'rate-limited', disposition: 'transient' },
      ],
    });
    expect(bounceRules.slice(0, 2).map((r) => [r.name, r.origin, r.bounceClass])).toEqual([
      ['partner-moved', 'operator', 'unknown-user'],
      ['greylisting', 'operator', 'rate-limited'],
    ]);
    expect(bounceRules.filter((r) => r.name === 'greylisting')).toHaveLength(1);
    expect(bounceRules.slice(2).map((r) => r.name)).toEqual(BOUNCE_RULES.map((r) => r.name).filter((name) => name !== 'greylisting'));
  });

  it('validates operator rules as the config, naming the path', () => {
    expect(
      problemsOf({
        bounceRules: [
          { name: 'a', text: '(unclosed', bounceClass: 'policy' },
          { name: 'b', bounceClass: 'policy' },
          { name: 'c', codes: [250], bounceClass: 'happy' as 'policy' },
        ],
      }),
    ).toEqual([
      'bounceRules[0].text: not a valid regular expression (Unterminated group)',
      'bounceRules[1]: give codes, enhanced or text (a rule without them would take every reply)',
      'bounceRules[2].bounceClass: Invalid option: expected one of "unknown-user"|"mailbox-full"|"message-rejected"|"policy"|"spam"|"rate-limited"|"dns"|"no-mail-domain"|"connection"|"egress-unavailable"|"protocol"|"expired"|"other"',
      'bounceRules[2].codes[0]: Too small: expected number to be >=400',
    ]);
    const rule = { name: 'a', codes: [421], bounceClass: 'connection' as const };
    expect(problemsOf({ bounceRules: [rule, rule] })).toEqual(['bounceRules[1].name: duplicate rule name "a"']);
  });

  it('names the built-in file and the item of a bad built-in rule', () => {
    const { configDir } = copyDataFiles(mkdtempSync(join(dir, 'config-')));
    const file = join(configDir, DATA_FILES.bounceRules);
    writeFileSync(file, '- name: ok\n  codes: [421]\n  bounceClass: connection\n- name: bad\n  enhanced: "^5\\\\.(1"\n  bounceClass: dns\n');
    let error: unknown;
    try {
      resolve({}, { configDir });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).source).toBe(file);
    expect((error as ConfigError).problems).toEqual(['[1].enhanced: not a valid regular expression (Unterminated group)']);
  });
});
