import type { ClaimedRecipient } from '../storage/store.ts';
import type { Route, Router } from './routing.ts';

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
 * them into one job per destination site, in claim order. A site's next hops are those of its
 * first domain: the domains of a site have the same MX set. Each domain that cannot be routed
 * is a job of its own, carrying the failure.
 */
export async function jobsBySite(messageId: string, rows: readonly ClaimedRecipient[], router: Pick<Router, 'resolve'>): Promise<DeliveryJob[]> {
  const domains = [...new Set(rows.map((row) => row.domain))];
  const routes = new Map(await Promise.all(domains.map(async (domain) => [domain, await router.resolve(domain)] as const)));
  const jobs: DeliveryJob[] = [];
  const bySite = new Map<string, DeliveryJob>();
  const byUnroutableDomain = new Map<string, DeliveryJob>();
  for (const row of rows) {
    const route = routes.get(row.domain)!;
    const [index, key] = route.ok ? [bySite, route.site] : [byUnroutableDomain, row.domain];
    let job = index.get(key);
    if (!job) {
      job = { messageId, route, rows: [] };
      index.set(key, job);
      jobs.push(job);
    }
    job.rows.push(row);
  }
  return jobs;
}
