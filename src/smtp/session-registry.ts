import type { SMTPServerSession } from 'smtp-server';
import type { Config, ListenerConfig } from '../config/schema.ts';
import { ERRORS, RookeryError, smtpReplyText, type ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { GatedSmtpServer } from '../vendor/smtp-server.ts';
import { NetworkMatcher } from './relay-policy.ts';
import type { Rejections } from './rejections.ts';

/**
 * The open submission sessions: what we keep per session beside smtp-server's own session
 * object, admission against the connection limits (in total and per client address), and the
 * session time limit, which never cuts a message off while it is being committed.
 */

/** What we keep per open session. */
export interface SessionState {
  id: string;
  ip: string;
  server: GatedSmtpServer;
  log: Logger;
  trusted: boolean;
  timer: NodeJS.Timeout;
  /** queue.submit is in flight: the session time limit waits for the reply to DATA. */
  committing: boolean;
  expired: boolean;
  /** Messages queued in this session. */
  messages: number;
}

export interface SessionRegistryDeps {
  smtp: Pick<Config['smtp'], 'maxConnections' | 'maxConnectionsPerClient' | 'sessionTimeout' | 'trustedNetworks'>;
  log: Logger;
  metrics: Metrics;
  rejections: Rejections;
  /** True once the server is stopping: no new session is admitted. */
  isStopping: () => boolean;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, SessionState>();
  private readonly perClient = new Map<string, number>();
  private readonly trustedNetworks: NetworkMatcher;

  constructor(private readonly deps: SessionRegistryDeps) {
    this.trustedNetworks = new NetworkMatcher(deps.smtp.trustedNetworks);
  }

  get size(): number {
    return this.sessions.size;
  }

  get(sessionId: string): SessionState | undefined {
    return this.sessions.get(sessionId);
  }

  /** smtp-server's onConnect: admits the session, or refuses it through `callback`. */
  open(server: GatedSmtpServer, listener: ListenerConfig, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const { smtp, rejections } = this.deps;
    const ip = session.remoteAddress;
    const refuse = (code: ErrorCode, message?: string) => {
      rejections.reject(undefined, code, { ip });
      callback(new RookeryError(code, message));
    };
    if (this.deps.isStopping()) return refuse('SHUTTING_DOWN');
    if (this.sessions.size >= smtp.maxConnections) return refuse('TOO_MANY_CONNECTIONS', 'Too many connections, try again later');
    const fromClient = this.perClient.get(ip) ?? 0;
    if (fromClient >= smtp.maxConnectionsPerClient) return refuse('TOO_MANY_CONNECTIONS');

    const state: SessionState = {
      id: session.id,
      ip,
      server,
      log: this.deps.log.child({ session: session.id, ip }),
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

  /** smtp-server's onClose. A session refused in open() was never counted and is not known here. */
  close(sessionId: string): void {
    const state = this.sessions.get(sessionId);
    if (state) this.forget(state);
  }

  /** After every socket has closed at stop: smtp-server reports the last closes a tick later. */
  closeAll(): void {
    for (const state of [...this.sessions.values()]) this.forget(state);
  }

  /** A message of the session is being committed: the time limit waits for the reply. */
  beginCommit(state: SessionState | undefined): void {
    if (state) state.committing = true;
  }

  /** After the reply to DATA: a session whose time ran out while committing ends now. */
  endCommit(state: SessionState | undefined): void {
    if (!state?.committing) return;
    state.committing = false;
    if (state.expired) this.endExpired(state);
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
    this.deps.rejections.reject(state, 'SESSION_TIME_EXCEEDED', {});
    state.server.endSession(state.id, smtpReplyText(ERRORS.SESSION_TIME_EXCEEDED));
  }
}
