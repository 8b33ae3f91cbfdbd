import { setMaxListeners } from 'node:events';
import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { QueueSelection } from '../storage/queue-control.ts';
import type { ClaimedRecipient, FollowUp, Store } from '../storage/store.ts';
import { inChunks, waitUnlessAborted } from './bulk-chunks.ts';
import { groupByMessage } from './delivery-job.ts';
import { makeDsn, type DsnMakerDeps } from './dsn-maker.ts';

/** Rows made due per store call: a bulk update, as HeldMail moves them. */
const RETRY_CHUNK = 2_000;
/** Rows cancelled per store call: each message of a chunk is loaded (and, when asked, reported in a signed DSN). */
const CANCEL_CHUNK = 500;

export interface QueueOperationsDeps {
  store: Pick<Store, 'retryQueued' | 'claimQueued' | 'countDelivering' | 'loadMessage' | 'recordAttempts' | 'release'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** What the DSNs of cancelled mail are made with, as deliveries make those of bounces. */
  dsn: Pick<DsnMakerDeps, 'hostname' | 'dsn' | 'dkim'>;
  /** This node's claims (config hostname): a cancellation claims the rows it cancels. */
  owner: string;
  leaseMs: number;
  /** Mail was made due now (a retry, or the DSNs of a cancellation): wakes the scheduler. */
  onDue: () => void;
}

/** What a cancellation did. */
export interface Cancelled {
  /** Queued recipients cancelled (now bounced, with an event saying so). */
  cancelled: number;
  /** DSNs queued to the senders. */
  dsns: number;
  /** Recipients of the selection in delivery, left to finish. */
  inDelivery: number;
}

/**
 * The operator's bulk changes of queued mail (POST /v1/queue/retry, /bounce, DELETE
 * /v1/messages/{id}), each in chunks with pauses between them (bulk-chunks.ts) so other writes
 * go in between. A retry makes the selection's queued rows due now. A cancellation claims its
 * queued rows (rows in delivery are left to finish and counted) and records each as bounced with
 * an outcome that says an operator cancelled it, and, when asked, a DSN per message stored with
 * those results in one commit (recordAttempts' follow-ups), as a delivery's bounce is.
 */
export class QueueOperations {
  private readonly log: Logger;
  private readonly dsnDeps: DsnMakerDeps;
  private readonly stopping = new AbortController();

  constructor(private readonly deps: QueueOperationsDeps) {
    this.log = deps.logger.child({ component: 'queue-operations' });
    this.dsnDeps = { ...deps.dsn, metrics: deps.metrics, clock: deps.clock, log: this.log };
    // One listener per pause between chunks: possibly several operations at once.
    setMaxListeners(0, this.stopping.signal);
  }

  /** Operations under way end after their current chunk, answering what they did. */
  stop(): void {
    this.stopping.abort();
  }

  /** Makes the queued rows of `selection` that wait for a later time due now; returns how many. */
  async retry(selection: QueueSelection, by: string): Promise<number> {
    const { store, clock, onDue } = this.deps;
    const moved = await inChunks(async (limit) => {
      const due = await store.retryQueued(selection, clock.now(), limit);
      if (due > 0) onDue();
      return due;
    }, this.chunks(RETRY_CHUNK));
    this.log.info({ event: 'queue.retried', selection, by, recipients: moved }, `made ${moved} queued recipients due now`);
    return moved;
  }

  /** Cancels the queued rows of `selection`: see the class comment. */
  async cancel(selection: QueueSelection, request: { reason?: string; dsn: boolean; by: string }): Promise<Cancelled> {
    const outcome = cancelledOutcome(request.reason);
    let cancelled = 0;
    let dsns = 0;
    await inChunks(async (limit) => {
      const { store, clock, owner, leaseMs } = this.deps;
      const now = clock.now();
      const rows = await store.claimQueued(selection, { now, limit, owner, leaseMs });
      if (rows.length === 0) return 0;
      try {
        const recorded = await this.record(rows, outcome, request.dsn);
        cancelled += recorded.cancelled;
        dsns += recorded.dsns;
        // The DSNs are due now (PostgreSQL's NOTIFY wakes the other nodes; this one is told here).
        if (recorded.dsns > 0) this.deps.onDue();
      } catch (err) {
        // Nothing was recorded: the rows go back to the queue, due now (their earlier time is not kept).
        await store.release(rows, now).catch((releaseErr: unknown) => this.log.error({ event: 'queue.cancel.release.failed', err: releaseErr }, 'returning rows to the queue failed; their lease will run out'));
        throw err;
      }
      return rows.length;
    }, this.chunks(CANCEL_CHUNK));
    const inDelivery = await this.deps.store.countDelivering(selection);
    this.deps.metrics.recipientsCancelled.inc(cancelled);
    this.deps.metrics.dsnsGenerated.inc(dsns);
    this.log.info({ event: 'queue.cancelled', selection, by: request.by, reason: request.reason ?? null, recipients: cancelled, dsns, inDelivery }, `cancelled ${cancelled} queued recipients`);
    return { cancelled, dsns, inDelivery };
  }

  /** Records one chunk's cancellations, each message's with its DSN when asked. */
  private async record(rows: ClaimedRecipient[], outcome: DeliveryOutcome, withDsn: boolean): Promise<{ cancelled: number; dsns: number }> {
    const { store } = this.deps;
    const followUps: FollowUp[] = [];
    if (withDsn) {
      for (const group of groupByMessage(rows)) {
        const message = await store.loadMessage(group[0]!.messageId);
        const dsn = message && (await makeDsn(this.dsnDeps, message, group.map((row) => ({ recipient: row.recipient, outcome }))));
        if (dsn) followUps.push({ message: dsn, reports: group.map((row) => row.recipientId) });
      }
    }
    const results = rows.map((row) => ({ recipientId: row.recipientId, token: row.token, outcome, newState: 'bounced' as const, countsAsAttempt: false }));
    const recorded = new Set(await store.recordAttempts(results, followUps));
    return { cancelled: recorded.size, dsns: followUps.filter((f) => f.reports.every((id) => recorded.has(id))).length };
  }

  private chunks(size: number) {
    const { signal } = this.stopping;
    return { size, pause: (ms: number) => waitUnlessAborted(ms, signal), stopped: () => signal.aborted };
  }
}

/**
 * The outcome of a recipient an operator cancelled: permanent, decided in the queue (no remote
 * was asked), bounce class 'cancelled'. The reason, when given, is the operator's, and reaches the
 * sender in the DSN when one is sent.
 */
export function cancelledOutcome(reason?: string): DeliveryOutcome {
  const response = reason ? `cancelled by an operator: ${reason}` : 'cancelled by an operator';
  return { disposition: 'permanent', code: null, enhanced: '5.0.0', response, stage: 'queue', bounceClass: 'cancelled', remoteHost: null, egressIp: null };
}
