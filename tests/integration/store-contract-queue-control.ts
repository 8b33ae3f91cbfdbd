import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { QueuePause } from '../../src/storage/queue-control.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';

/**
 * Queue control (QueueControl) in the store contract: pauses kept per scope, claims that leave
 * paused scopes (domains, pools, tenants) alone, and the bulk moves and claims of a selection's queued rows. Called from
 * runStoreContract, so every backend acts on real rows.
 */

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const LEASE = 60_000;
const OWNER = 'node-a';

let sequence = 0;

function message(recipients: string[], overrides: Partial<NewMessage> = {}): NewMessage {
  sequence += 1;
  const id = `qc-${sequence.toString().padStart(5, '0')}`;
  return {
    id,
    sender: 'app@sender.test',
    recipients,
    messageIdHeader: `<${id}@sender.test>`,
    body: Buffer.from(`Subject: ${id}\r\n\r\nbody\r\n`),
    submitter: null,
    source: 'smtp',
    clientAddress: null,
    createdAt: T0,
    dueAt: T0,
    pool: 'default',
    ...overrides,
  };
}

const deferred = (egressIp: string): DeliveryOutcome => ({ disposition: 'transient', code: 451, enhanced: '4.3.0', response: '451 later', stage: 'rcpt', bounceClass: 'other', remoteHost: 'mx.dest.test', egressIp });

function pause(overrides: Partial<QueuePause> = {}): QueuePause {
  return { scope: { kind: 'domain', domain: 'gmail.test' }, reason: 'provider incident', by: 'night-shift', createdAt: T0, until: null, ...overrides };
}

export function registerQueueControlContract(ctx: { store: () => Store; open: () => Promise<Store>; clock: () => ManualClock }): void {
  it('keeps one pause per scope: replaced, listed while in force, ended, purged once over, and kept across a reopen', async () => {
    const store = ctx.store();
    const domain = pause();
    expect(await store.setPause(domain, T0)).toBeNull();
    const pool = pause({ scope: { kind: 'pool', pool: 'bulk' }, createdAt: T0 + 1, until: T0 + HOUR });
    const ip = pause({ scope: { kind: 'egress-ip', ip: '2001:db8::7' }, createdAt: T0 + 2, until: T0 + 2 * HOUR, by: 'day-shift' });
    await store.setPause(pool, T0);
    await store.setPause(ip, T0);
    expect(await store.listPauses(T0)).toEqual([domain, pool, ip]);

    // Paused again: the new reason and end replace the old, which is returned.
    const longer = pause({ reason: 'still down', createdAt: T0 + 3, until: T0 + 5 * HOUR });
    expect(await store.setPause(longer, T0 + 3)).toEqual(domain);
    expect(await (await ctx.open()).listPauses(T0 + 3)).toEqual([pool, ip, longer]);

    // An ended pause is no longer in force: not listed, not returned as replaced or ended.
    expect(await store.listPauses(T0 + HOUR)).toEqual([ip, longer]);
    expect(await store.setPause({ ...pool, createdAt: T0 + HOUR + 1, until: T0 + 3 * HOUR }, T0 + HOUR + 1)).toBeNull();
    expect(await store.deletePause({ kind: 'egress-ip', ip: '2001:db8::7' }, T0 + 3 * HOUR)).toBeNull();

    expect(await store.deletePause({ kind: 'domain', domain: 'gmail.test' }, T0 + HOUR)).toEqual(longer);
    expect(await store.deletePause({ kind: 'domain', domain: 'gmail.test' }, T0 + HOUR)).toBeNull();
    expect(await store.listPauses(T0 + HOUR + 1)).toEqual([{ ...pool, createdAt: T0 + HOUR + 1, until: T0 + 3 * HOUR }]);

    await store.setPause(pause({ scope: { kind: 'pool', pool: 'old' }, until: T0 + 10 }), T0);
    // Both the pool's (ended at T0 + 3h) and this one.
    expect(await store.purgeEndedPauses(T0 + 3 * HOUR)).toBe(2);
    expect(await store.purgeEndedPauses(T0 + 3 * HOUR)).toBe(0);
    expect(await store.listPauses(T0)).toEqual([]);
  });

  it('leaves the rows of paused domains and pools alone when claiming, and in the next due time', async () => {
    const store = ctx.store();
    const paused = { domains: ['gmail.test'], pools: ['bulk'], tenants: [] };
    const gmail = message(['a@gmail.test', 'b@other.test'], { dueAt: T0 - 30 });
    const bulk = message(['c@other.test'], { pool: 'bulk', dueAt: T0 - 20 });
    const free = message(['d@other.test'], { dueAt: T0 - 10 });
    const later = message(['e@gmail.test', 'f@other.test'], { dueAt: T0 + 50 });
    await store.enqueue([gmail, bulk, free, later]);
    // A lease that runs out on a paused domain's row: it too stays where it is.
    const [expiring] = await store.claimQueued({ kind: 'message', messageId: later.id }, { now: T0, limit: 1, owner: 'node-dead', leaseMs: 10 });
    expect(expiring?.recipient).toBe('e@gmail.test');

    expect(await store.nextDueAt(paused)).toBe(T0 - 30);
    const claimed = await store.claimDue({ now: T0 + 20, limit: 10, owner: OWNER, leaseMs: LEASE, paused });
    expect(claimed.map((c) => c.recipient)).toEqual(['b@other.test', 'd@other.test']);
    expect(await store.nextDueAt(paused)).toBe(T0 + 50);
    expect(await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: { domains: ['gmail.test', 'gmail.test'], pools: ['bulk'], tenants: [] } })).toMatchObject([{ recipient: 'f@other.test' }]);
    // Only the leases of the rows claimed above are left to run out.
    expect(await store.nextDueAt(paused)).toBe(T0 + 20 + LEASE + 1);

    // Nothing paused: the same as no pauses at all.
    expect(await store.nextDueAt({ domains: [], pools: [], tenants: [] })).toBe(T0 - 30);
    const rest = await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: { domains: [], pools: [], tenants: [] } });
    expect(rest.map((c) => c.recipient)).toEqual(['a@gmail.test', 'c@other.test', 'e@gmail.test']);
  });

  it("leaves the rows of paused tenants alone when claiming, never mail of no tenant, alone or beside paused domains and pools", async () => {
    const store = ctx.store();
    const tenantPause = pause({ scope: { kind: 'tenant', tenant: 'acme' }, until: T0 + HOUR });
    expect(await store.setPause(tenantPause, T0)).toBeNull();
    expect(await store.listPauses(T0)).toEqual([tenantPause]);
    expect(await store.deletePause({ kind: 'tenant', tenant: 'acme' }, T0)).toEqual(tenantPause);

    const acme = message(['a@x.test'], { tenant: 'acme', dueAt: T0 - 50 });
    const noTenant = message(['b@gmail.test'], { dueAt: T0 - 40 });
    const betaBulk = message(['c@x.test'], { tenant: 'beta', pool: 'bulk', dueAt: T0 - 30 });
    const beta = message(['d@x.test'], { tenant: 'beta', dueAt: T0 - 20 });
    const free = message(['e@x.test'], { tenant: null, dueAt: T0 - 10 });
    const acmeLater = message(['f@x.test'], { tenant: 'acme', dueAt: T0 + 50 });
    await store.enqueue([acme, noTenant, betaBulk, beta, free, acmeLater]);

    // Every kind at once: each list is bound in its own place.
    const every = { domains: ['gmail.test'], pools: ['bulk'], tenants: ['acme', 'acme'] };
    expect(await store.nextDueAt(every)).toBe(T0 - 20);
    const first = await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: every });
    expect(first.map((c) => c.recipient)).toEqual(['d@x.test', 'e@x.test']);

    // Tenants alone (the lists before theirs are empty): mail of no tenant and of another tenant goes.
    const acmeOnly = { domains: [], pools: [], tenants: ['acme'] };
    expect(await store.nextDueAt(acmeOnly)).toBe(T0 - 40);
    const second = await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: acmeOnly });
    expect(second.map((c) => c.recipient)).toEqual(['b@gmail.test', 'c@x.test']);
    // Only the leases of the rows claimed above are left to run out.
    expect(await store.nextDueAt(acmeOnly)).toBe(T0 + 100 + LEASE + 1);
    expect(await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: { domains: [], pools: [], tenants: ['acme', 'beta'] } })).toEqual([]);

    const rest = await store.claimDue({ now: T0 + 100, limit: 10, owner: OWNER, leaseMs: LEASE, paused: { domains: [], pools: [], tenants: ['beta'] } });
    expect(rest.map((c) => c.recipient)).toEqual(['a@x.test', 'f@x.test']);
  });

  it('makes the queued rows of a domain, pool, egress IP or message due now in chunks, leaving rows in delivery alone', async () => {
    const store = ctx.store();
    const m1 = message(['a@slow.test', 'b@slow.test', 'c@fast.test']);
    const m2 = message(['d@slow.test'], { pool: 'bulk' });
    const m3 = message(['e@other.test', 'f@other.test'], { dueAt: T0 - 5 });
    await store.enqueue([m1, m2, m3]);
    // a@ to d@ wait for a later time without an attempt: held (a dead site's hold) for an hour.
    expect(await store.holdDomains(['slow.test', 'fast.test'], T0 + HOUR, 24 * HOUR, 10)).toBe(4);
    // e@ and f@ deferred after an attempt from .2 and .3, then b@ claimed (in delivery).
    const tried = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
    await store.recordAttempts(tried.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: deferred(c.recipient.startsWith('e') ? '127.0.0.2' : '127.0.0.3'), newState: 'queued', nextAttemptAt: T0 + 2 * HOUR, countsAsAttempt: true })));
    const [inFlight] = await store.claimQueued({ kind: 'domain', domain: 'slow.test' }, { now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
    expect(inFlight?.recipient).toBe('a@slow.test');

    const now = T0 + 100;
    const chunks: number[] = [];
    do chunks.push(await store.retryQueued({ kind: 'domain', domain: 'slow.test' }, now, 1));
    while (chunks.at(-1) === 1);
    expect(chunks).toEqual([1, 1, 0]);
    expect(await store.retryQueued({ kind: 'egress-ip', ip: '127.0.0.2' }, now, 10)).toBe(1);
    expect(await store.retryQueued({ kind: 'pool', pool: 'bulk' }, now, 10)).toBe(0);
    expect(await store.retryQueued({ kind: 'message', messageId: m1.id }, now, 10)).toBe(1);
    expect(await store.retryQueued({ kind: 'pool', pool: 'default' }, now, 0)).toBe(0);

    const rows = (await Promise.all([m1, m2, m3].map((m) => store.listRecipients(m.id)))).flat();
    expect(rows.map((r) => [r.recipient, r.state, r.nextAttemptAt, r.attempts])).toEqual([
      ['a@slow.test', 'delivering', T0 + HOUR, 0],
      ['b@slow.test', 'queued', now, 0],
      ['c@fast.test', 'queued', now, 0],
      ['d@slow.test', 'queued', now, 0],
      ['e@other.test', 'queued', now, 1],
      ['f@other.test', 'queued', T0 + 2 * HOUR, 1],
    ]);
    expect(await store.listEvents(m1.id)).toEqual([]);
    expect(await store.nextDueAt()).toBe(now);
  });

  it('never makes a first attempt scheduled for later due before its send time, on a retry or a resume', async () => {
    const store = ctx.store();
    const now = T0 + 100;
    // Scheduled for tomorrow, and for half an hour from now (which a hold moves to its end).
    const tomorrow = message(['a@sched.test'], { dueAt: T0 + 24 * HOUR });
    const soon = message(['b@sched.test'], { dueAt: T0 + HOUR / 2 });
    // Sent at once, then deferred after an attempt; and sent at once, then held untried.
    const tried = message(['c@sched.test']);
    const held = message(['d@sched.test']);
    await store.enqueue([tomorrow, soon, tried]);
    const [claimed] = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
    await store.recordAttempts([{ recipientId: claimed!.recipientId, token: claimed!.token, outcome: deferred('127.0.0.2'), newState: 'queued', nextAttemptAt: T0 + 2 * HOUR, countsAsAttempt: true }]);
    await store.enqueue([held]);
    expect(await store.holdDomains(['sched.test'], T0 + HOUR, 24 * HOUR, 10)).toBe(2);
    const due = async () => (await Promise.all([tomorrow, soon, tried, held].map((m) => store.listRecipients(m.id)))).flat().map((r) => [r.recipient, r.nextAttemptAt]);
    expect(await due()).toEqual([
      ['a@sched.test', T0 + 24 * HOUR],
      ['b@sched.test', T0 + HOUR],
      ['c@sched.test', T0 + 2 * HOUR],
      ['d@sched.test', T0 + HOUR],
    ]);

    // The dead site is back: held mail is due now, the held scheduled row at its send time.
    expect(await store.resumeDomains(['sched.test'], T0 + HOUR, now, 10)).toBe(2);
    expect(await store.resumeDomains(['sched.test'], T0 + HOUR, now, 10)).toBe(0);
    expect(await due()).toEqual([
      ['a@sched.test', T0 + 24 * HOUR],
      ['b@sched.test', T0 + HOUR / 2],
      ['c@sched.test', T0 + 2 * HOUR],
      ['d@sched.test', now],
    ]);

    // A retry: the deferred row is due now; the scheduled ones keep their send times.
    expect(await store.retryQueued({ kind: 'domain', domain: 'sched.test' }, now, 10)).toBe(1);
    expect(await store.retryQueued({ kind: 'pool', pool: 'default' }, now, 10)).toBe(0);
    expect(await store.retryQueued({ kind: 'message', messageId: tomorrow.id }, now, 10)).toBe(0);
    expect(await due()).toEqual([
      ['a@sched.test', T0 + 24 * HOUR],
      ['b@sched.test', T0 + HOUR / 2],
      ['c@sched.test', now],
      ['d@sched.test', now],
    ]);
    expect((await store.claimDue({ now, limit: 10, owner: OWNER, leaseMs: LEASE })).map((c) => c.recipient)).toEqual(['c@sched.test', 'd@sched.test']);
  });

  it("selects a tenant's queued rows for a retry and a cancellation, never another tenant's or mail of no tenant", async () => {
    const store = ctx.store();
    const acme = message(['a@one.test', 'b@two.test'], { tenant: 'acme' });
    const beta = message(['c@one.test'], { tenant: 'beta' });
    const noTenant = message(['d@one.test']);
    const acmeDue = message(['e@one.test'], { tenant: 'acme', dueAt: T0 - 5 });
    await store.enqueue([acme, beta, noTenant, acmeDue]);
    const [inFlight] = await store.claimQueued({ kind: 'message', messageId: acmeDue.id }, { now: T0, limit: 1, owner: 'node-b', leaseMs: LEASE });
    expect(inFlight?.recipient).toBe('e@one.test');
    // The queued rows wait for a later time: held for an hour.
    expect(await store.holdDomains(['one.test', 'two.test'], T0 + HOUR, 24 * HOUR, 10)).toBe(4);

    const now = T0 + 100;
    expect(await store.retryQueued({ kind: 'tenant', tenant: 'acme' }, now, 1)).toBe(1);
    expect(await store.retryQueued({ kind: 'tenant', tenant: 'acme' }, now, 10)).toBe(1);
    expect(await store.retryQueued({ kind: 'tenant', tenant: 'acme' }, now, 10)).toBe(0);
    expect(await store.retryQueued({ kind: 'tenant', tenant: 'gamma' }, now, 10)).toBe(0);
    const due = async (m: NewMessage) => (await store.listRecipients(m.id)).map((r) => r.nextAttemptAt);
    expect([await due(acme), await due(beta), await due(noTenant)]).toEqual([[now, now], [T0 + HOUR], [T0 + HOUR]]);

    expect(await store.countDelivering({ kind: 'tenant', tenant: 'acme' })).toBe(1);
    expect(await store.countDelivering({ kind: 'tenant', tenant: 'beta' })).toBe(0);
    const claimed = await store.claimQueued({ kind: 'tenant', tenant: 'acme' }, { now, limit: 10, owner: OWNER, leaseMs: LEASE });
    expect(claimed.map((c) => c.recipient)).toEqual(['a@one.test', 'b@two.test']);
    expect(await store.countDelivering({ kind: 'tenant', tenant: 'acme' })).toBe(3);
    expect(await store.claimQueued({ kind: 'tenant', tenant: 'acme' }, { now, limit: 10, owner: OWNER, leaseMs: LEASE })).toEqual([]);
    expect((await store.claimQueued({ kind: 'tenant', tenant: 'beta' }, { now, limit: 10, owner: OWNER, leaseMs: LEASE })).map((c) => c.recipient)).toEqual(['c@one.test']);
    expect((await store.listRecipients(noTenant.id)).map((r) => r.state)).toEqual(['queued']);
  });

  it('claims the queued rows of a selection in an id range, and the rows of a dead claim, each with its due time', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    expect(await store.lastRecipientId()).toBe(0);
    const m1 = message(['a@range.test', 'b@range.test', 'c@range.test'], { dueAt: T0 + HOUR });
    const m2 = message(['d@range.test', 'e@range.test']);
    await store.enqueue([m1, m2]);
    const ids = (await store.listRecipients(m1.id)).concat(await store.listRecipients(m2.id)).map((r) => r.recipientId);
    const through = await store.lastRecipientId();
    expect(through).toBe(Math.max(...ids));
    const selection = { kind: 'domain', domain: 'range.test' } as const;

    // e@ claimed by a node that then dies; its lease runs out while the domain is paused.
    const [dead] = await store.claimQueued({ kind: 'message', messageId: m2.id }, { now: T0, limit: 1, owner: 'node-dead', leaseMs: 10, after: ids[3]! });
    expect(dead?.recipient).toBe('e@range.test');
    const paused = { domains: ['range.test'], pools: [], tenants: [] };
    clock.advance(100);
    const now = clock.now();
    expect(await store.claimDue({ now, limit: 10, owner: OWNER, leaseMs: LEASE, paused })).toEqual([]);
    // Made after the cancellation began: beyond its bound.
    const later = message(['f@range.test']);
    await store.enqueue([later]);
    expect(await store.lastRecipientId()).toBeGreaterThan(through);

    // Keyset chunks: each after the last id of the one before, never past `through`.
    const first = await store.claimQueued(selection, { now, limit: 2, owner: OWNER, leaseMs: LEASE, after: 0, through });
    const second = await store.claimQueued(selection, { now, limit: 2, owner: OWNER, leaseMs: LEASE, after: first.at(-1)!.recipientId, through });
    const third = await store.claimQueued(selection, { now, limit: 2, owner: OWNER, leaseMs: LEASE, after: second.at(-1)!.recipientId, through });
    expect([first, second, third].map((chunk) => chunk.map((c) => [c.recipient, c.dueAt]))).toEqual([
      [['a@range.test', T0 + HOUR], ['b@range.test', T0 + HOUR]],
      [['c@range.test', T0 + HOUR], ['d@range.test', T0]],
      // The dead node's row, under a new token: the dead node's result no longer applies.
      [['e@range.test', T0]],
    ]);
    expect(third[0]!.token).not.toBe(dead!.token);
    expect(await store.recordAttempts([{ recipientId: dead!.recipientId, token: dead!.token, outcome: deferred('127.0.0.2'), newState: 'queued', nextAttemptAt: T0, countsAsAttempt: true }])).toEqual([]);
    // A live lease is left alone; the row made later is found without the bound.
    expect(await store.claimQueued(selection, { now, limit: 10, owner: OWNER, leaseMs: LEASE, through })).toEqual([]);
    expect((await store.claimQueued(selection, { now, limit: 10, owner: OWNER, leaseMs: LEASE })).map((c) => c.recipient)).toEqual(['f@range.test']);
    await expect(store.claimQueued(selection, { now, limit: 1, owner: OWNER, leaseMs: LEASE, after: 1.5 })).rejects.toThrow(/after and through/);
  });

  it('claims the queued rows of a selection, due or not, for a cancellation recorded with its DSN', async () => {
    const store = ctx.store();
    const m1 = message(['a@gone.test', 'b@gone.test', 'c@kept.test'], { dueAt: T0 + HOUR });
    const m2 = message(['d@gone.test'], { pool: 'bulk' });
    await store.enqueue([m1, m2]);
    const [delivering] = await store.claimDue({ now: T0, limit: 1, owner: 'node-b', leaseMs: LEASE });
    expect(delivering?.recipient).toBe('d@gone.test');
    expect(await store.countDelivering({ kind: 'domain', domain: 'gone.test' })).toBe(1);
    expect(await store.countDelivering({ kind: 'pool', pool: 'bulk' })).toBe(1);
    expect(await store.countDelivering({ kind: 'message', messageId: m1.id })).toBe(0);

    const first = await store.claimQueued({ kind: 'domain', domain: 'gone.test' }, { now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
    const second = await store.claimQueued({ kind: 'domain', domain: 'gone.test' }, { now: T0, limit: 5, owner: OWNER, leaseMs: LEASE });
    expect([...first, ...second].map((c) => c.recipient)).toEqual(['a@gone.test', 'b@gone.test']);
    expect(first[0]!.token).not.toBe(second[0]!.token);
    expect(await store.claimQueued({ kind: 'domain', domain: 'gone.test' }, { now: T0, limit: 5, owner: OWNER, leaseMs: LEASE })).toEqual([]);
    expect(await store.countDelivering({ kind: 'domain', domain: 'gone.test' })).toBe(3);

    const cancelled: DeliveryOutcome = { disposition: 'permanent', code: null, enhanced: '5.0.0', response: 'cancelled by an operator: spam run', stage: 'queue', bounceClass: 'cancelled', remoteHost: null, egressIp: null };
    const claimed = [...first, ...second];
    const dsn = message(['app@sender.test'], { sender: '', source: 'dsn' });
    const recorded = await store.recordAttempts(
      claimed.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: cancelled, newState: 'bounced', countsAsAttempt: false })),
      [{ message: dsn, reports: claimed.map((c) => c.recipientId) }],
    );
    expect(recorded.sort()).toEqual(claimed.map((c) => c.recipientId).sort());
    expect((await store.listRecipients(m1.id)).map((r) => [r.recipient, r.state, r.attempts, r.lastOutcome?.bounceClass ?? null])).toEqual([
      ['a@gone.test', 'bounced', 0, 'cancelled'],
      ['b@gone.test', 'bounced', 0, 'cancelled'],
      ['c@kept.test', 'queued', 0, null],
    ]);
    expect((await store.listEvents(m1.id)).map((e) => e.outcome)).toEqual([cancelled, cancelled]);
    expect(await store.listRecipients(dsn.id)).toMatchObject([{ recipient: 'app@sender.test', state: 'queued' }]);
    expect(await store.countDelivering({ kind: 'domain', domain: 'gone.test' })).toBe(1);
  });
}
