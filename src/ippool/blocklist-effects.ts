import type { ProviderName } from './contracts.ts';
import { ALL_PROVIDERS, ALL_PROVIDERS_LABEL, providerScope, type Scope } from './restriction-scope.ts';
import type { BlocklistRestriction, Restriction } from './restrictions.ts';

/**
 * What the blocklist reactions in pool state (blocklist-watch.ts writes them) do to selection,
 * pure: a suspension gate beside the reactions' and the operator's (eligibility.ts), and a factor
 * on the weight (member-settings.ts). Both read the same entries, so GET /v1/ips, GET
 * /v1/explain and selection agree.
 */

/** The rule name a blocklist suspension shows (restrictions, explanations, logs): `blocklist:<list>`. */
export function blocklistRule(list: string): string {
  return `blocklist:${list}`;
}

function covers(entry: BlocklistRestriction, provider: ProviderName): boolean {
  return entry.providers.includes(ALL_PROVIDERS_LABEL) || entry.providers.includes(provider);
}

/** The scopes a reaction's providers name: every provider, or each named one. */
export function blocklistScopes(entry: BlocklistRestriction): Scope[] {
  return entry.providers.includes(ALL_PROVIDERS_LABEL) ? [ALL_PROVIDERS] : entry.providers.map(providerScope);
}

/** A blocklist suspension as the restriction it is to selection and reports. */
export function asRestriction(entry: BlocklistRestriction): Restriction {
  return { action: 'suspend', rule: blocklistRule(entry.list), reason: entry.reason, until: entry.until };
}

/** The suspensions that bind a delivery to `provider`, each with the scope it holds for. */
export function blocklistSuspensions(entries: readonly BlocklistRestriction[], provider: ProviderName): Array<{ scope: Scope; restriction: Restriction }> {
  return entries
    .filter((entry) => entry.action === 'suspend' && covers(entry, provider))
    .map((entry) => ({ scope: entry.providers.includes(ALL_PROVIDERS_LABEL) ? ALL_PROVIDERS : providerScope(provider), restriction: asRestriction(entry) }));
}

/**
 * `base` lowered by the weight reactions that apply to `provider` (their factors multiplied), at
 * least 1 so the IP keeps a trickle toward the sites that do not use the list; a base of 0 stays
 * 0. The reason names the lists; null when none applies.
 */
export function blocklistWeight(base: number, entries: readonly BlocklistRestriction[], provider: ProviderName): { weight: number; reason: string | null } {
  const applying = entries.filter((entry) => entry.action === 'weight' && covers(entry, provider));
  if (base <= 0 || applying.length === 0) return { weight: base, reason: null };
  const factor = applying.reduce((product, entry) => product * (entry.factor ?? 1), 1);
  const weight = Math.min(base, Math.max(1, Math.round(base * factor)));
  return { weight, reason: `listed on ${applying.map((entry) => entry.list).join(', ')}: weight ${base} -> ${weight}` };
}
