import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import type { TlsReportPolicy } from '../../storage/tls-reports.ts';
import { byDomainPattern, domainPatterns } from '../routing.ts';
import type { StsResolver } from './mta-sts-resolver.ts';
import { joinSts, type StsInForce, type TlsMode, type TlsRequirement } from './tls-requirement.ts';

/**
 * The TLS requirement of a recipient domain: the mode the config gives it (delivery.tlsPolicies
 * by domain pattern, else delivery.tls), raised to verify by an enforced MTA-STS policy when its
 * mail goes to its MX hosts, and the TLS-RPT policy its sessions count under.
 */

export interface TlsPolicySettings {
  /** delivery.tls */
  mode: TlsMode;
  /** delivery.tlsPolicies: domain, ".parent.domain" or "*" -> mode. */
  policies: Record<string, TlsMode>;
  /** delivery.mtaSts.enabled */
  mtaSts: boolean;
  /** delivery.tlsReports.enabled: count sessions for TLS-RPT. */
  reports: boolean;
}

/** The TLS a domain's mail would be held to now, read without a lookup (GET /v1/explain). */
export interface TlsExplanation {
  mode: TlsMode;
  /** The MTA-STS policy the store holds for the domain, when its mail goes to its MX hosts. */
  mtaSts: { id: string; mode: 'enforce' | 'testing' | 'none'; mx: string[]; expiresAt: number } | null;
  detail: string;
}

export interface TlsPolicies {
  explain(domain: string, viaMx: boolean, now: number): Promise<TlsExplanation>;
  /**
   * `viaMx`: the domain's mail goes to its MX hosts (a static route to a host has no MTA-STS).
   * Null while the domain's MTA-STS policy is still being fetched after `waitMs`: its mail waits
   * (policyPending) and the fetch goes on, so a slow policy host holds no delivery slot.
   */
  requirementFor(domain: string, viaMx: boolean): Promise<TlsRequirement | null>;
}

/** How long routing waits for a policy lookup before the domain's mail is left to wait for it (default 2s). */
const POLICY_WAIT_MS = 2_000;

/** Not an attempt: the recipient waits for its domain's MTA-STS policy, whose fetch goes on. */
export function policyPending(domain: string): DeliveryOutcome {
  const response = `not tried: the MTA-STS policy of ${domain} is still being fetched`;
  return { disposition: 'throttled', code: null, enhanced: '4.7.0', response, stage: 'queue', bounceClass: 'tls-policy', remoteHost: null, egressIp: null };
}

export function createTlsPolicies(deps: { settings: () => TlsPolicySettings; sts: StsResolver; waitMs?: number }): TlsPolicies {
  const waitMs = deps.waitMs ?? POLICY_WAIT_MS;
  // The settings are read per lookup (a reload applies at once); the pattern table is rebuilt only when they change.
  let table: { source: Record<string, TlsMode>; patterns: Map<string, TlsMode> } | null = null;
  /** The domain's delivery.tlsPolicies entry, if any. */
  const configured = (settings: TlsPolicySettings, domain: string): TlsMode | undefined => {
    if (table?.source !== settings.policies) table = { source: settings.policies, patterns: domainPatterns(settings.policies, (mode) => mode) };
    return byDomainPattern(table.patterns, domain);
  };

  return {
    async explain(rawDomain, viaMx, now) {
      const domain = rawDomain.toLowerCase().replace(/\.$/, '');
      const settings = deps.settings();
      const entry = configured(settings, domain);
      const own = entry ?? settings.mode;
      const base = `${own} (${entry ? 'delivery.tlsPolicies' : 'delivery.tls'})`;
      if (!viaMx) return { mode: own, mtaSts: null, detail: `${base}; MTA-STS does not apply to a configured route` };
      if (!settings.mtaSts) return { mode: own, mtaSts: null, detail: `${base}; MTA-STS is off (delivery.mtaSts.enabled)` };
      const held = await deps.sts.cached(domain);
      if (!held) return { mode: own, mtaSts: null, detail: `${base}; no MTA-STS policy cached (one is looked up at the next delivery)` };
      const valid = held.expiresAt > now;
      const mode = valid && held.mode === 'enforce' ? 'verify' : own;
      const policy = `MTA-STS policy ${held.id} (${held.mode}, mx: ${held.mx.join(', ') || '-'})`;
      const state = valid ? `valid until ${new Date(held.expiresAt).toISOString()}` : 'expired: fetched again at the next delivery';
      const effect = valid && held.mode === 'enforce' ? '; only the listed MX hosts, with a certificate valid for them' : '';
      return { mode, mtaSts: { id: held.id, mode: held.mode, mx: held.mx, expiresAt: held.expiresAt }, detail: `${mode}: ${base}, ${policy} ${state}${effect}` };
    },

    async requirementFor(rawDomain, viaMx) {
      const domain = rawDomain.toLowerCase().replace(/\.$/, '');
      const settings = deps.settings();
      const mode = configured(settings, domain) ?? settings.mode;
      const noPolicy: TlsReportPolicy = { type: 'no-policy-found', domain, id: '', lines: [], mx: [] };
      const reports = (policy: TlsReportPolicy) => (settings.reports ? [policy] : []);
      if (!viaMx || !settings.mtaSts) return { mode, sts: null, reports: viaMx ? reports(noPolicy) : [] };
      const found = await within(deps.sts.lookup(domain), waitMs);
      if (found === null) return null;
      if (found.kind === 'failed') {
        // A published policy that could not be had: mail goes as without one (RFC 8461 5), and each session reports why.
        return { mode, sts: null, reports: reports({ type: 'sts', domain, id: '', lines: [], mx: [] }), policyFailure: found.failure };
      }
      if (found.kind === 'none' || found.policy.mode === 'none') return { mode, sts: null, reports: reports(noPolicy) };
      const { policy } = found;
      const sts: StsInForce = { domain, id: policy.id, mode: policy.mode as StsInForce['mode'], mx: policy.mx, lines: policy.lines };
      return { mode: joinSts(mode, sts), sts, reports: reports({ type: 'sts', domain, id: policy.id, lines: policy.lines, mx: policy.mx }) };
    },
  };
}

/** The promise's value, or null once `ms` passed first (the promise goes on). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
