import type { ClaimedRecipient } from '../storage/store.ts';
import type { NextHop, Route, Router } from './routing.ts';
import { policyPending, type TlsPolicies } from './tls/tls-policies.ts';
import { requirementKey, type TlsRequirement } from './tls/tls-requirement.ts';

/**
 * Recipients of one message at one destination site, delivered together in one SMTP
 * transaction through one egress path (or one transaction each when each has its own VERP
 * return path). Domains that share an MX set share a site, so their recipients share a job.
 */
export interface DeliveryJob {
  messageId: string;
  /** Where the recipients' domains route to; a failed route is a job of its own per domain. */
  route: Route;
  rows: ClaimedRecipient[];
  /** What its connections must achieve in TLS; absent: opportunistic. */
  tls?: TlsRequirement;
}

/** Groups claimed rows by message, keeping claim order. */
export function groupByMessage(rows: readonly ClaimedRecipient[]): ClaimedRecipient[][] {
  const byMessage = new Map<string, ClaimedRecipient[]>();
  for (const row of rows) {
    const group = byMessage.get(row.messageId);
    if (group) group.push(row);
    else byMessage.set(row.messageId, [row]);
  }
  return [...byMessage.values()];
}

/**
 * Routes one message's recipients (each domain once; the router caches lookups) and groups
 * them into one job per destination site, in claim order. Domains of one site share a job only
 * when they also try the site's hosts in the same order: two domains may list the same MX hosts
 * with different preferences, and each must go to its own most preferred host first (RFC 5321
 * 5.1), and when they are held to the same TLS requirement (a domain with an MTA-STS policy
 * has a job of its own). Each domain that cannot be routed is a job of its own, carrying the failure.
 */
export async function jobsBySite(
  messageId: string,
  rows: readonly ClaimedRecipient[],
  router: Pick<Router, 'resolve'>,
  tlsPolicies?: Pick<TlsPolicies, 'requirementFor'>,
): Promise<DeliveryJob[]> {
  const domains = [...new Set(rows.map((row) => row.domain))];
  const routed = async (domain: string): Promise<readonly [string, { route: Route; tls?: TlsRequirement | undefined }]> => {
    const route = await router.resolve(domain);
    if (!route.ok || !tlsPolicies) return [domain, { route }];
    const tls = await tlsPolicies.requirementFor(domain, route.viaMx === true);
    // Its MTA-STS policy is still being fetched: the domain's mail waits for it, a job of its own.
    return [domain, tls ? { route, tls } : { route: { ok: false, outcome: policyPending(domain) } }];
  };
  const routes = new Map(await Promise.all(domains.map(routed)));
  const jobs: DeliveryJob[] = [];
  const byDomain = new Map<string, DeliveryJob>();
  for (const row of rows) {
    let job = byDomain.get(row.domain);
    if (!job) {
      const { route, tls } = routes.get(row.domain)!;
      const key = tls ? requirementKey(tls) : '';
      job = jobs.find(
        (other) => route.ok && other.route.ok && other.route.site === route.site && samePreferences(other.route.hops, route.hops) && (other.tls ? requirementKey(other.tls) : '') === key,
      );
      if (job?.tls && tls) job.tls = { ...job.tls, reports: [...job.tls.reports, ...tls.reports] };
      if (!job) {
        job = { messageId, route, rows: [], ...(tls ? { tls } : {}) };
        jobs.push(job);
      }
      byDomain.set(row.domain, job);
    }
    job.rows.push(row);
  }
  return jobs;
}

/**
 * The same MX hosts at the same preferences. Compared in a fixed order: the router shuffles
 * hosts of equal preference on every lookup, and DNS may rotate a host's addresses.
 */
function samePreferences(a: readonly NextHop[], b: readonly NextHop[]): boolean {
  const preferences = (hops: readonly NextHop[]) => [...new Set(hops.map((hop) => `${hop.preference} ${hop.name}`))].sort().join('\n');
  return preferences(a) === preferences(b);
}
