import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { NewFeedbackEvent } from '../../src/storage/feedback-events.ts';
import { DataRefusedError, type Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * The feedback events (FeedbackEvents) in the store contract: called from runStoreContract, so
 * every backend records asynchronous bounces and complaints on real recipient rows.
 */

const T0 = 1_700_000_000_000;

function delivered(egressIp: string): DeliveryOutcome {
  return { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: 'Ok: queued as X', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp };
}

/** Claims every due row and records it delivered from `egressIp` (or left queued for `keepQueued`). */
async function deliverAll(store: Store, now: number, egressIp: string, keepQueued: string[] = []): Promise<void> {
  const claimed = await store.claimDue({ now, limit: 1000, owner: 'node-a', leaseMs: 60_000 });
  const keep = claimed.filter((c) => keepQueued.includes(c.recipient));
  await store.recordAttempts(claimed.filter((c) => !keepQueued.includes(c.recipient)).map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: delivered(egressIp), newState: 'delivered', countsAsAttempt: true })));
  await store.release(keep, now);
}

function bounce(overrides: Partial<NewFeedbackEvent> & Pick<NewFeedbackEvent, 'messageId' | 'recipientId' | 'recipient'>): NewFeedbackEvent {
  return {
    kind: 'bounce',
    at: T0 + 60_000,
    action: 'failed',
    code: 550,
    enhanced: '5.1.1',
    diagnostic: '5.1.1 <user@dest.test>: Recipient address rejected: User unknown',
    bounceClass: 'unknown-user',
    reporter: 'relay.dest.test',
    details: { remoteMta: 'mailbox.dest.test' },
    egressIp: '127.0.0.2',
    fingerprint: `fp-${overrides.messageId}-${overrides.recipientId}-${overrides.kind ?? 'bounce'}-${overrides.action ?? 'failed'}`,
    ...overrides,
  };
}

export function registerFeedbackContract(ctx: { store: () => Store; clock: () => ManualClock }): void {
  it('finds the recipient a report names by row id or by address (case ignored), with its message and egress IP', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-find', T0, { recipients: ['One@Dest.test', 'two@dest.test'], tenant: 'acme' })]);
    await deliverAll(store, T0 + 10, '127.0.0.3');
    const [one, two] = await store.listRecipients('fb-find');

    const byId = await store.findRecipientForFeedback('fb-find', two!.recipientId);
    expect(byId).toEqual({
      messageId: 'fb-find', recipientId: two!.recipientId, recipient: 'two@dest.test', domain: 'dest.test', state: 'delivered',
      egressIp: '127.0.0.3', tenant: 'acme', sender: 'app@sender.test',
    });
    expect(await store.findRecipientForFeedback('fb-find', 'one@DEST.TEST')).toMatchObject({ recipientId: one!.recipientId, recipient: 'One@Dest.test' });
    // Another message's row, an unknown address, an unknown message: none.
    await store.enqueue([newMessage('fb-other', T0)]);
    const [other] = await store.listRecipients('fb-other');
    expect(await store.findRecipientForFeedback('fb-find', other!.recipientId)).toBeNull();
    expect(await store.findRecipientForFeedback('fb-find', 'nobody@dest.test')).toBeNull();
    expect(await store.findRecipientForFeedback('nope', 'one@dest.test')).toBeNull();
  });

  it('bounces a delivered recipient on an asynchronous failed bounce, keeping the delivering attempt of it', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-bounce', T0)]);
    await deliverAll(store, T0 + 10, '127.0.0.2');
    const [row] = await store.listRecipients('fb-bounce');

    const event = bounce({ messageId: 'fb-bounce', recipientId: row!.recipientId, recipient: row!.recipient });
    const recorded = await store.recordFeedback(event);
    expect(recorded).toEqual({ id: expect.any(Number), duplicate: false, bounced: true });

    const [after] = await store.listRecipients('fb-bounce');
    expect(after).toMatchObject({ state: 'bounced', updatedAt: T0 + 60_000, attempts: 1 });
    expect(after!.lastOutcome).toEqual({
      disposition: 'permanent', code: 550, enhanced: '5.1.1', response: event.diagnostic, stage: 'dot', bounceClass: 'unknown-user',
      remoteHost: 'mx.dest.test', egressIp: '127.0.0.2',
    });
    const { fingerprint: _fingerprint, ...stored } = event;
    expect(await store.listFeedback('fb-bounce')).toEqual([{ ...stored, id: recorded.id }]);
    // The attempt events are the deliveries only: an asynchronous bounce is a feedback event.
    expect((await store.listEvents('fb-bounce')).map((e) => e.outcome.disposition)).toEqual(['delivered']);
  });

  it('records a report delivered twice once, by its fingerprint', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-twice', T0)]);
    await deliverAll(store, T0 + 10, '127.0.0.2');
    const [row] = await store.listRecipients('fb-twice');
    const event = bounce({ messageId: 'fb-twice', recipientId: row!.recipientId, recipient: row!.recipient, fingerprint: 'same-report' });

    const [a, b] = await Promise.all([store.recordFeedback(event), store.recordFeedback({ ...event, at: T0 + 70_000 })]);
    expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);
    expect(a.id).toBe(b.id);
    expect(await store.recordFeedback(event)).toEqual({ id: a.id, duplicate: true, bounced: false });
    expect(await store.listFeedback('fb-twice')).toHaveLength(1);
  });

  it('records a delayed bounce, a complaint and an unsubscribe without changing the recipient', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-keep', T0)]);
    await deliverAll(store, T0 + 10, '127.0.0.2');
    const [row] = await store.listRecipients('fb-keep');
    const ids = { messageId: 'fb-keep', recipientId: row!.recipientId, recipient: row!.recipient };

    const delayed = await store.recordFeedback(bounce({ ...ids, action: 'delayed', code: 451, enhanced: '4.2.2', bounceClass: 'mailbox-full', at: T0 + 1000 }));
    const complaint = await store.recordFeedback(
      bounce({ ...ids, kind: 'complaint', action: null, code: null, enhanced: null, diagnostic: 'abuse', bounceClass: null, reporter: 'Yahoo!-Mail-Feedback/2.0', details: { sourceIp: '127.0.0.2', feedbackType: 'abuse' }, at: T0 + 2000 }),
    );
    const unsubscribe = await store.recordFeedback(bounce({ ...ids, kind: 'unsubscribe', action: null, code: null, enhanced: null, diagnostic: null, bounceClass: null, reporter: null, details: {}, at: T0 + 3000 }));
    expect([delayed.bounced, complaint.bounced, unsubscribe.bounced]).toEqual([false, false, false]);
    expect((await store.listRecipients('fb-keep'))[0]).toMatchObject({ state: 'delivered', updatedAt: row!.updatedAt });

    const events = await store.listFeedback('fb-keep');
    expect(events.map((e) => [e.kind, e.action, e.at])).toEqual([
      ['bounce', 'delayed', T0 + 1000],
      ['complaint', null, T0 + 2000],
      ['unsubscribe', null, T0 + 3000],
    ]);
    expect(events[1]).toMatchObject({ reporter: 'Yahoo!-Mail-Feedback/2.0', details: { sourceIp: '127.0.0.2', feedbackType: 'abuse' }, code: null, bounceClass: null });
  });

  it('leaves a recipient still queued, or already bounced, as it is on a failed bounce', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-queued', T0, { recipients: ['a@dest.test', 'b@dest.test'] })]);
    await deliverAll(store, T0 + 10, '127.0.0.2', ['a@dest.test']);
    const [a, b] = await store.listRecipients('fb-queued');
    expect(a!.state).toBe('queued');

    expect((await store.recordFeedback(bounce({ messageId: 'fb-queued', recipientId: a!.recipientId, recipient: a!.recipient }))).bounced).toBe(false);
    expect((await store.listRecipients('fb-queued'))[0]!.state).toBe('queued');

    expect((await store.recordFeedback(bounce({ messageId: 'fb-queued', recipientId: b!.recipientId, recipient: b!.recipient }))).bounced).toBe(true);
    const second = await store.recordFeedback(bounce({ messageId: 'fb-queued', recipientId: b!.recipientId, recipient: b!.recipient, code: 554, enhanced: '5.7.1', fingerprint: 'second-bounce' }));
    expect(second).toMatchObject({ duplicate: false, bounced: false });
    expect((await store.listRecipients('fb-queued'))[1]!.lastOutcome).toMatchObject({ code: 550, enhanced: '5.1.1' });
  });

  it('refuses an event for a recipient the message does not have', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-x', T0), newMessage('fb-y', T0)]);
    const [y] = await store.listRecipients('fb-y');
    await expect(store.recordFeedback(bounce({ messageId: 'fb-x', recipientId: y!.recipientId, recipient: y!.recipient }))).rejects.toBeInstanceOf(DataRefusedError);
    await expect(store.recordFeedback(bounce({ messageId: 'fb-x', recipientId: 1e12, recipient: 'user@dest.test' }))).rejects.toBeInstanceOf(DataRefusedError);
    expect(await store.listFeedback('fb-x')).toEqual([]);
  });

  it('keeps remote text storable: NUL replaced, long text cut, large details bounded', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-text', T0)]);
    const [row] = await store.listRecipients('fb-text');
    const details = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field${i}`, 'x'.repeat(400)]));
    await store.recordFeedback(bounce({ messageId: 'fb-text', recipientId: row!.recipientId, recipient: row!.recipient, diagnostic: `a\u0000b${'y'.repeat(5000)}`, reporter: 'mx\u0000.test', details }));
    const [event] = await store.listFeedback('fb-text');
    expect(event!.diagnostic!.startsWith('a\uFFFDb')).toBe(true);
    expect(event!.diagnostic!.length).toBe(2000);
    expect(event!.reporter).toBe('mx\uFFFD.test');
    expect(Buffer.byteLength(JSON.stringify(event!.details))).toBeLessThanOrEqual(8192);
    expect(Object.keys(event!.details)[0]).toBe('field0');
  });

  it('finds the messages with a Message-ID header, newest first, leaving DSNs out', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('fb-h1', T0, { messageIdHeader: '<same@sender.test>' }),
      newMessage('fb-h2', T0 + 5, { messageIdHeader: '<same@sender.test>' }),
      newMessage('fb-h3', T0 + 9, { messageIdHeader: '<same@sender.test>', source: 'dsn', sender: '' }),
      newMessage('fb-h4', T0, { messageIdHeader: `<${'long'.repeat(1000)}@sender.test>` }),
    ]);
    expect(await store.findMessagesByHeaderId('<same@sender.test>', 10)).toEqual(['fb-h2', 'fb-h1']);
    expect(await store.findMessagesByHeaderId('<same@sender.test>', 1)).toEqual(['fb-h2']);
    expect(await store.findMessagesByHeaderId(`<${'long'.repeat(1000)}@sender.test>`, 10)).toEqual(['fb-h4']);
    expect(await store.findMessagesByHeaderId('<SAME@sender.test>', 10)).toEqual([]);
    expect(await store.findMessagesByHeaderId('<unknown@sender.test>', 10)).toEqual([]);
  });

  it('purges the feedback events with their finished message', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('fb-purge', T0)]);
    await deliverAll(store, T0 + 10, '127.0.0.2');
    const [row] = await store.listRecipients('fb-purge');
    await store.recordFeedback(bounce({ messageId: 'fb-purge', recipientId: row!.recipientId, recipient: row!.recipient }));
    expect(await store.purgeFinished(T0 + 120_000)).toBe(1);
    expect(await store.listFeedback('fb-purge')).toEqual([]);
  });
}
