import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import { buildDsn } from '../../src/engine/dsn.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { MessageQuery, NewMessage, Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * The control API's reads (MessageReads) in the store contract: called from runStoreContract,
 * so every backend answers them against real data.
 */

const T0 = 1_700_000_000_000;


const ANY: MessageQuery = { state: null, sender: null, recipient: null, domain: null, pool: null, tag: null, since: null, until: null, tenant: null, after: null, limit: 100 };

function failure(disposition: 'transient' | 'permanent' | 'throttled', egressIp: string | null): DeliveryOutcome {
  const code = disposition === 'permanent' ? 550 : disposition === 'transient' ? 451 : null;
  return { disposition, code, enhanced: code ? `${String(code)[0]}.0.0` : null, response: 'no', stage: 'rcpt', bounceClass: 'other', remoteHost: 'mx.dest.test', egressIp };
}

/** Claims every due row and records `result(recipient)` for each. */
async function attemptAll(store: Store, now: number, result: (recipient: string) => { outcome: DeliveryOutcome; state: 'queued' | 'bounced' } | null): Promise<void> {
  const claimed = await store.claimDue({ now, limit: 1000, owner: 'node-a', leaseMs: 60_000 });
  const results = claimed.flatMap((c) => {
    const r = result(c.recipient);
    if (!r) return [];
    return [{ recipientId: c.recipientId, token: c.token, outcome: r.outcome, newState: r.state, nextAttemptAt: r.state === 'queued' ? now + 600_000 : undefined, countsAsAttempt: r.outcome.disposition !== 'throttled' }];
  });
  await store.recordAttempts(results);
  await store.release(claimed.filter((c) => !result(c.recipient)), now);
}

export function registerReadContract(ctx: { store: () => Store; clock: () => ManualClock }): void {
  it('reads a message without its body, and null for an unknown id', async () => {
    const store = ctx.store();
    const m = newMessage('info-1', T0, { pool: 'bulk', submitter: null, source: 'http' });
    await store.enqueue([m]);
    expect(await store.getMessageInfo('info-1')).toEqual({
      id: 'info-1', sender: 'app@sender.test', messageIdHeader: '<info-1@sender.test>', size: m.body.length,
      submitter: null, source: 'http', clientAddress: '192.0.2.7', createdAt: T0, pool: 'bulk', tenant: null, sendAt: null, tags: [], metadata: {},
    });
    await store.enqueue([newMessage('info-2', T0, { tenant: 'acme' })]);
    expect((await store.getMessageInfo('info-2'))!.tenant).toBe('acme');
    expect(await store.getMessageInfo('nope')).toBeNull();
  });

  it('lists messages newest first with their recipient states, filtered and paged by cursor', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('a', T0, { recipients: ['x@one.test', 'y@two.test'] }),
      newMessage('b', T0 + 10, { sender: 'Other@Sender.test', pool: 'bulk' }),
      newMessage('c', T0 + 10, { recipients: ['Z@Two.test'] }),
      newMessage('d', T0 + 20),
    ]);
    await attemptAll(store, T0 + 30, (rcpt) => (rcpt === 'y@two.test' ? { outcome: failure('permanent', '127.0.0.2'), state: 'bounced' } : null));

    const all = await store.listMessages(ANY);
    expect(all.map((m) => m.id)).toEqual(['d', 'c', 'b', 'a']);
    expect(all[3]).toMatchObject({ id: 'a', pool: 'default', size: expect.any(Number), states: { queued: 1, delivering: 0, delivered: 0, bounced: 1 } });
    expect(all[0]!.states).toEqual({ queued: 1, delivering: 0, delivered: 0, bounced: 0 });

    // Pages of two: the cursor (createdAt, id) splits the two messages created at T0 + 10.
    const first = await store.listMessages({ ...ANY, limit: 2 });
    expect(first.map((m) => m.id)).toEqual(['d', 'c']);
    const second = await store.listMessages({ ...ANY, limit: 2, after: { createdAt: T0 + 10, id: 'c' } });
    expect(second.map((m) => m.id)).toEqual(['b', 'a']);
    expect(await store.listMessages({ ...ANY, after: { createdAt: T0, id: 'a' } })).toEqual([]);

    const ids = async (q: Partial<MessageQuery>) => (await store.listMessages({ ...ANY, ...q })).map((m) => m.id);
    expect(await ids({ state: 'bounced' })).toEqual(['a']);
    expect(await ids({ sender: 'other@sender.TEST' })).toEqual(['b']);
    expect(await ids({ recipient: 'z@two.test' })).toEqual(['c']);
    expect(await ids({ domain: 'TWO.test' })).toEqual(['c', 'a']);
    // One recipient matches every recipient filter: a's two.test recipient bounced, its queued one is at one.test.
    expect(await ids({ domain: 'two.test', state: 'queued' })).toEqual(['c']);
    expect(await ids({ pool: 'bulk' })).toEqual(['b']);
    expect(await ids({ tenant: 'acme' })).toEqual([]);
    expect(await ids({ since: T0 + 10, until: T0 + 20 })).toEqual(['c', 'b']);
    // `until` before the cursor's time takes over; a cursor older than `until` binds.
    expect(await ids({ until: T0 + 10, after: { createdAt: T0 + 20, id: 'd' } })).toEqual(['a']);
    expect(await ids({ until: T0 + 21, after: { createdAt: T0 + 10, id: 'c' } })).toEqual(['b', 'a']);
  });

  it("lists one tenant's messages, newest first, with the other filters and the cursor", async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('t1', T0, { tenant: 'acme' }),
      newMessage('t2', T0 + 10, { tenant: 'beta' }),
      newMessage('t3', T0 + 10, { tenant: 'acme', pool: 'bulk' }),
      newMessage('t4', T0 + 20),
      newMessage('t5', T0 + 30, { tenant: 'acme', recipients: ['q@three.test'] }),
    ]);
    const ids = async (q: Partial<MessageQuery>) => (await store.listMessages({ ...ANY, ...q })).map((m) => m.id);
    expect(await ids({ tenant: 'acme' })).toEqual(['t5', 't3', 't1']);
    expect((await store.listMessages({ ...ANY, tenant: 'acme', limit: 1 }))[0]).toMatchObject({ id: 't5', tenant: 'acme', states: { queued: 1, delivering: 0, delivered: 0, bounced: 0 } });
    expect(await ids({ tenant: 'acme', after: { createdAt: T0 + 30, id: 't5' }, limit: 1 })).toEqual(['t3']);
    expect(await ids({ tenant: 'acme', pool: 'bulk' })).toEqual(['t3']);
    expect(await ids({ tenant: 'acme', domain: 'three.test' })).toEqual(['t5']);
    expect(await ids({ tenant: 'acme', since: T0 + 5, until: T0 + 30 })).toEqual(['t3']);
    expect(await ids({ tenant: 'beta' })).toEqual(['t2']);
    expect(await ids({ tenant: 'nobody' })).toEqual([]);
  });

  it('finds the DSNs stored with a message\'s bounces, with the recipients they report', async () => {
    const store = ctx.store();
    const original = newMessage('orig-1', T0, { recipients: ['gone@dest.test', 'also@dest.test', 'fine@dest.test'] });
    await store.enqueue([original, newMessage('orig-2', T0)]);
    const claimed = await store.claimDue({ now: T0 + 100, limit: 10, owner: 'node-a', leaseMs: 60_000 });
    const bounced = claimed.filter((c) => c.messageId === 'orig-1' && c.recipient !== 'fine@dest.test');
    const outcome = failure('permanent', '127.0.0.2');
    const dsn = await buildDsn({
      reportingMta: 'mta.test',
      original: { ...original, createdAt: original.createdAt },
      failed: bounced.map((c) => ({ recipient: c.recipient, outcome })),
      now: T0 + 100,
      id: 'dsn-1',
    });
    ctx.clock().set(T0 + 150);
    await store.recordAttempts(
      bounced.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome, newState: 'bounced', countsAsAttempt: true })),
      [{ message: dsn, reports: bounced.map((c) => c.recipientId) }],
    );

    expect(await store.findDsns('orig-1', T0, T0 + 150)).toEqual([{ id: 'dsn-1', createdAt: T0 + 100, recipients: ['gone@dest.test', 'also@dest.test'] }]);
    // Outside the window, or for another message: none.
    expect(await store.findDsns('orig-1', T0 + 101, T0 + 200)).toEqual([]);
    expect(await store.findDsns('orig-2', T0, T0 + 200)).toEqual([]);
    expect(await store.findDsns('orig', T0, T0 + 200)).toEqual([]);
  });

  it('groups the deferred backlog by domain, pool and last egress IP, largest first, cut to the top', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('q1', T0, { recipients: ['a@big.test', 'b@big.test', 'c@small.test'], pool: 'bulk' }),
      newMessage('q2', T0 + 1000, { recipients: ['d@big.test', 'e@tiny.test'] }),
      // Never tried: new mail, not deferred.
      newMessage('q3', T0 + 2000, { recipients: ['f@big.test'], dueAt: T0 + 900_000 }),
    ]);
    const ipOf: Record<string, string | null> = { 'a@big.test': '127.0.0.2', 'b@big.test': '127.0.0.2', 'c@small.test': '127.0.0.3', 'd@big.test': '127.0.0.3' };
    await attemptAll(store, T0 + 5000, (rcpt) => ({ outcome: failure(rcpt === 'e@tiny.test' ? 'throttled' : 'transient', ipOf[rcpt] ?? null), state: 'queued' }));

    const backlog = await store.deferredBacklog(2);
    expect(backlog.count).toBe(5);
    expect(backlog.oldestCreatedAt).toBe(T0);
    expect(backlog.byDomain).toEqual({
      top: [
        { key: 'big.test', count: 3, oldestCreatedAt: T0 },
        { key: 'small.test', count: 1, oldestCreatedAt: T0 },
      ],
      groups: 3,
    });
    expect(backlog.byPool).toEqual({
      top: [
        { key: 'bulk', count: 3, oldestCreatedAt: T0 },
        { key: 'default', count: 2, oldestCreatedAt: T0 + 1000 },
      ],
      groups: 2,
    });
    expect(backlog.byEgressIp).toEqual({
      top: [
        { key: '127.0.0.2', count: 2, oldestCreatedAt: T0 },
        { key: '127.0.0.3', count: 2, oldestCreatedAt: T0 },
      ],
      groups: 3,
    });
    expect((await store.deferredBacklog(5)).byEgressIp.top.at(-1)).toEqual({ key: null, count: 1, oldestCreatedAt: T0 + 1000 });
  });

  it('reports an empty backlog', async () => {
    expect(await ctx.store().deferredBacklog(50)).toEqual({
      count: 0,
      oldestCreatedAt: null,
      byDomain: { top: [], groups: 0 },
      byPool: { top: [], groups: 0 },
      byEgressIp: { top: [], groups: 0 },
    });
  });
}
