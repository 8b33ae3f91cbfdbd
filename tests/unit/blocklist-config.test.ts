import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load.ts';
import { blocklistSuspensions, blocklistWeight } from '../../src/ippool/blocklist-effects.ts';
import type { BlocklistRestriction } from '../../src/ippool/restrictions.ts';
import { resolveConfig } from '../../src/resolved-config.ts';

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

const parse = (blocklists: unknown) => parseConfig({ blocklists }, 'test', {});

describe('blocklists configuration', () => {
  it('defaults to the widely used public lists, every 30 minutes, Spamhaus ZEN acted on for the small sites only', () => {
    const { blocklists } = parse(undefined);
    expect(blocklists).toMatchObject({ enabled: true, interval: 30 * 60_000, timeout: 5_000, servers: [] });
    expect(blocklists.lists.map((l) => [l.name, l.zone, l.ipv6, l.reaction])).toEqual([
      ['spamhaus-zen', 'zen.spamhaus.org', true, { action: 'suspend', providers: ['other'] }],
      ['barracuda', 'b.barracudacentral.org', false, { action: 'weight', factor: 0.5, providers: ['other'] }],
      ['spamcop', 'bl.spamcop.net', false, { action: 'none' }],
      ['mailspike', 'bl.mailspike.net', false, { action: 'none' }],
      ['psbl', 'psbl.surriel.com', false, { action: 'none' }],
    ]);
  });

  it('takes a DQS zone apart from the list name, lower-cased, and the providers default to all', () => {
    const { blocklists } = parse({ interval: '1h', servers: ['127.0.0.1', '127.0.0.1:5353', '[::1]:53'], lists: [{ name: 'spamhaus-dqs', zone: 'AbC123key.zen.dq.spamhaus.net.', reaction: { action: 'suspend' } }] });
    expect(blocklists.interval).toBe(3_600_000);
    expect(blocklists.lists).toEqual([{ name: 'spamhaus-dqs', zone: 'abc123key.zen.dq.spamhaus.net', ipv6: false, reaction: { action: 'suspend', providers: ['all'] } }]);
  });

  it('names every problem by its path', () => {
    const problems = problemsOf(() =>
      parse({
        interval: '10s',
        timeout: '2m',
        servers: ['dns.example'],
        extra: true,
        lists: [
          { name: 'a', zone: 'not a zone', reaction: { action: 'weight', factor: 1.5 } },
          { name: 'a', zone: 'b.example', reaction: { action: 'weight', factor: 0 } },
          { name: 'c:d', zone: 'c.example', reaction: { action: 'block' } },
          { name: 'e', zone: 'e.example', reaction: { action: 'suspend', providers: [] } },
        ],
      }),
    );
    expect(problems).toEqual([
      'blocklists.interval: at least 1m (lists limit how often they are asked)',
      'blocklists.timeout: at most 60s',
      'blocklists.servers[0]: not a DNS server address (an IP, optionally with :port; [v6]:port)',
      'blocklists.lists[0].zone: not a DNS zone (e.g. zen.spamhaus.org)',
      'blocklists.lists[0].reaction.factor: below 1 (a factor that lowers the weight)',
      'blocklists.lists[1].reaction.factor: above 0 (use action "suspend" to stop the IP)',
      'blocklists.lists[2].name: not a name (letters, digits, "-" and "_", starting with a letter)',
      'blocklists.lists[2].reaction.action: not a reaction: action is none, weight or suspend',
      'blocklists.lists[3].reaction.providers: name at least one provider, or "all"',
      'blocklists.extra: unknown key',
    ]);
  });

  it('refuses two lists of one name, and a reaction toward a provider nobody configured', () => {
    expect(problemsOf(() => parse({ lists: [{ name: 'x', zone: 'a.example' }, { name: 'x', zone: 'b.example' }] })).join('\n')).toMatch(/blocklists\.lists\[1\]\.name: duplicate list name "x"/);
    const problems = problemsOf(() => resolveConfig({ blocklists: { lists: [{ name: 'x', zone: 'a.example', reaction: { action: 'suspend', providers: ['gmail', 'gmial', 'all'] } }] } }, { env: {} }));
    expect(problems).toEqual(['blocklists.lists[0].reaction.providers[1]: unknown provider "gmial"']);
  });
});

describe('blocklist reactions in selection', () => {
  const entry = (overrides: Partial<BlocklistRestriction>): BlocklistRestriction => ({ list: 'zen', action: 'suspend', providers: ['*'], reason: 'listed on zen (127.0.0.2)', until: 1_000, ...overrides });

  it('suspends for every provider, or for the providers named', () => {
    expect(blocklistSuspensions([entry({})], 'gmail')).toEqual([{ scope: { kind: 'all' }, restriction: { action: 'suspend', rule: 'blocklist:zen', reason: 'listed on zen (127.0.0.2)', until: 1_000 } }]);
    const other = [entry({ providers: ['other', 'yahoo'] })];
    expect(blocklistSuspensions(other, 'gmail')).toEqual([]);
    expect(blocklistSuspensions(other, 'other')).toMatchObject([{ scope: { kind: 'provider', provider: 'other' } }]);
    expect(blocklistSuspensions([entry({ action: 'weight', factor: 0.5 })], 'gmail')).toEqual([]);
  });

  it('multiplies the weight by the factors of the lists that apply, keeping at least 1, and 0 stays 0', () => {
    const entries = [entry({ list: 'a', action: 'weight', factor: 0.5 }), entry({ list: 'b', action: 'weight', factor: 0.2, providers: ['other'] })];
    expect(blocklistWeight(100, entries, 'gmail')).toEqual({ weight: 50, reason: 'listed on a: weight 100 -> 50' });
    expect(blocklistWeight(100, entries, 'other')).toEqual({ weight: 10, reason: 'listed on a, b: weight 100 -> 10' });
    expect(blocklistWeight(3, entries, 'other')).toEqual({ weight: 1, reason: 'listed on a, b: weight 3 -> 1' });
    expect(blocklistWeight(0, entries, 'other')).toEqual({ weight: 0, reason: null });
    expect(blocklistWeight(100, [entry({})], 'other')).toEqual({ weight: 100, reason: null });
  });
});
