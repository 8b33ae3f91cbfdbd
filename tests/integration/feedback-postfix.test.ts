import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { freePort } from '../helpers/free-port.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startPostfixInstance, type PostfixInstance } from '../helpers/postfix-instance.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * An asynchronous bounce made by a real MTA, end to end: the daemon delivers through a throwaway
 * Postfix (tests/helpers/postfix-instance.ts) with each recipient's VERP return path; Postfix
 * accepts (the recipient is delivered, from Rookery's point of view), relays to a loopback sink
 * that refuses one recipient with 550 5.1.1, and sends its own DSN to the bounce domain, which
 * its transport map routes to the daemon's inbound listener. The bounce must end recorded on the
 * right recipient, on SQLite and on PostgreSQL. Postfix needs root (its master binds as root);
 * .ci/run installs Debian's postfix package when it is missing.
 */

const postgres = await requirePostgres();
const SECRET = 'postfix-feedback-secret-0123456789abcdef';
const resolver = createFixtureResolver({
  'dest.test': { mx: [{ exchange: 'relay.dest.test', priority: 10 }] },
  'relay.dest.test': { a: ['127.0.0.1'] },
});

const backends = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`bounces from a real Postfix on ${backend.name}`, () => {
    let dir: TempDir | undefined;
    let schema: TestSchema | undefined;
    let remote: SmtpSink | undefined;
    let postfix: PostfixInstance | undefined;
    let daemon: Daemon | undefined;

    afterEach(async () => {
      await daemon?.stop();
      await postfix?.stop();
      await remote?.close();
      await schema?.drop();
      await dir?.remove();
      daemon = postfix = remote = schema = dir = undefined;
    });

    it('records the DSN Postfix sends to the VERP return path as an asynchronous bounce of that recipient', { timeout: 90_000 }, async () => {
      dir = await createTempDir('rookery-feedback-postfix');
      const logger = createLogger('silent');
      let store: Store;
      if (backend.name === 'postgres') {
        schema = await createTestSchema('feedback-postfix');
        store = createPostgresStore({ url: schema.url, schema: schema.schema, logger, poolSize: 4 });
      } else {
        store = createSqliteStore({ path: dir.file('rookery.db'), logger });
      }

      // The next hop behind Postfix: one mailbox does not exist.
      remote = await startSmtpSink({
        hostname: 'mailbox.dest.test',
        script: { onRcptTo: (address) => (address.startsWith('unknown.') ? { code: 550, message: `5.1.1 <${address}>: Recipient address rejected: User unknown in virtual mailbox table` } : undefined) },
      });
      const [postfixPort, inboundPort] = [await freePort(), await freePort()];
      postfix = await startPostfixInstance({
        port: postfixPort,
        relay: { host: remote.host, port: remote.port },
        // Its bounces for the VERP domain go to the daemon's inbound listener.
        settings: ['myhostname = relay.dest.test', `transport_maps = inline:{ bounces.sender.test=smtp:[127.0.0.1]:${inboundPort} }`],
      });
      daemon = await startTestDaemon({
        dir,
        sink: { port: postfixPort },
        resolver,
        store,
        config: {
          ips: [{ address: '127.0.0.2' }],
          returnPath: { secret: SECRET, domains: { 'sender.test': {} } },
          inbound: { listeners: [{ host: '127.0.0.1', port: inboundPort }] },
        },
      });
      expect(daemon.inboundAddresses()).toEqual([{ host: '127.0.0.1', port: inboundPort }]);

      const client = submissionClient(daemon.smtpAddresses()[0]!);
      const to = ['unknown.user@dest.test', 'reader@dest.test'];
      const sent = await client.send('app@sender.test', to, testMessage({ from: 'app@sender.test', to: to[0]!, messageId: '<digest-1@sender.test>' }));
      client.close();
      const messageId = /queued as (\S+)/.exec(sent.response)![1]!;

      // Postfix took both; the mailbox behind it took one.
      await remote.waitForMessages(1, 30_000);
      expect(remote.messages[0]!.to).toEqual(['reader@dest.test']);
      await until(async () => (await store.listFeedback(messageId)).length > 0, 'the bounce recorded', 60_000);

      const [unknown, reader] = await store.listRecipients(messageId);
      expect(unknown).toMatchObject({
        recipient: 'unknown.user@dest.test',
        state: 'bounced',
        lastOutcome: { disposition: 'permanent', code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user', egressIp: '127.0.0.2' },
      });
      expect(reader).toMatchObject({ recipient: 'reader@dest.test', state: 'delivered' });
      const events = await store.listFeedback(messageId);
      expect(events).toEqual([
        expect.objectContaining({
          kind: 'bounce', action: 'failed', recipientId: unknown!.recipientId, recipient: 'unknown.user@dest.test', code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user',
          reporter: 'relay.dest.test', egressIp: '127.0.0.2',
          diagnostic: '5.1.1 <unknown.user@dest.test>: Recipient address rejected: User unknown in virtual mailbox table',
        }),
      ]);
      expect(events[0]!.details).toMatchObject({ format: 'dsn', reportingMta: 'relay.dest.test', finalRecipient: 'unknown.user@dest.test' });
    });
  });
}
