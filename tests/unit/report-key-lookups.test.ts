import { describe, expect, it } from 'vitest';
import { reportKeyResolver } from '../../src/feedback/report-key-lookups.ts';
import { createFixtureResolver, SILENT } from '../helpers/fixture-resolver.ts';

/**
 * The DKIM key lookups of a feedback report: only trusted signers' keys are asked for, each
 * lookup ends in time or when the report's time is up, and what asking again cannot change is
 * not found rather than a failure to retry.
 */

const KEY = 'v=DKIM1; k=rsa; p=AAAA';
const trusted = (domain: string) => domain === 'yahoo.test' || domain.endsWith('.yahoo.test');

function fixture() {
  return createFixtureResolver({
    's1._domainkey.yahoo.test': { txt: [KEY] },
    's1._domainkey.attacker.test': { txt: [KEY] },
    'silent._domainkey.yahoo.test': { txt: SILENT },
  });
}

const codeOf = (promise: Promise<unknown>) => promise.then(() => 'answered', (err: { code?: string }) => err.code);

describe('reportKeyResolver', () => {
  it('asks for the keys of trusted signers only: other names are not found, without a query', async () => {
    const dns = fixture();
    const keys = reportKeyResolver({ resolver: dns, mayLookUp: trusted });
    expect(await keys.resolveTxt('s1._domainkey.yahoo.test')).toEqual([[KEY]]);
    // A subdomain, in any case: asked (this one has no key).
    expect(await codeOf(keys.resolveTxt('S1._domainkey.Mail.YAHOO.test.'))).toBe('ENOTFOUND');
    for (const name of ['s1._domainkey.attacker.test', 's1._domainkey.yahoo.test._domainkey.attacker.test', 'yahoo.test', 's1._domainkey.', 's1._domainkey.yahoo.test.attacker.test']) {
      expect(await codeOf(keys.resolveTxt(name)), name).toBe('ENOTFOUND');
    }
    expect(dns.queries).toEqual(['TXT s1._domainkey.yahoo.test', 'TXT S1._domainkey.Mail.YAHOO.test.']);
  });

  it("gives up on a lookup after its time, and on every lookup once the report's time is up", async () => {
    const keys = reportKeyResolver({ resolver: fixture(), mayLookUp: trusted, timeoutMs: 20 });
    expect(await codeOf(keys.resolveTxt('silent._domainkey.yahoo.test'))).toBe('ETIMEOUT');

    const deadline = new AbortController();
    const bounded = reportKeyResolver({ resolver: fixture(), mayLookUp: trusted, signal: deadline.signal, timeoutMs: 60_000 });
    const waiting = codeOf(bounded.resolveTxt('silent._domainkey.yahoo.test'));
    deadline.abort();
    expect(await waiting).toBe('ETIMEOUT');
    expect(await codeOf(bounded.resolveTxt('s1._domainkey.yahoo.test'))).toBe('ETIMEOUT');
  });

  it("asks nothing once the report's time is up, so no late failure goes unheard", async () => {
    const dns = fixture();
    dns.set('s3._domainkey.yahoo.test', { txt: 'ESERVFAIL' });
    const deadline = new AbortController();
    deadline.abort();
    const keys = reportKeyResolver({ resolver: dns, mayLookUp: trusted, signal: deadline.signal });
    expect(await codeOf(keys.resolveTxt('s3._domainkey.yahoo.test'))).toBe('ETIMEOUT');
    expect(dns.queries).toEqual([]);
  });

  it('takes a question refused as asked for a key that is not there, and keeps other failures', async () => {
    const dns = fixture();
    const keys = reportKeyResolver({ resolver: dns, mayLookUp: trusted });
    for (const code of ['EBADNAME', 'EBADQUERY', 'EBADSTR', 'ENOTIMP', 'EFORMERR', 'ESERVFAIL', 'ETIMEOUT', 'EREFUSED', 'ENODATA']) {
      dns.set('s2._domainkey.yahoo.test', { txt: code });
      const permanent = ['EBADNAME', 'EBADQUERY', 'EBADSTR', 'ENOTIMP', 'EFORMERR'].includes(code);
      expect(await codeOf(keys.resolveTxt('s2._domainkey.yahoo.test')), code).toBe(permanent ? 'ENOTFOUND' : code);
    }
  });
});
