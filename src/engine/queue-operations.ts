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
import { LeaseKeeper } from './lease-keeper.ts';

/** Rows made due per store call: a bulk update, as HeldMail moves them. */
const RETRY_CHUNK = 2_000;
/** Rows cancelled per store call: each message of a chunk is loaded (and, when asked, reported in a signed DSN). */
const CANCEL_CHUNK = 500;
/**
 * Passes of a cancellation over its selection, each from its first row: on PostgreSQL a claim
 * passes over rows another statement holds locked at that moment (a retry's, a hold's), which a
 * later pass finds. The passes end at the first that finds nothing (SQLite: the second).
 */
const CANCEL_PASSES = 3;

export interface QueueOperationsDeps {
  store: Pick<Store, 'retryQueued' | 'claimQueued' | 'lastRecipientId' | 'countDelivering' | 'loadMessage' | 'recordAttempts' | 'release' | 'renewLeases'>;
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

/** One cancellation under way: what it asked, the rows it acts on and what it did so far. */
interface CancelRun {
  selection: QueueSelection;
  outcome: DeliveryOutcome;
  withDsn: boolean;
  /** The highest recipient id when it began: mail made later (its own DSNs first) is not its to cancel. */
  through: number;
  /** Keeps the lease of every row claimed and not recorded yet, however long its DSNs take. */
  leases: LeaseKeeper;
  cancelled: number;
  dsns: number;
}

/**
 * The operator's bulk changes of queued mail (POST /v1/queue/retry, /bounce, DELETE
 * /v1/messages/{id}), each in chunks with pauses between them (bulk-chunks.ts) so other writes
 * go in between. A retry makes the selection's waiting rows due now. A cancellation claims its
 * queued rows (rows in delivery are left to finish and counted; those of a dead node are taken)
 * and records each as bounced with an outcome that says an operator cancelled it, and, when asked,
 * one DSN per message stored with those results in one commit (recordAttempts' follow-ups), as a
 * delivery's bounce is.
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
    const { store, clock, leaseMs } = this.deps;
    const leases = new LeaseKeeper({ store, clock, log: this.log, leaseMs });
    const run: CancelRun = { selection, outcome: cancelledOutcome(request.reason), withDsn: request.dsn, through: await store.lastRecipientId(), leases, cancelled: 0, dsns: 0 };
    leases.start();
    try {
      for (let pass = 0; pass < CANCEL_PASSES && !this.stopping.signal.aborted; pass++) {
        if ((await this.cancelPass(run)) === 0) break;
      }
    } finally {
      await leases.stop();
    }
    const { cancelled, dsns } = run;
    const inDelivery = await store.countDelivering(selection);
    this.deps.metrics.recipientsCancelled.inc(cancelled);
    this.deps.metrics.dsnsGenerated.inc(dsns);
    this.log.info({ event: 'queue.cancelled', selection, by: request.by, reason: request.reason ?? null, recipients: cancelled, dsns, inDelivery }, `cancelled ${cancelled} queued recipients`);
    return { cancelled, dsns, inDelivery };
  }

  /**
   * One pass over the selection, in chunks of ascending recipient id, each after the last row of
   * the one before (so the pass reads each row once), until a chunk comes back short. The rows of
   * a chunk's last message wait for the next chunk, where that message may go on: each message
   * gets one DSN. Returns how many rows the pass claimed.
   */
  private async cancelPass(run: CancelRun): Promise<number> {
    const { store, clock, owner, leaseMs } = this.deps;
    let after = 0;
    let claimed = 0;
    let waiting: ClaimedRecipient[] = [];
    for (;;) {
      const started = performance.now();
      let rows: ClaimedRecipient[];
      try {
        rows = await store.claimQueued(run.selection, { now: clock.now(), limit: CANCEL_CHUNK, owner, leaseMs, after, through: run.through });
      } catch (err) {
        await this.giveBack(run, waiting);
        throw err;
      }
      run.leases.track(rows);
      claimed += rows.length;
      const last = rows.at(-1);
      const more = rows.length === CANCEL_CHUNK && !this.stopping.signal.aborted;
      const chunk = [...waiting, ...rows];
      waiting = more && last ? chunk.filter((row) => row.messageId === last.messageId) : [];
      await this.cancelRows(run, waiting.length ? chunk.filter((row) => row.messageId !== last!.messageId) : chunk, waiting);
      if (!more || !last) return claimed;
      after = last.recipientId;
      await this.chunks(CANCEL_CHUNK).pause(performance.now() - started);
    }
  }

  /** Records `rows` as cancelled; on a failure gives them (and the rows `waiting` for the next chunk) back to the queue. */
  private async cancelRows(run: CancelRun, rows: ClaimedRecipient[], waiting: ClaimedRecipient[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      const recorded = await this.record(rows, run.outcome, run.withDsn);
      run.cancelled += recorded.cancelled;
      run.dsns += recorded.dsns;
      // The DSNs are due now (PostgreSQL's NOTIFY wakes the other nodes; this one is told here).
      if (recorded.dsns > 0) this.deps.onDue();
    } catch (err) {
      await this.giveBack(run, [...rows, ...waiting]);
      throw err;
    } finally {
      run.leases.untrack(rows);
    }
  }

  /**
   * Nothing was recorded: the rows go back to the queue, each due when it was before the claim
   * (a cancelled message scheduled for tomorrow is not sent now).
   */
  private async giveBack(run: CancelRun, rows: ClaimedRecipient[]): Promise<void> {
    run.leases.untrack(rows);
    const byDueAt = new Map<number, ClaimedRecipient[]>();
    for (const row of rows) {
      const group = byDueAt.get(row.dueAt);
      if (group) group.push(row);
      else byDueAt.set(row.dueAt, [row]);
    }
    await Promise.all([...byDueAt].map(([dueAt, group]) => this.deps.store.release(group, dueAt))).catch((err: unknown) =>
      this.log.error({ event: 'queue.cancel.release.failed', err }, 'returning rows to the queue failed; their lease will run out'),
    );
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
