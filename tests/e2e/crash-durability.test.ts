import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { createScratchDatabase } from '../helpers/postgres.ts';
import { postgresUrl, requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SinkReply, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const TOTAL = 1200;
const SESSIONS = 16;
const KILL_AFTER_ACKS = 400;

const postgresAvailable = await requirePostgres();

/**
 * Submits TOTAL messages over SESSIONS connections, SIGKILLs the daemon once KILL_AFTER_ACKS have
 * been answered 250 (while the rest are still being submitted), restarts it, and checks that every
 * acknowledged message reaches the sink.
 */
async function crashAndReconcile(dir: string, sink: SmtpSink, storage: ConfigInput['storage']) {
  const config = testDaemonConfig({
    dir,
    sink,
    extra: {
      hostname: 'crash.rookery.test',
      storage,
      delivery: { retry: { initial: '200ms', max: '1s' } },
      ips: [{ address: '127.0.0.2', hostname: 'out.rookery.test' }],
    },
  });
  let daemon: DaemonProcess | undefined = await startDaemonProcess(dir, config);
  try {
    const acknowledged = new Set<string>();
    const client = submissionClient(daemon.smtp[0]!, SESSIONS);
    let killed = false;
    const victim = daemon;
    await Promise.allSettled(
      Array.from({ length: TOTAL }, async (_, i) => {
        const messageId = `<crash-${i}@app.test>`;
        await client.send('app@sender.test', [`user${i % 7}@dest.test`], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId }));
        acknowledged.add(messageId);
        if (!killed && acknowledged.size >= KILL_AFTER_ACKS) {
          killed = true;
          victim.kill('SIGKILL');
        }
      }),
    );
    client.close();
    expect(killed).toBe(true);
    expect(await victim.exited).toBe('SIGKILL');
    // The kill landed mid-stream: some submissions were refused or cut off.
    expect(acknowledged.size).toBeLessThan(TOTAL);

    daemon = await startDaemonProcess(dir, config, { name: 'restart' });
    const deadline = Date.now() + 60_000;
    const delivered = () => new Set(sink.messages.map((m) => m.messageId));
    while ([...acknowledged].some((id) => !delivered().has(id)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const missing = [...acknowledged].filter((id) => !delivered().has(id));
    expect(missing).toEqual([]);
  } finally {
    await killDaemon(daemon);
  }
}

describe('crash durability: every message answered 250 is delivered after kill -9', () => {
  let dir: TempDir;
  let sink: SmtpSink | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-crash');
  });
  afterEach(async () => {
    await sink?.close();
    await dir.remove();
  });

  it('on SQLite', { timeout: 120_000 }, async () => {
    sink = await startSmtpSink();
    await crashAndReconcile(dir.path, sink, { driver: 'sqlite', path: dir.file('queue.db') });
  });

  it.skipIf(!postgresAvailable)('on PostgreSQL', { timeout: 120_000 }, async () => {
    sink = await startSmtpSink();
    const database = await createScratchDatabase(postgresUrl(), 'crash');
    try {
      await crashAndReconcile(dir.path, sink, { driver: 'postgres', url: database.url });
    } finally {
      await database.drop();
    }
  });
});

describe('two nodes on one PostgreSQL queue, one killed with -9 mid-load', () => {
  const LEASE_MS = 4_000;
  let dir: TempDir;
  let sink: SmtpSink | undefined;
  const daemons: DaemonProcess[] = [];
  /** Replies the sink holds back (node A's transactions): answered when the test ends. */
  const held: Array<(reply: SinkReply) => void> = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-two-nodes');
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await killDaemon(d);
    held.splice(0).forEach((answer) => answer({ code: 451, message: '4.3.0 test over' }));
    await sink?.close();
    await dir.remove();
  });

  it.skipIf(!postgresAvailable)('the survivor delivers the dead node\'s mail within two lease periods', { timeout: 120_000 }, async () => {
    // Node A sends from 127.0.0.2, node B from 127.0.0.3. The sink never answers A's final dot, so
    // A has transactions in flight, and rows leased, when it dies.
    sink = await startSmtpSink({
      script: { onData: (message) => (message.remoteAddress === '127.0.0.2' ? new Promise<SinkReply>((resolve) => held.push(resolve)) : undefined) },
    });
    const database = await createScratchDatabase(postgresUrl(), 'twonodes');
    try {
      const node = (name: string, ip: string) =>
        testDaemonConfig({
          dir: dir.path,
          sink: sink!,
          extra: {
            hostname: `${name}.rookery.test`,
            storage: { driver: 'postgres', url: database.url },
            delivery: { lease: `${LEASE_MS}ms`, retry: { initial: '200ms', max: '1s' } },
            ips: [{ address: ip, hostname: `${name}.rookery.test` }],
          },
        });
      const a = await startDaemonProcess(dir.path, node('node-a', '127.0.0.2'), { name: 'node-a' });
      daemons.push(a);
      daemons.push(await startDaemonProcess(dir.path, node('node-b', '127.0.0.3'), { name: 'node-b' }));

      const ids = Array.from({ length: 40 }, (_, i) => `<two-nodes-${i}@app.test>`);
      const client = submissionClient(a.smtp[0]!, 4);
      await Promise.all(ids.map((messageId) => client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId }))));
      client.close();
      const deadline = Date.now() + 20_000;
      while (held.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(held.length).toBeGreaterThanOrEqual(3);

      a.kill('SIGKILL');
      const killedAt = Date.now();
      expect(await a.exited).toBe('SIGKILL');
      // What A held when it died: rows it leased, whose leases nobody renews any more.
      const db = new pg.Client({ connectionString: database.url });
      await db.connect();
      const orphaned = await db
        .query<{ message_id_header: string }>(
          `SELECT m.message_id_header FROM recipients r JOIN messages m ON m.id = r.message_id
           WHERE r.state = 'delivering' AND r.locked_by = 'node-a.rookery.test'`,
        )
        .finally(() => db.end());
      const orphans = orphaned.rows.map((r) => r.message_id_header);
      expect(orphans.length).toBeGreaterThanOrEqual(3);

      const deliveredAt = new Map<string, number>();
      const end = killedAt + 30_000;
      while (deliveredAt.size < ids.length && Date.now() < end) {
        for (const m of sink.messages) if (m.messageId && !deliveredAt.has(m.messageId)) deliveredAt.set(m.messageId, m.receivedAt);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(ids.filter((id) => !deliveredAt.has(id))).toEqual([]);
      // The lease bound: A's mail waited at most for its leases to run out, then went out from B.
      const late = orphans.filter((id) => deliveredAt.get(id)! - killedAt > 2 * LEASE_MS);
      expect(late).toEqual([]);
      expect(new Set(sink.messages.filter((m) => orphans.includes(m.messageId!)).map((m) => m.remoteAddress))).toEqual(new Set(['127.0.0.3']));
    } finally {
      await database.drop();
    }
  });
});
