import type { Clock } from '../clock.ts';
import type { IpPauses } from '../ippool/contracts.ts';
import { canonicalIp } from '../mail/ip-address.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { QUEUE_SCOPE_KINDS, type PausedScopes, type QueuePause, type QueueScope } from '../storage/queue-control.ts';
import type { Store } from '../storage/store.ts';

/** How often each node re-reads the pauses: another node's pause or resume applies here within this. */
const REFRESH_MS = 5_000;

export interface QueuePausesDeps {
  store: Pick<Store, 'setPause' | 'deletePause' | 'listPauses'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Mail may be claimable again (a pause ended, here or on another node): wakes the scheduler, releases parked mail. */
  onEnded: () => void;
  /** This node made or replaced a pause: its scope's queued mail is parked (PausedMail). */
  onPaused?: (pause: QueuePause) => void;
  refreshMs?: number;
}

/**
 * The operator's pauses (POST /v1/queue/pause, /resume): kept in the store, so they survive a
 * restart and every node sharing it applies them, and read by each node into a copy that its
 * claims (paused domains, pools and tenants: claimFilter) and its egress pool (paused IPs: pauseOf) ask
 * without a round trip. The copy is re-read every few seconds and changed at once by this
 * node's own pauses and resumes. A pause ends on its own at its `until`: the copy stops applying
 * it then, and the next re-read wakes the scheduler for the mail it held. The mail of a paused
 * domain, pool or tenant is parked out of the claims' way and released when a pause ends
 * (PausedMail, told through onPaused and onEnded).
 */
export class QueuePauses implements IpPauses {
  private pauses: readonly QueuePause[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Counts this node's changes, so a re-read that may predate one is not applied over it. */
  private changes = 0;
  private readonly log: Logger;

  constructor(private readonly deps: QueuePausesDeps) {
    this.log = deps.logger.child({ component: 'queue-pauses' });
  }

  /** Reads the pauses, before anything claims or selects (a store that cannot be read fails the start). */
  async load(): Promise<void> {
    this.replace(await this.deps.store.listPauses(this.deps.clock.now()));
  }

  /** Re-reads the pauses every few seconds from now on (with the scheduler: an ended pause wakes it). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.deps.refreshMs ?? REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Pauses a scope, or replaces its pause (a new reason or end); returns the pause it replaced. */
  async pause(pause: QueuePause): Promise<QueuePause | null> {
    const replaced = await this.deps.store.setPause(pause, this.deps.clock.now());
    this.changes++;
    this.replace([...this.pauses.filter((p) => !sameScope(p.scope, pause.scope)), pause]);
    this.log.info({ event: 'queue.paused', ...logFields(pause) }, `paused ${describeQueueScope(pause.scope)}`);
    this.deps.onPaused?.(pause);
    return replaced;
  }

  /** Ends the pause of a scope; returns it, or null when none was in force. */
  async resume(scope: QueueScope, by: string): Promise<QueuePause | null> {
    const ended = await this.deps.store.deletePause(scope, this.deps.clock.now());
    this.changes++;
    this.replace(this.pauses.filter((p) => !sameScope(p.scope, scope)));
    if (ended) {
      this.log.info({ event: 'queue.resumed', ...logFields(ended), resumedBy: by }, `resumed ${describeQueueScope(scope)}`);
      this.deps.onEnded();
    }
    return ended;
  }

  /** The pauses in force, read from the store (what every node applies within seconds); this node's copy is brought up to date with them. */
  async list(): Promise<QueuePause[]> {
    const changes = this.changes;
    const pauses = await this.deps.store.listPauses(this.deps.clock.now());
    if (changes === this.changes) this.update(pauses);
    return pauses;
  }

  /** The pauses in force now, as this node applies them. */
  current(): QueuePause[] {
    return this.inForce(this.deps.clock.now());
  }

  /** The paused domains, pools and tenants a claim leaves alone now. */
  claimFilter(): PausedScopes {
    const domains: string[] = [];
    const pools: string[] = [];
    const tenants: string[] = [];
    for (const { scope } of this.current()) {
      if (scope.kind === 'domain') domains.push(scope.domain);
      else if (scope.kind === 'pool') pools.push(scope.pool);
      else if (scope.kind === 'tenant') tenants.push(scope.tenant);
    }
    return { domains, pools, tenants };
  }

  pauseOf(ip: string, now: number): { until: number | null } | undefined {
    if (!this.pauses.some((p) => p.scope.kind === 'egress-ip')) return undefined;
    const wanted = canonicalIp(ip);
    return this.inForce(now).find((p) => p.scope.kind === 'egress-ip' && p.scope.ip === wanted);
  }

  /** Re-reads the pauses; a failure is logged and the copy kept (pauses that end still end). */
  private async refresh(): Promise<void> {
    try {
      await this.list();
    } catch (err) {
      this.log.error({ event: 'queue.pauses.refresh.failed', err }, 'reading the queue pauses failed; keeping the last ones read');
    }
  }

  /** Takes a fresh reading; wakes the scheduler when a pause this node applied has ended (resumed elsewhere, or run out). */
  private update(pauses: readonly QueuePause[]): void {
    const now = this.deps.clock.now();
    const ended = this.pauses.filter((p) => !pauses.some((q) => sameScope(p.scope, q.scope)) || !inForce(p, now));
    this.replace(pauses);
    if (ended.length > 0) {
      this.log.info({ event: 'queue.pauses.ended', scopes: ended.map((p) => describeQueueScope(p.scope)) }, 'queue pauses ended');
      this.deps.onEnded();
    }
  }

  private replace(pauses: readonly QueuePause[]): void {
    const now = this.deps.clock.now();
    this.pauses = pauses.filter((p) => inForce(p, now));
    for (const kind of QUEUE_SCOPE_KINDS) this.deps.metrics.queuePauses.set({ scope: kind }, this.pauses.filter((p) => p.scope.kind === kind).length);
  }

  private inForce(now: number): QueuePause[] {
    return this.pauses.filter((p) => inForce(p, now));
  }
}

function inForce(pause: QueuePause, now: number): boolean {
  return pause.until === null || pause.until > now;
}

export function sameScope(a: QueueScope, b: QueueScope): boolean {
  return describeQueueScope(a) === describeQueueScope(b);
}

/** A scope in logs, the audit trail and messages: "domain gmail.com", "pool bulk", "tenant acme", "egress IP 192.0.2.7". */
export function describeQueueScope(scope: QueueScope): string {
  switch (scope.kind) {
    case 'domain':
      return `domain ${scope.domain}`;
    case 'pool':
      return `pool ${scope.pool}`;
    case 'tenant':
      return `tenant ${scope.tenant}`;
    case 'egress-ip':
      return `egress IP ${scope.ip}`;
  }
}

function logFields(pause: QueuePause) {
  return { scope: describeQueueScope(pause.scope), by: pause.by, reason: pause.reason, until: pause.until === null ? null : new Date(pause.until).toISOString() };
}
