import { z } from 'zod';
import type { ProviderName } from './contracts.ts';
import { namedRecord } from './warmup.ts';

/**
 * Destination providers: groups of MX host patterns (config/providers.yaml). Warm-up caps and
 * shaping apply per provider, because a provider judges an IP across all the domains it hosts:
 * a Google Workspace domain and gmail.com share one reputation for the sending IP.
 */

/** The group every MX host that no other group matches belongs to. */
export const FALLBACK_PROVIDER: ProviderName = 'other';

/**
 * An MX host pattern: "aspmx.l.google.com" (that host), "*.google.com" (any subdomain, one label
 * or more, not google.com itself), "mx*.mail.me.com" (a "*" inside a label matches any letters
 * of that one label). Case does not matter; the last label is always literal.
 */
export function isMxPattern(pattern: string): boolean {
  const labels = pattern.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length < 2) return false;
  return labels.every((label, i) => {
    if (i === 0 && label === '*') return true;
    if (i === labels.length - 1) return /^[a-z0-9-]+$/.test(label);
    return /^[a-z0-9-]*\*?[a-z0-9-]*$/.test(label) && label !== '*' && label !== '';
  });
}

const mxPattern = z.string().refine(isMxPattern, {
  message: 'not an MX host pattern (use e.g. mx.example.com, *.example.com, mx*.example.com)',
});

/** Multiplies the warm-up plan's caps for a provider (1 = the plan as written). */
const warmupScale = z.number().positive().max(100);

/** config/providers.yaml: every group with its patterns and scale; `other` has no patterns. */
export const providersFileSchema = namedRecord(z.strictObject({ mx: z.array(mxPattern).default([]), warmupScale }));

/**
 * The config's `providers:` key: a group named like one in config/providers.yaml changes only
 * the fields given; a new name adds a group (it needs `mx`; its scale defaults to 1).
 */
export const providersConfigSchema = namedRecord(
  z.strictObject({ mx: z.array(mxPattern).min(1).optional(), warmupScale: warmupScale.optional() }),
).default({});

export type ProvidersFile = z.output<typeof providersFileSchema>;
export type ProvidersConfigInput = z.input<typeof providersConfigSchema>;
export type ProvidersConfig = z.output<typeof providersConfigSchema>;

export interface ProviderGroup {
  name: ProviderName;
  mx: readonly string[];
  warmupScale: number;
}

export interface ProviderCatalog {
  /** Groups in match order; the fallback `other` is last. */
  readonly groups: readonly ProviderGroup[];
  /** The provider of a set of MX host names: the first group with a pattern matching any of them. */
  providerOf(mxHostNames: readonly string[]): ProviderName;
  /**
   * The provider of a routing site (src/engine/routing.ts): the sorted MX names joined with ",",
   * a bare domain or IP (implicit MX, address literal), or "route:host:port" for a static route,
   * whose host is matched like an MX name.
   */
  providerOfSite(site: string): ProviderName;
  /** The group's warmupScale; 1 for a name the catalog does not know. */
  warmupScale(provider: ProviderName): number;
}

export interface ProviderCatalogOptions {
  /** Most sites whose provider is remembered; selection asks for every recipient. */
  cacheMaxEntries?: number;
}

/**
 * Builds the catalog. `groups` are in match order and must include `other`, with no patterns,
 * which matches whatever no other group does.
 */
export function createProviderCatalog(groups: readonly ProviderGroup[], options: ProviderCatalogOptions = {}): ProviderCatalog {
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

  const frozenGroups = Object.freeze(
    [...groups.filter((g) => g !== fallback), fallback].map((g) => Object.freeze({ name: g.name, mx: Object.freeze([...g.mx]), warmupScale: g.warmupScale })),
  );
  const matchers = frozenGroups
    .filter((g) => g.mx.length)
    .map((g) => ({ name: g.name, regex: new RegExp(`^(?:${g.mx.map(patternSource).join('|')})$`) }));
  const scales = new Map(frozenGroups.map((g) => [g.name, g.warmupScale]));
  const maxEntries = options.cacheMaxEntries ?? 10_000;
  // Sites are few (one per MX set) and selection asks per recipient: remember the answers.
  const cache = new Map<string, ProviderName>();

  function providerOf(mxHostNames: readonly string[]): ProviderName {
    const hosts = mxHostNames.map(normalizeHost);
    for (const { name, regex } of matchers) {
      if (hosts.some((host) => regex.test(host))) return name;
    }
    return FALLBACK_PROVIDER;
  }

  return Object.freeze({
    groups: frozenGroups,
    providerOf,
    providerOfSite(site: string): ProviderName {
      const known = cache.get(site);
      if (known !== undefined) return known;
      const provider = providerOf(site.startsWith('route:') ? [routeHost(site.slice('route:'.length))] : site.split(','));
      cache.set(site, provider);
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
      return provider;
    },
    warmupScale(provider: ProviderName): number {
      return scales.get(provider) ?? 1;
    },
  });
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
