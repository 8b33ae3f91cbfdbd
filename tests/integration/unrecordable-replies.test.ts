import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { ResultRecorder } from '../../src/engine/result-recorder.ts';
import type { Daemon } from '../../src/main.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { startRawReplyServer } from '../helpers/faulty-remotes.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { testSubmission } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * Remote replies that PostgreSQL cannot store as they came (a NUL byte in the text): the result
 * of the transaction must still be recorded, readable, rather than retried for ever while the
 * row stays 'delivering' and its delivery slot stays taken.
 */

const available = await requirePostgres();

describe.skipIf(!available)('replies the queue cannot store as they came', () => {
  let schema: TestSchema;
  let store: Store;
  let dir: TempDir | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  let daemon: Daemon | undefined;

  async function openStore(): Promise<Store> {
    schema = await createTestSchema('unrecordable-replies');
    store = createPostgresStore({ url: schema.url, schema: schema.schema, logger: createLogger('silent') });
    await store.migrate();
    return store;
  }

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await store.close();
    await schema.drop();
    await dir?.remove();
    dir = undefined;
  });

  it('records a delivery whose reply carries a NUL byte, with the byte written out', { timeout: 30_000 }, async () => {
    dir = await createTempDir('rookery-nul-reply');
    const remote = await startRawReplyServer('250 2.0.0 queued as \u0000ABC\u0007');
    cleanups.push(() => remote.close());
    const resolver = createFixtureResolver({ 'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] }, 'mx.dest.test': { a: ['127.0.0.1'] } });
    daemon = await startTestDaemon({ dir, sink: remote, resolver, store: await openStore() });
    const { id } = await daemon.submit(testSubmission('<nul@app.test>'));
    await until(() => remote.messages() === 1, 'the message to be answered');
    await until(async () => (await store.listRecipients(id))[0]!.state === 'delivered', 'the delivery to be recorded');
    const [row] = await store.listRecipients(id);
    expect(row!.lastOutcome).toMatchObject({ disposition: 'delivered', response: '2.0.0 queued as \\x00ABC\\x07' });
  });

  it('records a cleaned-up outcome after a few tries when the store refuses the one it was given, for good', { timeout: 30_000 }, async () => {
    await openStore();
    const now = Date.now();
    await store.enqueue([
      { id: 'm1', sender: 'a@s.test', recipients: ['u@d.test'], messageIdHeader: null, body: Buffer.from('x\r\n'), submitter: null, source: 'smtp', clientAddress: null, createdAt: now, dueAt: now, pool: 'default' },
    ]);
    const rows = await store.claimDue({ now, limit: 1, owner: 'node-a', leaseMs: 60_000 });
    // A reply text no classification cleaned (a bug elsewhere): PostgreSQL refuses it every time.
    const outcome: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: 'ok \u0000 id', stage: 'dot', bounceClass: 'none', remoteHost: 'mx\u0000.d.test', egressIp: null };
    const { logger, logs } = capturingLogger();
    const recorder = new ResultRecorder({ store, clock: systemClock, log: logger });
    const job = { messageId: 'm1', route: { ok: true as const, site: 'mx.d.test', hops: [] }, rows };
    let recorded: Set<number> | null | undefined;
    const recording = recorder
      .record(job, [{ recipientId: rows[0]!.recipientId, outcome, newState: 'delivered', countsAsAttempt: true }], [])
      .then((ids) => (recorded = ids));
    try {
      await until(() => recorded !== undefined, 'the results to be recorded, not retried for ever', 10_000);
    } finally {
      recorder.interrupt();
      await recording;
    }
    expect(recorded).toEqual(new Set([rows[0]!.recipientId]));
    const [row] = await store.listRecipients('m1');
    expect(row).toMatchObject({ state: 'delivered', lastOutcome: { disposition: 'delivered', response: 'ok \\x00 id', remoteHost: 'mx\\x00.d.test' } });
    expect(logs.filter((l) => l.event === 'delivery.record.retry').length).toBeLessThanOrEqual(3);
    expect(logs.filter((l) => l.event === 'delivery.record.cleaned')).toHaveLength(1);
  });
});
