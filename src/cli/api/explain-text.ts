import { clean, fields, table, utc } from './text-table.ts';

/**
 * GET /v1/explain as `rookery explain` prints it: who it is sent for and through which pool, the
 * route and its next hops (or why there is none), each egress IP of the pool with its share and
 * every check that keeps it from sending now, then the DKIM signature and the return path.
 * src/control-api/v1/routes/explain-schema.ts says what each field holds; the details are the
 * daemon's own words.
 */

interface Hop {
  host: string;
  port: number;
  preference: number;
  name: string;
}

interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

interface Ip {
  address: string;
  hostname: string;
  weight: { configured: number; base: number; weight: number; reason: string | null };
  eligible: boolean;
  share: number;
  checks: Check[];
}

export interface ExplanationJson {
  at: string;
  sender: string;
  recipient: string;
  tenant: { name: string; senderAllowed: boolean; detail: string } | null;
  pool: { name: string; rule: string; detail: string };
  route: {
    via: 'route' | 'mx' | null;
    site: string | null;
    provider: string | null;
    nextHops: Hop[];
    error: { disposition: 'transient' | 'permanent'; enhanced: string | null; message: string } | null;
    held: { since: string; until: string; reason: string } | null;
    tls?: { detail: string } | null;
  };
  egress: { pool: string; site: string; provider: string; defaultEgress: boolean; ips: Ip[] } | null;
  dkim: { detail: string };
  returnPath: { address: string; detail: string };
}

export function explanationText(e: ExplanationJson): string {
  const { route } = e;
  const { held } = route;
  const parts = [
    fields([
      ['Sender', e.sender],
      ['Recipient', e.recipient],
      ['At', utc(e.at)],
      ['Tenant', e.tenant ? e.tenant.detail : '(none)'],
      ['Pool', `${e.pool.detail} (rule: ${e.pool.rule})`],
      ['Route', routeLine(route)],
      ['Held', held && `since ${utc(held.since)} until ${utc(held.until)}: ${held.reason} (its mail waits for a probe to get through)`],
      ['TLS', route.tls?.detail ?? null],
      ['DKIM', e.dkim.detail],
      ['Return path', `${e.returnPath.address}: ${e.returnPath.detail}`],
    ]),
  ];
  if (route.nextHops.length > 0) {
    parts.push(
      table(
        [
          { title: 'NEXT HOP', value: (h: Hop) => h.host },
          { title: 'PORT', value: (h) => String(h.port), right: true },
          { title: 'PREFERENCE', value: (h) => String(h.preference), right: true },
          { title: 'NAME', value: (h) => h.name },
        ],
        route.nextHops,
      ),
    );
  }
  if (e.egress) parts.push(egressText(e.egress));
  return parts.join('\n');
}

function routeLine(route: ExplanationJson['route']): string {
  if (route.error) {
    const fate = route.error.disposition === 'permanent' ? 'the recipient would bounce' : 'the recipient would be deferred and tried again';
    return `none: ${[route.error.enhanced, route.error.message].filter(Boolean).join(' ')} (${fate})`;
  }
  const via = route.via === 'route' ? 'a configured route (delivery.routes)' : 'MX';
  return `${via} to site ${route.site ?? '-'}, provider ${route.provider ?? '-'}`;
}

function egressText(egress: NonNullable<ExplanationJson['egress']>): string {
  const head = `Egress IPs of pool ${egress.pool} toward ${egress.site} (provider ${egress.provider}):`;
  if (egress.defaultEgress) return `${clean(head)}\nnone configured: the system's default source address sends, unchecked.\n`;
  if (egress.ips.length === 0) return `${clean(head)}\nnone: the pool has no egress IPs, so its mail waits.\n`;
  const ips = table(
    [
      { title: 'ADDRESS', value: (ip: Ip) => ip.address },
      { title: 'HOSTNAME', value: (ip) => ip.hostname },
      { title: 'ELIGIBLE', value: (ip) => (ip.eligible ? 'yes' : 'no') },
      { title: 'SHARE', value: (ip) => `${Math.round(ip.share * 100)}%`, right: true },
      { title: 'WEIGHT', value: (ip) => String(ip.weight.weight), right: true },
      { title: 'CONFIGURED', value: (ip) => String(ip.weight.configured), right: true },
    ],
    egress.ips,
  );
  // Every reason an IP may not send, not only the first selection would stop at.
  const refusals = egress.ips.flatMap((ip) => {
    const failing = ip.checks.filter((c) => !c.ok);
    return failing.length === 0 ? [] : [`${ip.address} may not send now:`, ...failing.map((c) => `  ${c.check}: ${c.detail}`)];
  });
  return `${clean(head)}\n${ips}${refusals.map((line) => `${clean(line)}\n`).join('')}`;
}
