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
 * DNS or HTTPS cannot turn it off). A policy in use is fetched again in the background once half
 * its max_age (at most a day) has passed, though its id is unchanged, and stored with a new expiry
 * (RFC 8461 5.1 and 10.2): else a domain mailed every day would lose its policy exactly max_age
 * after the first fetch, the moment an attacker who blocks DNS gets its mail sent in clear. A
 * failed refresh keeps the cached policy until it expires. The answer is remembered per domain
 * for `recheckMs`, so the DNS is asked at most that often; lookups of one domain at a time share
 * one. The memory holds at most `maxEntries` answers and `maxBytes` of policies.
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
  /** Resolves once the background refreshes begun so far have ended (a stop waits for them). */
  settled(): Promise<void>;
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
  /** Most bytes of policies remembered (default 8 MiB; a policy may be 64 KiB); the oldest go first. */
  maxBytes?: number;
}

/** A policy in use is refreshed once this much of its max_age has passed... */
const REFRESH_FRACTION = 0.5;
/** ...or a day, whichever comes first. */
const REFRESH_MAX_MS = 86_400_000;

export function createStsResolver(deps: StsResolverDeps): StsResolver {
  const { clock } = deps;
  const log = deps.logger.child({ component: 'mta-sts' });
  const recheckMs = deps.recheckMs ?? 300_000;
  const maxEntries = deps.maxEntries ?? 10_000;
  const maxBytes = deps.maxBytes ?? 8 * 1024 * 1024;
  const remembered = new Map<string, { until: number; answer: StsLookup; bytes: number }>();
  let rememberedBytes = 0;
  const inflight = new Map<string, Promise<StsLookup>>();
  const refreshing = new Map<string, Promise<void>>();

  function remember(domain: string, answer: StsLookup): void {
    forget(domain);
    const bytes = answer.kind === 'policy' ? answer.policy.lines.reduce((n, line) => n + line.length, 0) + answer.policy.mx.reduce((n, mx) => n + mx.length, 0) : 0;
    remembered.set(domain, { until: clock.now() + recheckMs, answer, bytes });
    rememberedBytes += bytes;
    while (remembered.size > maxEntries || rememberedBytes > maxBytes) forget(remembered.keys().next().value!);
  }

  function forget(domain: string): void {
    const entry = remembered.get(domain);
    if (!entry) return;
    remembered.delete(domain);
    rememberedBytes -= entry.bytes;
  }

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
    if (current && current.id === record.id) {
      if (clock.now() - current.fetchedAt >= Math.min(current.maxAge * 1000 * REFRESH_FRACTION, REFRESH_MAX_MS)) refresh(domain, current);
      return { kind: 'policy', policy: current };
    }
    return fetchPolicy(domain, record.id, current, keep);
  }

  /** Fetches the policy of the id now published; a failure keeps `current` if there is one. */
  async function fetchPolicy(domain: string, id: string, current: StoredStsPolicy | null, keep: (why: string) => StsLookup): Promise<StsLookup> {
    const fetched = await deps.fetch(domain);
    if (!fetched.ok) {
      deps.metrics?.mtaStsFetches.inc({ result: fetched.failure });
      log.warn({ event: 'mtasts.fetch.failed', domain, id: id, failure: fetched.failure, reason: fetched.reason }, 'MTA-STS policy fetch failed');
      return current ? keep(fetched.reason) : { kind: 'failed', failure: fetched.failure, reason: fetched.reason };
    }
    const parsed = parseStsPolicy(fetched.body);
    deps.metrics?.mtaStsFetches.inc({ result: parsed.ok ? 'fetched' : 'sts-policy-invalid' });
    if (!parsed.ok) {
      log.warn({ event: 'mtasts.policy.invalid', domain, id: id, reason: parsed.reason }, 'MTA-STS policy invalid');
      return current ? keep(parsed.reason) : { kind: 'failed', failure: 'sts-policy-invalid', reason: parsed.reason };
    }
    const now = clock.now();
    const policy: StoredStsPolicy = { domain, id: id, ...parsed.policy, fetchedAt: now, expiresAt: now + parsed.policy.maxAge * 1000 };
    await deps.store.saveStsPolicy(policy).catch((err: unknown) => log.warn({ event: 'mtasts.cache.failed', domain, err }, 'storing the MTA-STS policy failed'));
    log.info({ event: 'mtasts.fetched', domain, id: policy.id, mode: policy.mode, maxAge: policy.maxAge }, 'fetched MTA-STS policy');
    return { kind: 'policy', policy };
  }

  /** The same id fetched again, not waited for; on success the new policy (and expiry) is stored and remembered. */
  function refresh(domain: string, current: StoredStsPolicy): void {
    if (refreshing.has(domain)) return;
    const keep = (why: string): StsLookup => {
      log.info({ event: 'mtasts.refresh.failed', domain, id: current.id, why }, 'refreshing the MTA-STS policy failed; the cached one stays until it expires');
      return { kind: 'policy', policy: current };
    };
    const running = fetchPolicy(domain, current.id, current, keep)
      .then((answer) => {
        if (answer.kind === 'policy' && answer.policy !== current) remember(domain, answer);
      })
      .catch((err: unknown) => log.warn({ event: 'mtasts.refresh.failed', domain, err }, 'refreshing the MTA-STS policy failed'))
      .finally(() => refreshing.delete(domain));
    refreshing.set(domain, running);
  }

  return {
    cached: (domain) => deps.store.getStsPolicy(domain.toLowerCase().replace(/\.$/, '')),
    async settled() {
      while (refreshing.size) await Promise.all(refreshing.values());
    },
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
          remember(domain, answer);
          return answer;
        })
        .finally(() => inflight.delete(domain));
      inflight.set(domain, pending);
      return pending;
    },
  };
}
