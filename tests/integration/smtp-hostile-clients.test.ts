import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import {
  afterTest,
  APP_PASSWORD,
  envelope,
  queueIdOf,
  rejections,
  runCleanups,
  sleep,
  startHarness,
  usersWithHash,
  waitFor,
  type Harness,
} from '../helpers/submission-harness.ts';

/**
 * The submission server against clients that try to get past its limits, each over real
 * sockets on loopback: parallel password guessing, forged authors, slow and early talkers,
 * slot exhaustion, hostile EHLO names and parameters, and memory exhaustion.
 */

afterEach(runCleanups);

const LISTENER = { host: '127.0.0.1', port: 0, tls: 'none' } as const;

describe('AUTH lockout under parallel attempts', () => {
  it('50 parallel wrong passwords from one address: at most authFailures.max are checked, and a right one in the burst is refused', async () => {
    const h = await startHarness({ listeners: [LISTENER], users: await usersWithHash(), maxConnectionsPerClient: 60 });
    const clients = await Promise.all(Array.from({ length: 51 }, () => h.connect(0, { localAddress: '127.0.0.9' })));
    await Promise.all(clients.map((c) => c.ehlo()));
    const guessers = clients.slice(0, 50);
    const plain = (pass: string) => `AUTH PLAIN ${Buffer.from(`\0app\0${pass}`).toString('base64')}\r\n`;
    guessers.forEach((c, i) => c.write(plain(`guess-${i}`)));
    const replies = guessers.map((c) => c.read());
    // The right password goes in once the server has answered one guess: still inside the burst.
    await Promise.race(replies);
    const right = await clients[50]!.authPlain('app', APP_PASSWORD);
    const codes = (await Promise.all(replies)).map((r) => r.code);

    expect(right.code).toBe(454);
    expect(codes.filter((c) => c === 535).length).toBeLessThanOrEqual(5);
    expect(codes.filter((c) => c === 535).length + codes.filter((c) => c === 454).length).toBe(50);
    expect(await rejections(h.metrics, 'AUTH_FAILED')).toBeLessThanOrEqual(5);

    // Another address is not affected, and a success there does not count as a failure.
    const other = await h.connect(0, { localAddress: '127.0.0.10' });
    await other.ehlo();
    expect((await other.authPlain('app', APP_PASSWORD)).code).toBe(235);
  });
});

describe('AUTH floods from many addresses', () => {
  it('60 parallel logins from 60 addresses: a few dozen are checked in turn, the rest refused for now (454 4.7.0) unchecked', async () => {
    const h = await startHarness({ listeners: [LISTENER], users: await usersWithHash() });
    const clients = await Promise.all(Array.from({ length: 60 }, (_, i) => h.connect(0, { localAddress: `127.0.2.${i + 1}` })));
    await Promise.all(clients.map((c) => c.ehlo()));
    clients.forEach((c, i) => c.write(`AUTH PLAIN ${Buffer.from(`\0app\0guess-${i}`).toString('base64')}\r\n`));
    const replies = await Promise.all(clients.map((c) => c.read()));
    const busy = replies.filter((r) => r.code === 454);
    expect(busy.length).toBeGreaterThanOrEqual(20);
    expect(busy[0]!.text).toBe('4.7.0 Too many logins in progress, try again later');
    expect(replies.filter((r) => r.code === 535).length).toBe(60 - busy.length);
    expect(await rejections(h.metrics, 'AUTH_BUSY')).toBe(busy.length);
    // Refused unchecked is no failure: a client refused that way logs in at its next try.
    const refused = clients[replies.indexOf(busy[0]!)]!;
    expect((await refused.authPlain('app', APP_PASSWORD)).code).toBe(235);
  });
});

describe('author headers of an authenticated user', () => {
  async function authenticated() {
    const h = await startHarness({ listeners: [LISTENER], users: await usersWithHash(), trustedNetworks: ['127.0.0.2/32'] });
    const app = await h.connect();
    await app.ehlo();
    expect((await app.authPlain('app', APP_PASSWORD)).code).toBe(235);
    /** A transaction whose message starts with `headers` (text as Latin-1, or raw bytes). */
    const send = async (client: SmtpTestClient, headers: string | Buffer) => {
      expect((await client.send('MAIL FROM:<news@app.example>')).code).toBe(250);
      expect((await client.send('RCPT TO:<a@dest.example>')).code).toBe(250);
      return client.data(Buffer.concat([typeof headers === 'string' ? Buffer.from(headers, 'latin1') : headers, Buffer.from('To: a@dest.example\r\nSubject: x\r\n\r\nbody\r\n')]));
    };
    return { h, app, send };
  }

  it.each([
    ['two From headers', 'From: news@app.example\r\nFrom: ceo@victim.example\r\n', '5.6.0 Message has more than one From header'],
    ['two Sender headers', 'From: news@app.example\r\nSender: news@app.example\r\nsender : ceo@victim.example\r\n', '5.6.0 Message has more than one Sender header'],
    ['a second address the lenient parser drops', 'From: <news@app.example> <ceo@victim.example>\r\n', '5.6.0 From header does not parse as a list of addresses'],
    ['an address written as a display name', 'From: ceo@victim.example <news@app.example>\r\n', '5.6.0 From header does not parse as a list of addresses'],
    ['a list with a foreign address', 'From: news@app.example, ceo@victim.example\r\n', '5.7.1 From or Sender header address not allowed for this user'],
  ])('refuses %s, and queues nothing', async (_name, headers, text) => {
    const { h, app, send } = await authenticated();
    const reply = await send(app, headers);
    expect(reply.code).toBe(text.startsWith('5.6.0') ? 554 : 553);
    expect(reply.text).toBe(text);
    expect((await h.store.countByState()).queued).toBe(0);
  });

  it('accepts one From with a display name or a comment, and a group of allowed addresses', async () => {
    const { h, app, send } = await authenticated();
    expect((await send(app, 'From: "The App (news)" <news@app.example>\r\n')).code).toBe(250);
    expect((await send(app, 'From: news@app.example (ceo@victim.example is not an address here)\r\n')).code).toBe(250);
    expect((await send(app, 'From: Team: a@app.example, billing@shop.example;\r\nSender: news@app.example\r\n')).code).toBe(250);
    expect((await h.store.countByState()).queued).toBe(3);
  });

  it('a trusted client is held to one From header too', async () => {
    const { h, send } = await authenticated();
    const trusted = await h.connect(0, { localAddress: '127.0.0.2' });
    await trusted.ehlo();
    expect((await send(trusted, 'From: a@anywhere.example\r\nFrom: b@anywhere.example\r\n')).code).toBe(554);
    expect((await send(trusted, 'From: <a@anywhere.example> <b@anywhere.example>\r\n')).code).toBe(250);
  });

  // To this check (Latin-1) one address at app.example; to the signer and to receivers (UTF-8)
  // two, the first at victim.example: it would be signed d=victim.example and pass DMARC there.
  it.each([
    ['U+2028', [0xe2, 0x80, 0xa8]],
    ['U+3000', [0xe3, 0x80, 0x80]],
    ['U+2003', [0xe2, 0x80, 0x83]],
    ['U+205F', [0xe2, 0x81, 0x9f]],
    ['U+FEFF', [0xef, 0xbb, 0xbf]],
    ['U+00A0', [0xc2, 0xa0]],
  ])('refuses a From where %s (UTF-8) separates a foreign address from an allowed one, from a user and from a trusted client', async (_name, bytes) => {
    const { h, app, send } = await authenticated();
    const trusted = await h.connect(0, { localAddress: '127.0.0.2' });
    await trusted.ehlo();
    const from = Buffer.concat([Buffer.from('From: ceo@victim.example'), Buffer.from(bytes), Buffer.from('news@app.example\r\n')]);
    for (const client of [app, trusted]) {
      expect(await send(client, from)).toMatchObject({ code: 554, text: '5.6.0 From header has non-ASCII characters other than letters outside quoted strings, comments and display names' });
    }
    expect((await h.store.countByState()).queued).toBe(0);
    // In a display name, quoted or not, the same text is fine: it names no mailbox.
    expect((await send(app, Buffer.concat([Buffer.from('From: "Zo'), Buffer.from(bytes), Buffer.from('" <news@app.example>\r\n')]))).code).toBe(250);
    expect((await send(app, Buffer.concat([Buffer.from('From: Zo'), Buffer.from(bytes), Buffer.from('e <news@app.example>\r\n')]))).code).toBe(250);
  });

  it('refuses an oversized From, or header block, with a permanent error before parsing it', async () => {
    const { h, app, send } = await authenticated();
    expect(await send(app, `From: ${'news@app.example,'.repeat(1_000)}\r\n`)).toMatchObject({ code: 554, text: '5.6.0 From header is longer than 4096 bytes' });
    // 200,000 addresses, and a 20 MB value that took seconds to parse: refused before any parsing.
    expect(await send(app, `From: ${'a@b.c,'.repeat(200_000)}\r\n`)).toMatchObject({ code: 552, text: '5.3.4 Message header block is larger than 262144 bytes' });
    expect((await send(app, `From: ${'"a'.repeat(10_000_000)}\r\n`)).code).toBe(552);
    // A header block of many small fields (or of continuation lines) is refused the same way.
    expect((await send(app, `From: news@app.example\r\n${'X-A: 1\r\n'.repeat(50_000)}`)).code).toBe(552);
    expect((await send(app, `From: news@app.example\r\n${' x\r\n'.repeat(100_000)}`)).code).toBe(552);
    expect((await h.store.countByState()).queued).toBe(0);
    expect(await rejections(h.metrics, 'HEADER_TOO_LARGE')).toBe(4);
    expect((await app.send('NOOP')).code).toBe(250);
  });
});

describe('slow clients', () => {
  it('a client trickling a command line a byte at a time is cut off at commandTimeout, long before idleTimeout', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'], commandTimeout: '600ms', idleTimeout: '60s' });
    const client = await h.connect();
    expect((await client.ehlo()).code).toBe(250);
    const trickle = setInterval(() => client.write('N'), 100);
    afterTest(async () => clearInterval(trickle));
    const reply = await client.read();
    expect(reply).toMatchObject({ code: 421, text: '4.4.2 Timeout waiting for the next command' });
    await client.closed;
    expect(await rejections(h.metrics, 'COMMAND_TIMEOUT')).toBe(1);
  });

  it('a message trickled below minDataRate ends the session with 421 4.4.2 and queues nothing; a fast one of any size passes', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'], commandTimeout: '500ms', minDataRate: 1000 });
    const slow = await h.connect();
    await envelope(slow, 'a@app.example', ['b@dest.example']);
    expect((await slow.send('DATA')).code).toBe(354);
    slow.write('Subject: slow\r\n\r\n');
    const trickle = setInterval(() => slow.write('x'), 100);
    afterTest(async () => clearInterval(trickle));
    expect(await slow.read()).toMatchObject({ code: 421, text: '4.4.2 Message data arriving too slowly' });
    await slow.closed;
    expect(await rejections(h.metrics, 'DATA_TOO_SLOW')).toBe(1);

    const fast = await h.connect();
    await envelope(fast, 'a@app.example', ['b@dest.example']);
    expect((await fast.data(`Subject: big\r\n\r\n${'0123456789012345678901234567890123456789\r\n'.repeat(50_000)}`)).code).toBe(250);
    expect((await h.store.countByState()).queued).toBe(1);
  });

  it('keeps the reserved share of slots for trusted and logged-in clients', async () => {
    const h = await startHarness({
      listeners: [LISTENER],
      users: await usersWithHash(),
      trustedNetworks: ['127.0.0.2/32'],
      maxConnections: 10,
      reservedConnectionShare: 0.5,
    });
    const strangers = await Promise.all(Array.from({ length: 5 }, (_, i) => h.connect(0, { localAddress: `127.0.1.${i + 1}` })));
    expect(strangers.map((c) => c.greeting.code)).toEqual([220, 220, 220, 220, 220]);
    const refused = await h.connect(0, { localAddress: '127.0.1.6' });
    expect(refused.greeting).toMatchObject({ code: 421, text: '4.7.0 Too many connections, try again later' });
    expect((await h.connect(0, { localAddress: '127.0.0.2' })).greeting.code).toBe(220);

    // Logging in moves a session into the reserved share, which frees an unreserved slot.
    await strangers[0]!.ehlo();
    expect((await strangers[0]!.authPlain('app', APP_PASSWORD)).code).toBe(235);
    expect((await h.connect(0, { localAddress: '127.0.1.7' })).greeting.code).toBe(220);
    expect((await h.connect(0, { localAddress: '127.0.1.8' })).greeting.code).toBe(421);
  });
});

describe('connections before their greeting', () => {
  /** A raw socket from `localAddress` that says nothing; closed after the test. */
  function silentSocket(h: Harness, localAddress: string): net.Socket {
    const socket = net.connect({ ...h.at(), localAddress });
    socket.on('error', () => undefined);
    afterTest(async () => void socket.destroy());
    return socket;
  }

  /** The first bytes the server sends on `socket`, or '' when it closes without a word. */
  function firstWords(socket: net.Socket): Promise<string> {
    return new Promise((resolve) => {
      socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
      socket.once('close', () => resolve(''));
    });
  }

  it('count from their accept: silent sockets during the greeting delay cannot take the reserved share or pass the per-client limit', async () => {
    const h = await startHarness({
      listeners: [{ ...LISTENER, greetingDelay: '1s' }],
      trustedNetworks: ['127.0.0.2/32'],
      maxConnections: 10,
      reservedConnectionShare: 0.5,
      maxConnectionsPerClient: 3,
    });
    const codes = async (replies: Array<Promise<string>>) => (await Promise.all(replies)).map((reply) => reply.slice(0, 3)).sort();
    // One stranger, far past its limit of 3: the rest are refused at once, not after the delay.
    const stranger = Array.from({ length: 12 }, () => firstWords(silentSocket(h, '127.0.0.9')));
    await waitFor(async () => (await rejections(h.metrics, 'TOO_MANY_CONNECTIONS')) === 9);
    // Strangers from other addresses fill the unreserved share (5) and no more.
    const others = Array.from({ length: 3 }, (_, i) => firstWords(silentSocket(h, `127.0.1.${i + 1}`)));
    await waitFor(async () => (await rejections(h.metrics, 'TOO_MANY_CONNECTIONS')) === 10);
    // The reserved share is still there for a trusted client; the admitted strangers are greeted too.
    expect(await firstWords(silentSocket(h, '127.0.0.2'))).toMatch(/^220 /);
    expect(await codes(stranger)).toEqual([...Array<string>(3).fill('220'), ...Array<string>(9).fill('421')]);
    expect(await codes(others)).toEqual(['220', '220', '421']);
    expect(await Promise.all(others)).toContain('421 4.7.0 Too many connections, try again later\r\n');
    expect(await Promise.all(stranger)).toContain('421 4.7.0 Too many connections from your address\r\n');
  });

  it('on an implicit TLS listener, sockets that never start their handshake cannot keep a trusted client out', async () => {
    const h = await startHarness({
      listeners: [{ ...LISTENER, tls: 'implicit' }],
      trustedNetworks: ['127.0.0.2/32'],
      maxConnections: 10,
      maxConnectionsPerClient: 2,
    });
    const silent = Array.from({ length: 10 }, () => firstWords(silentSocket(h, '127.0.0.9')));
    // Past its limit a stranger's socket is closed unanswered: nothing can be said before the handshake.
    expect(await Promise.all(silent.slice(2))).toEqual(Array.from({ length: 8 }, () => ''));
    const trusted = await SmtpTestClient.connect({ ...h.at(), localAddress: '127.0.0.2', tls: true });
    afterTest(() => trusted.close());
    expect(trusted.greeting.code).toBe(220);
  });
});

describe('greeting', () => {
  // A line, or part of one whose line end would only come after the greeting.
  it.each(['EHLO early.test\r\n', 'EHLO early.test'])('a client that sends %j before a listener\'s greetingDelay is over is refused with 421', async (early) => {
    const h = await startHarness({ listeners: [{ ...LISTENER, greetingDelay: '500ms' }] });
    const socket = net.connect(h.at());
    afterTest(async () => void socket.destroy());
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.once('connect', () => socket.write(early));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Buffer.concat(received).toString()).toBe('421 4.5.0 Protocol error: data sent before the greeting\r\n');
    expect(await rejections(h.metrics, 'EARLY_TALKER')).toBe(1);

    // One that waits is greeted.
    expect((await h.connect()).greeting.code).toBe(220);
  });

  it('a reverse lookup that hangs for one client does not hold another client\'s greeting', async () => {
    let release!: (names: string[]) => void;
    const hanging = new Promise<string[]>((resolve) => (release = resolve));
    let lookups = 0;
    const h = await startHarness({ listeners: [LISTENER] }, { reverseLookup: () => (++lookups === 1 ? hanging : Promise.resolve(['fast.client.test'])) });
    const first = SmtpTestClient.connect({ ...h.at(), host: '127.0.0.1' });
    await waitFor(async () => lookups === 1);
    const second = await h.connect();
    expect(second.greeting.code).toBe(220);
    expect(await Promise.race([first.then(() => 'greeted'), sleep(50).then(() => 'waiting')])).toBe('waiting');
    release(['slow.client.test']);
    const greeted = await first;
    afterTest(() => greeted.close());
    expect(greeted.greeting.code).toBe(220);
  });
});

describe('hostile EHLO names and parameters', () => {
  it('writes an EHLO name that is not a host name into Received in a safe form', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] });
    for (const [ehlo, encoded] of [
      ['"><script>alert(1)</script>', 'helo=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E'],
      ['caf\xe9.example', 'helo=caf%EF%BF%BD.example'],
    ] as const) {
      const client = await h.connect();
      expect((await client.send(`EHLO ${ehlo}`)).code).toBe(250);
      expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
      expect((await client.send('RCPT TO:<b@dest.example>')).code).toBe(250);
      const done = await client.data('Subject: x\r\n\r\ny\r\n');
      const stored = await h.store.loadMessage(queueIdOf(done.text));
      const received = headerValue(splitHeader(stored!.body).header, 'Received')!;
      expect(received).toMatch(/^from \[127\.0\.0\.1\] \(\S+ \[127\.0\.0\.1\] /);
      expect(received).toContain(encoded);
      expect(received).not.toMatch(/[<>"]|[^\x20-\x7e\t]/);
    }
  });

  it('refuses CR and other control characters in MAIL and RCPT with 501 5.5.4; the session goes on', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] });
    const client = await h.connect();
    await client.ehlo();
    for (const line of ['MAIL FROM:<a@app.example> ENVID=x\ry', 'MAIL FROM:<a@app.example>\x00', 'MAIL FROM:<a@app.example> BODY=8BITMIME\x1b']) {
      expect(await client.send(line)).toMatchObject({ code: 501, text: '5.5.4 Control characters are not allowed in MAIL and RCPT commands' });
    }
    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<b@dest.example> NOTIFY=NEVER\x7f')).code).toBe(501);
    expect((await client.send('RCPT TO:<b@dest.example>')).code).toBe(250);
    expect(await rejections(h.metrics, 'CONTROL_CHARACTER')).toBe(4);
  });
});

describe('buffered message bytes', () => {
  it('a message that would pass maxBufferedBytes is refused with 452 4.3.1, and new DATA too while 3/4 of it is held', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'], maxMessageBytes: 100_000, maxBufferedBytes: 100_000 });
    const line = `${'x'.repeat(98)}\r\n`;
    const [a, b, c] = await Promise.all([h.connect(), h.connect(), h.connect()]);
    for (const client of [a, b, c]) await envelope(client!, 'a@app.example', ['b@dest.example']);
    expect((await a!.send('DATA')).code).toBe(354);
    a!.write(line.repeat(600)); // 60,000 bytes held: below 3/4, new DATA may start
    await sleep(200);
    // 50,000 more would pass the limit: b's message is read to its end but not held, then refused.
    expect((await b!.send('DATA')).code).toBe(354);
    b!.write(line.repeat(500) + '.\r\n');
    expect(await b!.read()).toMatchObject({ code: 452, text: '4.3.1 Insufficient system storage, try again later' });
    a!.write(line.repeat(300)); // 90,000 bytes held: above 3/4
    await sleep(200);
    expect(await c!.send('DATA')).toMatchObject({ code: 452, text: '4.3.1 Insufficient system storage, try again later' });
    a!.write('.\r\n');
    expect((await a!.read()).code).toBe(250);
    // a's message is committed and released: DATA is accepted again.
    expect((await c!.data('Subject: x\r\n\r\ny\r\n')).code).toBe(250);
    expect(await rejections(h.metrics, 'BUFFERS_FULL')).toBe(2);
    // Alone, a message of the largest size accepted always fits (the config holds maxBufferedBytes to it).
    await envelope(b!, 'a@app.example', ['b@dest.example']);
    expect((await b!.data(`Subject: x\r\n\r\n${line.repeat(999)}`)).code).toBe(250);
  });
});
