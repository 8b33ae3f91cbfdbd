import type { AddressInfo } from 'node:net';
import addressparser from 'nodemailer/lib/addressparser';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Clock } from '../clock.ts';
import type { Config, ListenerConfig } from '../config/schema.ts';
import { headerValue, splitHeader } from '../mail/message-headers.ts';
import type { Accepted, Submission } from '../engine/queue.ts';
import { ERRORS, RookeryError, type ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { AuthLockout } from './auth-lockout.ts';
import { authAvailable, authOfferFor, disabledCommandsFor } from './listener-policy.ts';
import { collectMessage } from './message-collector.ts';
import { receivedField } from './received-header.ts';
import { checkMailFrom, checkRcptTo, NetworkMatcher, senderAllowed } from './relay-policy.ts';
import { SubmissionSmtpServer, type GateReply } from './submission-connection.ts';
import { UserDirectory } from './user-directory.ts';

export interface SubmissionServerDeps {
  /** The whole (frozen) config; config.smtp and config.hostname are used. */
  config: Config;
  queue: { submit(submission: Submission): Promise<Accepted> };
  /** Key and certificate; needed only when a listener uses TLS (starttls or implicit). */
  tls: { key: Buffer | string; cert: Buffer | string } | null;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** How long open sessions may finish their transaction at stop() before they are dropped. */
  shutdownGraceMs?: number;
}

export interface SubmissionServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The bound address of each listener, in config order (real ports when config says 0). */
  addresses(): { host: string; port: number }[];
}

export function createSubmissionServer(deps: SubmissionServerDeps): SubmissionServer {
  return new SmtpSubmissionServer(deps);
}

const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;
/**
 * smtp-server buffers a command line before anyone can judge it; beyond this the session is
 * ended (421) instead of answered, so a client cannot make the server hold an endless line.
 */
const HARD_LINE_LIMIT_MIN = 16 * 1024;
const REPLIES = {
  commandTooLong: { code: 500, text: '5.5.2 Error: line too long' },
  startTlsFirst: { code: 530, text: '5.7.0 Must issue a STARTTLS command first' },
  authNotEnabled: { code: 503, text: '5.5.1 Error: authentication not enabled' },
  authInTransaction: { code: 503, text: '5.5.1 Error: AUTH not allowed during a mail transaction' },
} as const;

/** Reasons for smtpRejections{reason}: error registry codes plus two replies of our own. */
type RejectionReason = ErrorCode | 'COMMAND_TOO_LONG' | 'AUTH_NOT_AVAILABLE';

/** The log event for each refusal, so a log search can follow one kind. */
const REJECTION_EVENTS: Partial<Record<RejectionReason, string>> = {
  COMMAND_TOO_LONG: 'smtp.command.rejected',
  AUTH_NOT_AVAILABLE: 'smtp.auth.refused',
  AUTH_LOCKED: 'smtp.auth.locked',
  AUTH_FAILED: 'smtp.auth.failed',
  SENDER_NOT_ALLOWED: 'smtp.sender.rejected',
  RELAY_DENIED: 'smtp.relay.denied',
  BAD_ADDRESS: 'smtp.recipient.rejected',
  TOO_MANY_RECIPIENTS: 'smtp.recipient.rejected',
  MESSAGE_TOO_LARGE: 'smtp.message.rejected',
  BARE_LINE_ENDING: 'smtp.message.rejected',
  SESSION_TIME_EXCEEDED: 'smtp.session.expired',
  TOO_MANY_CONNECTIONS: 'smtp.session.refused',
  SHUTTING_DOWN: 'smtp.session.refused',
};

/** What we keep per open session, beside smtp-server's own session object. */
interface SessionState {
  id: string;
  ip: string;
  server: SubmissionSmtpServer;
  log: Logger;
  trusted: boolean;
  timer: NodeJS.Timeout;
  /** queue.submit is in flight: the session time limit waits for the reply to DATA. */
  committing: boolean;
  expired: boolean;
  /** Messages queued in this session. */
  messages: number;
}

class SmtpSubmissionServer implements SubmissionServer {
  private readonly log: Logger;
  private readonly trustedNetworks: NetworkMatcher;
  private readonly lockout: AuthLockout;
  private readonly sessions = new Map<string, SessionState>();
  private readonly perClient = new Map<string, number>();
  private readonly servers: SubmissionSmtpServer[] = [];
  private users: UserDirectory | null = null;
  private stopping = false;
  private starting: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;

  constructor(private readonly deps: SubmissionServerDeps) {
    this.log = deps.logger.child({ component: 'smtp' });
    this.trustedNetworks = new NetworkMatcher(deps.config.smtp.trustedNetworks);
    this.lockout = new AuthLockout({
      max: deps.config.smtp.authFailures.max,
      windowMs: deps.config.smtp.authFailures.window,
      clock: deps.clock,
    });
  }

  start(): Promise<void> {
    this.starting ??= this.listenAll();
    return this.starting;
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      await this.closeAll();
    })();
    return this.stopped;
  }

  addresses(): { host: string; port: number }[] {
    return this.servers.map((server) => {
      const address = server.server.address() as AddressInfo | null;
      return { host: address?.address ?? '', port: address?.port ?? 0 };
    });
  }

  private async listenAll(): Promise<void> {
    this.users = await UserDirectory.create(this.deps.config.smtp.users);
    try {
      for (const listener of this.deps.config.smtp.listeners) {
        const server = this.createServer(listener);
        this.servers.push(server);
        await listen(server, listener);
        const bound = server.server.address() as AddressInfo;
        this.log.info({ event: 'smtp.listening', host: bound.address, port: bound.port, tls: listener.tls }, 'SMTP listener ready');
      }
    } catch (err) {
      await this.closeAll();
      throw err;
    }
  }

  private async closeAll(): Promise<void> {
    this.stopping = true;
    const grace = this.deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    const open = this.sessions.size;
    if (open) this.log.info({ event: 'smtp.stopping', sessions: open, graceMs: grace }, 'SMTP stopping, waiting for open sessions');
    await Promise.all(this.servers.filter((s) => s.server.listening).map((s) => closeServer(s)));
    // Every socket is closed now; smtp-server reports the last closes a tick later, so settle them here.
    for (const state of [...this.sessions.values()]) this.forget(state);
    this.log.info({ event: 'smtp.stopped' }, 'SMTP stopped');
  }

  private createServer(listener: ListenerConfig): SubmissionSmtpServer {
    const smtp = this.deps.config.smtp;
    const offer = authOfferFor(listener);
    if (listener.tls !== 'none' && !this.deps.tls) throw new Error(`SMTP listener ${listener.host}:${listener.port} uses TLS but no key and certificate were given`);
    const options: SMTPServerOptions = {
      name: this.deps.config.hostname,
      secure: listener.tls === 'implicit',
      key: this.deps.tls?.key,
      cert: this.deps.tls?.cert,
      disabledCommands: disabledCommandsFor(listener, listener.tls === 'implicit'),
      authMethods: ['PLAIN', 'LOGIN'],
      // Trusted networks send without AUTH; the relay policy decides at MAIL and RCPT.
      authOptional: true,
      size: smtp.maxMessageBytes,
      maxClients: smtp.maxConnections,
      maxCommandLength: Math.max(HARD_LINE_LIMIT_MIN, 4 * smtp.maxCommandBytes),
      socketTimeout: smtp.idleTimeout,
      closeTimeout: this.deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
      hideENHANCEDSTATUSCODES: false,
      // Nothing downstream carries SMTPUTF8 or DSN parameters, so they are not offered.
      hideSMTPUTF8: true,
      hideDSN: true,
      logger: false,
      onConnect: (session, callback) => this.onConnect(server, listener, session, callback),
      onSecure: (_socket, session, callback) => {
        session.disabledCommands = disabledCommandsFor(listener, true);
        callback();
      },
      onAuth: (auth, session, callback) => this.onAuth(auth, session, callback),
      onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
      onRcptTo: (address, session, callback) => this.onRcptTo(address, session, callback),
      onData: (stream, session, callback) => this.onData(stream, session, callback),
      onClose: (session) => this.onClose(session),
    };
    const server: SubmissionSmtpServer = new SubmissionSmtpServer(options, (line, session, inAuthExchange) =>
      this.gate(offer, line, session, inAuthExchange),
    );
    server.on('error', (err: Error & { code?: string }) => {
      // Mostly clients that vanish or fail the TLS handshake; nothing the operator must act on.
      this.log.info({ event: 'smtp.connection.error', err: err.message, code: err.code }, 'SMTP connection error');
    });
    return server;
  }

  /** Runs on every command line before smtp-server handles it. */
  private gate(offer: ReturnType<typeof authOfferFor>, line: Buffer, session: SMTPServerSession, inAuthExchange: boolean): GateReply | null {
    if (this.stopping) return reply(ERRORS.SHUTTING_DOWN);
    const state = this.sessions.get(session.id);
    // RFC 5321 counts the CRLF in the line length.
    if (line.length + 2 > this.deps.config.smtp.maxCommandBytes) {
      this.reject(state, 'COMMAND_TOO_LONG', { bytes: line.length });
      return REPLIES.commandTooLong;
    }
    if (!inAuthExchange && /^auth(?:\s|$)/i.test(line.subarray(0, 5).toString('latin1'))) {
      if (!authAvailable(offer, session.secure)) {
        this.reject(state, 'AUTH_NOT_AVAILABLE', {});
        return offer === 'after-starttls' ? REPLIES.startTlsFirst : REPLIES.authNotEnabled;
      }
      // RFC 4954 4: no AUTH inside a transaction, or MAIL FROM would escape the user's allowedSenders.
      if (session.envelope.mailFrom) {
        this.reject(state, 'AUTH_NOT_AVAILABLE', { inTransaction: true });
        return REPLIES.authInTransaction;
      }
      if (this.lockout.isLocked(session.remoteAddress)) {
        this.reject(state, 'AUTH_LOCKED', {});
        return reply(ERRORS.AUTH_LOCKED);
      }
    }
    return null;
  }

  private onConnect(
    server: SubmissionSmtpServer,
    listener: ListenerConfig,
    session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void {
    const smtp = this.deps.config.smtp;
    const ip = session.remoteAddress;
    const refuse = (code: ErrorCode, message?: string) => {
      this.reject(undefined, code, { ip });
      callback(new RookeryError(code, message));
    };
    if (this.stopping) return refuse('SHUTTING_DOWN');
    if (this.sessions.size >= smtp.maxConnections) return refuse('TOO_MANY_CONNECTIONS', 'Too many connections, try again later');
    const fromClient = this.perClient.get(ip) ?? 0;
    if (fromClient >= smtp.maxConnectionsPerClient) return refuse('TOO_MANY_CONNECTIONS');

    session.disabledCommands = disabledCommandsFor(listener, session.secure);
    const state: SessionState = {
      id: session.id,
      ip,
      server,
      log: this.log.child({ session: session.id, ip }),
      trusted: this.trustedNetworks.contains(ip),
      timer: setTimeout(() => this.expire(session.id), smtp.sessionTimeout),
      committing: false,
      expired: false,
      messages: 0,
    };
    state.timer.unref();
    this.sessions.set(session.id, state);
    this.perClient.set(ip, fromClient + 1);
    this.deps.metrics.smtpSessions.inc();
    this.deps.metrics.smtpSessionsActive.inc();
    const clientName = session.clientHostname === `[${ip}]` ? null : session.clientHostname;
    state.log.info(
      { event: 'smtp.session.open', port: session.localPort, tls: listener.tls, clientName, trusted: state.trusted },
      'SMTP session opened',
    );
    callback();
  }

  private onClose(session: SMTPServerSession): void {
    const state = this.sessions.get(session.id);
    if (state) this.forget(state); // no state: refused in onConnect, never counted
  }

  private forget(state: SessionState): void {
    clearTimeout(state.timer);
    this.sessions.delete(state.id);
    const left = (this.perClient.get(state.ip) ?? 1) - 1;
    if (left > 0) this.perClient.set(state.ip, left);
    else this.perClient.delete(state.ip);
    this.deps.metrics.smtpSessionsActive.dec();
    state.log.info({ event: 'smtp.session.close', messages: state.messages }, 'SMTP session closed');
  }

  /** The session time limit: a 421 now, or right after the reply to a message being committed. */
  private expire(sessionId: string): void {
    const state = this.sessions.get(sessionId);
    if (!state) return;
    state.expired = true;
    if (!state.committing) this.endExpired(state);
  }

  private endExpired(state: SessionState): void {
    this.reject(state, 'SESSION_TIME_EXCEEDED', {});
    state.server.endSession(state.id, `${ERRORS.SESSION_TIME_EXCEEDED.enhanced} ${ERRORS.SESSION_TIME_EXCEEDED.message}`);
  }

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: { user: string }) => void,
  ): void {
    const state = this.sessions.get(session.id);
    const ip = session.remoteAddress;
    const username = auth.username ?? '';
    // Checked again here: the lock may have been reached while this exchange was under way.
    if (this.lockout.isLocked(ip)) {
      this.reject(state, 'AUTH_LOCKED', { username: logSafe(username) });
      return callback(new RookeryError('AUTH_LOCKED'));
    }
    // PLAIN may ask to act as someone else (authzid); Rookery has no such delegation.
    const delegated = auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid;
    const users = this.users!;
    users.authenticate(username, auth.password ?? '').then(
      (user) => {
        if (!user || delegated) {
          this.lockout.recordFailure(ip);
          this.reject(state, 'AUTH_FAILED', { username: logSafe(username), method: auth.method, locked: this.lockout.isLocked(ip) });
          return callback(new RookeryError('AUTH_FAILED'));
        }
        state?.log.info({ event: 'smtp.auth.succeeded', username: user.username, method: auth.method }, 'SMTP client authenticated');
        callback(null, { user: user.username });
      },
      (err: Error) => {
        state?.log.error({ event: 'smtp.auth.error', err: err.message }, 'SMTP authentication could not be checked');
        callback(new RookeryError('AUTH_LOCKED', 'Authentication temporarily unavailable'));
      },
    );
  }

  private relayClient(session: SMTPServerSession, state: SessionState | undefined) {
    const user = typeof session.user === 'string' ? this.users!.get(session.user) : undefined;
    return { allowedSenders: user ? user.allowedSenders : null, trusted: state?.trusted ?? false };
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const state = this.sessions.get(session.id);
    const refusal = checkMailFrom(this.relayClient(session, state), address.address);
    if (refusal) {
      this.reject(state, refusal, { sender: address.address, username: session.user });
      return callback(new RookeryError(refusal));
    }
    callback();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const state = this.sessions.get(session.id);
    const refusal = checkRcptTo(this.relayClient(session, state));
    if (refusal) {
      this.reject(state, refusal, { recipient: address.address });
      return callback(new RookeryError(refusal));
    }
    // smtp-server accepts a bare "postmaster"; an outbound relay has no local mailbox for it.
    if (!address.address.includes('@')) {
      this.reject(state, 'BAD_ADDRESS', { recipient: address.address });
      return callback(new RookeryError('BAD_ADDRESS', 'Recipient address must have a domain'));
    }
    const recipients = session.envelope.rcptTo;
    const key = address.address.toLowerCase();
    const repeated = recipients.some((r) => r.address.toLowerCase() === key);
    if (!repeated && recipients.length >= this.deps.config.smtp.maxRecipients) {
      this.reject(state, 'TOO_MANY_RECIPIENTS', { recipients: recipients.length });
      return callback(new RookeryError('TOO_MANY_RECIPIENTS'));
    }
    callback();
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const state = this.sessions.get(session.id);
    this.receive(stream, session, state)
      .then(
        (text) => callback(null, text),
        (err: Error) => callback(err),
      )
      .finally(() => this.afterCommit(state));
  }

  /** Reads the message and queues it; resolves with the reply text, rejects with the refusal. */
  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession, state: SessionState | undefined): Promise<string> {
    const envelope = session.envelope;
    const log = state?.log ?? this.log;
    let collected;
    try {
      collected = await collectMessage(stream, this.deps.config.smtp.maxMessageBytes);
    } catch (err) {
      // The client went away (or was cut off) in the middle of the message; nothing was queued.
      log.info({ event: 'smtp.message.aborted', err: (err as Error).message }, 'message transfer aborted');
      throw err;
    }
    if (!collected.ok) {
      this.reject(state, collected.reason, { bytes: collected.bytes });
      throw new RookeryError(collected.reason);
    }
    // The From (and Sender) header is what recipients see and what DKIM signs for: an
    // authenticated user is held to allowedSenders there too, not only in MAIL FROM.
    const user = typeof session.user === 'string' ? this.users!.get(session.user) : undefined;
    if (user) {
      const { header } = splitHeader(collected.body);
      const authors = ['From', 'Sender'].flatMap((name) => addressesIn(headerValue(header, name)));
      const foreign = authors.find((address) => !senderAllowed(user.allowedSenders, address));
      if (foreign !== undefined) {
        this.reject(state, 'SENDER_NOT_ALLOWED', { header: logSafe(foreign), username: user.username });
        throw new RookeryError('SENDER_NOT_ALLOWED', 'From or Sender header address not allowed for this user');
      }
    }
    const submission: Submission = {
      sender: envelope.mailFrom ? envelope.mailFrom.address : '',
      recipients: envelope.rcptTo.map((r) => r.address),
      body: collected.body,
      submitter: typeof session.user === 'string' ? session.user : null,
      source: 'smtp',
      clientAddress: session.remoteAddress,
      received: receivedField({
        helo: session.hostNameAppearsAs || '',
        reverseName: session.clientHostname && session.clientHostname !== `[${session.remoteAddress}]` ? session.clientHostname : null,
        clientIp: session.remoteAddress,
        hostname: this.deps.config.hostname,
        protocol: session.transmissionType,
        id: session.id,
        at: this.deps.clock.now(),
      }),
    };
    if (state) state.committing = true;
    let accepted: Accepted;
    try {
      accepted = await this.deps.queue.submit(submission);
    } catch (err) {
      this.deps.metrics.smtpRejections.inc({ reason: 'STORAGE_FAILED' });
      log.error(
        { event: 'smtp.commit.failed', err: (err as Error).message, recipients: submission.recipients.length },
        'message could not be queued',
      );
      throw new RookeryError('STORAGE_FAILED');
    }
    if (state) state.messages++;
    log.info(
      {
        event: 'smtp.message.accepted',
        messageId: accepted.id,
        messageIdHeader: accepted.messageIdHeader,
        sender: submission.sender,
        submitter: submission.submitter,
        recipients: submission.recipients.length,
        size: submission.body.length,
        pool: accepted.pool.pool,
      },
      'message queued',
    );
    if (accepted.pool.refusedHeader !== null) {
      log.warn(
        { event: 'smtp.pool.refused', messageId: accepted.id, requested: logSafe(accepted.pool.refusedHeader), submitter: submission.submitter, pool: accepted.pool.pool },
        'X-Rookery-Pool names a pool this client may not use; ignored',
      );
    }
    return `2.0.0 Ok: queued as ${accepted.id}`;
  }

  /** After the reply to DATA: a session whose time ran out while committing ends now. */
  private afterCommit(state: SessionState | undefined): void {
    if (!state?.committing) return;
    state.committing = false;
    if (state.expired) this.endExpired(state);
  }

  /** Counts and logs a refusal; the caller sends the reply. */
  private reject(state: SessionState | undefined, reason: RejectionReason, fields: Record<string, unknown>): void {
    this.deps.metrics.smtpRejections.inc({ reason });
    (state?.log ?? this.log).info({ event: REJECTION_EVENTS[reason] ?? 'smtp.rejected', reason, ...fields }, `SMTP refused: ${reason}`);
  }
}

/** The addresses of an address header (groups flattened); none for an absent header. */
function addressesIn(value: string | null): string[] {
  if (!value) return [];
  const flatten = (list: ReturnType<typeof addressparser>): string[] =>
    list.flatMap((entry) => ('group' in entry && entry.group ? flatten(entry.group) : [entry.address ?? '']));
  return flatten(addressparser(value));
}

function reply(spec: (typeof ERRORS)[ErrorCode]): GateReply {
  return { code: spec.smtp, text: `${spec.enhanced} ${spec.message}` };
}

/** Usernames come from the client: bounded and printable before they reach a log line. */
function logSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

function listen(server: SubmissionSmtpServer, listener: ListenerConfig): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`SMTP: cannot listen on ${listener.host}:${listener.port}: ${err.message}`));
    server.server.once('error', onError);
    server.listen(listener.port, listener.host, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
}

/**
 * smtp-server's close(): the listener closes at once, open sessions may finish the transaction
 * in progress (any new command gets 421) until the grace period ends, then get 421 and are
 * closed. Sockets still open after that are destroyed, so stop() returns in bounded time.
 */
async function closeServer(server: SubmissionSmtpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.server.once('close', () => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.dropSessions();
  await closed;
}
