import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { restrictedAddressCheck } from '../mail/special-addresses.ts';

/**
 * Name resolution that refuses restricted addresses (loopback, private, link-local, ...): the
 * system's answer without them, an ERESTRICTED error when none is left. Given as a connection's
 * `lookup`, the check is made on the address actually connected to, after DNS, so a name that
 * resolves to an internal address (at registration or later) cannot reach inside the network.
 * Used for every URL or host a remote party names: webhook endpoints, TLS report URLs, MTA-STS
 * policy hosts.
 */

export type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
export type GuardedLookup = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

/** `setting` names the option that would allow the address, for the error. */
export function createGuardedLookup(setting: string, resolve: typeof dnsLookup = dnsLookup): GuardedLookup {
  const check = restrictedAddressCheck();
  return (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const allowed = addresses.filter((a) => check(a.address) === null);
      if (allowed.length === 0) {
        const first = addresses[0];
        const why = first ? `${hostname} resolves to ${first.address}, which is ${check(first.address)}` : `${hostname} resolves to no address`;
        return callback(Object.assign(new Error(`${why}: refused (${setting})`), { code: 'ERESTRICTED' }), '');
      }
      if (lookupOptions.all) return callback(null, allowed);
      return callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}
