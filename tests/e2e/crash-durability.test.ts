import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { createScratchDatabase } from '../helpers/postgres.ts';
import { postgresUrl, requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
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
