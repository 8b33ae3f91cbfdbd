import { TenantDirectory } from '../../src/access/tenants.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createSubmissionServer } from '../../src/smtp/submission-server.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import {
  afterTest,
  ANY_PASSWORD,
  APP_PASSWORD,
  envelope,
  message,
  queueIdOf,
  rejections,
  runCleanups,
  sleep,
  startHarness,
  transport,
  usersWithHash,
  waitFor,
} from '../helpers/submission-harness.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { tlsFixture } from '../helpers/tls-fixture.ts';

afterEach(runCleanups);

describe('SMTP submission: relay policy', () => {
  it('accepts mail from an authenticated user over STARTTLS (nodemailer) and stores it with Received, Message-ID and Date', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'starttls' }], users: await usersWithHash() });
    const info = await transport(h, { secure: false, requireTLS: true, auth: { user: 'app', pass: APP_PASSWORD } }).sendMail({
      envelope: { from: 'news@app.example', to: ['a@dest.example', 'b@dest.example'] },
      raw: message('news@app.example', 'a@dest.example'),
    });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9a-f]{22}$/);
    const id = queueIdOf(info.response);

    const stored = await h.store.loadMessage(id);
    expect(stored).not.toBeNull();
    expect(stored!.sender).toBe('news@app.example');
    expect(stored!.submitter).toBe('app');
    expect(stored!.source).toBe('smtp');
    const { header } = splitHeader(stored!.body);
    expect(header.startsWith('Received: from ')).toBe(true);
    const received = headerValue(header, 'Received')!;
    expect(received).toMatch(/^from client\.test|^from \S+ \(\S+ \[127\.0\.0\.1\]\)/);
    expect(received).toContain('[127.0.0.1]');
    expect(received).toMatch(/by mta\.rookery\.test \(Rookery\) with ESMTPSA id \S+;/);
    expect(headerValue(header, 'Message-ID')).toBe(`<${id}@mta.rookery.test>`);
    expect(stored!.messageIdHeader).toBe(`<${id}@mta.rookery.test>`);
    expect(headerValue(header, 'Date')).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    expect(stored!.body.toString()).toContain('\r\n\r\nHello there.\r\n');
    const recipients = await h.store.listRecipients(id);
    expect(recipients.map((r) => r.recipient).sort()).toEqual(['a@dest.example', 'b@dest.example']);

    const accepted = h.logs.find((l) => l.event === 'smtp.message.accepted');
    expect(accepted).toMatchObject({ component: 'smtp', messageId: id, submitter: 'app', recipients: 2 });
  });

  it('keeps the client\'s own Message-ID and Date', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.1/32'] });
    const info = await transport(h, { secure: false, ignoreTLS: true }).sendMail({
      envelope: { from: 'x@app.example', to: ['a@dest.example'] },
      raw: message('x@app.example', 'a@dest.example', 'Message-ID: <own@app.example>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n'),
    });
    const stored = await h.store.loadMessage(queueIdOf(info.response));
    const { header } = splitHeader(stored!.body);
    expect(stored!.messageIdHeader).toBe('<own@app.example>');
    expect(header.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(header.match(/^Date:/gim)).toHaveLength(1);
    expect(headerValue(header, 'Date')).toBe('Mon, 2 Nov 2026 10:00:00 +0000');
  });

  it('accepts mail without AUTH from a trusted network, and refuses the same client when it is not trusted', async () => {
    const h = await startHarness({
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
      trustedNetworks: ['127.0.0.2/32', '10.0.0.0/8'],
    });
    const trusted = await h.connect(0, { localAddress: '127.0.0.2' });
    const replies = await envelope(trusted, 'anyone@anywhere.example', ['a@dest.example']);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250]);
    const done = await trusted.data(message('anyone@anywhere.example', 'a@dest.example'));
    expect(done.code).toBe(250);
    const stored = await h.store.loadMessage(queueIdOf(done.text));
    expect(stored!.submitter).toBeNull();
    expect(headerValue(splitHeader(stored!.body).header, 'Received')).toMatch(/with ESMTP id /);

    const untrusted = await h.connect(0, { localAddress: '127.0.0.1' });
    const [, mail, rcpt] = await envelope(untrusted, 'anyone@anywhere.example', ['a@dest.example']);
    expect(mail!.code).toBe(250);
    expect(rcpt!.code).toBe(554);
    expect(rcpt!.text).toBe('5.7.1 Relay access denied');
    const data = await untrusted.send('DATA');
    expect(data.code).toBe(503);
    expect(await rejections(h.metrics, 'RELAY_DENIED')).toBe(1);
    expect(h.logs.some((l) => l.event === 'smtp.relay.denied' && l.ip === '127.0.0.1')).toBe(true);
  });

  it('refuses every recipient of an unauthenticated, untrusted client (nodemailer sees the refusal)', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }] });
    await expect(
      transport(h, { secure: false, ignoreTLS: true }).sendMail({
        envelope: { from: 'x@app.example', to: ['a@dest.example'] },
        raw: message('x@app.example', 'a@dest.example'),
      }),
    ).rejects.toMatchObject({ responseCode: 554 });
    expect((await h.store.countByState()).queued).toBe(0);
  });

  it('refuses a sender the user may not use with 553 5.7.1 at MAIL FROM; the null sender needs "*"', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users: await usersWithHash() });
    const app = await h.connect();
    await app.ehlo();
    expect((await app.authPlain('app', APP_PASSWORD)).code).toBe(235);
    const wrong = await app.send('MAIL FROM:<ceo@shop.example>');
    expect(wrong.code).toBe(553);
    expect(wrong.text).toBe('5.7.1 Sender address not allowed for this user');
    expect((await app.send('MAIL FROM:<>')).code).toBe(553);
    expect((await app.send('MAIL FROM:<Billing@SHOP.example>')).code).toBe(553);
    expect((await app.send('MAIL FROM:<billing@SHOP.example>')).code).toBe(250);
    expect((await app.send('RSET')).code).toBe(250);
    expect((await app.send('MAIL FROM:<anything@APP.EXAMPLE>')).code).toBe(250);
    expect(await rejections(h.metrics, 'SENDER_NOT_ALLOWED')).toBe(3);

    const any = await h.connect();
    await any.ehlo();
    expect((await any.authPlain('any', ANY_PASSWORD)).code).toBe(235);
    expect((await any.send('MAIL FROM:<>')).code).toBe(250);
    expect((await any.send('RCPT TO:<bounce@dest.example>')).code).toBe(250);
    const done = await any.data(message('mailer-daemon@app.example', 'bounce@dest.example'));
    expect(done.code).toBe(250);
    expect((await h.store.loadMessage(queueIdOf(done.text)))!.sender).toBe('');
  });

  it('holds an authenticated user to allowedSenders in the From and Sender headers too', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users: await usersWithHash() });
    const app = await h.connect();
    await app.ehlo();
    expect((await app.authPlain('app', APP_PASSWORD)).code).toBe(235);
    const send = async (headers: string) => {
      expect((await app.send('MAIL FROM:<news@app.example>')).code).toBe(250);
      expect((await app.send('RCPT TO:<a@dest.example>')).code).toBe(250);
      return app.data(`${headers}To: a@dest.example\r\nSubject: x\r\n\r\nbody\r\n`);
    };
    const forged = await send('From: CEO <ceo@victim.example>\r\n');
    expect(forged.code).toBe(553);
    expect(forged.text).toMatch(/^5\.7\.1 /);
    expect((await send('From: news@app.example\r\nSender: x@victim.example\r\n')).code).toBe(553);
    expect((await send('From: "App" <news@app.example>\r\n')).code).toBe(250);
    expect((await h.store.countByState()).queued).toBe(1);
  });

  it('refuses AUTH inside a mail transaction, so MAIL FROM cannot escape allowedSenders', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users: await usersWithHash() });
    const client = await h.connect();
    await client.ehlo();
    expect((await client.send('MAIL FROM:<ceo@victim.example>')).code).toBe(250);
    const auth = await client.authPlain('app', APP_PASSWORD);
    expect(auth.code).toBe(503);
    // Still unauthenticated: the relay is refused.
    expect((await client.send('RCPT TO:<a@dest.example>')).code).toBe(554);
    expect((await h.store.countByState()).queued).toBe(0);
  });

  it('refuses a recipient without a domain', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] });
    const client = await h.connect();
    const [, , rcpt] = await envelope(client, 'a@app.example', ['postmaster']);
    expect(rcpt!.code).toBe(553);
    expect(rcpt!.text.startsWith('5.1.3 ')).toBe(true);
  });
});

describe('SMTP submission: TLS and AUTH', () => {
  it('starttls listener: AUTH is neither offered nor accepted before STARTTLS, and works after it', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'starttls' }], users: await usersWithHash() });
    const client = await h.connect();
    const before = await client.ehlo();
    expect(before.lines).toContain('STARTTLS');
    expect(before.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
    expect(before.lines).toContain(`SIZE ${26_214_400}`);
    expect(before.lines).toContain('ENHANCEDSTATUSCODES');
    const early = await client.authPlain('app', APP_PASSWORD);
    expect(early.code).toBe(530);
    expect(early.text).toBe('5.7.0 Must issue a STARTTLS command first');
    expect((await client.send('AUTH LOGIN')).code).toBe(530);

    expect((await client.startTls()).code).toBe(220);
    expect(client.secure).toBe(true);
    const after = await client.ehlo();
    expect(after.lines).toContain('AUTH PLAIN LOGIN');
    expect(after.lines).not.toContain('STARTTLS');
    const auth = await client.authPlain('app', APP_PASSWORD);
    expect(auth.code).toBe(235);
  });

  it('implicit TLS listener: TLS from the first byte, AUTH offered, nodemailer with secure: true delivers', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'implicit' }], users: await usersWithHash() });
    const raw = await h.connect(0, { tls: true });
    expect(raw.greeting.code).toBe(220);
    expect(raw.secure).toBe(true);
    const ehlo = await raw.ehlo();
    expect(ehlo.lines).toContain('AUTH PLAIN LOGIN');
    expect(ehlo.lines).not.toContain('STARTTLS');

    const info = await transport(h, { secure: true, auth: { user: 'any', pass: ANY_PASSWORD } }).sendMail({
      envelope: { from: 'x@anywhere.example', to: ['a@dest.example'] },
      raw: message('x@anywhere.example', 'a@dest.example'),
    });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
  });

  it('plaintext AUTH (PLAIN and LOGIN) on a loopback listener without TLS', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users: await usersWithHash() });
    const client = await h.connect();
    const ehlo = await client.ehlo();
    expect(ehlo.lines).toContain('AUTH PLAIN LOGIN');
    expect(ehlo.lines).not.toContain('STARTTLS');
    expect((await client.send('AUTH LOGIN')).code).toBe(334);
    expect((await client.send(Buffer.from('app').toString('base64'))).code).toBe(334);
    expect((await client.send(Buffer.from(APP_PASSWORD).toString('base64'))).code).toBe(235);

    const info = await transport(h, { secure: false, ignoreTLS: true, auth: { user: 'app', pass: APP_PASSWORD } }).sendMail({
      envelope: { from: 'x@app.example', to: ['a@dest.example'] },
      raw: message('x@app.example', 'a@dest.example'),
    });
    expect(info.response).toMatch(/^250 /);
  });

  it('a listener without TLS on a non-loopback address does not offer AUTH at all', async () => {
    const h = await startHarness({ listeners: [{ host: '0.0.0.0', port: 0, tls: 'none' }], users: await usersWithHash() });
    const client = await h.connect();
    const ehlo = await client.ehlo();
    expect(ehlo.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
    expect(ehlo.lines).not.toContain('STARTTLS');
    const auth = await client.authPlain('app', APP_PASSWORD);
    expect(auth.code).toBe(503);
    expect(auth.text).toBe('5.5.1 Error: authentication not enabled');
    expect((await client.send('STARTTLS')).code).toBe(500);
  });

  it('wrong password and unknown user both get 535 5.7.8; the log names the user but never a password', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users: await usersWithHash() });
    const client = await h.connect();
    await client.ehlo();
    const wrong = await client.authPlain('app', ANY_PASSWORD);
    expect(wrong.code).toBe(535);
    expect(wrong.text).toBe('5.7.8 Authentication credentials invalid');
    expect((await client.authPlain('ghost', APP_PASSWORD)).code).toBe(535);
    // A PLAIN request to act as another user (authzid) is refused even with the right password.
    const delegated = Buffer.from(`any\0app\0${APP_PASSWORD}`).toString('base64');
    expect((await client.send(`AUTH PLAIN ${delegated}`)).code).toBe(535);
    expect((await client.send('MAIL FROM:<x@app.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<a@dest.example>')).code).toBe(554);

    const failures = h.logs.filter((l) => l.event === 'smtp.auth.failed');
    expect(failures.map((l) => l.username)).toEqual(['app', 'ghost', 'app']);
    const everything = JSON.stringify(h.logs);
    expect(everything).not.toContain(APP_PASSWORD);
    expect(everything).not.toContain(ANY_PASSWORD);
    expect(everything).not.toContain(Buffer.from(APP_PASSWORD).toString('base64'));
  });

  it('locks AUTH for an address after max failures within the window, until the window passes', async () => {
    const h = await startHarness({
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
      users: await usersWithHash(),
      authFailures: { max: 3, window: '10m' },
    });
    const client = await h.connect(0, { localAddress: '127.0.0.3' });
    await client.ehlo();
    for (let i = 0; i < 3; i++) expect((await client.authPlain('app', `guess-${i}`)).code).toBe(535);
    const locked = await client.authPlain('app', APP_PASSWORD);
    expect(locked.code).toBe(454);
    expect(locked.text).toBe('4.7.0 Too many failed authentications, try again later');
    // AUTH LOGIN is refused before any credential is asked for.
    expect((await client.send('AUTH LOGIN')).code).toBe(454);

    const other = await h.connect(0, { localAddress: '127.0.0.4' });
    await other.ehlo();
    expect((await other.authPlain('app', APP_PASSWORD)).code).toBe(235);

    const again = await h.connect(0, { localAddress: '127.0.0.3' });
    await again.ehlo();
    expect((await again.authPlain('app', APP_PASSWORD)).code).toBe(454);
    h.clock.advance(10 * 60_000 + 1);
    expect((await again.authPlain('app', APP_PASSWORD)).code).toBe(235);
    expect(await rejections(h.metrics, 'AUTH_FAILED')).toBe(3);
    expect(await rejections(h.metrics, 'AUTH_LOCKED')).toBe(3);
  });
});

describe('SMTP submission: limits', () => {
  it('advertises SIZE and refuses MAIL FROM with a larger SIZE= (552 5.3.4)', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'], maxMessageBytes: 1000 });
    const client = await h.connect();
    expect((await client.ehlo()).lines).toContain('SIZE 1000');
    const big = await client.send('MAIL FROM:<a@app.example> SIZE=1001');
    expect(big.code).toBe(552);
    expect(big.text.startsWith('5.3.4 ')).toBe(true);
    expect((await client.send('MAIL FROM:<a@app.example> SIZE=1000')).code).toBe(250);
  });

  it('refuses a message that grows past the limit during transfer with 552 5.3.4, then accepts the next one', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'], maxMessageBytes: 1000 });
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    const tooBig = await client.data(`Subject: big\r\n\r\n${'0123456789012345678901234567890123456789\r\n'.repeat(100)}`);
    expect(tooBig.code).toBe(552);
    expect(tooBig.text).toBe('5.3.4 Message size exceeds fixed maximum message size');
    expect(await rejections(h.metrics, 'MESSAGE_TOO_LARGE')).toBe(1);

    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<b@dest.example>')).code).toBe(250);
    expect((await client.data('Subject: small\r\n\r\nfits\r\n')).code).toBe(250);
    expect((await h.store.countByState()).queued).toBe(1);
  });

  it('refuses the recipient past maxRecipients with 452 4.5.3 (a repeated address is not a new one)', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'], maxRecipients: 2 });
    const client = await h.connect();
    const replies = await envelope(client, 'a@app.example', ['one@dest.example', 'two@dest.example', 'three@dest.example', 'ONE@dest.example']);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250, 452, 250]);
    expect(replies[4]!.text).toBe('4.5.3 Too many recipients');
    const done = await client.data('Subject: x\r\n\r\ny\r\n');
    expect(done.code).toBe(250);
    expect(await h.store.listRecipients(queueIdOf(done.text))).toHaveLength(2);
  });

  it('answers a command line longer than maxCommandBytes with 500 5.5.2 and keeps the session; a flood ends it', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'], maxCommandBytes: 512 });
    const client = await h.connect();
    await client.ehlo();
    // 510 bytes + CRLF = 512: the limit itself is fine.
    expect((await client.send(`NOOP ${'x'.repeat(505)}`)).code).toBe(250);
    const long = await client.send(`NOOP ${'x'.repeat(506)}`);
    expect(long.code).toBe(500);
    expect(long.text).toBe('5.5.2 Error: line too long');
    expect((await client.send(`MAIL FROM:<${'a'.repeat(600)}@app.example>`)).code).toBe(500);
    expect((await client.send('NOOP')).code).toBe(250);
    expect(await rejections(h.metrics, 'COMMAND_TOO_LONG')).toBe(2);

    // A line that never ends is not buffered without bound.
    client.write('NOOP ' + 'y'.repeat(20_000));
    const cut = await client.read();
    expect(cut.code).toBe(421);
    await client.closed;
  });

  it('answers unknown and out-of-order commands correctly', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] });
    const client = await h.connect();
    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(503);
    expect((await client.send('FOO bar')).code).toBe(500);
    await client.ehlo();
    expect((await client.send('RCPT TO:<b@dest.example>')).code).toBe(503);
    expect((await client.send('DATA')).code).toBe(503);
    expect((await client.send('MAIL FROM:<not an address>')).code).toBe(501);
    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(503);
    expect((await client.send('RCPT TO:<>')).code).toBe(501);
    const quit = await client.send('QUIT');
    expect(quit.code).toBe(221);
    await client.closed;
  });

  it('refuses connections past maxConnectionsPerClient with 421 and closes them; other addresses still connect', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], maxConnectionsPerClient: 2 });
    const first = await h.connect(0, { localAddress: '127.0.0.5' });
    const second = await h.connect(0, { localAddress: '127.0.0.5' });
    const third = await h.connect(0, { localAddress: '127.0.0.5' });
    expect(first.greeting.code).toBe(220);
    expect(second.greeting.code).toBe(220);
    expect(third.greeting.code).toBe(421);
    expect(third.greeting.text).toBe('4.7.0 Too many connections from your address');
    await third.closed;

    const elsewhere = await h.connect(0, { localAddress: '127.0.0.6' });
    expect(elsewhere.greeting.code).toBe(220);

    await first.send('QUIT');
    await first.closed;
    await waitFor(async () => (await h.metrics.smtpSessionsActive.get()).values[0]?.value === 2);
    const again = await h.connect(0, { localAddress: '127.0.0.5' });
    expect(again.greeting.code).toBe(220);
    expect(await rejections(h.metrics, 'TOO_MANY_CONNECTIONS')).toBe(1);
  });

  it('refuses connections past maxConnections across listeners', async () => {
    const h = await startHarness({
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'none' },
        { host: '127.0.0.1', port: 0, tls: 'none' },
      ],
      maxConnections: 2,
      // Nothing reserved, so untrusted clients may fill every slot.
      reservedConnectionShare: 0,
    });
    const a = await h.connect(0);
    const b = await h.connect(1, { localAddress: '127.0.0.2' });
    const c = await h.connect(1, { localAddress: '127.0.0.3' });
    expect([a.greeting.code, b.greeting.code, c.greeting.code]).toEqual([220, 220, 421]);
    await c.closed;
  });

  it('ends a session at the session time limit with 421 4.4.2', async () => {
    const h = await startHarness({
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
      trustedNetworks: ['127.0.0.0/8'],
      sessionTimeout: '1s',
    });
    const client = await h.connect();
    await client.ehlo();
    // Keep talking: the limit is on the whole session, not on idleness.
    let reply = await client.send('NOOP');
    while (reply.code === 250) {
      await sleep(100);
      reply = await client.send('NOOP');
    }
    expect(reply.code).toBe(421);
    expect(reply.text).toBe('4.4.2 Session time limit exceeded');
    await client.closed;
    expect(await rejections(h.metrics, 'SESSION_TIME_EXCEEDED')).toBe(1);
  });

  it('closes an idle session after idleTimeout with 421', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], idleTimeout: '400ms' });
    const client = await h.connect();
    await client.ehlo();
    const reply = await client.read();
    expect(reply.code).toBe(421);
    await client.closed;
  });
});

describe('SMTP submission: smuggling guard', () => {
  const sequences = [
    ['\\n.\\n', '\n.\n'],
    ['\\n.\\r\\n', '\n.\r\n'],
    ['\\r\\n.\\n', '\r\n.\n'],
    ['\\r.\\r', '\r.\r'],
  ] as const;

  it.each(sequences)('refuses a message containing %s with 554 5.6.0; the session goes on and the next message is accepted', async (_name, sequence) => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] });
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    const smuggled =
      `Subject: innocent\r\n\r\nfirst line${sequence}` +
      'MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@dest.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nsend money\r\n';
    const refused = await client.data(smuggled);
    expect(refused.code).toBe(554);
    expect(refused.text).toBe('5.6.0 Message contains a bare CR or LF; only CRLF line endings are accepted');

    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<c@dest.example>')).code).toBe(250);
    const accepted = await client.data('Subject: clean\r\n\r\nall fine\r\n');
    expect(accepted.code).toBe(250);
    expect((await client.send('NOOP')).code).toBe(250);

    // Exactly one message was queued: the clean one, to its own recipient.
    expect(await h.store.countByState()).toMatchObject({ queued: 1 });
    const rows = await h.store.listRecipients(queueIdOf(accepted.text));
    expect(rows.map((r) => r.recipient)).toEqual(['c@dest.example']);
    expect(await rejections(h.metrics, 'BARE_LINE_ENDING')).toBe(1);
  });

  it('also catches a bare CR split from its neighbour across TCP segments', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] });
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    expect((await client.send('DATA')).code).toBe(354);
    client.write('Subject: x\r\n\r\nline\r');
    await sleep(50);
    client.write('.\rmore\r\n.\r\n');
    expect((await client.read()).code).toBe(554);
  });
});

describe('SMTP submission: storage failure', () => {
  it('answers 451 4.3.0 when the queue cannot commit, logs it, and keeps the session', async () => {
    // Under the drop action RCPT does not read the suppression list: the store fails at the commit.
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] }, { config: { suppression: { action: 'drop' } } });
    await h.store.close();
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    const reply = await client.data('Subject: x\r\n\r\ny\r\n');
    expect(reply.code).toBe(451);
    expect(reply.text).toBe('4.3.0 Temporary storage failure, try again later');
    expect(h.logs.find((l) => l.event === 'smtp.commit.failed')).toMatchObject({ level: 50, err: 'storage is closed' });
    expect(await rejections(h.metrics, 'STORAGE_FAILED')).toBe(1);
    expect((await client.send('QUIT')).code).toBe(221);
  });
});

describe('SMTP submission: lifecycle', () => {
  it('listens on every listener (port 0 gives real ports) and start/stop are safe to call twice', async () => {
    const h = await startHarness({
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'none' },
        { host: '127.0.0.2', port: 0, tls: 'starttls' },
        { host: '127.0.0.1', port: 0, tls: 'implicit' },
      ],
    });
    await h.server.start();
    const addresses = h.server.addresses();
    expect(addresses.map((a) => a.host)).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.1']);
    expect(addresses.every((a) => a.port > 0)).toBe(true);
    const client = await SmtpTestClient.connect({ host: '127.0.0.2', port: addresses[1]!.port });
    expect(client.greeting.text).toMatch(/^mta\.rookery\.test ESMTP/);
    await client.close();
    await Promise.all([h.server.stop(), h.server.stop()]);
    await h.server.stop();
    await expect(SmtpTestClient.connect({ host: '127.0.0.1', port: addresses[0]!.port })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('reports a port that cannot be bound, naming it', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }] });
    const dir = await createTempDir('rookery-smtp-clash');
    afterTest(() => dir.remove());
    const { config } = resolveConfig({ hostname: 'x.test', dataDir: dir.path, smtp: { listeners: [{ host: '127.0.0.1', port: h.at().port }] } }, { source: 'test', env: {} });
    const clash = createSubmissionServer({
      config,
      users: [],
      tenants: new TenantDirectory({}),
      queue: { submit: () => Promise.reject(new Error('unused')) },
      suppressions: { action: () => 'reject', isSuppressed: () => Promise.reject(new Error('unused')) },
      tls: await tlsFixture(),
      logger: createLogger('silent'),
      metrics: new Metrics({ processMetrics: false }),
      clock: { now: () => Date.now() },
    });
    await expect(clash.start()).rejects.toThrow(`SMTP: cannot listen on 127.0.0.1:${h.at().port}: listen EADDRINUSE`);
    await clash.stop();
  });

  it('stop(): the listener closes at once, a message in transfer finishes, the next command gets 421 4.3.2', async () => {
    const h = await startHarness(
      { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] },
      { shutdownGraceMs: 5_000 },
    );
    const port = h.at().port;
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    expect((await client.send('DATA')).code).toBe(354);
    client.write('Subject: in flight\r\n\r\nfirst half\r\n');

    const stopping = h.server.stop();
    await waitFor(async () => {
      try {
        await (await SmtpTestClient.connect({ host: '127.0.0.1', port })).close();
        return false;
      } catch {
        return true;
      }
    });
    client.write('second half\r\n.\r\n');
    const done = await client.read();
    expect(done.code).toBe(250);
    expect(await h.store.loadMessage(queueIdOf(done.text))).not.toBeNull();
    const next = await client.send('MAIL FROM:<a@app.example>');
    expect(next.code).toBe(421);
    expect(next.text).toBe('4.3.2 Service shutting down');
    await client.closed;
    await stopping;
    expect((await h.metrics.smtpSessionsActive.get()).values[0]?.value).toBe(0);
  });

  it('stop(): a connection accepted but not yet greeted gets 421 4.3.2', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none', greetingDelay: '300ms' }] });
    // The listener greets 300 ms after accepting; stop() lands inside that gap.
    const pending = SmtpTestClient.connect({ host: '127.0.0.1', port: h.at().port });
    await sleep(30);
    const stopping = h.server.stop();
    const client = await pending;
    afterTest(() => client.close());
    expect(client.greeting.code).toBe(421);
    expect(client.greeting.text).toBe('4.3.2 Service shutting down');
    await client.closed;
    await stopping;
    expect(await rejections(h.metrics, 'SHUTTING_DOWN')).toBe(1);
  });

  it('stop(): a session that does not finish within the grace period is dropped', async () => {
    const h = await startHarness(
      { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] },
      { shutdownGraceMs: 300 },
    );
    const client = await h.connect();
    await envelope(client, 'a@app.example', ['b@dest.example']);
    expect((await client.send('DATA')).code).toBe(354);
    client.write('Subject: never finished\r\n\r\n');
    await h.server.stop();
    await client.closed;
    expect((await h.store.countByState()).queued).toBe(0);
  });
});

describe('SMTP submission: sessions and metrics', () => {
  it('counts sessions and logs their open and close', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.0/8'] });
    const a = await h.connect();
    const b = await h.connect();
    expect((await h.metrics.smtpSessionsActive.get()).values[0]?.value).toBe(2);
    await a.send('QUIT');
    await b.send('QUIT');
    await Promise.all([a.closed, b.closed]);
    await waitFor(async () => (await h.metrics.smtpSessionsActive.get()).values[0]?.value === 0);
    expect((await h.metrics.smtpSessions.get()).values[0]?.value).toBe(2);
    expect(h.logs.filter((l) => l.event === 'smtp.session.open')).toHaveLength(2);
    expect(h.logs.filter((l) => l.event === 'smtp.session.close')).toHaveLength(2);
    expect(h.logs.find((l) => l.event === 'smtp.session.open')).toMatchObject({ component: 'smtp', ip: '127.0.0.1', trusted: true });
  });
});
