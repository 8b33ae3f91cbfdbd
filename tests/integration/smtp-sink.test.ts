import net from 'node:net';
import SMTPConnection, { type SMTPConnectionOptions, type SMTPError } from 'nodemailer/lib/smtp-connection';
import { afterEach, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../helpers/smtp-sink.ts';

/** A plain nodemailer client session against the sink. */
async function client(sink: SmtpSink, options: SMTPConnectionOptions = {}) {
  const connection = new SMTPConnection({ host: sink.host, port: sink.port, logger: false, name: 'client.test', tls: { rejectUnauthorized: false }, ...options });
  connection.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    connection.once('error', reject);
    connection.connect(() => resolve());
  });
  return {
    connection,
    send(from: string, to: string[], body: Buffer | string) {
      return new Promise<{ error: SMTPError | null; response?: string; rejected?: string[] }>((resolve) =>
        connection.send({ from, to }, body, (error, info) => resolve({ error, response: info?.response, rejected: info?.rejected })),
      );
    },
    quit() {
      return new Promise<void>((resolve) => {
        connection.once('end', () => resolve());
        connection.quit();
      });
    },
  };
}

describe('smtp sink', () => {
  let sink: SmtpSink | undefined;
  const start = async (options?: SmtpSinkOptions) => (sink = await startSmtpSink(options));
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  it('records envelope, raw bytes, Message-ID, source address and HELO', async () => {
    const s = await start();
    const c = await client(s, { localAddress: '127.0.0.3', name: 'mta3.rookery.test' });
    // Includes a line starting with a dot (stuffed on the wire) and 8-bit bytes.
    const body = Buffer.concat([
      Buffer.from('From: a@src.test\r\nMessage-ID: <one@src.test>\r\nSubject: t\r\n\r\n.leading dot\r\n'),
      Buffer.from('caf\u00e9\r\n', 'utf8'),
    ]);
    const sent = await c.send('a@src.test', ['x@dst.test', 'y@dst.test'], body);
    expect(sent.error).toBeNull();
    expect(sent.response).toBe('250 Ok: queued');
    const [message] = await s.waitForMessages(1);
    expect(message).toMatchObject({
      from: 'a@src.test',
      to: ['x@dst.test', 'y@dst.test'],
      messageId: '<one@src.test>',
      remoteAddress: '127.0.0.3',
      helo: 'mta3.rookery.test',
      secure: false,
    });
    expect(message!.raw.equals(body)).toBe(true);
    await s.waitForRecipients(2);
    await c.quit();
  });

  it('records the null sender as an empty string', async () => {
    const s = await start();
    const c = await client(s);
    await c.send('', ['x@dst.test'], 'Subject: bounce\r\n\r\nx\r\n');
    const [message] = await s.waitForMessages(1);
    expect(message!.from).toBe('');
    expect(message!.messageId).toBeNull();
    await c.quit();
  });

  it('counts transactions per connection', async () => {
    const s = await start();
    const first = await client(s);
    for (let i = 0; i < 3; i++) await first.send('a@src.test', ['x@dst.test'], `Message-ID: <m${i}@src.test>\r\n\r\nx\r\n`);
    const second = await client(s);
    await second.send('a@src.test', ['x@dst.test'], 'Subject: s\r\n\r\nx\r\n');
    await s.waitForMessages(4);
    expect(s.connections.map((c) => c.transactions)).toEqual([3, 1]);
    expect(new Set(s.messages.slice(0, 3).map((m) => m.connectionId)).size).toBe(1);
    await first.quit();
    await second.quit();
  });

  it('answers with scripted replies at RCPT and DATA, and does not record refused messages', async () => {
    const s = await start({
      script: {
        onRcptTo: (address) => (address.startsWith('no') ? { code: 550, message: '5.1.1 no such user' } : address.startsWith('later') ? { code: 451, message: '4.7.1 try later' } : undefined),
        onData: (message) => (message.raw.includes('virus') ? { code: 554, message: '5.6.0 content rejected' } : { code: 250, message: 'custom ok' }),
      },
    });
    const c = await client(s);
    const mixed = await c.send('a@src.test', ['yes@dst.test', 'no@dst.test', 'later@dst.test'], 'Subject: a\r\n\r\nclean\r\n');
    expect(mixed.error).toBeNull();
    expect(mixed.response).toBe('250 custom ok');
    expect(mixed.rejected).toEqual(['no@dst.test', 'later@dst.test']);
    const refused = await c.send('a@src.test', ['yes@dst.test'], 'Subject: b\r\n\r\nvirus\r\n');
    expect(refused.error?.response).toBe('554 5.6.0 content rejected');
    expect(s.messages.map((m) => m.to)).toEqual([['yes@dst.test']]);
    expect(s.connections[0]!.transactions).toBe(2);
    await c.quit();
  });

  it('refuses MAIL FROM when scripted, with the session available to the script', async () => {
    const seen: string[] = [];
    const s = await start({
      script: {
        onMailFrom: (address, session) => {
          seen.push(`${session.remoteAddress} ${session.helo}`);
          return address === 'blocked@src.test' ? { code: 553, message: '5.7.1 sender refused' } : undefined;
        },
      },
    });
    const c = await client(s, { localAddress: '127.0.0.4', name: 'mta4.rookery.test' });
    const refused = await c.send('blocked@src.test', ['x@dst.test'], 'Subject: a\r\n\r\nx\r\n');
    expect(refused.error?.response).toBe('553 5.7.1 sender refused');
    expect(seen).toEqual(['127.0.0.4 mta4.rookery.test']);
    await c.quit();
  });

  it('refuses a connection in place of the greeting', async () => {
    const s = await start({ script: { onConnect: () => ({ code: 421, message: '4.3.2 busy, come back later' }) } });
    const connection = new SMTPConnection({ host: s.host, port: s.port, logger: false });
    const error = await new Promise<SMTPError>((resolve) => {
      connection.once('error', resolve);
      connection.connect(() => resolve(new Error('connected') as SMTPError));
    });
    expect(error.response).toBe('421 4.3.2 busy, come back later');
    expect(s.connections).toHaveLength(1);
  });

  it('offers STARTTLS when asked and marks messages that came over TLS', async () => {
    const s = await start({ tls: true });
    const c = await client(s);
    expect(c.connection.secure).toBe(true);
    await c.send('a@src.test', ['x@dst.test'], 'Subject: tls\r\n\r\nx\r\n');
    const [message] = await s.waitForMessages(1);
    expect(message!.secure).toBe(true);
    await c.quit();
  });

  it('does not offer STARTTLS by default', async () => {
    const s = await start();
    const c = await client(s);
    expect(c.connection.secure).toBe(false);
    await c.quit();
  });

  it('listens on the requested address', async () => {
    const s = await start({ host: '127.0.0.7' });
    expect(s.host).toBe('127.0.0.7');
    const c = await client(s);
    await c.send('a@src.test', ['x@dst.test'], 'Subject: a\r\n\r\nx\r\n');
    await s.waitForMessages(1);
    await c.quit();
  });

  it('rejects waits that time out, naming what it waited for', async () => {
    const s = await start();
    await expect(s.waitForMessages(1, 50)).rejects.toThrow(/1 messages \(have 0\)/);
    await expect(s.waitForRecipients(3, 50)).rejects.toThrow(/3 recipients \(have 0\)/);
  });

  it('frees its port on close', async () => {
    const s = await start();
    await s.close();
    sink = undefined;
    const refused = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: s.host, port: s.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});
