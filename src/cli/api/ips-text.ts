import { fields, orDash, table, utc } from './text-table.ts';

/**
 * GET /v1/ips and one IP (GET /v1/ips/{address}, and the answer of every IP operation) as `rookery
 * ips` prints them; src/control-api/v1/routes/ip-schema.ts says what each field holds.
 */

interface Window {
  cap: number | null;
  used: number;
}

interface Provider {
  provider: string;
  effectiveWeight: number;
  weightReason: string | null;
  reputation: { score: number | null; accepted: number; deferred: number; blocked: number; complaints: number };
  warmup: { hourly: Window; daily: Window } | null;
}

interface Scoped {
  scope: 'all' | 'provider' | 'site';
  provider: string | null;
  site: string | null;
}

interface Restriction extends Scoped {
  action: 'suspend' | 'throttle';
  ratePerHour: number | null;
  rule: string;
  by: string | null;
  reason: string;
  until: string;
}

interface Recovery extends Scoped {
  after: string;
  ratePerHour: number;
  normalRatePerHour: number;
  endsAt: string | null;
}

interface Blocklist {
  list: string;
  listed: boolean;
  codes: string[];
  reason: string | null;
  firstListedAt: string | null;
  lastCheckedAt: string | null;
  lastError: string | null;
}

export interface IpJson {
  address: string;
  hostname: string;
  pool: string;
  weight: number;
  weightOverride: { weight: number; by: string; reason: string; setAt: string } | null;
  lastSentAt: string | null;
  /** A plan an operator (re)started in place of the configured one (rookery ips warmup restart). */
  warmupOverride: { plan: string; start: string; by: string; reason: string; setAt: string } | null;
  warmup: { plan: string; start: string; phase: string; day: number | null; restartsOnNextSend: boolean } | null;
  providers: Provider[];
  restrictions: Restriction[];
  recoveries: Recovery[];
  /** Absent from a daemon older than the blocklist watch. */
  blocklists?: Blocklist[];
}

/** `all`, `gmail`, `other:mx.example.net`. */
const scope = (s: Scoped) => (s.scope === 'all' ? 'all' : s.scope === 'site' ? `${s.provider ?? 'other'}:${s.site}` : (s.provider ?? '-'));
const weight = (ip: IpJson) => (ip.weightOverride ? `${ip.weightOverride.weight} (set; configured ${ip.weight})` : String(ip.weight));
const warmup = (ip: IpJson) => (ip.warmup ? `${ip.warmup.plan}: ${ip.warmup.phase}${ip.warmup.day === null ? '' : `, day ${ip.warmup.day}`}` : '-');
const window = (w: Window | undefined) => (w ? `${w.used}/${w.cap ?? '-'}` : '-');

export function ipListText(list: { ips: IpJson[] }): string {
  if (list.ips.length === 0) return 'No egress IPs configured.\n';
  return table(
    [
      { title: 'ADDRESS', value: (ip: IpJson) => ip.address },
      { title: 'POOL', value: (ip) => ip.pool },
      { title: 'WEIGHT', value: weight },
      { title: 'WARM-UP', value: warmup },
      { title: 'RESTRICTED', value: (ip) => ip.restrictions.map((r) => `${r.action} ${scope(r)}`).join(', ') || '-' },
      { title: 'BLOCKLISTED', value: (ip) => (ip.blocklists ?? []).filter((b) => b.listed).map((b) => b.list).join(', ') || '-' },
      { title: 'LAST SENT', value: (ip) => utc(ip.lastSentAt) },
    ],
    list.ips,
  );
}

export function ipText(ip: IpJson): string {
  const override = ip.weightOverride;
  const parts = [
    fields([
      ['Address', ip.address],
      ['Hostname', ip.hostname],
      ['Pool', ip.pool],
      ['Weight', override ? `${override.weight}, set by ${override.by} at ${utc(override.setAt)}: ${override.reason} (configured ${ip.weight})` : String(ip.weight)],
      ['Warm-up', ip.warmup ? `${warmup(ip)} (counted from ${utc(ip.warmup.start)}${ip.warmup.restartsOnNextSend ? '; restarts with the next message' : ''})` : 'none (warm)'],
      ['Restarted by', ip.warmupOverride && `${ip.warmupOverride.by} at ${utc(ip.warmupOverride.setAt)}, plan ${ip.warmupOverride.plan}: ${ip.warmupOverride.reason}`],
      ['Last sent', utc(ip.lastSentAt)],
    ]),
    table(
      [
        { title: 'PROVIDER', value: (p: Provider) => p.provider },
        { title: 'WEIGHT', value: (p) => String(p.effectiveWeight), right: true },
        { title: 'SCORE', value: (p) => (p.reputation.score === null ? '-' : p.reputation.score.toFixed(2)), right: true },
        { title: 'ACCEPTED', value: (p) => String(p.reputation.accepted), right: true },
        { title: 'DEFERRED', value: (p) => String(p.reputation.deferred), right: true },
        { title: 'BLOCKED', value: (p) => String(p.reputation.blocked), right: true },
        { title: 'COMPLAINTS', value: (p) => String(p.reputation.complaints), right: true },
        { title: 'HOUR', value: (p) => window(p.warmup?.hourly), right: true },
        { title: 'DAY', value: (p) => window(p.warmup?.daily), right: true },
        { title: 'WEIGHT LOWERED', value: (p) => orDash(p.weightReason) },
      ],
      ip.providers,
    ),
    ip.restrictions.length === 0
      ? 'No restrictions.\n'
      : table(
          [
            { title: 'RESTRICTION', value: (r: Restriction) => (r.action === 'throttle' ? `throttle ${r.ratePerHour}/h` : 'suspend') },
            { title: 'SCOPE', value: (r) => scope(r) },
            { title: 'UNTIL', value: (r) => utc(r.until) },
            { title: 'RULE', value: (r) => r.rule },
            { title: 'BY', value: (r) => orDash(r.by) },
            { title: 'REASON', value: (r) => r.reason },
          ],
          ip.restrictions,
        ),
  ];
  const blocklists = ip.blocklists ?? [];
  if (blocklists.length > 0) {
    parts.push(
      table(
        [
          { title: 'BLOCKLIST', value: (b: Blocklist) => b.list },
          { title: 'LISTED', value: (b) => (b.listed ? `yes (${b.codes.join(', ')})` : b.lastCheckedAt === null ? 'not checked yet' : 'no') },
          { title: 'SINCE', value: (b) => utc(b.firstListedAt) },
          { title: 'CHECKED', value: (b) => utc(b.lastCheckedAt) },
          { title: 'LAST ERROR', value: (b) => orDash(b.lastError) },
          { title: 'REASON', value: (b) => orDash(b.reason) },
        ],
        blocklists,
      ),
    );
  }
  if (ip.recoveries.length > 0) {
    parts.push(
      table(
        [
          { title: 'RECOVERING', value: (r: Recovery) => `after ${r.after}` },
          { title: 'SCOPE', value: (r) => scope(r) },
          { title: 'RATE NOW', value: (r) => `${Math.round(r.ratePerHour)}/h`, right: true },
          { title: 'NORMAL', value: (r) => `${Math.round(r.normalRatePerHour)}/h`, right: true },
          { title: 'UNTIL', value: (r) => utc(r.endsAt) },
        ],
        ip.recoveries,
      ),
    );
  }
  return parts.join('\n');
}
