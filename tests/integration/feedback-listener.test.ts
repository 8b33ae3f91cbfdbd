import { afterEach, describe, expect, it } from 'vitest';
import { buildDsn } from '../../src/engine/dsn.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { verpAddress } from '../../src/sender-domains/verp.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { RecipientRow, Store } from '../../src/storage/store.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { deliver, deliveredFrom, HARNESS_VERP_SECRET, startInboundHarness, type InboundHarness, type InboundHarnessOptions } from '../helpers/inbound-harness.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { SILENT } from '../helpers/fixture-resolver.ts';
import { createReportSigner, REPORT_SELECTOR } from '../helpers/signed-reports.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { tlsFixture } from '../helpers/tls-fixture.ts';
import { until } from '../helpers/until.ts';

/**
 * The inbound listener over real sockets, recording on real SQLite and PostgreSQL stores: who it
 * takes mail for, the guards it shares with submission, and what a DSN, a plain bounce or a
 * complaint leaves behind (the event, the recipient's state, reputation, suppression, webhooks),
 * and which complaints to a feedback-loop address are believed (signed by a trusted reporter).
 */

const postgres = await requirePostgres();
const logger = createLogger('silent');
/** The VERP address of the fixtures (tests/fixtures/feedback/), replaced by the one of the test's recipient. */
const FIXTURE_VERP = 'b+0190a4c2e6f1a3b5c7d9e1.7.xa5znjwbpn@bounces.sender.test';
const FIXTURE_MESSAGE_ID = '<0190a4c2e6f1a3b5c7d9e1.7@sender.test>';
/** Signs reports as the feedback loops of the harness (HARNESS_FBL_REPORTERS) and others; its resolver holds their keys. */
const signer = createReportSigner();

/** feedback_reports_total of a harness: each label set with its count. */
async function reportCounts(h: InboundHarness): Promise<Array<[Record<string, unknown>, number]>> {
  return (await h.metrics.feedbackReports.get()).values.map((v) => [v.labels, v.value]);
}

const backends = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`inbound listener on ${backend.name}`, () => {
    let dir: TempDir | undefined;
    let schema: TestSchema | undefined;
    const stores: Store[] = [];
    const harnesses: InboundHarness[] = [];
    let sequence = 0;

    afterEach(async () => {
      await Promise.all(harnesses.splice(0).map((h) => h.stop()));
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await schema?.drop();
      await dir?.remove();
      schema = dir = undefined;
    });

    async function openStore(): Promise<Store> {
      const store =
        backend.name === 'postgres'
          ? createPostgresStore({ url: (schema ??= await createTestSchema('feedback-listener')).url, schema: schema.schema, logger, poolSize: 4 })
          : createSqliteStore({ path: (dir ??= await createTempDir('rookery-feedback-listener')).file('rookery.db'), logger });
      stores.push(store);
      await store.migrate();
      return store;
    }

    async function harness(options: Omit<InboundHarnessOptions, 'logger'> & { logger?: Logger }): Promise<InboundHarness> {
      const h = await startInboundHarness({ logger, resolver: signer.resolver, ...options });
      harnesses.push(h);
      return h;
    }

    /** A message delivered to `recipients` from 127.0.0.2, with the VERP return path of each. */
    async function deliveredMessage(store: Store, recipients: string[], tenant: string | null = 'acme'): Promise<{ id: string; rows: RecipientRow[]; verp: string[]; messageIdHeader: string }> {
      const id = `0190f00d${(++sequence).toString(16).padStart(6, '0')}`;
      const messageIdHeader = `<${id}@sender.test>`;
      await store.enqueue([newMessage(id, Date.now(), { recipients, tenant, messageIdHeader })]);
      const claimed = await store.claimDue({ now: Date.now() + 1, limit: 100, owner: 'node-a', leaseMs: 60_000 });
      await store.recordAttempts(claimed.filter((c) => c.messageId === id).map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: deliveredFrom('127.0.0.2'), newState: 'delivered', countsAsAttempt: true })));
      const rows = await store.listRecipients(id);
      const verp = rows.map((r) => verpAddress({ messageId: id, recipientId: r.recipientId, domain: 'bounces.sender.test', secret: HARNESS_VERP_SECRET }));
      return { id, rows, verp, messageIdHeader };
    }

    /** A fixture addressed to our recipient: its VERP address and Message-ID in place of the fixture's. */
    function adapted(name: string, verp: string, messageIdHeader: string): Buffer {
      return Buffer.from(feedbackFixture(name).toString('latin1').replaceAll(FIXTURE_VERP, verp).replaceAll(FIXTURE_MESSAGE_ID, messageIdHeader), 'latin1');
    }

    it('takes mail only for verified VERP return paths and the feedback-loop addresses: anyone else gets 550 5.7.1', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const forged = m.verp[0]!.replace(/\.([a-z2-7]{10})@/, (_all, tag: string) => `.${tag.startsWith('a') ? 'b' : 'a'}${tag.slice(1)}@`);
      const { rcpt, data } = await deliver(h.port, { from: '', to: ['someone@elsewhere.test', forged, `postmaster@bounces.sender.test`, 'FBL@Sender.test', m.verp[0]!] }, 'Subject: x\r\n\r\nhello\r\n');
      // postmaster of a bounce domain is taken, as RFC 5321 requires (read as a feedback address).
      expect(rcpt.map((r) => `${r.code} ${r.text.slice(0, 5)}`)).toEqual(['550 5.7.1', '550 5.7.1', '250 2.1.5', '250 2.1.5', '250 2.1.5']);
      expect(rcpt[0]!.text).toMatch(/relay access denied/);
      // A message that is neither a report nor a bounce is taken and dropped.
      expect(data?.code).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      const refused = await h.metrics.inboundRejections.get();
      expect(refused.values).toEqual([expect.objectContaining({ labels: { reason: 'RECIPIENT_NOT_ACCEPTED' }, value: 2 })]);
    });

    it("records an asynchronous bounce from Postfix's DSN: the recipient bounces, the address is suppressed, a webhook event made", async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['unknown.user@dest.test', 'other@dest.test']);
      const { data } = await deliver(h.port, { from: '', to: [m.verp[0]!] }, adapted('postfix-user-unknown.eml', m.verp[0]!, m.messageIdHeader));
      expect(data).toMatchObject({ code: 250 });

      const [bounced, other] = await store.listRecipients(m.id);
      expect(bounced).toMatchObject({ state: 'bounced', lastOutcome: { disposition: 'permanent', code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user', egressIp: '127.0.0.2' } });
      expect(other!.state).toBe('delivered');
      const [event] = await store.listFeedback(m.id);
      expect(event).toMatchObject({
        kind: 'bounce', action: 'failed', recipientId: bounced!.recipientId, code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user', reporter: 'mx1.relay.test', egressIp: '127.0.0.2',
        details: { format: 'dsn', reportingMta: 'mx1.relay.test', remoteMta: '127.0.0.1', status: '5.1.1' },
      });
      expect(event!.diagnostic).toBe('5.1.1 <unknown.user@dest.test>: Recipient address rejected: User unknown in virtual mailbox table');
      expect(await h.suppressed()).toEqual([
        { tenant: 'acme', address: 'unknown.user@dest.test', reason: 'hard-bounce', source: { kind: 'feedback', feedbackId: event!.id, messageId: m.id, recipientId: bounced!.recipientId }, createdAt: expect.any(Number), expiresAt: null },
      ]);
      expect(await h.emitted()).toEqual([
        expect.objectContaining({ type: 'recipient.bounced', recipient: 'unknown.user@dest.test', reply: expect.objectContaining({ code: 550, enhanced: '5.1.1' }), data: expect.objectContaining({ async: true, bounceClass: 'unknown-user' }) }),
      ]);
      // An unknown user says nothing about the IP.
      expect(h.reputation.snapshot('127.0.0.2', 'other', Date.now())).toMatchObject({ blocked: 0, complaints: 0 });
    });

    it("counts a spam refusal in our own DSN against the egress IP, without suppressing the address, taking the DSN's entry for the VERP recipient", async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['trap@gmail.test']);
      const dsn = await buildDsn({
        reportingMta: 'relay.partner.test',
        original: { id: m.id, sender: m.verp[0]!, messageIdHeader: m.messageIdHeader, body: Buffer.from(`Message-ID: ${m.messageIdHeader}\r\n\r\nx\r\n`), pool: 'default' },
        failed: [
          // A relay reporting on another recipient too: the VERP address names which entry is ours.
          { recipient: 'someone.else@gmail.test', outcome: { disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '5.1.1 no such user', stage: 'rcpt', bounceClass: 'unknown-user', remoteHost: 'mx.gmail.test', egressIp: '192.0.2.9' } },
          { recipient: 'Trap@gmail.test', outcome: { disposition: 'permanent', code: 554, enhanced: '5.7.1', response: '5.7.1 Message rejected: spam detected', stage: 'dot', bounceClass: 'spam', remoteHost: 'mx.gmail.test', egressIp: '192.0.2.9' } },
        ],
        now: Date.now(),
        id: 'partner-dsn-1',
      });
      expect((await deliver(h.port, { from: '', to: [m.verp[0]!] }, dsn.body)).data?.code).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([expect.objectContaining({ action: 'failed', code: 554, enhanced: '5.7.1', bounceClass: 'spam', reporter: 'relay.partner.test' })]);
      expect((await store.listRecipients(m.id))[0]!.state).toBe('bounced');
      expect(h.reputation.snapshot('127.0.0.2', 'gmail', Date.now())).toMatchObject({ blocked: 1 });
      expect(await h.suppressed()).toEqual([]);
    });

    it('records a delay notice without changing the recipient, and a plain-text bounce as a failure', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['grey.listed@dest.test', 'user@dest.test']);
      expect((await deliver(h.port, { from: '', to: [m.verp[0]!] }, adapted('postfix-delayed.eml', m.verp[0]!, m.messageIdHeader))).data?.code).toBe(250);
      expect((await deliver(h.port, { from: '', to: [m.verp[1]!] }, adapted('exim-user-unknown.eml', m.verp[1]!, m.messageIdHeader))).data?.code).toBe(250);

      const events = await store.listFeedback(m.id);
      expect(events.map((e) => [e.recipient, e.action, e.enhanced, e.bounceClass])).toEqual([
        ['grey.listed@dest.test', 'delayed', '4.7.1', 'policy'],
        ['user@dest.test', 'failed', '5.1.1', 'unknown-user'],
      ]);
      expect((await store.listRecipients(m.id)).map((r) => r.state)).toEqual(['delivered', 'bounced']);
      expect((await h.suppressed()).map((s) => s.address)).toEqual(['user@dest.test']);
      expect((await h.emitted()).map((e) => e.recipient)).toEqual(['user@dest.test']);
    });

    it('records a complaint to the feedback-loop address on the recipient its returned original names', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['first@gmail.test', 'user@dest.test']);
      // Yahoo's report (signed by yahoo.test, From arf.mail.yahoo.test): found by the VERP return path of the original.
      const yahoo = await signer.sign(adapted('arf-yahoo.eml', m.verp[0]!, m.messageIdHeader), 'yahoo.test');
      expect((await deliver(h.port, { from: 'feedback@arf.mail.yahoo.test', to: ['fbl@sender.test'] }, yahoo)).data?.code).toBe(250);
      // RFC 5965's minimal report: by the Message-ID header, then the To of the original.
      const minimal = feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1').replace('<arf-minimal.1@sender.test>', m.messageIdHeader).replace('To: <user@example.com>', 'To: <User@Dest.test>');
      expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, await signer.sign(minimal, 'example.com'))).data?.code).toBe(250);

      const events = await store.listFeedback(m.id);
      expect(events.map((e) => [e.kind, e.recipient, e.diagnostic])).toEqual([
        ['complaint', 'first@gmail.test', 'abuse'],
        ['complaint', 'user@dest.test', 'abuse'],
      ]);
      expect(events[0]).toMatchObject({ reporter: 'feedback@arf.mail.yahoo.test', details: { userAgent: 'Yahoo!-Mail-Feedback/2.0', sourceIp: '127.0.0.2', format: 'arf' }, egressIp: '127.0.0.2' });
      // A complaint leaves the recipient's state alone.
      expect((await store.listRecipients(m.id)).map((r) => r.state)).toEqual(['delivered', 'delivered']);
      expect(h.reputation.snapshot('127.0.0.2', 'gmail', Date.now()).complaints).toBe(1);
      expect(h.reputation.snapshot('127.0.0.2', 'other', Date.now()).complaints).toBe(1);
      expect((await h.suppressed()).map((s) => [s.address, s.reason, s.tenant])).toEqual([
        ['first@gmail.test', 'complaint', 'acme'],
        ['user@dest.test', 'complaint', 'acme'],
      ]);
      expect((await h.emitted()).map((e) => e.type)).toEqual(['recipient.complained', 'recipient.complained']);
    });

    it('never guesses whose complaint it is: copies of one Message-ID are told apart by the recipient the report names, or left alone', async () => {
      const store = await openStore();
      const h = await harness({ store });
      // Two copies of one mailing (a copy per recipient shares the Message-ID).
      const alice = await deliveredMessage(store, ['alice@dest.test']);
      const victim = await deliveredMessage(store, ['victim@gmail.test']);
      const shared = '<shared-newsletter-1@sender.test>';
      const minimal = (to: string) =>
        signer.sign(feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1').replace('<arf-minimal.1@sender.test>', shared).replace('To: <user@example.com>', `To: <${to}>`), 'example.com');
      for (const m of [alice, victim]) {
        await store.enqueue([newMessage(`${m.id}ff`, Date.now(), { recipients: m.rows.map((r) => r.recipient), messageIdHeader: shared, tenant: 'acme' })]);
      }
      // Naming Alice: her copy, never the newest copy's recipient.
      expect((await deliver(h.port, { from: 'abuse@example.com', to: ['fbl@sender.test'] }, await minimal('alice@dest.test'))).data?.code).toBe(250);
      // Naming nobody on the mailing (a redacted report): nothing is recorded.
      expect((await deliver(h.port, { from: 'abuse@example.com', to: ['fbl@sender.test'] }, await minimal('redacted@example.com'))).data?.code).toBe(250);
      expect((await h.suppressed()).map((s) => s.address)).toEqual(['alice@dest.test']);
      expect(await store.listFeedback(`${victim.id}ff`)).toEqual([]);
    });

    it('takes the recipient a verified VERP return path of the original names, and no other the report names', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['user@dest.test', 'other@dest.test']);
      // Our return path of a recipient this node no longer holds, on an original naming another of the message.
      const gone = verpAddress({ messageId: '0190deadbeef00', recipientId: 424242, domain: 'bounces.sender.test', secret: HARNESS_VERP_SECRET });
      const report = adapted('arf-rfc5965-full.eml', gone, m.messageIdHeader).toString('latin1').replace('To: <user@dest.test>', 'To: <other@dest.test>');
      expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, await signer.sign(report, 'example.com'))).data?.code).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(await reportCounts(h)).toEqual([[{ kind: 'arf', result: 'unmatched' }, 1]]);
      // The return path of one of its recipients: that one, whatever the original's To says.
      const named = adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader).toString('latin1').replace('To: <user@dest.test>', 'To: <other@dest.test>');
      expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, await signer.sign(named, 'example.com'))).data?.code).toBe(250);
      expect((await store.listFeedback(m.id)).map((e) => e.recipient)).toEqual(['user@dest.test']);
    });

    it('counts one complaint per recipient, however many differently worded reports arrive', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['user@gmail.test']);
      // Unsigned, to the VERP return path: its HMAC tag names the recipient, so no signature is asked for.
      const report = adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader).toString('latin1');
      for (let i = 0; i < 5; i++) {
        const variant = Buffer.from(report.replace(/^Subject: .*$/m, `Subject: complaint ${i}`), 'latin1');
        expect((await deliver(h.port, { from: 'abusedesk@example.com', to: [m.verp[0]!] }, variant)).data?.code).toBe(250);
      }
      expect(await store.listFeedback(m.id)).toHaveLength(1);
      expect(h.reputation.snapshot('127.0.0.2', 'gmail', Date.now()).complaints).toBe(1);
      expect(await h.emitted()).toHaveLength(1);
    });

    it('records a report delivered twice once, with one webhook event, writing its suppression again, counting it once', async () => {
      const store = await openStore();
      const h = await harness({ store });
      const m = await deliveredMessage(store, ['user@gmail.test']);
      const report = await signer.sign(adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader), 'example.com');
      for (let i = 0; i < 2; i++) expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, report)).data?.code).toBe(250);

      const events = await store.listFeedback(m.id);
      expect(events).toHaveLength(1);
      expect((await h.suppressed()).map((s) => s.source)).toEqual([expect.objectContaining({ feedbackId: events[0]!.id })]);
      expect((await h.emitted()).map((e) => e.type)).toEqual(['recipient.complained']);
      expect(h.reputation.snapshot('127.0.0.2', 'gmail', Date.now()).complaints).toBe(1);
      expect(await reportCounts(h)).toEqual([
        [{ kind: 'arf', result: 'recorded' }, 1],
        [{ kind: 'arf', result: 'duplicate' }, 1],
      ]);
    });

    it('believes a complaint to a feedback-loop address only when a trusted reporter signed it, aligned with its From', async () => {
      const store = await openStore();
      const { logger: captured, logs } = capturingLogger();
      const h = await harness({ store, logger: captured });
      const m = await deliveredMessage(store, ['user@dest.test', 'other@dest.test']);
      const report = (to: string, from = 'abusedesk@example.com') =>
        feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1').replace('<arf-minimal.1@sender.test>', m.messageIdHeader).replace('To: <user@example.com>', `To: <${to}>`).replace('From: <abusedesk@example.com>', `From: <${from}>`);
      const send = async (message: Buffer | string) => (await deliver(h.port, { from: 'fbl-sender@relay.test', to: ['fbl@sender.test'] }, message)).data?.code;

      // Anyone can write one: unsigned.
      expect(await send(report('user@dest.test'))).toBe(250);
      // Signed, by a domain nobody trusts.
      expect(await send(await signer.sign(report('user@dest.test', 'abuse@attacker.test'), 'attacker.test'))).toBe(250);
      // Signed by a trusted reporter, on someone else's From (mail a reporter's users can send).
      expect(await send(await signer.sign(report('user@dest.test', 'abuse@attacker.test'), 'yahoo.test'))).toBe(250);
      // A trusted reporter's report about another recipient, re-aimed: the body no longer verifies.
      const genuine = await signer.sign(report('other@dest.test'), 'example.com');
      expect(await send(Buffer.from(genuine.toString('latin1').replace('To: <other@dest.test>', 'To: <user@dest.test>'), 'latin1'))).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(await h.suppressed()).toEqual([]);
      expect(h.reputation.snapshot('127.0.0.2', 'other', Date.now()).complaints).toBe(0);

      // The genuine one, as signed, counts.
      expect(await send(genuine)).toBe(250);
      expect((await store.listFeedback(m.id)).map((e) => [e.kind, e.recipient])).toEqual([['complaint', 'other@dest.test']]);
      expect((await h.suppressed()).map((s) => s.address)).toEqual(['other@dest.test']);
      expect(h.reputation.snapshot('127.0.0.2', 'other', Date.now()).complaints).toBe(1);

      expect(await reportCounts(h)).toEqual([
        [{ kind: 'arf', result: 'unauthenticated' }, 4],
        [{ kind: 'arf', result: 'recorded' }, 1],
      ]);
      const dropped = logs.filter((l) => l.event === 'feedback.report.unauthenticated');
      expect(dropped.map((l) => [l.level, l.reason, l.fromDomain, l.dkim])).toEqual([
        [40, 'no-signature', 'example.com', []],
        // Its key is not even looked up.
        [40, 'signer-not-trusted', 'attacker.test', [{ domain: 'attacker.test', result: 'not-checked' }]],
        [40, 'from-not-aligned', 'attacker.test', [{ domain: 'yahoo.test', result: 'pass' }]],
        [40, 'signature-failed', 'example.com', [{ domain: 'example.com', result: 'neutral' }]],
      ]);
      // Domains and verdicts only: nothing of what the report says.
      expect(JSON.stringify(dropped)).not.toMatch(/dest\.test|sender\.test|abuse@|abusedesk@/);
    });

    it('believes a provider that hosts mailboxes only from the address listed: another mailbox there is dropped, however signed', async () => {
      const store = await openStore();
      const { logger: captured, logs } = capturingLogger();
      const h = await harness({ store, logger: captured, config: { inbound: { fblReporters: ['Reports@Mailbox.test', 'example.com'] } } });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const report = (from: string) =>
        signer.sign(feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1').replace('<arf-minimal.1@sender.test>', m.messageIdHeader).replace('To: <user@example.com>', 'To: <user@dest.test>').replace('From: <abusedesk@example.com>', `From: <${from}>`), 'mailbox.test');
      const send = async (message: Buffer) => (await deliver(h.port, { from: 'fbl-sender@relay.test', to: ['fbl@sender.test'] }, message)).data?.code;

      // A user of the provider, signed by it as all its mail is.
      expect(await send(await report('someone@mailbox.test'))).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(await h.suppressed()).toEqual([]);
      expect(logs.filter((l) => l.event === 'feedback.report.unauthenticated').map((l) => [l.reason, l.fromDomain, l.dkim])).toEqual([
        ['reporter-address-mismatch', 'mailbox.test', [{ domain: 'mailbox.test', result: 'pass' }]],
      ]);
      // The address listed (its domain in any case).
      expect(await send(await report('Reports@MAILBOX.test'))).toBe(250);
      expect((await store.listFeedback(m.id)).map((e) => [e.kind, e.recipient])).toEqual([['complaint', 'user@dest.test']]);
      expect(await reportCounts(h)).toEqual([
        [{ kind: 'arf', result: 'unauthenticated' }, 1],
        [{ kind: 'arf', result: 'recorded' }, 1],
      ]);
    });

    it('answers 451 when the key of a trusted reporter cannot be looked up, and records the report when it comes again', async () => {
      const store = await openStore();
      const own = createReportSigner();
      const h = await harness({ store, resolver: own.resolver });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const report = adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader);
      const signed = await own.sign(report, 'example.com');
      own.resolver.set('fbl._domainkey.example.com', { txt: 'ETIMEOUT' });
      const { data } = await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, signed);
      expect(data).toMatchObject({ code: 451 });
      expect(data!.text).toMatch(/^4\.4\.3 DKIM key of the report could not be looked up/);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect((await h.metrics.inboundRejections.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'SIGNATURE_LOOKUP_FAILED' }, value: 1 })]);

      // DNS answers again (signing publishes the key anew): the retry is recorded.
      expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, await own.sign(report, 'example.com'))).data?.code).toBe(250);
      expect((await store.listFeedback(m.id)).map((e) => e.kind)).toEqual(['complaint']);
    });

    it("drops a trusted feedback loop's report to another subscriber, passed on unchanged to postmaster@ a bounce domain", async () => {
      const store = await openStore();
      const { logger: captured, logs } = capturingLogger();
      const h = await harness({ store, logger: captured });
      const m = await deliveredMessage(store, ['attacker@dest.test', 'victim@dest.test']);
      // Signed by yahoo.test as its reports are, sent To the subscriber's own address, about an
      // "original" the subscriber wrote: our Message-ID, another recipient's address.
      const report = [
        'From: Yahoo Feedback <feedback@yahoo.test>',
        'To: <fbl@attacker.test>',
        'Subject: Complaint',
        'Date: Thu, 8 Mar 2026 17:40:36 +0000',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b1"',
        '',
        '--b1', 'Content-Type: text/plain', '', 'This is an email abuse report.', '',
        '--b1', 'Content-Type: message/feedback-report', '', 'Feedback-Type: abuse', 'User-Agent: Yahoo!-Mail-Feedback/2.0', 'Version: 1', '',
        '--b1', 'Content-Type: text/rfc822-headers', '',
        'From: <app@sender.test>', 'To: <victim@dest.test>', `Message-ID: ${m.messageIdHeader}`, 'Subject: newsletter', '',
        '--b1--', '',
      ].join('\r\n');
      const signed = await signer.sign(report, 'yahoo.test');
      expect((await deliver(h.port, { from: '', to: ['postmaster@bounces.sender.test'] }, signed)).data?.code).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(await h.suppressed()).toEqual([]);
      expect(logs.filter((l) => l.event === 'feedback.report.unauthenticated').map((l) => [l.reason, l.fromDomain, l.dkim])).toEqual([
        ['not-addressed-to-us', 'yahoo.test', [{ domain: 'yahoo.test', result: 'pass' }]],
      ]);
      // The same report sent to us is believed, at postmaster@ as at the feedback-loop address.
      const ours = await signer.sign(report.replace('To: <fbl@attacker.test>', 'To: <postmaster@bounces.sender.test>'), 'yahoo.test');
      expect((await deliver(h.port, { from: '', to: ['postmaster@bounces.sender.test'] }, ours)).data?.code).toBe(250);
      expect((await h.suppressed()).map((s) => s.address)).toEqual(['victim@dest.test']);
      expect(await reportCounts(h)).toEqual([
        [{ kind: 'arf', result: 'unauthenticated' }, 1],
        [{ kind: 'arf', result: 'recorded' }, 1],
      ]);
    });

    it('answers at once a report signed by domains no reporter vouches for, however their DNS answers, folded signature names counted', async () => {
      const store = await openStore();
      const own = createReportSigner();
      const h = await harness({ store, resolver: own.resolver });
      const m = await deliveredMessage(store, ['user@dest.test']);
      let report: Buffer = adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader);
      const attackers = Array.from({ length: 4 }, (_, i) => `c${i}.attacker.test`);
      for (const domain of attackers) {
        report = await own.sign(report, domain);
        own.resolver.set(`${REPORT_SELECTOR}._domainkey.${domain}`, { txt: SILENT });
      }
      const folded = (raw: Buffer) => Buffer.from(raw.toString('latin1').replace(/^DKIM-Signature:/gm, 'DKIM-Signature\r\n :'), 'latin1');
      expect((await deliver(h.port, { from: 'x@attacker.test', to: ['fbl@sender.test'] }, folded(report))).data?.code).toBe(250);
      // Past the cap, as mailauth counts them.
      for (let i = 4; i <= 10; i++) report = await own.sign(report, `c${i}.attacker.test`);
      expect((await deliver(h.port, { from: 'x@attacker.test', to: ['fbl@sender.test'] }, folded(report))).data?.code).toBe(250);
      expect(own.resolver.queries).toEqual([]);
      expect(h.buffers.used).toBe(0);
      expect(await reportCounts(h)).toEqual([[{ kind: 'arf', result: 'unauthenticated' }, 2]]);
    });

    it("ends a trusted reporter's key lookups when the sender is told to retry: the memory budget is not held by work that failed", async () => {
      const store = await openStore();
      const own = createReportSigner();
      const h = await harness({ store, resolver: own.resolver, config: { inbound: { processingTimeout: '200ms' } } });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const signed = await own.sign(adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader), 'example.com');
      // The reporter's DNS never answers (the daemon's resolver would wait 10 s, twice).
      own.resolver.set(`${REPORT_SELECTOR}._domainkey.example.com`, { txt: SILENT });
      const { data } = await deliver(h.port, { from: 'abusedesk@example.com', to: ['fbl@sender.test'] }, signed);
      expect(data).toMatchObject({ code: 451 });
      expect(data!.text).toMatch(/^4\.3\.0 Message could not be processed in time/);
      await until(() => h.buffers.used === 0, 'the message released from the buffer budget');
      expect(own.resolver.queries).toEqual([`TXT ${REPORT_SELECTOR}._domainkey.example.com`]);
      expect(await store.listFeedback(m.id)).toEqual([]);
    });

    it('drops complaints to postmaster@ a bounce domain when no reporter is trusted, without a lookup', async () => {
      const store = await openStore();
      const own = createReportSigner();
      const { logger: captured, logs } = capturingLogger();
      const h = await harness({ store, logger: captured, resolver: own.resolver, config: { inbound: { fblAddresses: [], fblReporters: [] } } });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const signed = await own.sign(adapted('arf-rfc5965-full.eml', m.verp[0]!, m.messageIdHeader), 'example.com');
      expect((await deliver(h.port, { from: 'abusedesk@example.com', to: ['postmaster@bounces.sender.test'] }, signed)).data?.code).toBe(250);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(own.resolver.queries).toEqual([]);
      expect(logs.filter((l) => l.event === 'feedback.report.unauthenticated').map((l) => [l.reason, l.fromDomain])).toEqual([['no-reporters', 'example.com']]);
      expect(await reportCounts(h)).toEqual([[{ kind: 'arf', result: 'unauthenticated' }, 1]]);
    });

    it('answers 451 when the report cannot be recorded, so the sender keeps it and retries', async () => {
      const store = await openStore();
      const failing = new Proxy(store, { get: (target, key) => (key === 'recordFeedback' ? () => Promise.reject(new Error('database unreachable')) : Reflect.get(target, key, target)) });
      const h = await harness({ store, recordStore: failing });
      const m = await deliveredMessage(store, ['unknown.user@dest.test']);
      const { data } = await deliver(h.port, { from: '', to: [m.verp[0]!] }, adapted('postfix-user-unknown.eml', m.verp[0]!, m.messageIdHeader));
      expect(data).toMatchObject({ code: 451 });
      expect(data!.text).toMatch(/^4\.3\.0 /);
      expect(await store.listFeedback(m.id)).toEqual([]);
      expect((await store.listRecipients(m.id))[0]!.state).toBe('delivered');
    });

    it('answers 451 when the message takes longer than processingTimeout, and waits for it at stop', async () => {
      const store = await openStore();
      let handled = 0;
      const h = await harness({
        store,
        config: { inbound: { processingTimeout: '100ms' } },
        unsubscribe: {
          accepts: (address) => address.toLowerCase() === 'unsubscribe@sender.test',
          handle: async () => {
            await new Promise((resolve) => setTimeout(resolve, 400));
            handled++;
          },
        },
      });
      const { data } = await deliver(h.port, { from: 'person@dest.test', to: ['unsubscribe@sender.test'] }, 'Subject: unsubscribe\r\n\r\n\r\n');
      expect(data).toMatchObject({ code: 451 });
      expect(data!.text).toMatch(/^4\.3\.0 Message could not be processed in time/);
      await h.stop();
      expect(handled).toBe(1);
    });

    it('hands mail to the unsubscribe addresses to their handler', async () => {
      const store = await openStore();
      const received: Array<{ address: string; text: string }> = [];
      const h = await harness({ store, unsubscribe: { accepts: (a) => a.startsWith('unsub+'), handle: async (address, message) => void received.push({ address, text: message.toString() }) } });
      const { rcpt, data } = await deliver(h.port, { from: 'person@dest.test', to: ['unsub+token123@sender.test'] }, 'Subject: unsubscribe\r\n\r\nplease\r\n');
      expect([rcpt[0]!.code, data?.code]).toEqual([250, 250]);
      expect(received).toEqual([{ address: 'unsub+token123@sender.test', text: 'Subject: unsubscribe\r\n\r\nplease\r\n' }]);
    });

    it('drops what cannot be read or is not a report, and bounces for recipients it no longer holds', async () => {
      const store = await openStore();
      const h = await harness({ store, config: { inbound: { maxMessageBytes: 200_000 } } });
      const m = await deliveredMessage(store, ['user@dest.test']);
      const parts = Array.from({ length: 150 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join('');
      const tooManyParts = `Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`;
      expect((await deliver(h.port, { from: '', to: [m.verp[0]!] }, tooManyParts)).data?.code).toBe(250);
      expect((await deliver(h.port, { from: 'user@dest.test', to: [m.verp[0]!] }, adapted('out-of-office.eml', m.verp[0]!, m.messageIdHeader))).data?.code).toBe(250);
      // A VERP address that verifies, for a message this store does not hold (purged).
      const gone = verpAddress({ messageId: '0190deadbeef00', recipientId: 424242, domain: 'bounces.sender.test', secret: HARNESS_VERP_SECRET });
      expect((await deliver(h.port, { from: '', to: [gone] }, adapted('postfix-user-unknown.eml', gone, m.messageIdHeader))).data?.code).toBe(250);

      expect(await store.listFeedback(m.id)).toEqual([]);
      expect(await reportCounts(h)).toEqual([
        [{ kind: 'other', result: 'malformed' }, 1],
        [{ kind: 'plain-bounce', result: 'ignored' }, 1],
        [{ kind: 'dsn', result: 'unmatched' }, 1],
      ]);
    });

    it('keeps the size limit, the recipient limit and the bare line ending guard of submission', async () => {
      const store = await openStore();
      const h = await harness({ store, config: { inbound: { maxMessageBytes: 4096, maxRecipients: 2 } } });
      const m = await deliveredMessage(store, ['a@dest.test', 'b@dest.test', 'c@dest.test']);
      const big = await deliver(h.port, { from: '', to: [m.verp[0]!] }, `Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(80));
      expect(big.data?.code).toBe(552);
      const bare = await deliver(h.port, { from: '', to: [m.verp[0]!] }, 'Subject: smuggled\r\n\r\nline\n.\r\nMAIL FROM:<x@y.test>\r\n');
      expect(bare.data).toMatchObject({ code: 554 });
      expect(bare.data!.text).toMatch(/^5\.6\.0 /);
      const many = await deliver(h.port, { from: '', to: m.verp }, 'Subject: x\r\n\r\nx\r\n');
      expect(many.rcpt.map((r) => r.code)).toEqual([250, 250, 452]);
      expect(await store.listFeedback(m.id)).toEqual([]);
    });

    it('offers STARTTLS when there is TLS material, and AUTH never', async () => {
      const store = await openStore();
      const h = await harness({ store, tls: await tlsFixture() });
      const client = await SmtpTestClient.connect({ host: '127.0.0.1', port: h.port });
      try {
        const ehlo = await client.ehlo('mx.remote.test');
        expect(ehlo.lines).toContain('STARTTLS');
        expect(ehlo.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
        expect((await client.startTls()).code).toBe(220);
        const secured = await client.ehlo('mx.remote.test');
        expect(secured.lines).not.toContain('STARTTLS');
        expect(secured.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
        expect((await client.send('AUTH PLAIN AGFwcABzZWNyZXQ=')).code).toBe(503);
      } finally {
        await client.close();
      }
    });
  });
}
