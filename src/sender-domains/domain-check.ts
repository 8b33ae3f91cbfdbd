import { systemClock, type Clock } from '../clock.ts';
import { normalizeDomain } from '../mail/address.ts';
import type { DkimConfig } from '../config/dkim-schema.ts';
import { checkDkim } from './domain-check-dkim.ts';
import { checkDmarc } from './domain-check-dmarc.ts';
import type { DomainCheckResolver } from './domain-check-dns.ts';
import { worstStatus, type CheckStatus, type DomainCheck, type DomainReport } from './domain-check-report.ts';
import { checkReturnPath } from './domain-check-return-path.ts';
import { sendingIpsFor, type SenderConfig } from './domain-check-senders.ts';
import { checkSpf } from './domain-check-spf.ts';
import type { ReturnPathConfig } from '../config/return-path-schema.ts';

export type { DomainCheckResolver } from './domain-check-dns.ts';
export type * from './domain-check-report.ts';

/**
 * Everything a receiver looks at before it trusts mail From: a domain sent by this Rookery:
 * DKIM records of the keys that sign it, SPF for every egress IP that sends it, the DMARC
 * policy and alignment, and whether bounces can find their way back. Read-only: it only queries
 * DNS and reads key files, so it is safe to run against a live configuration at any time.
 */

/** The parts of the configuration the checks read; the whole Config satisfies it. */
export type DomainCheckConfig = SenderConfig & {
  dkim?: DkimConfig;
  returnPath?: ReturnPathConfig;
};

export interface CheckDomainOptions {
  domain: string;
  config: DomainCheckConfig;
  resolver: DomainCheckResolver;
  clock?: Clock;
  /** Further selectors to look for (checked for presence when no configured key uses them). */
  selectors?: readonly string[];
  /** The MAIL FROM domain of the domain's mail; default: its VERP bounce domain if configured, else the domain. */
  returnPathDomain?: string;
}

export async function checkDomain(options: CheckDomainOptions): Promise<DomainReport> {
  const { config, resolver } = options;
  const clock = options.clock ?? systemClock;
  const domain = normalizeDomain(options.domain);
  if (!domain) throw new RangeError(`not a domain name: ${JSON.stringify(options.domain)}`);
  const returnPathGiven = options.returnPathDomain ?? config.returnPath?.domains[domain]?.domain ?? domain;
  const returnPathDomain = normalizeDomain(returnPathGiven);
  if (!returnPathDomain) throw new RangeError(`not a domain name: ${JSON.stringify(returnPathGiven)}`);
  const checkedAt = new Date(clock.now()).toISOString();

  const ips = sendingIpsFor(domain, config);
  const mta = config.hostname;
  const [dkim, spf, returnPath, returnPathSpf] = await Promise.all([
    checkDkim({ domain, dkim: config.dkim, selectors: options.selectors ?? [], resolver }),
    checkSpf({ domain, ips, resolver, mta }),
    checkReturnPath({ domain: returnPathDomain, resolver }),
    // Receivers evaluate SPF for the MAIL FROM domain, so a separate bounce domain needs its own.
    returnPathDomain === domain ? Promise.resolve([]) : checkSpf({ domain: returnPathDomain, ips, resolver, mta }),
  ]);
  const dmarc = await checkDmarc({ domain, resolver, signingDomain: dkim.signing.domain, returnPathDomain });

  // The missing `ips` is said once, under the domain itself.
  const bounceSpf = returnPathSpf.filter((check) => check.check !== 'spf-no-ips');
  const checks: DomainCheck[] = [...dkim.checks, ...spf, ...bounceSpf, ...dmarc, returnPath];
  const counts: Record<CheckStatus, number> = { ok: 0, warn: 0, error: 0 };
  for (const check of checks) counts[check.status] += 1;
  return { domain, returnPathDomain, checkedAt, status: worstStatus(checks.map((c) => c.status)), counts, checks };
}
