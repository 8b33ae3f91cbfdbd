import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { IdempotencyRecord, NewMessage, Store } from '../../src/storage/store.ts';
import { newMessage as readsMessage } from '../helpers/new-message.ts';

/**
 * Messages sent over HTTP in the store contract: their schedule, tags and metadata, and the
 * idempotency keys stored with them (IdempotencyKeys). Called from runStoreContract, so every
 * backend stores real rows, and two stores on one database race for one key.
 */

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

/** A message as the HTTP API stores it. */
function newMessage(id: string, overrides: Partial<NewMessage> = {}): NewMessage {
  return readsMessage(id, overrides.createdAt ?? T0, { submitter: 'app-token', source: 'http', ...overrides });
}

function record(overrides: Partial<IdempotencyRecord> = {}): IdempotencyRecord {
  return { scope: 'app-token', key: 'order-4711', requestHash: 'hash-a', status: 202, response: '{"id":"first"}', createdAt: T0, ...overrides };
}

export function registerIdempotencyContract(ctx: { store: () => Store; clock: () => ManualClock; open: () => Promise<Store> }): void {
  it('stores a message\'s tags, metadata and scheduled time, lists by tag, and counts its age from the schedule', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('tagged', { tags: ['welcome', 'Ünïcode tag'], metadata: { orderId: '4711', 'user.id': 'u-1' }, dueAt: T0 + DAY }),
      newMessage('plain', { createdAt: T0 + 1, dueAt: T0 + 1 }),
      newMessage('other-tag', { createdAt: T0 + 2, dueAt: T0 + 2, tags: ['welcome-back'] }),
    ]);
    expect(await store.getMessageInfo('tagged')).toMatchObject({ sendAt: T0 + DAY, tags: ['welcome', 'Ünïcode tag'], metadata: { orderId: '4711', 'user.id': 'u-1' } });
    expect(await store.getMessageInfo('plain')).toMatchObject({ sendAt: null, tags: [], metadata: {} });

    const query = { state: null, sender: null, recipient: null, domain: null, pool: null, since: null, until: null, tenant: null, after: null, limit: 10 } as const;
    const byTag = async (tag: string) => (await store.listMessages({ ...query, tag })).map((m) => m.id);
    expect(await byTag('welcome')).toEqual(['tagged']);
    expect(await byTag('Ünïcode tag')).toEqual(['tagged']);
    expect(await byTag('WELCOME')).toEqual([]);
    expect(await byTag('welcome-back')).toEqual(['other-tag']);
    const [listed] = await store.listMessages({ ...query, tag: 'welcome' });
    expect(listed).toMatchObject({ tags: ['welcome', 'Ünïcode tag'], sendAt: T0 + DAY, states: { queued: 1 } });

    // Not due before its time; then claimed with its age counted from the schedule (delivery.maxAge).
    expect((await store.claimDue({ now: T0 + DAY - 1, limit: 10, owner: 'node-a', leaseMs: 60_000 })).map((c) => c.messageId).sort()).toEqual(['other-tag', 'plain']);
    const [scheduled] = await store.claimDue({ now: T0 + DAY, limit: 10, owner: 'node-a', leaseMs: 60_000 });
    expect(scheduled).toMatchObject({ messageId: 'tagged', messageCreatedAt: T0 + DAY });
  });

  it('stores an idempotency key with its messages, and nothing for the key again within its time', async () => {
    const store = ctx.store();
    expect(await store.enqueueOnce([newMessage('first')], record(), T0 - DAY)).toEqual({ stored: true });
    expect(await store.getIdempotencyRecord('app-token', 'order-4711', T0 - DAY)).toEqual(record());
    expect(await store.getMessageInfo('first')).not.toBeNull();

    const again = await store.enqueueOnce([newMessage('second')], record({ requestHash: 'hash-b', response: '{"id":"second"}', createdAt: T0 + 5 }), T0 + 5 - DAY);
    expect(again).toEqual({ stored: false, existing: record() });
    expect(await store.getMessageInfo('second')).toBeNull();
    expect(await store.listRecipients('second')).toEqual([]);

    // Keys are per scope: another token's same key is its own.
    expect(await store.enqueueOnce([newMessage('theirs')], record({ scope: 'other-token' }), T0 - DAY)).toEqual({ stored: true });
    // A request that stored no message (every item of a batch refused) still spends its key.
    expect(await store.enqueueOnce([], record({ key: 'empty-batch' }), T0 - DAY)).toEqual({ stored: true });
    expect(await store.getIdempotencyRecord('app-token', 'empty-batch', T0 - DAY)).toMatchObject({ key: 'empty-batch' });
  });

  it('forgets a key past its time: a newer request replaces it, and the purge deletes it', async () => {
    const store = ctx.store();
    await store.enqueueOnce([newMessage('old')], record(), T0 - DAY);
    const later = T0 + DAY + 1;
    expect(await store.getIdempotencyRecord('app-token', 'order-4711', later - DAY)).toBeNull();
    const fresh = record({ requestHash: 'hash-b', response: '{"id":"new"}', createdAt: later });
    expect(await store.enqueueOnce([newMessage('new')], fresh, later - DAY)).toEqual({ stored: true });
    expect(await store.getIdempotencyRecord('app-token', 'order-4711', later - DAY)).toEqual(fresh);

    await store.enqueueOnce([], record({ key: 'stale', createdAt: T0 }), T0 - DAY);
    expect(await store.purgeIdempotencyKeys(later - DAY)).toBe(1);
    expect(await store.getIdempotencyRecord('app-token', 'stale', 0)).toBeNull();
    expect(await store.getIdempotencyRecord('app-token', 'order-4711', 0)).toEqual(fresh);
    expect(await store.purgeIdempotencyKeys(later - DAY)).toBe(0);
  });

  it('lets one of two stores on one database store a key, and gives the other its record', async () => {
    const first = ctx.store();
    const second = await ctx.open();
    for (let round = 0; round < 5; round++) {
      const key = `race-${round}`;
      const results = await Promise.all([
        first.enqueueOnce([newMessage(`a-${round}`)], record({ key, response: `{"id":"a-${round}"}` }), T0 - DAY),
        second.enqueueOnce([newMessage(`b-${round}`)], record({ key, response: `{"id":"b-${round}"}` }), T0 - DAY),
      ]);
      const winners = results.filter((r) => r.stored);
      expect(winners).toHaveLength(1);
      const loser = results.find((r) => !r.stored) as { stored: false; existing: IdempotencyRecord };
      const winner = results[0]!.stored ? 'a' : 'b';
      expect(loser.existing.response).toBe(`{"id":"${winner}-${round}"}`);
      expect(await first.getMessageInfo(`${winner}-${round}`)).not.toBeNull();
      expect(await first.getMessageInfo(`${winner === 'a' ? 'b' : 'a'}-${round}`)).toBeNull();
    }
  });

  it('refuses a record no backend could store, with nothing stored', async () => {
    const store = ctx.store();
    await expect(store.enqueueOnce([newMessage('nul')], record({ key: 'a\u0000b' }), T0 - DAY)).rejects.toThrow(/without NUL/);
    expect(await store.getMessageInfo('nul')).toBeNull();
  });
}
