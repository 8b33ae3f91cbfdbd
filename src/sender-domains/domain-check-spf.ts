import { isIP } from 'node:net';
import { describeFailure, lookupTxt, mailauthResolver, type DomainCheckResolver } from './domain-check-dns.ts';
import type { SpfIpCheck, SpfNoIpsCheck, SpfRecordCheck, SpfResult } from './domain-check-report.ts';
import type { SendingIp } from './domain-check-senders.ts';
import { spf, type SPFOptions } from '../vendor/mailauth.ts';

/**
 * SPF (RFC 7208) of a sender domain: its record, and for every egress IP that sends the
 * domain's mail, the result a receiver gets when it evaluates the record for that IP, computed
 * by mailauth's implementation (includes, redirects, macros, lookup limits) rather than by
 * looking for the address in the text.
 */

/** A bound on one evaluation, so a slow DNS server cannot hang the check (a receiver times out too). */
const EVALUATION_LIMIT_MS = 20_000;

const SPF_RECORD = /^v=spf1(?:\s|$)/i;

export async function checkSpf(input: {
  domain: string;
  ips: readonly SendingIp[];
  resolver: DomainCheckResolver;
  /** Name of this MTA, for mailauth's comments. */
  mta: string;
}): Promise<Array<SpfRecordCheck | SpfIpCheck | SpfNoIpsCheck>> {
  const { domain, ips, resolver, mta } = input;
  const record = await checkSpfRecord(domain, ips, resolver);
  const evaluations = await Promise.all(ips.map((ip) => evaluateIp(domain, ip, resolver, mta)));
  const checks: Array<SpfRecordCheck | SpfIpCheck | SpfNoIpsCheck> = [record, ...evaluations];
  if (ips.length === 0) {
    checks.push({
      area: 'spf',
      check: 'spf-no-ips',
      status: 'warn',
      subject: domain,
      message: "no egress IPs are configured (ips): mail leaves from the server's default address, which Rookery cannot name, so SPF was not evaluated",
      fix: `list the server's sending addresses under ips, or make sure the SPF record of ${domain} authorises the server's public address`,
    });
  }
  return checks;
}

async function checkSpfRecord(domain: string, ips: readonly SendingIp[], resolver: DomainCheckResolver): Promise<SpfRecordCheck> {
  const base = { area: 'spf', check: 'spf-record', subject: domain, domain } as const;
  const txt = await lookupTxt(resolver, domain);
  if (!txt.ok && txt.missing === null) {
    return { ...base, status: 'warn', record: null, message: 'the SPF record could not be looked up', fix: describeFailure(domain, 'TXT', txt.error) };
  }
  const records = txt.ok ? txt.records.filter((r) => SPF_RECORD.test(r.trim())) : [];
  if (records.length === 0) {
    return {
      ...base,
      status: 'error',
      record: null,
      message: `${domain} publishes no SPF record: receivers cannot tell which servers may send its mail`,
      fix: `publish TXT record ${domain} with value "${suggestedRecord(ips)}" (with an include: for every other service that sends mail as ${domain})`,
    };
  }
  if (records.length > 1) {
    return {
      ...base,
      status: 'error',
      record: records.join(' | '),
      message: `${domain} publishes ${records.length} SPF records: receivers treat that as a permanent error (permerror) for all its mail`,
      fix: `merge them into one TXT record starting with v=spf1`,
    };
  }
  const [only = ''] = records;
  return { ...base, status: 'ok', record: only, message: `SPF record: ${only}`, fix: null };
}

async function evaluateIp(domain: string, ip: SendingIp, resolver: DomainCheckResolver, mta: string): Promise<SpfIpCheck> {
  const options: SPFOptions & { maxElapsedTime: number } = {
    sender: `postmaster@${domain}`,
    ip: ip.address,
    helo: ip.hostname,
    mta,
    // mailauth's resolver type names only TXT-like answers; MX answers are objects at run time.
    resolver: mailauthResolver(resolver) as SPFOptions['resolver'],
    maxElapsedTime: EVALUATION_LIMIT_MS,
  };
  const evaluation = await spf(options);
  const result = evaluation.status.result as SpfResult;
  // mailauth's comment starts with "<mta>: "; the rest is the reason.
  const detail = String(evaluation.status.comment ?? '').replace(/^[^:]*:\s*/, '');
  const authorise = `add ${isIP(ip.address) === 6 ? 'ip6' : 'ip4'}:${ip.address} to the SPF record of ${domain} (before its "all")`;
  const base = { area: 'spf', check: 'spf-ip', subject: ip.address, domain, ip: ip.address, hostname: ip.hostname, pool: ip.pool, result } as const;
  const who = `${ip.address} (${ip.hostname}, pool ${ip.pool})`;
  switch (result) {
    case 'pass':
      return { ...base, status: 'ok', message: `pass: ${domain} authorises ${who}`, fix: null };
    case 'fail':
      return { ...base, status: 'error', message: `fail: ${domain} does not authorise ${who}; receivers may reject its mail`, fix: authorise };
    case 'softfail':
      return { ...base, status: 'warn', message: `softfail: ${domain} does not authorise ${who}; receivers treat its mail as suspicious`, fix: authorise };
    case 'neutral':
      return { ...base, status: 'warn', message: `neutral: ${domain} neither authorises nor forbids ${who}; its mail gets no SPF pass`, fix: authorise };
    case 'none':
      return { ...base, status: 'error', message: `none: ${domain} has no SPF record, so ${who} is not authorised`, fix: `publish an SPF record for ${domain} (see above)` };
    case 'permerror':
      return {
        ...base,
        status: 'error',
        message: `permerror for ${who}: the SPF record of ${domain} is broken (${detail}); receivers treat that like no SPF, or reject`,
        fix: `correct the SPF record of ${domain}: at most 10 DNS-querying terms (include, a, mx, ptr, exists, redirect) in total, valid syntax`,
      };
    default:
      return {
        ...base,
        result: 'temperror',
        status: 'warn',
        message: `temperror for ${who}: SPF could not be evaluated (${detail})`,
        fix: `check that the DNS servers of ${domain} (and of the domains its record includes) answer, then run the check again`,
      };
  }
}

/** The record to start from when a domain has none: its egress IPs, then -all. */
function suggestedRecord(ips: readonly SendingIp[]): string {
  const terms = [...new Set(ips.map((ip) => `${isIP(ip.address) === 6 ? 'ip6' : 'ip4'}:${ip.address}`))];
  return ['v=spf1', ...(terms.length ? terms : ['ip4:<the server address>']), '-all'].join(' ');
}
