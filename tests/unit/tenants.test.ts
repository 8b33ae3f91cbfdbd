import { describe, expect, it } from 'vitest';
import { TenantDirectory, tenantMaySend } from '../../src/access/tenants.ts';
import { ConfigError } from '../../src/config/config-error.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { resolveConfig } from '../../src/resolved-config.ts';

const HASH = `sha256:${'a'.repeat(64)}`;
const OTHER_HASH = `sha256:${'b'.repeat(64)}`;

function problemsOf(raw: ConfigInput): string[] {
  try {
    resolveConfig(raw, { source: 'test', env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

const ACME = { senderDomains: ['acme.example', '*.acme.example'], pools: ['acme'], rate: '1000/m', dailyQuota: 5000 };

describe('tenants in the config', () => {
  it('reads a tenant: sender domains, pools, the rate with its burst, the daily quota', () => {
    const { config } = resolveConfig(
      { ips: [{ address: '127.0.0.2', pool: 'acme' }, { address: '127.0.0.3' }], tenants: { acme: ACME }, smtp: { users: [{ username: 'app', password: 'pw', allowedSenders: ['*'], tenant: 'acme', pool: 'acme' }] } },
      { source: 'test', env: {} },
    );
    expect(config.tenants.acme).toEqual({ senderDomains: ['acme.example', '*.acme.example'], pools: ['acme'], rate: { ratePerSecond: 1000 / 60, burst: 1000 }, dailyQuota: 5000 });
  });

  it('names each problem by its path', () => {
    const problems = problemsOf({
      ips: [{ address: '127.0.0.2', pool: 'acme' }, { address: '127.0.0.3' }],
      tenants: { acme: ACME, 'bad name!': { senderDomains: ['x.example'] }, empty: { senderDomains: [] }, lost: { senderDomains: ['l.example'], pools: ['nowhere'], rate: '10 per minute' } },
      smtp: { users: [{ username: 'a', password: 'pw', allowedSenders: ['*'] }] },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^tenants\.bad name!: not a name/),
        expect.stringMatching(/^tenants\.empty\.senderDomains: list at least one domain/),
        expect.stringMatching(/^tenants\.lost\.rate: not a rate/),
      ]),
    );
    // The references are checked once the schema holds.
    expect(
      problemsOf({
        ips: [{ address: '127.0.0.2', pool: 'acme' }, { address: '127.0.0.3' }],
        tenants: { acme: ACME, lost: { senderDomains: ['l.example'], pools: ['nowhere'] } },
        smtp: {
          users: [
            { username: 'a', password: 'pw', allowedSenders: ['*'] },
            { username: 'b', password: 'pw', allowedSenders: ['*'], tenant: 'nobody' },
            { username: 'c', password: 'pw', allowedSenders: ['*'], tenant: 'acme', pools: ['default'] },
          ],
        },
        api: {
          tokens: [
            { name: 'app', role: 'sender', hash: HASH },
            { name: 'root', role: 'admin', tenant: 'acme', hash: OTHER_HASH },
          ],
        },
      }),
    ).toEqual([
      'tenants.lost.pools[0]: unknown pool "nowhere" (no IP or pools entry names it)',
      'smtp.users[0].tenant: required once tenants are configured (every user sends for one)',
      'smtp.users[1].tenant: unknown tenant "nobody" (tenants: acme, lost)',
      'smtp.users[2]: pool "default" is not one of tenant acme\'s pools (acme)',
      'api.tokens[0].tenant: required for role sender (a sender sends for one tenant and reads only its messages)',
      'api.tokens[1].tenant: an admin token belongs to no tenant (it acts for all); remove the tenant or choose another role',
    ]);
  });

  it('needs no tenant for users while none is configured, but always one for a sender token', () => {
    expect(() => resolveConfig({ smtp: { users: [{ username: 'a', password: 'pw', allowedSenders: ['*'] }] } }, { source: 'test', env: {} })).not.toThrow();
    expect(problemsOf({ api: { tokens: [{ name: 'app', role: 'sender', tenant: 'acme', hash: HASH }] } })).toEqual(['api.tokens[0].tenant: unknown tenant "acme" (no tenants are configured)']);
  });
});

describe('tenant sender domains', () => {
  const tenant = new TenantDirectory({ acme: { senderDomains: ['acme.example', '*.Mail.Acme.example'] }, open: { senderDomains: ['*'] } });

  it('allows the listed domains and subdomains of a "*." pattern, in any case, and never the null sender', () => {
    const acme = tenant.get('acme')!;
    expect(tenantMaySend(acme, 'news@ACME.example')).toBe(true);
    expect(tenantMaySend(acme, 'a@eu.mail.acme.example')).toBe(true);
    expect(tenantMaySend(acme, 'a@mail.acme.example')).toBe(false);
    expect(tenantMaySend(acme, 'a@sub.acme.example')).toBe(false);
    expect(tenantMaySend(acme, 'a@acme.example.evil.test')).toBe(false);
    expect(tenantMaySend(acme, '')).toBe(false);
    expect(tenantMaySend(tenant.get('open')!, 'x@anything.test')).toBe(true);
    expect(tenantMaySend(tenant.get('open')!, '')).toBe(false);
    expect(tenant.get('nobody')).toBeUndefined();
  });
});
