import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { DataRefusedError, type Store } from '../../src/storage/store.ts';
import type { NewSuppression, SuppressionCursor, SuppressionFilters, SuppressionRecord } from '../../src/storage/suppressions.ts';

/**
 * The suppression list (Suppressions) in the store contract: called from runStoreContract, so
 * every backend stores, finds, pages, expires and purges real rows, and stores opened on one
 * database key addresses alike.
 */

const T0 = 1_700_000_000_000;
const DAY_MS = 86_400_000;
const ALL: SuppressionFilters = { tenant: null, reason: null, address: null, since: null, until: null, now: null };

function entry(overrides: Partial<NewSuppression> = {}): NewSuppression {
  return { tenant: 'acme', address: 'user@dest.test', reason: 'hard-bounce', source: { kind: 'api', actor: 'ops' }, createdAt: T0, expiresAt: null, ...overrides };
}

/** Every page of a listing, following the last entry as the cursor. */
async function allPages(store: Store, filters: SuppressionFilters, limit: number): Promise<SuppressionRecord[][]> {
  const pages: SuppressionRecord[][] = [];
  let after: SuppressionCursor | null = null;
  for (;;) {
    const page = await store.listSuppressions(filters, after, limit);
    if (page.length === 0) return pages;
    pages.push(page);
    const last = page.at(-1)!;
    after = { tenant: last.tenant, createdAt: last.createdAt, addressHash: last.addressHash };
  }
}

export function registerSuppressionContract(ctx: { store: () => Store; clock: () => ManualClock; open: () => Promise<Store> }): void {
  it('adds an entry and reads it back whole, the address compared without regard to case', async () => {
    const store = ctx.store();
    const source = { kind: 'attempt', messageId: 'msg-1', recipientId: 7 } as const;
    expect(await store.addSuppressions([entry({ address: 'User@Dest.TEST', source })])).toBe(1);

    const found = await store.getSuppression('acme', 'user@dest.test', T0);
    expect(found).toEqual({ tenant: 'acme', address: 'User@Dest.TEST', addressHash: expect.stringMatching(/^[0-9a-f]{64}$/), reason: 'hard-bounce', source, createdAt: T0, expiresAt: null });
    expect(await store.getSuppression('acme', 'USER@DEST.TEST', T0)).toEqual(found);
    expect(await store.getSuppression('acme', 'other@dest.test', T0)).toBeNull();

    // Every spelling given is answered, as given; the others are not.
    const among = await store.suppressedAmong('acme', ['user@dest.test', 'USER@dest.test', 'other@dest.test', 'user@dest.test'], T0);
    expect([...among].sort()).toEqual(['USER@dest.test', 'user@dest.test']);
    expect(await store.suppressedAmong('acme', [], T0)).toEqual(new Set());
  });

  it('keys a UTF-8 address by its folded local part and the A-label of its domain (RFC 6531), an IDN in either form finding the entry', async () => {
    const store = ctx.store();
    expect(await store.addSuppressions([entry({ address: 'Jörg@Bücher.test' })])).toBe(1);
    const found = await store.getSuppression('acme', 'jörg@xn--bcher-kva.test', T0);
    expect(found).toMatchObject({ address: 'Jörg@Bücher.test', reason: 'hard-bounce' });
    expect(await store.getSuppression('acme', 'JÖRG@BÜCHER.test', T0)).toEqual(found);
    expect(await store.getSuppression('acme', 'jorg@bücher.test', T0)).toBeNull();
    const among = await store.suppressedAmong('acme', ['jörg@bücher.test', 'JÖRG@xn--bcher-kva.test', 'joerg@bücher.test'], T0);
    expect([...among].sort()).toEqual(['JÖRG@xn--bcher-kva.test', 'jörg@bücher.test']);
    // The same entry in the other form replaces it: one row.
    expect(await store.addSuppressions([entry({ address: 'jörg@xn--bcher-kva.test', createdAt: T0 + 1 })])).toBe(1);
    expect((await store.listSuppressions(ALL, null, 10)).map((e) => e.address)).toEqual(['jörg@xn--bcher-kva.test']);
    expect(await store.deleteSuppression('acme', 'Jörg@bücher.test')).toBe(true);
    expect(await store.getSuppression('acme', 'jörg@bücher.test', T0)).toBeNull();
  });

  it('keys the precomposed and the decomposed spelling of one UTF-8 address alike (NFC, RFC 6532 3.1)', async () => {
    const store = ctx.store();
    const precomposed = 'j\u00f6rg@b\u00fccher.test';
    const decomposed = 'jo\u0308rg@bu\u0308cher.test';
    expect(await store.addSuppressions([entry({ address: precomposed, reason: 'unsubscribe' })])).toBe(1);
    expect(await store.getSuppression('acme', decomposed, T0)).toMatchObject({ address: precomposed, reason: 'unsubscribe' });
    expect(await store.getSuppression('acme', 'JO\u0308RG@xn--bcher-kva.test', T0)).toMatchObject({ address: precomposed });
    expect([...(await store.suppressedAmong('acme', [decomposed, 'other@bücher.test'], T0))]).toEqual([decomposed]);
    // Added the other way round, it is the same entry: one row.
    expect(await store.addSuppressions([entry({ address: decomposed, createdAt: T0 + 1 })])).toBe(1);
    expect((await store.listSuppressions(ALL, null, 10)).map((e) => e.address)).toEqual([decomposed]);
    expect(await store.deleteSuppression('acme', precomposed)).toBe(true);
    expect(await store.getSuppression('acme', decomposed, T0)).toBeNull();
  });

  it('keeps tenants apart, with mail of no tenant as a tenant of its own', async () => {
    const store = ctx.store();
    await store.addSuppressions([
      entry({ tenant: null, address: 'none@dest.test' }),
      entry({ tenant: 'acme', address: 'acme@dest.test' }),
      entry({ tenant: 'beta', address: 'shared@dest.test', reason: 'complaint' }),
      entry({ tenant: null, address: 'shared@dest.test', reason: 'manual' }),
    ]);
    const addresses = ['none@dest.test', 'acme@dest.test', 'shared@dest.test'];
    expect([...(await store.suppressedAmong(null, addresses, T0))].sort()).toEqual(['none@dest.test', 'shared@dest.test']);
    expect([...(await store.suppressedAmong('acme', addresses, T0))]).toEqual(['acme@dest.test']);
    expect([...(await store.suppressedAmong('beta', addresses, T0))]).toEqual(['shared@dest.test']);
    expect(await store.suppressedAmong('gamma', addresses, T0)).toEqual(new Set());
    expect(await store.getSuppression(null, 'shared@dest.test', T0)).toMatchObject({ tenant: '', reason: 'manual' });
    expect(await store.getSuppression('beta', 'shared@dest.test', T0)).toMatchObject({ tenant: 'beta', reason: 'complaint' });

    expect(await store.deleteSuppression(null, 'SHARED@dest.test')).toBe(true);
    expect(await store.deleteSuppression(null, 'shared@dest.test')).toBe(false);
    expect(await store.getSuppression('beta', 'shared@dest.test', T0)).not.toBeNull();
  });

  it('lets the newer entry replace reason, source and expiry, never weakening one, and an older one change nothing', async () => {
    const store = ctx.store();
    await store.addSuppressions([entry({ reason: 'hard-bounce', createdAt: T0, expiresAt: T0 + 500 })]);
    const newer = entry({ address: 'USER@dest.test', reason: 'unsubscribe', source: { kind: 'feedback', messageId: 'm-2', report: 'list-unsubscribe' }, createdAt: T0 + 10, expiresAt: T0 + 1000 });
    expect(await store.addSuppressions([newer])).toBe(1);
    expect(await store.getSuppression('acme', 'user@dest.test', T0)).toMatchObject({ address: 'USER@dest.test', reason: 'unsubscribe', source: newer.source, createdAt: T0 + 10, expiresAt: T0 + 1000 });
    // An entry that would lapse sooner does not replace it, however new.
    expect(await store.addSuppressions([entry({ reason: 'manual', createdAt: T0 + 11, expiresAt: T0 + 20 })])).toBe(0);
    expect(await store.addSuppressions([entry({ reason: 'unsubscribe', createdAt: T0 + 12, expiresAt: null })])).toBe(1);
    // Nor one that lapses at all an entry for good (a complaint cannot be made to expire by adding).
    expect(await store.addSuppressions([entry({ reason: 'manual', createdAt: T0 + 13, expiresAt: T0 + 1_000_000 })])).toBe(0);
    expect(await store.getSuppression('acme', 'user@dest.test', T0)).toMatchObject({ reason: 'unsubscribe', createdAt: T0 + 12, expiresAt: null });

    expect(await store.addSuppressions([entry({ reason: 'manual', createdAt: T0 + 5 })])).toBe(0);
    expect(await store.getSuppression('acme', 'user@dest.test', T0)).toMatchObject({ reason: 'unsubscribe', createdAt: T0 + 12 });

    // In one call: the newest of the repeats, the later one on a tie.
    const written = await store.addSuppressions([
      entry({ reason: 'complaint', createdAt: T0 + 30 }),
      entry({ reason: 'manual', createdAt: T0 + 20 }),
      entry({ reason: 'hard-bounce', createdAt: T0 + 30, source: null }),
    ]);
    expect(written).toBe(1);
    expect(await store.getSuppression('acme', 'user@dest.test', T0)).toMatchObject({ reason: 'hard-bounce', source: null, createdAt: T0 + 30, expiresAt: null });
    expect(await store.listSuppressions(ALL, null, 10)).toHaveLength(1);
  });

  it('keeps an entry for good as it is when asked (keepPermanent), and writes the events only with an entry, once for two calls at once', async () => {
    const store = ctx.store();
    await store.createWebhook({ id: 'wh_unsub', tenant: 'acme', url: 'https://hooks.example/u', eventTypes: ['recipient.unsubscribed'], description: null, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: T0 });
    const unsubscribe = (at: number, address = 'user@dest.test') =>
      store.addSuppressions([entry({ address, reason: 'unsubscribe', createdAt: at })], [{ type: 'recipient.unsubscribed', tenant: 'acme', messageId: null, recipient: address, at, egressIp: null, data: { channel: 'https' } }], { keepPermanent: true });
    const events = async () => (await store.listWebhookDeliveries('wh_unsub', { state: null, after: null, limit: 10 })).map((d) => d.event.recipient);

    // Two at once: one entry, one event.
    expect((await Promise.all([unsubscribe(T0 + 1), unsubscribe(T0 + 2)])).sort()).toEqual([0, 1]);
    expect(await events()).toEqual(['user@dest.test']);
    // A complaint stays a complaint.
    await store.addSuppressions([entry({ address: 'angry@dest.test', reason: 'complaint', createdAt: T0 })]);
    expect(await unsubscribe(T0 + 3, 'angry@dest.test')).toBe(0);
    expect(await store.getSuppression('acme', 'angry@dest.test', T0 + 3)).toMatchObject({ reason: 'complaint', createdAt: T0 });
    // An entry that would lapse gives way, with its event.
    await store.addSuppressions([entry({ address: 'paused@dest.test', reason: 'manual', createdAt: T0, expiresAt: T0 + DAY_MS })]);
    expect(await unsubscribe(T0 + 4, 'paused@dest.test')).toBe(1);
    expect(await store.getSuppression('acme', 'paused@dest.test', T0 + 4)).toMatchObject({ reason: 'unsubscribe', expiresAt: null });
    expect((await events()).sort()).toEqual(['paused@dest.test', 'user@dest.test']);
  });

  it('stops applying an entry when it expires, and purges it then', async () => {
    const store = ctx.store();
    await store.addSuppressions([
      entry({ address: 'brief@dest.test', expiresAt: T0 + 1000 }),
      entry({ address: 'later@dest.test', expiresAt: T0 + 5000 }),
      entry({ address: 'always@dest.test', expiresAt: null }),
    ]);
    const addresses = ['brief@dest.test', 'later@dest.test', 'always@dest.test'];
    expect((await store.suppressedAmong('acme', addresses, T0 + 999)).size).toBe(3);
    expect([...(await store.suppressedAmong('acme', addresses, T0 + 1000))].sort()).toEqual(['always@dest.test', 'later@dest.test']);
    expect(await store.getSuppression('acme', 'brief@dest.test', T0 + 1000)).toBeNull();
    expect(await store.getSuppression('acme', 'brief@dest.test', T0 + 999)).not.toBeNull();
    // Listed while stored, unless the listing asks for the entries in force.
    expect(await store.listSuppressions(ALL, null, 10)).toHaveLength(3);
    expect((await store.listSuppressions({ ...ALL, now: T0 + 1000 }, null, 10)).map((e) => e.address).sort()).toEqual(['always@dest.test', 'later@dest.test']);

    expect(await store.purgeExpiredSuppressions(T0 + 999)).toBe(0);
    expect(await store.purgeExpiredSuppressions(T0 + 1000)).toBe(1);
    expect((await store.listSuppressions(ALL, null, 10)).map((e) => e.address).sort()).toEqual(['always@dest.test', 'later@dest.test']);
    // An expired entry is replaced by a new one like any other.
    await store.addSuppressions([entry({ address: 'later@dest.test', createdAt: T0 + 6000, expiresAt: null })]);
    expect(await store.purgeExpiredSuppressions(T0 + 10_000)).toBe(0);
    expect(await store.getSuppression('acme', 'later@dest.test', T0 + 10_000)).toMatchObject({ expiresAt: null });
  });

  it('adds 100,000 entries in one call and finds them by primary key', async () => {
    const store = ctx.store();
    const entries = Array.from({ length: 100_000 }, (_, i) => entry({ address: `bulk-${i}@dest${i % 97}.test`, createdAt: T0 + (i % 1000), reason: i % 2 ? 'hard-bounce' : 'manual' }));
    expect(await store.addSuppressions(entries)).toBe(100_000);
    const probe = ['bulk-0@dest0.test', 'BULK-99999@DEST89.TEST', 'bulk-100000@dest0.test', 'bulk-54321@dest2.test'];
    expect([...(await store.suppressedAmong('acme', probe, T0))].sort()).toEqual(['BULK-99999@DEST89.TEST', 'bulk-0@dest0.test']);
    expect(await store.suppressedAmong('other', probe, T0)).toEqual(new Set());
    const page = await store.listSuppressions({ ...ALL, tenant: 'acme', reason: 'manual' }, null, 1000);
    expect(page).toHaveLength(1000);
    expect(page.every((e) => e.reason === 'manual')).toBe(true);
    expect(page[0]!.createdAt).toBe(T0 + 998);
    expect(page.every((e, i) => i === 0 || e.createdAt <= page[i - 1]!.createdAt)).toBe(true);
    // Adding them all again with the same times replaces each (the newer-or-equal wins).
    expect(await store.addSuppressions(entries.slice(0, 10_000))).toBe(10_000);
  });

  it('pages by tenant, newest first, with filters, each entry once', async () => {
    const store = ctx.store();
    const tenants = ['acme', 'beta', null] as const;
    await store.addSuppressions(
      Array.from({ length: 60 }, (_, i) =>
        entry({ tenant: tenants[i % 3]!, address: `p${i}@dest.test`, createdAt: T0 + Math.floor(i / 6) * 10, reason: i % 4 === 0 ? 'complaint' : 'manual' }),
      ),
    );
    const every = (await allPages(store, ALL, 7)).flat();
    expect(every).toHaveLength(60);
    expect(new Set(every.map((e) => `${e.tenant}/${e.address}`)).size).toBe(60);
    // Tenants in descending byte order ('' last), newest first within each.
    expect([...new Set(every.map((e) => e.tenant))]).toEqual(['beta', 'acme', '']);
    for (let i = 1; i < every.length; i++) {
      const [a, b] = [every[i - 1]!, every[i]!];
      if (a.tenant === b.tenant) expect(a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.addressHash > b.addressHash)).toBe(true);
    }

    const acme = (await allPages(store, { ...ALL, tenant: 'acme' }, 3)).flat();
    expect(acme).toHaveLength(20);
    expect(acme.every((e) => e.tenant === 'acme')).toBe(true);
    const none = (await allPages(store, { ...ALL, tenant: '' }, 100)).flat();
    expect(none).toHaveLength(20);

    const windowed = (await allPages(store, { ...ALL, since: T0 + 20, until: T0 + 50 }, 4)).flat();
    expect(windowed).toHaveLength(18);
    expect(windowed.every((e) => e.createdAt >= T0 + 20 && e.createdAt < T0 + 50)).toBe(true);
    const acmeWindow = (await allPages(store, { ...ALL, tenant: 'acme', since: T0 + 20, until: T0 + 50 }, 4)).flat();
    expect(acmeWindow).toHaveLength(6);

    const complaints = (await allPages(store, { ...ALL, reason: 'complaint' }, 2)).flat();
    expect(complaints.map((e) => e.address).sort()).toEqual(Array.from({ length: 15 }, (_, k) => `p${k * 4}@dest.test`).sort());

    expect((await store.listSuppressions({ ...ALL, address: 'P5@DEST.TEST' }, null, 10)).map((e) => [e.tenant, e.address])).toEqual([['', 'p5@dest.test']]);
    expect(await store.listSuppressions({ ...ALL, address: 'p5@dest.test', tenant: 'acme' }, null, 10)).toEqual([]);

    // A cursor of another tenant's listing: one above starts this tenant's, one below ends it.
    const betaLast = (await store.listSuppressions({ ...ALL, tenant: 'beta' }, null, 1))[0]!;
    const cursorOf = (e: SuppressionRecord) => ({ tenant: e.tenant, createdAt: e.createdAt, addressHash: e.addressHash });
    expect(await store.listSuppressions({ ...ALL, tenant: 'acme' }, cursorOf(betaLast), 100)).toHaveLength(20);
    expect(await store.listSuppressions({ ...ALL, tenant: 'acme' }, cursorOf(none[0]!), 100)).toEqual([]);
  });

  it('refuses an entry no backend could store, writing nothing of the call', async () => {
    const store = ctx.store();
    const refused = [
      entry({ tenant: 'not a tenant' }),
      entry({ address: '' }),
      entry({ address: 'line\r\nbreak@dest.test' }),
      entry({ address: `${'x'.repeat(320)}@dest.test` }),
      entry({ reason: 'bored' as NewSuppression['reason'] }),
      entry({ createdAt: 1.5 }),
      entry({ source: { kind: 'api', actor: 'x'.repeat(5000) } }),
    ];
    for (const bad of refused) await expect(store.addSuppressions([entry({ address: 'fine@dest.test' }), bad])).rejects.toThrow(DataRefusedError);
    expect(await store.listSuppressions(ALL, null, 10)).toEqual([]);
    await expect(store.suppressedAmong('not a tenant', ['a@b.test'], T0)).rejects.toThrow(DataRefusedError);
  });

  it('keys addresses alike in every store opened on the database', async () => {
    await ctx.store().addSuppressions([entry({ address: 'shared-key@dest.test' })]);
    const other = await ctx.open();
    expect([...(await other.suppressedAmong('acme', ['Shared-Key@dest.test'], T0))]).toEqual(['Shared-Key@dest.test']);
    const [mine] = await ctx.store().listSuppressions(ALL, null, 1);
    const [theirs] = await other.listSuppressions(ALL, null, 1);
    expect(theirs!.addressHash).toBe(mine!.addressHash);
  });

  it("reads an address's final results for a tenant, newest first, leaving out those never tried", async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const result = (disposition: 'delivered' | 'permanent', bounceClass: DeliveryOutcome['bounceClass'], enhanced: string): DeliveryOutcome => ({
      disposition, code: disposition === 'delivered' ? 250 : 550, enhanced, response: `${enhanced} reply`, stage: 'rcpt', bounceClass, remoteHost: 'mx.dest.test', egressIp: '127.0.0.2',
    });
    // One message at a time: enqueued, claimed and given its result a second apart.
    const send = async (id: string, recipient: string, tenant: string | null, outcome: DeliveryOutcome) => {
      clock.advance(1000);
      await store.enqueue([newMessage(id, clock.now(), { recipients: [recipient, 'bystander@dest.test'], tenant })]);
      const claimed = await store.claimDue({ now: clock.now(), limit: 10, owner: 'node-a', leaseMs: 60_000 });
      const row = claimed.find((c) => c.messageId === id && c.recipient === recipient)!;
      const others = claimed.filter((c) => c !== row);
      await store.recordAttempts([
        { recipientId: row.recipientId, token: row.token, outcome, newState: outcome.disposition === 'delivered' ? 'delivered' : 'bounced', countsAsAttempt: true },
        ...others.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: result('delivered', 'none', '2.0.0'), newState: 'delivered' as const, countsAsAttempt: true })),
      ]);
    };
    const full = result('permanent', 'mailbox-full', '5.2.2');
    await send('r1', 'box@dest.test', 'acme', result('delivered', 'none', '2.0.0'));
    await send('r2', 'Box@Dest.test', 'acme', full);
    await send('r3', 'box@dest.test', 'beta', result('permanent', 'unknown-user', '5.1.1'));
    await send('r4', 'box@dest.test', 'acme', { ...full, bounceClass: 'cancelled', enhanced: '5.0.0' });
    await send('r5', 'BOX@dest.test', 'acme', full);
    // Still queued: not a result yet.
    clock.advance(1000);
    await store.enqueue([newMessage('r6', clock.now(), { recipients: ['box@dest.test'], tenant: 'acme' })]);

    const acme = await store.finalResultsOf('acme', 'box@DEST.test', 10);
    expect(acme.map((o) => [o.disposition, o.bounceClass])).toEqual([['permanent', 'mailbox-full'], ['permanent', 'mailbox-full'], ['delivered', 'none']]);
    expect(await store.finalResultsOf('acme', 'box@dest.test', 2)).toEqual([full, full]);
    expect((await store.finalResultsOf('beta', 'box@dest.test', 10)).map((o) => o.enhanced)).toEqual(['5.1.1']);
    expect(await store.finalResultsOf(null, 'box@dest.test', 10)).toEqual([]);
    expect(await store.finalResultsOf('acme', 'nobody@dest.test', 10)).toEqual([]);
  });

  it('stores the recipients a message suppresses bounced at once, with their event, never claimed', async () => {
    const store = ctx.store();
    const outcome: DeliveryOutcome = {
      disposition: 'permanent', code: null, enhanced: '5.7.1', response: 'recipient suppressed (hard-bounce)', stage: 'queue', bounceClass: 'suppressed', remoteHost: null, egressIp: null,
    };
    const m = newMessage('drop-1', T0, { recipients: ['kept@dest.test', 'Gone@dest.test'], suppressed: [{ recipient: 'Gone@dest.test', outcome }] });
    await store.enqueue([m]);
    const rows = await store.listRecipients('drop-1');
    expect(rows.map((r) => [r.recipient, r.state, r.nextAttemptAt, r.lastOutcome])).toEqual([
      ['kept@dest.test', 'queued', T0, null],
      ['Gone@dest.test', 'bounced', null, outcome],
    ]);
    expect(await store.listEvents('drop-1')).toEqual([{ recipientId: rows[1]!.recipientId, messageId: 'drop-1', attempt: 0, at: T0, outcome }]);
    const claimed = await store.claimDue({ now: T0 + 1, limit: 10, owner: 'node-a', leaseMs: 60_000 });
    expect(claimed.map((c) => c.recipient)).toEqual(['kept@dest.test']);
    expect(await store.countByState()).toMatchObject({ delivering: 1, bounced: 1 });

    await expect(store.enqueue([newMessage('drop-2', T0, { suppressed: [{ recipient: 'stranger@dest.test', outcome }] })])).rejects.toThrow(DataRefusedError);
  });
}
