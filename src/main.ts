import { Resolver } from 'node:dns/promises';
import { zeroAlertedSeries } from './alerted-series.ts';
import type { BlocklistsConfig } from './config/blocklist-schema.ts';
import { BlocklistWatch, blocklistStatesOf } from './ippool/blocklist-watch.ts';
import { availableParallelism } from 'node:os';
import { systemClock, type Clock } from './clock.ts';
import { apiExposureWarning } from './control-api/exposure.ts';
import { createControlApi } from './control-api/server.ts';
import { minFreeBytesFor } from './control-api/readiness.ts';
import type { ReloadOutcome } from './config/reload-scope.ts';
import { makeConfigParts, type ConfigParts } from './config-parts.ts';
import { LiveConfig } from './live-config.ts';
import { checkDomain } from './sender-domains/domain-check.ts';
import { createDkimKeyStore, type TxtResolver } from './sender-domains/key-store.ts';
import { explainSender } from './sender-domains/sender-explanation.ts';
import { createSigningPool } from './sender-domains/signing-pool.ts';
import { DeadSites } from './engine/dead-sites.ts';
import { DeliveryEngine } from './engine/delivery-engine.ts';
import { Queue, type Accepted, type Submission } from './engine/queue.ts';
import { BufferBudget } from './engine/buffer-budget.ts';
import { StorageSpace } from './engine/storage-space.ts';
import { TenantLimits } from './engine/tenant-limits.ts';
import type { TenantLookup } from './access/tenants.ts';
import { QueueOperations } from './engine/queue-operations.ts';
import { PausedMail } from './engine/paused-mail.ts';
import { QueuePauses } from './engine/queue-pauses.ts';
import { QueueAge } from './engine/queue-age.ts';
import { RetentionSweeper } from './engine/retention.ts';
import { AutoSuppression } from './engine/auto-suppression.ts';
import { SuppressionCheck, suppressionActionFor } from './engine/suppression-check.ts';
import { createRouteExplainer } from './engine/route-explanation.ts';
import type { Resolver as DnsResolver } from './engine/routing.ts';
import { ReadyQueues } from './engine/ready-queue.ts';
import { FreshMessages } from './engine/fresh-messages.ts';
import { Scheduler } from './engine/scheduler.ts';
import { createDeliverer } from './engine/smtp-deliverer.ts';
import { createOutboundTls, type TlsTrust } from './engine/tls/outbound-tls.ts';
import { createPoolBackend } from './ippool/backend/create-pool-backend.ts';
import { EgressPool } from './ippool/egress-pool.ts';
import { createReputationTracker } from './ippool/reputation.ts';
import { FALLBACK_PROVIDER } from './ippool/providers.ts';
import { FeedbackRecorder } from './feedback/feedback-recorder.ts';
import { InboundServer } from './feedback/inbound-listener.ts';
import type { Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import type { ResolvedConfig } from './resolved-config.ts';
import { loadOrCreateSelfSignedTls } from './smtp/tls-material.ts';
import { showTlsExpiry, type TlsExpiryDeps } from './smtp/tls-expiry.ts';
import { createSubmissionServer } from './smtp/submission-server.ts';
import { cachedReverseLookup } from './smtp/reverse-lookup-cache.ts';
import { createMailtoUnsubscribe, type MailtoUnsubscribe } from './feedback/unsubscribe-mailto.ts';
import { createUnsubscribeRecorder } from './feedback/unsubscribe-recorder.ts';
import { createUnsubscribeServer } from './feedback/unsubscribe-server.ts';
import { createStore } from './storage/create-store.ts';
import { RECIPIENT_STATES, type Store } from './storage/store.ts';
import type { WebhookThread } from './webhooks/dispatcher-thread.ts';
import { createWebhookDispatching } from './webhooks/webhook-dispatching.ts';
import { dispatchOnDemand } from './webhooks/on-demand-dispatching.ts';
import { WebhookMetrics } from './webhooks/webhook-metrics.ts';

/**
 * The resolver of blocklist lookups: its own, so `blocklists.servers` (a local resolver that
 * Spamhaus answers, unlike a public one) never changes how mail is routed. One try: the watch
 * keeps the state a lookup without an answer leaves, and asks again next interval.
 */
function blocklistResolver(settings: BlocklistsConfig): Resolver {
  const resolver = new Resolver({ timeout: settings.timeout, tries: 1 });
  if (settings.servers.length) resolver.setServers(settings.servers);
  return resolver;
}

export interface DaemonOptions {
  /** The configuration, resolved by resolveConfig: nothing is read or parsed again here. */
  resolved: ResolvedConfig;
  logger: Logger;
  clock?: Clock;
  resolver?: DnsResolver & TxtResolver;
  /** Roots and name resolution for outbound TLS checks and MTA-STS fetches (tests); the system's by default. */
  tlsTrust?: TlsTrust;
  /** The queue, instead of one made from config.storage; the daemon migrates it and closes it when it stops. */
  store?: Store;
  /**
   * Reads and resolves the configuration again for a reload (SIGHUP, POST /v1/reload), as `run`
   * read it at start; throws ConfigError. Default: `resolved` again, so a reload changes nothing.
   */
  reread?: () => ResolvedConfig;
}

export interface Daemon {
  /** Hands a message to the queue directly, as the HTTP API does: the same checks, headers, signing and commit as SMTP. */
  submit(submission: Submission): Promise<Accepted>;
  smtpAddresses(): { host: string; port: number }[];
  /** The inbound listeners (bounces, complaints), in config order. */
  inboundAddresses(): { host: string; port: number }[];
  apiAddress(): { host: string; port: number };
  /** Where the unsubscribe listener listens; null without unsubscribe.listen. */
  unsubscribeAddress(): { host: string; port: number } | null;
  /** The mailto: unsubscribe addresses, for the inbound SMTP listener; null without a suppression list. */
  mailtoUnsubscribe: MailtoUnsubscribe;
  /**
   * Reads the configuration again and applies it whole, or changes nothing and returns every
   * problem (see LiveConfig); `trigger` (signal, api) is logged. Reloads run one at a time.
   */
  reload(trigger: string): Promise<ReloadOutcome>;
  /** Graceful stop; safe to call twice (the second call waits for the first). */
  stop(reason?: string): Promise<void>;
}

/**
 * Composition root: builds every component with its dependencies, starts them in order
 * (storage, API, delivery, then SMTP intake) and stops them in reverse.
 *
 * `config` is the configuration at start: what it decides needs a restart to change
 * (config/reload-scope.ts). What a reload may change is read from `live.current` per use, or
 * from `parts` (made from it, swapped whole with it), or handed to a component that swaps it in
 * one call (the pool's setup, the SMTP users, the API tokens, the DKIM keys): all in one
 * synchronous commit, so nothing sees half an old and half a new configuration.
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
    // ioredis is loaded only when Redis is configured: the embedded default does without its memory.
    const redis = config.redis ? (await import('./storage/redis-client.ts')).createRedisClient(config.redis.url, logger) : null;
    if (redis) stack.push({ name: 'redis', stop: () => redis.close() });

    // The DKIM keys as the resolution read them, watched for changes from now on. They sign
    // accepted mail and DSNs alike.
    const dkimKeys = createDkimKeyStore({ keys: resolved.dkimKeys, resolver: dns, clock, logger });
    await dkimKeys.start();
    stack.push({ name: 'dkim', stop: () => dkimKeys.stop() });
    // Signing threads: one per core up to four by default (each holds ~35 MB), none without keys.
    const signingThreads = Object.keys(config.dkim.domains).length === 0 ? 0 : (config.dkim.workers ?? Math.min(availableParallelism(), 4));
    const signingPool = signingThreads > 0 ? createSigningPool({ size: signingThreads, logger, clock }) : undefined;
    if (signingPool) {
      stack.push({ name: 'dkim signing threads', stop: () => signingPool.close() });
      await startPart('DKIM signing threads', () => signingPool.start());
    }

    const partDeps = { dns, clock, logger, dkimKeys, signingPool, onUnsigned: (reason: string) => metrics.dkimUnsigned.inc({ reason }) };
    zeroAlertedSeries(metrics, config.ips.map((ip) => ip.address));
    let parts: ConfigParts = makeConfigParts(resolved, partDeps);
    // The tenants of the configuration in effect, for every door and the queue.
    const tenants: TenantLookup = { get: (name) => parts.tenants.get(name), names: () => parts.tenants.names() };
    const live = new LiveConfig({
      initial: resolved,
      reread: options.reread ?? (() => resolved),
      logger,
      // What takes time or may fail is made first; the commit only swaps (see LiveConfig).
      prepare: async (next, plan) => {
        const changed = (path: string) => plan.changed.some((p) => p === path || p.startsWith(`${path}.`));
        const users = changed('smtp.users') ? await smtp.prepareUsers(next.smtpUsers) : null;
        const commitKeys = await dkimKeys.stage(next.dkimKeys);
        // Renewed smtp.tls files (the same object otherwise: LiveConfig keeps the running one).
        const commitTls = next.tls && next.tls !== live.current.tls ? smtp.stageTls(next.tls) : null;
        const nextParts = makeConfigParts(next, partDeps, { parts, resolved: live.current, changed });
        return () => {
          parts = nextParts;
          pool.reconfigure(nextParts.pool);
          zeroAlertedSeries(metrics, next.config.ips.map((ip) => ip.address));
          commitKeys();
          commitTls?.();
          if (commitTls) {
            inbound.updateTls(next.tls!);
            showTlsExpiry(tlsExpiry, next.tls!.cert);
          }
          if (users) smtp.replaceUsers(users);
          api.replaceTokens(next.config.api.tokens);
        };
      },
    });

    // The egress pool: data from config/ with this config's overrides; counters, limits and
    // suspensions in Redis when configured (shared by every node), else in the store.
    const backend = createPoolBackend({ store, redis: redis?.redis ?? null, keyPrefix: config.redis?.keyPrefix, clock });
    // The operator's pauses, from the store (shared by every node): the claims leave paused
    // domains, pools and tenants alone, the pool leaves paused IPs out. Their queued mail is parked
    // out of the claims' way; a resume releases it and wakes the scheduler.
    const parked = new PausedMail({ store, clock, logger, pauses: () => pauses.current(), onReleased: () => scheduler.wake() });
    stack.push({ name: 'paused mail', stop: () => parked.stop() });
    const pauses = new QueuePauses({
      store,
      clock,
      logger,
      metrics,
      onPaused: (pause) => void parked.park(pause),
      onEnded: () => {
        scheduler.wake();
        void parked.release();
      },
    });
    await startPart('queue pauses', () => pauses.load());
    // Per (egress IP -> destination site) path: shaping, connection slots, rate buckets.
    const queues = new ReadyQueues({
      shaping: (provider) => parts.pool.policy.shaping(provider),
      limiter: backend.limiter,
      clock,
      idleConnectionTimeout: config.delivery.idleConnectionTimeout,
      deadSite: config.delivery.deadSite,
    });
    // Fed by every delivery, and by the complaints and asynchronous bounces that come back later.
    const reputation = createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples });
    const pool = new EgressPool({
      ...parts.pool,
      backend,
      reputation,
      paths: queues,
      defaultEgress: { address: null, hostname: config.hostname },
      clock,
      logger,
      metrics,
      pauses,
      blocklistStates: (ips) => blocklistStatesOf(store, live.current.config.blocklists, ips),
    });
    // The pool reads its state from its backend: a Redis that cannot be reached fails here, named.
    await startPart(redis ? 'egress pool state in Redis' : 'egress pool state', () => pool.start());
    stack.push({ name: 'ippool', stop: async () => pool.stop() });
    // This node's egress IPs looked up in the DNS blocklists; a listing acts through the pool.
    const blocklists = new BlocklistWatch({
      settings: () => live.current.config.blocklists,
      ips: () => live.current.config.ips.map((ip) => ip.address),
      resolver: options.resolver ?? blocklistResolver(config.blocklists),
      store,
      pool,
      clock,
      logger,
      metrics,
    });
    await startPart('blocklist watch', () => blocklists.start());
    stack.push({ name: 'blocklist watch', stop: () => blocklists.stop() });

    // Stable faces of the parts a reload replaces, for the components that keep them.
    const dkim = { sign: (message: Buffer) => parts.signer.sign(message) };
    const router = { resolve: (domain: string) => parts.router.resolve(domain) };

    const { timeouts } = config.delivery;
    // The TLS each domain is held to (MTA-STS), and TLS-RPT: stopped after the deliverer, so its last sessions are counted.
    const trust = options.tlsTrust;
    const outboundTls = createOutboundTls({ config, delivery: () => live.current.config.delivery, store, resolver: dns, dkim, metrics, clock, logger, owner, ...(trust ? { trust } : {}) });
    stack.push({ name: 'outbound TLS', stop: () => outboundTls.stop() });
    const deliverer = createDeliverer({
      logger,
      metrics,
      timeouts,
      queues,
      bounceRules: () => live.current.bounceRules,
      ...(trust?.ca ? { ca: trust.ca } : {}),
      ...(outboundTls.sessions ? { tlsSessions: outboundTls.sessions } : {}),
    });
    stack.push({ name: 'deliverer', stop: () => deliverer.close() });

    // Sites no egress IP can reach: probed, their mail held. Started with the scheduler, which it wakes.
    const sites = new DeadSites({
      store,
      paths: queues.health,
      prober: deliverer,
      router,
      clock,
      logger,
      metrics,
      maxAgeMs: () => live.current.config.delivery.maxAge,
      onResumed: () => scheduler.wake(),
    });
    // Permanent failures the suppression rules take put their recipient on the list, after the
    // result is recorded and never waited for. Stopped after the scheduler, before the store.
    const autoSuppression = new AutoSuppression({ store, rules: () => live.current.suppressionRules, clock, logger, metrics });
    stack.push({ name: 'suppression', stop: () => autoSuppression.stop() });
    const engine = new DeliveryEngine({
      store,
      sites,
      router,
      tls: outboundTls.policies,
      deliverer,
      pool,
      clock,
      logger,
      metrics,
      hostname: config.hostname,
      settings: () => parts.engine,
      dkim,
      suppression: autoSuppression,
    });
    // Bodies of mail just accepted here, handed to its first delivery instead of read back.
    const fresh = new FreshMessages({ clock });
    const scheduler = new Scheduler({
      store,
      engine,
      clock,
      logger,
      owner,
      concurrency: config.delivery.concurrency,
      leaseMs: config.delivery.lease,
      beforeClaim: () => sites.holdsDone(),
      paused: () => pauses.claimFilter(),
      fresh,
      // A delivery that could not start (storage or Redis unreachable) waits like a first retry.
      errorRetryMs: () => live.current.config.delivery.retry.initial,
    });

    const operations = new QueueOperations({
      store,
      clock,
      logger,
      metrics,
      dsn: { hostname: config.hostname, dsn: () => live.current.config.delivery.dsn, dkim },
      owner,
      leaseMs: config.delivery.lease,
      onDue: () => scheduler.wake(),
    });

    // The one accept path, for SMTP and the HTTP API alike. Mail taken before the scheduler
    // runs is stored all the same, and claimed when it starts.
    // The memory of messages being received, one budget for both doors (smtp.maxBufferedBytes).
    const buffers = new BufferBudget(config.smtp.maxBufferedBytes);
    // The disk space beside the queue: both doors refuse new mail while it is below readiness's margin.
    const minFreeBytes = minFreeBytesFor(config.smtp.maxMessageBytes);
    const space = new StorageSpace({ store, minFreeBytes, logger });
    await startPart('disk space watch', () => space.start());
    stack.push({ name: 'disk space watch', stop: async () => space.stop() });
    // The suppression list as both doors and the queue ask it, with the action in effect per tenant.
    const suppressions = new SuppressionCheck({ store, clock, action: (tenant) => suppressionActionFor(live.current.config, tenant) });
    const queue = new Queue({
      store,
      clock,
      metrics,
      dkim,
      hostname: config.hostname,
      policy: () => parts,
      tenantLimits: new TenantLimits({ limiter: backend.limiter, counters: backend.counters, clock }),
      suppressions,
      onEnqueued: () => scheduler.wake(),
      fresh,
    });

    const queueAge = new QueueAge({ store, clock });
    let shuttingDown = false;
    let stopping: Promise<void> | null = null;
    // Started after the API (webhooks.enabled); the API wakes it when deliveries fall due.
    let webhooks: WebhookThread | null = null;
    const webhookMetrics = new WebhookMetrics(metrics.registry);
    const api = createControlApi({
      config,
      store,
      clock,
      tenants,
      pool,
      queue: { pauses, operations },
      domains: {
        domains: { list: () => parts.senderDomains.list(), find: (name) => parts.senderDomains.find(name) },
        check: (domain) => checkDomain({ domain, config: live.current.config, resolver: dns, clock }),
      },
      reload: () => live.reload('api'),
      // Made for each question from the configuration in effect, so a reload shows at once.
      explainer: {
        explain: (request) => {
          const { config: current } = live.current;
          return createRouteExplainer({
            router: parts.router,
            pool,
            sites,
            tls: outboundTls.policies,
            assignPool: parts.assignPool,
            tenants,
            users: current.smtp.users,
            sender: (sender) => explainSender(sender, { dkim: current.dkim, keys: dkimKeys, returnPath: current.returnPath }),
            clock,
          }).explain(request);
        },
      },
      intake: { queue, space, limits: { maxMessageBytes: config.smtp.maxMessageBytes, maxRecipients: config.smtp.maxRecipients, buffers, dkimExpiryMs: config.dkim.expiry } },
      webhooks: { allowPrivateNetworks: config.webhooks.allowPrivateNetworks, maxEndpointsPerTenant: config.webhooks.maxEndpointsPerTenant, onDue: () => webhooks?.wake() },
      logger,
      metrics,
      // Ready means able to take mail: the store must commit a write, not only answer, and, on
      // SQLite, the doors must not be refusing it for want of disk space (a check of its own: the
      // store still writes then, and the queue gauges are read as usual).
      checks: {
        storage: () => store.checkWritable(minFreeBytes),
        ...(store.driver === 'sqlite' ? { disk: async () => space.check() } : {}),
        ...(redis ? { redis: () => redis.ping() } : {}),
      },
      isShuttingDown: () => shuttingDown,
      beforeMetrics: async () => {
        metrics.queueOldestAge.set(await queueAge.refresh());
        const counts = await store.countByState();
        for (const state of RECIPIENT_STATES) metrics.queueDepth.set({ state }, counts[state]);
        webhookMetrics.show(await store.webhookOutboxStats());
      },
    });
    const apiAddress = await startPart('control API', () => api.start());
    stack.push({ name: 'api', stop: () => api.stop() });
    // Before the API closes (it waits for requests in flight): a bulk change answers what it did so far.
    stack.push({ name: 'queue operations', stop: async () => operations.stop() });
    const exposure = apiExposureWarning(config.api);
    if (exposure) log.warn({ event: 'api.exposed', code: exposure.code, api: apiAddress }, `${exposure.path}: ${exposure.message}`);

    const retention = new RetentionSweeper({
      store,
      clock,
      logger,
      retentionMs: config.storage.retention,
      bodyRetentionMs: config.storage.bodyRetention,
      auditRetentionMs: config.audit.retention,
      webhookRetentionMs: config.webhooks.retention,
    });
    retention.start();
    stack.push({ name: 'retention', stop: () => retention.stop() });

    // The webhook dispatcher, on a thread of its own, started once an endpoint is registered. It
    // stops after the scheduler (whose last results may add events) and before storage:
    // deliveries not sent are given back, those in flight recorded.
    if (config.webhooks.enabled) {
      const dispatching = dispatchOnDemand({
        dispatching: createWebhookDispatching({ config, handedStore: options.store, clock, logger, metrics: webhookMetrics, owner }),
        hasEndpoint: async () => (await store.listWebhooks(undefined, null, 1)).length > 0,
        logger,
      });
      stack.push({ name: 'webhooks', stop: () => dispatching.stop() });
      // Set first: an endpoint registered through the API while this starts wakes it.
      webhooks = dispatching;
      await startPart('webhooks', () => dispatching.start());
    }

    await scheduler.start();
    outboundTls.start();
    stack.push({ name: 'scheduler', stop: () => scheduler.stop(live.current.config.delivery.shutdownTimeout) });
    pauses.start();
    stack.push({ name: 'queue pauses', stop: async () => pauses.stop() });
    parked.start();
    sites.start();
    stack.push({ name: 'dead sites', stop: () => sites.stop() });

    // Without smtp.tls, a listener that needs TLS gets a self-signed pair made (once) in dataDir.
    const tls =
      resolved.tls ??
      (config.smtp.listeners.some((l) => l.tls !== 'none') ? await loadOrCreateSelfSignedTls({ dataDir: config.dataDir, hostname: config.hostname }) : null);
    // Clients' reverse names, remembered: an application with a connection per message comes
    // back from one address many times a second, and each greeting waits for the lookup.
    const reverseDns = new Resolver({ timeout: 1_500, tries: 1 });
    const reverseLookup = cachedReverseLookup({ lookup: (ip) => reverseDns.reverse(ip), clock });
    // Unsubscribes, by the https link (this listener) or by mail (the inbound listener calls
    // mailtoUnsubscribe), both recorded in the suppression list.
    const unsubscribes = createUnsubscribeRecorder({ suppressions: store, metrics, logger });
    const links = () => parts.unsubscribe;
    const mailtoUnsubscribe = createMailtoUnsubscribe({ links, store, recorder: unsubscribes, metrics, logger });
    let unsubscribeAddress: { host: string; port: number } | null = null;
    const { unsubscribe: unsubscribeConfig } = config;
    if (unsubscribeConfig.listen) {
      const server = createUnsubscribeServer({ ...unsubscribeConfig, listen: unsubscribeConfig.listen, links, recorder: unsubscribes, clock, metrics, logger });
      stack.push({ name: 'unsubscribe listener', stop: () => server.stop() });
      unsubscribeAddress = await startPart('unsubscribe listener', () => server.start());
    }

    const smtp = createSubmissionServer({ config, users: resolved.smtpUsers, tenants, queue, suppressions, tls, logger, metrics, clock, reverseLookup, buffers, space });
    await smtp.start();
    stack.push({ name: 'smtp', stop: () => smtp.stop() });

    // What comes back: bounces to the VERP return paths, complaints to the feedback-loop
    // addresses: recorded on the recipient, counted against the egress IP, and the address
    // suppressed for its tenant after a complaint or a hard bounce.
    const feedback = new FeedbackRecorder({
      store,
      reputation,
      providerOf: async (domain) => {
        const route = await router.resolve(domain).catch(() => null);
        return route?.ok ? parts.pool.policy.providerOfSite(route.site) : FALLBACK_PROVIDER;
      },
      clock,
      logger,
      metrics,
    });
    const inbound = new InboundServer({ config, current: () => live.current, store, recorder: feedback, unsubscribe: mailtoUnsubscribe, tls, buffers, reverseLookup, resolver: dns, logger, metrics, clock });
    await startPart('inbound listener', () => inbound.start());
    stack.push({ name: 'inbound', stop: () => inbound.stop() });
    const tlsExpiry: TlsExpiryDeps = { gauge: metrics.tlsCertificateExpiry, config, smtp: smtp.addresses(), inbound: inbound.addresses() };
    showTlsExpiry(tlsExpiry, tls?.cert ?? null);
    // Readiness turns false before anything closes, so load balancers drain first.
    stack.push({ name: 'readiness', stop: async () => void (shuttingDown = true) });

    // Reloads are taken from here until stop begins: before, the components a reload swaps
    // into are not all built; after, they are closing.
    live.open();
    log.info(
      {
        event: 'daemon.started',
        smtp: smtp.addresses(),
        inbound: inbound.addresses(),
        api: apiAddress,
        ...(unsubscribeAddress ? { unsubscribe: unsubscribeAddress } : {}),
        storage: config.storage.driver,
        ips: config.ips.length,
      },
      'rookery started',
    );

    return {
      submit: (submission) => queue.submit(submission),
      reload: (trigger) => live.reload(trigger),
      smtpAddresses: () => smtp.addresses(),
      inboundAddresses: () => inbound.addresses(),
      apiAddress: () => apiAddress,
      unsubscribeAddress: () => unsubscribeAddress,
      mailtoUnsubscribe,
      stop(reason = 'stop requested') {
        live.close();
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
