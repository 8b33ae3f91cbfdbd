import { describe, expect, it } from 'vitest';
import { cachedReverseLookup } from '../../src/smtp/reverse-lookup-cache.ts';
import { manualClock } from '../helpers/manual-clock.ts';

/** A stand-in for the internet's DNS: answers from a table, counting the queries. */
function fakeDns(answers: Record<string, string[] | Error>) {
  const queries: string[] = [];
  return {
    queries,
    lookup: async (ip: string) => {
      queries.push(ip);
      const answer = answers[ip];
      if (answer instanceof Error) throw answer;
      return answer ?? [];
    },
  };
}

describe('cached reverse lookups', () => {
  it('keeps names found for the TTL, then asks again', async () => {
    const dns = fakeDns({ '192.0.2.1': ['app.example.com'] });
    const clock = manualClock(0);
    const reverse = cachedReverseLookup({ lookup: dns.lookup, clock, ttlMs: 1000 });
    expect(await reverse('192.0.2.1')).toEqual(['app.example.com']);
    clock.advance(999);
    expect(await reverse('192.0.2.1')).toEqual(['app.example.com']);
    expect(dns.queries).toHaveLength(1);
    clock.advance(1);
    await reverse('192.0.2.1');
    expect(dns.queries).toHaveLength(2);
  });

  it('keeps a failure or an empty answer for the shorter negative TTL, as no names', async () => {
    const dns = fakeDns({ '192.0.2.2': new Error('ETIMEOUT'), '192.0.2.3': [] });
    const clock = manualClock(0);
    const reverse = cachedReverseLookup({ lookup: dns.lookup, clock, ttlMs: 10_000, negativeTtlMs: 100 });
    expect(await reverse('192.0.2.2')).toEqual([]);
    expect(await reverse('192.0.2.3')).toEqual([]);
    clock.advance(99);
    await Promise.all([reverse('192.0.2.2'), reverse('192.0.2.3')]);
    expect(dns.queries).toEqual(['192.0.2.2', '192.0.2.3']);
    clock.advance(1);
    await Promise.all([reverse('192.0.2.2'), reverse('192.0.2.3')]);
    expect(dns.queries).toHaveLength(4);
  });

  it('shares one query between lookups of one address that overlap', async () => {
    const dns = fakeDns({ '2001:db8::1': ['v6.example.com'] });
    const reverse = cachedReverseLookup({ lookup: dns.lookup, clock: manualClock(0) });
    const answers = await Promise.all(Array.from({ length: 20 }, () => reverse('2001:db8::1')));
    expect(answers.every((a) => a[0] === 'v6.example.com')).toBe(true);
    expect(dns.queries).toEqual(['2001:db8::1']);
  });

  it('keeps at most maxEntries addresses, dropping the oldest', async () => {
    const dns = fakeDns({});
    const reverse = cachedReverseLookup({ lookup: dns.lookup, clock: manualClock(0), maxEntries: 2 });
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) await reverse(ip);
    await reverse('192.0.2.3');
    await reverse('192.0.2.2');
    expect(dns.queries).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    await reverse('192.0.2.1');
    expect(dns.queries).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.1']);
  });
});
