import { describe, expect, it } from 'vitest';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { isMxPattern, providersConfigSchema } from '../../src/config/pool-schemas.ts';
import { ProviderCatalog, type ProviderGroup } from '../../src/ippool/providers.ts';

const groups: ProviderGroup[] = [
  { name: 'google', mx: ['aspmx.l.google.com', '*.google.com'], warmupScale: 1 },
  { name: 'apple', mx: ['mx*.mail.me.com'], warmupScale: 0.5 },
  { name: 'broad', mx: ['*.example.net'], warmupScale: 2 },
  { name: 'narrow', mx: ['mx.corp.example.net'], warmupScale: 1 },
  { name: 'other', mx: [], warmupScale: 1 },
];
const catalog = new ProviderCatalog(groups);

describe('patterns', () => {
  it('an exact name matches that host only, whatever the case and a trailing dot', () => {
    expect(catalog.providerOf(['ASPMX.L.Google.COM.'])).toBe('google');
    expect(catalog.providerOf(['aspmx.l.google.com.evil.test'])).toBe('other');
  });

  it('"*." matches any subdomain, one label or more, but not the domain itself', () => {
    expect(catalog.providerOf(['smtp.google.com'])).toBe('google');
    expect(catalog.providerOf(['alt1.gmail-smtp-in.l.google.com'])).toBe('google');
    expect(catalog.providerOf(['google.com'])).toBe('other');
    expect(catalog.providerOf(['notgoogle.com'])).toBe('other');
    expect(catalog.providerOf(['smtp.google.com.evil.test'])).toBe('other');
  });

  it('"*" inside a label matches within that label only', () => {
    expect(catalog.providerOf(['mx01.mail.me.com'])).toBe('apple');
    expect(catalog.providerOf(['mx.mail.me.com'])).toBe('apple');
    expect(catalog.providerOf(['a.mx1.mail.me.com'])).toBe('other');
    expect(catalog.providerOf(['smtp.mail.me.com'])).toBe('other');
  });

  it('dots in a pattern are literal', () => {
    expect(catalog.providerOf(['mx1xmailxme.com'])).toBe('other');
    expect(catalog.providerOf(['aspmxxlxgoogle.com'])).toBe('other');
  });

  it('validates pattern syntax', () => {
    for (const ok of ['mx.example.com', '*.example.com', 'mx*.example.com', '*.mx*.example.com', 'example.com.']) {
      expect(isMxPattern(ok), ok).toBe(true);
    }
    for (const bad of ['*', 'com', '*.com*', 'a..b.com', 'mx**.example.com', 'a.*.example.com', 'mx_1.example.com', '', 'exa mple.com']) {
      expect(isMxPattern(bad), bad).toBe(false);
    }
  });
});

describe('providerOf', () => {
  it('the first group whose patterns match every MX wins, in catalog order', () => {
    expect(catalog.providerOf(['mx.corp.example.net'])).toBe('broad');
    expect(catalog.providerOf(['aspmx.l.google.com', 'alt1.aspmx.l.google.com', 'smtp.google.com'])).toBe('google');
  });

  it("a set mixing a provider's hosts with others is other: a domain cannot borrow Gmail's standing for its own host", () => {
    expect(catalog.providerOf(['mx.other.test', 'mx01.mail.me.com', 'smtp.google.com'])).toBe('other');
    expect(catalog.providerOf(['aspmx.l.google.com', 'mx.evil.test'])).toBe('other');
    expect(catalog.providerOfSite('aspmx.l.google.com,mx.evil.test')).toBe('other');
  });

  it('a set with no matching MX, or no MX at all, is other', () => {
    expect(catalog.providerOf(['mx.unknown.test', 'mx2.unknown.test'])).toBe('other');
    expect(catalog.providerOf([])).toBe('other');
  });

  it('gives the group scale, and 1 for names it does not know', () => {
    expect(catalog.warmupScale('apple')).toBe(0.5);
    expect(catalog.warmupScale('nobody')).toBe(1);
  });
});

describe('providerOfSite', () => {
  it('reads an MX site: the sorted MX names joined with ","', () => {
    expect(catalog.providerOfSite('alt1.aspmx.l.google.com,aspmx.l.google.com')).toBe('google');
    expect(catalog.providerOfSite('mx1.unknown.test,mx2.unknown.test')).toBe('other');
  });

  it('reads implicit-MX and address-literal sites', () => {
    expect(catalog.providerOfSite('smtp.google.com')).toBe('google');
    expect(catalog.providerOfSite('192.0.2.10')).toBe('other');
  });

  it('reads static routes by their host: route:host:port, route:[v6]:port', () => {
    expect(catalog.providerOfSite('route:smtp.google.com:25')).toBe('google');
    expect(catalog.providerOfSite('route:relay.internal.test:2525')).toBe('other');
    expect(catalog.providerOfSite('route:127.0.0.1:2525')).toBe('other');
    expect(catalog.providerOfSite('route:[2001:db8::1]:25')).toBe('other');
  });

  it('answers the same from its cache, and stays correct past the cache size', () => {
    const small = new ProviderCatalog(groups, { cacheMaxEntries: 2 });
    const sites = ['smtp.google.com', 'mx.a.test', 'mx01.mail.me.com', 'mx.b.test', 'smtp.google.com', 'mx01.mail.me.com'];
    expect(sites.map((s) => small.providerOfSite(s))).toEqual(['google', 'other', 'apple', 'other', 'google', 'apple']);
  });
});

describe('ProviderCatalog', () => {
  it('puts other last whatever the order given', () => {
    const c = new ProviderCatalog([groups[4]!, groups[0]!]);
    expect(c.groups.map((g) => g.name)).toEqual(['google', 'other']);
  });

  it('refuses groups without other, other with patterns, duplicates, bad scales and bad patterns', () => {
    expect(() => new ProviderCatalog([groups[0]!])).toThrow(/"other"/);
    expect(() => new ProviderCatalog([{ name: 'other', mx: ['*.x.test'], warmupScale: 1 }])).toThrow(/no patterns/);
    expect(() => new ProviderCatalog([groups[0]!, groups[0]!, groups[4]!])).toThrow(/defined twice/);
    expect(() => new ProviderCatalog([{ ...groups[0]!, warmupScale: 0 }, groups[4]!])).toThrow(/warmupScale/);
    expect(() => new ProviderCatalog([{ ...groups[0]!, mx: ['*'] }, groups[4]!])).toThrow(/pattern/);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(catalog)).toBe(true);
    expect(Object.isFrozen(catalog.groups)).toBe(true);
    expect(Object.isFrozen(catalog.groups[0]!.mx)).toBe(true);
  });
});

describe('providersConfigSchema', () => {
  it('{} and nothing at all are valid', () => {
    expect(providersConfigSchema.parse({})).toEqual({});
    expect(providersConfigSchema.parse(undefined)).toEqual({});
  });

  it('takes partial changes and new groups', () => {
    expect(providersConfigSchema.parse({ gmail: { warmupScale: 0.8 }, mailru: { mx: ['*.mail.ru'] } })).toEqual({
      gmail: { warmupScale: 0.8 },
      mailru: { mx: ['*.mail.ru'] },
    });
  });

  it('names bad values by path', () => {
    const issues = providersConfigSchema.safeParse({ gmail: { mx: ['*'], warmupScale: 0, extra: true }, x: { mx: [] } }).error!.issues;
    const paths = issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['gmail.mx.0', 'gmail.warmupScale', 'gmail', 'x.mx']));
    expect(issues.find((i) => i.path.join('.') === 'gmail.mx.0')!.message).toMatch(/^not an MX host pattern/);
  });
});

describe('config/providers.yaml', () => {
  const shipped = loadPoolData().providers;

  it('has the groups of the large providers, other last', () => {
    expect(shipped.groups.map((g) => g.name)).toEqual(['gmail', 'outlook', 'yahoo', 'apple', 'comcast', 'orange', 'gmx', 'other']);
  });

  // MX sets as these providers publish them.
  const sites: Array<[string, string]> = [
    ['alt1.gmail-smtp-in.l.google.com,alt2.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com', 'gmail'],
    ['aspmx.l.google.com', 'gmail'],
    ['smtp.google.com', 'gmail'],
    ['aspmx2.googlemail.com,aspmx3.googlemail.com', 'gmail'],
    ['hotmail-com.olc.protection.outlook.com', 'outlook'],
    ['outlook-com.olc.protection.outlook.com', 'outlook'],
    ['contoso-com.mail.protection.outlook.com', 'outlook'],
    ['contoso-com.r-v1.mx.microsoft', 'outlook'],
    ['mta5.am0.yahoodns.net,mta6.am0.yahoodns.net,mta7.am0.yahoodns.net', 'yahoo'],
    ['mx-aol.mail.gm0.yahoodns.net', 'yahoo'],
    ['mx01.mail.icloud.com,mx02.mail.icloud.com', 'apple'],
    ['mx1.mail.me.com', 'apple'],
    ['mx1a1.comcast.net,mx2a1.comcast.net', 'comcast'],
    ['smtp-in.orange.fr', 'orange'],
    ['smtp-in.wanadoo.fr', 'orange'],
    ['mx00.emig.gmx.net,mx01.emig.gmx.net', 'gmx'],
    ['mx-ha02.web.de,mx-ha03.web.de', 'gmx'],
    ['mx00.gmx.com', 'gmx'],
    ['mx.example.org', 'other'],
    ['route:smtp.mailrelay.test:587', 'other'],
  ];
  it.each(sites)('%s is %s', (site, provider) => {
    expect(shipped.providerOfSite(site)).toBe(provider);
  });

  it('scales strict providers below 1 and keeps every scale above 0', () => {
    for (const group of shipped.groups) expect(group.warmupScale).toBeGreaterThan(0);
    expect(shipped.warmupScale('gmail')).toBe(1);
    expect(shipped.warmupScale('outlook')).toBeLessThan(1);
    expect(shipped.warmupScale('other')).toBe(1);
  });
});
