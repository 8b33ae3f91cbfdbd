import { isIPv6 } from 'node:net';

/**
 * One spelling per IP address: IPv6 compressed and lower-case, so `2001:DB8:0::1` is
 * `2001:db8::1`. The config stores egress addresses in this form and every request that names
 * one is put in it, so a recipient's last egress IP, pool state and a queue scope all compare
 * equal however the operator wrote the address. IPv4 has one spelling already (Node refuses
 * leading zeros). A zone (`fe80::1%eth0`) is kept as written: the URL parser that compresses
 * the address does not take one.
 */
export function canonicalIp(address: string): string {
  if (!isIPv6(address)) return address;
  const zone = address.indexOf('%');
  const bare = zone < 0 ? address : address.slice(0, zone);
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  return zone < 0 ? canonical : canonical + address.slice(zone);
}
