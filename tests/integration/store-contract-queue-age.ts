import { expect, it } from 'vitest';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * The oldest-queued gauge's read (QueueAgeReads) in the store contract: called from
 * runStoreContract, so every backend answers it against real rows.
 */

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

const delivered: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' };
const bounced: DeliveryOutcome = { ...delivered, disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '550 no such user', stage: 'rcpt', bounceClass: 'unknown-user' };

/** Claims what is due at `now`, records `results` (by recipient) as final, and leaves the rest claimed (delivering). */
async function finish(store: Store, now: number, results: Record<string, DeliveryOutcome>): Promise<void> {
  const claimed = await store.claimDue({ now, limit: 100, owner: 'node-a', leaseMs: 60_000 });
  await store.recordAttempts(
    claimed.flatMap((c) => {
      const outcome = results[c.recipient];
      if (!outcome) return [];
      return [{ recipientId: c.recipientId, token: c.token, outcome, newState: outcome === delivered ? 'delivered' : 'bounced', countsAsAttempt: true } as const];
    }),
  );
}

export function registerQueueAgeContract(ctx: { store: () => Store }): void {
  it('finds the oldest waiting recipient of an id range by acceptance order with its time, and what below it is scheduled for later', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('age-a', T0, { recipients: ['one@dest.test', 'two@dest.test'] }),
      // A scheduled send: unfinished, but not waiting before its send time.
      newMessage('age-b', T0 + 10, { recipients: ['three@dest.test'], dueAt: T0 + HOUR }),
      newMessage('age-c', T0 + 20, { recipients: ['four@dest.test'] }),
      // Scheduled too, for later than age-b and for earlier.
      newMessage('age-d', T0 + 30, { recipients: ['five@dest.test'], dueAt: T0 + 2 * HOUR }),
      newMessage('age-e', T0 + 40, { recipients: ['six@dest.test'], dueAt: T0 + HOUR / 2 }),
    ]);
    const id = async (message: string, index = 0) => (await store.listRecipients(message))[index]!.recipientId;
    const [one, two, three, four, five, six] = [await id('age-a'), await id('age-a', 1), await id('age-b'), await id('age-c'), await id('age-d'), await id('age-e')];
    const last = await store.lastRecipientId();
    expect(last).toBe(six);
    const all = (now: number) => store.scanUnfinished(0, last + 1, now);

    expect(await all(T0 + 50)).toEqual({ oldest: { id: one, since: T0 }, scheduled: null });

    await finish(store, T0 + 50, { 'one@dest.test': delivered });
    // two and four are being delivered now (claimed, no result yet): still unfinished.
    expect(await all(T0 + 50)).toEqual({ oldest: { id: two, since: T0 }, scheduled: null });

    await finish(store, T0 + 120_000, { 'two@dest.test': bounced });
    // Below four, the first waiting, only three is for later; five and six, above it, are not told.
    expect(await all(T0 + 120_000)).toEqual({ oldest: { id: four, since: T0 + 20 }, scheduled: { firstId: three, sendAt: T0 + HOUR } });
    await finish(store, T0 + 200_000, { 'four@dest.test': delivered });
    // Nothing waits: the lowest id for later and the earliest send time of any, each its own row's.
    expect(await all(T0 + 200_000)).toEqual({ oldest: null, scheduled: { firstId: three, sendAt: T0 + HOUR / 2 } });
    // At its send time a scheduled recipient waits, counted from then.
    expect(await all(T0 + HOUR / 2)).toEqual({ oldest: { id: six, since: T0 + HOUR / 2 }, scheduled: { firstId: three, sendAt: T0 + HOUR } });
    expect(await all(T0 + HOUR)).toEqual({ oldest: { id: three, since: T0 + HOUR }, scheduled: null });

    // The range is [from, to): its bounds leave rows out.
    expect(await store.scanUnfinished(0, three, T0 + HOUR)).toEqual({ oldest: null, scheduled: null });
    expect(await store.scanUnfinished(three, four, T0 + 50)).toEqual({ oldest: null, scheduled: { firstId: three, sendAt: T0 + HOUR } });
    expect(await store.scanUnfinished(five, six, T0 + 50)).toEqual({ oldest: null, scheduled: { firstId: five, sendAt: T0 + 2 * HOUR } });
    expect(await store.scanUnfinished(six + 1, six + 1000, T0 + 50)).toEqual({ oldest: null, scheduled: null });
  });

  it('finds nothing unfinished in an empty store or one whose mail is all final', async () => {
    const store = ctx.store();
    expect(await store.lastRecipientId()).toBe(0);
    expect(await store.scanUnfinished(0, 10_000, T0)).toEqual({ oldest: null, scheduled: null });
    await store.enqueue([newMessage('age-done', T0)]);
    await finish(store, T0 + 1, { 'user@dest.test': delivered });
    expect(await store.scanUnfinished(0, 10_000, T0 + 2)).toEqual({ oldest: null, scheduled: null });
  });
}
