import { Resolver } from 'node:dns/promises';
import { availableParallelism } from 'node:os';
import { systemClock, type Clock } from './clock.ts';
import { apiExposureWarning } from './control-api/exposure.ts';
import { createControlApi } from './control-api/server.ts';
import { checkDomain } from './sender-domains/domain-check.ts';
import { createDkimKeyStore, type TxtResolver } from './sender-domains/key-store.ts';
import { createSenderDomains } from './sender-domains/sender-domains-view.ts';
import { createDkimSigner } from './sender-domains/signer.ts';
import { createSigningPool } from './sender-domains/signing-pool.ts';
import { returnPathFor } from './sender-domains/verp.ts';
import { DeadSites } from './engine/dead-sites.ts';
import { DeliveryEngine } from './engine/delivery-engine.ts';
import { Queue, type Accepted, type Submission } from './engine/queue.ts';
import { TenantLimits } from './engine/tenant-limits.ts';
import { TenantDirectory } from './access/tenants.ts';
import { RetentionSweeper } from './engine/retention.ts';
import { createRouter, type Resolver as DnsResolver } from './engine/routing.ts';
import { ReadyQueues } from './engine/ready-queue.ts';
import { Scheduler } from './engine/scheduler.ts';
import { createDeliverer } from './engine/smtp-deliverer.ts';
import { createPoolBackend } from './ippool/backend/create-pool-backend.ts';
import { EgressPool } from './ippool/egress-pool.ts';
import { createPoolPolicy } from './ippool/pool-policy.ts';
import { ReactionEngine } from './ippool/reaction-rules.ts';
import { createReputationTracker } from './ippool/reputation.ts';
import { poolAssignerFor } from './ippool/pool-assignment.ts';
import type { Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import type { ResolvedConfig } from './resolved-config.ts';
import { loadOrCreateSelfSignedTls } from './smtp/tls-material.ts';
import { createSubmissionServer } from './smtp/submission-server.ts';
import { cachedReverseLookup } from './smtp/reverse-lookup-cache.ts';
import { createStore } from './storage/create-store.ts';
import { createRedisClient } from './storage/redis-client.ts';
import { RECIPIENT_STATES, type Store } from './storage/store.ts';

export interface DaemonOptions {
  /** The configuration, resolved by resolveConfig: nothing is read or parsed again here. */
  resolved: ResolvedConfig;
  logger: Logger;
  clock?: Clock;
  resolver?: DnsResolver & TxtResolver;
  /** The queue, instead of one made from config.storage; the daemon migrates it and closes it when it stops. */
  store?: Store;
}

export interface Daemon {
  /** Hands a message to the queue directly, as the HTTP API does: the same checks, headers, signing and commit as SMTP. */
  submit(submission: Submission): Promise<Accepted>;
  smtpAddresses(): { host: string; port: number }[];
  apiAddress(): { host: string; port: number };
  /** Rereads what can change without a restart (DKIM key files); returns the problems found. */
  reload(): Promise<string[]>;
  /** Graceful stop; safe to call twice (the second call waits for the first). */
  stop(reason?: string): Promise<void>;
}

/**
 * Composition root: builds every component with its dependencies, starts them in order
 * (storage, API, delivery, then SMTP intake) and stops them in reverse.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { resolved, logger } = options;
  const { config } = resolved;
  const clock = options.clock ?? systemClock;
  const log = logger.child({ component: 'daemon' });
  const metrics = new Metrics();
  const dns = options.resolver ?? new Resolver({ timeout: 10_000, tries: 2 });
  const owner = config.hostname;

  const store = options.store ?? (await startPart('storage', () => createStore(config.storage, { logger, clock })));
  const stack: Array<{ name: string; stop: () => Promise<void> }> = [{ name: 'storage', stop: () => store.close() }];
  const stopAll = async () => {
    for (const { name, stop } of stack.reverse()) {
      await stop().catch((err: unknown) => log.error({ event: 'daemon.stop.failed', part: name, err }, `stopping ${name} failed`));
    }
    stack.length = 0;
  };

  try {
    await startPart('storage', () => store.migrate());
    const redis = config.redis ? createRedisClient(config.redis.url, logger) : null;
    if (redis) stack.push({ name: 'redis', stop: () => redis.close() });

    // The egress pool: data from config/ with this config's overrides; counters, limits and
    // suspensions in Redis when configured (shared by every node), else in the store.
    const poolData = resolved.pool;
    const tenants = new TenantDirectory(config.tenants);
    const policy = createPoolPolicy(poolData, config.reputation);
    const backend = createPoolBackend({ store, redis: redis?.redis ?? null, keyPrefix: config.redis?.keyPrefix, clock });
    // Per (egress IP -> destination site) path: shaping, connection slots, rate buckets.
    const queues = new ReadyQueues({
      shaping: policy.shaping,
      limiter: backend.limiter,
      clock,
      idleConnectionTimeout: config.delivery.idleConnectionTimeout,
      deadSite: config.delivery.deadSite,
    });
    const pool = new EgressPool({
      members: config.ips.map((ip) => ({
        address: ip.address,
        hostname: ip.hostname ?? config.hostname,
        pool: ip.pool,
        weight: ip.weight,
        warmup: ip.warmup ?? null,
      })),
      backend,
      reputation: createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples }),
      reactions: new ReactionEngine(resolved.reactionRules),
      policy,
      paths: queues,
      defaultEgress: { address: null, hostname: config.hostname },
      clock,
      logger,
      metrics,
    });
    // The pool reads its state from its backend: a Redis that cannot be reached fails here, named.
    await startPart(redis ? 'egress pool state in Redis' : 'egress pool state', () => pool.start());
    stack.push({ name: 'ippool', stop: async () => pool.stop() });

    // The DKIM keys as the resolution read them, watched for changes from now on. They sign
    // accepted mail and DSNs alike.
    const dkimKeys = createDkimKeyStore({ keys: resolved.dkimKeys, resolver: dns, clock, logger });
    await dkimKeys.start();
    stack.push({ name: 'dkim', stop: () => dkimKeys.stop() });
    // Signing threads: one per core up to four by default (each holds ~35 MB), none without keys.
    const signingThreads = Object.keys(config.dkim.domains).length === 0 ? 0 : (config.dkim.workers ?? Math.min(availableParallelism(), 4));
    const signingPool = signingThreads > 0 ? createSigningPool({ size: signingThreads, logger }) : undefined;
    if (signingPool) {
      stack.push({ name: 'dkim signing threads', stop: () => signingPool.close() });
      await startPart('DKIM signing threads', () => signingPool.start());
    }
    const dkim = createDkimSigner({
      keys: dkimKeys,
      config: config.dkim,
      clock,
      logger,
      pool: signingPool,
      onUnsigned: (reason) => metrics.dkimUnsigned.inc({ reason }),
    });

    const { timeouts } = config.delivery;
    const deliverer = createDeliverer({ logger, metrics, timeouts, queues, bounceRules: resolved.bounceRules });
    stack.push({ name: 'deliverer', stop: () => deliverer.close() });

    const router = createRouter({ routes: config.delivery.routes, mxPort: config.delivery.mxPort, resolver: dns, clock });
    // Sites no egress IP can reach: probed, their mail held. Started with the scheduler, which it wakes.
    const sites = new DeadSites({
      store,
      paths: queues.health,
      prober: deliverer,
      router,
      clock,
      logger,
      metrics,
      maxAgeMs: config.delivery.maxAge,
      onResumed: () => scheduler.wake(),
    });
    const engine = new DeliveryEngine({
      store,
      sites,
      router,
      deliverer,
      pool,
      clock,
      logger,
      metrics,
      hostname: config.hostname,
      delivery: config.delivery,
      dkim,
      returnPath: ({ sender, messageId, recipientId }) => returnPathFor({ sender, messageId, recipientId, config: config.returnPath }),
    });
    const scheduler = new Scheduler({
      store,
      engine,
      clock,
      logger,
      owner,
      concurrency: config.delivery.concurrency,
      leaseMs: config.delivery.lease,
      beforeClaim: () => sites.holdsDone(),
      // A delivery that could not start (storage or Redis unreachable) waits like a first retry.
      errorRetryMs: config.delivery.retry.initial,
    });

    let shuttingDown = false;
    const api = createControlApi({
      config,
      store,
      clock,
      pool,
      tenants,
      domains: {
        domains: createSenderDomains({ dkim: config.dkim, returnPath: config.returnPath, keys: dkimKeys }),
        check: (domain) => checkDomain({ domain, config, resolver: dns, clock }),
      },
      logger,
      metrics,
      // Ready means able to take mail: the store must commit a write, not only answer.
      checks: { storage: () => store.checkWritable(), ...(redis ? { redis: () => redis.ping() } : {}) },
      isShuttingDown: () => shuttingDown,
      beforeMetrics: async () => {
        const counts = await store.countByState();
        for (const state of RECIPIENT_STATES) metrics.queueDepth.set({ state }, counts[state]);
      },
    });
    const apiAddress = await startPart('control API', () => api.start());
    stack.push({ name: 'api', stop: () => api.stop() });
    const exposure = apiExposureWarning(config.api);
    if (exposure) log.warn({ event: 'api.exposed', code: exposure.code, api: apiAddress }, `${exposure.path}: ${exposure.message}`);

    const retention = new RetentionSweeper({ store, clock, logger, retentionMs: config.storage.retention, auditRetentionMs: config.audit.retention });
    retention.start();
    stack.push({ name: 'retention', stop: () => retention.stop() });

    await scheduler.start();
    stack.push({ name: 'scheduler', stop: () => scheduler.stop(config.delivery.shutdownTimeout) });
    sites.start();
    stack.push({ name: 'dead sites', stop: () => sites.stop() });

    const queue = new Queue({
      store,
      clock,
      metrics,
      dkim,
      hostname: config.hostname,
      assignPool: poolAssignerFor(config),
      tenants,
      tenantLimits: new TenantLimits({ limiter: backend.limiter, counters: backend.counters, clock }),
      onEnqueued: () => scheduler.wake(),
    });
    // Without smtp.tls, a listener that needs TLS gets a self-signed pair made (once) in dataDir.
    const tls =
      resolved.tls ??
      (config.smtp.listeners.some((l) => l.tls !== 'none') ? await loadOrCreateSelfSignedTls({ dataDir: config.dataDir, hostname: config.hostname }) : null);
    // Clients' reverse names, remembered: an application with a connection per message comes
    // back from one address many times a second, and each greeting waits for the lookup.
    const reverseDns = new Resolver({ timeout: 1_500, tries: 1 });
    const reverseLookup = cachedReverseLookup({ lookup: (ip) => reverseDns.reverse(ip), clock });
    const smtp = createSubmissionServer({ config, users: resolved.smtpUsers, queue, tls, logger, metrics, clock, reverseLookup });
    await smtp.start();
    stack.push({ name: 'smtp', stop: () => smtp.stop() });
    // Readiness turns false before anything closes, so load balancers drain first.
    stack.push({ name: 'readiness', stop: async () => void (shuttingDown = true) });

    log.info(
      { event: 'daemon.started', smtp: smtp.addresses(), api: apiAddress, storage: config.storage.driver, ips: config.ips.length },
      'rookery started',
    );

    let stopping: Promise<void> | null = null;
    return {
      submit: (submission) => queue.submit(submission),
      async reload() {
        const problems = await dkimKeys.reload();
        log.info({ event: 'daemon.reloaded', problems }, problems.length ? 'reloaded, with problems (old keys kept)' : 'reloaded');
        return problems;
      },
      smtpAddresses: () => smtp.addresses(),
      apiAddress: () => apiAddress,
      stop(reason = 'stop requested') {
        stopping ??= (async () => {
          log.info({ event: 'daemon.stopping', reason, inFlight: scheduler.activeJobs }, 'rookery stopping');
          await stopAll();
          log.info({ event: 'daemon.stopped' }, 'rookery stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Runs a start-up step that fails only for reasons outside the configuration (storage
 * unreachable, a port taken by another process), so the error names the part that failed.
 */
async function startPart<T>(part: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new Error(`${part}: ${(err as Error).message}`, { cause: err });
  }
}
