import { isMxPattern } from '../config/pool-schemas.ts';
import type { ProviderName } from './contracts.ts';

/**
 * Destination providers: groups of MX host patterns (config/providers.yaml). Warm-up caps and
 * shaping apply per provider, because a provider judges an IP across all the domains it hosts:
 * a Google Workspace domain and gmail.com share one reputation for the sending IP.
 */

/** The group every MX host that no other group matches belongs to. */
export const FALLBACK_PROVIDER: ProviderName = 'other';

export interface ProviderGroup {
  name: ProviderName;
  mx: readonly string[];
  warmupScale: number;
}

export interface ProviderCatalogOptions {
  /** Most sites whose provider is remembered; selection asks for every recipient. */
  cacheMaxEntries?: number;
}

/**
 * The provider groups in match order, with the lookups selection needs. Only `groups` is public
 * state, so two catalogs of the same groups compare equal (see src/resolved-config.ts).
 */
export class ProviderCatalog {
  /** Groups in match order; the fallback `other` is last. */
  readonly groups: readonly ProviderGroup[];
  readonly #matchers: ReadonlyArray<{ name: ProviderName; regex: RegExp }>;
  readonly #scales: ReadonlyMap<ProviderName, number>;
  readonly #maxEntries: number;
  /** Sites are few (one per MX set) and selection asks per recipient: remember the answers. */
  readonly #cache = new Map<string, ProviderName>();

  /**
   * `groups` are in match order and must include `other`, with no patterns, which matches
   * whatever no other group does.
   */
  constructor(groups: readonly ProviderGroup[], options: ProviderCatalogOptions = {}) {
    const names = new Set<string>();
    for (const group of groups) {
      if (names.has(group.name)) throw new Error(`provider "${group.name}" is defined twice`);
      names.add(group.name);
      if (!(group.warmupScale > 0)) throw new Error(`provider "${group.name}": warmupScale must be above 0`);
      const bad = group.mx.find((p) => !isMxPattern(p));
      if (bad !== undefined) throw new Error(`provider "${group.name}": not an MX host pattern: ${JSON.stringify(bad)}`);
    }
    const fallback = groups.find((g) => g.name === FALLBACK_PROVIDER);
    if (!fallback) throw new Error(`the provider groups need "${FALLBACK_PROVIDER}", the group of every other MX host`);
    if (fallback.mx.length) throw new Error(`provider "${FALLBACK_PROVIDER}" matches every MX host no other group matches; it takes no patterns`);

    this.groups = Object.freeze(
      [...groups.filter((g) => g !== fallback), fallback].map((g) => Object.freeze({ name: g.name, mx: Object.freeze([...g.mx]), warmupScale: g.warmupScale })),
    );
    this.#matchers = this.groups
      .filter((g) => g.mx.length)
      .map((g) => ({ name: g.name, regex: new RegExp(`^(?:${g.mx.map(patternSource).join('|')})$`) }));
    this.#scales = new Map(this.groups.map((g) => [g.name, g.warmupScale]));
    this.#maxEntries = options.cacheMaxEntries ?? 10_000;
    Object.freeze(this);
  }

  /**
   * The provider of a set of MX host names: the first group whose patterns match every one of
   * them. A set that mixes a provider's hosts with others is `other`: a domain's owner chooses
   * its MX hosts, and one that lists a Gmail host beside its own must not have its own host's
   * replies restrict an IP for all of Gmail.
   */
  providerOf(mxHostNames: readonly string[]): ProviderName {
    const hosts = mxHostNames.map(normalizeHost);
    if (hosts.length === 0) return FALLBACK_PROVIDER;
    for (const { name, regex } of this.#matchers) {
      if (hosts.every((host) => regex.test(host))) return name;
    }
    return FALLBACK_PROVIDER;
  }

  /**
   * The provider of a routing site (src/engine/routing.ts): the sorted MX names joined with ",",
   * a bare domain or IP (implicit MX, address literal), or "route:host:port" for a static route,
   * whose host is matched like an MX name.
   */
  providerOfSite(site: string): ProviderName {
    const known = this.#cache.get(site);
    if (known !== undefined) return known;
    const provider = this.providerOf(site.startsWith('route:') ? [routeHost(site.slice('route:'.length))] : site.split(','));
    this.#cache.set(site, provider);
    if (this.#cache.size > this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    return provider;
  }

  /** The group's warmupScale; 1 for a name the catalog does not know. */
  warmupScale(provider: ProviderName): number {
    return this.#scales.get(provider) ?? 1;
  }
}

function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

/** The host of a static route's label: "host:port" or "[v6]:port" (see parseTarget in routing.ts). */
function routeHost(label: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(label);
  if (bracketed) return bracketed[1]!;
  const colon = label.lastIndexOf(':');
  return colon >= 0 ? label.slice(0, colon) : label;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A pattern as a regular expression source (no anchors): a leading "*." is one label or more. */
function patternSource(pattern: string): string {
  let rest = normalizeHost(pattern);
  let source = '';
  if (rest.startsWith('*.')) {
    source = '(?:[^.]+\\.)+';
    rest = rest.slice(2);
  }
  return source + rest.split('*').map(escapeRegex).join('[^.]*');
}
