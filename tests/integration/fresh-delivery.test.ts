import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testSubmission } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The first delivery of mail just accepted takes the body the queue was handed instead of
 * reading it back from the store (engine/fresh-messages.ts); a later attempt reads the store.
 * Either way the bytes delivered are the bytes stored.
 */
describe('delivery of mail just accepted', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    for (const stop of [() => daemon?.stop(), () => sink?.close(), () => dir?.remove()]) await stop();
    daemon = sink = dir = undefined;
  });

  it('sends the first attempt from memory and a retry from the store, the stored bytes each time', async () => {
    dir = await createTempDir('rookery-fresh-delivery');
    let deferred = false;
    sink = await startSmtpSink({
      script: {
        onData: (message) => {
          if (message.messageId !== '<retried@app.test>' || deferred) return undefined;
          deferred = true;
          return { code: 451, message: '4.3.0 try again' };
        },
      },
    });
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    const loads = vi.spyOn(store, 'loadMessage');
    daemon = await startTestDaemon({
      dir,
      sink,
      store,
      resolver: createFixtureResolver({ 'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] }, 'mx.dest.test': { a: ['127.0.0.1'] } }),
      config: { ips: [{ address: '127.0.0.2' }], delivery: { dsn: { enabled: false }, retry: { initial: 200, jitter: 0 } } },
    });
    const once = await daemon.submit(testSubmission('<once@app.test>'));
    const retried = await daemon.submit(testSubmission('<retried@app.test>'));

    await until(() => sink!.messages.length === 2, 'both messages at the sink');
    expect(deferred).toBe(true);
    expect(loads.mock.calls).toEqual([[retried.id]]);
    for (const { id, messageIdHeader } of [once, retried]) {
      const delivered = sink.messages.find((m) => m.messageId === messageIdHeader)!;
      expect(delivered.raw.equals((await store.loadMessage(id))!.body)).toBe(true);
    }
  });
});
