import { expect, it } from 'vitest';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { ERASED } from '../../src/storage/personal-data.ts';
import { DataRefusedError, type AuditEntry, type NewMessage, type Store } from '../../src/storage/store.ts';
import type { SuppressionFilters } from '../../src/storage/suppressions.ts';
import type { ManualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';
import { buildDsn } from '../../src/engine/dsn.ts';
import { outboxEvents, subscribeToEverything } from '../helpers/webhook-events.ts';

/**
 * Personal data (PersonalData) in the store contract: called from runStoreContract, so every
 * backend finds what it holds about an address and erases it from real rows, leaving the
 * suppression entries' hashes, the other recipients' mail and everyone else's data as they were.
 */

const T0 = 1_700_000_000_000;
/** The data subject, spelled as one client gave it; found in any case. */
const SUBJECT = 'Erin.Subject@Dest.test';
const ALL: SuppressionFilters = { tenant: null, reason: null, address: null, since: null, until: null, now: null };

const delivered: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' };

/** Claims every due row and records `outcome` for those `pick` chooses (the others are given back). */
async function settle(store: Store, now: number, pick: (recipient: string) => boolean, outcome: DeliveryOutcome = delivered): Promise<void> {
  const claimed = await store.claimDue({ now, limit: 1000, owner: 'node-a', leaseMs: 60_000 });
  const chosen = claimed.filter((c) => pick(c.recipient));
  await store.recordAttempts(chosen.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome, newState: 'delivered', countsAsAttempt: true })));
  await store.release(claimed.filter((c) => !pick(c.recipient)), now);
}

/** A DSN about `original` quoting `quoted` (its Final-Recipient and the original's To), sent for `tenant`. */
function dsn(id: string, original: string, quoted: string, tenant: string | null, at: number): NewMessage {
  const body = `X-Rookery-Queue-ID: ${original}\r\nSubject: Undelivered Mail\r\n\r\nFinal-Recipient: rfc822; ${quoted}\r\n\r\nTo: <${quoted}>\r\n`;
  return newMessage(id, at, { sender: '', recipients: ['app@sender.test'], source: 'dsn', submitter: null, tenant, body: Buffer.from(body) });
}

function audit(target: string | null, change: AuditEntry['change'], tenant: string | null = null): AuditEntry {
  return { at: T0, actor: 'ops', tenant, clientAddress: '127.0.0.1', method: 'POST', route: '/v1/suppressions', target, change, status: 200, outcome: 'OK' };
}

export function registerErasureContract(ctx: { store: () => Store; clock: () => ManualClock }): void {
  it('shows the messages an address is a recipient of (any case, newest first), with its rows, attempts and feedback only', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('pd-old', T0, { recipients: ['erin.subject@dest.test', 'other@dest.test'], tenant: 'acme' }),
      newMessage('pd-new', T0 + 10, { recipients: [SUBJECT.toUpperCase()], tenant: 'beta' }),
      newMessage('pd-none', T0 + 20, { recipients: ['other@dest.test'], tenant: 'acme' }),
      newMessage('pd-untenanted', T0 + 30, { recipients: [SUBJECT], tenant: null }),
    ]);
    await settle(store, T0 + 100, (r) => r !== 'other@dest.test');
    const [row] = (await store.listRecipients('pd-old')).filter((r) => r.recipient === 'erin.subject@dest.test');
    await store.recordFeedback({
      messageId: 'pd-old', recipientId: row!.recipientId, recipient: row!.recipient, kind: 'complaint', at: T0 + 200, action: null, code: null, enhanced: null,
      diagnostic: 'abuse', bounceClass: null, reporter: 'fbl.dest.test', details: {}, egressIp: '127.0.0.2', fingerprint: 'pd-complaint',
    });

    const all = await store.recipientData(SUBJECT, null, 10);
    expect(all.messages.map((m) => m.message.id)).toEqual(['pd-untenanted', 'pd-new', 'pd-old']);
    expect(all.moreMessages).toBe(false);
    const old = all.messages[2]!;
    expect(old.message).toMatchObject({ id: 'pd-old', tenant: 'acme', sender: 'app@sender.test' });
    expect(old.recipients.map((r) => [r.recipient, r.state])).toEqual([['erin.subject@dest.test', 'delivered']]);
    expect(old.events.map((e) => [e.recipientId, e.outcome.disposition])).toEqual([[row!.recipientId, 'delivered']]);
    expect(old.feedback.map((f) => [f.kind, f.diagnostic])).toEqual([['complaint', 'abuse']]);
    // Queued rows are found as well as final ones.
    expect((await store.recipientData('other@DEST.test', null, 10)).messages.map((m) => [m.message.id, m.recipients[0]!.state])).toEqual([
      ['pd-none', 'queued'],
      ['pd-old', 'queued'],
    ]);

    expect((await store.recipientData(SUBJECT, null, 2)).moreMessages).toBe(true);
    expect((await store.recipientData(SUBJECT, 'acme', 10)).messages.map((m) => m.message.id)).toEqual(['pd-old']);
    expect((await store.recipientData(SUBJECT, '', 10)).messages.map((m) => m.message.id)).toEqual(['pd-untenanted']);
    expect((await store.recipientData('nobody@dest.test', null, 10)).messages).toEqual([]);
    await expect(store.recipientData('not an address', null, 10)).rejects.toBeInstanceOf(DataRefusedError);
    await expect(store.eraseRecipient('@', null, T0)).rejects.toBeInstanceOf(DataRefusedError);
  });

  it('shows its suppression entries, and counts the DSNs and webhook deliveries naming it, per tenant', async () => {
    const store = ctx.store();
    await store.addSuppressions([
      { tenant: 'acme', address: SUBJECT, reason: 'complaint', source: null, createdAt: T0, expiresAt: null },
      { tenant: null, address: 'erin.subject@dest.test', reason: 'manual', source: null, createdAt: T0, expiresAt: null },
      { tenant: 'acme', address: 'other@dest.test', reason: 'manual', source: null, createdAt: T0, expiresAt: null },
    ]);
    await subscribeToEverything(store, 'acme');
    await store.enqueue([newMessage('pd-hooked', T0, { recipients: [SUBJECT], tenant: 'acme' }), newMessage('pd-elsewhere', T0, { recipients: ['other@dest.test'], tenant: 'acme' })]);
    await store.enqueue([dsn('pd-dsn-1', 'pd-hooked', 'ERIN.SUBJECT@dest.test', 'acme', T0 + 1), dsn('pd-dsn-2', 'pd-elsewhere', 'other@dest.test', 'acme', T0 + 1)]);

    const data = await store.recipientData(SUBJECT, null, 10);
    expect(data.suppressions.map((s) => [s.tenant, s.reason]).sort()).toEqual([['', 'manual'], ['acme', 'complaint']]);
    expect(data.dsns).toBe(1);
    // message.accepted of the message to it names it (its recipients); the other message's does not.
    expect(data.webhookDeliveries).toBe(1);
    const acme = await store.recipientData(SUBJECT, 'acme', 10);
    expect(acme.suppressions.map((s) => s.tenant)).toEqual(['acme']);
    expect([acme.dsns, acme.webhookDeliveries]).toEqual([1, 1]);
    const beta = await store.recipientData(SUBJECT, 'beta', 10);
    expect([beta.suppressions.length, beta.dsns, beta.webhookDeliveries]).toEqual([0, 0, 0]);
  });

  it('finds and erases a DSN quoting an address beyond ASCII, as the bytes of its body hold it', async () => {
    const store = ctx.store();
    const address = 'jürgen.müller@dest.test';
    await store.enqueue([dsn('pd-dsn-utf8', 'pd-orig', address, null, T0), dsn('pd-dsn-ascii', 'pd-orig', 'jurgen.muller@dest.test', null, T0)]);
    expect((await store.recipientData('Jürgen.Müller@dest.test', null, 10)).dsns).toBe(1);
    expect((await store.eraseRecipient(address, null, T0 + 10)).counts.dsns).toBe(1);
    expect(await store.getMessageInfo('pd-dsn-utf8')).toBeNull();
    expect(await store.getMessageInfo('pd-dsn-ascii')).not.toBeNull();
  });

  it('finds and erases an address beyond ASCII in any case, letters of every script folded as lower() folds them', async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('pd-u-final', T0, { recipients: ['jörg.öst@dest.test'] }),
      newMessage('pd-u-waiting', T0 + 1, { recipients: ['JÖRG.ÖST@dest.test', 'later@dest.test'] }),
      // Another address of ASCII look-alikes, and one starting with a letter beyond ASCII.
      newMessage('pd-u-other', T0 + 2, { recipients: ['jorg.ost@dest.test'] }),
      newMessage('pd-u-cyrillic', T0 + 3, { recipients: ['Ёлка@dest.test'] }),
    ]);
    await settle(store, T0 + 10, (r) => r === 'jörg.öst@dest.test' || r === 'Ёлка@dest.test');

    const found = await store.recipientData('Jörg.Öst@DEST.test', null, 10);
    expect(found.messages.map((m) => [m.message.id, m.recipients.map((r) => [r.recipient, r.state])])).toEqual([
      ['pd-u-waiting', [['JÖRG.ÖST@dest.test', 'queued']]],
      ['pd-u-final', [['jörg.öst@dest.test', 'delivered']]],
    ]);
    expect((await store.recipientData('ёЛКА@dest.test', null, 10)).messages.map((m) => m.message.id)).toEqual(['pd-u-cyrillic']);

    expect((await store.eraseRecipient('jÖrg.öST@dest.test', null, T0 + 20)).counts).toMatchObject({ messages: 1, pending: 1, cancelled: 1 });
    expect(await store.getMessageInfo('pd-u-final')).toBeNull();
    expect((await store.listRecipients('pd-u-waiting')).map((r) => r.recipient)).toEqual(['later@dest.test']);
    expect(await store.getMessageInfo('pd-u-other')).not.toBeNull();
    expect((await store.eraseRecipient('ЁЛКА@dest.test', null, T0 + 30)).counts.messages).toBe(1);
    expect(await store.getMessageInfo('pd-u-cyrillic')).toBeNull();
  });

  it('erases the DSNs about its messages, also where their encoding splits the address across lines', async () => {
    const store = ctx.store();
    const colleagues = Array.from({ length: 6 }, (_, i) => `colleague${i}@dest.test`);
    const person = 'erased.person@dest.test';
    const body = Buffer.from(`From: app@sender.test\r\nTo: ${[...colleagues, person].join(', ')}\r\nSubject: Grüße aus München\r\n\r\nhello\r\n`);
    await store.enqueue([newMessage('pd-qp', T0, { recipients: [...colleagues, person], body })]);
    const report = await buildDsn({
      reportingMta: 'mx.rookery.test',
      original: { id: 'pd-qp', sender: 'app@sender.test', messageIdHeader: '<pd-qp@sender.test>', body, pool: 'default' },
      failed: [{ recipient: colleagues[0]!, outcome: { ...delivered, disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user', bounceClass: 'unknown-user' } }],
      now: T0 + 5,
      id: 'pd-qp-dsn',
    });
    await store.enqueue([report]);
    // The DSN quotes the original's header block quoted-printable: the address is not there as written.
    expect(report.body.toString('latin1').toLowerCase()).not.toContain(person);

    const { counts } = await store.eraseRecipient(person, null, T0 + 10);
    expect(counts).toMatchObject({ pending: 1, dsns: 1 });
    expect(await store.getMessageInfo('pd-qp-dsn')).toBeNull();
  });

  it('erases: deletes its messages, cancels its waiting rows without a DSN, keeps the suppression hash, and leaves the others', async () => {
    const store = ctx.store();
    const hook = await subscribeToEverything(store, 'acme');
    await store.enqueue([
      newMessage('er-alone', T0, { recipients: [SUBJECT], tenant: 'acme' }),
      newMessage('er-both-final', T0, { recipients: ['erin.subject@dest.test', 'done@dest.test'], tenant: 'acme' }),
      newMessage('er-other-waits', T0, { recipients: [SUBJECT, 'later@dest.test'], tenant: 'acme', body: Buffer.from(`To: ${SUBJECT}, later@dest.test\r\n\r\nhi\r\n`) }),
      newMessage('er-unrelated', T0, { recipients: ['later@dest.test'], tenant: 'acme' }),
    ]);
    await settle(store, T0 + 10, (r) => r !== 'later@dest.test');
    // Queued again to it: waiting, as is the other recipient of the same message.
    await store.enqueue([newMessage('er-queued', T0 + 20, { recipients: ['ERIN.subject@dest.test'], tenant: 'acme' })]);
    await store.addSuppressions([
      { tenant: 'acme', address: SUBJECT, reason: 'complaint', source: { kind: 'feedback', messageId: 'er-alone' }, createdAt: T0, expiresAt: null },
      { tenant: null, address: 'erin.subject@dest.test', reason: 'manual', source: null, createdAt: T0, expiresAt: null },
    ]);
    await store.enqueue([dsn('er-dsn', 'er-both-final', 'Erin.Subject@dest.test', 'acme', T0 + 30), dsn('er-dsn-other', 'er-unrelated', 'later@dest.test', 'acme', T0 + 30)]);
    await store.enqueueOnce([newMessage('er-keyed', T0 + 40, { recipients: ['other@dest.test'], tenant: 'acme' })], {
      scope: 'app', key: 'k-1', requestHash: 'h', status: 202, response: JSON.stringify({ id: 'er-keyed', recipients: [{ address: 'erin.SUBJECT@dest.test' }] }), createdAt: T0 + 40,
    }, 0);
    await store.enqueueOnce([], { scope: 'app', key: 'k-2', requestHash: 'h', status: 202, response: '{"id":"x","recipients":[{"address":"other@dest.test"}]}', createdAt: T0 + 40 }, 0);
    await store.recordAudit(audit(SUBJECT, { after: { address: 'erin.subject@DEST.test', reason: 'manual' } }));
    await store.recordAudit(audit('other@dest.test', { after: { address: 'other@dest.test' } }));
    const acceptedBefore = (await outboxEvents(store, hook)).length;

    const { counts, addressHash } = await store.eraseRecipient(SUBJECT, null, T0 + 1000);
    expect(counts).toEqual({ messages: 3, pending: 1, cancelled: 1, dsns: 1, suppressions: 2, webhookDeliveries: expect.any(Number), idempotencyRecords: 1, auditEntries: 1 });
    expect(counts.webhookDeliveries).toBeGreaterThanOrEqual(4);

    for (const id of ['er-alone', 'er-both-final', 'er-queued', 'er-dsn']) expect(await store.getMessageInfo(id), id).toBeNull();
    expect(await store.listEvents('er-alone')).toEqual([]);
    // Its row of the message another recipient waits for is gone; the message and that row stay.
    expect((await store.listRecipients('er-other-waits')).map((r) => [r.recipient, r.state])).toEqual([['later@dest.test', 'queued']]);
    expect((await store.listEvents('er-other-waits')).length).toBe(0);
    expect(await store.getMessageInfo('er-unrelated')).not.toBeNull();
    expect(await store.getMessageInfo('er-dsn-other')).not.toBeNull();
    // No DSN and no webhook event was written about it.
    expect((await store.listMessages({ state: null, sender: '', recipient: null, domain: null, pool: null, tag: null, since: null, until: null, tenant: null, after: null, limit: 100 })).map((m) => m.id)).toEqual(['er-dsn-other']);
    const events = await outboxEvents(store, hook);
    expect(events.length).toBeLessThan(acceptedBefore);
    expect(JSON.stringify(events).toLowerCase()).not.toContain('erin.subject@dest.test');

    const entries = await store.listSuppressions(ALL, null, 100);
    expect(entries.map((e) => [e.tenant, e.address, e.reason]).sort()).toEqual([['', null, 'manual'], ['acme', null, 'complaint']]);
    expect(entries.every((e) => e.addressHash === addressHash)).toBe(true);
    // The hash still refuses it, in any case.
    expect([...(await store.suppressedAmong('acme', ['ERIN.SUBJECT@dest.test'], T0 + 2000))]).toEqual(['ERIN.SUBJECT@dest.test']);
    expect(await store.getSuppression(null, SUBJECT, T0 + 2000)).toMatchObject({ address: null, reason: 'manual' });

    expect(await store.getIdempotencyRecord('app', 'k-1', 0)).toBeNull();
    expect(await store.getIdempotencyRecord('app', 'k-2', 0)).not.toBeNull();
    const kept = await store.listAudit({ actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    expect(kept.map((e) => [e.target, e.change]).sort()).toEqual([
      [ERASED, { after: { address: ERASED, reason: 'manual' } }],
      ['other@dest.test', { after: { address: 'other@dest.test' } }],
    ]);

    const after = await store.recipientData(SUBJECT, null, 10);
    expect([after.messages, after.dsns, after.webhookDeliveries]).toEqual([[], 0, 0]);
    expect(after.suppressions).toHaveLength(2);
    // Done: running it again finds nothing more.
    expect((await store.eraseRecipient(SUBJECT, null, T0 + 3000)).counts).toEqual({ messages: 0, pending: 0, cancelled: 0, dsns: 0, suppressions: 0, webhookDeliveries: 0, idempotencyRecords: 0, auditEntries: 0 });
  });

  it('cancels a row in delivery: its result is then stale, recorded nowhere', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('er-flight', T0, { recipients: [SUBJECT, 'kept@dest.test'] })]);
    const claimed = await store.claimDue({ now: T0, limit: 10, owner: 'node-a', leaseMs: 60_000 });
    const subject = claimed.find((c) => c.recipient === SUBJECT)!;

    const { counts } = await store.eraseRecipient(SUBJECT.toLowerCase(), null, T0 + 10);
    expect(counts).toMatchObject({ messages: 0, pending: 1, cancelled: 1 });
    expect(await store.renewLeases([subject], T0 + 120_000)).toEqual([subject.recipientId]);
    const recorded = await store.recordAttempts(claimed.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: delivered, newState: 'delivered' as const, countsAsAttempt: true })));
    expect(recorded).toEqual([claimed.find((c) => c.recipient === 'kept@dest.test')!.recipientId]);
    expect((await store.listEvents('er-flight')).map((e) => e.recipientId)).toEqual(recorded);
  });

  it('erases the address as a whole: another address containing it, or it with a longer domain, stays; a quoted local part goes in JSON too', async () => {
    const store = ctx.store();
    const longer = ['jimbob@example.com', 'bob@example.com.au', 'x.bob@example.com'];
    for (const other of longer) {
      await store.recordAudit(audit(`/v1/suppressions/${other}`, { after: { address: other } }));
      await store.enqueue([dsn(`dsn-${other}`, 'someone-else', other, null, T0)]);
    }
    await store.recordAudit(audit('/v1/suppressions/bob@example.com', { after: { address: 'Bob@Example.com' } }));
    await store.recordAudit(audit('/v1/suppressions/"a@b"@x.com', { after: { address: '"a@b"@x.com' } }));

    const { counts } = await store.eraseRecipient('bob@example.com', null, T0 + 10);
    expect(counts).toMatchObject({ dsns: 0, auditEntries: 1 });
    expect((await store.eraseRecipient('"a@b"@x.com', null, T0 + 20)).counts.auditEntries).toBe(1);

    const entries = await store.listAudit({ actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    const text = JSON.stringify(entries);
    for (const other of longer) expect(text).toContain(other);
    expect(text.toLowerCase()).not.toContain('/bob@example.com"');
    expect(text).not.toContain('a@b');
    for (const other of longer) expect(await store.loadMessage(`dsn-${other}`)).not.toBeNull();
  });

  it("confines a tenant's erasure to its own data", async () => {
    const store = ctx.store();
    await store.enqueue([
      newMessage('er-acme', T0, { recipients: [SUBJECT], tenant: 'acme' }),
      newMessage('er-beta', T0, { recipients: [SUBJECT], tenant: 'beta' }),
      newMessage('er-none', T0, { recipients: [SUBJECT], tenant: null }),
    ]);
    await store.addSuppressions(['acme', 'beta'].map((tenant) => ({ tenant, address: SUBJECT, reason: 'manual' as const, source: null, createdAt: T0, expiresAt: null })));
    await store.enqueue([dsn('er-dsn-acme', 'er-acme', SUBJECT, 'acme', T0 + 1), dsn('er-dsn-beta', 'er-beta', SUBJECT, 'beta', T0 + 1)]);
    // Answers of both tenants' sends name it: acme's names the message acme erases.
    const answer = (id: string) => JSON.stringify({ id, recipients: [{ address: SUBJECT }] });
    await store.enqueueOnce([], { scope: 'acme-app', key: 'a', requestHash: 'h', status: 202, response: answer('er-acme'), createdAt: T0 }, 0);
    await store.enqueueOnce([], { scope: 'beta-app', key: 'b', requestHash: 'h', status: 202, response: answer('er-beta'), createdAt: T0 }, 0);
    await store.recordAudit(audit(SUBJECT, null, 'acme'));
    await store.recordAudit(audit(SUBJECT, null, 'beta'));
    // The platform's staff (a token of no tenant): the entry does not say which tenant it concerned.
    await store.recordAudit({ ...audit(`/v1/suppressions/${SUBJECT.toLowerCase()}`, { before: { address: SUBJECT, tenant: 'acme' } }), method: 'DELETE' });
    await store.recordAudit(audit('/v1/suppressions/other@dest.test', { after: { address: 'other@dest.test' } }));

    const { counts } = await store.eraseRecipient(SUBJECT, 'acme', T0 + 10);
    expect(counts).toMatchObject({ messages: 1, dsns: 1, suppressions: 1, idempotencyRecords: 1, auditEntries: 2 });
    expect(await store.getMessageInfo('er-acme')).toBeNull();
    for (const id of ['er-beta', 'er-none', 'er-dsn-beta']) expect(await store.getMessageInfo(id), id).not.toBeNull();
    expect((await store.listSuppressions(ALL, null, 10)).map((e) => [e.tenant, e.address]).sort()).toEqual([['acme', null], ['beta', SUBJECT]]);
    expect(await store.getIdempotencyRecord('beta-app', 'b', 0)).not.toBeNull();
    const audited = await store.listAudit({ actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    expect(audited.map((e) => [e.tenant, e.target, e.change])).toEqual([
      [null, '/v1/suppressions/other@dest.test', { after: { address: 'other@dest.test' } }],
      [null, `/v1/suppressions/${ERASED}`, { before: { address: ERASED, tenant: 'acme' } }],
      ['beta', SUBJECT, null],
      ['acme', ERASED, null],
    ]);

    // Mail of no tenant is a tenant of its own: ''.
    expect((await store.eraseRecipient(SUBJECT, '', T0 + 20)).counts.messages).toBe(1);
    expect(await store.getMessageInfo('er-beta')).not.toBeNull();
  });

  it('deletes a pending message once its other recipients, and the DSNs made about it since, are final', async () => {
    const store = ctx.store();
    await store.enqueue([newMessage('er-pending', T0, { recipients: [SUBJECT, 'later@dest.test', 'bounces@dest.test'] })]);
    expect((await store.eraseRecipient(SUBJECT, null, T0 + 10)).counts.pending).toBe(1);
    expect(await store.purgeErasedMessages(T0 + 20)).toBe(0);

    // One delivered, one bounced with a DSN, which quotes the original's headers; it still waits.
    await settle(store, T0 + 30, (r) => r === 'later@dest.test');
    const claimed = await store.claimDue({ now: T0 + 40, limit: 10, owner: 'node-a', leaseMs: 60_000 });
    const permanent: DeliveryOutcome = { ...delivered, disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '550 5.1.1 no such user', bounceClass: 'unknown-user' };
    await store.recordAttempts(
      claimed.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: permanent, newState: 'bounced' as const, countsAsAttempt: true })),
      [{ message: dsn('er-pending-dsn', 'er-pending', 'bounces@dest.test', null, T0 + 40), reports: claimed.map((c) => c.recipientId) }],
    );
    // The DSN still waits for its own delivery: so does the message it quotes.
    expect(await store.purgeErasedMessages(T0 + 50)).toBe(0);
    expect(await store.getMessageInfo('er-pending')).not.toBeNull();

    await settle(store, T0 + 60, () => true);
    expect(await store.purgeErasedMessages(T0 + 70)).toBe(1);
    expect(await store.getMessageInfo('er-pending')).toBeNull();
    expect(await store.getMessageInfo('er-pending-dsn')).toBeNull();
    expect(await store.purgeErasedMessages(T0 + 80)).toBe(0);
  });
}
