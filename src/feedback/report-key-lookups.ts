import { normalizeDomain } from '../mail/address.ts';
import { errorCode, type DomainCheckResolver } from '../sender-domains/domain-check-dns.ts';

/**
 * The DKIM key lookups of one feedback report, on the daemon's resolver, bounded so that the
 * report's sender cannot steer them. mailauth looks up the key of every signature, one after the
 * other, at names the signatures choose: a report signed by domains whose DNS never answers would
 * hold its connection, and its message in the memory budget submission shares, for the
 * resolver's whole timeout (10 s x 2 tries) once per signature. So:
 *  - only the key of a signer the caller may trust (one an inbound.fblReporters entry vouches
 *    for) is looked up; any other name fails at once as not found, so its signature fails and
 *    there is nothing to retry;
 *  - every lookup ends by the report's deadline (the signal, aborted when processingTimeout
 *    passes), and each within KEY_LOOKUP_TIMEOUT_MS: a timeout is a DNS failure (temperror);
 *  - an error that asking again cannot change (a name the resolver refuses to send: a label over
 *    63 characters, an empty label, a space) is not found rather than a failure, or a forger's
 *    d=<trusted domain> with such a selector would be answered 451 and come back forever
 *    instead of being dropped as unauthenticated.
 */

/** The longest one key lookup may take; a feedback loop's DNS answers in well under a second. */
export const KEY_LOOKUP_TIMEOUT_MS = 5_000;

/** node:dns codes for a question that is refused as asked (locally or by the server), whatever the time. */
const PERMANENT_ERRORS = new Set(['EBADNAME', 'EBADQUERY', 'EBADSTR', 'EBADFAMILY', 'EBADFLAGS', 'ENOTIMP', 'EFORMERR']);

const KEY_LABEL = '._domainkey.';

export interface ReportKeyLookupOptions {
  resolver: Pick<DomainCheckResolver, 'resolveTxt'>;
  /** Whether the key of this signing domain (lower case, A-label) may be looked up. */
  mayLookUp(domain: string): boolean;
  /** Aborted when the report's time is up: a lookup still waiting fails then, a later one at once. */
  signal?: AbortSignal;
  timeoutMs?: number;
}

export function reportKeyResolver(options: ReportKeyLookupOptions): Pick<DomainCheckResolver, 'resolveTxt'> {
  const { resolver, mayLookUp, signal, timeoutMs = KEY_LOOKUP_TIMEOUT_MS } = options;
  return {
    async resolveTxt(name) {
      const domain = signingDomainOf(name);
      if (domain === null || !mayLookUp(domain)) throw dnsError('ENOTFOUND', name, 'not the key of a trusted reporter: not looked up');
      try {
        return await answeredInTime(() => resolver.resolveTxt(name), name, timeoutMs, signal);
      } catch (err) {
        const code = errorCode(err);
        if (code !== undefined && PERMANENT_ERRORS.has(code)) throw dnsError('ENOTFOUND', name, `cannot be asked (${code})`);
        throw err;
      }
    },
  };
}

/**
 * The signing domain of a key record's name, `<selector>._domainkey.<d>`: what follows the last
 * `._domainkey.`. A selector may hold that label too; d= may as well, and then this is a parent
 * of d=, whose owner answers for the names below it.
 */
function signingDomainOf(name: string): string | null {
  const at = name.toLowerCase().lastIndexOf(KEY_LABEL);
  return at < 0 ? null : normalizeDomain(name.slice(at + KEY_LABEL.length));
}

/**
 * The answer of `ask`, or ETIMEOUT once `ms` passed or `signal` aborted; nothing is asked once it
 * has. A query cannot be called back: its late answer, or failure, is taken and dropped.
 */
function answeredInTime<T>(ask: () => Promise<T>, name: string, ms: number, signal: AbortSignal | undefined): Promise<T> {
  if (signal?.aborted) return Promise.reject(dnsError('ETIMEOUT', name, "the report's time is up"));
  const query = ask();
  return new Promise<T>((resolve, reject) => {
    const settle = (finish: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      finish();
    };
    const aborted = () => settle(() => reject(dnsError('ETIMEOUT', name, "the report's time is up")));
    const timer = setTimeout(() => settle(() => reject(dnsError('ETIMEOUT', name, `no answer within ${ms} ms`))), ms);
    signal?.addEventListener('abort', aborted, { once: true });
    query.then(
      (answer) => settle(() => resolve(answer)),
      (err: unknown) => settle(() => reject(err)),
    );
  });
}

/** An error as node:dns makes them: mailauth reads its code (ENOTFOUND: no key; others: temperror). */
function dnsError(code: string, name: string, why: string): Error {
  return Object.assign(new Error(`queryTxt ${code} ${name}: ${why}`), { code, hostname: name });
}
