import type { Clock } from '../../src/clock.ts';
import { systemClock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { makeConfigParts } from '../../src/config-parts.ts';
import type { ControlApiDeps } from '../../src/control-api/server.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { EgressPool } from '../../src/ippool/egress-pool.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { LiveConfig } from '../../src/live-config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { checkDomain } from '../../src/sender-domains/domain-check.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver, type FixtureResolver } from './fixture-resolver.ts';

/**
 * The egress pool and sender domains a control API reports on, built from `config` as the
 * daemon builds them (src/main.ts, src/config-parts.ts), for tests that start the API alone: a
 * real pool on the local backend over `store` (not started: it holds no timer), and a real DKIM
 * key store (not watching its files). DNS comes from `resolver`, by default an empty zone. Its
 * reload reads `config` again and has no component to swap, so it answers that nothing changed.
 */
export function apiSources(options: { store: Store; config?: ConfigInput; clock?: Clock; resolver?: FixtureResolver }): Pick<ControlApiDeps, 'pool' | 'domains' | 'reload' | 'tenants'> {
  const { store, clock = systemClock, resolver = createFixtureResolver() } = options;
  const read = () => resolveConfig(options.config ?? {}, { source: 'test', env: {} });
  const resolved = read();
  const { config } = resolved;
  const logger = createLogger('silent');
  const dkimKeys = createDkimKeyStore({ keys: resolved.dkimKeys, resolver, clock, logger });
  const parts = makeConfigParts(resolved, { dns: resolver, clock, logger, dkimKeys, signingPool: undefined, onUnsigned: () => {} });
  const backend = createPoolBackend({ store, clock });
  const pool = new EgressPool({
    ...parts.pool,
    backend,
    reputation: createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples }),
    paths: new ReadyQueues({ shaping: parts.pool.policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: config.delivery.deadSite }),
    defaultEgress: { address: null, hostname: config.hostname },
    clock,
    logger,
    metrics: new Metrics({ processMetrics: false }),
  });
  const live = new LiveConfig({ initial: resolved, reread: read, logger, prepare: async () => () => {} });
  return {
    pool,
    tenants: parts.tenants,
    domains: {
      domains: parts.senderDomains,
      check: (domain) => checkDomain({ domain, config, resolver, clock }),
    },
    reload: () => live.reload('api'),
  };
}
