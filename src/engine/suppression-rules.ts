import { MATCH_FLAGS, rulesInOrder, suppressionRuleListSchema, type RuleOrigin, type SuppressionRuleConfig } from '../config/rule-schemas.ts';
import type { BounceClass, DeliveryOutcome } from '../mail/delivery-outcome.ts';

/**
 * Suppression rules: which permanent failures put the recipient on the suppression list, as data
 * (config/suppression-rules.yaml, plus the operator's `suppression.rules:`). The first rule whose
 * conditions all hold decides; no rule, no entry. Pure: auto-suppression.ts reads the results and
 * writes the entries.
 */

/** A rule ready to evaluate. */
export interface SuppressionRule {
  name: string;
  /** Where it was defined, for operators reading why an address was suppressed. */
  origin: RuleOrigin;
  bounceClasses: ReadonlySet<BounceClass> | null;
  enhanced: RegExp | null;
  suppress: boolean;
  /** Consecutive permanent failures needed, the one at hand included (1: at once). */
  after: number;
  /** How long the entry lasts; null until removed. */
  expiresInMs: number | null;
}

/**
 * The rules in evaluation order: the operator's (already validated with the config) first, then
 * those of the built-in file that no operator rule replaces by name. Throws ConfigError naming
 * the file and item of a bad built-in rule.
 */
export function loadSuppressionRules(builtinPath: string, operatorRules: readonly SuppressionRuleConfig[] = []): SuppressionRule[] {
  return rulesInOrder(builtinPath, suppressionRuleListSchema, operatorRules).map(({ rule, origin }) => ({
    name: rule.name,
    origin,
    bounceClasses: rule.bounceClass ? new Set(rule.bounceClass) : null,
    enhanced: rule.enhanced === undefined ? null : new RegExp(rule.enhanced, MATCH_FLAGS),
    suppress: rule.suppress,
    after: rule.after ?? 1,
    expiresInMs: rule.expiresIn ?? null,
  }));
}

/** The rule that decides for a failure that bounced a recipient, or null when none matches. */
export function ruleFor(rules: readonly SuppressionRule[], outcome: DeliveryOutcome): SuppressionRule | null {
  if (outcome.disposition !== 'permanent') return null;
  return (
    rules.find(
      (rule) =>
        (rule.bounceClasses === null || rule.bounceClasses.has(outcome.bounceClass)) &&
        (rule.enhanced === null || (outcome.enhanced !== null && rule.enhanced.test(outcome.enhanced))),
    ) ?? null
  );
}

/**
 * Whether the address's final results (newest first, the failure at hand among them) start with
 * `after` permanent failures: a delivery in between, or too few results kept, is not a run.
 */
export function streakReached(after: number, results: readonly DeliveryOutcome[]): boolean {
  return results.length >= after && results.slice(0, after).every((o) => o.disposition === 'permanent');
}
