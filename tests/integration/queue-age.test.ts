import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QueueAge } from '../../src/engine/queue-age.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const postgresAvailable = await requirePostgres();
const logger = createLogger('silent');

/** A fresh store of each backend, and how to remove it. */
const backends = [
  {
    name: 'SQLite',
    available: true,
    async open(clock: ManualClock): Promise<{ store: Store; remove(): Promise<void> }> {
      const dir = await createTempDir();
      const store = createSqliteStore({ path: dir.file('queue.db'), clock, logger });
      return { store, remove: async () => (await store.close(), await dir.remove()) };
    },
  },
  {
    name: 'PostgreSQL',
    available: postgresAvailable,
    async open(clock: ManualClock): Promise<{ store: Store; remove(): Promise<void> }> {
      const schema = await createTestSchema('queue-age');
      const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger, poolSize: 2 });
      return { store, remove: async () => (await store.close(), await schema.drop()) };
    },
  },
];

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const delivered: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' };

/** The oldest-queued gauge against a real queue of each backend: what it reports, and how far each refresh walks. */
describe.each(backends.filter((b) => b.available))('oldest queued age on $name', (backend) => {
  let remove: () => Promise<void>;
  let store: Store;
  let clock: ManualClock;
  /** The first id of each read of a range, in order. */
  let reads: number[];
  let lastIdReads: number;
  let age: QueueAge;

  beforeEach(async () => {
    clock = manualClock(T0);
    ({ store, remove } = await backend.open(clock));
    await store.migrate();
    reads = [];
    lastIdReads = 0;
    // The real store, with its reads noted.
    const observed = {
      driver: store.driver,
      lastRecipientId: () => (lastIdReads++, store.lastRecipientId()),
      scanUnfinished: (from: number, to: number, now: number) => (reads.push(from), store.scanUnfinished(from, to, now)),
    };
    age = new QueueAge({ store: observed, clock, span: 3 });
  });
  afterEach(async () => {
    await remove();
  });

  /** Ten messages a minute apart from T0, one recipient each: m0 .. m9. */
  async function fill(): Promise<number[]> {
    await store.enqueue(Array.from({ length: 10 }, (_, i) => newMessage(`m${i}`, T0 + i * MINUTE)));
    return Promise.all(Array.from({ length: 10 }, async (_, i) => (await store.listRecipients(`m${i}`))[0]!.recipientId));
  }

  /** Delivers the messages named. */
  async function deliver(...ids: string[]): Promise<void> {
    const claimed = await store.claimDue({ now: clock.now(), limit: 100, owner: 'n', leaseMs: MINUTE });
    const done = claimed.filter((c) => ids.includes(c.messageId));
    await store.recordAttempts(done.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: delivered, newState: 'delivered', countsAsAttempt: true })));
    await store.release(claimed.filter((c) => !ids.includes(c.messageId)), clock.now());
  }

  it('is 0 with nothing queued, and the wait of the first recipient not final otherwise', async () => {
    expect(await age.refresh()).toBe(0);
    await fill();
    clock.set(T0 + 10 * MINUTE);
    expect(await age.refresh()).toBe(600);
    await deliver('m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6');
    // m7 was accepted at T0 + 7 minutes; the walk went past two spans of finished rows to find it.
    expect(await age.refresh()).toBe(180);
    await deliver('m7', 'm8', 'm9');
    expect(await age.refresh()).toBe(0);
  });

  it('counts a scheduled send from its send time, and not before', async () => {
    await store.enqueue([newMessage('later', T0, { dueAt: T0 + 60 * MINUTE }), newMessage('now', T0 + MINUTE)]);
    clock.set(T0 + 30 * MINUTE);
    expect(await age.refresh()).toBe(29 * 60);
    await deliver('now');
    expect(await age.refresh()).toBe(0);
    clock.set(T0 + 75 * MINUTE);
    expect(await age.refresh()).toBe(15 * 60);
  });

  it('moves the floor past a recipient scheduled for later, and walks back down to it at its send time', async () => {
    await store.enqueue([newMessage('later', T0, { dueAt: T0 + 60 * MINUTE }), ...Array.from({ length: 6 }, (_, i) => newMessage(`m${i}`, T0 + (i + 1) * MINUTE))]);
    const idOf = async (message: string) => (await store.listRecipients(message))[0]!.recipientId;
    clock.set(T0 + 10 * MINUTE);
    await deliver('m0', 'm1', 'm2', 'm3');
    await age.refresh();
    // Once the ids below are visible (at once on SQLite, five minutes on PostgreSQL), a scrape
    // starts at the first waiting row: the scheduled one, accepted first, no longer holds it back.
    clock.advance(5 * MINUTE);
    await age.refresh();
    reads = [];
    expect(await age.refresh()).toBe((15 - 5) * 60);
    expect(reads).toEqual([await idOf('m4')]);

    await deliver('m4', 'm5');
    expect(await age.refresh()).toBe(0);
    // Its send time has come: it waits from then, found by a walk from its own id.
    clock.set(T0 + 75 * MINUTE);
    reads = [];
    expect(await age.refresh()).toBe(15 * 60);
    expect(reads[0]).toBe(await idOf('later'));
    await deliver('later');
    expect(await age.refresh()).toBe(0);
  });

  it('walks from a floor below which every row is final, once the ids below it are all visible', async () => {
    const ids = await fill();
    clock.set(T0 + 20 * MINUTE);
    await deliver('m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6');
    await age.refresh();
    expect(reads[0]).toBe(0);

    // A minute later: on PostgreSQL ids given before the last walk may still be committing, so
    // the floor stays; SQLite commits in id order, and the floor moves up to m7 at once.
    clock.advance(MINUTE);
    reads = [];
    await age.refresh();
    expect(reads[0]).toBe(store.driver === 'postgres' ? 0 : ids[7]);

    // Five minutes after a walk that saw m7 first, it does on PostgreSQL too.
    clock.advance(5 * MINUTE);
    await age.refresh();
    reads = [];
    expect(await age.refresh()).toBe((26 - 7) * 60);
    expect(reads).toEqual([ids[7]]);

    // Rows finished since are walked past from the floor.
    await deliver('m7', 'm8');
    expect(await age.refresh()).toBe((26 - 9) * 60);
  });

  it('shares one walk between refreshes asked for at once', async () => {
    await fill();
    clock.set(T0 + 10 * MINUTE);
    expect(await Promise.all([age.refresh(), age.refresh()])).toEqual([600, 600]);
    expect(lastIdReads).toBe(1);
  });
});
