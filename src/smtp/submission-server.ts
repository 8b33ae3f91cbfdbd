import { createSecureContext } from 'node:tls';
import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Accepted, Submission } from '../engine/queue.ts';
import type { SuppressionCheck } from '../engine/suppression-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { AuthLockout } from './auth-lockout.ts';
import { BufferBudget } from '../engine/buffer-budget.ts';
import type { StorageSpace } from '../engine/storage-space.ts';
import { sessionGuard } from './command-gate.ts';
import { CredentialChecks } from './credential-checks.ts';
import { dataAcceptance } from './data-acceptance.ts';
import type { TenantLookup } from '../access/tenants.ts';
import { envelopeChecks } from './envelope-checks.ts';
import { Rejections } from './rejections.ts';
import { SessionRegistry } from './session-registry.ts';
import { authHandler } from './submission-auth.ts';
import { createListener, type ReverseLookup, type SessionHandlers } from './submission-listener.ts';
import { ListenerGroup } from './listener-group.ts';
import { UserDirectory, type SmtpUser } from './user-directory.ts';

/**
 * SMTP submission: one smtp-server per configured listener, all sharing the open sessions (and
 * their limits), the AUTH lockout and the session handlers. This file wires those parts and owns
 * start and stop; each part is in its own file (submission-listener, session-registry,
 * command-gate, submission-auth, envelope-checks, data-acceptance).
 */

export interface SubmissionServerDeps {
  /** The whole (frozen) config; config.smtp and config.hostname are used. */
  config: Config;
  /** config.smtp.users as the resolution checked them (src/resolved-config.ts). */
  users: readonly SmtpUser[];
  /** The tenants in effect (config.tenants; the daemon's lookup follows reloads). */
  tenants: TenantLookup;
  queue: { submit(submission: Submission): Promise<Accepted> };
  /** The suppression list, asked at RCPT under the reject action. */
  suppressions: Pick<SuppressionCheck, 'action' | 'isSuppressed'>;
  /** Key and certificate; needed only when a listener uses TLS (starttls or implicit). */
  tls: { key: Buffer | string; cert: Buffer | string } | null;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** How long open sessions may finish their transaction at stop() before they are dropped. */
  shutdownGraceMs?: number;
  /** The memory of messages being received, shared with the HTTP API's sends; made from smtp.maxBufferedBytes when not given. */
  buffers?: BufferBudget;
  /** The disk space beside the queue: MAIL FROM is refused (452 4.3.1) while it is low. Never low when not given. */
  space?: Pick<StorageSpace, 'low'>;
  /** Reverse lookups of client addresses (for Received and logs); node's resolver when not given. */
  reverseLookup?: ReverseLookup;
}

export interface SubmissionServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The bound address of each listener, in config order (real ports when config says 0). */
  addresses(): { host: string; port: number }[];
  /**
   * The user directory of a reloaded configuration's users (smtp.users), made from the one in
   * effect so that it knows the open sessions' logins: hand it to replaceUsers.
   */
  prepareUsers(users: readonly SmtpUser[]): Promise<UserDirectory>;
  /**
   * Takes a reloaded configuration's users (smtp.users) from the next command on: a new user can
   * log in, and a session logged in as a user that is gone, or whose password changed, sends
   * nothing more.
   */
  replaceUsers(users: UserDirectory): void;
  /**
   * Readies a renewed key and certificate (smtp.tls read again) and returns the commit that
   * hands them to every listener for the TLS handshakes that start after it; sessions already
   * encrypted keep theirs. Throws, changing nothing, for a pair no TLS context can be made of.
   */
  stageTls(tls: { key: Buffer | string; cert: Buffer | string }): () => void;
}

export function createSubmissionServer(deps: SubmissionServerDeps): SubmissionServer {
  return new SmtpSubmissionServer(deps);
}

const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

class SmtpSubmissionServer implements SubmissionServer {
  private readonly log: Logger;
  private readonly rejections: Rejections;
  private readonly lockout: AuthLockout;
  private readonly checks = new CredentialChecks();
  private readonly sessions: SessionRegistry;
  private readonly buffers: BufferBudget;
  private readonly listeners = new ListenerGroup(() => this.closeAll());
  private readonly shutdownGraceMs: number;
  /** Made from deps.users at start; replaced whole by replaceUsers. */
  private users: UserDirectory | null = null;
  private stopping = false;

  constructor(private readonly deps: SubmissionServerDeps) {
    const smtp = deps.config.smtp;
    this.log = deps.logger.child({ component: 'smtp' });
    this.shutdownGraceMs = deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    this.rejections = new Rejections(deps.metrics, this.log);
    this.lockout = new AuthLockout({ max: smtp.authFailures.max, windowMs: smtp.authFailures.window, clock: deps.clock });
    this.buffers = deps.buffers ?? new BufferBudget(smtp.maxBufferedBytes);
    this.sessions = new SessionRegistry({
      smtp,
      log: this.log,
      metrics: deps.metrics,
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

  addresses(): { host: string; port: number }[] {
    return this.listeners.addresses();
  }

  prepareUsers(users: readonly SmtpUser[]): Promise<UserDirectory> {
    return UserDirectory.create(users, this.users ?? undefined);
  }

  replaceUsers(users: UserDirectory): void {
    this.users = users;
  }

  stageTls(tls: { key: Buffer | string; cert: Buffer | string }): () => void {
    const material = { key: tls.key, cert: tls.cert };
    // Made once here so that a failure refuses the reload: updateSecureContext replaces the
    // server's contexts before it makes the new one, and one that failed would leave none.
    createSecureContext(material);
    return () => this.listeners.updateSecureContext(material);
  }

  private async listenAll(): Promise<void> {
    this.users = await UserDirectory.create(this.deps.users);
    const handlers = this.sessionHandlers(() => this.users!);
    for (const listener of this.deps.config.smtp.listeners) {
      const server = createListener(listener, {
        config: this.deps.config,
        tls: this.deps.tls,
        shutdownGraceMs: this.shutdownGraceMs,
        log: this.log,
        handlers,
        reverseLookup: this.deps.reverseLookup,
      });
      const bound = await this.listeners.open(server, listener);
      this.log.info({ event: 'smtp.listening', host: bound.address, port: bound.port, tls: listener.tls }, 'SMTP listener ready');
    }
  }

  private sessionHandlers(users: () => UserDirectory): SessionHandlers {
    const { config, queue, clock } = this.deps;
    const { sessions, rejections, lockout, checks, buffers, log } = this;
    const isStopping = () => this.stopping;
    const storageLow = () => this.deps.space?.low === true;
    return {
      onConnect: (server, listener, session, callback) => sessions.open(server, listener, session, callback),
      onClose: (session) => sessions.close(session.id),
      guard: (offer) => sessionGuard({ maxCommandBytes: config.smtp.maxCommandBytes, lockout, sessions, rejections, buffers, storageLow, isStopping, smtpUtf8: true }, offer),
      onAuth: authHandler({ users, lockout, checks, sessions, rejections }),
      ...envelopeChecks({ users, tenants: this.deps.tenants, sessions, rejections, maxRecipients: config.smtp.maxRecipients, suppressions: this.deps.suppressions, log, metrics: this.deps.metrics }),
      onData: dataAcceptance({
        queue,
        users,
        sessions,
        rejections,
        clock,
        log,
        maxMessageBytes: config.smtp.maxMessageBytes,
        buffers,
        dataGraceMs: config.smtp.commandTimeout,
        minDataRate: config.smtp.minDataRate,
        hostname: config.hostname,
      }),
    };
  }

  private async closeAll(): Promise<void> {
    this.stopping = true;
    const open = this.sessions.size;
    if (open) this.log.info({ event: 'smtp.stopping', sessions: open, graceMs: this.shutdownGraceMs }, 'SMTP stopping, waiting for open sessions');
    await this.listeners.close();
    // Every socket is closed now; smtp-server reports the last closes a tick later, so settle them here.
    this.sessions.closeAll();
    this.log.info({ event: 'smtp.stopped' }, 'SMTP stopped');
  }
}
