import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RetentionSweeper } from '../../src/engine/retention.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const DAY = 86_400_000;
const delivered: DeliveryOutcome = {
  disposition: 'delivered',
  code: 250,
  enhanced: '2.0.0',
  response: 'ok',
  stage: 'dot',
  bounceClass: 'none',
  remoteHost: 'mx.dest.test',
  egressIp: null,
};

function message(id: string, now: number): NewMessage {
  return {
    id,
    sender: 'app@sender.test',
    recipients: ['a@dest.test', 'b@dest.test'],
    messageIdHeader: `<${id}@app.test>`,
    body: Buffer.from('Subject: x\r\n\r\nhello\r\n'),
    submitter: null,
    source: 'smtp',
    clientAddress: '127.0.0.1',
    createdAt: now,
    dueAt: now,
    pool: 'default',
  };
}

describe('retention', () => {
  let dir: TempDir;
  let store: Store;
  let clock: ManualClock;

  beforeEach(async () => {
    dir = await createTempDir();
    clock = manualClock(1_700_000_000_000);
    store = createSqliteStore({ path: dir.file('queue.db'), clock, logger: createLogger('silent') });
    await store.migrate();
  });
  afterEach(async () => {
    await store.close();
    await dir.remove();
  });

  it('purges finished messages once they are older than the retention period, never live ones', async () => {
    await store.enqueue([message('finished', clock.now()), message('half-done', clock.now())]);
    const claimed = await store.claimDue({ now: clock.now(), limit: 10, owner: 'n', leaseMs: 60_000 });
    // "finished": both recipients delivered. "half-done": one delivered, one still queued for a retry.
    await store.recordAttempts(
      claimed.map((row) => {
        const retry = row.messageId === 'half-done' && row.recipient === 'b@dest.test';
        return retry
          ? { ...row, outcome: { ...delivered, disposition: 'transient' as const }, newState: 'queued' as const, nextAttemptAt: clock.now() + 30 * DAY, countsAsAttempt: true }
          : { ...row, outcome: delivered, newState: 'delivered' as const, countsAsAttempt: true };
      }),
    );
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY });

    clock.advance(6 * DAY);
    await sweeper.sweep();
    expect(await store.listRecipients('finished')).toHaveLength(2);

    clock.advance(2 * DAY);
    await sweeper.sweep();
    expect(await store.listRecipients('finished')).toEqual([]);
    expect(await store.loadMessage('finished')).toBeNull();
    expect(await store.listEvents('finished')).toEqual([]);
    // A message with a recipient still queued is kept, however old.
    expect(await store.listRecipients('half-done')).toHaveLength(2);
    expect(await store.loadMessage('half-done')).not.toBeNull();
  });

  it('with a body retention, empties the bodies of finished messages first and deletes the messages later', async () => {
    await store.enqueue([message('finished', clock.now())]);
    const claimed = await store.claimDue({ now: clock.now(), limit: 10, owner: 'n', leaseMs: 60_000 });
    await store.recordAttempts(claimed.map((row) => ({ ...row, outcome: delivered, newState: 'delivered' as const, countsAsAttempt: true })));
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 30 * DAY, bodyRetentionMs: DAY });

    clock.advance(DAY / 2);
    await sweeper.sweep();
    expect((await store.loadMessage('finished'))?.body.length).toBeGreaterThan(0);

    clock.advance(DAY);
    await sweeper.sweep();
    expect((await store.loadMessage('finished'))?.body.length).toBe(0);
    expect(await store.listEvents('finished')).toHaveLength(2);

    clock.advance(30 * DAY);
    await sweeper.sweep();
    expect(await store.loadMessage('finished')).toBeNull();
  });

  it('purges audit entries older than audit.retention, in chunks, and keeps younger ones', async () => {
    const entry = (at: number, target: string) => ({
      at, actor: 'ops', tenant: null, clientAddress: '127.0.0.1', method: 'POST', route: '/v1/domains/:domain/check', target, change: null, status: 200, outcome: 'OK',
    });
    // More old entries than one purge chunk (1000).
    await Promise.all(Array.from({ length: 1500 }, (_, i) => store.recordAudit(entry(clock.now(), `old${i}`))));
    clock.advance(20 * DAY);
    await store.recordAudit(entry(clock.now(), 'young'));
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY, auditRetentionMs: 30 * DAY });
    const all = { actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null };

    await sweeper.sweep();
    expect(await store.listAudit(all, null, 2000)).toHaveLength(1501);

    clock.advance(11 * DAY);
    await sweeper.sweep();
    expect((await store.listAudit(all, null, 2000)).map((e) => e.target)).toEqual(['young']);
  });

  it('purges idempotency keys once their 24 hours are over, with their answers, keeping the messages', async () => {
    const record = (key: string) => ({ scope: 'app-token', key, requestHash: 'h', status: 202, response: '{}', createdAt: clock.now() });
    await store.enqueueOnce([message('kept-1', clock.now())], record('old'), clock.now() - DAY);
    clock.advance(23 * 3_600_000);
    await store.enqueueOnce([message('kept-2', clock.now())], record('young'), clock.now() - DAY);
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY });

    clock.advance(2 * 3_600_000);
    await sweeper.sweep();
    expect(await store.getIdempotencyRecord('app-token', 'old', 0)).toBeNull();
    expect(await store.getIdempotencyRecord('app-token', 'young', 0)).not.toBeNull();
    expect(await store.loadMessage('kept-1')).not.toBeNull();
  });

  it('purges suppression entries once expired, in chunks, keeping those without an end', async () => {
    const entry = (address: string, expiresAt: number | null) => ({ tenant: null, address, reason: 'manual' as const, source: null, createdAt: clock.now(), expiresAt });
    // More expiring entries than one purge chunk (5000).
    await store.addSuppressions([
      ...Array.from({ length: 6000 }, (_, i) => entry(`brief-${i}@dest.test`, clock.now() + DAY)),
      entry('later@dest.test', clock.now() + 3 * DAY),
      entry('always@dest.test', null),
    ]);
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY });
    const all = { tenant: null, reason: null, address: null, since: null, until: null, now: null };

    clock.advance(2 * DAY);
    await sweeper.sweep();
    expect((await store.listSuppressions(all, null, 10)).map((e) => e.address).sort()).toEqual(['always@dest.test', 'later@dest.test']);
  });

  it('purges webhook deliveries finished longer than webhooks.retention ago, never pending ones', async () => {
    await store.createWebhook({ id: 'wh_r', tenant: null, url: 'https://hooks.example/x', eventTypes: ['message.accepted'], description: null, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: clock.now() });
    await store.enqueue([message('w1', clock.now()), message('w2', clock.now())]);
    const [done] = await store.claimWebhookDeliveries({ now: clock.now(), limit: 1, perWebhook: 1, skip: [], owner: 'n', leaseMs: 30_000 });
    await store.recordWebhookAttempts([{ id: done!.id, token: done!.token, webhookId: 'wh_r', ok: true, status: 200, error: null, at: clock.now(), nextAttemptAt: null }], 3 * DAY);
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY, webhookRetentionMs: 2 * DAY });
    clock.advance(2 * DAY);
    await sweeper.sweep();
    expect((await store.listWebhookDeliveries('wh_r', { state: null, after: null, limit: 10 })).map((d) => d.state).sort()).toEqual(['delivered', 'pending']);
    clock.advance(1);
    await sweeper.sweep();
    expect((await store.listWebhookDeliveries('wh_r', { state: null, after: null, limit: 10 })).map((d) => d.state)).toEqual(['pending']);
  });

  it('deletes a message an erasure left pending once its other recipient is final, whatever the retention period', async () => {
    await store.enqueue([message('erased', clock.now())]);
    expect((await store.eraseRecipient('A@dest.test', null, clock.now())).counts.pending).toBe(1);
    const sweeper = new RetentionSweeper({ store, clock, logger: createLogger('silent'), retentionMs: 7 * DAY });
    await sweeper.sweep();
    expect(await store.loadMessage('erased')).not.toBeNull();

    const [other] = await store.claimDue({ now: clock.now(), limit: 10, owner: 'n', leaseMs: 60_000 });
    await store.recordAttempts([{ ...other!, outcome: delivered, newState: 'delivered', countsAsAttempt: true }]);
    await sweeper.sweep();
    expect(await store.loadMessage('erased')).toBeNull();
  });
});
