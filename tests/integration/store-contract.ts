import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { FreshMessages } from '../../src/engine/fresh-messages.ts';
import { registerReadContract } from './store-contract-reads.ts';
import { registerAuditContract } from './store-contract-audit.ts';
import { registerQueueControlContract } from './store-contract-queue-control.ts';
import { registerParkedContract } from './store-contract-parked.ts';
import { registerIdempotencyContract } from './store-contract-idempotency.ts';
import { registerFeedbackContract } from './store-contract-feedback.ts';
import { registerSuppressionContract } from './store-contract-suppressions.ts';
import { registerWebhookContract } from './store-contract-webhooks.ts';
import { registerErasureContract } from './store-contract-erasure.ts';
import { registerTlsContract } from './store-contract-tls.ts';
import { registerBlocklistContract } from './store-contract-blocklists.ts';
import { registerQueueAgeContract } from './store-contract-queue-age.ts';
import { DataRefusedError, type AttemptResult, type Lease, type LeaseToken, type NewMessage, type Store } from '../../src/storage/store.ts';

/**
 * The one behaviour contract every Store backend satisfies. Each test gets a fresh, empty
 * backend (a new SQLite file, a new PostgreSQL schema) and a clock that only moves when told.
 */

export interface StoreBackend {
  /** Opens and migrates a store on this backend's database; every call sees the same data. */
  open(clock: Clock): Promise<Store>;
  /** Deletes the database. Called after every store opened on it is closed. */
  destroy(): Promise<void>;
}

const T0 = 1_700_000_000_000;
const OWNER = 'node-a';
const OTHER = 'node-b';
const LEASE = 60_000;

let sequence = 0;

function message(overrides: Partial<NewMessage> & { recipients?: string[] } = {}, clock?: Clock): NewMessage {
  const now = clock?.now() ?? T0;
  sequence += 1;
  return {
    id: `msg-${sequence.toString().padStart(6, '0')}`,
    sender: 'app@sender.test',
    recipients: ['user@Dest.TEST'],
    messageIdHeader: `<m${sequence}@sender.test>`,
    body: Buffer.from(`Subject: test ${sequence}\r\n\r\nbody ${sequence}\r\n`),
    submitter: 'app',
    source: 'smtp',
    clientAddress: '127.0.0.1',
    createdAt: now,
    dueAt: now,
    pool: 'default',
    ...overrides,
  };
}

function outcome(disposition: DeliveryOutcome['disposition'], overrides: Partial<DeliveryOutcome> = {}): DeliveryOutcome {
  const byDisposition = {
    delivered: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued', stage: 'dot', bounceClass: 'none' },
    transient: { code: 451, enhanced: '4.3.0', response: '451 4.3.0 try later', stage: 'rcpt', bounceClass: 'other' },
    permanent: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user', stage: 'rcpt', bounceClass: 'unknown-user' },
    throttled: { code: null, enhanced: null, response: 'egress IP at its hourly cap', stage: 'queue', bounceClass: 'rate-limited' },
  } as const;
  return {
    disposition,
    ...byDisposition[disposition],
    remoteHost: disposition === 'throttled' ? null : 'mx.dest.test',
    egressIp: disposition === 'throttled' ? null : '127.0.0.2',
    ...overrides,
  };
}

export function runStoreContract(name: string, makeBackend: () => Promise<StoreBackend>): void {
  describe(`Store contract: ${name}`, () => {
    let backend: StoreBackend;
    let clock: ManualClock;
    let opened: Store[];
    let store: Store;

    const open = async (): Promise<Store> => {
      const s = await backend.open(clock);
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      clock = manualClock(T0);
      opened = [];
      backend = await makeBackend();
      store = await open();
    });

    afterEach(async () => {
      await Promise.all(opened.map((s) => s.close()));
      await backend.destroy();
    });

    registerReadContract({ store: () => store, clock: () => clock });
    registerAuditContract({ store: () => store, clock: () => clock });
    registerQueueControlContract({ store: () => store, open, clock: () => clock });
    registerParkedContract({ store: () => store, open });
    registerIdempotencyContract({ store: () => store, clock: () => clock, open });
    registerFeedbackContract({ store: () => store, clock: () => clock });
    registerSuppressionContract({ store: () => store, clock: () => clock, open });
    registerWebhookContract({ store: () => store, clock: () => clock, open });
    registerErasureContract({ store: () => store, clock: () => clock });
    registerTlsContract({ store: () => store, clock: () => clock, open });
    registerBlocklistContract({ store: () => store, open });
    registerQueueAgeContract({ store: () => store });

    it('enqueues a message with one queued row per recipient', async () => {
      const m = message({ recipients: ['a@One.test', 'b@two.TEST', 'c@one.test'], dueAt: T0 + 5 });
      await store.enqueue([m]);

      const rows = await store.listRecipients(m.id);
      expect(rows.map((r) => [r.recipient, r.domain, r.state, r.attempts, r.nextAttemptAt, r.lastOutcome])).toEqual([
        ['a@One.test', 'one.test', 'queued', 0, T0 + 5, null],
        ['b@two.TEST', 'two.test', 'queued', 0, T0 + 5, null],
        ['c@one.test', 'one.test', 'queued', 0, T0 + 5, null],
      ]);
      expect(rows.every((r) => r.messageId === m.id && r.updatedAt === T0)).toBe(true);
      expect(new Set(rows.map((r) => r.recipientId)).size).toBe(3);

      const stored = await store.loadMessage(m.id);
      expect(stored).toEqual({
        id: m.id,
        sender: m.sender,
        messageIdHeader: m.messageIdHeader,
        body: m.body,
        submitter: 'app',
        source: 'smtp',
        createdAt: T0,
        pool: 'default',
        tenant: null,
      });
      expect(Buffer.isBuffer(stored!.body)).toBe(true);
      expect(await store.loadMessage('no-such-message')).toBeNull();
      expect(await store.listRecipients('no-such-message')).toEqual([]);
    });

    it('gives back what FreshMessages keeps of a message it was handed, field for field', async () => {
      const fresh = new FreshMessages({ clock: manualClock(T0) });
      for (const m of [
        message({ tenant: 'acme', tags: ['t'], metadata: { k: 'v' } }),
        message({ sender: '', messageIdHeader: null, submitter: null, clientAddress: null, source: 'http', pool: 'marketing' }),
      ]) {
        await store.enqueue([m]);
        fresh.add([m]);
        expect(fresh.take(m.id)).toEqual(await store.loadMessage(m.id));
      }
    });

    it('stores the null sender, null fields and a binary body unchanged', async () => {
      const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const m = message({ sender: '', messageIdHeader: null, submitter: null, clientAddress: null, source: 'dsn', body, pool: 'marketing', tenant: 'acme' });
      await store.enqueue([m]);
      const stored = await store.loadMessage(m.id);
      expect(stored).toMatchObject({ sender: '', messageIdHeader: null, submitter: null, source: 'dsn', pool: 'marketing', tenant: 'acme' });
      expect(stored!.body.equals(body)).toBe(true);
      const [claimed] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(claimed).toMatchObject({ sender: '', messageIdHeader: null, size: 256 });
    });

    it('claims only due rows and marks them delivering for the owner', async () => {
      const due = message({ recipients: ['x@due.test'] });
      const later = message({ recipients: ['y@later.test'], dueAt: T0 + 1000 });
      await store.enqueue([due, later]);

      const claimed = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
      expect(claimed).toEqual([
        {
          recipientId: expect.any(Number),
          token: expect.any(String),
          messageId: due.id,
          sender: due.sender,
          recipient: 'x@due.test',
          domain: 'due.test',
          attempts: 0,
          lastEgressIp: null,
          messageCreatedAt: T0,
          dueAt: T0,
          messageIdHeader: due.messageIdHeader,
          size: due.body.length,
        },
      ]);
      const [row] = await store.listRecipients(due.id);
      expect(row).toMatchObject({ state: 'delivering', attempts: 0 });

      // Leased rows are not handed out again while the lease runs.
      expect(await store.claimDue({ now: T0 + 999, limit: 10, owner: OTHER, leaseMs: LEASE })).toEqual([]);
      const next = await store.claimDue({ now: T0 + 1000, limit: 10, owner: OTHER, leaseMs: LEASE });
      expect(next.map((c) => c.messageId)).toEqual([later.id]);
      expect(await store.claimDue({ now: T0 + 1000, limit: 0, owner: OWNER, leaseMs: LEASE })).toEqual([]);
    });

    it('claims the oldest due rows first, up to the limit', async () => {
      const m3 = message({ recipients: ['r3@x.test'], dueAt: T0 - 3 });
      const m1 = message({ recipients: ['r1@x.test'], dueAt: T0 - 1 });
      const m2 = message({ recipients: ['r2a@x.test', 'r2b@x.test'], dueAt: T0 - 2 });
      await store.enqueue([m1]);
      await store.enqueue([m2, m3]);

      const first = await store.claimDue({ now: T0, limit: 2, owner: OWNER, leaseMs: LEASE });
      expect(first.map((c) => c.recipient)).toEqual(['r3@x.test', 'r2a@x.test']);
      const second = await store.claimDue({ now: T0, limit: 2, owner: OWNER, leaseMs: LEASE });
      expect(second.map((c) => c.recipient)).toEqual(['r2b@x.test', 'r1@x.test']);
      expect(await store.claimDue({ now: T0, limit: 2, owner: OWNER, leaseMs: LEASE })).toEqual([]);
    });

    it('makes a row claimable again when its lease expires, and ignores the old owner afterwards', async () => {
      const m = message();
      await store.enqueue([m]);
      const [mine] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: 1000 });
      expect(mine).toBeDefined();

      expect(await store.claimDue({ now: T0 + 1000, limit: 1, owner: OTHER, leaseMs: LEASE })).toEqual([]);
      const [theirs] = await store.claimDue({ now: T0 + 1001, limit: 1, owner: OTHER, leaseMs: LEASE });
      expect(theirs?.recipientId).toBe(mine!.recipientId);
      expect(theirs?.attempts).toBe(0);

      // The first owner comes back late: its result and release no longer apply.
      clock.set(T0 + 2000);
      await store.recordAttempts([{ recipientId: mine!.recipientId, token: mine!.token, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      await store.release([mine!], T0);
      expect(await store.releaseAll(OWNER, T0)).toBe(0);
      const [row] = await store.listRecipients(m.id);
      expect(row).toMatchObject({ state: 'delivering', attempts: 0, lastOutcome: null });
      expect(await store.listEvents(m.id)).toEqual([]);

      // The new owner's result applies.
      await store.recordAttempts([{ recipientId: theirs!.recipientId, token: theirs!.token, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      expect((await store.listRecipients(m.id))[0]).toMatchObject({ state: 'delivered', attempts: 1 });
    });

    it('never hands the same row to two concurrent claimers', async () => {
      const other = await open();
      const messages = Array.from({ length: 60 }, (_, i) =>
        message({ recipients: Array.from({ length: 5 }, (_, k) => `r${i}-${k}@x${k}.test`), dueAt: T0 - (i % 7) }),
      );
      await store.enqueue(messages.slice(0, 30));
      await other.enqueue(messages.slice(30));
      const total = 300;

      const claimedBy = new Map<number, string>();
      const duplicates: number[] = [];
      const claimer = async (s: Store, owner: string) => {
        for (;;) {
          const batch = await s.claimDue({ now: T0, limit: 7, owner, leaseMs: LEASE });
          if (batch.length === 0) return;
          for (const c of batch) {
            if (claimedBy.has(c.recipientId)) duplicates.push(c.recipientId);
            claimedBy.set(c.recipientId, owner);
          }
        }
      };
      await Promise.all([
        ...Array.from({ length: 4 }, (_, i) => claimer(store, `${OWNER}-${i}`)),
        ...Array.from({ length: 4 }, (_, i) => claimer(other, `${OTHER}-${i}`)),
      ]);

      expect(duplicates).toEqual([]);
      expect(claimedBy.size).toBe(total);
      expect(await store.countByState()).toEqual({ queued: 0, delivering: total, delivered: 0, bounced: 0 });
    });

    it('records attempt results: state, attempts, last outcome and one event each', async () => {
      const m = message({ recipients: ['ok@x.test', 'later@x.test', 'gone@x.test'] });
      await store.enqueue([m]);
      const claimed = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
      const lease = (rcpt: string) => {
        const { recipientId, token } = claimed.find((c) => c.recipient === rcpt)!;
        return { recipientId, token };
      };

      clock.set(T0 + 100);
      const delivered = outcome('delivered');
      const deferred = outcome('transient');
      const bounced = outcome('permanent', { egressIp: '127.0.0.3' });
      await store.recordAttempts([
        { ...lease('ok@x.test'), outcome: delivered, newState: 'delivered', countsAsAttempt: true },
        { ...lease('later@x.test'), outcome: deferred, newState: 'queued', nextAttemptAt: T0 + 60_000, countsAsAttempt: true },
        { ...lease('gone@x.test'), outcome: bounced, newState: 'bounced', countsAsAttempt: true },
      ]);

      const rows = await store.listRecipients(m.id);
      expect(rows.map((r) => [r.recipient, r.state, r.attempts, r.nextAttemptAt, r.lastOutcome, r.updatedAt])).toEqual([
        ['ok@x.test', 'delivered', 1, null, delivered, T0 + 100],
        ['later@x.test', 'queued', 1, T0 + 60_000, deferred, T0 + 100],
        ['gone@x.test', 'bounced', 1, null, bounced, T0 + 100],
      ]);
      const events = await store.listEvents(m.id);
      expect(events).toHaveLength(3);
      expect(events.map((e) => [e.recipientId, e.messageId, e.attempt, e.at, e.outcome])).toEqual(
        expect.arrayContaining([
          [lease('ok@x.test').recipientId, m.id, 1, T0 + 100, delivered],
          [lease('later@x.test').recipientId, m.id, 1, T0 + 100, deferred],
          [lease('gone@x.test').recipientId, m.id, 1, T0 + 100, bounced],
        ]),
      );
      expect(await store.countByState()).toEqual({ queued: 1, delivering: 0, delivered: 1, bounced: 1 });

      // The retry is due at its time, carries the previous egress IP, and counts again.
      expect(await store.claimDue({ now: T0 + 59_999, limit: 10, owner: OWNER, leaseMs: LEASE })).toEqual([]);
      const [retry] = await store.claimDue({ now: T0 + 60_000, limit: 10, owner: OWNER, leaseMs: LEASE });
      expect(retry).toMatchObject({ recipient: 'later@x.test', attempts: 1, lastEgressIp: '127.0.0.2' });
      clock.set(T0 + 60_100);
      await store.recordAttempts([{ recipientId: retry!.recipientId, token: retry!.token, outcome: delivered, newState: 'delivered', countsAsAttempt: true }]);
      const history = (await store.listEvents(m.id)).filter((e) => e.recipientId === retry!.recipientId);
      expect(history.map((e) => [e.attempt, e.at, e.outcome.disposition])).toEqual([
        [1, T0 + 100, 'transient'],
        [2, T0 + 60_100, 'delivered'],
      ]);
    });

    it('keeps the attempt counter for results that are not attempts, but still writes the event', async () => {
      const m = message();
      await store.enqueue([m]);
      const [c] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      const throttled = outcome('throttled');
      await store.recordAttempts([
        { recipientId: c!.recipientId, token: c!.token, outcome: throttled, newState: 'queued', nextAttemptAt: T0 + 5000, countsAsAttempt: false },
      ]);
      const [row] = await store.listRecipients(m.id);
      expect(row).toMatchObject({ state: 'queued', attempts: 0, nextAttemptAt: T0 + 5000, lastOutcome: throttled });
      expect(await store.listEvents(m.id)).toEqual([{ recipientId: c!.recipientId, messageId: m.id, attempt: 0, at: T0, outcome: throttled }]);
    });

    it('keeps the last egress IP when a result has none: a wait neither drops the row from its IP nor its stickiness', async () => {
      const m = message();
      await store.enqueue([m]);
      const [first] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      await store.recordAttempts([{ recipientId: first!.recipientId, token: first!.token, outcome: outcome('transient'), newState: 'queued', nextAttemptAt: T0 + 1000, countsAsAttempt: true }]);
      const [second] = await store.claimDue({ now: T0 + 1000, limit: 1, owner: OWNER, leaseMs: LEASE });
      const throttled = outcome('throttled');
      await store.recordAttempts([{ recipientId: second!.recipientId, token: second!.token, outcome: throttled, newState: 'queued', nextAttemptAt: T0 + 2000, countsAsAttempt: false }]);

      const [row] = await store.listRecipients(m.id);
      expect(row).toMatchObject({ state: 'queued', attempts: 1, lastOutcome: { ...throttled, egressIp: '127.0.0.2' } });
      // The event is the wait's own, with no IP.
      expect((await store.listEvents(m.id)).map((e) => e.outcome.egressIp)).toEqual(['127.0.0.2', null]);
      // Still in the IP's scope, and handed out with it for the sticky choice.
      expect(await store.retryQueued({ kind: 'egress-ip', ip: '127.0.0.2' }, T0 + 1500, 10)).toBe(1);
      const [third] = await store.claimDue({ now: T0 + 1500, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(third).toMatchObject({ recipientId: first!.recipientId, lastEgressIp: '127.0.0.2' });
    });

    it('ignores results under a token the row does not carry', async () => {
      const m = message({ recipients: ['a@x.test', 'b@x.test'] });
      await store.enqueue([m]);
      const [a] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      const b = (await store.listRecipients(m.id)).find((r) => r.recipient === 'b@x.test')!;
      const delivered = (lease: Lease): AttemptResult => ({ ...lease, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true });
      expect(await store.recordAttempts([delivered({ recipientId: a!.recipientId, token: 'another-claim' as LeaseToken })])).toEqual([]);
      expect(await store.recordAttempts([delivered({ recipientId: b.recipientId, token: a!.token })])).toEqual([]);
      expect(await store.recordAttempts([delivered({ recipientId: 987_654_321, token: a!.token })])).toEqual([]);
      expect((await store.listRecipients(m.id)).map((r) => r.state)).toEqual(['delivering', 'queued']);
      expect(await store.listEvents(m.id)).toEqual([]);
    });

    it('ignores the result of an earlier claim once the same owner claimed the row again', async () => {
      const m = message();
      await store.enqueue([m]);
      const [first] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: 1000 });
      const [second] = await store.claimDue({ now: T0 + 1001, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(second?.recipientId).toBe(first!.recipientId);
      expect(second!.token).not.toBe(first!.token);

      // The first attempt outlived its lease: whatever it reports must not overwrite the second.
      const bounce = (lease: Lease): AttemptResult => ({ ...lease, outcome: outcome('permanent'), newState: 'bounced', countsAsAttempt: true });
      expect(await store.recordAttempts([bounce(first!)])).toEqual([]);
      await store.release([first!], T0);
      expect((await store.listRecipients(m.id))[0]).toMatchObject({ state: 'delivering', attempts: 0 });
      expect(await store.recordAttempts([bounce(second!)])).toEqual([second!.recipientId]);
      expect((await store.listRecipients(m.id))[0]).toMatchObject({ state: 'bounced', attempts: 1 });
    });

    it('renews leases still held under their token and reports those taken over', async () => {
      const m = message({ recipients: ['a@x.test', 'b@x.test', 'c@x.test'] });
      await store.enqueue([m]);
      const [a, b, c] = await store.claimDue({ now: T0, limit: 3, owner: OWNER, leaseMs: LEASE });

      // Renewed before the lease ran out: nobody may take it until the new end.
      expect(await store.renewLeases([a!, b!, c!], T0 + 100_000)).toEqual([]);
      expect(await store.claimDue({ now: T0 + 100_000, limit: 3, owner: OTHER, leaseMs: LEASE })).toEqual([]);

      // c finished (its result is recorded), b is taken over after its lease ran out unrenewed.
      await store.recordAttempts([{ ...c!, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      expect(await store.renewLeases([a!], T0 + 200_000)).toEqual([]);
      const [taken] = await store.claimDue({ now: T0 + 100_001, limit: 3, owner: OTHER, leaseMs: LEASE });
      expect(taken?.recipientId).toBe(b!.recipientId);
      expect(await store.renewLeases([a!, b!, c!], T0 + 300_000)).toEqual([b!.recipientId]);
      // The stale renewal of b changed nothing (the taker's lease ends at T0 + 160_001); a's lease was extended.
      expect((await store.claimDue({ now: T0 + 160_002, limit: 3, owner: OTHER, leaseMs: LEASE })).map((r) => r.recipientId)).toEqual([b!.recipientId]);
    });

    it('renews a lease that ran out while no other claim took the row', async () => {
      await store.enqueue([message()]);
      const [late] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: 1000 });
      expect(await store.renewLeases([late!], T0 + 100_000)).toEqual([]);
      expect(await store.claimDue({ now: T0 + 50_000, limit: 1, owner: OTHER, leaseMs: LEASE })).toEqual([]);
      await store.release([late!], T0);
      expect(await store.renewLeases([late!], T0 + 500_000)).toEqual([late!.recipientId]);
    });

    it('recognises results recorded before under the same token: applied once, counted as recorded', async () => {
      const m = message({ recipients: ['ok@x.test', 'gone@x.test'] });
      await store.enqueue([m]);
      const [ok, gone] = await store.claimDue({ now: T0, limit: 2, owner: OWNER, leaseMs: LEASE });
      const results: AttemptResult[] = [
        { ...ok!, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true },
        { ...gone!, outcome: outcome('permanent'), newState: 'bounced', countsAsAttempt: true },
      ];
      const dsn = message({ sender: '', recipients: ['app@sender.test'], source: 'dsn', submitter: null });
      const followUp = { message: dsn, reports: [gone!.recipientId] };
      expect((await store.recordAttempts(results, [followUp])).sort()).toEqual([ok!.recipientId, gone!.recipientId].sort());
      // The same call again (as after a COMMIT whose answer was lost): nothing changes, nothing is stored twice.
      expect((await store.recordAttempts(results, [followUp])).sort()).toEqual([ok!.recipientId, gone!.recipientId].sort());
      expect((await store.listRecipients(m.id)).map((r) => [r.state, r.attempts])).toEqual([['delivered', 1], ['bounced', 1]]);
      expect(await store.listEvents(m.id)).toHaveLength(2);
      expect(await store.listRecipients(dsn.id)).toHaveLength(1);
    });

    it('applies a follow-up and the results it reports together or not at all', async () => {
      const m = message({ recipients: ['a@x.test', 'b@x.test', 'c@x.test'] });
      await store.enqueue([m]);
      const [a, b, c] = await store.claimDue({ now: T0, limit: 3, owner: OWNER, leaseMs: 1000 });
      // b's lease ran out and another node took it: this node's bounce of b is stale.
      await store.renewLeases([a!, c!], T0 + LEASE);
      const [taken] = await store.claimDue({ now: T0 + 1001, limit: 3, owner: OTHER, leaseMs: LEASE });
      expect(taken?.recipientId).toBe(b!.recipientId);

      const bounce = (lease: Lease): AttemptResult => ({ ...lease, outcome: outcome('permanent'), newState: 'bounced', countsAsAttempt: true });
      const dsn = () => message({ sender: '', recipients: ['app@sender.test'], source: 'dsn', submitter: null });
      const both = dsn();
      const delivered: AttemptResult = { ...c!, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true };
      // The DSN reporting a and b cannot go with b, so a's bounce waits too (a bounce is never
      // committed without its DSN); c, which no follow-up reports, is recorded.
      expect(await store.recordAttempts([bounce(a!), bounce(b!), delivered], [{ message: both, reports: [a!.recipientId, b!.recipientId] }])).toEqual([c!.recipientId]);
      expect(await store.loadMessage(both.id)).toBeNull();
      expect((await store.listRecipients(m.id)).map((r) => r.state)).toEqual(['delivering', 'delivering', 'delivered']);

      // Recorded again with a DSN of its own, a's bounce goes in, in one commit with it.
      const onlyA = dsn();
      expect(await store.recordAttempts([bounce(a!)], [{ message: onlyA, reports: [a!.recipientId] }])).toEqual([a!.recipientId]);
      expect(await store.listRecipients(onlyA.id)).toHaveLength(1);
      expect((await store.listRecipients(m.id)).map((r) => r.state)).toEqual(['bounced', 'delivering', 'delivered']);
      // The same call once more (after an uncertain commit): counted as recorded, nothing stored twice.
      const again = dsn();
      expect(await store.recordAttempts([bounce(a!)], [{ message: again, reports: [a!.recipientId] }])).toEqual([a!.recipientId]);
      expect(await store.loadMessage(again.id)).toBeNull();
    });

    it('enqueues follow-up messages in the same transaction as the results', async () => {
      const m = message({ recipients: ['gone@x.test'] });
      const existing = message();
      await store.enqueue([m, existing]);
      const [c] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(c?.messageId).toBe(m.id);
      const bounce: AttemptResult = { recipientId: c!.recipientId, token: c!.token, outcome: outcome('permanent'), newState: 'bounced', countsAsAttempt: true };

      // A follow-up that cannot be stored takes the result down with it: nothing is applied. The
      // store says it refuses the data itself (a constraint): the same call can never succeed.
      const clash = message({ id: existing.id, sender: '', recipients: ['app@sender.test'], source: 'dsn' });
      await expect(store.recordAttempts([bounce], [{ message: clash, reports: [c!.recipientId] }])).rejects.toThrow(DataRefusedError);
      expect((await store.listRecipients(m.id))[0]).toMatchObject({ state: 'delivering', attempts: 0 });
      expect(await store.listEvents(m.id)).toEqual([]);

      const dsn = message({ sender: '', recipients: ['app@sender.test'], source: 'dsn', submitter: null });
      expect(await store.recordAttempts([bounce], [{ message: dsn, reports: [c!.recipientId] }])).toEqual([c!.recipientId]);
      expect((await store.listRecipients(m.id))[0]).toMatchObject({ state: 'bounced', attempts: 1 });
      expect(await store.listRecipients(dsn.id)).toMatchObject([{ recipient: 'app@sender.test', state: 'queued', nextAttemptAt: T0 }]);
      expect((await store.loadMessage(dsn.id))?.source).toBe('dsn');
    });

    it('rejects a re-queue without a next attempt time', async () => {
      const m = message();
      await store.enqueue([m]);
      const [c] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      const refused = await store
        .recordAttempts([{ recipientId: c!.recipientId, token: c!.token, outcome: outcome('transient'), newState: 'queued', countsAsAttempt: true }])
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(DataRefusedError);
      expect(refused).toHaveProperty('message', expect.stringMatching(/nextAttemptAt/));
      expect((await store.listRecipients(m.id))[0]?.state).toBe('delivering');
    });

    it('releases claimed rows unchanged, only under their token', async () => {
      const m = message({ recipients: ['a@x.test', 'b@x.test', 'c@x.test'] });
      await store.enqueue([m]);
      const claimed = await store.claimDue({ now: T0, limit: 3, owner: OWNER, leaseMs: LEASE });
      expect(claimed).toHaveLength(3);

      await store.release([{ recipientId: claimed[0]!.recipientId, token: 'another-claim' as LeaseToken }], T0 + 10);
      expect((await store.listRecipients(m.id))[0]?.state).toBe('delivering');

      await store.release([claimed[0]!], T0 + 10);
      let rows = await store.listRecipients(m.id);
      expect(rows.map((r) => [r.state, r.attempts, r.nextAttemptAt])).toEqual([
        ['queued', 0, T0 + 10],
        ['delivering', 0, T0],
        ['delivering', 0, T0],
      ]);

      expect(await store.releaseAll(OTHER, T0 + 20)).toBe(0);
      expect(await store.releaseAll(OWNER, T0 + 20)).toBe(2);
      rows = await store.listRecipients(m.id);
      expect(rows.map((r) => [r.state, r.attempts, r.nextAttemptAt])).toEqual([
        ['queued', 0, T0 + 10],
        ['queued', 0, T0 + 20],
        ['queued', 0, T0 + 20],
      ]);
      expect(await store.listEvents(m.id)).toEqual([]);
      const again = await store.claimDue({ now: T0 + 20, limit: 3, owner: OTHER, leaseMs: LEASE });
      expect(again.map((c) => c.recipient)).toEqual(['a@x.test', 'b@x.test', 'c@x.test']);
    });

    it('holds the queued rows of domains until a time or their deadline, and resumes them', async () => {
      const HOUR = 3_600_000;
      const inFlight = message({ recipients: ['f@dead.test'], dueAt: T0 - 1 });
      // Accepted 5 hours ago: with a 6-hour maxAge its deadline comes before the hold ends.
      const old = message({ recipients: ['a@dead.test'], createdAt: T0 - 5 * HOUR, dueAt: T0 });
      const m = message({ recipients: ['b@dead.test', 'c@other.test', 'd@Dead2.test'] });
      const later = message({ recipients: ['e@dead.test'], dueAt: T0 + 2 * HOUR });
      await store.enqueue([inFlight, old, m, later]);
      const [claimed] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(claimed?.recipient).toBe('f@dead.test');

      const until = T0 + 1.5 * HOUR;
      expect(await store.holdDomains(['dead.test', 'dead2.test'], until, 6 * HOUR, 100)).toBe(3);
      expect(await store.holdDomains(['dead.test', 'dead2.test'], until, 6 * HOUR, 100)).toBe(0);
      const due = async () => (await Promise.all([inFlight, old, m, later].map((x) => store.listRecipients(x.id)))).flat().map((r) => [r.recipient, r.state, r.attempts, r.nextAttemptAt]);
      expect(await due()).toEqual([
        ['f@dead.test', 'delivering', 0, T0 - 1],
        ['a@dead.test', 'queued', 0, T0 + HOUR],
        ['b@dead.test', 'queued', 0, until],
        ['c@other.test', 'queued', 0, T0],
        ['d@Dead2.test', 'queued', 0, until],
        ['e@dead.test', 'queued', 0, T0 + 2 * HOUR],
      ]);
      expect(await store.listEvents(m.id)).toEqual([]);
      expect((await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE })).map((c) => c.recipient)).toEqual(['c@other.test']);

      expect(await store.resumeDomains(['dead.test', 'dead2.test'], until, T0 + 1000, 100)).toBe(3);
      expect((await due()).filter(([, state]) => state === 'queued')).toEqual([
        ['a@dead.test', 'queued', 0, T0 + 1000],
        ['b@dead.test', 'queued', 0, T0 + 1000],
        ['d@Dead2.test', 'queued', 0, T0 + 1000],
        ['e@dead.test', 'queued', 0, T0 + 2 * HOUR],
      ]);
    });

    it('holds and resumes at most `limit` rows per call, over several domains', async () => {
      await store.enqueue([message({ recipients: ['a@one.test', 'b@one.test', 'c@two.test', 'd@two.test', 'e@three.test'] })]);
      const domains = ['one.test', 'two.test', 'three.test'];
      const held: number[] = [];
      do held.push(await store.holdDomains(domains, T0 + 60_000, 86_400_000, 2));
      while (held.at(-1) === 2);
      expect(held).toEqual([2, 2, 1]);
      expect(await store.nextDueAt()).toBe(T0 + 60_000);
      expect(await store.resumeDomains(domains, T0 + 60_000, T0 + 10, 3)).toBe(3);
      expect(await store.resumeDomains(domains, T0 + 60_000, T0 + 10, 3)).toBe(2);
      expect(await store.resumeDomains(domains, T0 + 60_000, T0 + 10, 3)).toBe(0);
      expect(await store.nextDueAt()).toBe(T0 + 10);
    });

    it('counts recipients by state, every state present', async () => {
      expect(await store.countByState()).toEqual({ queued: 0, delivering: 0, delivered: 0, bounced: 0 });
      await store.enqueue([message({ recipients: ['a@x.test', 'b@x.test', 'c@x.test'] }), message({ dueAt: T0 + 1 })]);
      const [a] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      await store.recordAttempts([{ recipientId: a!.recipientId, token: a!.token, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      expect(await store.countByState()).toEqual({ queued: 2, delivering: 1, delivered: 1, bounced: 0 });
    });

    it('reports when the next queued row is due', async () => {
      expect(await store.nextDueAt()).toBeNull();
      await store.enqueue([message({ dueAt: T0 + 500 }), message({ dueAt: T0 + 200 })]);
      expect(await store.nextDueAt()).toBe(T0 + 200);
      const [first] = await store.claimDue({ now: T0 + 200, limit: 1, owner: OWNER, leaseMs: LEASE });
      expect(await store.nextDueAt()).toBe(T0 + 500);
      await store.claimDue({ now: T0 + 500, limit: 1, owner: OWNER, leaseMs: LEASE });
      // Nothing queued: the first lease to run out is next.
      expect(await store.nextDueAt()).toBe(T0 + 200 + LEASE + 1);
      await store.release([first!], T0 + 9000);
      expect(await store.nextDueAt()).toBe(T0 + 9000);
    });

    it('reports when a lease runs out as a due time: its holder may have died', async () => {
      await store.enqueue([message({ recipients: ['a@x.test', 'b@x.test'] })]);
      const [a, b] = await store.claimDue({ now: T0, limit: 2, owner: OWNER, leaseMs: LEASE });
      expect(await store.nextDueAt()).toBe(T0 + LEASE + 1);
      await store.renewLeases([a!], T0 + 2 * LEASE);
      expect(await store.nextDueAt()).toBe(T0 + LEASE + 1);
      await store.recordAttempts([{ ...b!, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      expect(await store.nextDueAt()).toBe(T0 + 2 * LEASE + 1);
      expect(await store.claimDue({ now: T0 + 2 * LEASE, limit: 2, owner: OTHER, leaseMs: LEASE })).toEqual([]);
      expect(await store.claimDue({ now: T0 + 2 * LEASE + 1, limit: 2, owner: OTHER, leaseMs: LEASE })).toHaveLength(1);
    });

    it('purges finished messages older than the cut-off, with their rows and events', async () => {
      const finished = message({ recipients: ['a@x.test', 'b@x.test'] });
      const waiting = message({ recipients: ['c@x.test', 'd@x.test'] });
      const recent = message({ recipients: ['e@x.test'] });
      await store.enqueue([finished, waiting, recent]);
      const claimed = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
      const lease = (rcpt: string) => {
        const { recipientId, token } = claimed.find((c) => c.recipient === rcpt)!;
        return { recipientId, token };
      };
      clock.set(T0 + 1000);
      await store.recordAttempts([
        { ...lease('a@x.test'), outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true },
        { ...lease('b@x.test'), outcome: outcome('permanent'), newState: 'bounced', countsAsAttempt: true },
        { ...lease('c@x.test'), outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true },
        { ...lease('d@x.test'), outcome: outcome('transient'), newState: 'queued', nextAttemptAt: T0 + 9000, countsAsAttempt: true },
      ]);
      clock.set(T0 + 3000);
      await store.recordAttempts([{ ...lease('e@x.test'), outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);

      expect(await store.purgeFinished(T0 + 1000)).toBe(0);
      expect(await store.purgeFinished(T0 + 2000)).toBe(1);
      expect(await store.loadMessage(finished.id)).toBeNull();
      expect(await store.listRecipients(finished.id)).toEqual([]);
      expect(await store.listEvents(finished.id)).toEqual([]);
      expect(await store.loadMessage(waiting.id)).not.toBeNull();
      expect(await store.loadMessage(recent.id)).not.toBeNull();
      expect(await store.listEvents(recent.id)).toHaveLength(1);
      expect(await store.countByState()).toEqual({ queued: 1, delivering: 0, delivered: 2, bounced: 0 });
      expect(await store.purgeFinished(T0 + 2000)).toBe(0);
      expect(await store.purgeFinished(T0 + 5000)).toBe(1);
    });

    it('empties the bodies of finished messages older than the cut-off, keeping their rows and events', async () => {
      const finished = message({ recipients: ['a@x.test', 'b@x.test'] });
      const waiting = message({ recipients: ['c@x.test', 'd@x.test'] });
      await store.enqueue([finished, waiting]);
      const claimed = await store.claimDue({ now: T0, limit: 10, owner: OWNER, leaseMs: LEASE });
      const result = (rcpt: string, newState: 'delivered' | 'bounced') => {
        const { recipientId, token } = claimed.find((c) => c.recipient === rcpt)!;
        return { recipientId, token, outcome: outcome(newState === 'delivered' ? 'delivered' : 'permanent'), newState, countsAsAttempt: true };
      };
      clock.set(T0 + 1000);
      await store.recordAttempts([result('a@x.test', 'delivered'), result('b@x.test', 'bounced'), result('c@x.test', 'delivered')]);

      expect(await store.dropFinishedBodies(T0 + 1000)).toBe(0);
      expect(await store.dropFinishedBodies(T0 + 2000)).toBe(1);
      const emptied = await store.loadMessage(finished.id);
      expect(emptied?.body.length).toBe(0);
      expect((await store.getMessageInfo(finished.id))?.size).toBe(finished.body.length);
      expect(await store.listRecipients(finished.id)).toHaveLength(2);
      expect(await store.listEvents(finished.id)).toHaveLength(2);
      // d@x.test is still queued: its message keeps the body it will be sent with.
      expect((await store.loadMessage(waiting.id))?.body).toEqual(waiting.body);
      expect(await store.dropFinishedBodies(T0 + 2000)).toBe(0);
      expect(await store.purgeFinished(T0 + 2000)).toBe(1);
    });

    it('commits many concurrent enqueues, and a failing one fails alone', async () => {
      const first = message();
      await store.enqueue([first]);
      const messages = Array.from({ length: 200 }, (_, i) => message({ recipients: [`u${i}@a.test`, `u${i}@b.test`] }));
      const duplicate = message({ id: first.id });
      const calls = [...messages.slice(0, 100), duplicate, ...messages.slice(100)].map((m) => store.enqueue([m]));
      const settled = await Promise.allSettled(calls);

      const rejected = settled.flatMap((s, i) => (s.status === 'rejected' ? [i] : []));
      expect(rejected).toEqual([100]);
      for (const m of messages) expect(await store.listRecipients(m.id)).toHaveLength(2);
      expect((await store.countByState()).queued).toBe(401);
      // The original message was not touched by the failed duplicate.
      expect((await store.loadMessage(first.id))?.body.equals(first.body)).toBe(true);
    });

    it('stores all messages of one call or none', async () => {
      const existing = message();
      await store.enqueue([existing]);
      const fresh = message();
      await expect(store.enqueue([fresh, message({ id: existing.id })])).rejects.toThrow();
      expect(await store.loadMessage(fresh.id)).toBeNull();
      expect(await store.listRecipients(fresh.id)).toEqual([]);
      await expect(store.enqueue([message({ recipients: [] })])).rejects.toThrow(/no recipients/);
    });

    it('keeps the queue across close and reopen', async () => {
      const m = message({ recipients: ['a@x.test', 'b@x.test'] });
      await store.enqueue([m]);
      const [c] = await store.claimDue({ now: T0, limit: 1, owner: OWNER, leaseMs: LEASE });
      await store.recordAttempts([{ recipientId: c!.recipientId, token: c!.token, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
      await store.close();

      const reopened = await open();
      expect((await reopened.loadMessage(m.id))?.body.equals(m.body)).toBe(true);
      expect((await reopened.listRecipients(m.id)).map((r) => r.state)).toEqual(['delivered', 'queued']);
      expect(await reopened.listEvents(m.id)).toHaveLength(1);
      // Migrating an up-to-date database again changes nothing.
      await reopened.migrate();
      expect(await reopened.countByState()).toEqual({ queued: 1, delivering: 0, delivered: 1, bounced: 0 });
    });

    it('waits for pending writes on close, and refuses work afterwards', async () => {
      const m = message();
      const pending = store.enqueue([m]);
      const closed = store.close();
      await pending;
      await closed;
      await store.close();
      await expect(store.enqueue([message()])).rejects.toThrow(/closed/);
      await expect(store.ping()).rejects.toThrow(/closed/);
      await expect(store.checkWritable(0)).rejects.toThrow(/closed/);
      await expect(store.freeBytes()).rejects.toThrow(/closed/);

      const reopened = await open();
      await reopened.ping();
      await reopened.checkWritable(0);
      // SQLite's files are on this machine's disk; PostgreSQL's on its server's, which it watches itself.
      if (reopened.driver === 'sqlite') {
        expect(await reopened.freeBytes()).toBeGreaterThan(0);
        await expect(reopened.checkWritable(Number.MAX_SAFE_INTEGER)).rejects.toThrow(/^disk full: \d+ bytes free beside /);
      } else {
        expect(await reopened.freeBytes()).toBeNull();
        await reopened.checkWritable(Number.MAX_SAFE_INTEGER);
      }
      expect(await reopened.listRecipients(m.id)).toHaveLength(1);
    });
  });
}
