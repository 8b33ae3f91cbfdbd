import type { Logger } from '../observability/logger.ts';
import type { Store } from '../storage/store.ts';

/**
 * The free space where the queue is kept (SQLite's filesystem), read every few seconds. Below
 * `minFreeBytes` (readiness's margin, minFreeBytesFor) new mail is refused before its data is
 * sent: 452 4.3.1 at MAIL FROM, 503 from the send routes, as Postfix refuses MAIL FROM under one
 * and a half times its largest message. The room left is for the mail already taken: recording its
 * deliveries, its DSNs, and the purge that frees space, which needs room in the WAL to delete.
 * A store on a server (PostgreSQL) has no local space to watch and is never low.
 *
 * Once low, mail is taken again only when a quarter more than the margin is free: space hovering
 * at the margin (a purge freeing a little, new deliveries' records taking it) would otherwise turn
 * refusal on and off every few seconds, each turn logged and seen by clients as 452 then 250.
 */

const INTERVAL_MS = 5_000;

export interface StorageSpaceDeps {
  store: Pick<Store, 'freeBytes'>;
  minFreeBytes: number;
  logger: Logger;
  intervalMs?: number;
}

export class StorageSpace {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private isLow = false;
  /** No reading has been taken yet: the first one asks for the resume point. */
  private unread = true;
  /** A reading in progress: a statfs stuck on a hung mount holds a libuv thread, so no second one starts beside it. */
  private reading: Promise<void> | null = null;

  constructor(private readonly deps: StorageSpaceDeps) {
    this.log = deps.logger.child({ component: 'storage' });
  }

  /** True from a reading under minFreeBytes until one of resumeBytes or more: no new mail is taken. */
  get low(): boolean {
    return this.isLow;
  }

  /** The free space at which mail is taken again after being low. */
  get resumeBytes(): number {
    return this.deps.minFreeBytes + Math.ceil(this.deps.minFreeBytes / 4);
  }

  /** For /readyz: throws while low, so a load balancer moves clients for as long as the doors refuse them. */
  check(): void {
    if (this.isLow) throw new Error(`disk space low: new mail refused until ${this.resumeBytes} bytes are free beside the queue`);
  }

  /** Reads the space once, then every few seconds until stop(). */
  async start(): Promise<void> {
    if (this.timer) return;
    await this.read();
    this.timer = setInterval(() => void (this.reading ?? this.read()), this.deps.intervalMs ?? INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private read(): Promise<void> {
    this.reading = this.update().finally(() => (this.reading = null));
    return this.reading;
  }

  private async update(): Promise<void> {
    // A reading that fails (the store closing) keeps the last one: the commit itself still refuses what does not fit.
    const free = await this.deps.store.freeBytes().catch(() => undefined);
    if (free === undefined) return;
    // The first reading, at start, asks for the resume point too: a restart is not a way out of being low.
    const low = free !== null && free < (this.isLow || this.unread ? this.resumeBytes : this.deps.minFreeBytes);
    this.unread = false;
    if (low === this.isLow) return;
    this.isLow = low;
    if (low) this.log.warn({ event: 'storage.space.low', freeBytes: free, minFreeBytes: this.deps.minFreeBytes, resumeBytes: this.resumeBytes }, 'little disk space left beside the queue: new mail is refused until there is more');
    else this.log.info({ event: 'storage.space.ok', freeBytes: free }, 'disk space is back: new mail is taken again');
  }
}
