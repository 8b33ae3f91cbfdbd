import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * smtp.maxBufferedBytes bounds the memory of messages being received by both doors together:
 * an SMTP message arriving holds it against HTTP sends, which are refused (503 BUFFERS_FULL)
 * until it is committed, and then taken again.
 */

const token = generateApiToken();
let dir: TempDir | undefined;
let sink: SmtpSink | undefined;
let daemon: Daemon | undefined;
let client: SmtpTestClient | undefined;

afterEach(async () => {
  await client?.close();
  await daemon?.stop();
  await sink?.close();
  await dir?.remove();
  client = daemon = sink = dir = undefined;
});

describe('one memory budget for SMTP and HTTP', () => {
  it('refuses an HTTP send while an SMTP message holds the budget, and takes it once that is committed', { timeout: 60_000 }, async () => {
    dir = await createTempDir('rookery-shared-buffers');
    sink = await startSmtpSink();
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver: createFixtureResolver(),
      config: {
        smtp: {
          listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
          trustedNetworks: ['127.0.0.1/32'],
          maxMessageBytes: 400_000,
          maxBufferedBytes: 400_000,
        },
        api: { tokens: [{ name: 'app', role: 'sender', tenant: 'app', hash: hashApiToken(token), allowedSenders: ['*@sender.test'] }] },
        tenants: { app: { senderDomains: ['sender.test'] } },
      },
    });
    const api = daemon.apiAddress();
    const send = async (n: number) => {
      const res = await fetch(`http://${api.host}:${api.port}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from: 'app@sender.test', to: `u${n}@dest.test`, subject: 'hello', text: 'Hello. '.repeat(300) }),
      });
      return { status: res.status, body: (await res.json()) as { code?: string } };
    };
    expect((await send(0)).status).toBe(202);

    // An SMTP message of 398,000 bytes, its end not sent yet: less than 2 KB of the budget is left,
    // and a send of 2 KB holds up to four times its size while it is composed.
    const { host, port } = daemon.smtpAddresses()[0]!;
    client = await SmtpTestClient.connect({ host, port });
    await client.ehlo();
    expect((await client.send('MAIL FROM:<app@sender.test>')).code).toBe(250);
    expect((await client.send('RCPT TO:<big@dest.test>')).code).toBe(250);
    expect((await client.send('DATA')).code).toBe(354);
    client.write('Subject: big\r\n\r\n');
    const line = `${'x'.repeat(998)}\r\n`;
    for (let i = 0; i < 398; i++) client.write(line);
    // Let it arrive before any send: a send holding its share first would leave the message no room.
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    let refused: { status: number; body: { code?: string } } | undefined;
    let n = 1;
    await until(async () => (refused = await send(n++)).status === 503, 'an HTTP send refused for memory');
    expect(refused!.body.code).toBe('BUFFERS_FULL');

    // The message ends and is committed: its bytes go back, and HTTP sends are taken again.
    client.write('.\r\n');
    expect((await client.read()).code).toBe(250);
    expect((await send(n++)).status).toBe(202);
  });
});
