import type { LookupFunction } from 'node:net';
import type { Clock } from '../../clock.ts';
import type { Config } from '../../config/schema.ts';
import type { TxtResolver } from '../../sender-domains/key-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { DkimSigner } from '../../sender-domains/signer.ts';
import type { Store } from '../../storage/store.ts';
import { createHttpPoster, type HttpPoster } from '../http-poster.ts';
import { createStsFetcher } from './mta-sts-fetcher.ts';
import { createStsResolver } from './mta-sts-resolver.ts';
import { createTlsPolicies, type TlsPolicies } from './tls-policies.ts';
import { TlsReportSender } from './tls-report-sender.ts';
import { TlsSessionCounter } from './tls-session-counter.ts';

/**
 * The outbound TLS parts the daemon runs, made from delivery.tls, tlsPolicies, mtaSts and
 * tlsReports: the per-domain TLS requirement (with MTA-STS), the TLS-RPT session counter the
 * deliverer feeds, and the daily report sender.
 */

/** Where certificates are checked against and policy hosts found: the system's in production; tests give a test CA and loopback. */
export interface TlsTrust {
  ca?: string | Buffer | Array<string | Buffer>;
  /** Port of MTA-STS policy hosts (443). */
  stsPort?: number;
  /** Name resolution of policy hosts and report URLs. */
  lookup?: LookupFunction;
}

export interface OutboundTlsDeps {
  config: Config;
  /** delivery of the configuration in effect (a reload may change tls and tlsPolicies). */
  delivery: () => Config['delivery'];
  store: Store;
  resolver: TxtResolver;
  dkim: Pick<DkimSigner, 'sign'>;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  owner: string;
  trust?: TlsTrust;
}

export interface OutboundTls {
  policies: TlsPolicies;
  sessions: TlsSessionCounter | null;
  start(): void;
  stop(): Promise<void>;
}

export function createOutboundTls(deps: OutboundTlsDeps): OutboundTls {
  const { config, store, clock, logger, trust } = deps;
  const { mtaSts, tlsReports } = config.delivery;
  const fetch = createStsFetcher({
    timeoutMs: mtaSts.fetchTimeout,
    allowPrivateNetworks: mtaSts.allowPrivateNetworks,
    ...(trust?.ca ? { ca: trust.ca } : {}),
    ...(trust?.stsPort ? { port: trust.stsPort } : {}),
    ...(trust?.lookup ? { lookup: trust.lookup } : {}),
  });
  const sts = createStsResolver({ resolver: deps.resolver, fetch, store, metrics: deps.metrics, clock, logger, recheckMs: mtaSts.recheck });
  const policies = createTlsPolicies({
    sts,
    settings: () => {
      const delivery = deps.delivery();
      return { mode: delivery.tls, policies: delivery.tlsPolicies, mtaSts: mtaSts.enabled, reports: tlsReports.enabled };
    },
  });
  if (!tlsReports.enabled) return { policies, sessions: null, start() {}, stop: () => sts.settled() };

  const sessions = new TlsSessionCounter({ store, clock, logger });
  const poster: HttpPoster = createHttpPoster({
    timeoutMs: 30_000,
    allowPrivateNetworks: tlsReports.allowPrivateNetworks,
    userAgent: 'Rookery-TLSRPT/1',
    setting: 'delivery.tlsReports.allowPrivateNetworks',
    ...(trust?.ca ? { ca: trust.ca } : {}),
    ...(trust?.lookup ? { lookup: trust.lookup as never } : {}),
  });
  const sender = new TlsReportSender({
    store,
    resolver: deps.resolver,
    poster,
    dkim: deps.dkim,
    metrics: deps.metrics,
    clock,
    logger,
    owner: deps.owner,
    reporter: {
      organization: tlsReports.organization ?? config.hostname,
      contact: tlsReports.contact ?? `postmaster@${config.hostname}`,
      submitter: config.hostname,
    },
    from: tlsReports.from ?? `noreply-tlsrpt@${config.hostname}`,
    pool: tlsReports.pool,
  });
  return {
    policies,
    sessions,
    start() {
      sessions.start();
      sender.start();
    },
    async stop() {
      // The counts go to the store at once, while the sender ends its pass (its POSTs and lookups cut off).
      await Promise.all([sessions.stop(), sender.stop(), sts.settled()]);
      poster.close();
    },
  };
}
