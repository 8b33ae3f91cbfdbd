import { Document, isMap, isSeq } from 'yaml';
import { checkReverseDns, type ReverseDns, type ReverseDnsResolver } from '../sender-domains/reverse-dns.ts';
import { clean } from './api/text-table.ts';
import type { HostAddress } from './host-addresses.ts';

/**
 * What `rookery ips detect` found: each candidate egress address with its reverse DNS, and the
 * `ips:` block for the configuration. An address whose PTR is missing or does not resolve back
 * to it still gets an entry, with a comment saying what to fix: it is this host's to send from,
 * but receivers will hold the missing record against it.
 */

export interface DetectedIp extends HostAddress {
  reverseDns: ReverseDns;
  /** Why the entry needs the operator's attention before use, or null. */
  warning: string | null;
}

export interface IpsConfigEntry {
  address: string;
  hostname?: string;
  pool: string;
}

export interface IpsDetectReport {
  addresses: DetectedIp[];
  config: { ips: IpsConfigEntry[] };
}

/** The configuration's `ips[].hostname` syntax: a PTR name outside it cannot be used as is. */
const HOST_NAME = /^[A-Za-z0-9.-]+$/;

export async function detectIps(options: { addresses: readonly HostAddress[]; resolver: ReverseDnsResolver; pool: string }): Promise<IpsDetectReport> {
  const addresses = await Promise.all(
    options.addresses.map(async (host): Promise<DetectedIp> => {
      const reverseDns = await checkReverseDns(options.resolver, host.address);
      return { ...host, reverseDns, warning: warningOf(host, reverseDns) };
    }),
  );
  const ips = addresses.map((ip): IpsConfigEntry => {
    const hostname = ip.reverseDns.hostname ?? ip.reverseDns.names[0];
    return { address: ip.address, ...(hostname !== undefined && HOST_NAME.test(hostname) ? { hostname } : {}), pool: options.pool };
  });
  return { addresses, config: { ips } };
}

function warningOf(host: HostAddress, dns: ReverseDns): string | null {
  if (host.private !== null) {
    return `${host.private} address: receivers see the public address NAT maps it to; give hostname the PTR name of that address`;
  }
  switch (dns.status) {
    case 'confirmed':
      return null;
    case 'missing':
      return 'no PTR record; ask the address owner (the VPS provider) for one naming this IP\'s HELO name, then set hostname';
    case 'failed':
      return `${dns.detail}; check it again before sending`;
    case 'unconfirmed': {
      const name = dns.names[0] ?? '';
      const usable = HOST_NAME.test(name) ? '' : ` (${JSON.stringify(name)} is not a usable host name, so hostname is left out)`;
      return `${dns.detail}; publish the A/AAAA record, or have the PTR changed${usable}`;
    }
  }
}

/** The `ips:` block as YAML, each entry that needs attention preceded by a comment saying why. */
export function ipsConfigYaml(report: IpsDetectReport): string {
  const doc = new Document(report.config);
  const ips = isMap(doc.contents) ? doc.contents.get('ips', true) : undefined;
  if (isSeq(ips)) {
    ips.items.forEach((item, i) => {
      const detected = report.addresses[i];
      if (detected?.warning && item && typeof item === 'object') (item as { commentBefore?: string }).commentBefore = ` ${detected.address}: ${detected.warning}`;
    });
  }
  return doc.toString({ lineWidth: 0 });
}

const MARK: Record<ReverseDns['status'], string> = { confirmed: '✓', unconfirmed: '✗', missing: '✗', failed: '!' };

/**
 * The report for a person: one line an address, then the configuration block and what to do next.
 * PTR names are whatever the address's DNS answers: no control character of theirs reaches the
 * terminal (each line is cleaned, the line breaks are the report's own).
 */
export function formatIpsDetect(report: IpsDetectReport): string {
  const width = Math.max(...report.addresses.map((ip) => ip.address.length));
  const ifWidth = Math.max(...report.addresses.map((ip) => ip.interface.length));
  const lines = report.addresses.map((ip) => {
    const privateNote = ip.private === null ? '' : ` [${ip.private}]`;
    return `  ${MARK[ip.reverseDns.status]} ${ip.address.padEnd(width)}  ${ip.interface.padEnd(ifWidth)}  ${ip.reverseDns.detail}${privateNote}`;
  });
  const attention = report.addresses.filter((ip) => ip.warning !== null).length;
  const pools = new Set(report.config.ips.map((entry) => entry.pool));
  return [
    `Addresses on this host (${report.addresses.length}; loopback and link-local left out):`,
    ...lines,
    '',
    attention === 0 ? 'Configuration for them:' : `Configuration for them (${attention} need${attention === 1 ? 's' : ''} attention, see the comments):`,
    '',
    ...ipsConfigYaml(report).trimEnd().split('\n'),
    '',
    ...(pools.has('default') ? [] : ['The "default" pool needs an address too when ips are configured: move one there, or keep an entry of yours.']),
    'Next: add the block to the configuration, run rookery check-config, and check that SPF covers every',
    'address with rookery domains check DOMAIN for each sender domain.',
    '',
  ]
    .map(clean)
    .join('\n');
}
