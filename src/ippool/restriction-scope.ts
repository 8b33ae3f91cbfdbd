import type { ProviderName } from './contracts.ts';
import type { EgressPath } from './egress-path.ts';
import { FALLBACK_PROVIDER } from './providers.ts';

/**
 * Where a restriction of an egress IP applies (a throttle, a suspension, the ramp back after it,
 * and the counting of a rule's trigger): every destination, one provider, or one site.
 *
 * A named provider (gmail, outlook, ...) judges an IP across every domain it hosts, so a reaction
 * to its reply concerns the whole provider. The fallback provider is no such judge: it is every
 * site no group names, each a server of its own with limits of its own. A reaction to a reply
 * from one of them therefore restricts the IP toward that site only; restricting all of the
 * fallback provider would take the IP away from thousands of sites that never complained.
 * `suspend-ip` (and an address the host lacks) still restricts the IP everywhere.
 */
export type Scope =
  | { readonly kind: 'all' }
  | { readonly kind: 'provider'; readonly provider: ProviderName }
  | { readonly kind: 'site'; readonly provider: ProviderName; readonly site: string };

/** What logs, metrics and the persisted keys call the scope of every provider. */
export const ALL_PROVIDERS_LABEL = '*';

/** The scope of a restriction that applies to every provider. */
export const ALL_PROVIDERS: Scope = Object.freeze({ kind: 'all' });

export function providerScope(provider: ProviderName): Scope {
  return { kind: 'provider', provider };
}

export function siteScope(provider: ProviderName, site: string): Scope {
  return { kind: 'site', provider, site };
}

/** The scope a reaction to a reply received on `path` restricts: its provider, or its site when the provider is the fallback. */
export function reactionScope(path: Pick<EgressPath, 'provider' | 'site'>): Scope {
  return path.provider === FALLBACK_PROVIDER ? siteScope(path.provider, path.site) : providerScope(path.provider);
}

/**
 * The scopes whose restrictions bind a delivery on `path`, broadest first: every provider, the
 * path's provider, and for the fallback provider also the path's site. The fallback provider's
 * own scope stays on the list so a restriction written for all of it (by an earlier version,
 * or a node not yet upgraded) is still honoured until it expires.
 */
export function scopesOf(path: Pick<EgressPath, 'provider' | 'site'>): Scope[] {
  const scopes = [ALL_PROVIDERS, providerScope(path.provider)];
  if (path.provider === FALLBACK_PROVIDER) scopes.push(siteScope(path.provider, path.site));
  return scopes;
}

/**
 * The scope's name in logs, metric labels and this process's maps: '*', the provider's name, or
 * `<provider>:<site>` (`other:mx.tiny-isp.example`). Provider names never contain ':', so no
 * two scopes share a label.
 */
export function scopeLabel(scope: Scope): string {
  switch (scope.kind) {
    case 'all':
      return ALL_PROVIDERS_LABEL;
    case 'provider':
      return scope.provider;
    case 'site':
      return `${scope.provider}:${scope.site}`;
  }
}

/**
 * The scope of the bucket that paces the ramp back after a restriction of `restricted` ended,
 * for a delivery to `provider`: the ramp limits what the restriction limited, one site's traffic
 * or else the provider's (after a restriction of every provider, each provider ramps on its own).
 */
export function rampScope(restricted: Scope, provider: ProviderName): Scope {
  return restricted.kind === 'site' ? restricted : providerScope(provider);
}

/** The provider whose shaping a scope's ramp is measured against ('*' for every provider: the default shaping). */
export function scopeProvider(scope: Scope): ProviderName {
  return scope.kind === 'all' ? ALL_PROVIDERS_LABEL : scope.provider;
}

/** A scope in a log message: "every provider", "gmail", "site mx.tiny-isp.example (other)". */
export function describeScope(scope: Scope): string {
  if (scope.kind === 'all') return 'every provider';
  return scope.kind === 'site' ? `site ${scope.site} (${scope.provider})` : scope.provider;
}
