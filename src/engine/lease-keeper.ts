import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { ClaimedRecipient, Store } from '../storage/store.ts';

export interface LeaseKeeperOptions {
  store: Pick<Store, 'renewLeases'>;
  clock: Clock;
  /** The scheduler's logger. */
  log: Logger;
  /** Lease length; leases are renewed every third of it. */
  leaseMs: number;
}

/**
 * Keeps this node's claims alive: every leaseMs/3 it extends the lease of each row whose delivery
 * still runs here, so a claim outlives an attempt of any length while the rows of a node that
 * dies are free again within one lease. A row that another claim took over (its lease ran out
 * while the store was unreachable) is logged and forgotten: its attempt's result will not apply,
 * and a delivery of it still waiting to start leaves it out (holds()).
 */
export class LeaseKeeper {
  /** Rows in flight here by recipient id: the very objects the delivery jobs hold. */
  private readonly held = new Map<number, ClaimedRecipient>();
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;

  constructor(private readonly options: LeaseKeeperOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(this.options.leaseMs / 3)));
    this.timer.unref();
  }

  /** Stops renewing (a renewal under way finishes first); leases still held run out by themselves. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing;
  }

  track(rows: readonly ClaimedRecipient[]): void {
    for (const row of rows) this.held.set(row.recipientId, row);
  }

  /** Whether this node still holds the claim of a row in flight here: false once another claim took it over (seen at a renewal). */
  holds(row: ClaimedRecipient): boolean {
    return this.held.get(row.recipientId) === row;
  }

  untrack(rows: readonly ClaimedRecipient[]): void {
    for (const row of rows) if (this.held.get(row.recipientId) === row) this.held.delete(row.recipientId);
  }

  /**
   * Of freshly claimed rows, returns those to deliver. A row whose delivery still runs here (its
   * lease ran out unrenewed, and this node claimed it again) is not delivered twice: the running
   * delivery takes over the new claim's token, so its result applies under the current lease.
   */
  adopt(rows: readonly ClaimedRecipient[]): ClaimedRecipient[] {
    return rows.filter((row) => {
      const running = this.held.get(row.recipientId);
      if (!running) return true;
      running.token = row.token;
      this.options.log.warn(
        { event: 'scheduler.lease.reclaimed', messageId: row.messageId, recipientId: row.recipientId },
        'claimed a row whose delivery still runs here; the running delivery keeps it',
      );
      return false;
    });
  }

  /** One renewal round; rounds never overlap. */
  renew(): Promise<void> {
    this.renewing ??= this.renewHeld().finally(() => (this.renewing = null));
    return this.renewing;
  }

  private async renewHeld(): Promise<void> {
    const { store, clock, log, leaseMs } = this.options;
    const rows = [...this.held.values()];
    if (rows.length === 0) return;
    // The tokens sent: adopt() may give a row a newer one while the renewal runs.
    const leases = rows.map(({ recipientId, token }) => ({ recipientId, token }));
    try {
      const lost = new Set(await store.renewLeases(leases, clock.now() + leaseMs));
      const gone = rows.filter((row, i) => lost.has(row.recipientId) && this.held.get(row.recipientId) === row && row.token === leases[i]!.token);
      if (gone.length === 0) return;
      this.untrack(gone);
      log.warn(
        { event: 'scheduler.lease.lost', recipients: gone.map((r) => ({ messageId: r.messageId, recipientId: r.recipientId })) },
        'another claim took over rows still being delivered here; those not sent yet will not be, and no result of theirs is recorded',
      );
    } catch (err) {
      log.warn({ event: 'scheduler.lease.renew.failed', recipients: rows.length, err }, 'renewing leases failed; trying again');
    }
  }
}
