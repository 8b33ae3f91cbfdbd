import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { parseConfig } from '../../src/config/load.ts';
import { classifyReply } from '../../src/engine/classify.ts';
import { suppressionActionFor } from '../../src/engine/suppression-check.ts';
import { loadSuppressionRules, ruleFor, streakReached } from '../../src/engine/suppression-rules.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';

/**
 * The shipped suppression rules (config/suppression-rules.yaml) against replies classified the
 * way the deliverer classifies them, the operator's rules before them, and the action per tenant.
 */

const BUILTIN = join(DEFAULT_CONFIG_DIR, DATA_FILES.suppressionRules);
const rules = loadSuppressionRules(BUILTIN);

function outcomeOf(raw: string): DeliveryOutcome {
  return classifyReply({ code: Number(raw.slice(0, 3)), text: raw, stage: 'rcpt', remoteHost: 'mx.example.net', egressIp: '203.0.113.7' }, BOUNCE_RULES);
}

/** The rule's name and what it does: `after N`, or `never`; null when no rule takes the failure. */
function decision(outcome: DeliveryOutcome): string | null {
  const rule = ruleFor(rules, outcome);
  return rule === null ? null : `${rule.name}: ${rule.suppress ? `after ${rule.after}` : 'never'}`;
}

describe('config/suppression-rules.yaml', () => {
  it('suppresses unknown users and domains without mail at once, full or disabled mailboxes after three, never policy or spam', () => {
    expect(decision(outcomeOf('550 5.1.1 <a@example.net>: Recipient address rejected: User unknown'))).toBe('unknown-user: after 1');
    expect(decision(outcomeOf('550 User unknown'))).toBe('unknown-user: after 1');
    expect(decision(outcomeOf('550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'))).toBe('unknown-user: after 1');
    expect(decision({ ...outcomeOf('550 5.1.10 x'), bounceClass: 'no-mail-domain', code: null, stage: 'dns' })).toBe('no-mail-domain: after 1');
    expect(decision(outcomeOf('552 5.2.2 Mailbox full'))).toBe('mailbox-unavailable: after 3');
    expect(decision(outcomeOf('550 5.2.1 The email account that you tried to reach is disabled.'))).toBe('mailbox-unavailable: after 3');
    expect(decision(outcomeOf('552 Mailbox is full'))).toBe('mailbox-full: after 3');
    expect(decision(outcomeOf('550 5.7.1 Service unavailable; client host blocked using Spamhaus'))).toBe('policy-or-spam: never');
    expect(decision(outcomeOf('550 5.7.1 Message rejected due to local policy'))).toBe('policy-or-spam: never');
    // The wording names an unknown user, the code a security refusal: the code's 5.7 wins.
    expect(decision({ ...outcomeOf('550 5.7.1 user unknown'), bounceClass: 'unknown-user' })).toBe('security-status: never');
    expect(decision(outcomeOf('554 5.6.0 Message content rejected'))).toBeNull();
    // Only a permanent failure: a deferral never suppresses.
    expect(decision(outcomeOf('450 4.2.2 Mailbox full, try later'))).toBeNull();
  });

  it("puts the operator's rules first, one of a built-in's name in its place", () => {
    const { suppressionRules } = resolveConfig({ suppression: { rules: [{ name: 'mailbox-unavailable', enhanced: '^5\\.2\\.2$', after: 5, expiresIn: '30d' }, { name: 'trust-partner', enhanced: '^5\\.1\\.1$', suppress: false }] } }, { env: {} });
    expect(suppressionRules.map((r) => `${r.origin}:${r.name}`)).toEqual([
      'operator:mailbox-unavailable',
      'operator:trust-partner',
      'built-in:policy-or-spam',
      'built-in:security-status',
      'built-in:mailbox-full',
      'built-in:unknown-user',
      'built-in:no-mail-domain',
    ]);
    expect(ruleFor(suppressionRules, outcomeOf('552 5.2.2 Mailbox full'))).toMatchObject({ after: 5, expiresInMs: 30 * 86_400_000 });
    expect(ruleFor(suppressionRules, outcomeOf('550 5.1.1 User unknown'))).toMatchObject({ name: 'trust-partner', suppress: false });
  });

  it('counts consecutive permanent failures from the newest result', () => {
    const failed = outcomeOf('552 5.2.2 Mailbox full');
    const delivered: DeliveryOutcome = { ...failed, disposition: 'delivered', code: 250, enhanced: '2.0.0', bounceClass: 'none' };
    expect(streakReached(1, [failed])).toBe(true);
    expect(streakReached(3, [failed, failed, failed, delivered])).toBe(true);
    expect(streakReached(3, [failed, failed, delivered, failed])).toBe(false);
    expect(streakReached(3, [failed, failed])).toBe(false);
  });
});

describe('suppression configuration', () => {
  it('names each problem of a rule or an action by its path', () => {
    const problems = (raw: unknown) => {
      try {
        parseConfig(raw, 'config', {});
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ suppression: { action: 'bounce' } })).toEqual(['suppression.action: not an action: use reject or drop']);
    expect(problems({ suppression: { rules: [{ name: 'x', suppress: false, after: 2 }] } })).toEqual([
      'suppression.rules[0]: give bounceClass or enhanced (a rule without them would take every failure)',
      'suppression.rules[0].after: not used by a rule with suppress: false',
    ]);
    expect(problems({ suppression: { rules: [{ name: 'x', enhanced: '(' }] } })[0]).toMatch(/^suppression\.rules\[0\]\.enhanced: not a valid regular expression/);
    expect(problems({ suppression: { bogus: 1 } })).toEqual(['suppression.bogus: unknown key']);
    expect(problems({ tenants: { acme: { senderDomains: ['*'], suppression: { action: 'ignore' } } } })).toEqual(['tenants.acme.suppression.action: not an action: use reject or drop']);
  });

  it("takes a tenant's own action before the configured one", () => {
    const config = parseConfig({ suppression: { action: 'drop' }, tenants: { acme: { senderDomains: ['*'], suppression: { action: 'reject' } }, beta: { senderDomains: ['*'] } } }, 'config', {});
    expect([suppressionActionFor(config, 'acme'), suppressionActionFor(config, 'beta'), suppressionActionFor(config, null), suppressionActionFor(config, 'gone')]).toEqual(['reject', 'drop', 'drop', 'drop']);
    expect(parseConfig({}, 'config', {}).suppression).toEqual({ action: 'reject', rules: [] });
  });
});
