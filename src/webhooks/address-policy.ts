import { isIP } from 'node:net';
import { restrictedAddressCheck, type AddressCheck } from '../mail/special-addresses.ts';

/**
 * Where a webhook may not be sent unless webhooks.allowPrivateNetworks says so: the special
 * addresses of src/mail/special-addresses.ts. A tenant chooses the URL; without this rule it
 * could make the daemon POST to its own control API, a database, or a cloud metadata service.
 * The rule is applied to the address each connection is made to (after DNS, so a name that later
 * resolves to a private address is refused too), not only to the URL when it is registered.
 */
export { restrictedAddressCheck, type AddressCheck };

/**
 * Why a webhook URL is refused when it is registered, or null: not http(s), credentials in it,
 * or (unless private networks are allowed) a host that is a restricted address or a name of this
 * machine. Other names are checked when they are resolved, at each delivery.
 */
export function urlProblem(url: string, allowPrivateNetworks: boolean, check: AddressCheck = restrictedAddressCheck()): string | null {
  if (!URL.canParse(url)) return 'not a URL';
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be an http or https URL';
  if (parsed.username || parsed.password) return 'must not hold credentials: receivers check the signature';
  if (allowPrivateNetworks) return null;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const why = check(host);
    return why ? `the address ${host} is ${why}, not a public one (webhooks.allowPrivateNetworks)` : null;
  }
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return `${host} is this machine (webhooks.allowPrivateNetworks)`;
  return null;
}
