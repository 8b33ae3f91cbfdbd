import { z } from 'zod';
import type { BounceClass, Disposition } from '../mail/delivery-outcome.ts';
import { parseDuration, positiveDurationSchema } from './duration.ts';
import { parseRate } from './pool-schemas.ts';
import { parseWith, readYamlFile } from './yaml-config.ts';

/**
 * The rule tables that interpret remote replies, as written in config/ and in the config:
 * reaction rules (`reactionRules:`, config/reaction-rules.yaml; compiled in
 * src/ippool/reaction-rules.ts), bounce rules (`bounceRules:`, config/bounce-rules.yaml;
 * compiled in src/engine/bounce-rules.ts) and suppression rules (`suppression.rules:`,
 * config/suppression-rules.yaml; compiled in src/engine/suppression-rules.ts). All are lists of
 * named rules built on regular expressions; the operator's rules come first, and one with a
 * built-in rule's name replaces it.
 */

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PROVIDER_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** Rule expressions are always case-insensitive: providers change the case of their wording. */
export const MATCH_FLAGS = 'i';

/** Why `source` cannot be a rule's expression; null when it can. */
export function regexProblem(source: string): string | null {
  try {
    new RegExp(source, MATCH_FLAGS);
    return null;
  } catch (err) {
    // V8 says "Invalid regular expression: /(/i: Unterminated group"; keep the cause only.
    return `not a valid regular expression (${(err as Error).message.split(': ').pop()})`;
  }
}

const regexSchema = z
  .string()
  .min(1, { message: 'an empty expression would match every reply' })
  .superRefine((source, ctx) => {
    const problem = regexProblem(source);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const ruleName = z.string().regex(RULE_NAME, { message: 'not a rule name (letters, digits, ".", "_" and "-")' });

/** A list of rules; names must be unique within the list. */
function ruleList<T extends z.ZodType<{ name: string }>>(rule: T) {
  return z.array(rule).superRefine((rules, ctx) => {
    const seen = new Set<string>();
    rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate rule name ${JSON.stringify(r.name)}` });
      seen.add(r.name);
    });
  });
}

export type RuleOrigin = 'operator' | 'built-in';

/**
 * Reads a built-in rules file (a YAML list of rules; an empty file is an empty list) and puts
 * the operator's rules, already validated with the config, in front of the rules they do not
 * replace by name. Problems in the file name the file and the item.
 */
export function rulesInOrder<R extends { name: string }>(
  builtinPath: string,
  listSchema: z.ZodType<R[]>,
  operatorRules: readonly R[],
): Array<{ rule: R; origin: RuleOrigin }> {
  const builtin = parseWith(listSchema, readYamlFile(builtinPath) ?? [], builtinPath);
  const replaced = new Set(operatorRules.map((rule) => rule.name));
  return [
    ...operatorRules.map((rule) => ({ rule, origin: 'operator' as const })),
    ...builtin.filter((rule) => !replaced.has(rule.name)).map((rule) => ({ rule, origin: 'built-in' as const })),
  ];
}

// ---------------------------------------------------------------------------------------------
// Reaction rules: what the egress pool does about a reply
// ---------------------------------------------------------------------------------------------

/** How often a rule must match before it fires. `immediate` = on the first match. */
export interface Trigger {
  /** Matches needed within `periodMs` for the same (rule, IP, provider). */
  count: number;
  /** 0 for `immediate`. */
  periodMs: number;
}

const TRIGGER = /^\s*(\d+)\s+per\s+(\S+)\s*$/;

const triggerSchema = z.string().transform((value, ctx): Trigger => {
  if (value.trim() === 'immediate') return { count: 1, periodMs: 0 };
  const m = TRIGGER.exec(value);
  const count = m ? Number(m[1]) : NaN;
  const periodMs = m ? parseDuration(m[2]!) : null;
  if (!m || !Number.isSafeInteger(count) || count < 1 || periodMs === null || periodMs <= 0) {
    ctx.addIssue({ code: 'custom', message: `not a trigger (use "immediate" or "N per period", e.g. "5 per 10m"): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return { count, periodMs };
});

/** "100/h", "5/m", "1/s", "2000/d" (the syntax of shaping rates) -> messages per hour. */
const perHourSchema = z.string().transform((value, ctx) => {
  const perSecond = parseRate(value);
  if (perSecond === null) {
    ctx.addIssue({ code: 'custom', message: `not a rate above zero (use messages per s, m, h or d, e.g. 100/h): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  // Per second and back loses a few ulps ("100/h" would read 99.99999999999999).
  return Math.round(perSecond * 3600 * 1e6) / 1e6;
});

export const REACTION_ACTIONS = ['throttle', 'suspend-provider', 'suspend-ip', 'bounce', 'none'] as const;

/** Actions that restrict nothing, so take no duration, and why. */
const WITHOUT_DURATION: Partial<Record<(typeof REACTION_ACTIONS)[number], string>> = {
  bounce: 'the recipient is bounced at once',
  none: 'nothing is restricted',
};

/** One rule as written in config/reaction-rules.yaml or the config's `reactionRules:`. */
export const reactionRuleSchema = z
  .strictObject({
    name: ruleName,
    /** Tested against "<code> <enhanced code> <reply text>", e.g. "421 4.7.28 Our system has detected ...". */
    match: regexSchema,
    /** Only replies from this provider (a group of config/providers.yaml); all providers when absent. */
    provider: z.string().regex(PROVIDER_NAME, { message: 'not a provider name' }).optional(),
    trigger: triggerSchema.default({ count: 1, periodMs: 0 }),
    action: z.enum(REACTION_ACTIONS),
    /** Messages per hour the IP may send to the provider while throttled ("100/h"). */
    rate: perHourSchema.optional(),
    /** How long the throttle or suspension lasts. */
    duration: positiveDurationSchema.optional(),
  })
  .superRefine((rule, ctx) => {
    if (rule.action === 'throttle' && rule.rate === undefined) {
      ctx.addIssue({ code: 'custom', path: ['rate'], message: 'required when action is throttle (e.g. 100/h)' });
    }
    if (rule.action !== 'throttle' && rule.rate !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['rate'], message: `only used by action throttle, not ${rule.action}` });
    }
    const unrestricted = WITHOUT_DURATION[rule.action];
    if (unrestricted && rule.duration !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['duration'], message: `not used by action ${rule.action} (${unrestricted})` });
    }
    if (!unrestricted && rule.duration === undefined) {
      ctx.addIssue({ code: 'custom', path: ['duration'], message: `required for action ${rule.action} (e.g. 1h)` });
    }
  });

export const reactionRuleListSchema = ruleList(reactionRuleSchema);

/** The config's `reactionRules:` key: operator rules, evaluated before the built-in ones. */
export const reactionRulesConfigSchema = reactionRuleListSchema.default([]);

export type ReactionRuleInput = z.input<typeof reactionRuleSchema>;
export type ReactionRuleConfig = z.output<typeof reactionRuleSchema>;

// ---------------------------------------------------------------------------------------------
// Bounce rules: what a reply that did not deliver means
// ---------------------------------------------------------------------------------------------

/** The classes a bounce rule may give a reply (`none` is for delivered mail only). */
export const RULE_BOUNCE_CLASSES = [
  'unknown-user',
  'mailbox-full',
  'message-rejected',
  'policy',
  'spam',
  'rate-limited',
  'dns',
  'no-mail-domain',
  'connection',
  'egress-unavailable',
  'protocol',
  'expired',
  'other',
] as const satisfies readonly BounceClass[];

const FAILED_DISPOSITIONS = ['transient', 'permanent'] as const satisfies readonly Disposition[];

/** One rule as written in config/bounce-rules.yaml or the config's `bounceRules:`. */
export const bounceRuleSchema = z
  .strictObject({
    name: ruleName,
    bounceClass: z.enum(RULE_BOUNCE_CLASSES),
    /** Tested against the enhanced status code ("5.1.1"), the remote's or the one derived from the basic code. */
    enhanced: regexSchema.optional(),
    /** Tested against the reply text (codes stripped, lines joined with a space). */
    text: regexSchema.optional(),
    /** Basic reply codes the rule applies to. */
    codes: z.array(z.number().int().min(400).max(599)).min(1).optional(),
    /** Only replies of this disposition (as the basic code implies it). */
    when: z.enum(FAILED_DISPOSITIONS).optional(),
    /** Overrides the disposition the basic code implies (rarely needed). */
    disposition: z.enum(FAILED_DISPOSITIONS).optional(),
  })
  .refine((rule) => rule.codes !== undefined || rule.enhanced !== undefined || rule.text !== undefined, {
    message: 'give codes, enhanced or text (a rule without them would take every reply)',
  });

export const bounceRuleListSchema = ruleList(bounceRuleSchema);

/** The config's `bounceRules:` key: operator rules, tried before the built-in ones. */
export const bounceRulesConfigSchema = bounceRuleListSchema.default([]);

export type BounceRuleConfig = z.output<typeof bounceRuleSchema>;

// ---------------------------------------------------------------------------------------------
// Suppression rules: which permanent failures put the recipient on the suppression list
// ---------------------------------------------------------------------------------------------

/** One rule as written in config/suppression-rules.yaml or the config's `suppression.rules:`. */
export const suppressionRuleSchema = z
  .strictObject({
    name: ruleName,
    /** The failure's bounce class is one of these. */
    bounceClass: z.array(z.enum(RULE_BOUNCE_CLASSES)).min(1).optional(),
    /** Tested against the failure's enhanced status code ("5.1.1"). */
    enhanced: regexSchema.optional(),
    /** false: a failure this rule takes never suppresses (the rules after it are not tried). */
    suppress: z.boolean().default(true),
    /** Consecutive permanent failures of the address (this one included) before it is suppressed; default 1. */
    after: z.number().int().min(1).max(20).optional(),
    /** How long the entry lasts; absent: until removed. */
    expiresIn: positiveDurationSchema.optional(),
  })
  .refine((rule) => rule.bounceClass !== undefined || rule.enhanced !== undefined, {
    message: 'give bounceClass or enhanced (a rule without them would take every failure)',
  })
  .superRefine((rule, ctx) => {
    if (rule.suppress) return;
    for (const key of ['after', 'expiresIn'] as const) {
      if (rule[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'not used by a rule with suppress: false' });
    }
  });

export const suppressionRuleListSchema = ruleList(suppressionRuleSchema);

export type SuppressionRuleConfig = z.output<typeof suppressionRuleSchema>;
