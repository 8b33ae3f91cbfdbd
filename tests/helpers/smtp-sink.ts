import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';

/**
 * A real SMTP server on loopback that records what it receives: the destination for delivery
 * tests, e2e tests and the benchmark. It accepts everything unless a script says otherwise,
 * records each message's raw bytes exactly, and counts transactions per connection so tests
 * can prove connection reuse. Kept lean for the benchmark: no logging, no reverse DNS.
 */

export interface SinkSession {
  connectionId: string;
  remoteAddress: string;
  /** The EHLO/HELO name the client gave ('' before it gave one). */
  helo: string;
  secure: boolean;
}

export interface SinkReply {
  code: number;
  message: string;
}

type Scripted = SinkReply | undefined | Promise<SinkReply | undefined>;

/** Replies to force; each callback returns a reply, or undefined to accept. */
export interface SinkScript {
  /** Replaces the greeting; the server closes the connection after a refusal. */
  onConnect?(session: SinkSession): Scripted;
  onMailFrom?(address: string, session: SinkSession): Scripted;
  onRcptTo?(address: string, session: SinkSession): Scripted;
  /** Called with the complete message; a 2xx reply replaces the default text of the acceptance. */
  onData?(message: SinkMessage, session: SinkSession): Scripted;
}

export interface SinkMessage {
  from: string;
  to: string[];
  raw: Buffer;
  /** The Message-ID header, or null. */
  messageId: string | null;
  remoteAddress: string;
  helo: string;
  connectionId: string;
  /** True when the message came over TLS (STARTTLS). */
  secure: boolean;
  /** MAIL FROM carried the SMTPUTF8 parameter (RFC 6531). */
  smtpUtf8: boolean;
  /**
   * The MAIL FROM and RCPT TO lines of its transaction as they came over the wire (UTF-8; plain
   * connections only): smtp-server hands an A-label domain on as U-labels, these say which was sent.
   */
  commands: string[];
  receivedAt: number;
}

export interface SinkConnection {
  id: string;
  remoteAddress: string;
  helo: string;
  /** Mail transactions that reached the end of DATA on this connection (accepted or not). */
  transactions: number;
  secure: boolean;
}

export interface SmtpSinkOptions {
  host?: string;
  port?: number;
  /** Offer STARTTLS: with a self-signed certificate (true), or with the key and certificate given. */
  tls?: boolean | { key: Buffer; cert: Buffer };
  /** The name in the greeting. */
  hostname?: string;
  /** Offer SMTPUTF8 (RFC 6531); default true, as smtp-server does. */
  smtpUtf8?: boolean;
  script?: SinkScript;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** Accepted messages, in the order they were received. */
  messages: SinkMessage[];
  connections: SinkConnection[];
  /** Resolves once at least n messages were accepted (rejects after timeoutMs). */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** Resolves once accepted messages carry at least n recipients in total. */
  waitForRecipients(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const run = promisify(execFile);
let certificate: Promise<{ key: Buffer; cert: Buffer }> | undefined;

/** One self-signed certificate per test process, made with openssl on first use. */
function selfSignedCertificate(): Promise<{ key: Buffer; cert: Buffer }> {
  certificate ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rookery-sink-tls-'));
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      await run('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=sink.rookery.test',
        '-addext', 'subjectAltName=DNS:sink.rookery.test,IP:127.0.0.1',
      ]);
      return { key: await readFile(key), cert: await readFile(cert) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certificate;
}

function replyError(reply: SinkReply): Error {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const script = options.script ?? {};
  const tls = options.tls === true ? await selfSignedCertificate() : options.tls || undefined;
  const messages: SinkMessage[] = [];
  const connections: SinkConnection[] = [];
  const byId = new Map<string, SinkConnection>();
  let recipients = 0;
  const waiters = new Set<() => void>();
  const notify = () => waiters.forEach((check) => check());

  function connectionOf(session: SMTPServerSession): SinkConnection {
    let connection = byId.get(session.id);
    if (!connection) {
      connection = { id: session.id, remoteAddress: session.remoteAddress, helo: '', transactions: 0, secure: false };
      byId.set(session.id, connection);
      connections.push(connection);
    }
    connection.helo = session.hostNameAppearsAs || connection.helo;
    connection.secure = session.secure;
    return connection;
  }

  function view(session: SMTPServerSession): SinkSession {
    const connection = connectionOf(session);
    return { connectionId: connection.id, remoteAddress: connection.remoteAddress, helo: connection.helo, secure: connection.secure };
  }

  /** Runs a script callback and answers smtp-server with its reply (or acceptance). */
  function answer(scripted: () => Scripted, callback: (err?: Error | null) => void): void {
    Promise.resolve()
      .then(scripted)
      .then(
        (reply) => callback(reply && reply.code >= 400 ? replyError(reply) : null),
        (err: unknown) => callback(replyError({ code: 451, message: `4.3.0 sink script failed: ${String(err)}` })),
      );
  }

  const server = new SMTPServer({
    name: options.hostname ?? 'sink.rookery.test',
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    // Replies carry exactly the text a script gives ("451 4.7.1 ..."), no added enhanced code.
    hideENHANCEDSTATUSCODES: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !tls,
    hideSMTPUTF8: options.smtpUtf8 === false,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    closeTimeout: 250,
    onConnect(session, callback) {
      connectionOf(session);
      if (!script.onConnect) return callback();
      answer(() => script.onConnect!(view(session)), callback);
    },
    onMailFrom(address, session, callback) {
      if (!script.onMailFrom) return callback();
      answer(() => script.onMailFrom!(address.address, view(session)), callback);
    },
    onRcptTo(address, session, callback) {
      if (!script.onRcptTo) return callback();
      answer(() => script.onRcptTo!(address.address, view(session)), callback);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (err) => callback(err));
      stream.on('end', () => {
        const connection = connectionOf(session);
        connection.transactions++;
        const raw = Buffer.concat(chunks);
        const envelope = session.envelope;
        const message: SinkMessage = {
          from: envelope.mailFrom ? envelope.mailFrom.address : '',
          to: envelope.rcptTo.map((r) => r.address),
          raw,
          messageId: headerValue(splitHeader(raw).header, 'Message-ID'),
          remoteAddress: connection.remoteAddress,
          helo: connection.helo,
          connectionId: connection.id,
          secure: session.secure,
          smtpUtf8: envelope.smtpUtf8 === true,
          commands: envelopeLines.get(session.remotePort)?.splice(0) ?? [],
          receivedAt: Date.now(),
        };
        const accept = () => {
          messages.push(message);
          recipients += message.to.length;
          notify();
        };
        if (!script.onData) {
          accept();
          return callback(null, 'Ok: queued');
        }
        Promise.resolve()
          .then(() => script.onData!(message, view(session)))
          .then(
            (reply) => {
              if (reply && reply.code >= 400) return callback(replyError(reply));
              accept();
              callback(null, reply?.message ?? 'Ok: queued');
            },
            (err: unknown) => callback(replyError({ code: 451, message: `4.3.0 sink script failed: ${String(err)}` })),
          );
      });
    },
  });
  server.on('error', () => {
    // Client-side resets are normal in tests that kill connections; nothing to report.
  });
  // The raw MAIL and RCPT lines of each plain connection (by client port), read beside smtp-server's parser.
  const envelopeLines = new Map<number, string[]>();
  server.server.prependListener('connection', (socket: import('node:net').Socket) => {
    const port = socket.remotePort ?? 0;
    const lines: string[] = [];
    envelopeLines.set(port, lines);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      // A large chunk is message data: passed over uncopied, so the sink stays lean for the benchmark.
      if (pending.length === 0 && chunk.length > 4096) return;
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const line = pending.subarray(0, end).toString('utf8');
        pending = pending.subarray(end + 2);
        if (/^(MAIL FROM|RCPT TO):/i.test(line)) lines.push(line);
      }
      if (pending.length > 4096) pending = Buffer.alloc(0);
    });
    socket.once('close', () => envelopeLines.delete(port));
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const address = server.server.address();
  if (!address || typeof address === 'string') throw new Error('sink did not bind a TCP port');

  function waitFor<T>(done: () => boolean, value: () => T, what: () => string, timeoutMs: number): Promise<T> {
    if (done()) return Promise.resolve(value());
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        cleanup();
        resolve(value());
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`sink: timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
    });
  }

  let closing: Promise<void> | undefined;
  return {
    host,
    port: address.port,
    messages,
    connections,
    waitForMessages: (n, timeoutMs = 10_000) =>
      waitFor(() => messages.length >= n, () => messages.slice(), () => `${n} messages (have ${messages.length})`, timeoutMs),
    waitForRecipients: (n, timeoutMs = 10_000) =>
      waitFor(() => recipients >= n, () => undefined, () => `${n} recipients (have ${recipients})`, timeoutMs),
    close() {
      closing ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return closing;
    },
  };
}
