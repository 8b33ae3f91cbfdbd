import type { DkimConfig } from '../config/dkim-schema.ts';

/**
 * Which configured domain signs mail From: a domain: the domain itself, else the nearest parent
 * with `subdomains: true`, else `dkim.fallback`, else none (the mail leaves unsigned). The one
 * rule the signer applies and the domain check and GET /v1/explain report.
 */

export interface SigningChoice {
  /** d= of the signatures; null when mail leaves unsigned. */
  domain: string | null;
  /** Why that domain: the From domain's own, a parent's, the fallback's, or none. */
  source: 'domain' | 'parent' | 'fallback' | 'none';
}

/** The configured domain whose keys sign mail From: `domain` (lower case). */
export function signingChoice(domain: string, dkim: DkimConfig | undefined): SigningChoice {
  if (!dkim) return { domain: null, source: 'none' };
  if (Object.hasOwn(dkim.domains, domain)) return { domain, source: 'domain' };
  for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) {
    const parent = domain.slice(dot + 1);
    if (dkim.domains[parent]?.subdomains) return { domain: parent, source: 'parent' };
  }
  return dkim.fallback ? { domain: dkim.fallback, source: 'fallback' } : { domain: null, source: 'none' };
}
