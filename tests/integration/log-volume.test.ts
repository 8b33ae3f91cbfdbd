import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

/** What the daemon logs at info for mail that goes through: the log of a busy node stays small. */
describe('log volume', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
    daemon = undefined;
  });

  it('is two info lines of a few hundred bytes per delivered message, a session per message included', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    const lines: string[] = [];
    const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    const input = testDaemonConfig({ dir: dir.path, sink, extra: { ips: [{ address: '127.0.0.2' }] } });
    daemon = await startDaemon({ resolved: resolveConfig(input, { source: 'test', env: {} }), logger, resolver: createFixtureResolver({}) });
    const started = lines.length;

    for (let i = 0; i < 3; i++) {
      const client = submissionClient(daemon.smtpAddresses()[0]!);
      const to = `user${i}@dest.test`;
      await client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId: `<volume${i}@app.test>` }));
      client.close();
    }
    await sink.waitForMessages(3);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const mail = lines.slice(started).map((line) => ({ line, entry: JSON.parse(line) as Record<string, unknown> }));
    expect(mail.map((m) => m.entry.event).sort()).toEqual([...Array(3).fill('delivery.delivered'), ...Array(3).fill('smtp.message.accepted')]);
    for (const { line, entry } of mail) {
      expect(Buffer.byteLength(line)).toBeLessThan(400);
      // Nothing every line would repeat.
      expect(Object.keys(entry)).not.toContain('service');
      expect(Object.keys(entry)).not.toContain('pid');
    }
  });
});
