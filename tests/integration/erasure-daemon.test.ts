import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { findInPostgres, findInSqlite, type Occurrence } from '../helpers/find-everywhere.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { deliver } from '../helpers/inbound-harness.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createReportSigner } from '../helpers/signed-reports.ts';
import { startSmtpSink, type SinkMessage, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { subscribeToEverything } from '../helpers/webhook-events.ts';

/**
 * The erasure of a recipient address through a whole daemon (in this process) delivering to a
 * loopback sink, on SQLite and on PostgreSQL: real mail leaves every kind of trace of the address
 * (an idempotent send, a message with a bounced co-recipient and its DSN, one whose co-recipient
 * still waits, a complaint through the inbound listener and the suppression it makes, webhook
 * events, an audited API call), DELETE /v1/recipients erases it, and a search of every table and
 * column finds the address nowhere, in any case, once the waiting message is final, while its
 * suppression hash still refuses it and the other recipient is still delivered.
 */

const postgres = await requirePostgres();
const senderToken = generateApiToken();
const adminToken = generateApiToken();
/** The data subject, as the application spells it; searched for in lower case (the search ignores case). */
const SUBJECT = 'Erin.Subject@Dest.test';
const NEEDLE = 'erin.subject@dest.test';

const backends = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
];

/** An ARF complaint (RFC 5965) about `original`, as a feedback loop sends it. */
function complaint(original: SinkMessage): Buffer {
  const head = [
    'From: <abuse@dest.test>',
    'To: <fbl@sender.test>',
    'Subject: FW: complaint',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"',
    '',
    '--arf',
    'Content-Type: text/plain',
    '',
    'An abuse report.',
    '--arf',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: TestLoop/1.0',
    'Version: 1',
    '',
    '--arf',
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), original.raw, Buffer.from('\r\n--arf--\r\n')]);
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(`erasure through a running daemon on ${backend.name}`, () => {
    let dir: TempDir | undefined;
    let schema: TestSchema | undefined;
    let sink: SmtpSink | undefined;
    let daemon: Daemon | undefined;

    afterEach(async () => {
      // The daemon closes the store it was given.
      for (const stop of [() => daemon?.stop(), () => sink?.close(), () => dir?.remove(), () => schema?.drop()]) await stop();
      daemon = sink = dir = schema = undefined;
    });

    it('leaves no trace of the address but its suppression hash, and still delivers the other recipient', async () => {
      dir = await createTempDir('rookery-erasure-daemon');
      let laterWaits = true;
      sink = await startSmtpSink({
        script: {
          onRcptTo: (address) => {
            if (address.startsWith('refused@')) return { code: 550, message: '5.7.1 Message rejected due to local policy' };
            if (address.startsWith('later@') && laterWaits) return { code: 451, message: '4.2.0 Try again later' };
            return undefined;
          },
        },
      });
      let store: Store;
      let find: () => Promise<Occurrence[]>;
      if (backend.name === 'postgres') {
        const s = (schema = await createTestSchema('erasure-daemon'));
        store = createPostgresStore({ url: s.url, schema: s.schema, logger: createLogger('silent') });
        find = () => findInPostgres(s.url, s.schema, NEEDLE);
      } else {
        const path = dir.file('queue.db');
        store = createSqliteStore({ path, logger: createLogger('silent') });
        find = async () => findInSqlite(path, NEEDLE);
      }
      await store.migrate();
      // Every event of the tenant stays in the outbox: no dispatcher runs (webhooks.enabled false).
      await subscribeToEverything(store, 'shop');
      const mx = { mx: [{ exchange: 'mx.dest.test', priority: 10 }] };
      const resolver = createFixtureResolver({ 'dest.test': mx, 'sender.test': mx, 'mx.dest.test': { a: ['127.0.0.1'] } });
      // The feedback loop signs its complaint; the daemon looks its key up with its own resolver.
      const signer = createReportSigner(resolver);
      daemon = await startTestDaemon({
        dir,
        sink,
        store,
        resolver,
        config: {
          ips: [{ address: '127.0.0.2' }],
          delivery: { retry: { initial: 3_600_000 } },
          api: {
            tokens: [
              { name: 'shop', role: 'sender', tenant: 'shop', hash: hashApiToken(senderToken), allowedSenders: ['*@sender.test'] },
              { name: 'dpo', role: 'admin', hash: hashApiToken(adminToken) },
            ],
          },
          tenants: { shop: { senderDomains: ['sender.test'] } },
          webhooks: { enabled: false },
          inbound: { listeners: [{ host: '127.0.0.1', port: 0 }], fblAddresses: ['fbl@sender.test'], fblReporters: ['dest.test'] },
        },
      });
      const { host, port } = daemon.apiAddress();
      const api = async (method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}) => {
        const res = await fetch(`http://${host}:${port}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as any };
      };
      const send = async (to: string[], headers: Record<string, string> = {}) => {
        const sent = await api('POST', '/v1/messages', senderToken, { from: 'orders@sender.test', to, subject: 'Your order', text: `Hello ${to.join(', ')}` }, headers);
        expect(sent.status, JSON.stringify(sent.body)).toBe(202);
        return sent.body.id as string;
      };
      const final = (id: string) => until(async () => (await store.listRecipients(id)).every((r) => r.state === 'delivered' || r.state === 'bounced'), `message ${id} final`, 20_000);
      const atSink = (to: string) => sink!.messages.find((m) => m.to.includes(to));

      // An idempotent send to it alone, delivered; a complaint about it comes back (event, suppression, webhook).
      const alone = await send([NEEDLE], { 'idempotency-key': 'order-4711' });
      await final(alone);
      const delivered = sink.messages.find((m) => m.to.includes(NEEDLE))!;
      // With a co-recipient refused for good: the DSN to the sender quotes the original's To.
      const withBounce = await send([SUBJECT, 'refused@dest.test']);
      await final(withBounce);
      await until(() => atSink('orders@sender.test') !== undefined, 'the DSN delivered to the sender', 20_000);
      // With a co-recipient deferred: it still waits when the address is erased.
      const waiting = await send([SUBJECT, 'later@dest.test']);
      await until(async () => (await store.listRecipients(waiting)).some((r) => r.state === 'delivered'), 'the address delivered', 20_000);
      const { data } = await deliver(daemon.inboundAddresses()[0]!.port, { from: 'abuse@dest.test', to: ['fbl@sender.test'] }, await signer.sign(complaint(delivered), 'dest.test'));
      expect(data?.code).toBe(250);
      await until(async () => (await store.getSuppression('shop', SUBJECT, Date.now())) !== null, 'the complaint suppressed it');
      // An operator's own entry for mail of no tenant: audited with the address.
      expect((await api('POST', '/v1/suppressions', adminToken, { address: SUBJECT, tenant: null })).status).toBe(200);

      const held = await api('GET', `/v1/recipients/${SUBJECT}`, adminToken);
      expect(held.body.messages.map((m: { id: string }) => m.id).sort()).toEqual([alone, withBounce, waiting].sort());
      expect(held.body.messages.find((m: { id: string }) => m.id === alone).recipients[0].feedback).toEqual([expect.objectContaining({ kind: 'complaint' })]);
      expect(held.body.suppressions).toHaveLength(2);
      expect(held.body.dsns).toBe(1);
      expect(held.body.webhookDeliveries).toBeGreaterThan(0);
      // The search finds it where it is, before the erasure.
      const before = new Set((await find()).map((o) => `${o.table}.${o.column}`));
      for (const place of ['messages.body', 'recipients.recipient', 'feedback_events.recipient', 'suppressions.address', 'webhook_deliveries.recipient', 'idempotency_keys.response', 'audit.target']) {
        expect(before, place).toContain(place);
      }

      const erased = await api('DELETE', `/v1/recipients/${SUBJECT.toUpperCase()}`, adminToken);
      expect(erased.status, JSON.stringify(erased.body)).toBe(200);
      expect(erased.body.counts).toMatchObject({ messages: 2, pending: 1, cancelled: 0, dsns: 1, suppressions: 2, idempotencyRecords: 1, auditEntries: 1 });
      expect(erased.body.counts.webhookDeliveries).toBeGreaterThan(0);
      // Only the body of the message the other recipient waits for names it now.
      expect(await find()).toEqual([{ table: 'messages', column: 'body', rows: 1 }]);

      // The hash still refuses it at acceptance, in any spelling.
      const refused = await api('POST', '/v1/messages', senderToken, { from: 'orders@sender.test', to: 'ERIN.subject@dest.test', subject: 'Again', text: 'x' });
      expect(refused).toMatchObject({ status: 422, body: { code: 'RECIPIENT_SUPPRESSED' } });

      // The other recipient is delivered; then the message goes (the retention sweeper's call).
      laterWaits = false;
      expect((await api('POST', '/v1/queue/retry', adminToken, { scope: { domain: 'dest.test' } })).status).toBe(200);
      await until(() => atSink('later@dest.test') !== undefined, 'the other recipient delivered', 20_000);
      await final(waiting);
      expect(await store.purgeErasedMessages(Date.now())).toBe(1);
      expect(await find()).toEqual([]);
      expect((await api('GET', `/v1/recipients/${NEEDLE}`, adminToken)).body).toMatchObject({ messages: [], dsns: 0, webhookDeliveries: 0, suppressions: [{ address: null }, { address: null }] });
    });
  });
}
