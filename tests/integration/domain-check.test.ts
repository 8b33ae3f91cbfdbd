import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { dkimConfigSchema, type DkimConfigInput } from '../../src/config/dkim-schema.ts';
import { dkimTxtValue } from '../../src/sender-domains/dns-record.ts';
import { checkDomain, type DomainCheck, type DomainCheckConfig, type DomainReport } from '../../src/sender-domains/domain-check.ts';
import { sendingIpsFor, sendingPoolsFor } from '../../src/sender-domains/domain-check-senders.ts';
import { createFixtureResolver, type FixtureZone } from '../helpers/fixture-resolver.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * checkDomain against a fixture DNS (no network) and real key files. Every scenario starts
 * from a domain that is fully in order and breaks one thing.
 */

const clock = { now: () => Date.parse('2025-06-02T10:00:00Z') };

let dir: TempDir;
const keys: Record<'rsa' | 'ed' | 'rsaNew' | 'stranger', { privateKey: KeyObject; publicKey: KeyObject; path: string }> = {} as never;

beforeAll(async () => {
  dir = await createTempDir('rookery-domain-check');
  const make = async (name: keyof typeof keys, type: 'rsa' | 'ed25519') => {
    const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
    const path = dir.file(`${name}.pem`);
    await writeFile(path, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    keys[name] = { ...pair, path };
  };
  await Promise.all([make('rsa', 'rsa'), make('ed', 'ed25519'), make('rsaNew', 'rsa'), make('stranger', 'rsa')]);
});
afterAll(() => dir.remove());

/** Config with four egress IPs: two in "default", two in "marketing" (which sends news.example.com). */
function configWith(dkim: DkimConfigInput | undefined, extra: Record<string, unknown> = {}): DomainCheckConfig {
  const base = parseConfig(
    {
      hostname: 'mta.example.com',
      ips: [
        { address: '192.0.2.10', hostname: 'mta1.example.com' },
        { address: '192.0.2.11' },
        { address: '198.51.100.5', hostname: 'mta3.example.com', pool: 'marketing' },
        { address: '2001:db8::5', hostname: 'mta4.example.com', pool: 'marketing' },
      ],
      pools: { marketing: { senders: ['news.example.com'] } },
      ...extra,
    },
    'test',
    {},
  );
  return { ...base, ...(dkim ? { dkim: dkimConfigSchema.parse(dkim) } : {}) };
}

const exampleKeys = () => ({ domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keys.rsa.path }, { selector: 'ed1', privateKey: keys.ed.path }] } } });

/** DNS of example.com with everything in order. */
function goodZone(): FixtureZone {
  return {
    'example.com': {
      txt: ['v=spf1 ip4:192.0.2.10 include:_spf.example.net -all', 'google-site-verification=abc'],
      mx: [{ exchange: 'mx.example.com', priority: 10 }],
      a: ['192.0.2.80'],
    },
    's1._domainkey.example.com': { txt: [dkimTxtValue(keys.rsa.publicKey)] },
    'ed1._domainkey.example.com': { txt: [dkimTxtValue(keys.ed.publicKey)] },
    '_spf.example.net': { txt: ['v=spf1 ip4:192.0.2.11 ~all'] },
    '_dmarc.example.com': { txt: ['v=DMARC1; p=reject; rua=mailto:dmarc@example.com'] },
    'mx.example.com': { a: ['192.0.2.25'] },
  };
}

function find<K extends DomainCheck['check']>(report: DomainReport, check: K, subject?: string): Extract<DomainCheck, { check: K }> {
  const found = report.checks.find((c) => c.check === check && (subject === undefined || c.subject === subject));
  if (!found) throw new Error(`no ${check} check${subject ? ` for ${subject}` : ''} in ${JSON.stringify(report.checks.map((c) => [c.check, c.subject]))}`);
  return found as Extract<DomainCheck, { check: K }>;
}

async function check(zone: FixtureZone, options: { domain?: string; config?: DomainCheckConfig; selectors?: string[]; returnPathDomain?: string } = {}) {
  const resolver = createFixtureResolver(zone);
  return checkDomain({ domain: options.domain ?? 'example.com', config: options.config ?? configWith(exampleKeys()), resolver, clock, selectors: options.selectors, returnPathDomain: options.returnPathDomain });
}

describe('a domain in order', () => {
  it('reports every check ok', async () => {
    const report = await check(goodZone());
    expect(report).toMatchObject({ domain: 'example.com', returnPathDomain: 'example.com', checkedAt: '2025-06-02T10:00:00.000Z', status: 'ok', counts: { warn: 0, error: 0 } });
    expect(report.checks.map((c) => `${c.check} ${c.subject} ${c.status}`)).toEqual([
      'dkim-signing example.com ok',
      'dkim-key s1._domainkey.example.com ok',
      'dkim-key ed1._domainkey.example.com ok',
      'spf-record example.com ok',
      'spf-ip 192.0.2.10 ok',
      'spf-ip 192.0.2.11 ok',
      'dmarc-record _dmarc.example.com ok',
      'dmarc-alignment example.com ok',
      'return-path-mx example.com ok',
    ]);
    expect(find(report, 'dkim-key', 's1._domainkey.example.com')).toMatchObject({ keyType: 'rsa', bits: 2048, matches: true, keyFile: keys.rsa.path, configured: true });
    expect(find(report, 'dkim-key', 'ed1._domainkey.example.com')).toMatchObject({ keyType: 'ed25519', bits: null, matches: true });
    // The second IP is authorised only through the include chain.
    expect(find(report, 'spf-ip', '192.0.2.11')).toMatchObject({ result: 'pass', hostname: 'mta.example.com', pool: 'default', domain: 'example.com' });
    expect(find(report, 'spf-record')).toMatchObject({ record: 'v=spf1 ip4:192.0.2.10 include:_spf.example.net -all' });
    expect(find(report, 'return-path-mx')).toMatchObject({ mx: [{ exchange: 'mx.example.com', priority: 10 }] });
  });

  it('survives a round trip through JSON (what --json prints)', async () => {
    const report = await check(goodZone());
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });
});

describe('DKIM', () => {
  it('reports a record that publishes another key, with the record to publish', async () => {
    const zone = goodZone();
    zone['s1._domainkey.example.com'] = { txt: [dkimTxtValue(keys.stranger.publicKey)] };
    const report = await check(zone);
    const s1 = find(report, 'dkim-key', 's1._domainkey.example.com');
    expect(s1).toMatchObject({ status: 'error', matches: false });
    expect(s1.message).toContain('publishes a different key');
    expect(s1.fix).toContain(`publish TXT record s1._domainkey.example.com with value "${dkimTxtValue(keys.rsa.publicKey)}"`);
    expect(report.status).toBe('error');
  });

  it('reports a missing record with the exact record to publish', async () => {
    const zone = goodZone();
    delete zone['ed1._domainkey.example.com'];
    const report = await check(zone);
    const ed1 = find(report, 'dkim-key', 'ed1._domainkey.example.com');
    expect(ed1).toMatchObject({ status: 'error', record: null, matches: null });
    expect(ed1.fix).toBe(`publish TXT record ed1._domainkey.example.com with value "${dkimTxtValue(keys.ed.publicKey)}"`);
  });

  it('reports a TXT record that is not a DKIM record, and several records at one selector', async () => {
    const zone = goodZone();
    zone['s1._domainkey.example.com'] = { txt: ['v=DKIM1; k=rsa'] };
    zone['ed1._domainkey.example.com'] = { txt: [dkimTxtValue(keys.ed.publicKey), dkimTxtValue(keys.stranger.publicKey)] };
    const report = await check(zone);
    expect(find(report, 'dkim-key', 's1._domainkey.example.com')).toMatchObject({ status: 'error', message: expect.stringContaining('not a DKIM key record (no p= tag') });
    expect(find(report, 'dkim-key', 'ed1._domainkey.example.com')).toMatchObject({ status: 'error', message: expect.stringContaining('2 DKIM records') });
  });

  it('reports a missing or unusable key file instead of failing', async () => {
    const badPem = dir.file('not-a-key.pem');
    await writeFile(badPem, 'hello\n');
    const config = configWith({ domains: { 'example.com': { keys: [{ selector: 's1', privateKey: dir.file('gone.pem') }, { selector: 'ed1', privateKey: badPem }] } } });
    const report = await check(goodZone(), { config });
    const s1 = find(report, 'dkim-key', 's1._domainkey.example.com');
    expect(s1).toMatchObject({ status: 'error', keyType: null, expectedRecord: null });
    expect(s1.message).toContain(`cannot read key file ${dir.file('gone.pem')} (ENOENT)`);
    expect(s1.message).toContain('a record is published');
    expect(find(report, 'dkim-key', 'ed1._domainkey.example.com').message).toContain('does not hold an unencrypted PEM private key');
  });

  it('checks a selector asked for but not configured for presence only', async () => {
    const zone = goodZone();
    zone['old._domainkey.example.com'] = { txt: [dkimTxtValue(keys.stranger.publicKey)] };
    const report = await check(zone, { selectors: ['old', 'gone', 's1'] });
    expect(report.checks.filter((c) => c.check === 'dkim-key').map((c) => c.subject)).toEqual([
      's1._domainkey.example.com',
      'ed1._domainkey.example.com',
      'old._domainkey.example.com',
      'gone._domainkey.example.com',
    ]);
    expect(find(report, 'dkim-key', 'old._domainkey.example.com')).toMatchObject({ status: 'ok', configured: false, matches: null, message: expect.stringContaining('presence only') });
    expect(find(report, 'dkim-key', 'gone._domainkey.example.com')).toMatchObject({ status: 'error', configured: false });
  });

  it('warns, not fails, while a new key in rotation waits for its record', async () => {
    const config = configWith({
      domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keys.rsa.path }, { selector: 's2', privateKey: keys.rsaNew.path }] } },
    });
    const waiting = await check(goodZone(), { config });
    expect(find(waiting, 'dkim-key', 's2._domainkey.example.com')).toMatchObject({ status: 'warn', message: expect.stringContaining('another rsa key signs meanwhile') });
    expect(waiting.status).toBe('warn');

    // With neither record published, nothing can sign verifiably: both are errors.
    const zone = goodZone();
    delete zone['s1._domainkey.example.com'];
    const neither = await check(zone, { config });
    expect(neither.checks.filter((c) => c.check === 'dkim-key').map((c) => c.status)).toEqual(['error', 'error']);
  });

  it('checks the keys of the parent domain for a subdomain it covers', async () => {
    const config = configWith({ domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keys.rsa.path }], subdomains: true } } });
    const zone = { ...goodZone(), 'news.example.com': { txt: ['v=spf1 ip4:198.51.100.5 ip6:2001:db8::/64 -all'], mx: [{ exchange: 'mx.example.com', priority: 5 }] } };
    const report = await check(zone, { domain: 'News.Example.COM', config });
    expect(report.domain).toBe('news.example.com');
    expect(find(report, 'dkim-signing')).toMatchObject({ status: 'ok', signingDomain: 'example.com', source: 'parent' });
    expect(find(report, 'dkim-key')).toMatchObject({ status: 'ok', subject: 's1._domainkey.example.com', signingDomain: 'example.com' });
    // DMARC is inherited from example.com (no sp=, so p applies) and d=example.com aligns relaxed.
    expect(find(report, 'dmarc-record')).toMatchObject({ status: 'ok', policy: 'reject', recordDomain: 'example.com' });
    expect(find(report, 'dmarc-record').message).toContain('inherited from _dmarc.example.com');
    expect(find(report, 'dmarc-alignment')).toMatchObject({ status: 'ok', dkimAligned: true });
    // news.example.com sends from the marketing pool.
    expect(report.checks.filter((c) => c.check === 'spf-ip').map((c) => `${c.subject} ${c.status}`)).toEqual(['198.51.100.5 ok', '2001:db8::5 ok']);
  });

  it('warns when the fallback domain signs, and fails when nothing does', async () => {
    const config = configWith({ ...exampleKeys(), fallback: 'example.com' });
    const zone = { ...goodZone(), 'other.org': { txt: ['v=spf1 ip4:192.0.2.0/24 -all'], mx: [{ exchange: 'mx.example.com', priority: 10 }] }, '_dmarc.other.org': { txt: ['v=DMARC1; p=quarantine'] } };
    const fallback = await check(zone, { domain: 'other.org', config });
    expect(find(fallback, 'dkim-signing')).toMatchObject({ status: 'warn', source: 'fallback', signingDomain: 'example.com' });
    expect(find(fallback, 'dkim-key', 's1._domainkey.example.com')).toMatchObject({ status: 'ok' });
    // example.com does not align with other.org; SPF (MAIL FROM other.org) does: DMARC rests on SPF alone.
    expect(find(fallback, 'dmarc-alignment')).toMatchObject({ status: 'warn', dkimAligned: false, spfAligned: true });

    const unsigned = await check(zone, { domain: 'other.org', config: configWith(exampleKeys()) });
    expect(find(unsigned, 'dkim-signing')).toMatchObject({ status: 'error', source: 'none', signingDomain: null });
    expect(find(unsigned, 'dkim-signing').fix).toContain('rookery dkim generate --domain other.org --selector <name>');
    const none = await check(zone, { domain: 'other.org', config: configWith(undefined) });
    expect(find(none, 'dkim-signing')).toMatchObject({ status: 'error', source: 'none' });
  });
});

describe('SPF', () => {
  it('fails the one IP the record does not cover, with the term to add', async () => {
    const zone = goodZone();
    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.10 -all'];
    const report = await check(zone);
    expect(find(report, 'spf-ip', '192.0.2.10')).toMatchObject({ status: 'ok', result: 'pass' });
    const eleven = find(report, 'spf-ip', '192.0.2.11');
    expect(eleven).toMatchObject({ status: 'error', result: 'fail' });
    expect(eleven.fix).toBe('add ip4:192.0.2.11 to the SPF record of example.com (before its "all")');
    expect(report.status).toBe('error');
  });

  it('evaluates mechanisms, not text: a/mx terms and CIDR ranges authorise, a mentioned address does not', async () => {
    const zone = goodZone();
    // 192.0.2.11 appears in the text only inside exists: with a macro-free name that does not exist.
    zone['example.com']!.txt = ['v=spf1 mx a:mta1.example.com exists:192.0.2.11.nowhere.example.com -all'];
    zone['mx.example.com'] = { a: ['192.0.2.0'] };
    zone['mta1.example.com'] = { a: ['192.0.2.10'] };
    const report = await check(zone);
    expect(find(report, 'spf-ip', '192.0.2.10').result).toBe('pass');
    expect(find(report, 'spf-ip', '192.0.2.11').result).toBe('fail');

    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.8/29 -all'];
    const cidr = await check(zone);
    expect(cidr.checks.filter((c) => c.check === 'spf-ip').map((c) => (c as { result: string }).result)).toEqual(['pass', 'pass']);
  });

  it('warns on softfail and neutral', async () => {
    const zone = goodZone();
    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.10 ~all'];
    const soft = await check(zone);
    expect(find(soft, 'spf-ip', '192.0.2.11')).toMatchObject({ status: 'warn', result: 'softfail' });
    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.10 ?all'];
    const neutral = await check(zone);
    expect(find(neutral, 'spf-ip', '192.0.2.11')).toMatchObject({ status: 'warn', result: 'neutral' });
  });

  it('reports a domain without SPF, suggesting a record of its egress IPs', async () => {
    const zone = goodZone();
    zone['example.com']!.txt = ['google-site-verification=abc'];
    const report = await check(zone);
    expect(find(report, 'spf-record')).toMatchObject({ status: 'error', record: null });
    expect(find(report, 'spf-record').fix).toContain('publish TXT record example.com with value "v=spf1 ip4:192.0.2.10 ip4:192.0.2.11 -all"');
    expect(report.checks.filter((c) => c.check === 'spf-ip').map((c) => [c.status, (c as { result: string }).result])).toEqual([
      ['error', 'none'],
      ['error', 'none'],
    ]);
  });

  it('reports permerror for too many DNS lookups and for bad syntax', async () => {
    const zone = goodZone();
    // A chain of 11 includes: one more DNS-querying term than RFC 7208 4.6.4 allows.
    zone['example.com']!.txt = ['v=spf1 include:l1.example.net -all'];
    for (let i = 1; i <= 11; i++) zone[`l${i}.example.net`] = { txt: [i < 11 ? `v=spf1 include:l${i + 1}.example.net -all` : 'v=spf1 ip4:192.0.2.0/24 -all'] };
    const deep = await check(zone);
    const ip = find(deep, 'spf-ip', '192.0.2.10');
    expect(ip).toMatchObject({ status: 'error', result: 'permerror' });
    expect(ip.message).toContain('Too many DNS requests');

    // Ten are still fine.
    zone['l10.example.net'] = { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] };
    expect(find(await check(zone), 'spf-ip', '192.0.2.10').result).toBe('pass');

    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.10 ipv4:192.0.2.11 -all'];
    expect(find(await check(zone), 'spf-ip', '192.0.2.11')).toMatchObject({ status: 'error', result: 'permerror' });
  });

  it('reports two SPF records as an error', async () => {
    const zone = goodZone();
    zone['example.com']!.txt = ['v=spf1 ip4:192.0.2.10 -all', 'v=spf1 ip4:192.0.2.11 -all'];
    const report = await check(zone);
    expect(find(report, 'spf-record')).toMatchObject({ status: 'error', message: expect.stringContaining('2 SPF records') });
    expect(find(report, 'spf-ip', '192.0.2.10').result).toBe('permerror');
  });

  it('reports a DNS failure as temperror, a warning', async () => {
    const zone = goodZone();
    zone['_spf.example.net'] = { txt: 'ESERVFAIL' };
    const report = await check(zone);
    expect(find(report, 'spf-ip', '192.0.2.10')).toMatchObject({ result: 'pass' });
    expect(find(report, 'spf-ip', '192.0.2.11')).toMatchObject({ status: 'warn', result: 'temperror' });
  });

  it('says so when no egress IPs are configured', async () => {
    const config = { ...configWith(exampleKeys()), ips: [] };
    const report = await check(goodZone(), { config });
    expect(report.checks.some((c) => c.check === 'spf-ip')).toBe(false);
    expect(find(report, 'spf-no-ips')).toMatchObject({ status: 'warn', message: expect.stringContaining('no egress IPs are configured') });
  });
});

describe('DMARC', () => {
  it.each([
    ['v=DMARC1; p=none', 'none', 'monitoring only'],
    ['v=DMARC1; p=quarantine; pct=25; adkim=s', 'quarantine', 'treat mail that fails DMARC as spam'],
    ['v=DMARC1; p=reject; aspf=s; rua=mailto:a@example.com,mailto:b@example.net', 'reject', 'reject mail that fails DMARC'],
  ])('tells what %s enforces', async (record, policy, words) => {
    const zone = goodZone();
    zone['_dmarc.example.com'] = { txt: [record] };
    const check1 = find(await check(zone), 'dmarc-record');
    expect(check1).toMatchObject({ status: 'ok', policy, record, recordDomain: 'example.com' });
    expect(check1.message).toContain(words);
    if (policy === 'quarantine') {
      expect(check1).toMatchObject({ pct: 25, adkim: 's', aspf: 'r', rua: [] });
      expect(check1.message).toContain('only for 25 % of failing mail');
      expect(check1.message).toContain('DKIM alignment strict, SPF alignment relaxed');
      expect(check1.message).toContain('no aggregate reports requested');
    }
    if (policy === 'reject') {
      expect(check1).toMatchObject({ adkim: 'r', aspf: 's', rua: ['mailto:a@example.com', 'mailto:b@example.net'] });
      expect(check1.message).toContain('aggregate reports go to mailto:a@example.com, mailto:b@example.net');
    }
  });

  it('warns when there is no DMARC record, with one to start from', async () => {
    const zone = goodZone();
    delete zone['_dmarc.example.com'];
    const report = await check(zone);
    expect(find(report, 'dmarc-record')).toMatchObject({ status: 'warn', record: null, policy: null });
    expect(find(report, 'dmarc-record').fix).toContain('publish TXT record _dmarc.example.com with value "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"');
    expect(report.checks.some((c) => c.check === 'dmarc-alignment')).toBe(false);
  });

  it('applies sp= of the organizational domain to a subdomain, and reports invalid and duplicate records', async () => {
    const zone = goodZone();
    zone['_dmarc.example.com'] = { txt: ['v=DMARC1; p=reject; sp=quarantine'] };
    zone['sub.example.com'] = { mx: [{ exchange: 'mx.example.com', priority: 1 }] };
    const sub = await check(zone, { domain: 'sub.example.com', config: configWith({ domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keys.rsa.path }], subdomains: true } } }) });
    expect(find(sub, 'dmarc-record')).toMatchObject({ policy: 'quarantine', recordDomain: 'example.com' });

    zone['_dmarc.example.com'] = { txt: ['v=DMARC1; p=block'] };
    expect(find(await check(zone), 'dmarc-record')).toMatchObject({ status: 'error', message: expect.stringContaining('invalid') });

    zone['_dmarc.example.com'] = { txt: ['v=DMARC1; p=none', 'v=DMARC1; p=reject'] };
    expect(find(await check(zone), 'dmarc-record')).toMatchObject({ status: 'error', message: expect.stringContaining('2 DMARC records') });
  });

  it('fails alignment when strict DKIM alignment meets a parent signing domain and the MAIL FROM domain differs', async () => {
    const zone = goodZone();
    zone['_dmarc.example.com'] = { txt: ['v=DMARC1; p=reject; adkim=s; aspf=s'] };
    zone['news.example.com'] = { txt: ['v=spf1 ip4:198.51.100.5 ip6:2001:db8::5 -all'], mx: [{ exchange: 'mx.example.com', priority: 1 }] };
    zone['bounces.news.example.com'] = { txt: ['v=spf1 ip4:198.51.100.5 ip6:2001:db8::5 -all'], mx: [{ exchange: 'mx.example.com', priority: 1 }] };
    const config = configWith({ domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keys.rsa.path }], subdomains: true } } });
    const report = await check(zone, { domain: 'news.example.com', config, returnPathDomain: 'bounces.news.example.com' });
    expect(find(report, 'dmarc-alignment')).toMatchObject({ status: 'error', dkimAligned: false, spfAligned: false });
  });
});

describe('return path', () => {
  it('warns when the domain has only an address record, and fails with neither', async () => {
    const zone = goodZone();
    delete zone['example.com']!.mx;
    const implicit = await check(zone);
    expect(find(implicit, 'return-path-mx')).toMatchObject({ status: 'warn', addresses: ['192.0.2.80'], message: expect.stringContaining('no MX record') });

    delete zone['example.com']!.a;
    const none = await check(zone);
    expect(find(none, 'return-path-mx')).toMatchObject({ status: 'error', message: expect.stringContaining('neither MX nor address records') });
  });

  it('fails on a null MX and on MX hosts without addresses', async () => {
    const zone = goodZone();
    zone['example.com']!.mx = [{ exchange: '', priority: 0 }];
    expect(find(await check(zone), 'return-path-mx')).toMatchObject({ status: 'error', message: expect.stringContaining('null MX') });
    zone['example.com']!.mx = [{ exchange: 'gone.example.com', priority: 10 }];
    expect(find(await check(zone), 'return-path-mx')).toMatchObject({ status: 'error', message: expect.stringContaining('none of these hosts has an address') });
  });

  it('checks a separate bounce domain: its MX, and SPF for it since receivers evaluate the MAIL FROM domain', async () => {
    const zone = goodZone();
    zone['bounces.example.com'] = { mx: [{ exchange: 'mx.example.com', priority: 10 }], txt: ['v=spf1 ip4:192.0.2.10 -all'] };
    const report = await check(zone, { returnPathDomain: 'bounces.example.com' });
    expect(report.returnPathDomain).toBe('bounces.example.com');
    expect(find(report, 'return-path-mx')).toMatchObject({ status: 'ok', domain: 'bounces.example.com' });
    const bounceIps = report.checks.filter((c) => c.check === 'spf-ip' && c.domain === 'bounces.example.com');
    expect(bounceIps.map((c) => `${c.subject} ${c.status}`)).toEqual(['192.0.2.10 ok', '192.0.2.11 error']);
    expect(find(report, 'spf-record', 'bounces.example.com')).toMatchObject({ status: 'ok' });
    // Relaxed SPF alignment: bounces.example.com aligns with example.com.
    expect(find(report, 'dmarc-alignment')).toMatchObject({ dkimAligned: true, spfAligned: true });

    const missing = await check(goodZone(), { returnPathDomain: 'bounces.example.com' });
    expect(find(missing, 'return-path-mx')).toMatchObject({ status: 'error', message: expect.stringContaining('does not exist in DNS') });
  });

  it('takes the bounce domain from returnPath config when none is given', async () => {
    const zone = goodZone();
    zone['b.example.com'] = { mx: [{ exchange: 'mx.example.com', priority: 10 }], txt: ['v=spf1 ip4:192.0.2.8/29 -all'] };
    const config = { ...configWith(exampleKeys()), returnPath: { secret: 'x'.repeat(32), domains: { 'example.com': { domain: 'b.example.com' } } } };
    const report = await check(zone, { config });
    expect(report.returnPathDomain).toBe('b.example.com');
    expect(report.status).toBe('ok');
  });
});

describe('egress IPs that send for a domain', () => {
  const config = configWith(undefined, {
    smtp: {
      users: [
        { username: 'shop', password: 'p', allowedSenders: ['*@shop.example.org'], pool: 'transactional' },
        { username: 'any', password: 'p', allowedSenders: ['*'], pools: ['marketing'] },
        { username: 'exact', password: 'p', allowedSenders: ['orders@example.com'], pool: 'marketing' },
      ],
    },
    ips: [
      { address: '192.0.2.10' },
      { address: '192.0.2.20', pool: 'transactional', hostname: 'tx.example.com' },
      { address: '198.51.100.5', pool: 'marketing' },
    ],
    pools: { marketing: { senders: ['*.promo.example.com'] }, transactional: { senders: [] } },
  });

  it("uses the pools of users allowed to send as the domain, and the domain's own pool", () => {
    expect(sendingPoolsFor('shop.example.org', config)).toEqual([
      { pool: 'transactional', reason: 'pool of user shop' },
      { pool: 'marketing', reason: 'pool of user any' },
      { pool: 'default', reason: 'mail without a pool of its own' },
    ]);
    expect(sendingIpsFor('shop.example.org', config).map((ip) => `${ip.address} ${ip.hostname} ${ip.pool}`)).toEqual([
      '192.0.2.10 mta.example.com default',
      '192.0.2.20 tx.example.com transactional',
      '198.51.100.5 mta.example.com marketing',
    ]);
    expect(sendingPoolsFor('example.com', config).map((p) => p.pool)).toEqual(['marketing', 'default']);
    expect(sendingPoolsFor('deals.promo.example.com', config)).toEqual([{ pool: 'marketing', reason: 'pool of user any' }]);
  });

  it('leaves out the fallback pool when every sender of the domain has a pool and no network is trusted', () => {
    const only = configWith(undefined, {
      smtp: { users: [{ username: 'shop', password: 'p', allowedSenders: ['*@shop.example.org'], pool: 'transactional' }] },
      ips: [{ address: '192.0.2.10' }, { address: '192.0.2.20', pool: 'transactional' }],
      pools: { transactional: { senders: ['news.example.org'] } },
    });
    expect(sendingPoolsFor('shop.example.org', only).map((p) => p.pool)).toEqual(['transactional']);
    const trusted = { ...only, smtp: { ...only.smtp, trustedNetworks: ['10.0.0.0/8'] } };
    expect(sendingPoolsFor('shop.example.org', trusted).map((p) => p.pool)).toEqual(['transactional', 'default']);
    // No user may send as other.org: what would carry it is the sender rule or default.
    expect(sendingPoolsFor('other.org', only)).toEqual([{ pool: 'default', reason: 'mail without a pool of its own' }]);
    expect(sendingPoolsFor('news.example.org', only)).toEqual([{ pool: 'transactional', reason: 'pools.transactional.senders covers news.example.org' }]);
  });
});
