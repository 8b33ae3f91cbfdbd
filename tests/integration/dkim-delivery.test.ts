import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import { createDkimKeyFiles, verifyWithMailauth, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { inCi, pythonDkimAvailability, verifyWithPythonDkim } from '../helpers/python-dkim.ts';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const python = pythonDkimAvailability();
if (!python.available && inCi) throw new Error(`DKIM verification needs python3-dkim under CI: ${python.reason}`);

describe('DKIM-signed delivery, verified at the sink by mailauth and python3-dkim', () => {
  let keys: DkimKeyFiles;
  let records: Record<string, string>;
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    keys = await createDkimKeyFiles();
    records = { 'rsa1._domainkey.sender.test': keys.rsa.record, 'ed1._domainkey.sender.test': keys.ed25519.record };
  });
  afterAll(async () => keys.remove());
  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
  });

  /** A daemon signing for sender.test (and its subdomains) with both keys; every MX is the sink. */
  async function signingDaemon(sinkOptions: SmtpSinkOptions = {}, hostname?: string): Promise<{ daemon: Daemon; sink: SmtpSink }> {
    dir = await createTempDir();
    sink = await startSmtpSink(sinkOptions);
    const resolver = createFixtureResolver({
      'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] },
      'sender.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] },
      'mx.dest.test': { a: ['127.0.0.1'] },
      ...Object.fromEntries(Object.entries(records).map(([name, txt]) => [name, { txt }])),
    });
    const keyList = [{ selector: 'rsa1', privateKey: keys.rsa.path }, { selector: 'ed1', privateKey: keys.ed25519.path }];
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver,
      config: { ...(hostname ? { hostname } : {}), ips: [{ address: '127.0.0.2' }], dkim: { domains: { 'sender.test': { keys: keyList, subdomains: true } } } },
    });
    return { daemon, sink };
  }

  it('signs each message once with RSA and Ed25519, and every captured message verifies in both', async () => {
    const started = await signingDaemon();

    const html = await new MailComposer({
      from: 'App <app@sender.test>',
      to: 'user@dest.test',
      subject: 'Your invoice',
      messageId: '<html@app.test>',
      html: '<p>Hello <b>there</b></p>',
      text: 'Hello there',
      attachments: [{ filename: 'invoice.pdf', content: Buffer.alloc(20_000, 7) }, { filename: 'notes.txt', content: 'a\r\nb\r\n' }],
    })
      .compile()
      .build();
    const utf8 = Buffer.from(
      'From: =?UTF-8?Q?J=C3=B6ran?= <app@sender.test>\r\nTo: user@dest.test\r\nSubject: Grüße aus Köln\r\nMessage-ID: <utf8@app.test>\r\n' +
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄpfel, Öl und Übermut – 8-bit body.\r\n',
    );
    const longLines = testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<long@app.test>', bodyBytes: 100 });
    const longBody = Buffer.concat([longLines, Buffer.from(`${'x'.repeat(1500)}\r\n${'y '.repeat(900)}\r\n`)]);
    const client = submissionClient(started.daemon.smtpAddresses()[0]!);
    await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<plain@app.test>' }));
    await client.send('app@sender.test', ['user@dest.test'], html);
    await client.send('app@sender.test', ['user@dest.test'], utf8);
    await client.send('app@sender.test', ['user@dest.test'], longBody);
    client.close();
    // LF-only line endings, handed to the engine directly as the HTTP path does.
    await started.daemon.submit({
      sender: 'app@sender.test',
      recipients: ['user@dest.test'],
      body: Buffer.from('From: app@sender.test\nTo: user@dest.test\nSubject: lf only\nMessage-ID: <lf@app.test>\n\nline one\nline two\n'),
      submitter: null,
      source: 'http',
      clientAddress: null,
    });

    await started.sink.waitForMessages(5, 20_000);
    expect(new Set(started.sink.messages.map((m) => m.messageId))).toEqual(new Set(['<plain@app.test>', '<html@app.test>', '<utf8@app.test>', '<long@app.test>', '<lf@app.test>']));
    for (const message of started.sink.messages) {
      const byMailauth = await verifyWithMailauth(message.raw, records);
      expect(byMailauth.map((v) => `${v.selector}:${v.result}`).sort(), message.messageId!).toEqual(['ed1:pass', 'rsa1:pass']);
      if (!python.available) continue;
      const byPython = await verifyWithPythonDkim(message.raw, records);
      expect(byPython.map((v) => `${v.selector}:${v.valid}`).sort(), `${message.messageId} ${JSON.stringify(byPython.map((v) => v.log))}`).toEqual(['ed1:true', 'rsa1:true']);
    }
    // The LF-only message went out with CRLF line endings throughout.
    const lf = started.sink.messages.find((m) => m.messageId === '<lf@app.test>')!.raw;
    expect(lf.includes(Buffer.from('line one\r\nline two\r\n'))).toBe(true);
    expect(/(^|[^\r])\n/.test(lf.toString('latin1'))).toBe(false);
    const { host, port } = started.daemon.apiAddress();
    expect(await (await fetch(`http://${host}:${port}/metrics`)).text()).toContain('rookery_dkim_signed_total{domain="sender.test"} 5');
  });

  it('signs the DSN of a bounce like any other message', async () => {
    // Bounces come from MAILER-DAEMON@mta.sender.test: signed for the parent domain.
    const started = await signingDaemon({ script: { onRcptTo: (address) => (address === 'nobody@dest.test' ? { code: 550, message: '5.1.1 no such user' } : undefined) } }, 'mta.sender.test');
    const client = submissionClient(started.daemon.smtpAddresses()[0]!);
    await client.send('app@sender.test', ['nobody@dest.test'], testMessage({ from: 'app@sender.test', to: 'nobody@dest.test', messageId: '<bounced@app.test>' }));
    client.close();

    const [dsn] = await started.sink.waitForMessages(1, 20_000);
    expect(dsn).toMatchObject({ from: '', to: ['app@sender.test'] });
    expect(dsn!.raw.toString()).toMatch(/^DKIM-Signature: /);
    const byMailauth = await verifyWithMailauth(dsn!.raw, records);
    expect(byMailauth.map((v) => `${v.selector}:${v.result}`).sort()).toEqual(['ed1:pass', 'rsa1:pass']);
  });
});
