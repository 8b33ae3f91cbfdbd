import { ipLabel } from '../observability/metrics.ts';
import type { ProviderName } from './contracts.ts';

/**
 * The (egress IP -> destination site) path a delivery takes: the unit that shaping limits,
 * connection slots, rate buckets and per-path metrics are counted on. Domains whose MX set is
 * the same share a site, and so share a path's limits and connections.
 */
export interface EgressPath {
  /** null = the operating system's default source address. */
  readonly ip: string | null;
  /** Destination site (see Route in engine/routing.ts): the MX set, or the static route. */
  readonly site: string;
  /** The site's provider, whose shaping applies. */
  readonly provider: ProviderName;
}

/** A path's identity as one string, `source->site` (as KumoMTA names its ready queues). */
export type PathKey = string & { readonly __brand: 'PathKey' };

export function pathKey(path: EgressPath): PathKey {
  return `${ipLabel(path.ip)}->${path.site}` as PathKey;
}

/** Labels of the per-path metrics, which are counted per egress IP. */
export function pathLabels(path: EgressPath): { egress_ip: string } {
  return { egress_ip: ipLabel(path.ip) };
}

/**
 * Each path's message rate (shaping messageRate), kept by the engine's ready queues: the pool
 * asks it while choosing an IP, so a path whose rate is spent gives way to another IP.
 */
export interface PathRates {
  /** Takes `count` messages from the path's bucket if they may go at `now`; otherwise takes nothing. */
  takeMessages(path: EgressPath, count: number, now: number): Promise<{ allowed: boolean; retryAfterMs: number }>;
  /**
   * What takeMessages would answer for one message at `now`, taking nothing and marking nothing,
   * with the reason a down path refuses (GET /v1/explain).
   */
  peekMessages(path: EgressPath, now: number): Promise<{ allowed: boolean; retryAfterMs: number; down: PathDown | null }>;
}

/** A path that cannot reach its site: since when, the failure that took it down (or its last probe's), and its next probe. */
export interface PathDown {
  since: number;
  reason: string;
  probeAt: number;
}
