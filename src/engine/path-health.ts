import type { Clock } from '../clock.ts';
import { pathKey, type EgressPath, type PathKey } from '../ippool/egress-path.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { NextHop } from './routing.ts';

/**
 * Which egress paths (egress IP -> destination site) cannot reach their site now. A path whose
 * connections failed on every next hop (refused, timed out, a 421 or refusing greeting) is down
 * until a probe connection gets through: the first probe after `intervalMs`, each failed one
 * doubling the wait up to `maxIntervalMs` (Postfix's dead destinations, KumoMTA's suspended ready
 * queues). Nothing is attempted on a down path meanwhile: the pool passes it over for another IP
 * (ReadyQueues.takeMessages), and a site no IP can reach is held as a whole (DeadSites).
 */

/** One down path: what failed, and what its probe needs. */
export interface DownPath {
  readonly path: EgressPath;
  /** The failure that took it down, or the last probe's. */
  outcome: DeliveryOutcome;
  /** The site's next hops and the EHLO name, as the last failed delivery used them. */
  hops: NextHop[];
  hostname: string;
  readonly since: number;
  /** When the next probe is due. */
  probeAt: number;
  /** The wait after the next failed probe. */
  intervalMs: number;
  probesFailed: number;
  /** A probe is under way. */
  probing: boolean;
  /** A delivery asked for the path since its last probe (see retryAt); one nobody asks for is not probed again. */
  wanted: boolean;
}

export interface PathHealthOptions {
  clock: Clock;
  intervalMs: number;
  maxIntervalMs: number;
}

type Failure = Pick<DownPath, 'outcome' | 'hops' | 'hostname'>;

/** Told when a path goes down, and of every connection that gets through (with the path's entry when it was down). */
export interface PathHealthListener {
  down(entry: DownPath): void;
  connected(path: EgressPath, wasDown: DownPath | undefined): void;
}

/**
 * The failures that say a site cannot be reached from a path: its connection or its greeting
 * failed (an egress address the host lacks is the pool's matter, not the site's).
 */
export function unreachable(outcome: DeliveryOutcome): boolean {
  return (outcome.stage === 'connect' || outcome.stage === 'greeting') && outcome.bounceClass !== 'egress-unavailable';
}

export class PathHealth {
  private readonly down = new Map<PathKey, DownPath>();
  private readonly listeners = new Set<PathHealthListener>();

  constructor(private readonly options: PathHealthOptions) {}

  /** Returns an unsubscribe function. */
  subscribe(listener: PathHealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A delivery found every hop of the path unreachable: the path is down (a path already down keeps its probe time). */
  failed(path: EgressPath, failure: Failure): void {
    const entry = this.down.get(pathKey(path));
    if (entry) {
      Object.assign(entry, failure);
      return;
    }
    const { clock, intervalMs, maxIntervalMs } = this.options;
    const now = clock.now();
    const made: DownPath = { path, ...failure, since: now, probeAt: now + intervalMs, intervalMs: Math.min(intervalMs * 2, maxIntervalMs), probesFailed: 0, probing: false, wanted: false };
    this.down.set(pathKey(path), made);
    for (const listener of this.listeners) listener.down(made);
  }

  /** A probe of a down path failed: the next one waits twice as long as this one did, up to the maximum. */
  probeFailed(entry: DownPath, failure: Failure): void {
    Object.assign(entry, failure);
    entry.probeAt = this.options.clock.now() + entry.intervalMs;
    entry.intervalMs = Math.min(entry.intervalMs * 2, this.options.maxIntervalMs);
    entry.probesFailed++;
  }

  /** A connection on the path got through: it is up. */
  connected(path: EgressPath): void {
    const key = pathKey(path);
    const entry = this.down.get(key);
    if (entry) this.down.delete(key);
    for (const listener of this.listeners) listener.connected(path, entry);
  }

  /** The path's entry while it is down. */
  get(path: EgressPath): DownPath | undefined {
    return this.down.get(pathKey(path));
  }

  /**
   * When a delivery on the path may be tried again if it is down: its probe time, or, while the
   * probe is due or under way, one interval from now (the probe's success makes it sooner).
   */
  retryAt(path: EgressPath, now: number): number | null {
    const entry = this.down.get(pathKey(path));
    if (!entry) return null;
    entry.wanted = true;
    return downUntil(entry, now);
  }

  /** The down paths to `site`. */
  ofSite(site: string): DownPath[] {
    return [...this.down.values()].filter((entry) => entry.path.site === site);
  }

  /** Down paths whose probe is due at `now` and not under way. */
  dueProbes(now: number): DownPath[] {
    return [...this.down.values()].filter((entry) => !entry.probing && entry.probeAt <= now);
  }

  /** The earliest probe time of the paths not being probed, or null. */
  nextProbeAt(): number | null {
    let next: number | null = null;
    for (const entry of this.down.values()) if (!entry.probing && (next === null || entry.probeAt < next)) next = entry.probeAt;
    return next;
  }

  /** Forgets a down path without telling anyone (nothing waits for it any more). */
  forget(path: EgressPath): void {
    this.down.delete(pathKey(path));
  }

  get size(): number {
    return this.down.size;
  }
}

/** When a delivery on a down path may be tried again (see PathHealth.retryAt); read without marking the path wanted. */
export function downUntil(entry: Pick<DownPath, 'probeAt' | 'intervalMs'>, now: number): number {
  return entry.probeAt > now ? entry.probeAt : now + entry.intervalMs;
}
