import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Config, ListenerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { GatedSmtpServer, type SessionGuard } from '../vendor/smtp-server.ts';
import { authOfferFor, disabledCommandsFor, type AuthOffer } from './listener-policy.ts';

/**
 * One SMTP listener (config.smtp.listeners[]): the smtp-server instance with the listener's TLS
 * mode, limits and commands, bound to the session handlers; listening, and closing with a grace
 * period for open sessions.
 */

/** The session handlers every listener shares; the guard is made per listener (its AUTH offer). */
export interface SessionHandlers extends Required<Pick<SMTPServerOptions, 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onData'>> {
  onConnect(server: GatedSmtpServer, listener: ListenerConfig, session: SMTPServerSession, callback: (err?: Error | null) => void): void;
  onClose(session: SMTPServerSession): void;
  guard(offer: AuthOffer): SessionGuard;
}

/** Reverse DNS of a client address: its names, first one used. */
export type ReverseLookup = (ip: string) => Promise<string[]>;

export interface ListenerDeps {
  config: Config;
  /** Key and certificate; needed only when the listener uses TLS (starttls or implicit). */
  tls: { key: Buffer | string; cert: Buffer | string } | null;
  /** How long open sessions may finish their transaction when the listener closes. */
  shutdownGraceMs: number;
  log: Logger;
  handlers: SessionHandlers;
  /** Reverse lookups of client addresses; node's resolver when not given. */
  reverseLookup?: ReverseLookup;
}

/**
 * smtp-server buffers a command line before anyone can judge it; beyond this the session is
 * ended (421) instead of answered, so a client cannot make the server hold an endless line.
 */
export const HARD_LINE_LIMIT_MIN = 16 * 1024;

export function createListener(listener: ListenerConfig, deps: ListenerDeps): GatedSmtpServer {
  const { config, tls, handlers } = deps;
  const smtp = config.smtp;
  if (listener.tls !== 'none' && !tls) throw new Error(`SMTP listener ${listener.host}:${listener.port} uses TLS but no key and certificate were given`);
  const options: SMTPServerOptions = {
    name: config.hostname,
    secure: listener.tls === 'implicit',
    key: tls?.key,
    cert: tls?.cert,
    disabledCommands: disabledCommandsFor(listener, listener.tls === 'implicit'),
    authMethods: ['PLAIN', 'LOGIN'],
    // Trusted networks send without AUTH; the relay policy decides at MAIL and RCPT.
    authOptional: true,
    size: smtp.maxMessageBytes,
    maxCommandLength: Math.max(HARD_LINE_LIMIT_MIN, 4 * smtp.maxCommandBytes),
    socketTimeout: smtp.idleTimeout,
    closeTimeout: deps.shutdownGraceMs,
    hideENHANCEDSTATUSCODES: false,
    // RFC 6531: UTF-8 addresses and headers are taken (the command gate holds them to
    // transactions that asked for it) and relayed with SMTPUTF8 (src/engine/international-mail.ts).
    hideSMTPUTF8: false,
    // Nothing downstream carries DSN parameters, so they are not offered.
    hideDSN: true,
    logger: false,
    ...(deps.reverseLookup ? { resolver: resolverFor(deps.reverseLookup) } : {}),
    onConnect: (session, callback) => {
      session.disabledCommands = disabledCommandsFor(listener, session.secure);
      handlers.onConnect(server, listener, session, callback);
    },
    onSecure: (_socket, session, callback) => {
      session.disabledCommands = disabledCommandsFor(listener, true);
      callback();
    },
    onAuth: handlers.onAuth,
    onMailFrom: handlers.onMailFrom,
    onRcptTo: handlers.onRcptTo,
    onData: handlers.onData,
    onClose: (session) => handlers.onClose(session),
  };
  const server: GatedSmtpServer = new GatedSmtpServer(options, handlers.guard(authOfferFor(listener)), {
    greetingDelayMs: listener.greetingDelay,
    commandTimeoutMs: smtp.commandTimeout,
  });
  server.on('error', (err: Error & { code?: string }) => {
    // Mostly clients that vanish or fail the TLS handshake; nothing the operator must act on.
    deps.log.info({ event: 'smtp.connection.error', err: err.message, code: err.code }, 'SMTP connection error');
  });
  return server;
}

/** smtp-server's resolver option, answered by `lookup`. */
export function resolverFor(lookup: ReverseLookup): NonNullable<SMTPServerOptions['resolver']> {
  return { reverse: (ip, callback) => void lookup(ip).then((names) => callback(null, names), (err: Error) => callback(err, [])) };
}

export function listen(server: GatedSmtpServer, listener: ListenerConfig): Promise<void> {
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
export async function closeListener(server: GatedSmtpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.server.once('close', () => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.dropSessions();
  await closed;
}
