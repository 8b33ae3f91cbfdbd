import { setMaxListeners } from 'node:events';
import net from 'node:net';
import type { SMTPError } from '../vendor/nodemailer.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { BounceRule } from './bounce-rules.ts';
import { classifyError } from './classify.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import { pathLabels, type EgressPath } from '../ippool/egress-path.ts';
import type { Egress } from '../ippool/egress.ts';
import { envelopeForServer } from './international-mail.ts';
import { OutboundConnection, type DeliveryTimeouts, type OpenFailure } from './outbound-connection.ts';
import type { ReadyQueue, ReadyQueues } from './ready-queue.ts';
import { unreachable, type DownPath } from './path-health.ts';
import type { NextHop } from './routing.ts';
import { createTlsGate } from './tls/tls-gate.ts';
import { judgeSession, OPPORTUNISTIC, outcomeTls, type TlsRequirement } from './tls/tls-requirement.ts';
import type { TlsSessionRecorder } from './tls/tls-session-counter.ts';
import { claimLost, failureOutcomes, interrupted, localOutcome, moreRelevant, notStarted, pathDown, setupOutcome, shuttingDown, successOutcomes } from './transaction-outcomes.ts';

/**
 * The SMTP client side: runs one mail transaction on a connection of the path's ready queue
 * (an idle one reused, or a new one opened, trying the next hops in order, with opportunistic
 * TLS) and returns one DeliveryOutcome per recipient (made in transaction-outcomes.ts). Never
 * throws for delivery failures, nor when the connection-rate limiter (Redis) fails: that is a
 * wait. It keeps the ready queues' PathHealth: a path whose every hop is unreachable goes down,
 * and opens no new connection until a probe (probe()) gets through.
 */

export interface DeliveryRequest {
  sender: string;
  recipients: string[];
  /** Wire form (CRLF, dot-unstuffed). */
  body: Buffer;
  /** Egress IP -> destination site: whose connections, limits and metrics. */
  path: EgressPath;
  /** The EHLO name of the path's egress IP. */
  hostname: string;
  hops: NextHop[];
  /** What the connections must achieve in TLS (tls-requirement.ts); opportunistic by default. */
  tls?: TlsRequirement;
  /**
   * Whether this node still holds the claim of recipient `i`, asked right before the transaction
   * starts (after the waits for a slot, the connection rate and the connection): a recipient whose
   * claim another node took over meanwhile is left out, its outcome a wait that is not recorded.
   */
  stillClaimed?: (recipient: number) => boolean;
}

export interface DelivererStats {
  /** TCP connections opened since start. */
  connectionsOpened: number;
  /** Connections open now (busy or idle). */
  connectionsOpen: number;
  idle: number;
  /** deliver() calls waiting for a connection slot. */
  waiting: number;
  /** Mail transactions completed (accepted by the server at the final dot). */
  transactions: number;
}

export interface Deliverer {
  deliver(request: DeliveryRequest): Promise<DeliveryOutcome[]>;
  /**
   * Tries to open a connection on a down path (one probe: the hops in order). Success brings the
   * path up and leaves the connection idle for the next delivery; failure is the probe's, and
   * puts the next one further off. Returns whether it got through; `cancel` cuts it short (false).
   */
  probe(down: DownPath, cancel: AbortSignal): Promise<boolean>;
  /**
   * Shutdown ran out of time: cuts every connection at once. Deliveries in progress end with an
   * interrupted outcome (transient; a possible duplicate once the final dot was sent); those
   * waiting for a slot, and later ones, are refused as shutting down.
   */
  abort(): void;
  /** Stops taking work, waits for deliveries in flight, then QUITs every connection. */
  close(): Promise<void>;
  stats(): DelivererStats;
}

export interface DelivererOptions {
  logger: Logger;
  metrics: Metrics;
  timeouts: DeliveryTimeouts;
  /** Connection slots, idle connections and connection rate per path. */
  queues: ReadyQueues;
  /**
   * What the replies of failed deliveries mean (config/bounce-rules.yaml and the operator's): the
   * rules in effect, read once per delivery or probe, so a reload applies from the next one.
   */
  bounceRules: () => readonly BounceRule[];
  /** Roots MX certificates are checked against (tests); the system's by default. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Counts each new session's TLS result for TLS-RPT. */
  tlsSessions?: TlsSessionRecorder;
}

/** What a transaction on one connection produced. */
type TransactionResult =
  | { kind: 'done'; outcomes: DeliveryOutcome[] }
  /** The connection failed (or the server is closing) before any of the message was sent: try elsewhere. */
  | { kind: 'elsewhere'; outcome: DeliveryOutcome };

export function createDeliverer(options: DelivererOptions): Deliverer {
  const { metrics, timeouts, queues, bounceRules } = options;
  const log = options.logger.child({ component: 'deliverer' });
  const live = new Set<OutboundConnection>();
  const gate = createTlsGate({ metrics, sessions: options.tlsSessions });
  const inflight = new Set<Promise<unknown>>();
  const aborting = new AbortController();
  // One listener per connection open or being opened: far more than EventTarget's warning threshold.
  setMaxListeners(0, aborting.signal);
  /** close() or abort() was called: no new deliveries. */
  let stopping = false;
  let closing: Promise<void> | null = null;
  let connectionsOpened = 0;
  let transactions = 0;

  async function open(hop: NextHop, queue: ReadyQueue, egress: Egress, ignoreTLS: boolean, signal: AbortSignal): Promise<OutboundConnection> {
    const gauge = pathLabels(queue.path);
    const connection = await OutboundConnection.open({
      hop,
      egress,
      timeouts,
      ignoreTLS,
      signal,
      ...(options.ca ? { ca: options.ca } : {}),
      onSocketOpen: () => {
        connectionsOpened++;
        metrics.outboundConnections.inc(gauge);
      },
      onSocketClose: () => metrics.outboundConnections.dec(gauge),
    });
    live.add(connection);
    queues.health.connected(queue.path);
    void connection.whenClosed().then(() => live.delete(connection));
    connection.onEnd(() => queue.discard(connection));
    log.debug({ event: 'connection.opened', ip: egress.address, path: queue.key, host: hop.host, port: hop.port, secure: connection.secure }, 'connection opened');
    return connection;
  }

  /**
   * Opens a session on a hop; a failed TLS handshake is retried once in plaintext when the policy
   * allows clear text (opportunistic TLS).
   */
  async function openOnHop(hop: NextHop, queue: ReadyQueue, egress: Egress, signal = aborting.signal, inClear = true): Promise<OutboundConnection | OpenFailure> {
    try {
      return await open(hop, queue, egress, false, signal);
    } catch (failure) {
      const f = failure as OpenFailure;
      if (f.stage !== 'starttls' || signal.aborted || !inClear) return f;
      log.info({ event: 'connection.tls.failed', ip: egress.address, host: hop.host, err: String((f.error as Error)?.message ?? f.error) }, 'TLS handshake failed, retrying in plaintext');
      try {
        return await open(hop, queue, egress, true, signal);
      } catch (retryFailure) {
        return retryFailure as OpenFailure;
      }
    }
  }

  async function deliver(request: DeliveryRequest): Promise<DeliveryOutcome[]> {
    const { path, recipients } = request;
    const egress: Egress = { address: path.ip, hostname: request.hostname };
    const all = (outcome: DeliveryOutcome) => recipients.map(() => outcome);
    const rules = bounceRules();
    const tls = request.tls ?? OPPORTUNISTIC;
    if (recipients.length === 0) return [];
    if (stopping) return all(shuttingDown(egress));
    const reachable = reachableHops(request.hops, egress.address);
    if (reachable.length === 0) return all(noReachableHop(path, egress));
    // An enforced MTA-STS policy names the MX hosts mail may go to; the others are not tried.
    const { hops, refused: noMx } = gate.admitHops(tls, reachable, egress);
    if (noMx) return all(noMx);

    // An idle connection serves this delivery when it reaches one of its hops, greeted with the
    // EHLO name it would give now (a reload may change an IP's hostname) and its TLS meets the policy.
    const reusable = (c: OutboundConnection) =>
      c.egress.hostname === egress.hostname && hops.some((h) => sameHop(h, c.hop)) && judgeSession(tls, c.tlsSession, c.hop.name).refusal === null;
    const { queue, lease } = await queues.acquire(path, reusable);
    if (stopping) {
      // Waited for a slot while shutting down: leave the message for the next start.
      lease.release(lease.connection);
      return all(shuttingDown(egress));
    }
    let current: OutboundConnection | null = lease.connection;
    try {
      if (current && !reusable(current)) {
        void current.close();
        current = null;
      }
      if (current) {
        const result = await transactClaimed(current, request, rules);
        if (result.kind === 'done') {
          if (!keepable(current, queue.maxMessagesPerConnection)) current = null;
          return result.outcomes;
        }
        // A pooled connection the server dropped while idle: the message was not sent, so it
        // goes out on a fresh connection, once.
        log.debug({ event: 'connection.stale', ip: egress.address, host: current.hop.host }, 'pooled connection was closed by the server');
        void current.close();
        current = null;
      }

      // The path went down while this delivery waited for its slot: no connection until its probe.
      const down = queues.health.get(path);
      if (down) return all(pathDown(egress, down));
      let last: DeliveryOutcome | null = null;
      /** The last hop the TLS policy refused: reported rather than a later hop's connection failure. */
      let refused: DeliveryOutcome | null = null;
      /** Some hop answered, or failed for a reason of its own rather than the site's: the path is not down. */
      let reached = false;
      for (const hop of hops) {
        const limited = await queue.beforeConnect().then(() => null, (err: unknown) => err);
        if (limited) return all(notStarted(egress.address, `the connection rate of ${queue.key} could not be checked: ${(limited as Error)?.message ?? String(limited)}`));
        if (aborting.signal.aborted) return all(shuttingDown(egress));
        const opened = await openOnHop(hop, queue, egress, aborting.signal, tls.mode === 'opportunistic');
        if (!(opened instanceof OutboundConnection)) {
          if (aborting.signal.aborted) return all(interrupted(opened.stage, hop.name, egress.address));
          const outcome = gate.handshakeRefused(tls, opened, hop, egress) ?? setupOutcome(opened, hop, egress, rules);
          if (outcome.bounceClass === 'tls-policy') refused = outcome;
          last = moreRelevant(last, outcome);
          reached ||= !unreachable(outcome);
          log.info(hopLog(queue, hop, outcome), 'next hop failed');
          if (isAddressNotAvailable(opened.error)) break;
          continue;
        }
        const tlsRefused = gate.admitSession(tls, opened.tlsSession, hop, egress);
        if (tlsRefused) {
          // Never in clear, nor under a certificate the policy refuses: the next hop may do better.
          void opened.close();
          refused = tlsRefused;
          last = moreRelevant(last, refused);
          reached = true;
          log.info(hopLog(queue, hop, refused), 'next hop failed');
          continue;
        }
        current = opened;
        const result = await transactClaimed(opened, request, rules);
        if (result.kind === 'done') {
          if (!keepable(opened, queue.maxMessagesPerConnection)) current = null;
          return result.outcomes;
        }
        void current.close();
        current = null;
        reached = true;
        last = moreRelevant(last, result.outcome);
        log.info(hopLog(queue, hop, result.outcome), 'next hop failed');
      }
      if (!reached && !aborting.signal.aborted) queues.health.failed(path, { outcome: last!, hops, hostname: request.hostname });
      return all(refused && last!.code === null ? refused : last!);
    } finally {
      lease.release(current);
    }
  }

  /** After a transaction: reusable unless closed or at its message limit. */
  function keepable(connection: OutboundConnection, maxMessages: number): boolean {
    if (!connection.usable) return false;
    if (connection.transactions >= maxMessages) {
      void connection.close();
      return false;
    }
    return true;
  }

  /**
   * Runs the transaction for the recipients whose claim this node still holds (asked now), in the
   * envelope this server can take (international-mail.ts: SMTPUTF8, or A-labels and a 5.6.7
   * bounce for what has no ASCII form); the others are left out with their own outcome.
   */
  async function transactClaimed(connection: OutboundConnection, request: DeliveryRequest, rules: readonly BounceRule[]): Promise<TransactionResult> {
    const lost = claimLost(request.path.ip);
    const envelope = envelopeForServer(request, connection.offersSmtpUtf8, { remoteHost: connection.hop.name, egressIp: request.path.ip });
    const plan = envelope.recipients.map((recipient, i) => ((request.stillClaimed?.(i) ?? true) ? recipient : lost));
    const sending = plan.filter((p): p is string => typeof p === 'string');
    if (sending.length === 0) return { kind: 'done', outcomes: plan as DeliveryOutcome[] };
    const result = await transact(connection, { ...request, sender: envelope.sender, recipients: sending }, rules, envelope.smtpUtf8);
    if (result.kind === 'elsewhere') return result;
    const sent = result.outcomes.values();
    return { kind: 'done', outcomes: plan.map((p) => (typeof p === 'string' ? sent.next().value! : p)) };
  }

  /**
   * Runs the transaction and turns its result into per-recipient outcomes. When the connection
   * failed before any of the message was sent (a pooled connection the server dropped while
   * idle, a 421), the result is 'elsewhere': the caller tries a fresh connection or the next hop.
   */
  async function transact(connection: OutboundConnection, request: DeliveryRequest, rules: readonly BounceRule[], smtpUtf8: boolean): Promise<TransactionResult> {
    const ctx = { remoteHost: connection.hop.name, egressIp: request.path.ip };
    const result = await connection.send(request.sender, request.recipients, request.body, { smtpUtf8 });
    // The session's TLS goes on every outcome of its transaction (GET /v1/messages/{id} shows it).
    const tls = outcomeTls(request.tls ?? OPPORTUNISTIC, connection.tlsSession, null);
    const withTls = (outcomes: DeliveryOutcome[]) => outcomes.map((o) => ({ ...o, tls }));
    if (result.ok) {
      transactions++;
      return { kind: 'done', outcomes: withTls(successOutcomes(result.info, request.recipients, ctx, rules)) };
    }
    const { error } = result;
    if (aborting.signal.aborted && isConnectionError(error)) {
      return { kind: 'done', outcomes: request.recipients.map(() => interrupted(result.stage, ctx.remoteHost, ctx.egressIp)) };
    }
    const closingReply = error.responseCode === 421;
    if (!result.bodyStarted && (closingReply || isConnectionError(error))) {
      return { kind: 'elsewhere', outcome: classifyError(error, { ...ctx, stage: result.stage }, rules) };
    }
    const outcomes = withTls(failureOutcomes(result, request.recipients, ctx, rules));
    // The server refused this message; the session itself is fine after RSET.
    const refused = (error.code === 'EENVELOPE' || error.code === 'EMESSAGE') && !closingReply && connection.usable;
    if (refused && !(await connection.reset())) void connection.close();
    if (!refused) void connection.close();
    return { kind: 'done', outcomes };
  }

  async function probe(down: DownPath, cancel: AbortSignal): Promise<boolean> {
    const { path, hops, hostname } = down;
    const signal = AbortSignal.any([aborting.signal, cancel]);
    const egress: Egress = { address: path.ip, hostname };
    const rules = bounceRules();
    const { queue, lease } = await queues.acquire(path, () => true);
    let kept: OutboundConnection | null = lease.connection;
    try {
      if (stopping) return false;
      if (kept?.usable) {
        // An idle connection on the path: it is up.
        queues.health.connected(path);
        return true;
      }
      if (kept) void kept.close();
      kept = null;
      let last: DeliveryOutcome | null = null;
      for (const hop of reachableHops(hops, path.ip)) {
        await queue.beforeConnect();
        if (signal.aborted) return false;
        const opened = await openOnHop(hop, queue, egress, signal);
        if (opened instanceof OutboundConnection) {
          kept = opened;
          return true;
        }
        last = moreRelevant(last, setupOutcome(opened, hop, egress, rules));
      }
      last ??= noReachableHop(path, egress);
      if (!signal.aborted) queues.health.probeFailed(down, { outcome: last, hops, hostname });
      return false;
    } finally {
      lease.release(kept);
    }
  }

  /** Counts work in flight, so close() can wait for it. */
  function tracked<T>(running: Promise<T>): Promise<T> {
    inflight.add(running);
    void running.finally(() => inflight.delete(running)).catch(() => {});
    return running;
  }

  return {
    deliver: (request) => tracked(deliver(request)),
    probe: (down, cancel) => tracked(probe(down, cancel)),
    abort() {
      stopping = true;
      queues.drain();
      aborting.abort(new Error('delivery interrupted by shutdown'));
    },
    close() {
      stopping = true;
      closing ??= (async () => {
        queues.drain();
        while (inflight.size) await Promise.allSettled([...inflight]);
        await Promise.all([...live].map((c) => c.close()));
      })();
      return closing;
    },
    stats() {
      const { idle, waiting } = queues.stats();
      return { connectionsOpened, connectionsOpen: live.size, idle, waiting, transactions };
    },
  };
}

function noReachableHop(path: EgressPath, egress: Egress): DeliveryOutcome {
  return localOutcome(egress, `no next hop for ${path.site} is reachable from egress address ${egress.address ?? '(default)'}`, '4.4.4', 'connection');
}

function sameHop(a: NextHop, b: NextHop): boolean {
  return a.host === b.host && a.port === b.port;
}

/** Hops whose address family the egress address can reach (a name is left to the resolver). */
function reachableHops(hops: NextHop[], egressAddress: string | null): NextHop[] {
  if (!egressAddress) return hops;
  const family = net.isIP(egressAddress);
  return hops.filter((h) => net.isIP(h.host) === 0 || net.isIP(h.host) === family);
}

/** The connection itself failed (nodemailer's own test for an error that ended the session). */
function isConnectionError(error: SMTPError): boolean {
  return error.code === 'ECONNECTION' || error.code === 'ESOCKET' || error.code === 'ETIMEDOUT';
}

function isAddressNotAvailable(error: unknown): boolean {
  const e = error as { code?: unknown; originalCode?: unknown } | null;
  return e?.code === 'EADDRNOTAVAIL' || e?.originalCode === 'EADDRNOTAVAIL';
}

function hopLog(queue: ReadyQueue, hop: NextHop, outcome: DeliveryOutcome) {
  return {
    event: 'delivery.hop.failed',
    ip: queue.path.ip,
    path: queue.key,
    host: hop.host,
    port: hop.port,
    mx: hop.name,
    stage: outcome.stage,
    code: outcome.code,
    response: outcome.response,
  };
}
