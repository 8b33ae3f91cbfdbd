import { describe, expect, it } from 'vitest';
import { assignPool } from '../../src/ippool/pool-assignment.ts';

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
});
