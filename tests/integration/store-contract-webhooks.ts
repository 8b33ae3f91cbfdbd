import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { DataRefusedError, type NewMessage, type Store } from '../../src/storage/store.ts';
import { WEBHOOK_RETRY_WINDOW_MS, type ClaimedWebhookDelivery, type NewWebhookEndpoint, type WebhookAttemptResult, type WebhookEventType, type WebhookLeaseToken } from '../../src/storage/webhook-outbox.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * Webhooks in the store contract (WebhookOutbox): endpoints and subscriptions, the outbox rows an
 * enqueue, a recorded attempt or a standalone event fans out (and none without a subscriber, none
 * for a change that fails), claims of two owners, the token rule, failures that disable an
 * endpoint, replays and the purge. Called from runStoreContract, so every backend runs it.
 */

const T0 = 1_700_000_000_000;
const LEASE = 30_000;
const DAY = 86_400_000;

let sequence = 0;

function endpoint(overrides: Partial<NewWebhookEndpoint> = {}): NewWebhookEndpoint {
  sequence += 1;
  return {
    id: `wh_${sequence.toString().padStart(4, '0')}`,
    tenant: 'acme',
    url: `https://hooks.example/${sequence}`,
    eventTypes: ['message.accepted'],
    description: null,
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    createdAt: T0,
    ...overrides,
  };
}

function message(id: string, overrides: Partial<NewMessage> = {}): NewMessage {
  return newMessage(id, T0, { tenant: 'acme', ...overrides });
}

function outcome(disposition: DeliveryOutcome['disposition'], overrides: Partial<DeliveryOutcome> = {}): DeliveryOutcome {
  const base = {
    delivered: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as 4711', stage: 'dot', bounceClass: 'none' },
    transient: { code: 451, enhanced: '4.3.0', response: '451 4.3.0 try later', stage: 'rcpt', bounceClass: 'other' },
    permanent: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user', stage: 'rcpt', bounceClass: 'unknown-user' },
    throttled: { code: null, enhanced: null, response: 'egress IP at its hourly cap', stage: 'queue', bounceClass: 'rate-limited' },
  } as const;
  return { disposition, ...base[disposition], remoteHost: 'mx.dest.test', egressIp: disposition === 'throttled' ? null : '127.0.0.2', ...overrides };
}

const claimOptions = { limit: 100, perWebhook: 100, skip: [] as string[], owner: 'node-a', leaseMs: LEASE };

export function registerWebhookContract(ctx: { store: () => Store; clock: () => ManualClock; open: () => Promise<Store> }): void {
  const deliveries = async (store: Store, webhookId: string) => store.listWebhookDeliveries(webhookId, { state: null, after: null, limit: 100 });

  it('fans an accepted message out to each endpoint of its tenant that subscribes, and writes nothing when none does', async () => {
    const store = ctx.store();
    const acme = endpoint({ eventTypes: ['recipient.delivered', 'message.accepted', 'message.accepted'] });
    const acmeBounces = endpoint({ eventTypes: ['recipient.bounced'] });
    const untenanted = endpoint({ tenant: null });
    const other = endpoint({ tenant: 'other' });
    for (const e of [acme, acmeBounces, untenanted, other]) await store.createWebhook(e);
    expect(await store.getWebhook(acme.id)).toEqual({
      ...acme,
      eventTypes: ['message.accepted', 'recipient.delivered'],
      maxEventsPerRequest: 1,
      enabled: true,
      disabledReason: null,
      disabledAt: null,
      failingSince: null,
      updatedAt: T0,
    });

    await store.enqueue([
      message('m-acme', { recipients: ['b@dest.test', 'a@dest.test'], tags: ['welcome'], metadata: { orderId: '4711' } }),
      message('m-none', { tenant: null }),
      message('m-nobody', { tenant: 'nobody' }),
      // Rookery's own DSNs are no tenant's events.
      message('m-dsn', { source: 'dsn', sender: '' }),
    ]);

    const [accepted, ...more] = await deliveries(store, acme.id);
    expect(more).toEqual([]);
    expect(accepted).toEqual({
      id: expect.stringMatching(/^msg_[0-9a-f]{32}$/),
      webhookId: acme.id,
      event: {
        type: 'message.accepted',
        tenant: 'acme',
        messageId: 'm-acme',
        recipient: null,
        at: T0,
        egressIp: null,
        reply: null,
        attempt: null,
        bounceClass: null,
        tags: ['welcome'],
        metadata: { orderId: '4711' },
        data: { sender: 'app@sender.test', recipients: ['b@dest.test', 'a@dest.test'] },
      },
      state: 'pending',
      attempts: 0,
      nextAttemptAt: T0,
      retryUntil: T0 + WEBHOOK_RETRY_WINDOW_MS,
      lastAttemptAt: null,
      lastStatus: null,
      lastError: null,
      finishedAt: null,
      createdAt: T0,
    });
    expect(await deliveries(store, acmeBounces.id)).toEqual([]);
    expect((await deliveries(store, untenanted.id)).map((d) => [d.event.messageId, d.event.tenant, d.event.tags, d.event.metadata])).toEqual([['m-none', null, [], {}]]);
    expect(await deliveries(store, other.id)).toEqual([]);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 2, held: 0, disabledEndpoints: 0 });
  });

  it('makes delivery ids that start with the time they were made, so later rows sort after earlier ones', async () => {
    const store = ctx.store();
    const hook = endpoint();
    await store.createWebhook(hook);
    const ids: string[] = [];
    for (const id of ['m-first', 'm-second', 'm-third']) {
      const before = Date.now();
      await store.enqueue([message(id)]);
      const [made] = (await deliveries(store, hook.id)).filter((d) => d.event.messageId === id);
      ids.push(made!.id);
      // The system's time in ms, in 12 hex digits, then random.
      expect(parseInt(made!.id.slice(4, 16), 16)).toBeGreaterThanOrEqual(before - 1000);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids.map((id) => id.slice(16))).size).toBe(3);
  });

  it('writes no event for a change that fails: the event is in its transaction', async () => {
    const store = ctx.store();
    const hook = endpoint();
    await store.createWebhook(hook);
    await store.enqueue([message('first')]);
    // The second call holds a new message and one whose id is taken: neither is stored, and
    // neither is announced.
    await expect(store.enqueue([message('second'), message('first')])).rejects.toThrow();
    expect(await store.getMessageInfo('second')).toBeNull();
    // A key already used: its messages are not stored, nor announced.
    const record = { scope: 'app', key: 'k', requestHash: 'h', status: 202, response: '{}', createdAt: T0 };
    expect(await store.enqueueOnce([message('keyed')], record, T0 - DAY)).toEqual({ stored: true });
    expect(await store.enqueueOnce([message('keyed-again')], { ...record, requestHash: 'h2' }, T0 - DAY)).toMatchObject({ stored: false });
    expect((await deliveries(store, hook.id)).map((d) => d.event.messageId).sort()).toEqual(['first', 'keyed']);
  });

  it('emits the delivery events of recorded attempts with the reply, egress IP and attempt, and none for waits or stale results', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const hook = endpoint({ eventTypes: ['recipient.delivered', 'recipient.deferred', 'recipient.bounced', 'message.cancelled'] });
    await store.createWebhook(hook);
    await store.enqueue([message('m1', { recipients: ['ok@d.test', 'later@d.test', 'wait@d.test', 'gone@d.test', 'cancel@d.test', 'stale@d.test'], tags: ['t1'] })]);
    const claimed = await store.claimDue({ now: T0, limit: 10, owner: 'node-a', leaseMs: LEASE });
    const lease = (rcpt: string) => {
      const { recipientId, token } = claimed.find((c) => c.recipient === rcpt)!;
      return { recipientId, token };
    };
    clock.set(T0 + 500);
    await store.recordAttempts([
      { ...lease('ok@d.test'), outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true },
      { ...lease('later@d.test'), outcome: outcome('transient'), newState: 'queued', nextAttemptAt: T0 + 60_000, countsAsAttempt: true },
      { ...lease('wait@d.test'), outcome: outcome('throttled'), newState: 'queued', nextAttemptAt: T0 + 1_000, countsAsAttempt: false },
      { ...lease('gone@d.test'), outcome: outcome('permanent', { egressIp: '127.0.0.3' }), newState: 'bounced', countsAsAttempt: true },
      {
        ...lease('cancel@d.test'),
        outcome: { disposition: 'permanent', code: null, enhanced: '5.0.0', response: 'cancelled by an operator', stage: 'queue', bounceClass: 'cancelled', remoteHost: null, egressIp: null },
        newState: 'bounced',
        countsAsAttempt: true,
      },
      { recipientId: lease('stale@d.test').recipientId, token: 'not-the-token' as never, outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true },
    ]);

    const events = (await deliveries(store, hook.id)).map((d) => d.event).sort((a, b) => (a.recipient! < b.recipient! ? -1 : 1));
    expect(events).toEqual([
      {
        type: 'message.cancelled', tenant: 'acme', messageId: 'm1', recipient: 'cancel@d.test', at: T0 + 500, egressIp: null,
        reply: { code: null, enhanced: '5.0.0', text: 'cancelled by an operator', remoteHost: null }, attempt: 1, bounceClass: 'cancelled', tags: ['t1'], metadata: {}, data: null,
      },
      {
        type: 'recipient.bounced', tenant: 'acme', messageId: 'm1', recipient: 'gone@d.test', at: T0 + 500, egressIp: '127.0.0.3',
        reply: { code: 550, enhanced: '5.1.1', text: '550 5.1.1 no such user', remoteHost: 'mx.dest.test' }, attempt: 1, bounceClass: 'unknown-user', tags: ['t1'], metadata: {}, data: null,
      },
      {
        type: 'recipient.deferred', tenant: 'acme', messageId: 'm1', recipient: 'later@d.test', at: T0 + 500, egressIp: '127.0.0.2',
        reply: { code: 451, enhanced: '4.3.0', text: '451 4.3.0 try later', remoteHost: 'mx.dest.test' }, attempt: 1, bounceClass: 'other', tags: ['t1'], metadata: {}, data: null,
      },
      {
        type: 'recipient.delivered', tenant: 'acme', messageId: 'm1', recipient: 'ok@d.test', at: T0 + 500, egressIp: '127.0.0.2',
        reply: { code: 250, enhanced: '2.0.0', text: '250 2.0.0 Ok: queued as 4711', remoteHost: 'mx.dest.test' }, attempt: 1, bounceClass: 'none', tags: ['t1'], metadata: {}, data: null,
      },
    ]);

    // Recording the same results again (an uncertain commit retried) emits nothing twice.
    await store.recordAttempts([{ ...lease('ok@d.test'), outcome: outcome('delivered'), newState: 'delivered', countsAsAttempt: true }]);
    expect(await deliveries(store, hook.id)).toHaveLength(4);
  });

  it('fans standalone events out with their message\'s tags, and refuses data no backend can store', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const acme = endpoint({ eventTypes: ['recipient.complained', 'recipient.suppressed'] });
    const none = endpoint({ tenant: null, eventTypes: ['recipient.unsubscribed'] });
    await store.createWebhook(acme);
    await store.createWebhook(none);
    await store.enqueue([message('m1', { tags: ['newsletter'], metadata: { list: 'weekly' } })]);
    clock.set(T0 + 5_000);
    await store.recordWebhookEvents([
      {
        type: 'recipient.complained', tenant: 'acme', messageId: 'm1', recipient: 'user@dest.test', at: T0 + 4_000, egressIp: '127.0.0.2',
        reply: { code: null, enhanced: null, text: 'abuse report' }, data: { feedbackType: 'abuse', nested: { ok: true } },
      },
      { type: 'recipient.suppressed', tenant: 'acme', messageId: 'purged-long-ago', recipient: 'user@dest.test', at: T0 + 4_000, egressIp: null },
      { type: 'recipient.unsubscribed', tenant: null, messageId: null, recipient: 'x@dest.test', at: T0 + 4_500, egressIp: null, data: { via: 'mailto' } },
      // Nobody of tenant "other" listens.
      { type: 'recipient.complained', tenant: 'other', messageId: null, recipient: 'y@dest.test', at: T0, egressIp: null },
    ]);
    const byType = Object.fromEntries((await deliveries(store, acme.id)).map((d) => [d.event.type, d]));
    expect(byType['recipient.complained']!.event).toMatchObject({
      at: T0 + 4_000, tags: ['newsletter'], metadata: { list: 'weekly' }, reply: { code: null, enhanced: null, text: 'abuse report', remoteHost: null }, data: { feedbackType: 'abuse', nested: { ok: true } },
    });
    expect(byType['recipient.complained']).toMatchObject({ createdAt: T0 + 5_000, nextAttemptAt: T0 + 5_000 });
    expect(byType['recipient.suppressed']!.event).toMatchObject({ messageId: 'purged-long-ago', tags: [], metadata: {}, reply: null, data: null });
    expect((await deliveries(store, none.id)).map((d) => d.event)).toEqual([
      { type: 'recipient.unsubscribed', tenant: null, messageId: null, recipient: 'x@dest.test', at: T0 + 4_500, egressIp: null, reply: null, attempt: null, bounceClass: null, tags: [], metadata: {}, data: { via: 'mailto' } },
    ]);
    expect(await store.webhookOutboxStats()).toMatchObject({ pending: 3 });

    const base = { type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: 'a@b.test', at: T0, egressIp: null } as const;
    await expect(store.recordWebhookEvents([{ ...base, data: { blob: 'x'.repeat(20_000) } }])).rejects.toThrow(DataRefusedError);
    await expect(store.recordWebhookEvents([{ ...base, type: 'recipient.opened' as WebhookEventType }])).rejects.toThrow(DataRefusedError);
    await expect(store.recordWebhookEvents([{ ...base, recipient: 'nul\u0000@b.test' }])).rejects.toThrow(DataRefusedError);
    expect(await store.webhookOutboxStats()).toMatchObject({ pending: 3 });
  });

  it('claims due deliveries oldest first, at most perWebhook per endpoint, leaving out skipped endpoints and what others hold', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const a = endpoint({ eventTypes: ['recipient.complained'] });
    const b = endpoint({ eventTypes: ['recipient.complained'], tenant: 'beta' });
    await store.createWebhook(a);
    await store.createWebhook(b);
    const event = (tenant: string, i: number) => ({ type: 'recipient.complained', tenant, messageId: null, recipient: `${tenant}${i}@d.test`, at: T0, egressIp: null }) as const;
    for (let i = 0; i < 5; i++) {
      clock.set(T0 + 2 * i);
      await store.recordWebhookEvents([event('acme', i)]);
      clock.set(T0 + 2 * i + 1);
      if (i < 2) await store.recordWebhookEvents([event('beta', i)]);
    }

    const first = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, perWebhook: 2 });
    expect(first.map((c) => c.event.recipient)).toEqual(['acme0@d.test', 'beta0@d.test', 'acme1@d.test', 'beta1@d.test']);
    expect(first[0]).toMatchObject({ webhookId: a.id, url: a.url, secret: a.secret, maxEventsPerRequest: 1, attempts: 0, dueAt: T0, retryUntil: T0 + WEBHOOK_RETRY_WINDOW_MS, token: expect.any(String) });
    expect(new Set(first.map((c) => c.token)).size).toBe(1);
    // Not yet due, skipped, or held by a lease that runs: none of them.
    expect(await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 1 })).toEqual([]);
    expect(await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, skip: [a.id] })).toEqual([]);
    const rest = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, owner: 'node-b' });
    expect(rest.map((c) => c.event.recipient)).toEqual(['acme2@d.test', 'acme3@d.test', 'acme4@d.test']);
    expect(await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, limit: 0 })).toEqual([]);
    expect((await deliveries(store, a.id)).every((d) => d.state === 'delivering')).toBe(true);
  });

  it('records the crossed results of two owners at once (one endpoint failing for one, succeeding for the other) without a deadlock', async () => {
    const store = ctx.store();
    const other = await ctx.open();
    const hooks = [endpoint({ eventTypes: ['recipient.complained'] }), endpoint({ eventTypes: ['recipient.complained'] })];
    for (const h of hooks) await store.createWebhook(h);
    const event = (i: number) => ({ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: `r${i}@d.test`, at: T0, egressIp: null }) as const;
    const result = (c: ClaimedWebhookDelivery, ok: boolean) => ({ id: c.id, token: c.token, webhookId: c.webhookId, ok, status: ok ? 204 : 500, error: null, at: T0 + 10, nextAttemptAt: ok ? null : T0 + 60_000 });
    for (let round = 0; round < 10; round++) {
      await store.recordWebhookEvents([event(2 * round), event(2 * round + 1)]);
      // Each owner holds one delivery of each endpoint.
      const mine = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, perWebhook: 1 });
      const theirs = await other.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, perWebhook: 1, owner: 'node-b' });
      expect(mine.length + theirs.length).toBe(4);
      const [x, y] = hooks.map((h) => h.id);
      const recorded = await Promise.all([
        store.recordWebhookAttempts(mine.map((c) => result(c, c.webhookId === x)), DAY),
        other.recordWebhookAttempts(theirs.map((c) => result(c, c.webhookId === y)), DAY),
      ]);
      expect(recorded.flatMap((r) => r.recorded)).toHaveLength(4);
    }
  });

  it('never hands one delivery to two owners claiming at once', async () => {
    const store = ctx.store();
    const other = await ctx.open();
    const hooks = [endpoint({ eventTypes: ['recipient.complained'] }), endpoint({ eventTypes: ['recipient.complained'] })];
    for (const h of hooks) await store.createWebhook(h);
    const events = Array.from({ length: 120 }, (_, i) => ({ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: `r${i}@d.test`, at: T0, egressIp: null }) as const);
    await store.recordWebhookEvents(events.slice(0, 60));
    await other.recordWebhookEvents(events.slice(60));

    const claimedBy = new Map<string, string>();
    const duplicates: string[] = [];
    const claimer = async (s: Store, owner: string) => {
      for (;;) {
        const batch = await s.claimWebhookDeliveries({ ...claimOptions, now: T0, limit: 7, perWebhook: 5, owner });
        if (batch.length === 0) return;
        for (const c of batch) {
          if (claimedBy.has(c.id)) duplicates.push(c.id);
          claimedBy.set(c.id, owner);
        }
      }
    };
    await Promise.all([...[0, 1, 2].map((i) => claimer(store, `a-${i}`)), ...[0, 1, 2].map((i) => claimer(other, `b-${i}`))]);
    expect(duplicates).toEqual([]);
    expect(claimedBy.size).toBe(240);
  });

  it('applies a result only under its claim\'s token: a lease that ran out is claimed anew, and the late result is ignored', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const hook = endpoint({ eventTypes: ['recipient.complained'] });
    await store.createWebhook(hook);
    await store.recordWebhookEvents([{ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: 'r@d.test', at: T0, egressIp: null }]);
    const [mine] = await store.claimWebhookDeliveries({ ...claimOptions, now: T0, leaseMs: 1_000 });
    expect(await store.renewWebhookLeases([mine!], T0 + 2_000)).toEqual([]);
    expect(await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 2_000, owner: 'node-b' })).toEqual([]);
    const [theirs] = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 2_001, owner: 'node-b' });
    expect(theirs).toMatchObject({ id: mine!.id, attempts: 0 });
    expect(theirs!.token).not.toBe(mine!.token);

    clock.set(T0 + 3_000);
    const result = (lease: { id: string; token: WebhookLeaseToken }, ok: boolean): WebhookAttemptResult => ({
      ...lease, webhookId: hook.id, ok, status: ok ? 200 : 500, error: ok ? null : 'HTTP 500', at: T0 + 3_000, nextAttemptAt: T0 + 60_000,
    });
    expect(await store.renewWebhookLeases([mine!], T0 + 9_000)).toEqual([mine!.id]);
    expect(await store.recordWebhookAttempts([result(mine!, false)], WEBHOOK_RETRY_WINDOW_MS)).toEqual({ recorded: [], disabled: [] });
    await store.releaseWebhookDeliveries([mine!]);
    expect(await store.releaseAllWebhookDeliveries('node-a')).toBe(0);
    expect((await deliveries(store, hook.id))[0]).toMatchObject({ state: 'delivering', attempts: 0 });

    expect(await store.recordWebhookAttempts([result(theirs!, true)], WEBHOOK_RETRY_WINDOW_MS)).toEqual({ recorded: [theirs!.id], disabled: [] });
    // Once more, as after a commit whose answer was lost: recorded, not applied twice.
    expect(await store.recordWebhookAttempts([result(theirs!, true)], WEBHOOK_RETRY_WINDOW_MS)).toEqual({ recorded: [theirs!.id], disabled: [] });
    expect((await deliveries(store, hook.id))[0]).toMatchObject({ state: 'delivered', attempts: 1, lastStatus: 200, lastError: null, finishedAt: T0 + 3_000, lastAttemptAt: T0 + 3_000 });
  });

  it('retries a failed delivery when asked, fails it when not, and gives back released rows as they were due', async () => {
    const store = ctx.store();
    const hook = endpoint({ eventTypes: ['recipient.complained'] });
    await store.createWebhook(hook);
    const event = (r: string) => ({ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: r, at: T0, egressIp: null }) as const;
    await store.recordWebhookEvents([event('retry@d.test'), event('fail@d.test'), event('release@d.test'), event('crash@d.test')]);
    const claimed = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 5 });
    const of = (r: string) => claimed.find((c) => c.event.recipient === r)!;
    const failure = (c: (typeof claimed)[number], nextAttemptAt: number | null): WebhookAttemptResult => ({
      id: c.id, token: c.token, webhookId: hook.id, ok: false, status: null, error: `connect ECONNREFUSED ${'x'.repeat(600)}`, at: T0 + 10, nextAttemptAt,
    });
    await store.recordWebhookAttempts([failure(of('retry@d.test'), T0 + 10_000), failure(of('fail@d.test'), null)], WEBHOOK_RETRY_WINDOW_MS);
    await store.releaseWebhookDeliveries([of('release@d.test')]);
    const rows = Object.fromEntries((await deliveries(store, hook.id)).map((d) => [d.event.recipient, d]));
    expect(rows['retry@d.test']).toMatchObject({ state: 'pending', attempts: 1, nextAttemptAt: T0 + 10_000, lastStatus: null, finishedAt: null });
    expect(rows['retry@d.test']!.lastError).toHaveLength(500);
    expect(rows['fail@d.test']).toMatchObject({ state: 'failed', attempts: 1, finishedAt: T0 + 10 });
    expect(rows['release@d.test']).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: T0 });
    expect(rows['crash@d.test']).toMatchObject({ state: 'delivering' });
    expect(await store.releaseAllWebhookDeliveries('node-a')).toBe(1);
    expect((await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 9_999 })).map((c) => c.event.recipient).sort()).toEqual(['crash@d.test', 'release@d.test']);
    expect((await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10_000 })).map((c) => c.event.recipient)).toEqual(['retry@d.test']);
    expect((await store.getWebhook(hook.id))!.failingSince).toBe(T0 + 10);
  });

  it('disables an endpoint whose deliveries all failed for the window: no new events, pending ones held; enabling makes them due', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const hook = endpoint({ eventTypes: ['recipient.complained'] });
    const healthy = endpoint({ eventTypes: ['recipient.complained'] });
    await store.createWebhook(hook);
    await store.createWebhook(healthy);
    const event = (r: string) => ({ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: r, at: clock.now(), egressIp: null }) as const;
    const fail = async (at: number): Promise<Awaited<ReturnType<Store['recordWebhookAttempts']>>> => {
      clock.set(at);
      const [c] = await store.claimWebhookDeliveries({ ...claimOptions, now: at, limit: 1, skip: [healthy.id] });
      return store.recordWebhookAttempts([{ id: c!.id, token: c!.token, webhookId: hook.id, ok: false, status: 503, error: 'HTTP 503', at, nextAttemptAt: at + DAY * 10 }], WEBHOOK_RETRY_WINDOW_MS);
    };
    await store.recordWebhookEvents([event('a@d.test'), event('b@d.test'), event('c@d.test')]);
    expect(await fail(T0 + 1)).toMatchObject({ disabled: [] });
    // A success ends the run of failures: the window starts again at the next failure.
    const [ok] = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 2, limit: 1, skip: [healthy.id] });
    await store.recordWebhookAttempts([{ id: ok!.id, token: ok!.token, webhookId: hook.id, ok: true, status: 204, error: null, at: T0 + 2, nextAttemptAt: null }], WEBHOOK_RETRY_WINDOW_MS);
    expect((await store.getWebhook(hook.id))!.failingSince).toBeNull();
    await store.recordWebhookEvents([event('d@d.test')]);
    expect(await fail(T0 + 3)).toMatchObject({ disabled: [] });
    expect((await store.getWebhook(hook.id))!.failingSince).toBe(T0 + 3);
    await store.recordWebhookEvents([event('e@d.test')]);
    expect(await fail(T0 + 3 + WEBHOOK_RETRY_WINDOW_MS - 1)).toMatchObject({ disabled: [] });

    const at = T0 + 3 + WEBHOOK_RETRY_WINDOW_MS;
    await store.recordWebhookEvents([event('f@d.test')]);
    expect(await fail(at)).toEqual({ recorded: [expect.any(String)], disabled: [{ id: hook.id, tenant: 'acme', url: hook.url, failingSince: T0 + 3 }] });
    expect(await store.getWebhook(hook.id)).toMatchObject({ enabled: false, disabledReason: 'every delivery failed for 72 hours', disabledAt: at, failingSince: T0 + 3 });
    // Held: neither claimed nor fed.
    await store.recordWebhookEvents([event('g@d.test')]);
    const held = await deliveries(store, hook.id);
    expect(held.map((d) => d.state).sort()).toEqual(['delivered', 'held', 'held', 'held', 'held', 'held']);
    expect((await store.claimWebhookDeliveries({ ...claimOptions, now: at + DAY * 30 })).map((c) => c.webhookId)).toEqual([healthy.id, healthy.id, healthy.id, healthy.id, healthy.id, healthy.id, healthy.id]);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 0, held: 5, disabledEndpoints: 1 });

    const enabled = await store.updateWebhook(hook.id, { enabled: true }, at + 100);
    expect(enabled).toMatchObject({ enabled: true, disabledReason: null, disabledAt: null, failingSince: null, updatedAt: at + 100 });
    // Due now: those waiting for a later retry are brought forward.
    expect((await deliveries(store, hook.id)).filter((d) => d.state === 'pending').map((d) => d.nextAttemptAt <= at + 100)).toEqual([true, true, true, true, true]);
    // Each gets a retry window from its release: held past its own, it would have one try only.
    expect((await deliveries(store, hook.id)).filter((d) => d.state === 'pending').every((d) => d.retryUntil === at + 100 + WEBHOOK_RETRY_WINDOW_MS)).toBe(true);
    await store.recordWebhookEvents([event('h@d.test')]);
    expect(await deliveries(store, hook.id)).toHaveLength(7);

    // An operator's disabling holds the same way, with its own reason.
    expect(await store.updateWebhook(hook.id, { enabled: false, disabledReason: 'receiver moving' }, at + 200)).toMatchObject({ enabled: false, disabledReason: 'receiver moving' });
    expect((await deliveries(store, hook.id)).filter((d) => d.state === 'held')).toHaveLength(6);
  });

  it('disables, enables and deletes an endpoint with more deliveries than one transaction changes, and claims leave a disabled one\'s', async () => {
    const store = ctx.store();
    const busy = endpoint({ eventTypes: ['recipient.complained'] });
    const quiet = endpoint({ eventTypes: ['recipient.complained'], tenant: 'other' });
    await store.createWebhook(busy);
    await store.createWebhook(quiet);
    const event = (tenant: string, i: number) => ({ type: 'recipient.complained', tenant, messageId: null, recipient: `r${i}@d.test`, at: T0, egressIp: null }) as const;
    await store.recordWebhookEvents(Array.from({ length: 2_500 }, (_, i) => event('acme', i)));
    await store.recordWebhookEvents([event('other', 0)]);
    // Half of them failed once and wait for a retry a day later.
    const claimed = await store.claimWebhookDeliveries({ ...claimOptions, now: T0, limit: 1_000, perWebhook: 1_000, skip: [quiet.id] });
    await store.recordWebhookAttempts(claimed.slice(1).map((c) => ({ id: c.id, token: c.token, webhookId: busy.id, ok: false, status: 503, error: 'HTTP 503', at: T0, nextAttemptAt: T0 + DAY })), WEBHOOK_RETRY_WINDOW_MS);

    // One is in flight when the endpoint is disabled; its lease runs out.
    await store.updateWebhook(busy.id, { enabled: false }, T0 + 1);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 1, held: 2_499, disabledEndpoints: 1 });
    expect((await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 2 * DAY, limit: 1_000 })).map((c) => c.webhookId)).toEqual([quiet.id]);
    // The claim gave the row whose lease ran out back: held with the others, not sent.
    expect(await store.webhookOutboxStats()).toEqual({ pending: 0, held: 2_500, disabledEndpoints: 1 });
    expect(await store.listWebhookDeliveries(busy.id, { state: 'pending', after: null, limit: 10 })).toEqual([]);
    expect(await store.listWebhookDeliveries(busy.id, { state: 'held', after: null, limit: 10 })).toHaveLength(10);

    await store.updateWebhook(busy.id, { enabled: true }, T0 + 2);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 2_500, held: 0, disabledEndpoints: 0 });
    const due = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 2, limit: 3_000, perWebhook: 3_000 });
    expect(due).toHaveLength(2_500);
    expect(due.every((d) => d.retryUntil >= T0 + 2 + WEBHOOK_RETRY_WINDOW_MS)).toBe(true);
    await store.releaseWebhookDeliveries(due);

    expect(await store.deleteWebhook(busy.id)).toBe(true);
    expect(await store.getWebhook(busy.id)).toBeNull();
    expect(await deliveries(store, busy.id)).toEqual([]);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 0, held: 0, disabledEndpoints: 0 });
  });

  it('replays one delivery or a range of them, never one in flight, and holds a replay for a disabled endpoint', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const hook = endpoint({ eventTypes: ['recipient.complained'] });
    await store.createWebhook(hook);
    for (let i = 0; i < 4; i++) {
      clock.set(T0 + i * 1_000);
      await store.recordWebhookEvents([{ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: `r${i}@d.test`, at: T0, egressIp: null }]);
    }
    const claimed = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 5_000 });
    const of = (i: number) => claimed.find((c) => c.event.recipient === `r${i}@d.test`)!;
    const result = (i: number, ok: boolean): WebhookAttemptResult => ({ id: of(i).id, token: of(i).token, webhookId: hook.id, ok, status: ok ? 200 : 410, error: null, at: T0 + 6_000, nextAttemptAt: null });
    await store.recordWebhookAttempts([result(0, true), result(1, false), result(2, false)], WEBHOOK_RETRY_WINDOW_MS);

    const now = T0 + DAY;
    const replayed = await store.replayWebhookDelivery(hook.id, of(0).id, now);
    expect(replayed).toMatchObject({ id: of(0).id, state: 'pending', attempts: 1, nextAttemptAt: now, retryUntil: now + WEBHOOK_RETRY_WINDOW_MS, finishedAt: null, lastStatus: 200 });
    // In flight: left to its claim.
    expect(await store.replayWebhookDelivery(hook.id, of(3).id, now)).toMatchObject({ state: 'delivering' });
    expect(await store.replayWebhookDelivery(hook.id, 'msg_nope', now)).toBeNull();
    expect(await store.replayWebhookDelivery('wh_other', of(1).id, now)).toBeNull();

    // A range: created at or after since, before until, of a state.
    expect(await store.replayWebhookDeliveries(hook.id, { since: T0, until: T0 + 2_000, state: 'failed' }, now, 100)).toBe(1);
    expect(await store.replayWebhookDeliveries(hook.id, { since: T0, until: null, state: null }, now, 1)).toBe(1);
    const states = Object.fromEntries((await deliveries(store, hook.id)).map((d) => [d.event.recipient, d.state]));
    expect(states).toEqual({ 'r0@d.test': 'pending', 'r1@d.test': 'pending', 'r2@d.test': 'failed', 'r3@d.test': 'delivering' });
    expect(await store.replayWebhookDeliveries(hook.id, { since: T0, until: null, state: null }, now, 100)).toBe(3);

    await store.updateWebhook(hook.id, { enabled: false }, now);
    expect(await store.replayWebhookDelivery(hook.id, of(2).id, now + 1)).toMatchObject({ state: 'held', nextAttemptAt: now + 1 });
  });

  it('lists an endpoint\'s deliveries newest first by cursor and state, and purges finished ones', async () => {
    const store = ctx.store();
    const clock = ctx.clock();
    const hook = endpoint({ eventTypes: ['recipient.complained'] });
    await store.createWebhook(hook);
    for (let i = 0; i < 5; i++) {
      clock.set(T0 + i);
      await store.recordWebhookEvents([{ type: 'recipient.complained', tenant: 'acme', messageId: null, recipient: `r${i}@d.test`, at: T0, egressIp: null }]);
    }
    const page1 = await store.listWebhookDeliveries(hook.id, { state: null, after: null, limit: 2 });
    expect(page1.map((d) => d.event.recipient)).toEqual(['r4@d.test', 'r3@d.test']);
    const page2 = await store.listWebhookDeliveries(hook.id, { state: null, after: { createdAt: page1[1]!.createdAt, id: page1[1]!.id }, limit: 10 });
    expect(page2.map((d) => d.event.recipient)).toEqual(['r2@d.test', 'r1@d.test', 'r0@d.test']);

    const claimed = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 10, limit: 2 });
    await store.recordWebhookAttempts(claimed.map((c) => ({ id: c.id, token: c.token, webhookId: hook.id, ok: true, status: 200, error: null, at: T0 + 100, nextAttemptAt: null })), WEBHOOK_RETRY_WINDOW_MS);
    expect((await store.listWebhookDeliveries(hook.id, { state: 'delivered', after: null, limit: 10 })).map((d) => d.event.recipient)).toEqual(['r1@d.test', 'r0@d.test']);
    expect(await store.listWebhookDeliveries('wh_unknown', { state: null, after: null, limit: 10 })).toEqual([]);

    expect(await store.purgeWebhookDeliveries(T0 + 100)).toBe(0);
    expect(await store.purgeWebhookDeliveries(T0 + 101)).toBe(2);
    expect(await deliveries(store, hook.id)).toHaveLength(3);
  });

  it('changes and deletes endpoints: new event types resubscribe, listing by tenant, deletion takes the deliveries along', async () => {
    const store = ctx.store();
    const hook = endpoint({ eventTypes: ['recipient.complained'], description: 'CRM' });
    const none = endpoint({ tenant: null });
    const other = endpoint({ tenant: 'other' });
    for (const e of [hook, none, other]) await store.createWebhook(e);
    const event = { type: 'recipient.bounced', tenant: 'acme', messageId: null, recipient: 'r@d.test', at: T0, egressIp: null } as const;
    await store.recordWebhookEvents([event]);
    expect(await deliveries(store, hook.id)).toEqual([]);

    const changed = await store.updateWebhook(hook.id, { eventTypes: ['recipient.bounced'], url: 'https://new.example/x', description: null, secret: 'whsec_bmV3LXNlY3JldC1ieXRlcy0yNA==' }, T0 + 7);
    expect(changed).toMatchObject({ eventTypes: ['recipient.bounced'], url: 'https://new.example/x', description: null, secret: 'whsec_bmV3LXNlY3JldC1ieXRlcy0yNA==', enabled: true, updatedAt: T0 + 7, createdAt: T0 });
    await store.recordWebhookEvents([event]);
    expect(await deliveries(store, hook.id)).toHaveLength(1);
    expect(await store.updateWebhook(hook.id, { maxEventsPerRequest: 40 }, T0 + 7)).toMatchObject({ maxEventsPerRequest: 40, url: 'https://new.example/x' });
    const [claimed] = await store.claimWebhookDeliveries({ ...claimOptions, now: T0 + 8 });
    expect(claimed).toMatchObject({ url: 'https://new.example/x', secret: 'whsec_bmV3LXNlY3JldC1ieXRlcy0yNA==', maxEventsPerRequest: 40 });
    for (const bad of [0, 101, 1.5]) {
      await expect(store.updateWebhook(hook.id, { maxEventsPerRequest: bad }, T0 + 9)).rejects.toThrow(DataRefusedError);
      await expect(store.createWebhook(endpoint({ maxEventsPerRequest: bad }))).rejects.toThrow(DataRefusedError);
    }
    expect((await store.getWebhook(hook.id))!.maxEventsPerRequest).toBe(40);
    expect(await store.updateWebhook('wh_unknown', { enabled: false }, T0)).toBeNull();

    expect((await store.listWebhooks('acme', null, 10)).map((e) => e.id)).toEqual([hook.id]);
    expect((await store.listWebhooks(null, null, 10)).map((e) => e.id)).toEqual([none.id]);
    expect((await store.listWebhooks(undefined, null, 10)).map((e) => e.id)).toEqual([hook.id, none.id, other.id].sort());
    expect((await store.listWebhooks(undefined, [hook.id, none.id, other.id].sort()[0]!, 1)).map((e) => e.id)).toEqual([[hook.id, none.id, other.id].sort()[1]]);

    expect(await store.deleteWebhook(hook.id)).toBe(true);
    expect(await store.deleteWebhook(hook.id)).toBe(false);
    expect(await store.getWebhook(hook.id)).toBeNull();
    expect(await deliveries(store, hook.id)).toEqual([]);
    await store.recordWebhookEvents([event]);
    expect(await store.webhookOutboxStats()).toEqual({ pending: 0, held: 0, disabledEndpoints: 0 });
    await expect(store.createWebhook(endpoint({ eventTypes: [] }))).rejects.toThrow(DataRefusedError);
    await expect(store.createWebhook({ ...endpoint(), id: none.id })).rejects.toThrow(DataRefusedError);
  });
  it('writes the events of a dropped recipient, an unsubscribe and a report with their change, in its transaction', async () => {
    const store = ctx.store();
    const hook = endpoint({ eventTypes: ['recipient.suppressed', 'recipient.unsubscribed', 'recipient.complained'] });
    await store.createWebhook(hook);
    const dropped = outcome('permanent', { code: null, enhanced: null, response: 'recipient suppressed (complaint)', stage: 'queue', bounceClass: 'suppressed', remoteHost: null, egressIp: null });
    await store.enqueue([message('m-drop', { recipients: ['kept@dest.test', 'gone@dest.test'], suppressed: [{ recipient: 'gone@dest.test', outcome: dropped }] })]);

    const unsubscribed = { type: 'recipient.unsubscribed' as const, tenant: 'acme', messageId: 'm-drop', recipient: 'kept@dest.test', at: T0 + 1, egressIp: null, data: { channel: 'https' } };
    await store.addSuppressions([{ tenant: 'acme', address: 'kept@dest.test', reason: 'unsubscribe', source: null, createdAt: T0 + 1, expiresAt: null }], [unsubscribed]);
    // An event the store refuses (an unknown type) refuses the entry it came with.
    const bad = { ...unsubscribed, type: 'recipient.unknown' as WebhookEventType };
    await expect(store.addSuppressions([{ tenant: 'acme', address: 'other@dest.test', reason: 'manual', source: null, createdAt: T0, expiresAt: null }], [bad])).rejects.toThrow(DataRefusedError);
    expect(await store.getSuppression('acme', 'other@dest.test', T0)).toBeNull();

    const [row] = await store.listRecipients('m-drop');
    const complaint = {
      messageId: 'm-drop', recipientId: row!.recipientId, recipient: 'kept@dest.test', kind: 'complaint' as const, at: T0 + 2, action: null, code: null, enhanced: null,
      diagnostic: 'abuse', bounceClass: null, reporter: 'fbl.example', details: {}, egressIp: null, fingerprint: 'report-1',
    };
    const complained = { type: 'recipient.complained' as const, tenant: 'acme', messageId: 'm-drop', recipient: 'kept@dest.test', at: T0 + 2, egressIp: null };
    await store.recordFeedback(complaint, complained);
    // The same report again: recorded once, so its event is written once.
    expect((await store.recordFeedback(complaint, complained)).duplicate).toBe(true);

    const events = (await deliveries(store, hook.id)).map((d) => [d.event.type, d.event.recipient]);
    expect(events.sort()).toEqual([
      ['recipient.complained', 'kept@dest.test'],
      ['recipient.suppressed', 'gone@dest.test'],
      ['recipient.unsubscribed', 'kept@dest.test'],
    ]);
  });
}
