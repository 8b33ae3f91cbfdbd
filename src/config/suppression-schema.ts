import { z } from 'zod';
import { suppressionRuleListSchema } from './rule-schemas.ts';

/**
 * The config's `suppression:` key: what acceptance does with a recipient on the suppression list,
 * and the operator's rules for automatic entries (tried before config/suppression-rules.yaml):
 *
 *     suppression:
 *       action: reject      # refuse the recipient (SMTP 550 at RCPT, HTTP per recipient); or drop
 *       rules: []           # like config/suppression-rules.yaml; one of the same name replaces it
 *
 * A tenant may have its own action (`tenants.<name>.suppression.action`).
 */

/**
 * reject: the recipient is refused where the client can be told (SMTP RCPT, the HTTP answer);
 * drop: accepted, stored as final (bounced, class "suppressed") and never attempted.
 */
export const SUPPRESSION_ACTIONS = ['reject', 'drop'] as const;
export type SuppressionAction = (typeof SUPPRESSION_ACTIONS)[number];

export const suppressionActionSchema = z.enum(SUPPRESSION_ACTIONS, { error: () => `not an action: use ${SUPPRESSION_ACTIONS.join(' or ')}` });

export const suppressionConfigSchema = z
  .strictObject({
    action: suppressionActionSchema.default('reject'),
    rules: suppressionRuleListSchema.default([]),
  })
  .prefault({});

/** A tenant's `suppression:`: its own action, instead of the config's. */
export const tenantSuppressionSchema = z.strictObject({ action: suppressionActionSchema });
