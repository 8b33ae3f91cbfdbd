import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueOperations } from '../../src/engine/queue-operations.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createDkimSigner } from '../../src/sender-domains/signer.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * Cancellations (QueueOperations.cancel, behind POST /v1/queue/bounce and DELETE
 * /v1/messages/{id}) on real SQLite and PostgreSQL stores, at the scale of several chunks: the
 * DSNs a cancellation makes are never cancelled by it, a message gets one DSN however many chunks
 * its recipients span, a failed chunk gives its rows back each at its own time, the rows of a dead
 * node in a paused scope are cancelled, and (PostgreSQL) rows locked for a moment are not missed.
 */

const postgres = await requirePostgres();
const logger = createLogger('silent');
const T0 = 1_700_000_000_000;
const DAY = 86_400_000;
const LEASE = 60_000;
const { config } = resolveConfig({ ips: [{ address: '127.0.0.2' }] }, { source: 'test', env: {} });

let sequence = 0;
function message(recipients: string[], overrides: Partial<NewMessage> = {}): NewMessage {
  sequence += 1;
  const id = `qo-${sequence.toString().padStart(6, '0')}`;
  return { id, sender: 'app@sender.test', recipients, messageIdHeader: `<${id}@sender.test>`, body: Buffer.from(`Subject: ${id}\r\n\r\nbody\r\n`), submitter: null, source: 'http', clientAddress: null, createdAt: T0, dueAt: T0, pool: 'default', ...overrides };
}

/** The real store with one method replaced: a fault injected around it, every other call its own. */
function withOverride<K extends keyof Store>(store: Store, name: K, replacement: Store[K]): Store {
  return new Proxy(store, { get: (target, key) => (key === name ? replacement : Reflect.get(target, key, target)) });
}

const backends = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`queue cancellations on ${backend.name}`, () => {
    let dir: TempDir | undefined;
    let schema: TestSchema | undefined;
    let store: Store | undefined;
    let clock: ManualClock;

    afterEach(async () => {
      await store?.close();
      await schema?.drop();
      await dir?.remove();
      store = schema = dir = undefined;
    });

    async function open(): Promise<Store> {
      clock = manualClock(T0);
      if (backend.name === 'postgres') {
        schema = await createTestSchema('queue-operations');
        store = createPostgresStore({ url: schema.url, schema: schema.schema, logger, clock, poolSize: 4 });
      } else {
        dir = await createTempDir('rookery-queue-operations');
        store = createSqliteStore({ path: dir.file('queue', 'rookery.db'), clock, logger });
      }
      await store.migrate();
      return store;
    }

    function operations(over: Store) {
      const dkim = createDkimSigner({ keys: { keysFor: () => [] }, config: config.dkim, clock, logger });
      return new QueueOperations({ store: over, clock, logger, metrics: new Metrics(), dsn: { hostname: 'ops.rookery.test', dsn: () => config.delivery.dsn, dkim }, owner: 'node-a', leaseMs: LEASE, onDue: () => {} });
    }

    it('never cancels the DSNs it makes, however many chunks the scope takes', { timeout: 60_000 }, async () => {
      const s = await open();
      // The DSNs go to the pool and tenant of the mail they report on: the very scope cancelled.
      await s.enqueue(Array.from({ length: 600 }, (_, i) => message([`r${i}@bulk.test`], { pool: 'bulk', tenant: 'acme' })));
      const pool = await operations(s).cancel({ kind: 'pool', pool: 'bulk' }, { reason: 'spam run', dsn: true, by: 'night-shift' });
      expect(pool).toEqual({ cancelled: 600, dsns: 600, inDelivery: 0 });
      expect(await s.countByState()).toEqual({ queued: 600, delivering: 0, delivered: 0, bounced: 600 });

      await s.enqueue(Array.from({ length: 600 }, (_, i) => message([`t${i}@bulk.test`], { pool: 'other', tenant: 'beta' })));
      const tenant = await operations(s).cancel({ kind: 'tenant', tenant: 'beta' }, { dsn: true, by: 'night-shift' });
      expect(tenant).toEqual({ cancelled: 600, dsns: 600, inDelivery: 0 });
      expect(await s.countByState()).toEqual({ queued: 1200, delivering: 0, delivered: 0, bounced: 1200 });
    });

    it('sends one DSN per message, however many chunks its recipients span', { timeout: 60_000 }, async () => {
      const s = await open();
      const big = message(Array.from({ length: 1_200 }, (_, i) => `b${i}@big.test`));
      const small = message(['s1@big.test', 's2@big.test']);
      const before = message(['p@big.test']);
      await s.enqueue([before, big, small]);
      expect(await operations(s).cancel({ kind: 'domain', domain: 'big.test' }, { dsn: true, by: 'night-shift' })).toEqual({ cancelled: 1_203, dsns: 3, inDelivery: 0 });
      // Three DSNs of one recipient each: all that is queued.
      expect(await s.countByState()).toEqual({ queued: 3, delivering: 0, delivered: 0, bounced: 1_203 });
    });

    it('gives the rows of a failed chunk back each at its own time, then cancels them all', { timeout: 60_000 }, async () => {
      const s = await open();
      clock.advance(1_000);
      const tomorrow = message(['t@gone.test'], { dueAt: T0 + DAY });
      const now = message(['n@gone.test']);
      await s.enqueue([tomorrow, now]);
      let failures = 1;
      const faulty = withOverride(s, 'recordAttempts', (async (...args: Parameters<Store['recordAttempts']>) => {
        if (failures-- > 0) throw new Error('storage went away');
        return s.recordAttempts(...args);
      }) as Store['recordAttempts']);
      const ops = operations(faulty);
      await expect(ops.cancel({ kind: 'domain', domain: 'gone.test' }, { dsn: true, by: 'night-shift' })).rejects.toThrow('storage went away');
      const rows = [...(await s.listRecipients(tomorrow.id)), ...(await s.listRecipients(now.id))];
      expect(rows.map((r) => [r.recipient, r.state, r.nextAttemptAt])).toEqual([
        ['t@gone.test', 'queued', T0 + DAY],
        ['n@gone.test', 'queued', T0],
      ]);
      // Nothing else is due before tomorrow: the scheduled message is not sent now.
      expect((await s.claimDue({ now: clock.now(), limit: 10, owner: 'node-b', leaseMs: LEASE })).map((c) => c.recipient)).toEqual(['n@gone.test']);

      expect(await ops.cancel({ kind: 'domain', domain: 'gone.test' }, { dsn: true, by: 'night-shift' })).toEqual({ cancelled: 1, dsns: 1, inDelivery: 1 });
    });

    it('cancels the rows of a dead node in a paused scope, once their lease ran out', { timeout: 60_000 }, async () => {
      const s = await open();
      const m = message(['d@paused.test', 'q@paused.test']);
      await s.enqueue([m]);
      const [dead] = await s.claimQueued({ kind: 'message', messageId: m.id }, { now: clock.now(), limit: 1, owner: 'node-dead', leaseMs: 1_000 });
      expect(dead?.recipient).toBe('d@paused.test');
      await s.setPause({ scope: { kind: 'domain', domain: 'paused.test' }, reason: 'incident', by: 'night-shift', createdAt: clock.now(), until: null }, clock.now());

      // While its lease runs the row is in delivery, left to finish.
      expect(await operations(s).cancel({ kind: 'message', messageId: m.id }, { dsn: false, by: 'night-shift' })).toEqual({ cancelled: 1, dsns: 0, inDelivery: 1 });
      clock.advance(5_000);
      expect(await operations(s).cancel({ kind: 'domain', domain: 'paused.test' }, { dsn: false, by: 'night-shift' })).toEqual({ cancelled: 1, dsns: 0, inDelivery: 0 });
      expect((await s.listRecipients(m.id)).map((r) => [r.recipient, r.state, r.lastOutcome?.bounceClass])).toEqual([
        ['d@paused.test', 'bounced', 'cancelled'],
        ['q@paused.test', 'bounced', 'cancelled'],
      ]);
      // The dead node's result, should it come, no longer applies.
      expect(await s.recordAttempts([{ recipientId: dead!.recipientId, token: dead!.token, outcome: { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx', egressIp: '127.0.0.2' }, newState: 'delivered', countsAsAttempt: true }])).toEqual([]);
    });

    // SQLite has one writer: no claim of its passes over a row.
    if (backend.name === 'postgres')
      it('goes back for rows that were locked for a moment when its claim passed them', { timeout: 60_000 }, async () => {
      const s = await open();
      const m = message(['a@locked.test', 'b@locked.test', 'c@locked.test']);
      await s.enqueue([m]);
      const [, middle] = await s.listRecipients(m.id);
      // Another statement holds b@ locked (as a retry or a hold does for a moment).
      const other = new pg.Client({ connectionString: schema!.url });
      await other.connect();
      try {
        await other.query(`SET search_path TO "${schema!.schema}"`);
        await other.query('BEGIN');
        await other.query('SELECT id FROM recipients WHERE id = $1 FOR UPDATE', [middle!.recipientId]);
        let claims = 0;
        const unlocking = withOverride(s, 'claimQueued', (async (...args: Parameters<Store['claimQueued']>) => {
          const rows = await s.claimQueued(...args);
          // The lock ends just after the first claim passed the row.
          if (claims++ === 0) await other.query('COMMIT');
          return rows;
        }) as Store['claimQueued']);
        expect(await operations(unlocking).cancel({ kind: 'domain', domain: 'locked.test' }, { dsn: false, by: 'night-shift' })).toEqual({ cancelled: 3, dsns: 0, inDelivery: 0 });
        expect((await s.listRecipients(m.id)).map((r) => r.state)).toEqual(['bounced', 'bounced', 'bounced']);
      } finally {
        await other.end();
      }
    });
  });
}
