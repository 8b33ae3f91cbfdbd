import { z } from 'zod';
import { positiveDurationSchema } from './duration.ts';

/**
 * Webhooks (src/webhooks/): this node's dispatcher of the outbox the store fills. Endpoints
 * themselves are data (POST /v1/webhooks), not configuration.
 */
export const webhooksConfigSchema = z
  .strictObject({
    /** False: this node sends no webhooks (events are still written; another node, or a later start, sends them). */
    enabled: z.boolean().default(true),
    /** POSTs in flight at once to one endpoint, from this node. */
    concurrency: z.number().int().min(1).max(100).default(8),
    /** One POST, from connecting to the end of the answer. */
    timeout: positiveDurationSchema.refine((ms) => ms <= 60_000, { message: 'at most 60s' }).default(10_000),
    /** How long delivered (and given-up) deliveries stay in the history (GET /v1/webhooks/{id}/deliveries). */
    retention: positiveDurationSchema.default(7 * 86_400_000),
    /**
     * Deliver to endpoints whose address is loopback, private, link-local, CGNAT, multicast,
     * unspecified or an IPv6 ULA or site-local one. Off by default: a tenant could otherwise
     * make this node POST into the network it stands in.
     */
    allowPrivateNetworks: z.boolean().default(false),
    /**
     * Endpoints one tenant (or mail of no tenant) may have. Each event is written once per
     * subscribed endpoint, in the transaction of the change that caused it, and each endpoint
     * holds deliveries in flight: endpoints without bound would let one tenant slow every send
     * and fill the dispatcher.
     */
    maxEndpointsPerTenant: z.number().int().min(1).max(1000).default(10),
  })
  .prefault({});

export type WebhooksConfig = z.output<typeof webhooksConfigSchema>;
