import { describe, expect, it } from 'vitest';
import { assignPool, poolAssignerFor } from '../../src/ippool/pool-assignment.ts';

const rules = { senders: new Map([['marketing', ['news.example.com', '*.promo.example.com']], ['transactional', ['example.com']]]) };
const alice = { username: 'alice', pool: 'transactional', pools: ['marketing'] };
const bob = { username: 'bob' };

describe('pool assignment', () => {
  it('honours the header when the user may use that pool', () => {
    expect(assignPool({ header: 'marketing', user: alice, sender: 'a@example.com', rules })).toEqual({ pool: 'marketing', source: 'header', refusedHeader: null });
    expect(assignPool({ header: ' transactional ', user: alice, sender: 'a@x.test', rules }).pool).toBe('transactional');
  });

  it('ignores a header the user may not use, and one from a client without a user', () => {
    expect(assignPool({ header: 'vip', user: alice, sender: 'a@x.test', rules })).toEqual({ pool: 'transactional', source: 'user', refusedHeader: 'vip' });
    expect(assignPool({ header: 'marketing', user: null, sender: 'a@x.test', rules })).toEqual({ pool: 'default', source: 'default', refusedHeader: 'marketing' });
    expect(assignPool({ header: 'marketing', user: bob, sender: 'a@x.test', rules }).pool).toBe('default');
  });

  it("uses the user's pool, then the sender domain, then default", () => {
    expect(assignPool({ header: null, user: alice, sender: 'a@news.example.com', rules }).pool).toBe('transactional');
    expect(assignPool({ header: null, user: bob, sender: 'a@news.example.com', rules })).toMatchObject({ pool: 'marketing', source: 'sender' });
    expect(assignPool({ header: null, user: null, sender: 'A@Deals.Promo.Example.com', rules }).pool).toBe('marketing');
    // "*.promo.example.com" covers subdomains, not the domain itself.
    expect(assignPool({ header: null, user: null, sender: 'a@promo.example.com', rules }).pool).toBe('default');
    expect(assignPool({ header: null, user: null, sender: 'a@example.com', rules }).pool).toBe('transactional');
    expect(assignPool({ header: null, user: null, sender: '', rules })).toMatchObject({ pool: 'default', source: 'default' });
  });

  it('looks an API token up among the tokens and an SMTP user among the users, never one for the other', () => {
    const assign = poolAssignerFor({
      smtp: { users: [{ username: 'shared-name', pool: 'transactional' }] },
      api: { tokens: [{ name: 'shared-name', pool: 'marketing', pools: ['vip'] }, { name: 'plain' }] },
      pools: { marketing: { senders: [] }, transactional: { senders: ['example.com'] } },
    });
    expect(assign({ header: null, submitter: { source: 'smtp', name: 'shared-name' }, tenant: null, sender: 'a@x.test' })).toMatchObject({ pool: 'transactional', source: 'user' });
    expect(assign({ header: null, submitter: { source: 'http', name: 'shared-name' }, tenant: null, sender: 'a@x.test' })).toMatchObject({ pool: 'marketing', source: 'user' });
    expect(assign({ header: 'vip', submitter: { source: 'http', name: 'shared-name' }, tenant: null, sender: 'a@x.test' })).toMatchObject({ pool: 'vip', source: 'header' });
    expect(assign({ header: 'vip', submitter: { source: 'smtp', name: 'shared-name' }, tenant: null, sender: 'a@x.test' })).toMatchObject({ pool: 'transactional', refusedHeader: 'vip' });
    expect(assign({ header: null, submitter: { source: 'http', name: 'plain' }, tenant: null, sender: 'a@example.com' })).toMatchObject({ pool: 'transactional', source: 'sender' });
  });
});

describe('pool assignment for a tenant', () => {
  const acme = { pools: ['acme', 'shared'] };

  it("keeps a tenant's mail within its pools: a choice outside them gives way to its first pool", () => {
    // The user's pool and the sender-domain rule name pools the tenant may not use.
    expect(assignPool({ header: null, user: alice, tenant: acme, sender: 'a@x.test', rules })).toEqual({ pool: 'acme', source: 'tenant', refusedHeader: null });
    expect(assignPool({ header: null, user: null, tenant: acme, sender: 'a@news.example.com', rules })).toMatchObject({ pool: 'acme', source: 'tenant' });
    expect(assignPool({ header: null, user: null, tenant: { pools: ['marketing'] }, sender: 'a@news.example.com', rules })).toMatchObject({ pool: 'marketing', source: 'sender' });
    // A tenant with no pools listed may use any.
    expect(assignPool({ header: null, user: bob, tenant: { pools: null }, sender: 'a@news.example.com', rules }).pool).toBe('marketing');
  });

  it('lets a client with a tenant and no user (an API token) choose among the tenant\'s pools by header', () => {
    expect(assignPool({ header: 'shared', user: null, tenant: acme, sender: 'a@x.test', rules })).toEqual({ pool: 'shared', source: 'header', refusedHeader: null });
    expect(assignPool({ header: 'marketing', user: null, tenant: acme, sender: 'a@x.test', rules })).toEqual({ pool: 'acme', source: 'tenant', refusedHeader: 'marketing' });
    // A user's header choice must be the user's and the tenant's.
    expect(assignPool({ header: 'marketing', user: alice, tenant: acme, sender: 'a@x.test', rules })).toMatchObject({ pool: 'acme', refusedHeader: 'marketing' });
  });
});
