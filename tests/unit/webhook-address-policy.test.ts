import { describe, expect, it } from 'vitest';
import { restrictedAddressCheck, urlProblem } from '../../src/webhooks/address-policy.ts';

describe('webhook address policy', () => {
  const check = restrictedAddressCheck();

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared address space (CGNAT)'],
    ['100.127.255.254', 'shared address space (CGNAT)'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['fd12:3456::1', 'unique local'],
    ['fc00::1', 'unique local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    // IPv4 carried in IPv6: judged as that IPv4 address.
    ['64:ff9b::127.0.0.1', 'loopback (NAT64 of 127.0.0.1)'],
    ['64:ff9b::a00:1', 'private (NAT64 of 10.0.0.1)'],
    ['2002:7f00:1::1', 'loopback (6to4 of 127.0.0.1)'],
    ['2002:a9fe:a9fe::', 'link-local (6to4 of 169.254.169.254)'],
    ['::127.0.0.1', 'loopback (IPv4-compatible of 127.0.0.1)'],
    ['64:ff9b:1::8.8.8.8', 'NAT64 for local use'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
  ])('refuses %s (%s)', (address, why) => {
    expect(check(address)).toBe(why);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.0.2.10', '2001:db8::1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1'])('allows %s', (address) => {
    expect(check(address)).toBeNull();
  });

  it('checks a URL when it is registered: scheme, credentials, literal addresses and this machine', () => {
    expect(urlProblem('https://hooks.example.com/rookery?token=x', false)).toBeNull();
    expect(urlProblem('http://hooks.example.com:8080/x', false)).toBeNull();
    expect(urlProblem('ftp://hooks.example.com/x', false)).toMatch(/http or https/);
    expect(urlProblem('not a url', false)).toBe('not a URL');
    expect(urlProblem('https://user:pw@hooks.example.com/', false)).toMatch(/credentials/);
    expect(urlProblem('http://127.0.0.1:8025/v1/reload', false)).toMatch(/127\.0\.0\.1 is loopback/);
    expect(urlProblem('http://[::1]/', false)).toMatch(/::1 is loopback/);
    expect(urlProblem('http://169.254.169.254/latest/meta-data', false)).toMatch(/link-local/);
    expect(urlProblem('http://localhost:9000/', false)).toMatch(/this machine/);
    expect(urlProblem('http://api.LOCALHOST./', false)).toMatch(/this machine/);
    // Allowed by the operator (tests, a receiver on the same host).
    expect(urlProblem('http://127.0.0.1:9000/', true)).toBeNull();
    expect(urlProblem('https://user:pw@127.0.0.1/', true)).toMatch(/credentials/);
  });
});
