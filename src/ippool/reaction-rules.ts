import { ConfigError } from '../config/config-error.ts';
import { MATCH_FLAGS, reactionRuleListSchema, regexProblem, rulesInOrder, type ReactionRuleConfig, type RuleOrigin, type Trigger } from '../config/rule-schemas.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { ProviderName, Reaction, ReactionAction } from './contracts.ts';
import { providerScope, reactionScope, scopeLabel, type Scope } from './restriction-scope.ts';

/**
 * Reaction rules: what the pool does when a remote reply says an IP is sending too fast or is
 * blocked. Rules are data (config/reaction-rules.yaml, plus the operator's `reactionRules:`),
 * each a regular expression on the reply, an optional provider, a trigger, an action and a
 * duration.
 *
 * Evaluation: the operator's rules come first, then the built-in ones, in the order written.
 * The first rule whose expression and provider match the reply decides, whether or not its
 * trigger fires this time; later rules never see that reply. So a reply counted by a
 * "5 per 10m" rule is not also counted by a generic rule further down, and an operator rule
 * that matches a reply takes it over from the built-in rules. An operator rule with the name of
 * a built-in rule replaces that rule.
 *
 * A throttle or `suspend-provider` restricts the IP toward the provider that replied, or, when
 * that is the fallback provider (every site no group names), toward the one site that replied:
 * see restriction-scope.ts. `suspend-ip` restricts it everywhere.
 */

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/** A rule ready to evaluate. */
export interface ReactionRule {
  name: string;
  /** Where it was defined, for operators reading a reaction. */
  origin: RuleOrigin;
  match: RegExp;
  provider: ProviderName | null;
  trigger: Trigger;
  action: ReactionAction;
  /** 0 for `bounce`. */
  durationMs: number;
}

function compile(rule: ReactionRuleConfig, origin: RuleOrigin): ReactionRule {
  let action: ReactionAction;
  switch (rule.action) {
    case 'throttle':
      action = { kind: 'throttle', ratePerHour: rule.rate! };
      break;
    case 'suspend-provider':
      action = { kind: 'suspend-provider' };
      break;
    case 'suspend-ip':
      action = { kind: 'suspend-ip' };
      break;
    case 'bounce':
      action = { kind: 'bounce' };
      break;
    case 'none':
      action = { kind: 'none' };
      break;
  }
  return {
    name: rule.name,
    origin,
    match: new RegExp(rule.match, MATCH_FLAGS),
    provider: rule.provider ?? null,
    trigger: rule.trigger,
    action,
    durationMs: rule.duration ?? 0,
  };
}

/**
 * The rules in evaluation order: the operator's (the config's `reactionRules:`, already validated
 * with the config) first, then those of the built-in file that no operator rule replaces by name.
 * Throws ConfigError naming the file and item of a bad built-in rule.
 */
export function loadReactionRules(builtinPath: string, operatorRules: readonly ReactionRuleConfig[] = []): ReactionRule[] {
  operatorRules.forEach((rule, i) => {
    // The config schema has checked these already; a caller that skipped it still gets an
    // error naming the config path instead of a bare SyntaxError.
    if (operatorRules.findIndex((r) => r.name === rule.name) !== i) {
      throw new ConfigError('config', [`reactionRules[${i}].name: duplicate rule name ${JSON.stringify(rule.name)}`]);
    }
    const problem = regexProblem(rule.match);
    if (problem) throw new ConfigError('config', [`reactionRules[${i}].match: ${problem}`]);
  });
  return rulesInOrder(builtinPath, reactionRuleListSchema, operatorRules).map(({ rule, origin }) => compile(rule, origin));
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/** Longest reply text kept in a reaction's reason (providers' replies are a few hundred characters). */
const MAX_REASON_LENGTH = 1000;

/** How often counters of triggers whose period has passed are dropped. */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * The text rules are matched against: "<code> <enhanced> <text>", one line, whatever the
 * remote's formatting (multi-line replies are already joined by classification). The enhanced
 * code is the remote's, or the one derived from the basic code ("4.0.0") when it gave none.
 * Null for outcomes without a remote reply (connection and DNS failures, local throttling).
 */
export function replySubject(outcome: DeliveryOutcome): string | null {
  if (outcome.code === null) return null;
  const text = outcome.response.trim();
  const enhanced = outcome.enhanced;
  if (!enhanced || text === enhanced || text.startsWith(`${enhanced} `)) return `${outcome.code} ${text}`.trim();
  return `${outcome.code} ${enhanced} ${text}`.trim();
}

export interface EvaluateInput {
  /** The egress IP of the attempt. */
  ip: string;
  /** The destination provider of the attempt. */
  provider: ProviderName;
  /** The destination site of the attempt (its MX set, see engine/routing.ts). */
  site: string;
  outcome: DeliveryOutcome;
  now: number;
}

/**
 * Matches delivery outcomes against the rules and counts triggers. Trigger counts live in this
 * process: with several nodes, each counts the replies its own deliveries receive. They are
 * kept per scope of the reaction (restriction-scope.ts): per provider, and per site for the
 * fallback provider, so five small sites that each answer once do not add up to a reaction.
 */
export class ReactionEngine {
  readonly rules: readonly ReactionRule[];
  /** (rule, IP, scope) -> times of recent matches, at most `count - 1` kept. */
  readonly #hits = new Map<string, number[]>();
  #lastSweep = -Infinity;

  constructor(rules: readonly ReactionRule[]) {
    this.rules = rules;
  }

  /**
   * The reactions one outcome causes: none, or the reaction of the first matching rule when its
   * trigger fires. Delivered outcomes and outcomes without a remote reply match nothing. A
   * `bounce` reaction means the caller turns this outcome permanent instead of retrying it.
   */
  evaluate({ ip, provider, site, outcome, now }: EvaluateInput): Reaction[] {
    this.#sweep(now);
    const rule = this.match({ provider, outcome });
    if (!rule) return [];
    const scope = reactionScope({ provider, site });
    // A rule that suspends the whole IP counts its replies across the provider's sites: a
    // blocklisted IP is refused by many small sites once each, not by one site N times.
    const counted = rule.action.kind === 'suspend-ip' ? providerScope(provider) : scope;
    if (!this.#fires(rule, ip, counted, now)) return [];
    const subject = replySubject(outcome)!;
    return [
      {
        rule: rule.name,
        action: rule.action,
        durationMs: rule.durationMs,
        ip,
        provider,
        scope,
        reason: subject.length > MAX_REASON_LENGTH ? `${subject.slice(0, MAX_REASON_LENGTH)}...` : subject,
      },
    ];
  }

  /**
   * The rule that decides an outcome (the first whose provider and expression match), without
   * counting it: "which rule would catch this reply?". Null for delivered outcomes, outcomes
   * without a remote reply, and replies no rule matches.
   */
  match({ provider, outcome }: Pick<EvaluateInput, 'provider' | 'outcome'>): ReactionRule | null {
    if (outcome.disposition !== 'transient' && outcome.disposition !== 'permanent') return null;
    const subject = replySubject(outcome);
    if (subject === null) return null;
    return this.rules.find((r) => (r.provider === null || r.provider === provider) && r.match.test(subject)) ?? null;
  }

  /** Counts a match; true when it is the Nth within the period (the count then starts again). */
  #fires(rule: ReactionRule, ip: string, scope: Scope, now: number): boolean {
    const { count, periodMs } = rule.trigger;
    if (count <= 1) return true;
    const key = `${rule.name}\u0000${ip}\u0000${scopeLabel(scope)}`;
    const recent = (this.#hits.get(key) ?? []).filter((t) => t > now - periodMs);
    recent.push(now);
    if (recent.length >= count) {
      this.#hits.delete(key);
      return true;
    }
    this.#hits.set(key, recent);
    return false;
  }

  /** Drops counters whose matches are all older than their rule's period (bounded memory). */
  #sweep(now: number): void {
    if (now - this.#lastSweep < SWEEP_INTERVAL_MS) return;
    this.#lastSweep = now;
    const periods = new Map(this.rules.map((r) => [r.name, r.trigger.periodMs]));
    for (const [key, times] of this.#hits) {
      const period = periods.get(key.slice(0, key.indexOf('\u0000'))) ?? 0;
      if (times.every((t) => t <= now - period)) this.#hits.delete(key);
    }
  }

  /** Number of (rule, IP, scope) trigger counters held (for tests and metrics). */
  get pendingTriggers(): number {
    return this.#hits.size;
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery after a reaction ends
// ---------------------------------------------------------------------------------------------

/**
 * When a throttle or suspension ends the IP does not jump back to full speed: the provider that
 * objected sees a gentle ramp that doubles every 15 minutes until the normal rate. After a
 * throttle it starts at the throttle's own rate, the rate the provider was seen to accept (60/h,
 * then 120/h, 240/h, ...); after a suspension, which names no rate, at 10 % of normal (10 %,
 * 20 %, 40 %, 80 %, 100 %: back to normal one hour after the end). A rule that fires again during
 * the ramp starts a new reaction, and a new ramp after it.
 */
export const RECOVERY_START_FRACTION = 0.1;
export const RECOVERY_STEP_MS = 15 * 60_000;

export interface RecoveryInput {
  reaction: Pick<Reaction, 'action'>;
  now: number;
  /** When the reaction ends (its start + durationMs). */
  endsAt: number;
  /** The rate the IP may send to the provider normally (shaping), messages per second. */
  normalRatePerSecond: number;
}

/** Actions that never limit the rate. */
function unlimited(action: ReactionAction): boolean {
  return action.kind === 'bounce' || action.kind === 'none';
}

function recoveryStart(action: ReactionAction, normal: number): number {
  // A throttle to nothing names no rate a provider accepted: it ramps like a suspension.
  if (action.kind === 'throttle' && action.ratePerHour > 0) return Math.min(normal, action.ratePerHour / 3600);
  return normal * RECOVERY_START_FRACTION;
}

/**
 * The rate (messages per second) the IP may send to the provider at `now`: while the reaction
 * lasts, the throttle's rate (0 while suspended); after it, the ramp described above; `bounce`
 * and `none` reactions do not limit the rate. A pure function of time, so every node computes
 * the same.
 */
export function recoveryRate({ reaction, now, endsAt, normalRatePerSecond: normal }: RecoveryInput): number {
  const action = reaction.action;
  if (unlimited(action) || !Number.isFinite(normal) || normal <= 0) return normal;
  if (now < endsAt) return action.kind === 'throttle' ? Math.min(normal, action.ratePerHour / 3600) : 0;
  const steps = Math.floor((now - endsAt) / RECOVERY_STEP_MS);
  // 2 ** steps overflows to Infinity after ~1000 steps; the min() keeps the result at normal.
  return Math.min(normal, recoveryStart(action, normal) * 2 ** steps);
}

/** When the ramp after a reaction reaches the normal rate (the reaction can be forgotten then). */
export function recoveryCompleteAt({ reaction, endsAt, normalRatePerSecond: normal }: Omit<RecoveryInput, 'now'>): number {
  if (unlimited(reaction.action) || !Number.isFinite(normal) || normal <= 0) return endsAt;
  const start = recoveryStart(reaction.action, normal);
  const steps = Math.max(0, Math.ceil(Math.log2(normal / start) - 1e-9));
  return endsAt + steps * RECOVERY_STEP_MS;
}
