import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { DataRefusedError, type Store } from '../../src/storage/store.ts';
import type { StoredStsPolicy, TlsSessionCount } from '../../src/storage/tls-reports.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * Outbound TLS in the store contract (TlsReportStore): MTA-STS policies shared by nodes, TLS-RPT
 * counts added up, one claim per report, the purge; and the TLS of a delivery kept on its event.
 */

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

function policy(overrides: Partial<StoredStsPolicy> = {}): StoredStsPolicy {
  return {
    domain: 'dest.test',
    id: '20260101',
    mode: 'enforce',
    mx: ['mx1.dest.test', '*.backup.dest.test'],
    maxAge: 86_400,
    lines: ['version: STSv1', 'mode: enforce', 'mx: mx1.dest.test', 'mx: *.backup.dest.test', 'max_age: 86400'],
    fetchedAt: T0,
    expiresAt: T0 + DAY,
    ...overrides,
  };
}

const sts = { type: 'sts' as const, domain: 'dest.test', id: 'v1', lines: ['version: STSv1', 'mode: enforce'], mx: ['*.dest.test'] };

function count(overrides: Partial<TlsSessionCount> = {}): TlsSessionCount {
  return { day: '2026-11-29', policy: sts, result: 'success', sendingIp: '', receivingIp: '', receivingMx: '', count: 1, ...overrides };
}

export function registerTlsContract(ctx: { store: () => Store; clock: () => ManualClock; open: () => Promise<Store> }): void {
  it('keeps one MTA-STS policy per domain, replaced whole, seen by another store on the database', async () => {
    const store = ctx.store();
    expect(await store.getStsPolicy('dest.test')).toBeNull();
    await store.saveStsPolicy(policy());
    const other = await ctx.open();
    expect(await other.getStsPolicy('DEST.test')).toEqual(policy());
    await other.saveStsPolicy(policy({ id: '20260202', mode: 'testing', mx: ['mx9.dest.test'], fetchedAt: T0 + 5, expiresAt: T0 + 5 + DAY }));
    expect(await store.getStsPolicy('dest.test')).toMatchObject({ id: '20260202', mode: 'testing', mx: ['mx9.dest.test'], expiresAt: T0 + 5 + DAY });
    await expect(store.saveStsPolicy(policy({ mode: 'strict' as never }))).rejects.toThrow(DataRefusedError);
  });

  it('adds TLS session counts up by day, policy, result and place, and lists them in a fixed order', async () => {
    const store = ctx.store();
    const failure = { result: 'certificate-expired' as const, sendingIp: '192.0.2.10', receivingIp: '198.51.100.7', receivingMx: 'mx1.dest.test' };
    await store.addTlsSessionCounts([count({ count: 3 }), count({ ...failure, count: 1 }), count({ count: 2 })]);
    await store.addTlsSessionCounts([count({ ...failure, count: 4 }), count({ policy: { ...sts, id: 'v2', lines: ['new'] } }), count({ day: '2026-11-30', count: 7 })]);
    await store.addTlsSessionCounts([count({ policy: { type: 'no-policy-found', domain: 'other.test', id: '', lines: [], mx: [] }, count: 9 })]);
    await store.addTlsSessionCounts([]);

    expect(await store.tlsSessionCounts('dest.test', '2026-11-29')).toEqual([
      count({ ...failure, count: 5 }),
      count({ count: 5 }),
      count({ policy: { ...sts, id: 'v2', lines: ['new'] } }),
    ]);
    expect(await store.tlsSessionCounts('dest.test', '2026-11-30')).toEqual([count({ day: '2026-11-30', count: 7 })]);
    expect(await store.tlsReportsDue('2026-11-29', T0, 10)).toEqual(['dest.test', 'other.test']);
    expect(await store.tlsReportsDue('2026-11-29', T0, 1)).toEqual(['dest.test']);
    await expect(store.addTlsSessionCounts([count({ result: 'made-up' as never })])).rejects.toThrow(DataRefusedError);
    await expect(store.addTlsSessionCounts([count({ day: '29.11.2026' })])).rejects.toThrow(DataRefusedError);
  });

  it('lets one store claim a day\'s report of a domain; a claim that ran out is taken over, a finished one never', async () => {
    const store = ctx.store();
    const other = await ctx.open();
    await store.addTlsSessionCounts([count({ policy: { ...sts, domain: 'a.test' } }), count({ policy: { ...sts, domain: 'b.test' } })]);
    const day = '2026-11-29';
    const [first, second] = await Promise.all([store.claimTlsReport('a.test', day, 'node-a', T0 + 600_000, T0), other.claimTlsReport('a.test', day, 'node-b', T0 + 600_000, T0)]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    const holder = first ? 'node-a' : 'node-b';
    const loser = first ? 'node-b' : 'node-a';
    // Claimed: not due until the claim runs out; the loser cannot finish it.
    expect(await store.tlsReportsDue(day, T0 + 1, 10)).toEqual(['b.test']);
    expect(await store.finishTlsReport('a.test', day, loser, 'sent', T0 + 1)).toBe(false);
    expect(await store.claimTlsReport('a.test', day, loser, T0 + 1_200_000, T0 + 599_999)).toBe(false);
    // Its holder stopped: past the claim another takes it over, and the first can no longer finish it.
    expect(await store.tlsReportsDue(day, T0 + 600_000, 10)).toEqual(['a.test', 'b.test']);
    expect(await other.claimTlsReport('a.test', day, loser, T0 + 1_200_000, T0 + 600_000)).toBe(true);
    expect(await store.finishTlsReport('a.test', day, holder, 'sent', T0 + 600_001)).toBe(false);
    expect(await store.finishTlsReport('a.test', day, loser, 'sent', T0 + 600_001)).toBe(true);
    // Finished: never due nor claimed again.
    expect(await store.claimTlsReport('a.test', day, holder, T0 + 9_999_999, T0 + 5_000_000)).toBe(false);
    expect(await store.tlsReportsDue(day, T0 + 5_000_000, 10)).toEqual(['b.test']);
    expect(await store.claimTlsReport('b.test', day, holder, T0 + 10, T0)).toBe(true);
    expect(await store.finishTlsReport('b.test', day, holder, 'skipped', T0 + 1)).toBe(true);
    expect(await store.tlsReportsDue(day, T0 + 5_000_000, 10)).toEqual([]);
  });

  it('drops counts of a day whose report is finished, and says how many', async () => {
    const store = ctx.store();
    const a = { ...sts, domain: 'a.test' };
    await store.addTlsSessionCounts([count({ policy: a, count: 2 })]);
    await store.claimTlsReport('a.test', '2026-11-29', 'node-a', T0 + 10, T0);
    // Claimed, not finished: counts still go in.
    expect(await store.addTlsSessionCounts([count({ policy: a, count: 3 })])).toBe(0);
    await store.finishTlsReport('a.test', '2026-11-29', 'node-a', 'sent', T0 + 1);
    const late = [count({ policy: a, count: 4 }), count({ policy: a, result: 'certificate-expired', count: 1 }), count({ policy: a, day: '2026-11-30' }), count({ policy: { ...sts, domain: 'b.test' } })];
    expect(await store.addTlsSessionCounts(late)).toBe(2);
    expect(await store.tlsSessionCounts('a.test', '2026-11-29')).toEqual([count({ policy: a, count: 5 })]);
    expect(await store.tlsSessionCounts('a.test', '2026-11-30')).toEqual([count({ policy: a, day: '2026-11-30' })]);
    expect(await store.tlsSessionCounts('b.test', '2026-11-29')).toEqual([count({ policy: { ...sts, domain: 'b.test' } })]);
  });

  it('purges the counts and reports of days before the cut-off and policies expired before it', async () => {
    const store = ctx.store();
    await store.addTlsSessionCounts([count({ day: '2026-11-20' }), count({ day: '2026-11-21', count: 2 })]);
    await store.claimTlsReport('dest.test', '2026-11-20', 'node-a', T0 + 10, T0);
    await store.saveStsPolicy(policy({ domain: 'old.test', expiresAt: T0 }));
    await store.saveStsPolicy(policy({ domain: 'live.test', expiresAt: T0 + DAY }));
    expect(await store.purgeTlsReports('2026-11-21', T0 + 1)).toBe(3);
    expect(await store.tlsSessionCounts('dest.test', '2026-11-20')).toEqual([]);
    expect(await store.tlsSessionCounts('dest.test', '2026-11-21')).toEqual([count({ day: '2026-11-21', count: 2 })]);
    expect(await store.getStsPolicy('old.test')).toBeNull();
    expect(await store.getStsPolicy('live.test')).not.toBeNull();
  });

  it('keeps the TLS of a delivery on its event, not on the recipient row', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('tls-event', T0)]);
    const [claimed] = await store.claimDue({ now: T0, limit: 1, owner: 'node-a', leaseMs: 60_000 });
    const tls = { policy: 'mta-sts' as const, version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', verified: true, failure: null };
    const delivered: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2', tls };
    await store.recordAttempts([{ recipientId: claimed!.recipientId, token: claimed!.token, outcome: delivered, newState: 'delivered', countsAsAttempt: true }]);
    expect((await store.listEvents('tls-event')).map((e) => e.outcome)).toEqual([delivered]);
    const { tls: _kept, ...withoutTls } = delivered;
    expect((await store.listRecipients('tls-event'))[0]!.lastOutcome).toEqual(withoutTls);
  });
}
