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

export interface TlsPolicies {
  /** `viaMx`: the domain's mail goes to its MX hosts (a static route to a host has no MTA-STS). */
  requirementFor(domain: string, viaMx: boolean): Promise<TlsRequirement>;
}

export function createTlsPolicies(deps: { settings: () => TlsPolicySettings; sts: StsResolver }): TlsPolicies {
  // The settings are read per lookup (a reload applies at once); the pattern table is rebuilt only when they change.
  let table: { source: Record<string, TlsMode>; patterns: Map<string, TlsMode> } | null = null;
  const configured = (settings: TlsPolicySettings, domain: string): TlsMode => {
    if (table?.source !== settings.policies) table = { source: settings.policies, patterns: domainPatterns(settings.policies, (mode) => mode) };
    return byDomainPattern(table.patterns, domain) ?? settings.mode;
  };

  return {
    async requirementFor(rawDomain, viaMx) {
      const domain = rawDomain.toLowerCase().replace(/\.$/, '');
      const settings = deps.settings();
      const mode = configured(settings, domain);
      const noPolicy: TlsReportPolicy = { type: 'no-policy-found', domain, id: '', lines: [], mx: [] };
      const reports = (policy: TlsReportPolicy) => (settings.reports ? [policy] : []);
      if (!viaMx || !settings.mtaSts) return { mode, sts: null, reports: viaMx ? reports(noPolicy) : [] };
      const found = await deps.sts.lookup(domain);
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
