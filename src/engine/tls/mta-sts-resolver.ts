import type { Clock } from '../../clock.ts';
import type { TxtResolver } from '../../sender-domains/key-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { StoredStsPolicy, TlsReportStore } from '../../storage/tls-reports.ts';
import type { StsFetcher } from './mta-sts-fetcher.ts';
import { dnsCode, isNoRecords } from '../routing.ts';
import { parseStsPolicy, parseStsRecord } from './mta-sts-policy.ts';

/**
 * The MTA-STS policy of a recipient domain (RFC 8461 5): its `_mta-sts` TXT record says whether
 * there is one and its id; the policy itself is fetched over HTTPS only when the store (shared by
 * all nodes) has none, an expired one, or one of another id. A policy still within its max_age
 * is kept when the TXT record is gone or the fetch fails (RFC 8461 5.1, so an attacker who blocks
 * DNS or HTTPS cannot turn it off). The answer is remembered per domain for `recheckMs`, so the
 * DNS is asked at most that often; lookups of one domain at a time share one.
 */

export type StsLookup =
  | { kind: 'none' }
  | { kind: 'policy'; policy: StoredStsPolicy }
  /** The domain publishes a policy that could not be had, and none is cached: mail goes as without one, the failure is reported (TLS-RPT). */
  | { kind: 'failed'; failure: 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid'; reason: string };

export interface StsResolver {
  lookup(domain: string): Promise<StsLookup>;
  /** The policy the store holds for the domain, expired or not, without any lookup or fetch (GET /v1/explain). */
  cached(domain: string): Promise<StoredStsPolicy | null>;
}

export interface StsResolverDeps {
  resolver: TxtResolver;
  fetch: StsFetcher;
  store: Pick<TlsReportStore, 'getStsPolicy' | 'saveStsPolicy'>;
  /** Counts fetches by result. */
  metrics?: Pick<Metrics, 'mtaStsFetches'>;
  clock: Clock;
  logger: Logger;
  /** How long an answer is reused before the TXT record is asked again (default five minutes). */
  recheckMs?: number;
  /** Most domains remembered; the oldest go first. */
  maxEntries?: number;
}

export function createStsResolver(deps: StsResolverDeps): StsResolver {
  const { clock } = deps;
  const log = deps.logger.child({ component: 'mta-sts' });
  const recheckMs = deps.recheckMs ?? 300_000;
  const maxEntries = deps.maxEntries ?? 10_000;
  const remembered = new Map<string, { until: number; answer: StsLookup }>();
  const inflight = new Map<string, Promise<StsLookup>>();

  async function cached(domain: string): Promise<StoredStsPolicy | null> {
    const policy = await deps.store.getStsPolicy(domain).catch((err: unknown) => {
      log.warn({ event: 'mtasts.cache.failed', domain, err }, 'reading the cached MTA-STS policy failed');
      return null;
    });
    return policy && policy.expiresAt > clock.now() ? policy : null;
  }

  async function resolve(domain: string): Promise<StsLookup> {
    const current = await cached(domain);
    const keep = (why: string): StsLookup => {
      if (current) log.info({ event: 'mtasts.kept', domain, id: current.id, why }, 'kept the cached MTA-STS policy');
      return current ? { kind: 'policy', policy: current } : { kind: 'none' };
    };
    let records: string[][];
    try {
      records = await deps.resolver.resolveTxt(`_mta-sts.${domain}`);
    } catch (err) {
      // No record: no policy, unless one is cached. A failed lookup says nothing either way.
      return keep(isNoRecords(dnsCode(err)) ? 'no TXT record' : `TXT lookup failed (${dnsCode(err)})`);
    }
    const record = parseStsRecord(records);
    if (!record) return keep('no valid TXT record');
    if (current && current.id === record.id) return { kind: 'policy', policy: current };

    const fetched = await deps.fetch(domain);
    if (!fetched.ok) {
      deps.metrics?.mtaStsFetches.inc({ result: fetched.failure });
      log.warn({ event: 'mtasts.fetch.failed', domain, id: record.id, failure: fetched.failure, reason: fetched.reason }, 'MTA-STS policy fetch failed');
      return current ? keep(fetched.reason) : { kind: 'failed', failure: fetched.failure, reason: fetched.reason };
    }
    const parsed = parseStsPolicy(fetched.body);
    deps.metrics?.mtaStsFetches.inc({ result: parsed.ok ? 'fetched' : 'sts-policy-invalid' });
    if (!parsed.ok) {
      log.warn({ event: 'mtasts.policy.invalid', domain, id: record.id, reason: parsed.reason }, 'MTA-STS policy invalid');
      return current ? keep(parsed.reason) : { kind: 'failed', failure: 'sts-policy-invalid', reason: parsed.reason };
    }
    const now = clock.now();
    const policy: StoredStsPolicy = { domain, id: record.id, ...parsed.policy, fetchedAt: now, expiresAt: now + parsed.policy.maxAge * 1000 };
    await deps.store.saveStsPolicy(policy).catch((err: unknown) => log.warn({ event: 'mtasts.cache.failed', domain, err }, 'storing the MTA-STS policy failed'));
    log.info({ event: 'mtasts.fetched', domain, id: policy.id, mode: policy.mode, maxAge: policy.maxAge }, 'fetched MTA-STS policy');
    return { kind: 'policy', policy };
  }

  return {
    cached: (domain) => deps.store.getStsPolicy(domain.toLowerCase().replace(/\.$/, '')),
    lookup(rawDomain) {
      const domain = rawDomain.toLowerCase().replace(/\.$/, '');
      const known = remembered.get(domain);
      const now = clock.now();
      // A remembered policy is reused no longer than it is valid.
      if (known && now < known.until && (known.answer.kind !== 'policy' || known.answer.policy.expiresAt > now)) return Promise.resolve(known.answer);
      const running = inflight.get(domain);
      if (running) return running;
      const pending = resolve(domain)
        .then((answer) => {
          remembered.delete(domain);
          remembered.set(domain, { until: clock.now() + recheckMs, answer });
          while (remembered.size > maxEntries) remembered.delete(remembered.keys().next().value!);
          return answer;
        })
        .finally(() => inflight.delete(domain));
      inflight.set(domain, pending);
      return pending;
    },
  };
}
