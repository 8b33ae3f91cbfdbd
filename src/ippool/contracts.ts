import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Scope } from './restriction-scope.ts';

/**
 * Contracts between the parts of the egress IP pool. Each has a local implementation (one node,
 * no services: in process or in the local store) and a Redis one (shared by every node), and
 * both pass one test suite.
 */

/** Counts per fixed time window (warm-up usage per day and per hour). */
export interface UsageCounters {
  /**
   * Adds `amount` to `key`'s counter for the window that starts at `windowStart` (ms), but only
   * when the total stays within `limit`; atomic across every node sharing the backend, so two
   * daemons together never exceed a cap. The window's counter is kept for at least `windowMs`.
   */
  reserve(key: string, windowStart: number, windowMs: number, amount: number, limit: number): Promise<{ ok: boolean; total: number }>;
  /** Adds unconditionally (usage that happened anyway, e.g. counted after the fact). */
  add(key: string, windowStart: number, windowMs: number, amount: number): Promise<number>;
  /** Current totals of several windows; 0 for a window never written or expired. */
  get(windows: Array<{ key: string; windowStart: number }>): Promise<number[]>;
}

/** Generic cell rate algorithm (GCRA), a token bucket without a refill timer. */
export interface RateLimiter {
  /**
   * Takes `cost` tokens from `key`'s bucket, which refills at `ratePerSecond` and holds at most
   * `burst` tokens. `allowed: false` takes nothing and says how long until it would be allowed.
   */
  take(key: string, limit: { ratePerSecond: number; burst: number }, now: number, cost?: number): Promise<{ allowed: boolean; retryAfterMs: number }>;
  /**
   * What take would decide for `cost` tokens at `now`, taking nothing: how an explanation of
   * selection (GET /v1/explain) reads a bucket without spending what deliveries need.
   */
  peek(key: string, limit: { ratePerSecond: number; burst: number }, now: number, cost?: number): Promise<{ allowed: boolean; retryAfterMs: number }>;
}

/** Small shared state that must outlive a restart and expire by itself: suspensions, plan restarts. */
export interface PoolState {
  /** Sets `key` to `value` until `expiresAt` (ms epoch; null = never). */
  set(key: string, value: string, expiresAt: number | null): Promise<void>;
  get(key: string): Promise<string | null>;
  delete(key: string): Promise<void>;
  /** Entries whose key starts with `prefix` and that have not expired at `now`. */
  list(prefix: string, now: number): Promise<Array<{ key: string; value: string; expiresAt: number | null }>>;
}

/** Everything the pool keeps outside the process. */
export interface PoolBackend {
  counters: UsageCounters;
  limiter: RateLimiter;
  state: PoolState;
}

/** A destination provider (gmail, outlook, yahoo, ...; 'other' for the rest). */
export type ProviderName = string;

/** Why no egress IP may take a delivery now. */
export type WaitReason = 'no-ip' | 'paused' | 'suspended' | 'throttled' | 'rate' | 'warmup-cap';

/**
 * Egress IPs an operator paused (POST /v1/queue/pause with an egress IP scope; kept in the store
 * by src/engine/queue-pauses.ts): out of selection for every destination while paused.
 */
export interface IpPauses {
  /** When the pause of `ip` in force at `now` ends (null: when resumed), or undefined when it is not paused. */
  pauseOf(ip: string, now: number): { until: number | null } | undefined;
}

/**
 * Whether one IP may take a delivery now: how many of its messages (at least one, perhaps fewer
 * than asked), or why not and when to look again.
 */
export type Verdict = { ok: true; granted: number } | { ok: false; retryAt: number; reason: WaitReason };

/** What a delivery outcome makes the pool do, decided by reaction rules (config/reaction-rules.yaml). */
export type ReactionAction =
  | { kind: 'throttle'; ratePerHour: number }
  | { kind: 'suspend-provider' }
  | { kind: 'suspend-ip' }
  | { kind: 'bounce' }
  /** The reply is not the IP's doing: the IP is left alone, the recipient retried or bounced as its reply says. */
  | { kind: 'none' };

export interface Reaction {
  rule: string;
  action: ReactionAction;
  durationMs: number;
  ip: string;
  provider: ProviderName;
  /** What a throttle or `suspend-provider` restricts: the provider, or for the fallback provider the site that replied. */
  scope: Scope;
  /** The remote reply that triggered it, for operators. */
  reason: string;
}

/** Reputation inputs for one (IP, provider) over the sliding window. */
export interface ReputationSnapshot {
  accepted: number;
  /** Deferrals for rate or reputation reasons (not every 4xx). */
  deferred: number;
  /** Blocklist / policy refusals. */
  blocked: number;
  complaints: number;
  /** 0..1, 1 = clean; null when the window holds too few samples to judge. */
  score: number | null;
}

export interface ReputationFeed {
  record(ip: string, provider: ProviderName, outcome: DeliveryOutcome, now: number): void;
  recordComplaint(ip: string, provider: ProviderName, now: number): void;
  snapshot(ip: string, provider: ProviderName, now: number): ReputationSnapshot;
}
