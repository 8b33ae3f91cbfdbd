import { z } from 'zod';
import { positiveDurationSchema } from './duration.ts';
import { dataName } from './pool-schemas.ts';

/**
 * The control API's access settings: bearer tokens with a role, and the lockout of client
 * addresses that keep presenting wrong ones. The roles are listed here, the lowest layer, so the
 * config schema, the API's route table and the `rookery token create` command share one list.
 */

/** What a token may do; see src/control-api/v1/route-roles.ts for the routes each role reaches. */
export const API_ROLES = ['admin', 'operator', 'sender', 'viewer'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/** How a token is stored in the config: "sha256:" and 64 lowercase hex digits (src/access/api-token.ts). */
export const API_TOKEN_HASH = /^sha256:[0-9a-f]{64}$/;

/** Token and tenant names show in logs, metrics and the audit trail, so they are plain words. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_MESSAGE = 'not a name (up to 64 letters, digits, ".", "-" and "_", starting with a letter or digit)';
export const apiNameSchema = z.string().regex(NAME, { message: NAME_MESSAGE });

const apiTokenSchema = z.strictObject({
  name: apiNameSchema,
  role: z.enum(API_ROLES, { error: () => `not a role: use one of ${API_ROLES.join(', ')}` }),
  /** The tenant whose messages the token sends and reads (see tenant-schema.ts); none: every tenant's. */
  tenant: apiNameSchema.optional(),
  hash: z.string().regex(API_TOKEN_HASH, { message: 'not a token hash: "sha256:" and 64 hex digits (make one with `rookery token create`)' }),
  /**
   * Who mail sent with this token (POST /v1/messages) may come from, as smtp.users[].allowedSenders:
   * addresses, "*@domain", or "*". Never implied: a token without it sends nothing, whatever its role.
   */
  allowedSenders: z.array(z.string().min(1)).optional(),
  /** The pool this token's mail sends from (else by sender domain, else "default"). */
  pool: dataName.optional(),
  /** Further pools the token may choose per message (`pool` in the request). */
  pools: z.array(dataName).optional(),
});

export type ApiTokenConfig = z.output<typeof apiTokenSchema>;

/**
 * Names identify a token in logs and the audit trail; one token listed twice would be two names
 * for one key. Checked even when an entry has other problems (`when`), so one run reports all.
 */
export const apiTokensSchema = z
  .array(apiTokenSchema)
  .superRefine(
    (tokens, ctx) => {
      const first = { name: new Map<unknown, number>(), hash: new Map<unknown, number>() };
      tokens.forEach((token: Partial<ApiTokenConfig> | null, i) => {
        for (const key of ['name', 'hash'] as const) {
          const value = token?.[key];
          if (typeof value !== 'string') continue;
          const earlier = first[key].get(value);
          if (earlier === undefined) first[key].set(value, i);
          else if (key === 'name') ctx.addIssue({ code: 'custom', path: [i, key], message: `duplicate token name ${JSON.stringify(value)} (also api.tokens[${earlier}])` });
          else ctx.addIssue({ code: 'custom', path: [i, key], message: `the same token as api.tokens[${earlier}]; give each token its own` });
        }
      });
    },
    { when: (payload) => Array.isArray(payload.value) },
  )
  .default([]);

/** Wrong tokens from one client address before it is refused (429) for the rest of the window. */
export const apiAuthFailuresSchema = z
  .strictObject({ max: z.number().int().positive().default(10), window: positiveDurationSchema.default(900_000) })
  .prefault({});
