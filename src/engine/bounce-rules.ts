import { bounceRuleListSchema, MATCH_FLAGS, rulesInOrder, type BounceRuleConfig, type RuleOrigin } from '../config/rule-schemas.ts';
import type { BounceClass, Disposition } from '../mail/delivery-outcome.ts';

/**
 * Bounce rules: what an SMTP reply that did not deliver means, as data (config/bounce-rules.yaml,
 * plus the operator's `bounceRules:`). Classification (classify.ts) tries them in order and the
 * first rule whose conditions all hold gives the reply its bounce class.
 */

/** A rule ready to evaluate. Every condition given must hold. */
export interface BounceRule {
  name: string;
  /** Where it was defined, for operators reading a classification. */
  origin: RuleOrigin;
  bounceClass: BounceClass;
  /** Tested against the enhanced status code ("5.1.1"), the remote's or the derived one. */
  enhanced?: RegExp;
  /** Tested against the reply text (codes stripped, lines joined with a space). */
  text?: RegExp;
  /** Basic reply codes the rule applies to. */
  codes?: readonly number[];
  /** Only for replies of this disposition (as implied by the basic code). */
  when?: 'transient' | 'permanent';
  /** Overrides the disposition the basic code implies (rarely needed). */
  disposition?: Disposition;
}

/**
 * The rules in evaluation order: the operator's (the config's `bounceRules:`, already validated
 * with the config) first, then those of the built-in file that no operator rule replaces by name.
 * Throws ConfigError naming the file and item of a bad built-in rule.
 */
export function loadBounceRules(builtinPath: string, operatorRules: readonly BounceRuleConfig[] = []): BounceRule[] {
  return rulesInOrder(builtinPath, bounceRuleListSchema, operatorRules).map(({ rule, origin }) => compile(rule, origin));
}

function compile(rule: BounceRuleConfig, origin: RuleOrigin): BounceRule {
  return {
    name: rule.name,
    origin,
    bounceClass: rule.bounceClass,
    enhanced: regex(rule.enhanced),
    text: regex(rule.text),
    codes: rule.codes,
    when: rule.when,
    disposition: rule.disposition,
  };
}

function regex(source: string | undefined): RegExp | undefined {
  return source === undefined ? undefined : new RegExp(source, MATCH_FLAGS);
}
