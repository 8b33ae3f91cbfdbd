import type { SMTPServerSession } from 'smtp-server';
import type { Config, ListenerConfig } from '../config/schema.ts';
import { ERRORS, RookeryError, smtpReplyText, type ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Admission, GatedSmtpServer, GateReply } from '../vendor/smtp-server.ts';
import { clientKeyOf, type ClientKey } from './client-key.ts';
import { NetworkMatcher } from './relay-policy.ts';
import type { Rejections } from './rejections.ts';

/**
 * The open submission connections and sessions: admission against the connection limits the
 * moment a connection is accepted (in total, per client as client-key.ts defines it, and for
 * clients that are neither trusted nor logged in, which may not take the reserved share of the
 * slots; trusted networks only meet the per-client limit), what we keep per session beside
 * smtp-server's own session object, and the session time limit, which never cuts a message off
 * while it is being committed. A connection counts from its accept, through its TLS handshake,
 * greeting delay and reverse lookup, until its socket closes: a client cannot open more
 * connections than its share by keeping them silent before their greeting.
 */

/** A connection admitted at accept, counted until its socket closes. */
interface Slot {
  client: ClientKey;
  trusted: boolean;
  /** Trusted, or authenticated: the connection may use the reserved share of the slots. */
  vetted: boolean;
  released: boolean;
  /** Once the connection has its SMTP session. */
  sessionId: string | null;
}

/** What we keep per open session. */
export interface SessionState {
  id: string;
  ip: string;
  slot: Slot;
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
  smtp: Pick<Config['smtp'], 'maxConnections' | 'maxConnectionsPerClient' | 'reservedConnectionShare' | 'sessionTimeout' | 'trustedNetworks'>;
  log: Logger;
  /** The session counters: the submission's, or another door's own (feedback/). */
  metrics: Pick<Metrics, 'smtpSessions' | 'smtpSessionsActive'>;
  rejections: Rejections;
  /** True once the server is stopping: no new session is admitted. */
  isStopping: () => boolean;
}

const BUSY = 'Too many connections, try again later';

export class SessionRegistry {
  private readonly sessions = new Map<string, SessionState>();
  /** The admitted connections that have a session, by session id. */
  private readonly slots = new Map<string, Slot>();
  private readonly perClient = new Map<ClientKey, number>();
  private readonly trustedNetworks: NetworkMatcher;
  /** Connections admitted and not yet closed. */
  private admitted = 0;
  /** Connections that are not vetted, and how many of them may be open at once. */
  private unvetted = 0;
  private readonly maxUnvetted: number;

  constructor(private readonly deps: SessionRegistryDeps) {
    this.trustedNetworks = new NetworkMatcher(deps.smtp.trustedNetworks);
    this.maxUnvetted = Math.floor(deps.smtp.maxConnections * (1 - deps.smtp.reservedConnectionShare));
  }

  get size(): number {
    return this.sessions.size;
  }

  get(sessionId: string): SessionState | undefined {
    return this.sessions.get(sessionId);
  }

  /** A connection just accepted (the guard's admit): its slot, or the reply refusing it. */
  admit(ip: string): Admission | GateReply {
    const { smtp, rejections } = this.deps;
    const client = clientKeyOf(ip);
    const trusted = this.trustedNetworks.contains(ip);
    const refuse = (code: ErrorCode, message?: string, fields: Record<string, unknown> = {}): GateReply => {
      rejections.reject(undefined, code, { ip, ...fields });
      const spec = ERRORS[code];
      return { code: spec.smtp, text: smtpReplyText(message ? { ...spec, message } : spec) };
    };
    if (!trusted && this.admitted >= smtp.maxConnections) return refuse('TOO_MANY_CONNECTIONS', BUSY);
    if (!trusted && this.unvetted >= this.maxUnvetted) return refuse('TOO_MANY_CONNECTIONS', BUSY, { reserved: true });
    const fromClient = this.perClient.get(client) ?? 0;
    if (fromClient >= smtp.maxConnectionsPerClient) return refuse('TOO_MANY_CONNECTIONS', undefined, { client });

    const slot: Slot = { client, trusted, vetted: trusted, released: false, sessionId: null };
    this.admitted++;
    if (!slot.vetted) this.unvetted++;
    this.perClient.set(client, fromClient + 1);
    return {
      started: (sessionId) => {
        slot.sessionId = sessionId;
        this.slots.set(sessionId, slot);
      },
      release: () => this.release(slot),
    };
  }

  /** smtp-server's onConnect: the admitted connection's session begins, or is refused through `callback`. */
  open(server: GatedSmtpServer, listener: ListenerConfig, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const { smtp, rejections } = this.deps;
    const ip = session.remoteAddress;
    if (this.deps.isStopping()) {
      rejections.reject(undefined, 'SHUTTING_DOWN', { ip });
      return callback(new RookeryError('SHUTTING_DOWN'));
    }
    // Every connection is admitted at accept; one without a slot has closed since, and needs no session.
    const slot = this.slots.get(session.id);
    if (!slot) return callback(new Error('connection closed'));
    const state: SessionState = {
      id: session.id,
      ip,
      slot,
      server,
      log: this.deps.log.child({ session: session.id, ip }),
      trusted: slot.trusted,
      timer: setTimeout(() => this.expire(session.id), smtp.sessionTimeout),
      committing: false,
      expired: false,
      messages: 0,
    };
    state.timer.unref();
    this.sessions.set(session.id, state);
    this.deps.metrics.smtpSessions.inc();
    this.deps.metrics.smtpSessionsActive.inc();
    const clientName = session.clientHostname === `[${ip}]` ? null : session.clientHostname;
    // Sessions are counted in metrics; their lines are debug, so mail costs its own lines only.
    state.log.debug(
      { event: 'smtp.session.open', port: session.localPort, tls: listener.tls, clientName, trusted: state.trusted },
      'SMTP session opened',
    );
    callback();
  }

  /** smtp-server's onClose. A session refused in open() was never opened and is not known here. */
  close(sessionId: string): void {
    const state = this.sessions.get(sessionId);
    if (state) this.forget(state);
  }

  /** After every socket has closed at stop: smtp-server reports the last closes a tick later. */
  closeAll(): void {
    for (const state of [...this.sessions.values()]) this.forget(state);
    for (const slot of [...this.slots.values()]) this.release(slot);
  }

  /** The session has authenticated: it no longer counts against the unreserved share. */
  authenticated(state: SessionState | undefined): void {
    const slot = state?.slot;
    if (!slot || slot.vetted) return;
    slot.vetted = true;
    if (!slot.released) this.unvetted--;
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
    this.deps.metrics.smtpSessionsActive.dec();
    state.log.debug({ event: 'smtp.session.close', messages: state.messages }, 'SMTP session closed');
  }

  /** The connection's socket has closed: its slot is free. */
  private release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    if (slot.sessionId !== null) this.slots.delete(slot.sessionId);
    this.admitted--;
    if (!slot.vetted) this.unvetted--;
    const left = (this.perClient.get(slot.client) ?? 1) - 1;
    if (left > 0) this.perClient.set(slot.client, left);
    else this.perClient.delete(slot.client);
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
