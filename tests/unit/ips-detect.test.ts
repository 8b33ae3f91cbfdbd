import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hostAddresses, type InterfaceList } from '../../src/cli/host-addresses.ts';
import { detectIps, formatIpsDetect, ipsConfigYaml } from '../../src/cli/ips-detect-report.ts';
import { parseConfig } from '../../src/config/load.ts';
import { checkReverseDns, reverseName } from '../../src/sender-domains/reverse-dns.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';

function v4(address: string, internal = false) {
  return { address, netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal, cidr: `${address}/24` };
}
function v6(address: string, internal = false) {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal, cidr: `${address}/64`, scopeid: 0 };
}

/** A VPS with a main and two secondary IPv4 addresses, an IPv6 /64 with two in use, and a Docker bridge. */
const INTERFACES: InterfaceList = {
  lo: [v4('127.0.0.1', true), v6('::1', true)],
  eth0: [v4('203.0.113.10'), v6('2001:DB8:0:0::10'), v6('fe80::1'), v4('203.0.113.11'), v4('203.0.113.12'), v6('2001:db8::11'), v4('169.254.3.4')],
  docker0: [v4('172.17.0.1')],
  eth1: [v4('203.0.113.10')],
};

const ZONE = {
  // Forward-confirmed.
  '10.113.0.203.in-addr.arpa': { ptr: ['mta1.example.com.'] },
  'mta1.example.com': { a: ['203.0.113.10'], aaaa: ['2001:db8::10'] },
  // The PTR name has no A record at all.
  '11.113.0.203.in-addr.arpa': { ptr: ['mta2.example.com'] },
  'mta2.example.com': { mx: [{ exchange: 'mx.example.com', priority: 10 }] },
  // 203.0.113.12: no PTR (NXDOMAIN).
  // IPv6: confirmed through AAAA; the second one's lookup times out.
  '0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa': { ptr: ['MTA1.example.com.'] },
  '1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa': { ptr: 'ETIMEOUT' },
};

describe('reverse DNS names', () => {
  it('reverses IPv4 octets under in-addr.arpa and IPv6 nibbles under ip6.arpa', () => {
    expect(reverseName('203.0.113.10')).toBe('10.113.0.203.in-addr.arpa');
    expect(reverseName('2001:db8::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('::ffff:192.0.2.1')).toBe('1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa');
    expect(reverseName('2001:db8:1:2:3:4:5:6')).toBe('6.0.0.0.5.0.0.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(() => reverseName('mta1.example.com')).toThrow(/not an IP address/);
  });
});

describe('forward-confirmed reverse DNS', () => {
  const resolver = createFixtureResolver(ZONE);

  it('confirms a PTR name whose A or AAAA records include the address', async () => {
    expect(await checkReverseDns(resolver, '203.0.113.10')).toEqual({ status: 'confirmed', names: ['mta1.example.com'], hostname: 'mta1.example.com', detail: 'PTR mta1.example.com resolves back to 203.0.113.10' });
    expect(await checkReverseDns(resolver, '2001:db8::10')).toMatchObject({ status: 'confirmed', hostname: 'mta1.example.com' });
  });

  it('does not confirm a PTR whose name points elsewhere or nowhere', async () => {
    expect(await checkReverseDns(resolver, '203.0.113.11')).toEqual({
      status: 'unconfirmed',
      names: ['mta2.example.com'],
      hostname: null,
      detail: 'PTR does not resolve back to 203.0.113.11: mta2.example.com has no A record',
    });
    const other = createFixtureResolver({ ...ZONE, 'mta2.example.com': { a: ['198.51.100.9'] } });
    expect((await checkReverseDns(other, '203.0.113.11')).detail).toBe('PTR does not resolve back to 203.0.113.11: mta2.example.com has A 198.51.100.9');
    // The IPv4 name is not asked for the IPv6 address's family: the AAAA records decide.
    const v4only = createFixtureResolver({ ...ZONE, 'mta1.example.com': { a: ['203.0.113.10'] } });
    expect(await checkReverseDns(v4only, '2001:db8::10')).toMatchObject({ status: 'unconfirmed', detail: expect.stringContaining('mta1.example.com has no AAAA record') });
  });

  it('tells a missing PTR from a lookup that failed', async () => {
    expect(await checkReverseDns(resolver, '203.0.113.12')).toMatchObject({ status: 'missing', names: [], detail: 'no PTR record' });
    expect(await checkReverseDns(resolver, '2001:db8::11')).toMatchObject({ status: 'failed', detail: 'PTR lookup failed: ETIMEOUT' });
  });

  it('takes the first of several PTR names that resolves back', async () => {
    const several = createFixtureResolver({ ...ZONE, '10.113.0.203.in-addr.arpa': { ptr: ['old.example.net', 'mta1.example.com'] }, 'old.example.net': { a: ['192.0.2.1'] } });
    expect(await checkReverseDns(several, '203.0.113.10')).toMatchObject({ status: 'confirmed', names: ['old.example.net', 'mta1.example.com'], hostname: 'mta1.example.com' });
  });
});

describe('host addresses', () => {
  it('leaves out loopback and link-local, keeps private ones marked, lists IPv4 first and each address once', () => {
    expect(hostAddresses(INTERFACES)).toEqual([
      { address: '203.0.113.10', family: 4, interface: 'eth0', private: null },
      { address: '203.0.113.11', family: 4, interface: 'eth0', private: null },
      { address: '203.0.113.12', family: 4, interface: 'eth0', private: null },
      { address: '172.17.0.1', family: 4, interface: 'docker0', private: 'private' },
      { address: '2001:db8::10', family: 6, interface: 'eth0', private: null },
      { address: '2001:db8::11', family: 6, interface: 'eth0', private: null },
    ]);
  });

  it('keeps only the interfaces asked for', () => {
    expect(hostAddresses(INTERFACES, ['docker0', 'eth1']).map((a) => a.address)).toEqual(['172.17.0.1', '203.0.113.10']);
    expect(hostAddresses({ lo: INTERFACES.lo })).toEqual([]);
  });
});

describe('the ips: block', () => {
  it('names each address by its PTR, comments on every one that needs attention, and is a valid configuration', async () => {
    const report = await detectIps({ addresses: hostAddresses(INTERFACES), resolver: createFixtureResolver(ZONE), pool: 'default' });
    expect(report.config.ips).toEqual([
      { address: '203.0.113.10', hostname: 'mta1.example.com', pool: 'default' },
      { address: '203.0.113.11', hostname: 'mta2.example.com', pool: 'default' },
      { address: '203.0.113.12', pool: 'default' },
      { address: '172.17.0.1', pool: 'default' },
      { address: '2001:db8::10', hostname: 'mta1.example.com', pool: 'default' },
      { address: '2001:db8::11', pool: 'default' },
    ]);
    const yaml = ipsConfigYaml(report);
    const comments = yaml.split('\n').filter((line) => line.trimStart().startsWith('#'));
    expect(comments).toEqual([
      expect.stringMatching(/^ {2}# 203\.0\.113\.11: PTR does not resolve back to 203\.0\.113\.11: mta2\.example\.com has no A record; publish the A\/AAAA record/),
      expect.stringMatching(/^ {2}# 203\.0\.113\.12: no PTR record; ask the address owner/),
      expect.stringMatching(/^ {2}# 172\.17\.0\.1: private address: receivers see the public address NAT maps it to/),
      expect.stringMatching(/^ {2}# 2001:db8::11: PTR lookup failed: ETIMEOUT; check it again/),
    ]);
    // What is printed is what the daemon accepts.
    const parsed = parse(yaml) as unknown;
    expect(parsed).toEqual(report.config);
    expect(parseConfig(parsed, 'ips detect').ips.map((ip) => ip.address)).toEqual(report.config.ips.map((ip) => ip.address));
  });

  it('leaves out a PTR name the configuration could not take as hostname, and puts every entry in --pool', async () => {
    const resolver = createFixtureResolver({ '10.113.0.203.in-addr.arpa': { ptr: ['mta_1.example.com'] } });
    const report = await detectIps({ addresses: [{ address: '203.0.113.10', family: 4, interface: 'eth0', private: null }], resolver, pool: 'bulk' });
    expect(report.config.ips).toEqual([{ address: '203.0.113.10', pool: 'bulk' }]);
    expect(report.addresses[0]!.warning).toContain('"mta_1.example.com" is not a usable host name');
    const text = formatIpsDetect(report);
    expect(text).toContain('The "default" pool needs an address too');
    expect(text).toMatch(/^ {2}✗ 203\.0\.113\.10 {2}eth0 {2}PTR does not resolve back/m);
  });

  it('passes no control character of a PTR name to the terminal', async () => {
    const resolver = createFixtureResolver({ '10.113.0.203.in-addr.arpa': { ptr: ['mta\u001b[2j\u001b]0;owned\u0007.example.com'] } });
    const report = await detectIps({ addresses: [{ address: '203.0.113.10', family: 4, interface: 'eth0', private: null }], resolver, pool: 'default' });
    const text = formatIpsDetect(report);
    expect(text).toMatch(/^ {2}✗ 203\.0\.113\.10 {2}eth0 {2}.*mta\?\[2j\?\]0;owned\?\.example\.com/m);
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('says nothing needs attention when every address is forward-confirmed', async () => {
    const report = await detectIps({ addresses: hostAddresses({ eth0: [v4('203.0.113.10')] }), resolver: createFixtureResolver(ZONE), pool: 'default' });
    const text = formatIpsDetect(report);
    expect(text).toContain('Configuration for them:\n\nips:\n  - address: 203.0.113.10\n    hostname: mta1.example.com\n    pool: default\n');
    expect(text).toContain('✓ 203.0.113.10  eth0  PTR mta1.example.com resolves back to 203.0.113.10');
    expect(text).not.toContain('#');
  });
});
