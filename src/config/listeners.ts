import { BlockList, isIP } from 'node:net';
import type { Config } from './schema.ts';

/**
 * Sockets the configuration asks for that cannot all be bound: two SMTP listeners (submission or
 * inbound), or an SMTP listener and the control API or the unsubscribe listener, on the same port
 * of overlapping addresses. The daemon would fail half-way through its start with EADDRINUSE;
 * checking here names both config paths instead.
 * Port 0 (any free port) never clashes. Host names are compared as written, since resolving
 * them needs DNS.
 */
export function listenerProblems(config: Pick<Config, 'smtp' | 'api' | 'inbound'> & { unsubscribe?: Pick<Config['unsubscribe'], 'listen'> }): string[] {
  const sockets = [
    ...config.smtp.listeners.map((l, i) => ({ path: `smtp.listeners[${i}]`, host: bindHost(l.host), port: l.port })),
    ...config.inbound.listeners.map((l, i) => ({ path: `inbound.listeners[${i}]`, host: bindHost(l.host), port: l.port })),
    { path: 'api.listen', host: bindHost(config.api.listen.host), port: config.api.listen.port },
    ...(config.unsubscribe?.listen ? [{ path: 'unsubscribe.listen', host: bindHost(config.unsubscribe.listen.host), port: config.unsubscribe.listen.port }] : []),
  ];
  const problems: string[] = [];
  sockets.forEach((socket, i) => {
    const earlier = sockets.slice(0, i).find((other) => socket.port !== 0 && other.port === socket.port && overlap(other.host, socket.host));
    if (earlier) {
      problems.push(`${socket.path}: ${label(socket)} overlaps ${earlier.path} (${label(earlier)}); two sockets cannot listen on one address and port`);
    }
  });
  return problems;
}

/** Node listens on every address for an empty host, as for "::". */
function bindHost(host: string): string {
  return host === '' ? '::' : host;
}

function label({ host, port }: { host: string; port: number }): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Whether listening on both hosts takes some address twice: "0.0.0.0" takes every IPv4 address,
 * "::" every address (Node listens dual-stack), and an IPv4-mapped IPv6 address is its IPv4
 * address.
 */
function overlap(a: string, b: string): boolean {
  if (a === b) return true;
  return covers(a, b) || covers(b, a);
}

function covers(host: string, other: string): boolean {
  const family = isIP(other);
  if (family === 0 || isIP(host) === 0) return false;
  const list = new BlockList();
  if (host === '::') {
    list.addSubnet('::', 0, 'ipv6');
    list.addSubnet('0.0.0.0', 0, 'ipv4');
  } else if (host === '0.0.0.0') {
    list.addSubnet('0.0.0.0', 0, 'ipv4');
  } else {
    list.addAddress(host, isIP(host) === 4 ? 'ipv4' : 'ipv6');
  }
  return list.check(other, family === 4 ? 'ipv4' : 'ipv6');
}
