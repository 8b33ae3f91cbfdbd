import { TenantDirectory } from '../../src/access/tenants.ts';
import type { Clock } from '../../src/clock.ts';
import { systemClock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlApiDeps } from '../../src/control-api/server.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { EgressPool } from '../../src/ippool/egress-pool.ts';
import { createPoolPolicy } from '../../src/ippool/pool-policy.ts';
import { ReactionEngine } from '../../src/ippool/reaction-rules.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { checkDomain } from '../../src/sender-domains/domain-check.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { createSenderDomains } from '../../src/sender-domains/sender-domains-view.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver, type FixtureResolver } from './fixture-resolver.ts';

/**
 * The egress pool and sender domains a control API reports on, built from `config` as the
 * daemon builds them (src/main.ts), for tests that start the API alone: a real pool on the
 * local backend over `store` (not started: it holds no timer), and a real DKIM key store (not
 * watching its files). DNS comes from `resolver`, by default an empty zone.
 */
export function apiSources(options: { store: Store; config?: ConfigInput; clock?: Clock; resolver?: FixtureResolver }): Pick<ControlApiDeps, 'pool' | 'domains' | 'tenants'> {
  const { store, clock = systemClock, resolver = createFixtureResolver() } = options;
  const resolved = resolveConfig(options.config ?? {}, { source: 'test', env: {} });
  const { config } = resolved;
  const logger = createLogger('silent');
  const policy = createPoolPolicy(resolved.pool, config.reputation);
  const backend = createPoolBackend({ store, clock });
  const pool = new EgressPool({
    members: config.ips.map((ip) => ({ address: ip.address, hostname: ip.hostname ?? config.hostname, pool: ip.pool, weight: ip.weight, warmup: ip.warmup ?? null })),
    backend,
    reputation: createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples }),
    reactions: new ReactionEngine(resolved.reactionRules),
    policy,
    paths: new ReadyQueues({ shaping: policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: config.delivery.deadSite }),
    defaultEgress: { address: null, hostname: config.hostname },
    clock,
    logger,
    metrics: new Metrics({ processMetrics: false }),
  });
  const keys = createDkimKeyStore({ keys: resolved.dkimKeys, resolver, clock, logger });
  return {
    pool,
    tenants: new TenantDirectory(config.tenants),
    domains: {
      domains: createSenderDomains({ dkim: config.dkim, returnPath: config.returnPath, keys }),
      check: (domain) => checkDomain({ domain, config, resolver, clock }),
    },
  };
}
