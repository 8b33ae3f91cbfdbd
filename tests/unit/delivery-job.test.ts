import { describe, expect, it } from 'vitest';
import { groupByMessage, jobsBySite } from '../../src/engine/delivery-job.ts';
import { createRouter } from '../../src/engine/routing.ts';
import type { ClaimedRecipient, LeaseToken } from '../../src/storage/store.ts';
import { createStsResolver } from '../../src/engine/tls/mta-sts-resolver.ts';
import { createTlsPolicies } from '../../src/engine/tls/tls-policies.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { manualClock } from '../helpers/manual-clock.ts';

/**
 * one.test and two.test share an MX set (listed in another order); four.test has the same hosts
 * with the preferences the other way round; three.test has its own; nx.test does not exist.
 */
const resolver = createFixtureResolver({
  'one.test': { mx: [{ exchange: 'mx1.hoster.test', priority: 10 }, { exchange: 'mx2.hoster.test', priority: 20 }] },
  'two.test': { mx: [{ exchange: 'mx2.hoster.test', priority: 20 }, { exchange: 'mx1.hoster.test', priority: 10 }] },
  'three.test': { mx: [{ exchange: 'mx.three.test', priority: 10 }] },
  'four.test': { mx: [{ exchange: 'mx1.hoster.test', priority: 20 }, { exchange: 'mx2.hoster.test', priority: 10 }] },
  'mx1.hoster.test': { a: ['192.0.2.1'] },
  'mx2.hoster.test': { a: ['192.0.2.2'] },
  'mx.three.test': { a: ['192.0.2.3'] },
  '_mta-sts.one.test': { txt: ['v=STSv1; id=1;'] },
  '_mta-sts.slow.test': { txt: ['v=STSv1; id=1;'] },
  'slow.test': { mx: [{ exchange: 'mx.three.test', priority: 10 }] },
});

let nextId = 1;
function row(messageId: string, recipient: string): ClaimedRecipient {
  const domain = recipient.slice(recipient.indexOf('@') + 1);
  return { recipientId: nextId++, token: 'claim-1' as LeaseToken, messageId, sender: 'app@sender.test', recipient, domain, attempts: 0, lastEgressIp: null, messageCreatedAt: 0, dueAt: 0, messageIdHeader: null, size: 100 };
}

describe('delivery jobs', () => {
  it('groups claimed rows by message, in claim order', () => {
    const rows = [row('m1', 'a@one.test'), row('m2', 'b@one.test'), row('m1', 'c@two.test')];
    expect(groupByMessage(rows).map((group) => group.map((r) => r.recipient))).toEqual([['a@one.test', 'c@two.test'], ['b@one.test']]);
  });

  it('puts the recipients of domains sharing an MX set in one job; an unroutable domain gets its own', async () => {
    const router = createRouter({ routes: {}, mxPort: 25, resolver, clock: manualClock(0) });
    const rows = [row('m1', 'a@one.test'), row('m1', 'b@three.test'), row('m1', 'c@two.test'), row('m1', 'd@nx.test'), row('m1', 'e@one.test')];
    const jobs = await jobsBySite('m1', rows, router);
    expect(jobs.map((job) => [job.route.ok ? job.route.site : job.route.outcome.enhanced, job.rows.map((r) => r.recipient)])).toEqual([
      ['mx1.hoster.test,mx2.hoster.test', ['a@one.test', 'c@two.test', 'e@one.test']],
      ['mx.three.test', ['b@three.test']],
      ['5.1.2', ['d@nx.test']],
    ]);
    expect(jobs.every((job) => job.messageId === 'm1')).toBe(true);
    // Each domain was looked up once.
    expect(resolver.queries.filter((q) => q === 'MX one.test')).toHaveLength(1);
  });

  it('keeps a domain whose preferences differ out of the job of its site, so each goes to its own first MX', async () => {
    const router = createRouter({ routes: {}, mxPort: 25, resolver, clock: manualClock(0) });
    const jobs = await jobsBySite('m2', [row('m2', 'a@one.test'), row('m2', 'b@four.test'), row('m2', 'c@two.test')], router);
    expect(jobs.map((job) => (job.route.ok ? [job.route.site, job.route.hops[0]!.name, job.rows.map((r) => r.recipient)] : null))).toEqual([
      ['mx1.hoster.test,mx2.hoster.test', 'mx1.hoster.test', ['a@one.test', 'c@two.test']],
      ['mx1.hoster.test,mx2.hoster.test', 'mx2.hoster.test', ['b@four.test']],
    ]);
  });

  it('keeps domains under different TLS requirements apart, each job with the TLS-RPT policies of its domains; a policy still being fetched makes a waiting job', async () => {
    const logger = createLogger('silent');
    const store = createSqliteStore({ path: ':memory:', logger });
    await store.migrate();
    try {
      // The policy hosts of the internet: one.test answers at once, slow.test not before the wait is over.
      const fetch = (domain: string) =>
        domain === 'one.test'
          ? Promise.resolve({ ok: true as const, body: 'version: STSv1\nmode: enforce\nmx: *.hoster.test\nmax_age: 600\n' })
          : new Promise<never>(() => {});
      const sts = createStsResolver({ resolver, fetch, store, clock: manualClock(0), logger });
      const tls = createTlsPolicies({ sts, waitMs: 20, settings: () => ({ mode: 'opportunistic', policies: { 'three.test': 'verify' }, mtaSts: true, reports: true }) });
      const router = createRouter({ routes: {}, mxPort: 25, resolver, clock: manualClock(0) });
      const rows = [row('m3', 'a@one.test'), row('m3', 'b@two.test'), row('m3', 'c@three.test'), row('m3', 'd@slow.test'), row('m3', 'e@two.test')];
      const jobs = await jobsBySite('m3', rows, router, tls);
      expect(
        jobs.map((job) => [job.rows.map((r) => r.recipient), job.tls?.mode ?? null, job.tls?.sts?.mode ?? null, job.tls?.reports.map((r) => `${r.type} ${r.domain}`) ?? null]),
      ).toEqual([
        [['a@one.test'], 'verify', 'enforce', ['sts one.test']],
        [['b@two.test', 'e@two.test'], 'opportunistic', null, ['no-policy-found two.test']],
        [['c@three.test'], 'verify', null, ['no-policy-found three.test']],
        [['d@slow.test'], null, null, null],
      ]);
      expect(jobs[3]!.route).toMatchObject({ ok: false, outcome: { disposition: 'throttled', response: 'not tried: the MTA-STS policy of slow.test is still being fetched' } });
    } finally {
      await store.close();
    }
  });
});
