import type { DkimConfig } from '../config/dkim-schema.ts';
import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import { normalizeDomain } from '../mail/address.ts';
import type { DkimAlgorithm, DkimKeyStore } from './key-store.ts';

/**
 * The sender domains as an operator sees them (GET /v1/domains): every domain the configuration
 * signs (`dkim.domains`) or gives a VERP return path (`returnPath.domains`), with the state of
 * each DKIM key as the key store holds it now (which one signs, whether DNS was seen publishing
 * it, a reload that failed). Read-only; the configuration and the key store are the sources.
 */

export interface SenderDomainKey {
  selector: string;
  algorithm: DkimAlgorithm;
  /** RSA modulus length; null for Ed25519. */
  bits: number | null;
  /** Whether this key signs now. */
  signing: boolean;
  /** Whether DNS was seen to publish this key; null when not looked up (a single key of its algorithm signs regardless). */
  published: boolean | null;
  /** When the key in use was read from its file. */
  loadedAt: number;
  /** Why the file could not be reloaded (the previous key stays in use); null when fine. */
  error: string | null;
}

export interface SenderDomain {
  domain: string;
  /** Mail From: any subdomain is signed with d= this domain. */
  subdomains: boolean;
  /** This domain signs mail whose From domain has no key (`dkim.fallback`). */
  fallback: boolean;
  /** The VERP bounce domain of this sender domain's return paths; null when it has none. */
  returnPath: string | null;
  /** In the order configured, oldest first; empty for a domain with a return path only. */
  keys: SenderDomainKey[];
}

export interface SenderDomainsDeps {
  dkim: DkimConfig;
  returnPath: ReturnPathConfig;
  keys: Pick<DkimKeyStore, 'status'>;
}

export interface SenderDomains {
  /** Every sender domain, sorted by name. */
  list(): SenderDomain[];
  /** The configured domain `name` names (any case, U-label or A-label); null when none. */
  find(name: string): SenderDomain | null;
}

export function createSenderDomains({ dkim, returnPath, keys }: SenderDomainsDeps): SenderDomains {
  const list = (): SenderDomain[] => {
    const status = keys.status();
    const names = [...new Set([...Object.keys(dkim.domains), ...Object.keys(returnPath.domains)])].sort();
    return names.map((domain) => ({
      domain,
      subdomains: dkim.domains[domain]?.subdomains ?? false,
      fallback: dkim.fallback === domain,
      returnPath: Object.hasOwn(returnPath.domains, domain) ? returnPath.domains[domain]!.domain : null,
      keys: status
        .filter((key) => key.domain === domain)
        .map(({ selector, algorithm, bits, signing, published, loadedAt, error }) => ({ selector, algorithm, bits, signing, published, loadedAt, error })),
    }));
  };
  return {
    list,
    find(name) {
      const domain = normalizeDomain(name);
      return domain ? (list().find((d) => d.domain === domain) ?? null) : null;
    },
  };
}
