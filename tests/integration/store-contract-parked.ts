import { expect, it } from 'vitest';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { QueuePause, QueueScope } from '../../src/storage/queue-control.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * Parked mail (QueueControl.parkPaused, releaseParked) in the store contract: the queued rows of
 * a paused domain, pool or tenant leave the due order with their own due time kept, and get it
 * back once no pause holds them. Called from runStoreContract, so every backend acts on real rows,
 * and a second store opened on the same database sees what the first did (another node).
 */

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Long enough that no lease of these tests runs out. */
const LEASE = 24 * 60 * 60_000;
const OWNER = 'node-a';

const deferred: DeliveryOutcome = { disposition: 'transient', code: 451, enhanced: '4.3.0', response: '451 later', stage: 'rcpt', bounceClass: 'other', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' };

function pause(scope: QueueScope, until: number | null = null): QueuePause {
  return { scope, reason: 'provider incident', by: 'night-shift', createdAt: T0, until };
}

/** Each recipient of `messages` as [address, state, due time] (the due time GET of a message shows). */
async function dueTimes(store: Store, messages: NewMessage[]): Promise<[string, string, number | null][]> {
  const rows = (await Promise.all(messages.map((m) => store.listRecipients(m.id)))).flat();
  return rows.map((r) => [r.recipient, r.state, r.nextAttemptAt]);
}

/** Calls a bulk store move with `limit` until it moves fewer; returns each call's count. */
async function chunks(move: () => Promise<number>, limit: number): Promise<number[]> {
  const counts: number[] = [];
  do counts.push(await move());
  while (counts.at(-1) === limit);
  return counts;
}

/** Releases every parked row no pause holds at `now`, `limit` read per call; returns each call's count released. */
async function releaseAll(store: Store, now: number, limit: number): Promise<number[]> {
  const counts: number[] = [];
  let after: number | null = 0;
  while (after !== null) {
    const chunk = await store.releaseParked(now, limit, after);
    counts.push(chunk.released);
    after = chunk.next;
  }
  return counts;
}

async function claim(store: Store, now: number): Promise<string[]> {
  return (await store.claimDue({ now, limit: 100, owner: OWNER, leaseMs: LEASE })).map((c) => c.recipient);
}

export function registerParkedContract(ctx: { store: () => Store; open: () => Promise<Store> }): void {
  it('parks the queued rows of a paused domain in chunks, out of every claim and the next due time, and releases them at their own time', async () => {
    const store = ctx.store();
    const now = T0 + 100;
    const old = newMessage('park-old', T0 - HOUR, { recipients: ['a@paused.test', 'b@open.test'] });
    const recent = newMessage('park-recent', T0 - MINUTE, { recipients: ['c@paused.test', 'd@paused.test'] });
    const soon = newMessage('park-soon', T0, { recipients: ['e@paused.test'], dueAt: T0 + 30 * MINUTE });
    const later = newMessage('park-later', T0, { recipients: ['f@paused.test'], dueAt: T0 + 3 * HOUR });
    const inFlight = newMessage('park-in-flight', T0 - 2 * HOUR, { recipients: ['g@paused.test'] });
    await store.enqueue([old, recent, soon, later, inFlight]);
    // g@ is being delivered when the pause comes: its attempt finishes, and its result applies.
    const [delivering] = await store.claimQueued({ kind: 'message', messageId: inFlight.id }, { now: T0, limit: 1, owner: 'node-b', leaseMs: LEASE });

    // No pause in force: nothing is parked.
    const scope = { kind: 'domain', domain: 'paused.test' } as const;
    expect(await store.parkPaused(scope, T0 + HOUR, now, 10)).toBe(0);
    await store.setPause(pause(scope), T0);
    // The rows due before the bound, two per transaction: f@ is due after it.
    expect(await chunks(() => store.parkPaused(scope, T0 + HOUR, now, 2), 2)).toEqual([2, 2, 0]);
    expect(await store.parkPaused(scope, T0 + HOUR, now, 10)).toBe(0);

    // Claims, even those that filter no pause, and the next due time pass them by; they stay queued, each showing its own due time.
    expect(await store.nextDueAt()).toBe(T0 - HOUR);
    expect(await claim(store, now)).toEqual(['b@open.test']);
    expect(await store.nextDueAt()).toBe(T0 + 3 * HOUR);
    expect(await store.countByState()).toEqual({ queued: 5, delivering: 2, delivered: 0, bounced: 0 });
    expect(await dueTimes(store, [old, recent, soon])).toEqual([
      ['a@paused.test', 'queued', T0 - HOUR],
      ['b@open.test', 'delivering', T0 - HOUR],
      ['c@paused.test', 'queued', T0 - MINUTE],
      ['d@paused.test', 'queued', T0 - MINUTE],
      ['e@paused.test', 'queued', T0 + 30 * MINUTE],
    ]);
    // g@'s attempt is deferred: the next sweep parks it as its retry nears.
    await store.recordAttempts([{ recipientId: delivering!.recipientId, token: delivering!.token, outcome: deferred, newState: 'queued', nextAttemptAt: now + 5 * MINUTE, countsAsAttempt: true }]);
    expect(await store.parkPaused(scope, now + 5 * MINUTE + 1, now, 10)).toBe(1);

    // Still paused: a release leaves them, whoever reads.
    const other = await ctx.open();
    expect(await releaseAll(other, now, 10)).toEqual([0]);
    expect(await claim(other, now + HOUR)).toEqual([]);

    // Resumed: released in chunks read by id, each due at its own time again, the oldest claimed first.
    expect(await store.deletePause(scope, now)).not.toBeNull();
    expect(await releaseAll(other, now, 3)).toEqual([3, 2]);
    expect(await dueTimes(store, [old, recent, soon, later, inFlight])).toEqual([
      ['a@paused.test', 'queued', T0 - HOUR],
      ['b@open.test', 'delivering', T0 - HOUR],
      ['c@paused.test', 'queued', T0 - MINUTE],
      ['d@paused.test', 'queued', T0 - MINUTE],
      ['e@paused.test', 'queued', T0 + 30 * MINUTE],
      ['f@paused.test', 'queued', T0 + 3 * HOUR],
      ['g@paused.test', 'queued', now + 5 * MINUTE],
    ]);
    expect(await store.nextDueAt()).toBe(T0 - HOUR);
    expect(await claim(store, now)).toEqual(['a@paused.test', 'c@paused.test', 'd@paused.test']);
    expect(await claim(store, T0 + 30 * MINUTE)).toEqual(['g@paused.test', 'e@paused.test']);
  });

  it("parks a pool's and a tenant's rows, never mail of no tenant, and keeps a row parked while another pause holds it", async () => {
    const store = ctx.store();
    const now = T0 + 100;
    const bulk = newMessage('park-bulk', T0, { recipients: ['a@x.test'], pool: 'bulk' });
    const acmeBulk = newMessage('park-acme-bulk', T0, { recipients: ['b@x.test'], pool: 'bulk', tenant: 'acme' });
    const acme = newMessage('park-acme', T0, { recipients: ['c@x.test'], tenant: 'acme' });
    const noTenant = newMessage('park-no-tenant', T0, { recipients: ['d@x.test'] });
    const beta = newMessage('park-beta', T0, { recipients: ['e@x.test'], tenant: 'beta' });
    await store.enqueue([bulk, acmeBulk, acme, noTenant, beta]);
    const pool = { kind: 'pool', pool: 'bulk' } as const;
    const tenant = { kind: 'tenant', tenant: 'acme' } as const;
    // The tenant's pause ends on its own at T0 + 1h.
    await store.setPause(pause(pool), T0);
    await store.setPause(pause(tenant, T0 + HOUR), T0);
    expect(await store.parkPaused(pool, now + MINUTE, now, 10)).toBe(2);
    expect(await store.parkPaused(tenant, now + MINUTE, now, 10)).toBe(1);
    expect(await claim(store, now)).toEqual(['d@x.test', 'e@x.test']);

    // The pool resumed: its row of no tenant goes, acme's stays parked for the tenant's pause. One
    // row a call: a backend may stop at the rows it read (SQLite) or walk past held ones.
    await store.deletePause(pool, now);
    expect((await releaseAll(store, now, 1)).reduce((a, b) => a + b)).toBe(1);
    expect(await claim(store, now)).toEqual(['a@x.test']);
    // The tenant's pause ran out: nothing holds the rest.
    expect(await releaseAll(store, T0 + HOUR - 1, 10)).toEqual([0]);
    expect(await releaseAll(store, T0 + HOUR, 10)).toEqual([2]);
    expect(await claim(store, T0 + HOUR)).toEqual(['b@x.test', 'c@x.test']);

    await expect(store.parkPaused({ kind: 'egress-ip', ip: '192.0.2.7' }, now, now, 10)).rejects.toThrow(/egress IP/);
    await expect(store.parkPaused(pool, 2 ** 53, now, 10)).rejects.toThrow(/before/);
    await expect(store.releaseParked(now, 10, -1)).rejects.toThrow(/after/);
  });

  it('parks the rows accepted or deferred into a paused scope after its first park at a later sweep, and one in delivery only once it waits again', async () => {
    const store = ctx.store();
    const scope = { kind: 'domain', domain: 'late.test' } as const;
    await store.setPause(pause(scope), T0);
    const first = newMessage('late-first', T0, { recipients: ['a@late.test'] });
    await store.enqueue([first]);
    // Claimed by a node that had not read the pause yet.
    const [inFlight] = await store.claimDue({ now: T0, limit: 1, owner: 'node-b', leaseMs: LEASE });
    expect(await store.parkPaused(scope, T0 + MINUTE, T0, 10)).toBe(0);

    // Accepted after the pause (on another node), and the attempt in flight deferred.
    const other = await ctx.open();
    const late = newMessage('late-accepted', T0 + 10, { recipients: ['b@late.test', 'c@open.test'] });
    await other.enqueue([late]);
    await store.recordAttempts([{ recipientId: inFlight!.recipientId, token: inFlight!.token, outcome: deferred, newState: 'queued', nextAttemptAt: T0 + 10 * MINUTE, countsAsAttempt: true }]);

    // The next sweep looks a minute ahead: the new row now, the deferred one once its retry nears.
    expect(await other.parkPaused(scope, T0 + 20 + MINUTE, T0 + 20, 10)).toBe(1);
    expect(await store.nextDueAt()).toBe(T0 + 10);
    expect(await store.parkPaused(scope, T0 + 10 * MINUTE, T0 + 9 * MINUTE, 10)).toBe(0);
    expect(await store.parkPaused(scope, T0 + 10 * MINUTE + 1, T0 + 9 * MINUTE, 10)).toBe(1);
    expect(await claim(store, T0 + HOUR)).toEqual(['c@open.test']);
    expect(await dueTimes(store, [first, late])).toEqual([
      ['a@late.test', 'queued', T0 + 10 * MINUTE],
      ['b@late.test', 'queued', T0 + 10],
      ['c@open.test', 'delivering', T0 + 10],
    ]);
  });

  it('moves the own due time of parked rows on a retry, never before a send time, and releases scheduled mail at its send time', async () => {
    const store = ctx.store();
    const now = T0 + 100;
    const scope = { kind: 'domain', domain: 'sched.test' } as const;
    // Deferred after an attempt (retry in 2h), scheduled for 30 minutes on, and scheduled for 1h on.
    const tried = newMessage('sched-tried', T0, { recipients: ['a@sched.test'] });
    const soon = newMessage('sched-soon', T0, { recipients: ['b@sched.test'], dueAt: T0 + 30 * MINUTE });
    const hour = newMessage('sched-hour', T0, { recipients: ['c@sched.test'], dueAt: T0 + HOUR });
    await store.enqueue([tried]);
    const [claimed] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
    await store.recordAttempts([{ recipientId: claimed!.recipientId, token: claimed!.token, outcome: deferred, newState: 'queued', nextAttemptAt: T0 + 2 * HOUR, countsAsAttempt: true }]);
    await store.enqueue([soon, hour]);
    await store.setPause(pause(scope), T0);
    expect(await store.parkPaused(scope, T0 + 3 * HOUR, now, 10)).toBe(3);

    // A retry of the paused domain: the deferred row is due now once released, the scheduled ones keep their send times; all stay parked.
    expect(await store.retryQueued(scope, now, 10)).toBe(1);
    expect(await store.retryQueued(scope, now, 10)).toBe(0);
    expect(await claim(store, T0 + 3 * HOUR)).toEqual([]);
    expect(await dueTimes(store, [tried, soon, hour])).toEqual([
      ['a@sched.test', 'queued', now],
      ['b@sched.test', 'queued', T0 + 30 * MINUTE],
      ['c@sched.test', 'queued', T0 + HOUR],
    ]);

    await store.deletePause(scope, now);
    expect(await releaseAll(store, now + 1, 10)).toEqual([3]);
    expect(await claim(store, now + 1)).toEqual(['a@sched.test']);
    expect(await claim(store, T0 + 30 * MINUTE)).toEqual(['b@sched.test']);
    expect(await claim(store, T0 + HOUR)).toEqual(['c@sched.test']);
  });

  it('lets a cancellation claim parked rows at their own due time: given back, they wait unparked; recorded, they are final', async () => {
    const store = ctx.store();
    const now = T0 + 100;
    const scope = { kind: 'domain', domain: 'gone.test' } as const;
    const m = newMessage('gone', T0 - HOUR, { recipients: ['a@gone.test', 'b@gone.test'] });
    await store.enqueue([m]);
    await store.setPause(pause(scope), T0);
    expect(await store.parkPaused(scope, now, now, 10)).toBe(2);

    const [a, b] = await store.claimQueued(scope, { now, limit: 10, owner: OWNER, leaseMs: LEASE });
    expect([a?.dueAt, b?.dueAt]).toEqual([T0 - HOUR, T0 - HOUR]);
    // a@ given back unrecorded: queued at its own time, not parked (the next park takes it again).
    await store.release([a!], a!.dueAt);
    const cancelled: DeliveryOutcome = { disposition: 'permanent', code: null, enhanced: '5.0.0', response: 'cancelled by an operator', stage: 'queue', bounceClass: 'cancelled', remoteHost: null, egressIp: null };
    expect(await store.recordAttempts([{ recipientId: b!.recipientId, token: b!.token, outcome: cancelled, newState: 'bounced', countsAsAttempt: false }])).toEqual([b!.recipientId]);
    expect(await dueTimes(store, [m])).toEqual([
      ['a@gone.test', 'queued', T0 - HOUR],
      ['b@gone.test', 'bounced', null],
    ]);
    expect(await store.nextDueAt()).toBe(T0 - HOUR);
    expect(await store.parkPaused(scope, now, now, 10)).toBe(1);
    await store.deletePause(scope, now);
    expect(await releaseAll(store, now, 10)).toEqual([1]);
    expect(await claim(store, now)).toEqual(['a@gone.test']);
  });
}
