import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseKeeper } from '../../src/engine/lease-keeper.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const T0 = 1_700_000_000_000;
const LEASE = 3_000;

function message(id: string, recipients: string[]): NewMessage {
  return {
    id,
    sender: 'app@sender.test',
    recipients,
    messageIdHeader: null,
    body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
    submitter: null,
    source: 'smtp',
    clientAddress: null,
    createdAt: T0,
    dueAt: T0,
    pool: 'default',
  };
}

describe('lease keeper', () => {
  let dir: TempDir;
  let clock: ManualClock;
  let store: Store;
  let keeper: LeaseKeeper;
  let logs: Array<Record<string, unknown>>;

  beforeEach(async () => {
    dir = await createTempDir('rookery-lease-keeper');
    clock = manualClock(T0);
    store = createSqliteStore({ path: dir.file('queue.db'), clock, logger: createLogger('silent') });
    await store.migrate();
    logs = [];
    const log = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logs.push(JSON.parse(String(chunk))), done()) }));
    keeper = new LeaseKeeper({ store, clock, log, leaseMs: LEASE });
  });
  afterEach(async () => {
    await keeper.stop();
    await store.close();
    await dir.remove();
  });

  it('extends the leases of rows in flight, and forgets rows another claim took over', async () => {
    await store.enqueue([message('m1', ['a@x.test', 'b@x.test'])]);
    const [a, b] = await store.claimDue({ now: T0, limit: 2, owner: 'node-a', leaseMs: LEASE });
    keeper.track([a!]);

    clock.set(T0 + 2_000);
    await keeper.renew();
    // b was not renewed: another node takes it once its lease ran out; a stays ours.
    const taken = await store.claimDue({ now: T0 + LEASE + 1, limit: 2, owner: 'node-b', leaseMs: LEASE });
    expect(taken.map((r) => r.recipientId)).toEqual([b!.recipientId]);

    keeper.track([b!]);
    await keeper.renew();
    expect(logs.filter((l) => l.event === 'scheduler.lease.lost').map((l) => l.recipients)).toEqual([
      [{ messageId: 'm1', recipientId: b!.recipientId }],
    ]);
    // Forgotten: the next round neither renews nor reports it again.
    await keeper.renew();
    expect(logs.filter((l) => l.event === 'scheduler.lease.lost')).toHaveLength(1);
    expect(await store.claimDue({ now: T0 + 2_000 + LEASE, limit: 2, owner: 'node-b', leaseMs: LEASE })).toEqual([]);
  });

  it('hands a row claimed again while its delivery runs here to the running delivery, under the new lease', async () => {
    await store.enqueue([message('m1', ['a@x.test']), message('m2', ['c@x.test'])]);
    const [running] = await store.claimDue({ now: T0, limit: 1, owner: 'node-a', leaseMs: LEASE });
    keeper.track([running!]);
    const oldToken = running!.token;

    // The store was out of reach for longer than the lease: this node's next claim takes the row again.
    const claimed = await store.claimDue({ now: T0 + LEASE + 1, limit: 2, owner: 'node-a', leaseMs: LEASE });
    expect(claimed).toHaveLength(2);
    const fresh = keeper.adopt(claimed);
    expect(fresh.map((r) => r.messageId)).toEqual(['m2']);
    expect(running!.token).not.toBe(oldToken);
    expect(logs.some((l) => l.event === 'scheduler.lease.reclaimed')).toBe(true);

    // The running delivery's result applies under the new claim.
    expect(await store.recordAttempts([{ ...running!, outcome: delivered(), newState: 'delivered', countsAsAttempt: true }])).toEqual([running!.recipientId]);
    expect((await store.listRecipients('m1'))[0]).toMatchObject({ state: 'delivered', attempts: 1 });
  });
});

function delivered() {
  return { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.x.test', egressIp: null } as const;
}
