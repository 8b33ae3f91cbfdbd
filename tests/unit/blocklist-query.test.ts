import { describe, expect, it } from 'vitest';
import { classifyFailure, classifyRecords, queryName } from '../../src/ippool/blocklist-query.ts';
import { nextDue, replan, spreadOver } from '../../src/ippool/blocklist-schedule.ts';

describe('blocklist query names', () => {
  it('reverses the octets of an IPv4 address', () => {
    expect(queryName('192.0.2.99', 'zen.spamhaus.org')).toBe('99.2.0.192.zen.spamhaus.org');
    expect(queryName('11.22.33.44', 'key123.zen.dq.spamhaus.net')).toBe('44.33.22.11.key123.zen.dq.spamhaus.net');
  });

  it('writes an IPv6 address as its 32 nibbles, least significant first', () => {
    // The example of RFC 5782 section 2.4.
    expect(queryName('2001:db8:1:2:3:4:567:89ab', 'ugly.example.com')).toBe('b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com');
    expect(queryName('2001:DB8::1', 'zen.spamhaus.org')).toBe(`1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.zen.spamhaus.org`);
    expect(queryName('::1', 'l.test')).toBe(`1.${'0.'.repeat(31)}l.test`);
    expect(queryName('fe80::', 'l.test')).toBe(`${'0.'.repeat(28)}0.8.e.f.l.test`);
    // An embedded IPv4 tail is the last two groups.
    expect(queryName('::ffff:192.0.2.1', 'l.test')).toBe(`1.0.2.0.0.0.0.c.f.f.f.f.${'0.'.repeat(20)}l.test`);
    for (const address of ['2001:db8::1', '1::', '::', '2a01:4f8:c17:b8f::2']) {
      const labels = queryName(address, 'l.test')!.split('.');
      expect(labels.slice(0, 32).every((label) => /^[0-9a-f]$/.test(label))).toBe(true);
      expect(labels.slice(32)).toEqual(['l', 'test']);
    }
  });

  it('makes no name of what is no IP address', () => {
    expect(queryName('mx.example.com', 'zen.spamhaus.org')).toBeNull();
    expect(queryName('', 'zen.spamhaus.org')).toBeNull();
  });
});

describe('blocklist answers', () => {
  it('takes 127.0.0.2-127.0.0.255 as a listing, with its codes sorted and once each', () => {
    expect(classifyRecords(['127.0.0.2'])).toEqual({ kind: 'listed', codes: ['127.0.0.2'] });
    expect(classifyRecords(['127.0.0.4', '127.0.0.10', '127.0.0.4'])).toEqual({ kind: 'listed', codes: ['127.0.0.10', '127.0.0.4'] });
    expect(classifyRecords(['127.0.0.255'])).toEqual({ kind: 'listed', codes: ['127.0.0.255'] });
  });

  it('takes NXDOMAIN and a name without A records as not listed', () => {
    expect(classifyFailure('ENOTFOUND')).toEqual({ kind: 'clear' });
    expect(classifyFailure('ENODATA')).toEqual({ kind: 'clear' });
    expect(classifyRecords([])).toEqual({ kind: 'clear' });
  });

  it('takes Spamhaus 127.255.255.x as a refusal, never a listing, saying why', () => {
    expect(classifyRecords(['127.255.255.254'])).toEqual({ kind: 'refused', codes: ['127.255.255.254'], why: 'query through a public or open resolver' });
    expect(classifyRecords(['127.255.255.252'])).toMatchObject({ kind: 'refused', why: 'typo in the zone name' });
    expect(classifyRecords(['127.255.255.255'])).toMatchObject({ kind: 'refused', why: 'too many queries' });
    expect(classifyRecords(['127.255.255.253'])).toMatchObject({ kind: 'refused', why: 'refused' });
    // A refusal beside a listing code is still a refusal: the answer cannot be trusted.
    expect(classifyRecords(['127.0.0.2', '127.255.255.254'])).toMatchObject({ kind: 'refused' });
  });

  it('takes timeouts, SERVFAIL and answers outside 127.0.0.2-255 as errors', () => {
    expect(classifyFailure('ETIMEOUT')).toEqual({ kind: 'error', error: 'ETIMEOUT' });
    expect(classifyFailure('ESERVFAIL')).toEqual({ kind: 'error', error: 'ESERVFAIL' });
    expect(classifyFailure(undefined)).toEqual({ kind: 'error', error: 'lookup failed' });
    expect(classifyRecords(['127.0.0.1'])).toMatchObject({ kind: 'error' });
    // A resolver rewriting NXDOMAIN to an advertising page.
    expect(classifyRecords(['198.51.100.80'])).toMatchObject({ kind: 'error', error: expect.stringContaining('198.51.100.80') });
    expect(classifyRecords(['127.0.0.2', '10.0.0.1'])).toMatchObject({ kind: 'error' });
  });
});

describe('blocklist schedule', () => {
  it('spreads the pairs evenly over the interval, the first at once', () => {
    const schedule = spreadOver(['a', 'b', 'c', 'd'], 60_000, 1_000);
    expect(schedule).toEqual([
      { pair: 'a', dueAt: 1_000 },
      { pair: 'b', dueAt: 16_000 },
      { pair: 'c', dueAt: 31_000 },
      { pair: 'd', dueAt: 46_000 },
    ]);
    expect(spreadOver([], 60_000, 0)).toEqual([]);
  });

  it('moves a pair one interval on, or one interval from now when it fell behind', () => {
    expect(nextDue(16_000, 60_000, 17_000)).toBe(76_000);
    expect(nextDue(16_000, 60_000, 200_000)).toBe(260_000);
  });

  it('makes the schedule again keeping the times of the pairs still there, spreading the new ones from now', () => {
    const same = (a: string, b: string) => a === b;
    const none = () => null;
    const before = [{ pair: 'a', dueAt: 50_000 }, { pair: 'b', dueAt: 20_000 }, { pair: 'gone', dueAt: 30_000 }];
    expect(replan(['a', 'new1', 'b', 'new2'], before, same, 60_000, 10_000, none)).toEqual([
      { pair: 'a', dueAt: 50_000 },
      { pair: 'new1', dueAt: 10_000 },
      { pair: 'b', dueAt: 20_000 },
      { pair: 'new2', dueAt: 40_000 },
    ]);
    // A shorter interval: none waits longer than one of it from now.
    expect(replan(['a', 'b'], before, same, 30_000, 10_000, none)).toEqual([{ pair: 'a', dueAt: 40_000 }, { pair: 'b', dueAt: 20_000 }]);
    // A new pair known listed is due by the time given, and not before now.
    const dueBy = (pair: string) => ({ late: 25_000, stale: 1_000 })[pair] ?? null;
    expect(replan(['x', 'y', 'late', 'stale'], [], same, 60_000, 10_000, dueBy)).toEqual([
      { pair: 'x', dueAt: 10_000 },
      { pair: 'y', dueAt: 25_000 },
      { pair: 'late', dueAt: 25_000 },
      { pair: 'stale', dueAt: 10_000 },
    ]);
  });
});
