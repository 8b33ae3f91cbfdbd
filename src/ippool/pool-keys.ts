import { isIP } from 'node:net';
import { ipLabel } from '../observability/metrics.ts';
import type { ProviderName } from './contracts.ts';
import type { EgressPath } from './egress-path.ts';

/**
 * Every key the egress pool keeps in its backend (contracts.ts): pool state entries, rate
 * buckets and usage counters, made here and nowhere else. The strings are the ones earlier
 * versions wrote, so state they persisted (a suspension in Redis or the store) still applies
 * after an upgrade. An IP may be IPv6 and so contain ':'; a scope (a provider name or '*')
 * never does, which is why a state key splits at its first and its last ':'.
 */

/** The scope of a restriction that applies to every provider. */
export const ALL_PROVIDERS = '*';

/** A provider name, or ALL_PROVIDERS. */
export type Scope = ProviderName;

export type StateKey = string & { readonly __brand: 'StateKey' };
export type BucketKey = string & { readonly __brand: 'BucketKey' };
export type CounterKey = string & { readonly __brand: 'CounterKey' };

/** Pool state entries (PoolState): what each key holds is in pool-state-cache.ts. */
export const stateKeys = {
  /** A running suspension or throttle of `ip` for `scope`. */
  restriction: (ip: string, scope: Scope) => `restrict:${ip}:${scope}` as StateKey,
  /** The ramp back after a restriction of `ip` for `scope` ended. */
  recovery: (ip: string, scope: Scope) => `recover:${ip}:${scope}` as StateKey,
  /** When `ip` last sent (ms), for the idle restart of warm-up plans. */
  lastSent: (ip: string) => `last-sent:${ip}` as StateKey,
  /** The start of `ip`'s restarted warm-up plan (ms). */
  warmupRestart: (ip: string) => `warmup-restart:${ip}` as StateKey,
};

export type ParsedStateKey =
  | { kind: 'restriction' | 'recovery'; ip: string; scope: Scope }
  | { kind: 'last-sent' | 'warmup-restart'; ip: string };

const SCOPED_KINDS = { restrict: 'restriction', recover: 'recovery' } as const;

/** What a state key names; null for a key that is not one of stateKeys' (or names no IP). */
export function parseStateKey(key: string): ParsedStateKey | null {
  const colon = key.indexOf(':');
  if (colon < 0) return null;
  const prefix = key.slice(0, colon);
  const rest = key.slice(colon + 1);
  if (prefix === 'last-sent' || prefix === 'warmup-restart') return isIP(rest) ? { kind: prefix, ip: rest } : null;
  if (prefix !== 'restrict' && prefix !== 'recover') return null;
  const last = rest.lastIndexOf(':');
  const ip = rest.slice(0, last);
  const scope = rest.slice(last + 1);
  if (last < 0 || !isIP(ip) || scope === '') return null;
  return { kind: SCOPED_KINDS[prefix], ip, scope };
}

/** Token buckets (RateLimiter). */
export const bucketKeys = {
  /** A throttle of `ip` for `scope`. */
  throttle: (ip: string, scope: Scope) => `throttle:${ip}:${scope}` as BucketKey,
  /** The reduced rate of `ip` for `provider` while it comes back from a restriction. */
  recovery: (ip: string, provider: ProviderName) => `recover:${ip}:${provider}` as BucketKey,
  /** Messages on a path (shaping messageRate). */
  messages: (path: EgressPath) => `rate:${ipLabel(path.ip)}:${path.site}` as BucketKey,
  /** New connections on a path (shaping connectionRate). */
  connections: (path: EgressPath) => `connect:${ipLabel(path.ip)}:${path.site}` as BucketKey,
};

/** Usage counters per window (UsageCounters). */
export const counterKeys = {
  /** Messages from `ip` to `provider` counted against the warm-up cap of the hour or the day. */
  warmup: (ip: string, provider: ProviderName, window: 'hour' | 'day') => `warmup:${ip}:${provider}:${window}` as CounterKey,
};
