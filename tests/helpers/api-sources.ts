import type { Clock } from '../../src/clock.ts';
import { systemClock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { makeConfigParts } from '../../src/config-parts.ts';
import type { ControlApiDeps } from '../../src/control-api/server.ts';
import { BufferBudget } from '../../src/engine/buffer-budget.ts';
import { DeadSites } from '../../src/engine/dead-sites.ts';
import { QueueOperations } from '../../src/engine/queue-operations.ts';
import { QueuePauses } from '../../src/engine/queue-pauses.ts';
import { Queue } from '../../src/engine/queue.ts';
import { TenantLimits } from '../../src/engine/tenant-limits.ts';
import { SuppressionCheck, suppressionActionFor } from '../../src/engine/suppression-check.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createRouteExplainer } from '../../src/engine/route-explanation.ts';
import { createDeliverer } from '../../src/engine/smtp-deliverer.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { EgressPool } from '../../src/ippool/egress-pool.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { LiveConfig } from '../../src/live-config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { checkDomain } from '../../src/sender-domains/domain-check.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { explainSender } from '../../src/sender-domains/sender-explanation.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver, type FixtureResolver } from './fixture-resolver.ts';
import type { FreshMessages } from '../../src/engine/fresh-messages.ts';

/**
 * The egress pool, sender domains, route explainer, queue operations and the queue's accept path
 * a control API reports on, acts with and sends into, built from `config` as the daemon builds
 * them (src/main.ts, src/config-parts.ts), for tests that start the API alone: a real pool on the
 * local backend over `store` (not started: it holds no timer), a real DKIM key store (not
 * watching its files), the real router, dead sites that are not started (none is held), the
 * queue's pauses and operations over `store`, and a real queue signing on the event loop (no
 * scheduler to wake). DNS comes from `resolver`, by default an empty zone. Its reload reads
 * `config` again and has no component to swap, so it answers that nothing changed.
 */
export function apiSources(options: { store: Store; config?: ConfigInput; clock?: Clock; resolver?: FixtureResolver; fresh?: FreshMessages }): Pick<ControlApiDeps, 'pool' | 'domains' | 'reload' | 'tenants' | 'explainer' | 'queue' | 'intake'> {
  const { store, clock = systemClock, resolver = createFixtureResolver() } = options;
  const read = () => resolveConfig(options.config ?? {}, { source: 'test', env: {} });
  const resolved = read();
  const { config } = resolved;
  const logger = createLogger('silent');
  const metrics = new Metrics({ processMetrics: false });
  const dkimKeys = createDkimKeyStore({ keys: resolved.dkimKeys, resolver, clock, logger });
  const parts = makeConfigParts(resolved, { dns: resolver, clock, logger, dkimKeys, signingPool: undefined, onUnsigned: () => {} });
  const backend = createPoolBackend({ store, clock });
  const queues = new ReadyQueues({ shaping: parts.pool.policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: config.delivery.deadSite });
  const pool = new EgressPool({
    ...parts.pool,
    backend,
    reputation: createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples }),
    paths: queues,
    defaultEgress: { address: null, hostname: config.hostname },
    clock,
    logger,
    metrics,
  });
  const deliverer = createDeliverer({ logger, metrics, timeouts: config.delivery.timeouts, queues, bounceRules: () => resolved.bounceRules });
  const sites = new DeadSites({ store, paths: queues.health, prober: deliverer, router: parts.router, clock, logger, metrics, maxAgeMs: () => config.delivery.maxAge, onResumed: () => {} });
  const live = new LiveConfig({ initial: resolved, reread: read, logger, prepare: async () => () => {} });
  live.open();
  const operations = new QueueOperations({
    store,
    clock,
    logger,
    metrics,
    dsn: { hostname: config.hostname, dsn: () => config.delivery.dsn, dkim: parts.signer },
    owner: config.hostname,
    leaseMs: config.delivery.lease,
    onDue: () => {},
  });
  const queue = new Queue({
    store,
    clock,
    metrics,
    hostname: config.hostname,
    dkim: parts.signer,
    policy: () => parts,
    tenantLimits: new TenantLimits({ ...backend, clock }),
    suppressions: new SuppressionCheck({ store, clock, action: (tenant) => suppressionActionFor(config, tenant) }),
    onEnqueued: () => undefined,
    ...(options.fresh ? { fresh: options.fresh } : {}),
  });
  return {
    intake: { queue, limits: { maxMessageBytes: config.smtp.maxMessageBytes, maxRecipients: config.smtp.maxRecipients, buffers: new BufferBudget(config.smtp.maxBufferedBytes), dkimExpiryMs: config.dkim.expiry } },
    pool,
    tenants: parts.tenants,
    queue: { pauses: new QueuePauses({ store, clock, logger, metrics, onEnded: () => {} }), operations },
    domains: {
      domains: parts.senderDomains,
      check: (domain) => checkDomain({ domain, config, resolver, clock }),
    },
    reload: () => live.reload('api'),
    explainer: createRouteExplainer({
      router: parts.router,
      pool,
      sites,
      assignPool: parts.assignPool,
      tenants: parts.tenants,
      users: config.smtp.users,
      sender: (sender) => explainSender(sender, { dkim: config.dkim, keys: dkimKeys, returnPath: config.returnPath }),
      clock,
    }),
  };
}
