import type { Clock } from '../../clock.ts';
import type { Logger } from '../../observability/logger.ts';
import type { TlsReportStore, TlsReportPolicy, TlsSessionCount } from '../../storage/tls-reports.ts';
import { utcDay } from './tls-rpt-report.ts';

/**
 * Counts outbound TLS sessions for TLS-RPT (RFC 8460): in memory per UTC day, policy, result and
 * (for failures) where, added to the store's counts every flush interval and at stop. A session
 * costs a map update, not a write; a node that dies loses at most one interval of counts, which
 * an aggregate report can bear.
 */

export interface TlsSessionRecord {
  /** The policies (one per recipient domain of the delivery) the session counts for. */
  policies: readonly TlsReportPolicy[];
  result: TlsSessionCount['result'];
  sendingIp: string;
  receivingIp: string;
  receivingMx: string;
}

export interface TlsSessionRecorder {
  record(session: TlsSessionRecord): void;
}

export interface TlsSessionCounterDeps {
  store: Pick<TlsReportStore, 'addTlsSessionCounts'>;
  clock: Clock;
  logger: Logger;
  /** How often counts go to the store (default one minute). */
  flushIntervalMs?: number;
}

/** Counts kept at most while the store cannot take them, so a long outage does not grow memory for ever. */
const MAX_PENDING = 100_000;

export class TlsSessionCounter implements TlsSessionRecorder {
  private pending = new Map<string, TlsSessionCount>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly deps: TlsSessionCounterDeps) {
    this.log = deps.logger.child({ component: 'tls-report' });
  }

  record(session: TlsSessionRecord): void {
    const day = utcDay(this.deps.clock.now());
    for (const policy of session.policies) {
      const key = JSON.stringify([day, policy.domain, policy.type, policy.id, session.result, session.sendingIp, session.receivingIp, session.receivingMx]);
      const count = this.pending.get(key);
      if (count) count.count++;
      else if (this.pending.size < MAX_PENDING) this.pending.set(key, { day, policy, result: session.result, sendingIp: session.sendingIp, receivingIp: session.receivingIp, receivingMx: session.receivingMx, count: 1 });
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.deps.flushIntervalMs ?? 60_000);
    this.timer.unref();
  }

  /** Adds the counts so far to the store; counts the store refused stay for the next flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const taken = this.pending;
      this.pending = new Map();
      try {
        const dropped = await this.deps.store.addTlsSessionCounts([...taken.values()]);
        // Late counts (a flush that waited out a store outage) of a day already reported.
        if (dropped > 0) this.log.warn({ event: 'tlsrpt.count.dropped', counts: dropped }, 'TLS session counts of a day whose report was already made were dropped');
      } catch (err) {
        this.log.warn({ event: 'tlsrpt.count.failed', err, counts: taken.size }, 'TLS session counts could not be stored; kept for the next flush');
        for (const [key, count] of taken) {
          const later = this.pending.get(key);
          if (later) later.count += count.count;
          else if (this.pending.size < MAX_PENDING) this.pending.set(key, count);
        }
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
