import { isIP } from 'node:net';
import { z } from 'zod';
import { positiveDurationSchema } from './duration.ts';
import { dataName } from './pool-schemas.ts';

/**
 * The blocklist watch (`blocklists:`, src/ippool/blocklist-watch.ts): which DNS blocklists every
 * egress IP of this node is looked up in, how often, and what a listing makes the pool do.
 *
 * A list has a `name` apart from its `zone` because a zone may carry a secret: Spamhaus's Data
 * Query Service zones start with the customer's key (`<key>.zen.dq.spamhaus.net`). Logs, metric
 * labels, the store and the API only ever show the name.
 */

/** `all`: every destination provider; otherwise provider names (config/providers.yaml, `providers`). */
const providersSchema = z.array(z.union([z.literal('all'), dataName])).min(1, { message: 'name at least one provider, or "all"' }).default(['all']);

/** What a listing on the list does to the listed IP, lifted when it is delisted. */
export const blocklistReactionSchema = z.discriminatedUnion('action', [
  /** Nothing beyond the metric, the log line and the API: the operator decides. */
  z.strictObject({ action: z.literal('none') }),
  /** The IP's weight for `providers` multiplied by `factor` (at least 1 is left, so it keeps a trickle). */
  z.strictObject({
    action: z.literal('weight'),
    factor: z.number().gt(0, { message: 'above 0 (use action "suspend" to stop the IP)' }).lt(1, { message: 'below 1 (a factor that lowers the weight)' }),
    providers: providersSchema,
  }),
  /** The IP suspended for `providers`: their mail goes from the pool's other IPs, or waits. */
  z.strictObject({ action: z.literal('suspend'), providers: providersSchema }),
], { error: 'not a reaction: action is none, weight or suspend' });

export type BlocklistReactionConfig = z.output<typeof blocklistReactionSchema>;

/** A DNS zone: labels of letters, digits, '-' and '_' (a DQS key is letters and digits), no leading dot. */
const zoneSchema = z
  .string()
  .transform((zone) => zone.toLowerCase().replace(/\.$/, ''))
  .refine((zone) => zone.length <= 200 && /^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$/.test(zone), { message: 'not a DNS zone (e.g. zen.spamhaus.org)' });

export const blocklistSchema = z.strictObject({
  /** The name shown in logs, metrics (`list` label), the store and the API. */
  name: dataName,
  /** The zone queried: `<reversed IP>.<zone>`. */
  zone: zoneSchema,
  /** Whether the list answers for IPv6 addresses (nibble-reversed queries); IPv6 IPs are not looked up in a list without it. */
  ipv6: z.boolean().default(false),
  reaction: blocklistReactionSchema.default({ action: 'none' }),
});

export type BlocklistConfig = z.output<typeof blocklistSchema>;

/**
 * The lists watched when `blocklists.lists` is not given: widely used public lists whose free
 * tier fits a sender looking up its own few addresses. Their terms are in the README (Blocklist
 * watch): Spamhaus refuses queries through public resolvers and wants a DQS key for commercial
 * use; Barracuda wants the querying DNS server registered.
 *
 * Only Spamhaus ZEN is acted on by default, and only toward `other` (the small sites, which look
 * it up at connection time and refuse a listed IP); the large providers keep their own scores.
 */
export const DEFAULT_BLOCKLISTS: readonly z.input<typeof blocklistSchema>[] = [
  { name: 'spamhaus-zen', zone: 'zen.spamhaus.org', ipv6: true, reaction: { action: 'suspend', providers: ['other'] } },
  { name: 'barracuda', zone: 'b.barracudacentral.org', reaction: { action: 'weight', factor: 0.5, providers: ['other'] } },
  { name: 'spamcop', zone: 'bl.spamcop.net' },
  { name: 'mailspike', zone: 'bl.mailspike.net' },
  { name: 'psbl', zone: 'psbl.surriel.com' },
];

const serverSchema = z.string().refine((server) => isIP(server.replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([\d.]+):\d+$/, '$1')) !== 0, {
  message: 'not a DNS server address (an IP, optionally with :port; [v6]:port)',
});

export const blocklistsConfigSchema = z
  .strictObject({
    /** False: no lookups, no metric series, no reaction (the state already stored is left as it is). */
    enabled: z.boolean().default(true),
    /** Every (IP, list) is looked up once per interval, each at its own offset within it. */
    interval: positiveDurationSchema.refine((ms) => ms >= 60_000, { message: 'at least 1m (lists limit how often they are asked)' }).default(30 * 60_000),
    /** One lookup (the A query, and the TXT query of a listing). */
    timeout: positiveDurationSchema.refine((ms) => ms <= 60_000, { message: 'at most 60s' }).default(5_000),
    /** DNS servers to ask (IP or IP:port); empty: the system's (/etc/resolv.conf). Spamhaus refuses public resolvers. */
    servers: z.array(serverSchema).default([]),
    /** The lists, replacing the defaults (DEFAULT_BLOCKLISTS) when given. */
    lists: z
      .array(blocklistSchema)
      .default(() => DEFAULT_BLOCKLISTS.map((list) => blocklistSchema.parse(list)))
      .superRefine((lists, ctx) => {
        const seen = new Set<string>();
        lists.forEach((list, i) => {
          if (seen.has(list.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate list name ${JSON.stringify(list.name)}` });
          seen.add(list.name);
        });
      }),
  })
  .prefault({});

export type BlocklistsConfig = z.output<typeof blocklistsConfigSchema>;

/** The problems of reactions naming providers the configuration does not know. */
export function unknownBlocklistProviders(config: BlocklistsConfig, providers: ReadonlySet<string>): string[] {
  return config.lists.flatMap((list, i) =>
    list.reaction.action === 'none'
      ? []
      : list.reaction.providers.flatMap((provider, j) =>
          provider === 'all' || providers.has(provider) ? [] : [`blocklists.lists[${i}].reaction.providers[${j}]: unknown provider ${JSON.stringify(provider)}`],
        ),
  );
}
