import { isIP } from 'node:net';
import { ipLabel } from '../observability/metrics.ts';
import type { ProviderName } from './contracts.ts';
import type { EgressPath } from './egress-path.ts';
import { ALL_PROVIDERS, ALL_PROVIDERS_LABEL, providerScope, siteScope, type Scope } from './restriction-scope.ts';

/**
 * Every key the egress pool keeps in its backend (contracts.ts): pool state entries, rate
 * buckets and usage counters, made here and nowhere else. The strings are the ones earlier
 * versions wrote, so state they persisted (a suspension in Redis or the store) still applies
 * after an upgrade.
 *
 * A scope (restriction-scope.ts) is written as one segment that never contains ':': '*', a
 * provider name (letters, digits, '-' and '_', as before), or `<provider>@<site>` for a site,
 * with '%', ':' and control characters of the site written as %XX. An IP may be IPv6 and so
 * contain ':', which is why a state key splits at its first and its last ':'. A version that
 * knows no site scopes reads `other@mx.example` as a provider nobody sends to, and so ignores it.
 */

export type { Scope } from './restriction-scope.ts';

export type StateKey = string & { readonly __brand: 'StateKey' };
export type BucketKey = string & { readonly __brand: 'BucketKey' };
export type CounterKey = string & { readonly __brand: 'CounterKey' };

/** Characters of a site escaped in a key: '%' (the escape itself), ':' (the separator) and controls (NUL is no text in PostgreSQL). */
const ESCAPED = /[%:\u0000-\u001f\u007f]/g;

function escapeSite(site: string): string {
  return site.replace(ESCAPED, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** The site a segment's escaped form names; null unless it is exactly what escapeSite writes. */
function unescapeSite(escaped: string): string | null {
  const site = escaped.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return site !== '' && escapeSite(site) === escaped ? site : null;
}

/** The key segment of a scope. */
function scopeSegment(scope: Scope): string {
  switch (scope.kind) {
    case 'all':
      return ALL_PROVIDERS_LABEL;
    case 'provider':
      return scope.provider;
    case 'site':
      return `${scope.provider}@${escapeSite(scope.site)}`;
  }
}

/** The scope a key segment names; null for an empty or malformed one. */
function parseScopeSegment(segment: string): Scope | null {
  if (segment === '') return null;
  if (segment === ALL_PROVIDERS_LABEL) return ALL_PROVIDERS;
  const at = segment.indexOf('@');
  if (at < 0) return providerScope(segment);
  const site = unescapeSite(segment.slice(at + 1));
  return at > 0 && site !== null ? siteScope(segment.slice(0, at), site) : null;
}

/** Pool state entries (PoolState): what each key holds is in pool-state-cache.ts. */
export const stateKeys = {
  /** A running suspension or throttle of `ip` for `scope`. */
  restriction: (ip: string, scope: Scope) => `restrict:${ip}:${scopeSegment(scope)}` as StateKey,
  /** The ramp back after a restriction of `ip` for `scope` ended. */
  recovery: (ip: string, scope: Scope) => `recover:${ip}:${scopeSegment(scope)}` as StateKey,
  /** When `ip` last sent (ms), for the idle restart of warm-up plans. */
  lastSent: (ip: string) => `last-sent:${ip}` as StateKey,
  /** The start of `ip`'s restarted warm-up plan (ms). */
  warmupRestart: (ip: string) => `warmup-restart:${ip}` as StateKey,
  /**
   * A suspension of `ip` for `scope` set by an operator (POST /v1/ips/{address}/suspend). A key
   * of its own, apart from the reactions' `restrict:`, so neither overwrites the other and a
   * resume removes only what an operator set. A version that knows no such key ignores it.
   */
  operatorSuspension: (ip: string, scope: Scope) => `operator-suspend:${ip}:${scopeSegment(scope)}` as StateKey,
  /** The weight an operator set for `ip` in place of its configured one (PUT /v1/ips/{address}/weight). */
  weightOverride: (ip: string) => `weight:${ip}` as StateKey,
  /**
   * The warm-up plan an operator (re)started for `ip` in place of its configured one (POST
   * /v1/ips/{address}/warmup). Apart from `warmup-restart:`, which holds a bare time an earlier
   * version reads, so neither version misreads the other's value.
   */
  warmupOverride: (ip: string) => `warmup-plan:${ip}` as StateKey,
  /**
   * What a listing of `ip` on the blocklist named `list` does to it (blocklist-watch.ts): a key
   * per list, so a delisting from one list lifts only its own reaction, and a key apart from the
   * reactions' and the operator's, so it never shortens or ends theirs. List names hold no ':'.
   */
  blocklist: (ip: string, list: string) => `blocklist:${ip}:${list}` as StateKey,
};

export type ParsedStateKey =
  | { kind: 'restriction' | 'recovery' | 'operator-suspension'; ip: string; scope: Scope }
  | { kind: 'blocklist'; ip: string; list: string }
  | { kind: 'last-sent' | 'warmup-restart' | 'weight-override' | 'warmup-override'; ip: string };

const SCOPED_KINDS = { restrict: 'restriction', recover: 'recovery', 'operator-suspend': 'operator-suspension' } as const;
const IP_KINDS = { 'last-sent': 'last-sent', 'warmup-restart': 'warmup-restart', weight: 'weight-override', 'warmup-plan': 'warmup-override' } as const;

/** What a state key names; null for a key that is not one of stateKeys' (or names no IP). */
export function parseStateKey(key: string): ParsedStateKey | null {
  const colon = key.indexOf(':');
  if (colon < 0) return null;
  const prefix = key.slice(0, colon);
  const rest = key.slice(colon + 1);
  if (Object.hasOwn(IP_KINDS, prefix)) return isIP(rest) ? { kind: IP_KINDS[prefix as keyof typeof IP_KINDS], ip: rest } : null;
  const last = rest.lastIndexOf(':');
  if (last < 0) return null;
  const ip = rest.slice(0, last);
  if (prefix === 'blocklist') {
    const list = rest.slice(last + 1);
    return isIP(ip) && list !== '' ? { kind: 'blocklist', ip, list } : null;
  }
  if (!Object.hasOwn(SCOPED_KINDS, prefix)) return null;
  const scope = parseScopeSegment(rest.slice(last + 1));
  if (!isIP(ip) || !scope) return null;
  return { kind: SCOPED_KINDS[prefix as keyof typeof SCOPED_KINDS], ip, scope };
}

/** Token buckets (RateLimiter). */
export const bucketKeys = {
  /** A throttle of `ip` for `scope`. */
  throttle: (ip: string, scope: Scope) => `throttle:${ip}:${scopeSegment(scope)}` as BucketKey,
  /** The reduced rate of `ip` toward `scope` (a provider, or a site) while it comes back from a restriction. */
  recovery: (ip: string, scope: Scope) => `recover:${ip}:${scopeSegment(scope)}` as BucketKey,
  /** Messages on a path (shaping messageRate). */
  messages: (path: EgressPath) => `rate:${ipLabel(path.ip)}:${path.site}` as BucketKey,
  /** New connections on a path (shaping connectionRate). */
  connections: (path: EgressPath) => `connect:${ipLabel(path.ip)}:${path.site}` as BucketKey,
  /** Recipients accepted for a tenant (tenants.<name>.rate); a tenant name never holds ':'. */
  tenant: (tenant: string) => `tenant:${tenant}` as BucketKey,
};

/** Usage counters per window (UsageCounters). */
export const counterKeys = {
  /** Messages from `ip` to `provider` counted against the warm-up cap of the hour or the day. */
  warmup: (ip: string, provider: ProviderName, window: 'hour' | 'day') => `warmup:${ip}:${provider}:${window}` as CounterKey,
  /** Recipients accepted for a tenant on a UTC day (tenants.<name>.dailyQuota). */
  tenantDay: (tenant: string) => `tenant:${tenant}:day` as CounterKey,
};
