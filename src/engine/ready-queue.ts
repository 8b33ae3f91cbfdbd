import type { Clock } from '../clock.ts';
import type { ProviderName, RateLimiter } from '../ippool/contracts.ts';
import { pathKey, type EgressPath, type PathDown, type PathKey, type PathRates } from '../ippool/egress-path.ts';
import { bucketKeys } from '../ippool/pool-keys.ts';
import type { Shaping } from '../ippool/shaping.ts';
import { peekTokens, takeTokens } from '../ippool/token-buckets.ts';
import { ConnectionSlots, type Lease, type SlotStats } from './connection-slots.ts';
import type { OutboundConnection } from './outbound-connection.ts';
import { downUntil, PathHealth } from './path-health.ts';

/**
 * Ready queues: one per egress path (`source->site`, as KumoMTA names them), holding what is
 * limited per path: its shaping (from the path's provider), its connection slots with the idle
 * connections kept for reuse, the gate on new connections (connection rate) and the message
 * rate the pool asks about while choosing an IP, and whether the path reaches its site at all
 * (PathHealth, which outlives the queues). A queue is made when a path is first used and
 * forgotten once it holds no connection; the rate buckets live in the pool backend, so
 * forgetting a queue loses nothing.
 */

export interface ReadyQueuesOptions {
  /** The limits per (egress IP, destination site) for a provider (PoolPolicy.shaping). */
  shaping: (provider: ProviderName) => Shaping;
  /** The pool backend's rate limiter: in Redis (shared by every node) or in process. */
  limiter: RateLimiter;
  clock: Clock;
  /** How long a connection is kept open for reuse after a transaction. */
  idleConnectionTimeout: number;
  /** delivery.deadSite: the first probe of a path that cannot reach its site, and the longest wait between probes. */
  deadSite: { interval: number; maxInterval: number };
}

export class ReadyQueue {
  readonly key: PathKey;
  private readonly slots: ConnectionSlots<OutboundConnection>;

  constructor(
    readonly path: EgressPath,
    private readonly options: ReadyQueuesOptions,
    onEmpty: () => void,
  ) {
    this.key = pathKey(path);
    this.slots = new ConnectionSlots({ limit: () => this.shaping().maxConnections, idleTimeoutMs: options.idleConnectionTimeout, onEmpty });
  }

  /**
   * The path's limits as the configuration in effect says now: read at each use, so a reload's
   * shaping reaches a path that stays busy (its queue is never made again while it holds a
   * connection).
   */
  private shaping(): Shaping {
    return this.options.shaping(this.path.provider);
  }

  /** The most transactions one connection of this path carries before it is closed. */
  get maxMessagesPerConnection(): number {
    return this.shaping().maxMessagesPerConnection;
  }

  /** Waits for a connection slot of this path, with an idle connection (one `prefer` accepts first) when there is one. */
  acquire(prefer: (connection: OutboundConnection) => boolean): Promise<Lease<OutboundConnection>> {
    return this.slots.acquire(prefer);
  }

  /** Forgets a connection that closed while idle. */
  discard(connection: OutboundConnection): void {
    this.slots.discard(connection);
  }

  /** Resolves when the connection rate allows a new connection on this path. */
  async beforeConnect(): Promise<void> {
    const { limiter, clock } = this.options;
    const key = bucketKeys.connections(this.path);
    for (;;) {
      const taken = await takeTokens(limiter, key, this.shaping().connectionRate, clock.now(), 1);
      if (taken.allowed) return;
      await new Promise((resolve) => setTimeout(resolve, Math.max(taken.retryAfterMs, 1)));
    }
  }

  drain(): void {
    this.slots.drain();
  }

  stats(): SlotStats {
    return this.slots.stats();
  }
}

export class ReadyQueues implements PathRates {
  /** Paths that cannot reach their site now. */
  readonly health: PathHealth;
  private readonly queues = new Map<PathKey, ReadyQueue>();
  private draining = false;

  constructor(private readonly options: ReadyQueuesOptions) {
    const { clock, deadSite } = options;
    this.health = new PathHealth({ clock, intervalMs: deadSite.interval, maxIntervalMs: deadSite.maxInterval });
  }

  /** Waits for a connection slot on `path` (see ReadyQueue.acquire); the queue is made on first use. */
  async acquire(path: EgressPath, prefer: (connection: OutboundConnection) => boolean): Promise<{ queue: ReadyQueue; lease: Lease<OutboundConnection> }> {
    const queue = this.queueOf(path);
    return { queue, lease: await queue.acquire(prefer) };
  }

  /** A down path takes nothing until its probe time: the pool chooses another IP for the site, or waits. */
  async takeMessages(path: EgressPath, count: number, now: number): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const downUntil = this.health.retryAt(path, now);
    if (downUntil !== null) return { allowed: false, retryAfterMs: downUntil - now };
    return takeTokens(this.options.limiter, bucketKeys.messages(path), this.options.shaping(path.provider).messageRate, now, count);
  }

  async peekMessages(path: EgressPath, now: number): Promise<{ allowed: boolean; retryAfterMs: number; down: PathDown | null }> {
    const entry = this.health.get(path);
    if (entry) {
      const retryAt = downUntil(entry, now);
      return { allowed: false, retryAfterMs: retryAt - now, down: { since: entry.since, reason: entry.outcome.response, probeAt: retryAt } };
    }
    const taken = await peekTokens(this.options.limiter, bucketKeys.messages(path), this.options.shaping(path.provider).messageRate, now);
    return { ...taken, down: null };
  }

  /** Closes idle connections; from now on released connections are closed rather than kept. */
  drain(): void {
    this.draining = true;
    for (const queue of this.queues.values()) queue.drain();
  }

  /** The path's queue. Only acquire() asks for one, in the turn it takes a slot: a queue is forgotten when its last connection goes. */
  private queueOf(path: EgressPath): ReadyQueue {
    const key = pathKey(path);
    let queue = this.queues.get(key);
    if (!queue) {
      const made = new ReadyQueue(path, this.options, () => {
        if (this.queues.get(key) === made) this.queues.delete(key);
      });
      if (this.draining) made.drain();
      this.queues.set(key, made);
      queue = made;
    }
    return queue;
  }

  /** Totals over every path, and how many paths have a queue now. */
  stats(): SlotStats & { paths: number } {
    const total = { open: 0, idle: 0, waiting: 0, paths: this.queues.size };
    for (const queue of this.queues.values()) {
      const { open, idle, waiting } = queue.stats();
      total.open += open;
      total.idle += idle;
      total.waiting += waiting;
    }
    return total;
  }
}
