import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { runStoreContract } from './store-contract.ts';

const logger = createLogger('silent');
const available = await requirePostgres();

describe.skipIf(!available)('PostgreSQL store', () => {
  runStoreContract('postgres', async () => {
    const schema = await createTestSchema('store-postgres');
    return {
      async open(clock) {
        const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger, poolSize: 4 });
        await store.migrate();
        return store;
      },
      destroy: () => schema.drop(),
    };
  });

  describe('shared database', () => {
    const stores: Store[] = [];
    const schemas: TestSchema[] = [];

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await Promise.all(schemas.splice(0).map((s) => s.drop()));
    });

    const openStore = async () => {
      const schema = await createTestSchema('store-postgres');
      schemas.push(schema);
      const make = () => {
        const store = createPostgresStore({ url: schema.url, schema: schema.schema, logger, poolSize: 2 });
        stores.push(store);
        return store;
      };
      return { schema, make };
    };

    it('migrates once when several daemons start at the same time', async () => {
      const { schema, make } = await openStore();
      const daemons = [make(), make(), make()];
      await Promise.all(daemons.map((s) => s.migrate()));
      await Promise.all(daemons.map((s) => s.ping()));

      const client = new pg.Client({ connectionString: schema.url });
      await client.connect();
      try {
        const { rows } = await client.query(`SELECT version FROM "${schema.schema}".schema_migrations ORDER BY version`);
        expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4]);
      } finally {
        await client.end();
      }
      expect(await daemons[1]!.countByState()).toEqual({ queued: 0, delivering: 0, delivered: 0, bounced: 0 });
    });

    it('wakes work listeners of other daemons when work is enqueued', async () => {
      const { make } = await openStore();
      const listening = make();
      const enqueuing = make();
      await listening.migrate();
      let wakeUps = 0;
      const unsubscribe = listening.onWork(() => {
        wakeUps += 1;
      });
      // LISTEN starts asynchronously; a notification sent before it is active is lost (they
      // are only hints), so keep enqueuing until one arrives.
      for (let i = 0; wakeUps === 0 && i < 200; i++) {
        const now = Date.now();
        const m: NewMessage = {
          id: `notify-${i}`,
          sender: 'app@sender.test',
          recipients: ['a@x.test'],
          messageIdHeader: null,
          body: Buffer.from('x'),
          submitter: null,
          source: 'http',
          clientAddress: null,
          createdAt: now,
          dueAt: now,
    pool: 'default',
        };
        await enqueuing.enqueue([m]);
        await new Promise((r) => setTimeout(r, 25));
      }
      unsubscribe();
      expect(wakeUps).toBeGreaterThan(0);
    });

    it('rejects a schema name that would need quoting', () => {
      expect(() => createPostgresStore({ url: 'postgres://localhost/x', schema: 'Bad-Name', logger })).toThrow(/invalid PostgreSQL schema name/);
    });

    it('fails with a clear error when the server is unreachable', async () => {
      const store = createPostgresStore({ url: 'postgres://postgres@127.0.0.1:1/test', logger, connectionTimeoutMs: 1000 });
      stores.push(store);
      await expect(store.ping()).rejects.toThrow(/ECONNREFUSED|connect/);
    });
  });
});
