import { BlockList, isIP } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';

/**
 * When a listener lets clients authenticate. Credentials never cross the network in clear:
 *  - implicit: TLS from the first byte, AUTH always offered;
 *  - starttls: AUTH offered only once STARTTLS has completed;
 *  - none: AUTH offered only when the listener is bound to a loopback address (the traffic never
 *    leaves the machine); on any other address AUTH is not offered at all.
 */
export type AuthOffer = 'always' | 'after-starttls' | 'never';

export function authOfferFor(listener: Pick<ListenerConfig, 'host' | 'tls'>): AuthOffer {
  if (listener.tls === 'implicit') return 'always';
  if (listener.tls === 'starttls') return 'after-starttls';
  return isLoopbackHost(listener.host) ? 'always' : 'never';
}

/** True when AUTH may be used right now on a session of this listener. */
export function authAvailable(offer: AuthOffer, secure: boolean): boolean {
  return offer === 'always' || (offer === 'after-starttls' && secure);
}

/**
 * smtp-server commands to disable for a session (`session.disabledCommands`), which also keeps
 * them out of the EHLO capability list.
 */
export function disabledCommandsFor(listener: Pick<ListenerConfig, 'host' | 'tls'>, secure: boolean): string[] {
  const disabled: string[] = [];
  // STARTTLS only where it is configured, and never twice.
  if (listener.tls !== 'starttls' || secure) disabled.push('STARTTLS');
  if (!authAvailable(authOfferFor(listener), secure)) disabled.push('AUTH');
  return disabled;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8 and ::1 (in any spelling, also IPv4-mapped), and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}
