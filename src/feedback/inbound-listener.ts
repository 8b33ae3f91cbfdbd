import { createSecureContext } from 'node:tls';
import type { SMTPServerOptions } from 'smtp-server';
import type { Clock } from '../clock.ts';
import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import type { Config, ListenerConfig } from '../config/schema.ts';
import type { BounceRule } from '../engine/bounce-rules.ts';
import type { BufferBudget } from '../engine/buffer-budget.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { AuthLockout } from '../smtp/auth-lockout.ts';
import { sessionGuard } from '../smtp/command-gate.ts';
import { Rejections } from '../smtp/rejections.ts';
import { SessionRegistry } from '../smtp/session-registry.ts';
import { HARD_LINE_LIMIT_MIN, resolverFor, type ReverseLookup } from '../smtp/submission-listener.ts';
import { ListenerGroup } from '../smtp/listener-group.ts';
import type { DomainCheckResolver } from '../sender-domains/domain-check-dns.ts';
import type { Store } from '../storage/store.ts';
import { GatedSmtpServer } from '../vendor/smtp-server.ts';
import type { FeedbackRecorder } from './feedback-recorder.ts';
import type { MailtoUnsubscribe } from './unsubscribe-mailto.ts';
import { inboundSessionHandlers } from './inbound-session.ts';
import { takeInboundMessage } from './report-intake.ts';
import { DEFAULT_REPORT_LIMITS, loadReportParser } from './report-message.ts';

/**
 * The inbound listener (config `inbound.listeners`): where remote MTAs deliver bounces to the
 * VERP return paths, feedback loops their complaints, and people their unsubscribe mail. One
 * smtp-server per listener, no AUTH, STARTTLS when the smtp TLS material exists. It reuses the
 * submission side's guards (src/smtp/: connection admission and limits, the command gate, the
 * session time limit, the message collector with its smuggling guard and data rate) with its
 * own counters; what it accepts and what it does with a message are inbound-session.ts and
 * report-intake.ts. start() and stop() are idempotent; stop() waits for messages being recorded.
 */

export interface InboundServerDeps {
  /** The configuration at start: inbound's listeners and limits, smtp's time limits, hostname. */
  config: Pick<Config, 'inbound' | 'smtp' | 'hostname'>;
  /** What a reload may change, read per use: the addresses taken, the bounce rules. */
  current: () => { config: Pick<Config, 'inbound' | 'returnPath'>; bounceRules: readonly BounceRule[] };
  store: Pick<Store, 'findRecipientForFeedback' | 'findMessagesByHeaderId' | 'listRecipients'>;
  recorder: Pick<FeedbackRecorder, 'record'>;
  /** The unsubscribe addresses' handler; without it no unsubscribe address is taken. */
  unsubscribe?: MailtoUnsubscribe;
  /** The smtp TLS material: STARTTLS is offered when there is some. */
  tls: { key: Buffer | string; cert: Buffer | string } | null;
  /** The memory of messages being received, shared with the other doors. */
  buffers: BufferBudget;
  reverseLookup?: ReverseLookup;
  /** Looks up the DKIM keys that sign feedback reports (the daemon's resolver). */
  resolver: Pick<DomainCheckResolver, 'resolveTxt'>;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** How long open sessions may finish their transaction at stop() before they are dropped. */
  shutdownGraceMs?: number;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

export class InboundServer {
  private readonly log: Logger;
  private readonly rejections: Rejections;
  private readonly sessions: SessionRegistry;
  private readonly listeners = new ListenerGroup(() => this.closeAll());
  private readonly inFlight = new Set<Promise<void>>();
  private readonly shutdownGraceMs: number;
  private stopping = false;

  constructor(private readonly deps: InboundServerDeps) {
    const { inbound, smtp } = deps.config;
    this.log = deps.logger.child({ component: 'inbound' });
    this.shutdownGraceMs = deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    // The guards count into the inbound listener's own metrics, apart from submission's.
    this.rejections = new Rejections({ smtpRejections: deps.metrics.inboundRejections }, this.log);
    this.sessions = new SessionRegistry({
      // Nobody is trusted and nobody logs in: every client has the unreserved share, all of it.
      smtp: { maxConnections: inbound.maxConnections, maxConnectionsPerClient: inbound.maxConnectionsPerClient, reservedConnectionShare: 0, sessionTimeout: smtp.sessionTimeout, trustedNetworks: [] },
      log: this.log,
      metrics: { smtpSessions: deps.metrics.inboundSessions, smtpSessionsActive: deps.metrics.inboundSessionsActive },
      rejections: this.rejections,
      isStopping: () => this.stopping,
    });
  }

  start(): Promise<void> {
    return this.listeners.start(() => this.listenAll());
  }

  stop(): Promise<void> {
    return this.listeners.stop();
  }

  /** The bound address of each listener, in config order. */
  addresses(): { host: string; port: number }[] {
    return this.listeners.addresses();
  }

  /** Renewed smtp TLS material, for the handshakes that start from now on (see SubmissionServer.stageTls). */
  updateTls(tls: { key: Buffer | string; cert: Buffer | string }): void {
    createSecureContext(tls);
    this.listeners.updateSecureContext({ key: tls.key, cert: tls.cert });
  }

  private async listenAll(): Promise<void> {
    if (this.deps.config.inbound.listeners.length > 0) await loadReportParser();
    for (const listener of this.deps.config.inbound.listeners) {
      const asSmtp: ListenerConfig = { ...listener, tls: this.deps.tls ? 'starttls' : 'none' };
      const bound = await this.listeners.open(this.createServer(asSmtp), asSmtp);
      this.log.info({ event: 'inbound.listening', host: bound.address, port: bound.port, starttls: asSmtp.tls === 'starttls' }, 'inbound listener ready');
    }
  }

  private createServer(listener: ListenerConfig): GatedSmtpServer {
    const { config, tls, clock } = this.deps;
    const { smtp, inbound } = config;
    // AUTH never; STARTTLS when there is TLS material, and not twice.
    const disabled = (secure: boolean) => (tls && !secure ? ['AUTH'] : ['AUTH', 'STARTTLS']);
    const handlers = inboundSessionHandlers({
      settings: () => {
        const current = this.deps.current().config;
        return {
          addressing: { returnPath: current.returnPath, fblAddresses: current.inbound.fblAddresses, unsubscribe: this.deps.unsubscribe },
          maxRecipients: current.inbound.maxRecipients,
          processingTimeoutMs: current.inbound.processingTimeout,
        };
      },
      sessions: this.sessions,
      rejections: this.rejections,
      buffers: this.deps.buffers,
      maxMessageBytes: inbound.maxMessageBytes,
      dataGraceMs: smtp.commandTimeout,
      minDataRate: smtp.minDataRate,
      log: this.log,
      take: (message) =>
        takeInboundMessage(
          {
            store: this.deps.store,
            recorder: this.deps.recorder,
            bounceRules: () => this.deps.current().bounceRules,
            returnPath: (): ReturnPathConfig => this.deps.current().config.returnPath,
            unsubscribe: this.deps.unsubscribe,
            limits: { ...DEFAULT_REPORT_LIMITS, maxBytes: inbound.maxMessageBytes },
            metrics: this.deps.metrics,
            clock,
            resolver: this.deps.resolver,
            fblReporters: () => this.deps.current().config.inbound.fblReporters,
            fblAddresses: () => this.deps.current().config.inbound.fblAddresses,
          },
          message,
        ),
      track: (work) => {
        const settled = work.catch(() => undefined);
        this.inFlight.add(settled);
        void settled.finally(() => this.inFlight.delete(settled));
      },
    });
    const options: SMTPServerOptions = {
      name: config.hostname,
      secure: false,
      key: tls?.key,
      cert: tls?.cert,
      disabledCommands: disabled(false),
      authOptional: true,
      size: inbound.maxMessageBytes,
      maxCommandLength: Math.max(HARD_LINE_LIMIT_MIN, 4 * smtp.maxCommandBytes),
      socketTimeout: smtp.idleTimeout,
      closeTimeout: this.shutdownGraceMs,
      hideENHANCEDSTATUSCODES: false,
      hideSMTPUTF8: true,
      hideDSN: true,
      logger: false,
      ...(this.deps.reverseLookup ? { resolver: resolverFor(this.deps.reverseLookup) } : {}),
      onConnect: (session, callback) => {
        session.disabledCommands = disabled(session.secure);
        this.sessions.open(server, listener, session, callback);
      },
      onSecure: (_socket, session, callback) => {
        session.disabledCommands = disabled(true);
        callback();
      },
      ...handlers,
      onClose: (session) => this.sessions.close(session.id),
    };
    // The gate asks the lockout about AUTH only, which is never available here. Reports are taken
    // while disk space is low: each is a row or two, kept in the room left for mail already taken.
    const lockout = new AuthLockout({ max: 1, windowMs: 1, clock });
    const guard = sessionGuard(
      { maxCommandBytes: smtp.maxCommandBytes, lockout, sessions: this.sessions, rejections: this.rejections, buffers: this.deps.buffers, storageLow: () => false, isStopping: () => this.stopping, smtpUtf8: false },
      'never',
    );
    const server: GatedSmtpServer = new GatedSmtpServer(options, guard, { greetingDelayMs: listener.greetingDelay, commandTimeoutMs: smtp.commandTimeout });
    server.on('error', (err: Error & { code?: string }) => {
      // Mostly clients that vanish or fail the TLS handshake; nothing the operator must act on.
      this.log.info({ event: 'inbound.connection.error', err: err.message, code: err.code }, 'inbound connection error');
    });
    return server;
  }

  private async closeAll(): Promise<void> {
    this.stopping = true;
    await this.listeners.close();
    this.sessions.closeAll();
    // Messages whose sender was told to retry (451 after processingTimeout) may still be recording.
    await Promise.all(this.inFlight);
    if (this.listeners.size > 0) this.log.info({ event: 'inbound.stopped' }, 'inbound listener stopped');
  }
}
