import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join, relative } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection as ServerConnection } from 'smtp-server/lib/smtp-connection';
import ts from 'typescript';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as mailauth from '../../src/vendor/mailauth.ts';
import {
  addressparser,
  askSmtpUtf8OnNextMail,
  connectionFlags,
  MailComposer,
  MimeNode,
  refusedRecipientErrors,
  serverExtensions,
  SMTPConnection,
  socketOf,
} from '../../src/vendor/nodemailer.ts';
import { GatedSmtpServer, type GateReply, type GuardTiming, type SessionGuard } from '../../src/vendor/smtp-server.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { tlsFixture } from '../helpers/tls-fixture.ts';

/**
 * src/vendor/ is the one place that touches a library's private members or internal files. This
 * file checks that each member and internal export used there still exists with the shape the
 * vendor code expects (on real instances, over loopback where a member only exists on a live
 * connection), so a library upgrade that renames or removes one fails here; and that nothing
 * outside src/vendor/ reaches past a library's public surface.
 */

const SRC = join(import.meta.dirname, '../../src');

describe('library internals stay in src/vendor', () => {
  it('no file outside src/vendor touches a _member or imports a library-internal path', () => {
    const outside = sourceFiles(SRC).filter((file) => !file.startsWith(join(SRC, 'vendor')));
    expect(outside.length).toBeGreaterThan(50);
    expect(outside.flatMap(internalAccesses)).toEqual([]);
  });

  it('the scan finds what src/vendor does (so the check above can fail)', () => {
    const found = sourceFiles(join(SRC, 'vendor')).flatMap(internalAccesses).join('\n');
    for (const access of ['._onCommand', '._setListeners', '._socket', '._envelope', 'smtp-server/lib/smtp-connection', 'nodemailer/lib/addressparser', 'nodemailer/lib/mail-composer', 'mailauth/lib/tools.js', 'createRequire']) {
      expect(found).toContain(access);
    }
  });
});

const TIMING: GuardTiming = { greetingDelayMs: 0, commandTimeoutMs: 60_000 };

function guard(parts: Partial<SessionGuard>): SessionGuard {
  return {
    admit: () => ({ started: () => undefined, release: () => undefined }),
    command: () => null,
    earlyTalker: () => ({ code: 421, text: '4.5.0 Spoke too soon' }),
    commandTimeout: () => ({ code: 421, text: '4.4.2 Too slow' }),
    ...parts,
  };
}

describe('smtp-server internals', () => {
  let server: GatedSmtpServer | undefined;
  let client: SmtpTestClient | undefined;
  afterEach(async () => {
    await client?.close();
    if (server?.server.listening) await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = client = undefined;
  });

  it('the internal connection class has the methods GatedConnection overrides and calls', () => {
    const proto = ServerConnection.prototype;
    expect(typeof ServerConnection).toBe('function');
    expect(proto._onCommand).toBeTypeOf('function');
    expect(proto._onCommand.length).toBe(2);
    expect(proto._onClose).toBeTypeOf('function');
    expect(proto._whenWritable).toBeTypeOf('function');
    expect(proto._whenWritable.length).toBe(1);
    expect(proto.send.length).toBe(3);
    expect(proto.init).toBeTypeOf('function');
    expect(proto._setListeners).toBeTypeOf('function');
    expect(proto._setListeners.length).toBe(1);
    expect(proto.connectionReady).toBeTypeOf('function');
    expect(SMTPServer.prototype._onError).toBeTypeOf('function');
    expect(SMTPServer.prototype._onClientConnect).toBeTypeOf('function');
    expect(SMTPServer.prototype._acceptSocket.length).toBe(2);
    expect(SMTPServer.prototype._upgrade.length).toBe(2);
    expect(new SMTPServer({ logger: false })._pendingSockets).toBeInstanceOf(Map);
  });

  it('every connection is admitted as it is accepted (before the TLS handshake), started with its session id, released when it closes', async () => {
    const events: string[] = [];
    const admit = (ip: string) => {
      events.push(`admit ${ip}`);
      return { started: (id: string) => events.push(`started ${id}`), release: () => events.push('release') };
    };
    const tls = await tlsFixture();
    server = new GatedSmtpServer({ logger: false, secure: true, ...tls }, guard({ admit }), TIMING);
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as net.AddressInfo).port;
    // A socket that never starts its handshake is admitted all the same.
    const silent = net.connect({ host: '127.0.0.1', port });
    await vi.waitFor(() => expect(events).toEqual(['admit 127.0.0.1']));
    silent.destroy();
    await vi.waitFor(() => expect(events).toEqual(['admit 127.0.0.1', 'release']));

    client = await SmtpTestClient.connect({ host: '127.0.0.1', port, tls: true });
    const [connection] = [...server.live];
    expect(events.slice(2)).toEqual(['admit 127.0.0.1', `started ${connection!.id}`]);
    await client.close();
    await vi.waitFor(() => expect(events.at(-1)).toBe('release'));
  });

  it('a refused connection gets the refusal and is closed; on an implicit TLS listener it is closed unanswered', async () => {
    const refusal = { code: 421, text: '4.7.0 Go away' };
    server = new GatedSmtpServer({ logger: false, disabledCommands: ['STARTTLS'] }, guard({ admit: () => refusal }), TIMING);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    client = await SmtpTestClient.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    expect(client.greeting).toMatchObject(refusal);
    await client.closed;
    await new Promise<void>((resolve) => server!.close(() => resolve()));

    server = new GatedSmtpServer({ logger: false, secure: true, ...(await tlsFixture()) }, guard({ admit: () => refusal }), TIMING);
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const socket = net.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('a connection not greeted within the greeting delay, the command time limit and the reverse lookup\'s limit is closed, handshake or not', async () => {
    server = new GatedSmtpServer({ logger: false, secure: true, ...(await tlsFixture()) }, guard({}), { greetingDelayMs: 0, commandTimeoutMs: 200 });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    server.on('error', () => undefined);
    const socket = net.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    socket.on('error', () => undefined);
    // A TLS record header announcing 512 bytes, then one of them every 100 ms: the handshake never
    // fails and never completes, and the library's idle timer never fires.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    const trickle = setInterval(() => socket.write(Buffer.from([0])), 100);
    await new Promise((resolve) => socket.once('close', resolve));
    clearInterval(trickle);
    expect(socket.destroyed).toBe(true);
  });

  it('SMTPServer.connect is still what GatedSmtpServer.connect copies', () => {
    const source = SMTPServer.prototype.connect.toString();
    const body = source.slice(source.indexOf('{') + 1, source.lastIndexOf('}'));
    expect(body.split('\n').map((line) => line.trim()).filter(Boolean)).toEqual([
      'let connection = new SMTPConnection(this, socket, socketOptions);',
      'this.connections.add(connection);',
      "connection.on('error', err => this._onError(err));",
      "connection.on('connect', data => this._onClientConnect(data));",
      'connection.init();',
    ]);
  });

  it('SMTPConnection.init is still what GatedConnection.init copies (but for the fixed 100 ms delay and the maxClients check)', () => {
    const source = ServerConnection.prototype.init.toString();
    const body = source.slice(source.indexOf('{') + 1, source.lastIndexOf('}'));
    const code = body.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('//'));
    expect(code).toEqual([
      'this._setListeners(() => {',
      'if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {',
      "return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);",
      '}',
      'let readyTimer = setTimeout(() => this.connectionReady(), 100);',
      'readyTimer.unref();',
      '});',
    ]);
  });

  it('a live connection has the members the gate reads, and the hooks work on it', async () => {
    const seen: Array<{ line: string; inAuthExchange: boolean }> = [];
    const gate = (line: Buffer, _session: unknown, inAuthExchange: boolean): GateReply | null => {
      seen.push({ line: line.toString(), inAuthExchange });
      return line.toString() === 'NOOP' ? { code: 550, text: '5.7.1 Refused by the gate' } : null;
    };
    server = new GatedSmtpServer(
      { logger: false, allowInsecureAuth: true, authOptional: true, disabledCommands: ['STARTTLS'], onAuth: (_a, _s, cb) => cb(new Error('no')) },
      guard({ command: gate }),
      TIMING,
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    client = await SmtpTestClient.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    expect((await client.ehlo()).code).toBe(250);

    const [connection] = [...server.live];
    expect(connection).toBeInstanceOf(ServerConnection);
    expect(connection!._socket).toBeInstanceOf(net.Socket);
    expect(connection).toMatchObject({ _upgrading: false, _ready: true, _closing: false, _closed: false, _nextHandler: false, _server: server });

    // A gate reply replaces the command; its own enhanced code is not doubled.
    expect(await client.send('NOOP')).toMatchObject({ code: 550, text: '5.7.1 Refused by the gate' });
    // Inside an AUTH exchange _nextHandler holds the continuation.
    expect((await client.send('AUTH LOGIN')).code).toBe(334);
    expect(connection!._nextHandler).toBeTypeOf('function');
    await client.send('dXNlcg==');
    expect(seen.map((s) => s.inAuthExchange)).toEqual([false, false, false, true]);

    server.endSession(connection!.id, '4.4.2 Time is up');
    expect(await client.read()).toMatchObject({ code: 421, text: '4.4.2 Time is up' });
    await client.closed;
    await vi.waitFor(() => expect(server!.live.size).toBe(0));
  });

  it.each(['EHLO early.test\r\n', 'EHLO early.test'])('the greeting waits for the delay; a client that sends %j before it gets the early-talker reply', async (early) => {
    server = new GatedSmtpServer({ logger: false, disabledCommands: ['STARTTLS'] }, guard({}), { ...TIMING, greetingDelayMs: 300 });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const socket = net.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.once('connect', () => socket.write(early));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Buffer.concat(received).toString()).toBe('421 4.5.0 Spoke too soon\r\n');
  });

  it('a client that does not send its next command line within the time limit gets the guard\'s reply', async () => {
    server = new GatedSmtpServer({ logger: false, disabledCommands: ['STARTTLS'] }, guard({}), { ...TIMING, commandTimeoutMs: 200 });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    client = await SmtpTestClient.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    client.write('EHLO slow');
    expect(await client.read()).toMatchObject({ code: 421, text: '4.4.2 Too slow' });
    await client.closed;
  });

  it('dropSessions destroys the socket of an open session', async () => {
    server = new GatedSmtpServer({ logger: false, disabledCommands: ['STARTTLS'] }, guard({}), TIMING);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    client = await SmtpTestClient.connect({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port });
    server.dropSessions();
    await client.closed;
    expect(client.isOpen).toBe(false);
  });
});

describe('nodemailer internals', () => {
  let sink: SmtpSink | undefined;
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  it("the connection's socket and the recipients refused before a failure at DATA", async () => {
    sink = await startSmtpSink({
      script: {
        onRcptTo: (address) => (address.startsWith('bad@') ? { code: 550, message: '5.1.1 No such user' } : undefined),
        onData: () => ({ code: 554, message: '5.6.0 Refused' }),
      },
    });
    const connection = new SMTPConnection({ host: sink.host, port: sink.port, logger: false, name: 'client.test' });
    connection.on('error', () => undefined);
    expect(socketOf(connection)).toBeNull();
    expect(connectionFlags(connection)).toEqual({ destroyed: false, secure: false, upgrading: false });
    await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
    expect(socketOf(connection)).toBeInstanceOf(net.Socket);
    expect(connectionFlags(connection)).toEqual({ destroyed: false, secure: false, upgrading: false });
    for (const member of ['destroyed', 'secure'] as const) expect(Object.hasOwn(connection, member), member).toBe(true);

    const error = await new Promise<Error | null>((resolve) =>
      connection.send({ from: 'a@rookery.test', to: ['good@rookery.test', 'bad@rookery.test'] }, 'Subject: x\r\n\r\nx\r\n', (err) => resolve(err)),
    );
    expect(error).toMatchObject({ responseCode: 554 });
    const refused = refusedRecipientErrors(connection);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ responseCode: 550, recipient: 'bad@rookery.test' });

    const closed = new Promise<void>((resolve) => connection.once('end', resolve));
    connection.quit();
    await closed;
    expect(connectionFlags(connection).destroyed).toBe(true);
  });

  it('the extensions the server announced, and SMTPUTF8 asked for on the next MAIL FROM only', async () => {
    const offering = await startSmtpSink();
    const plain = await startSmtpSink({ smtpUtf8: false });
    const send = (connection: SMTPConnection, from: string) =>
      new Promise<Error | null>((resolve) => connection.send({ from, to: ['a@rookery.test'] }, 'Subject: x\r\n\r\nx\r\n', (err) => resolve(err)));
    try {
      for (const [s, offers] of [[offering, true], [plain, false]] as const) {
        const connection = new SMTPConnection({ host: s.host, port: s.port, logger: false, name: 'client.test' });
        connection.on('error', () => undefined);
        expect(serverExtensions(connection)).toEqual([]);
        await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
        expect(serverExtensions(connection)).toContain('PIPELINING');
        expect(serverExtensions(connection).includes('SMTPUTF8')).toBe(offers);
        if (!offers) {
          connection.quit();
          continue;
        }
        askSmtpUtf8OnNextMail(connection);
        expect(await send(connection, 'b@rookery.test')).toBeNull();
        expect(await send(connection, 'c@rookery.test')).toBeNull();
        // Undone before MAIL FROM (a transaction that ended first), the request is taken back.
        const undo = askSmtpUtf8OnNextMail(connection);
        undo();
        expect(await send(connection, 'd@rookery.test')).toBeNull();
        // nodemailer asks by itself for a UTF-8 address, and the request adds no second parameter.
        askSmtpUtf8OnNextMail(connection);
        expect(await send(connection, 'jörg@rookery.test')).toBeNull();
        expect(s.messages.map((m) => [m.smtpUtf8, m.commands[0]])).toEqual([
          [true, 'MAIL FROM:<b@rookery.test> SMTPUTF8'],
          [false, 'MAIL FROM:<c@rookery.test>'],
          [false, 'MAIL FROM:<d@rookery.test>'],
          [true, 'MAIL FROM:<jörg@rookery.test> SMTPUTF8'],
        ]);
        connection.quit();
      }
    } finally {
      await Promise.all([offering.close(), plain.close()]);
    }
  });

  it('the connection flags through a STARTTLS upgrade', async () => {
    sink = await startSmtpSink({ tls: true });
    const connection = new SMTPConnection({ host: sink.host, port: sink.port, logger: false, name: 'client.test', tls: { rejectUnauthorized: false } });
    connection.on('error', () => undefined);
    // The flag is set when the upgrade starts and cleared when the handshake is done.
    const internals = connection as unknown as { _upgradeConnection: (callback: unknown) => unknown };
    const upgrade = internals._upgradeConnection.bind(connection);
    let duringUpgrade: ReturnType<typeof connectionFlags> | null = null;
    internals._upgradeConnection = (callback) => {
      const result = upgrade(callback);
      duringUpgrade = connectionFlags(connection);
      return result;
    };
    await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
    expect(duringUpgrade).toEqual({ destroyed: false, secure: false, upgrading: true });
    expect(connectionFlags(connection)).toEqual({ destroyed: false, secure: true, upgrading: false });
    const closed = new Promise<void>((resolve) => connection.once('end', resolve));
    connection.quit();
    await closed;
  });

  it('addressparser: mailboxes and groups', () => {
    expect(addressparser('Ann <ann@a.test>, Team: bob@b.test, cy@c.test;')).toEqual([
      { name: 'Ann', address: 'ann@a.test' },
      { name: 'Team', group: [{ name: '', address: 'bob@b.test' }, { name: '', address: 'cy@c.test' }] },
    ]);
    expect(addressparser('Ann <ann@a.test>, Team: bob@b.test;', { flatten: true }).map((a) => a.address)).toEqual(['ann@a.test', 'bob@b.test']);
  });

  it('MimeNode builds a multipart message with the headers and parts set', async () => {
    const root = new MimeNode('multipart/report; report-type=delivery-status', { newline: 'win', hostname: 'mta.rookery.test' });
    root.setHeader('Subject', 'Report');
    root.createChild('text/plain; charset=utf-8').setContent('Hello');
    const built = (await root.build()).toString();
    expect(built).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;\r\n boundary=/m);
    expect(built).toContain('Subject: Report\r\n');
    expect(built).toContain('\r\nHello\r\n');
  });

  it('MailComposer builds a message from options: Bcc only in the envelope, header values kept to one line, no file or URL read', async () => {
    const composed = new MailComposer({
      from: { name: 'Ann', address: 'ann@a.test' },
      to: ['bob@b.test'],
      bcc: ['hidden@c.test'],
      subject: 'Hi',
      text: 'Hello',
      attachments: [{ filename: 'a.bin', content: Buffer.from([0, 1, 2]) }],
      headers: { 'X-One': 'value' },
      date: new Date(0),
      disableFileAccess: true,
      disableUrlAccess: true,
    }).compile();
    expect(composed.getEnvelope()).toEqual({ from: 'ann@a.test', to: ['bob@b.test', 'hidden@c.test'] });
    const built = (await composed.build()).toString();
    expect(built).toMatch(/^From: Ann <ann@a\.test>\r?$/m);
    expect(built).toMatch(/^X-One: value\r?$/m);
    expect(built).toMatch(/^Date: Thu, 01 Jan 1970 00:00:00 \+0000\r?$/m);
    expect(built).not.toContain('hidden@c.test');
    expect(built).toContain('AAEC');
    // With file and URL access off, a path is refused rather than read.
    const withPath = new MailComposer({ from: 'ann@a.test', text: 'x', attachments: [{ path: '/etc/hostname' }], disableFileAccess: true }).compile();
    await expect(withPath.build()).rejects.toThrow();
  });
});

describe('mailauth internals', () => {
  const header = Buffer.from('From: Ann <ann@a.test>\r\nSubject: Hi\r\nTo: bob@b.test\r\n');

  it('parses a header and selects the fields to sign', () => {
    const { parsed } = mailauth.parseHeaders(header);
    expect(parsed.map((h) => [h.key, h.casedKey])).toEqual([['from', 'From'], ['subject', 'Subject'], ['to', 'To']]);
    expect(Buffer.isBuffer(parsed[0]!.line)).toBe(true);
    // Bottom-up, as a verifier takes instances of a field (RFC 6376 5.4.2).
    const lines = mailauth.getSigningHeaderLines(parsed, 'From:Subject');
    expect(lines.keys).toBe('Subject: From');
    expect(lines.headers.map((h) => h.key)).toEqual(['subject', 'from']);
  });

  it('hashes a body with relaxed canonicalization', () => {
    const hasher = mailauth.dkimBody('relaxed/relaxed', 'sha256', false);
    hasher.update(Buffer.from(''));
    // RFC 6376 3.4.4: an empty body canonicalizes to nothing; SHA-256 of the empty string.
    expect(hasher.digest('base64')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  it('canonicalizes the signed header and formats the DKIM-Signature field', () => {
    const lines = mailauth.getSigningHeaderLines(mailauth.parseHeaders(header).parsed, 'From:Subject');
    const { canonicalizedHeader, dkimHeaderOpts } = mailauth.generateCanonicalizedHeader('DKIM', lines, {
      signingDomain: 'a.test',
      selector: 's1',
      algorithm: 'rsa-sha256',
      canonicalization: 'relaxed/relaxed',
      bodyHash: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
      timestamp: 1_700_000_000,
      expiration: false,
    });
    expect(canonicalizedHeader.toString()).toBe(
      'subject:Hi\r\nfrom:Ann <ann@a.test>\r\n' +
        'dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; h=Subject: From; q=dns/txt; s=s1; t=1700000000; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=',
    );
    dkimHeaderOpts.b = 'c2lnbmF0dXJl';
    const field = mailauth.formatSignatureHeaderLine('DKIM', dkimHeaderOpts, true);
    expect(field).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=a.test;/);
    expect(field).toContain('b=c2lnbmF0dXJl');
  });

  it('finds the DMARC record, inherited from the organizational domain, and its policy', async () => {
    const resolver = async (name: string, type: string) => {
      if (type === 'TXT' && name === '_dmarc.a.test') return [['v=DMARC1; p=reject; sp=quarantine; adkim=s']];
      throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' });
    };
    const own = await mailauth.getDmarcRecord('a.test', resolver);
    expect(own).toMatchObject({ p: 'reject', sp: 'quarantine', adkim: 's', isOrgRecord: false, recordDomain: 'a.test' });
    expect((own as mailauth.DmarcRecord).rr).toContain('v=DMARC1');
    const inherited = await mailauth.getDmarcRecord('mail.a.test', resolver);
    expect(inherited).toMatchObject({ isOrgRecord: true, recordDomain: 'a.test' });
    expect(mailauth.getPolicyTags(own as mailauth.DmarcRecord)).toMatchObject({ p: 'reject', sp: 'quarantine' });
    expect(await mailauth.getDmarcRecord('b.test', resolver)).toBe(false);
  });

  it('aligns relaxed by organizational domain and strict by exact domain', () => {
    expect(mailauth.getAlignment('mail.a.test', ['bounces.a.test'], false)).toBeTruthy();
    expect(mailauth.getAlignment('mail.a.test', ['bounces.a.test'], true)).toBeFalsy();
    expect(mailauth.getAlignment('a.test', ['b.test'], false)).toBeFalsy();
  });

  it('verifies DKIM signatures alone (lib/dkim/verify), reporting the From and each signature', async () => {
    const resolver = async () => {
      throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' });
    };
    const signed = Buffer.from('DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; s=s1; h=From; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=c2lnbmF0dXJl\r\nFrom: ann@a.test\r\n\r\n');
    const result = await mailauth.dkimVerify(signed, { resolver, curTime: new Date(), rejectRsaSha1: true });
    expect(result).toMatchObject({ headerFrom: ['ann@a.test'], fromFields: 1 });
    expect(result.results.map((r) => [r.signingDomain, r.status.result, r.status.comment])).toEqual([['a.test', 'neutral', 'no key']]);
    const unsigned = await mailauth.dkimVerify(Buffer.from('From: ann@a.test\r\n\r\n'), { resolver });
    expect(unsigned.results.map((r) => r.status.result)).toEqual(['none']);
  });

  it('evaluates SPF with the options lib/spf declares', async () => {
    const resolver = async (name: string, type: string) => {
      if (type === 'TXT' && name === 'a.test') return [['v=spf1 ip4:192.0.2.1 -all']];
      throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' });
    };
    const evaluate = (ip: string) =>
      mailauth.spf({ sender: 'postmaster@a.test', ip, helo: 'mta.a.test', mta: 'mx.test', resolver: resolver as mailauth.SPFOptions['resolver'], maxElapsedTime: 5_000 });
    expect((await evaluate('192.0.2.1')).status.result).toBe('pass');
    expect((await evaluate('192.0.2.2')).status.result).toBe('fail');
  });
});

/** The .ts files under `dir`. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/**
 * Each reach past a library's public surface in a file, as `path:line: text`: a member whose name
 * starts with "_" (read, written, destructured or indexed by a literal), an import or require of a
 * package's inner path ("pkg/lib/x", "@scope/pkg/x"), or createRequire. Our own classes use
 * TypeScript's `private`, never a "_" prefix, so every such member belongs to a library.
 */
function internalAccesses(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const report = (node: ts.Node) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
    found.push(`${relative(SRC, file)}:${line + 1}: ${node.getText(source)}`);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && node.name.text.startsWith('_')) report(node);
    else if (ts.isElementAccessExpression(node) && ts.isStringLiteral(node.argumentExpression) && node.argumentExpression.text.startsWith('_')) report(node);
    else if (ts.isBindingElement(node) && ts.isObjectBindingPattern(node.parent) && (node.propertyName ?? node.name).getText(source).startsWith('_')) report(node);
    else if (ts.isIdentifier(node) && node.text === 'createRequire') report(node);
    else if (ts.isStringLiteral(node) && isModuleSpecifier(node) && isInnerPath(node.text)) report(node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function isModuleSpecifier(node: ts.StringLiteral): boolean {
  const parent = node.parent;
  if (ts.isImportDeclaration(parent) || ts.isExportDeclaration(parent)) return parent.moduleSpecifier === node;
  if (ts.isExternalModuleReference(parent) || ts.isImportTypeNode(parent.parent)) return true;
  // require('x') and import('x').
  if (!ts.isCallExpression(parent) || parent.arguments[0] !== node) return false;
  return parent.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(parent.expression) && parent.expression.text === 'require');
}

/** A bare specifier naming a file inside a package: "pkg/sub" or "@scope/pkg/sub" (node: builtins excepted). */
function isInnerPath(specifier: string): boolean {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return false;
  const parts = specifier.split('/');
  return parts.length > (specifier.startsWith('@') ? 2 : 1);
}
