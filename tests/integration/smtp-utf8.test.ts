import { afterEach, describe, expect, it } from 'vitest';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import type { NewSuppression } from '../../src/storage/suppressions.ts';
import type { SmtpTestClient } from '../helpers/smtp-client.ts';
import { APP_PASSWORD, message, queueIdOf, rejections, runCleanups, startHarness, type Harness } from '../helpers/submission-harness.ts';

/**
 * Internationalised mail at SMTP submission (RFC 6531), over real sockets: SMTPUTF8 is offered,
 * UTF-8 addresses are taken in a transaction opened with it and refused (553 5.6.7) in one that
 * was not, and the checks that compare domains (allowedSenders, tenants' sender domains, the
 * suppression list) read an IDN the same in either form.
 */

afterEach(runCleanups);

const LISTENER = { host: '127.0.0.1', port: 0, tls: 'none' } as const;

/** One command line written as UTF-8 (the test client's send() writes Latin-1). */
async function sendUtf8(client: SmtpTestClient, line: string) {
  client.write(Buffer.from(`${line}\r\n`, 'utf8'));
  return client.read();
}

async function trusted(): Promise<{ h: Harness; client: SmtpTestClient }> {
  const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] });
  const client = await h.connect();
  return { h, client };
}

describe('SMTP submission: SMTPUTF8', () => {
  it('offers SMTPUTF8 and takes UTF-8 addresses and headers in a transaction that asked for it, received "with UTF8SMTP"', async () => {
    const { h, client } = await trusted();
    const ehlo = await client.ehlo();
    expect(ehlo.lines).toContain('SMTPUTF8');
    expect((await sendUtf8(client, 'MAIL FROM:<jörg@bücher.example> SMTPUTF8')).code).toBe(250);
    expect((await sendUtf8(client, 'RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>')).code).toBe(250);
    expect((await sendUtf8(client, 'RCPT TO:<plain@dest.example>')).code).toBe(250);
    const body = Buffer.from('From: Jörg <jörg@bücher.example>\r\nTo: δοκιμή@παράδειγμα.δοκιμή\r\nSubject: Grüße\r\n\r\nHallo.\r\n', 'utf8');
    const done = await client.data(body);
    expect(done.code).toBe(250);

    const id = queueIdOf(done.text);
    const stored = await h.store.loadMessage(id);
    expect(stored!.sender).toBe('jörg@bücher.example');
    const header = splitHeader(stored!.body).header;
    expect(headerValue(header, 'From')).toBe(Buffer.from('Jörg <jörg@bücher.example>').toString('latin1'));
    expect(headerValue(header, 'Subject')).toBe(Buffer.from('Grüße').toString('latin1'));
    expect(headerValue(header, 'Received')).toMatch(/ with UTF8SMTP id /);
    const recipients = await h.store.listRecipients(id);
    expect(recipients.map((r) => r.recipient)).toEqual(['δοκιμή@παράδειγμα.δοκιμή', 'plain@dest.example']);
    // Grouped and routed by the A-label, the form DNS is asked in.
    expect((await h.store.listMessages({ since: null, until: null, after: null, state: null, sender: null, recipient: null, domain: 'xn--hxajbheg2az3al.xn--jxalpdlp', pool: null, tenant: null, tag: null, limit: 10 })).map((m) => m.id)).toEqual([id]);
  });

  it('refuses a UTF-8 address without SMTPUTF8 on MAIL FROM with 553 5.6.7, and takes an A-label domain without it', async () => {
    const { h, client } = await trusted();
    await client.ehlo();
    const mail = await sendUtf8(client, 'MAIL FROM:<jörg@bücher.example>');
    expect(mail.code).toBe(553);
    expect(mail.text).toBe('5.6.7 Non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM');
    expect((await sendUtf8(client, 'MAIL FROM:<news@bücher.example>')).code).toBe(553);

    expect((await client.send('MAIL FROM:<news@xn--bcher-kva.example>')).code).toBe(250);
    const rcpt = await sendUtf8(client, 'RCPT TO:<ünï@dest.example>');
    expect(rcpt.code).toBe(553);
    expect(rcpt.text.startsWith('5.6.7 ')).toBe(true);
    expect((await client.send('RCPT TO:<user@xn--bcher-kva.example>')).code).toBe(250);
    const done = await client.data(message('news@xn--bcher-kva.example', 'user@xn--bcher-kva.example'));
    expect(done.code).toBe(250);
    expect(await rejections(h.metrics, 'SMTPUTF8_REQUIRED')).toBe(3);
    expect(h.logs.some((l) => l.event === 'smtp.command.rejected' && l.reason === 'SMTPUTF8_REQUIRED' && l.command === 'RCPT')).toBe(true);
  });

  it('refuses bytes that are not UTF-8 (501) and UTF-8 that is no letter in an address (553 5.1.3)', async () => {
    const { h, client } = await trusted();
    await client.ehlo();
    client.write(Buffer.concat([Buffer.from('MAIL FROM:<j'), Buffer.from([0xf6]), Buffer.from('rg@example.com> SMTPUTF8\r\n')]));
    const latin1 = await client.read();
    expect(latin1.code).toBe(501);
    expect(latin1.text).toBe('5.6.7 Address is not valid UTF-8');
    expect(await rejections(h.metrics, 'NOT_UTF8')).toBe(1);

    // A zero-width joiner is nothing to some readers: the address would read as another's.
    const spaced = await sendUtf8(client, 'MAIL FROM:<ce\u200do@example.com> SMTPUTF8');
    expect(spaced.code).toBe(553);
    expect(spaced.text).toMatch(/^5\.1\.3 Bad sender address: /);
    expect((await sendUtf8(client, 'MAIL FROM:<jörg@example.com> SMTPUTF8')).code).toBe(250);
    // smtp-server itself takes U+2028 and U+3000 for spaces: a syntax error before any check of ours.
    expect((await sendUtf8(client, 'RCPT TO:<a\u2028b@dest.example>')).code).toBe(501);
    expect((await sendUtf8(client, 'RCPT TO:<a\u3000b@dest.example>')).code).toBe(501);
    expect((await sendUtf8(client, 'RCPT TO:<snow\u2603@dest.example>')).code).toBe(553);
    expect((await sendUtf8(client, 'RCPT TO:<ünï@dest.example>')).code).toBe(250);
    // The decomposed spelling of a mailbox (o + U+0308) is refused, naming the one to write (RFC 6532 3.1).
    const decomposed = await sendUtf8(client, 'RCPT TO:<jo\u0308rg@dest.example>');
    expect(decomposed.code).toBe(553);
    expect(decomposed.text).toContain('normalization form C');
  });

  it("holds UTF-8 senders to allowedSenders and the tenant's sender domains, an IDN in either form", async () => {
    const users = [{ username: 'app', password: APP_PASSWORD, allowedSenders: ['*@bücher.example', 'jörg@shop.example'], tenant: 'acme' }];
    const h = await startHarness({ listeners: [LISTENER], users }, { config: { tenants: { acme: { senderDomains: ['xn--bcher-kva.example', 'shop.example'] } } } });
    const client = await h.connect();
    await client.ehlo();
    expect((await client.authPlain('app', APP_PASSWORD)).code).toBe(235);
    expect((await sendUtf8(client, 'MAIL FROM:<jörg@shop.example> SMTPUTF8')).code).toBe(250);
    await client.send('RSET');
    // The local part compares exactly (RFC 5321 leaves its case to the owner).
    expect((await sendUtf8(client, 'MAIL FROM:<JÖRG@shop.example> SMTPUTF8')).code).toBe(553);
    expect((await client.send('MAIL FROM:<news@XN--BCHER-KVA.example>')).code).toBe(250);
    await client.send('RSET');
    expect((await sendUtf8(client, 'MAIL FROM:<zoë@BÜCHER.example> SMTPUTF8')).code).toBe(250);
    expect((await sendUtf8(client, 'RCPT TO:<ünï@dest.example>')).code).toBe(250);
    // From in U-labels, the user's pattern in U-labels, the tenant's domain as the A-label.
    const done = await client.data(Buffer.from('From: Zoë <zoë@bücher.example>\r\nTo: ünï@dest.example\r\nSubject: x\r\n\r\nx\r\n', 'utf8'));
    expect(done.code).toBe(250);
    expect(await h.store.getMessageInfo(queueIdOf(done.text))).toMatchObject({ tenant: 'acme' });

    expect((await sendUtf8(client, 'MAIL FROM:<zoë@bücher.example> SMTPUTF8')).code).toBe(250);
    expect((await sendUtf8(client, 'RCPT TO:<ünï@dest.example>')).code).toBe(250);
    const foreign = await client.data(Buffer.from('From: <zoë@other.example>\r\nSubject: x\r\n\r\nx\r\n', 'utf8'));
    expect(foreign.code).toBe(553);
    expect(foreign.text).toBe('5.7.1 From or Sender header address not allowed for this user');
  });

  it('refuses a suppressed UTF-8 recipient whatever the case of its local part and the form of its domain', async () => {
    const { h, client } = await trusted();
    const entry = (address: string): NewSuppression => ({ tenant: null, address, reason: 'hard-bounce', source: { kind: 'api', actor: 'ops' }, createdAt: h.clock.now() - 1000, expiresAt: null });
    await h.store.addSuppressions([entry('Jörg@xn--bcher-kva.example'), entry('ÉLODIE@Dest.example')]);
    await client.ehlo();
    expect((await client.send('MAIL FROM:<a@app.example> SMTPUTF8')).code).toBe(250);
    const replies = [];
    for (const rcpt of ['jörg@bücher.example', 'JÖRG@BÜCHER.example', 'élodie@dest.example', 'kept@bücher.example']) replies.push((await sendUtf8(client, `RCPT TO:<${rcpt}>`)).code);
    expect(replies).toEqual([550, 550, 550, 250]);
    expect(await h.store.getSuppression(null, 'jörg@BÜCHER.example', h.clock.now())).toMatchObject({ address: 'Jörg@xn--bcher-kva.example' });
  });
});
