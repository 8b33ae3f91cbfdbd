import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { TokenDirectory } from '../../access/api-token.ts';
import type { TenantLookup } from '../../access/tenants.ts';
import type { Config } from '../../config/schema.ts';
import type { QueuePauses } from '../../engine/queue-pauses.ts';
import { protectV1Routes, type FailureLimiter } from './auth.ts';
import type { Clock } from '../../clock.ts';
import { recordAuditTrail, type AuditTrailDeps } from './audit-trail.ts';
import { registerAuditRoute, type AuditRouteDeps } from './routes/audit.ts';
import { registerDomainsRoutes, type DomainsRouteDeps } from './routes/domains.ts';
import { registerExplainRoute, type ExplainRouteDeps } from './routes/explain.ts';
import { registerIpOperationsRoutes, type IpOperationsRouteDeps } from './routes/ip-operations.ts';
import { registerIpsRoutes, type IpsRouteDeps } from './routes/ips.ts';
import { registerMessageCancelRoute } from './routes/message-cancel.ts';
import { registerMessagesRoutes, type MessagesRouteDeps } from './routes/messages.ts';
import { registerQueueOperationsRoutes, type QueueOperationsRouteDeps } from './routes/queue-operations.ts';
import { registerQueueRoute, type QueueRouteDeps } from './routes/queue.ts';
import { registerRecipientRoutes, type RecipientRouteDeps } from './routes/recipients.ts';
import { registerReloadRoute, type ReloadRouteDeps } from './routes/reload.ts';
import { registerSendRoutes, type SendRouteDeps } from './routes/send.ts';
import { registerWhoamiRoute } from './routes/whoami.ts';
import { registerSuppressionRoutes, type SuppressionRouteDeps } from './routes/suppressions.ts';
import { registerSuppressionTransferRoutes } from './routes/suppression-transfer.ts';
import { registerWebhookDeliveryRoutes } from './routes/webhook-deliveries.ts';
import { registerWebhookRoutes, type WebhookRouteDeps } from './routes/webhooks.ts';
import { BEARER_SCHEME, PROBLEM_SCHEMA } from './schemas.ts';

export interface V1ApiDeps {
  api: Pick<Config['api'], 'authFailures'>;
  /** The API tokens in effect, asked at each request: a reload replaces them. */
  tokens: () => TokenDirectory;
  /** POST /v1/reload. */
  reload: ReloadRouteDeps['reload'];
  store: QueueRouteDeps['store'] & MessagesRouteDeps['store'] & AuditTrailDeps['store'] & AuditRouteDeps['store'] & SuppressionRouteDeps['store'] & WebhookRouteDeps['store'] & RecipientRouteDeps['store'];
  /** Counts the suppression entries the API writes. */
  metrics: SuppressionRouteDeps['metrics'];
  /** The time /v1/queue measures ages from; the system clock by default. */
  clock?: Clock;
  /** The egress pool, for GET /v1/ips and the IP operations. */
  pool: IpsRouteDeps['pool'] & IpOperationsRouteDeps['pool'] & QueueOperationsRouteDeps['pools'];
  /** The sender domains and their check, for /v1/domains. */
  domains: DomainsRouteDeps;
  /** The configured tenants: a tenant's token sees its pools' IPs and its sender domains; a queue scope may name one. */
  tenants: TenantLookup;
  /** Why a message would go where it goes, for /v1/explain. */
  explainer: ExplainRouteDeps['explainer'];
  /** Pauses, retries and cancellations of queued mail (/v1/queue/..., DELETE /v1/messages/{id}); the pauses also mark paused recipients in GET /v1/messages/{id}. */
  queue: Pick<QueueOperationsRouteDeps, 'operations'> & { pauses: QueueOperationsRouteDeps['pauses'] & Pick<QueuePauses, 'claimFilter'> };
  /** The accept path and its limits, for POST /v1/messages and /batch. */
  intake: Pick<SendRouteDeps, 'queue' | 'limits' | 'space'>;
  /** /v1/webhooks: the SSRF rule of URLs, and the dispatcher to wake when deliveries fall due. Default: private networks refused. */
  webhooks?: Pick<WebhookRouteDeps, 'allowPrivateNetworks' | 'maxEndpointsPerTenant' | 'onDue'>;
  /** True once the daemon stops: sends are refused (503). */
  isShuttingDown?: () => boolean;
  /** Receives every route the plugin guards (the control API refuses /v1 routes that are not). */
  guarded: WeakSet<RouteOptions>;
}

/**
 * The versioned API: /v1 routes behind bearer tokens and roles, and GET /openapi.json generated
 * from their schemas. It is one encapsulated plugin, so the OpenAPI document lists exactly its
 * routes (not /healthz, /readyz, /metrics, which stay open and unchanged) and the auth hooks
 * reach nothing else.
 */
export function registerV1Api(app: FastifyInstance, deps: V1ApiDeps): void {
  app.register(async (v1) => {
    await v1.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Rookery control API',
          version: '1',
          description: 'Errors are RFC 9457 problem documents (application/problem+json) with a stable `code`.',
        },
        components: { securitySchemes: { [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'A token from `rookery token create`.' } } },
      },
      // Shared schemas keep their $id as their name: components.schemas.Problem.
      refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    });
    // Only failed authentications are counted (by auth.ts), never ordinary requests.
    await v1.register(rateLimit, { global: false });
    const failures = v1.createRateLimit({ max: deps.api.authFailures.max, timeWindow: deps.api.authFailures.window }) as FailureLimiter;

    v1.addSchema(PROBLEM_SCHEMA);
    // Before the routes: the audit hooks apply to every route of this plugin.
    recordAuditTrail(v1, { store: deps.store, clock: deps.clock });
    protectV1Routes(v1, { tokens: deps.tokens, failures }, deps.guarded);
    registerWhoamiRoute(v1);
    registerQueueRoute(v1, { store: deps.store, clock: deps.clock });
    registerMessagesRoutes(v1, { store: deps.store, paused: () => deps.queue.pauses.claimFilter() });
    registerMessageCancelRoute(v1, { store: deps.store, operations: deps.queue.operations });
    registerQueueOperationsRoutes(v1, { ...deps.queue, tenants: deps.tenants, tokens: deps.tokens, pools: deps.pool, clock: deps.clock });
    registerSendRoutes(v1, { ...deps.intake, clock: deps.clock, isShuttingDown: deps.isShuttingDown });
    registerIpsRoutes(v1, { pool: deps.pool, tenants: deps.tenants });
    registerIpOperationsRoutes(v1, { pool: deps.pool, clock: deps.clock });
    registerDomainsRoutes(v1, { ...deps.domains, tenants: deps.tenants });
    registerExplainRoute(v1, { explainer: deps.explainer });
    registerAuditRoute(v1, { store: deps.store });
    registerReloadRoute(v1, { reload: deps.reload });
    registerSuppressionRoutes(v1, { store: deps.store, tenants: deps.tenants, metrics: deps.metrics, clock: deps.clock });
    registerSuppressionTransferRoutes(v1, { store: deps.store, tenants: deps.tenants, metrics: deps.metrics, clock: deps.clock });
    const webhooks = { store: deps.store, tenants: deps.tenants, clock: deps.clock, allowPrivateNetworks: false, maxEndpointsPerTenant: 10, ...deps.webhooks };
    registerWebhookRoutes(v1, webhooks);
    registerWebhookDeliveryRoutes(v1, webhooks);
    registerRecipientRoutes(v1, { store: deps.store, clock: deps.clock });

    v1.get('/openapi.json', { schema: { hide: true } }, async () => v1.swagger());
  });
}
