import net from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { foldCase } from '../../src/storage/case-folding.ts';
import { postgresClientConfig } from '../../src/storage/postgres/client-config.ts';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { createScratchDatabase, createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { postgresUrl, requirePostgres } from '../helpers/services.ts';
import { newMessage } from '../helpers/new-message.ts';
import { runStoreContract } from './store-contract.ts';

const logger = createLogger('silent');
const available = await requirePostgres();

/** The simple-protocol Query message pg sends to commit: 'Q', its length (11), "COMMIT\0". */
const COMMIT = Buffer.from('Q\0\0\0\x0bCOMMIT\0', 'latin1');

/**
 * A loopback TCP proxy to PostgreSQL that, once armed, cuts the connection carrying the next
 * COMMIT: 'after-commit' forwards it and cuts when the server answers (the transaction committed,
 * the client never hears so), 'before-commit' cuts instead of forwarding it (nothing committed).
 */
async function commitCutter() {
  const target = new URL(postgresUrl());
  let armed: 'after-commit' | 'before-commit' | null = null;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', cut);
      socket.on('close', () => (sockets.delete(socket), cut()));
    }
    let cutOnAnswer = false;
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes(COMMIT)) {
        const mode = armed;
        armed = null;
        if (mode === 'before-commit') return cut();
        cutOnAnswer = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => (cutOnAnswer ? cut() : client.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    arm: (mode: 'after-commit' | 'before-commit') => (armed = mode),
    close: async () => {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

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
        expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
      } finally {
        await client.end();
      }
      expect(await daemons[1]!.countByState()).toEqual({ queued: 0, delivering: 0, delivered: 0, bounced: 0 });
    });

    it('counts the parked rows a release passed over because another node held them locked, so the release is made again', async () => {
      const { schema, make } = await openStore();
      const store = make();
      await store.migrate();
      const T0 = 1_700_000_000_000;
      const scope = { kind: 'domain', domain: 'outlook.test' } as const;
      await store.enqueue([newMessage('parked-locked', T0 - 1000, { recipients: ['a@outlook.test', 'b@outlook.test', 'c@outlook.test'] })]);
      await store.setPause({ scope, reason: 'incident', by: 'ops', createdAt: T0, until: null }, T0);
      expect(await store.parkPaused(scope, T0 + 60_000, T0, 100)).toBe(3);
      await store.deletePause(scope, T0);
      const other = new pg.Client({ connectionString: schema.url });
      await other.connect();
      try {
        // Another node's statement (a retry, a cancellation's claim) holds one row for a moment.
        await other.query('BEGIN');
        await other.query(`SELECT id FROM "${schema.schema}".recipients WHERE recipient = 'b@outlook.test' FOR UPDATE`);
        expect(await store.releaseParked(T0, 100, 0)).toEqual({ released: 2, next: null, skipped: 1 });
        await other.query('COMMIT');
      } finally {
        await other.end();
      }
      expect(await store.releaseParked(T0, 100, 0)).toEqual({ released: 1, next: null, skipped: 0 });
      expect(await store.nextDueAt()).toBe(T0 - 1000);
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

    it("folds case in lower() as foldCase does, which SQLite and the store's own filters of an address use", async () => {
      const client = new pg.Client({ connectionString: postgresUrl() });
      await client.connect();
      try {
        const samples = ['Erin.Subject@Dest.TEST', 'JÖRG.ÄHNLICH@dest.test', 'ЁЛКА@dest.test', 'İLKER@dest.test', 'ΟΔΥΣΣΕΥΣ@dest.test', 'ǅ\u1e9e\u212a@dest.test'];
        const { rows } = await client.query<{ lower: string }>('SELECT lower(s) FROM unnest($1::text[]) AS s', [samples]);
        expect(rows.map((r) => r.lower)).toEqual(samples.map(foldCase));
      } finally {
        await client.end();
      }
    });

    it('commits durably on every connection, whatever the database default says', async () => {
      const scratch = await createScratchDatabase(postgresUrl(), 'synccommit');
      const connect = async (config: pg.ClientConfig) => {
        const client = new pg.Client(config);
        await client.connect();
        try {
          return (await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
        } finally {
          await client.end();
        }
      };
      try {
        const name = new URL(scratch.url).pathname.slice(1);
        const admin = new pg.Client({ connectionString: postgresUrl() });
        await admin.connect();
        await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`).finally(() => admin.end());
        expect(await connect({ connectionString: scratch.url })).toBe('off');
        expect(await connect(postgresClientConfig({ url: scratch.url, schema: 'public' }))).toBe('on');
      } finally {
        await scratch.drop();
      }
    });

    describe('a connection lost during the COMMIT of an enqueue', () => {
      let cutter: Awaited<ReturnType<typeof commitCutter>> | undefined;
      afterEach(async () => {
        await cutter?.close();
        cutter = undefined;
      });

      const message = (id: string): NewMessage => ({
        id,
        sender: 'app@sender.test',
        recipients: ['a@x.test'],
        messageIdHeader: null,
        body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
        submitter: null,
        source: 'smtp',
        clientAddress: null,
        createdAt: Date.now(),
        dueAt: Date.now(),
        pool: 'default',
      });

      async function storeThroughCutter() {
        const { schema } = await openStore();
        cutter = await commitCutter();
        const lines: Array<Record<string, unknown>> = [];
        const log = createLogger('info', new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
        const store = createPostgresStore({ url: cutter.url, schema: schema.schema, logger: log, poolSize: 2 });
        stores.push(store);
        await store.migrate();
        return { store, lines, cutter };
      }

      it('answers success when the messages were committed, so the client does not send them again', async () => {
        const { store, lines, cutter } = await storeThroughCutter();
        cutter.arm('after-commit');
        await store.enqueue([message('uncertain-1')]);
        expect(await store.listRecipients('uncertain-1')).toHaveLength(1);
        expect(lines.filter((l) => l.event === 'storage.commit.uncertain').map((l) => l.messages)).toEqual([['uncertain-1']]);

        // Two callers in one batch: the batch is retried message by message, and each finds its message stored.
        cutter.arm('after-commit');
        await Promise.all([store.enqueue([message('uncertain-2')]), store.enqueue([message('uncertain-3')])]);
        expect((await store.countByState()).queued).toBe(3);
      });

      it('fails when nothing was committed, so the client keeps its copy', async () => {
        const { store, cutter } = await storeThroughCutter();
        cutter.arm('before-commit');
        await expect(store.enqueue([message('lost-1')])).rejects.toThrow(/connection lost during COMMIT/);
        expect(await store.loadMessage('lost-1')).toBeNull();
        await store.enqueue([message('after-1')]);
        expect(await store.listRecipients('after-1')).toHaveLength(1);
      });
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
