import { describeFailure, lookup, type DomainCheckResolver } from './domain-check-dns.ts';
import type { ReturnPathCheck } from './domain-check-report.ts';

/**
 * Whether bounces can come back: mail to the return-path domain (the MAIL FROM domain, which
 * receivers send delivery status notifications to) is routed by its MX records, or without any
 * by its own address (the implicit MX, RFC 5321 section 5.1). A null MX (RFC 7505) says the
 * domain accepts no mail at all.
 */
export async function checkReturnPath(input: { domain: string; resolver: DomainCheckResolver }): Promise<ReturnPathCheck> {
  const { domain, resolver } = input;
  const base = { area: 'return-path', check: 'return-path-mx', subject: domain, domain, mx: [], addresses: [] } as const;
  const publishMx = `publish an MX record for ${domain} pointing at the server that receives its bounces`;

  const mx = await lookup(() => resolver.resolveMx(domain));
  if (!mx.ok && mx.missing === null) {
    return { ...base, status: 'warn', message: `the MX records of ${domain} could not be looked up`, fix: describeFailure(domain, 'MX', mx.error) };
  }
  if (mx.ok && mx.records.length > 0) {
    const records = [...mx.records].sort((a, b) => a.priority - b.priority);
    const listed = records.map((r) => `${r.exchange || '.'} (${r.priority})`).join(', ');
    if (records.every((r) => r.exchange === '' || r.exchange === '.')) {
      return { ...base, mx: records, status: 'error', message: `${domain} publishes a null MX: it accepts no mail, so bounces to it are lost`, fix: publishMx };
    }
    const hosts = records.filter((r) => r.exchange !== '' && r.exchange !== '.');
    const reachable = await Promise.all(hosts.map((r) => hasAddress(resolver, r.exchange)));
    if (!reachable.some(Boolean)) {
      return {
        ...base,
        mx: records,
        status: 'error',
        message: `MX ${listed}: none of these hosts has an address, so bounces to ${domain} cannot be delivered`,
        fix: `publish A or AAAA records for ${hosts.map((h) => h.exchange).join(', ')}, or ${publishMx}`,
      };
    }
    return { ...base, mx: records, status: 'ok', message: `bounces to ${domain} go to MX ${listed}`, fix: null };
  }

  const addresses = await addressesOf(resolver, domain);
  if (addresses.length > 0) {
    return {
      ...base,
      addresses,
      status: 'warn',
      message: `${domain} has no MX record: bounces go to its own address (${addresses.join(', ')}), which must run a mail server`,
      fix: publishMx,
    };
  }
  const existence = !mx.ok && mx.missing === 'nxdomain' ? 'does not exist in DNS' : 'has neither MX nor address records';
  return { ...base, status: 'error', message: `${domain} ${existence}: bounces to it cannot be delivered`, fix: publishMx };
}

async function addressesOf(resolver: DomainCheckResolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.all([lookup(() => resolver.resolve4(host)), lookup(() => resolver.resolve6(host))]);
  return [...(v4.ok ? v4.records : []), ...(v6.ok ? v6.records : [])];
}

async function hasAddress(resolver: DomainCheckResolver, host: string): Promise<boolean> {
  return (await addressesOf(resolver, host)).length > 0;
}
