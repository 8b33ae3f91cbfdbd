import { describe, expect, it } from 'vitest';
import { createRouter, type Resolver, type Route } from '../../src/engine/routing.ts';

/** DNS data as zone-file-like tables; a name absent from every table is NXDOMAIN. */
interface Zone {
  mx?: Record<string, Array<{ exchange: string; priority: number }> | string>;
  a?: Record<string, string[] | string>;
  aaaa?: Record<string, string[] | string>;
}

function dnsError(code: string, name: string): Error {
  return Object.assign(new Error(`query ${code} ${name}`), { code, hostname: name });
}

/** A resolver answering from tables, as node:dns/promises would: NODATA, NXDOMAIN or an error code string. */
function zoneResolver(zone: Zone): Resolver & { queries: string[] } {
  const queries: string[] = [];
  const exists = (name: string) => [zone.mx, zone.a, zone.aaaa].some((t) => t && name in t);
  function answer<T>(table: Record<string, T[] | string> | undefined, type: string, name: string): Promise<T[]> {
    queries.push(`${type} ${name}`);
    const value = table?.[name];
    if (typeof value === 'string') return Promise.reject(dnsError(value, name));
    if (value) return Promise.resolve(value);
    return Promise.reject(dnsError(exists(name) ? 'ENODATA' : 'ENOTFOUND', name));
  }
  return {
    queries,
    resolveMx: (name) => answer(zone.mx, 'MX', name),
    resolve4: (name) => answer(zone.a, 'A', name),
    resolve6: (name) => answer(zone.aaaa, 'AAAA', name),
  };
}

function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function hopsOf(route: Route) {
  if (!route.ok) throw new Error(`expected a route, got ${route.outcome.response}`);
  return route.hops.map((h) => `${h.name}=${h.host}:${h.port}/${h.preference}`);
}

describe('router: static routes', () => {
  const resolver = zoneResolver({});
  const clock = manualClock();
  const router = createRouter({
    routes: {
      'exact.test': '127.0.0.9:2525',
      '.corp.test': 'smarthost.corp.test:587',
      'v6.test': '[::1]:2526',
      'plain.test': 'relay.test',
      'mx.corp.test': 'mx',
      '*': '127.0.0.1:25',
    },
    mxPort: 25,
    resolver,
    clock,
  });

  it('uses the exact domain first', async () => {
    const route = await router.resolve('Exact.Test.');
    expect(route).toEqual({ ok: true, site: 'route:127.0.0.9:2525', hops: [{ host: '127.0.0.9', port: 2525, preference: 0, name: '127.0.0.9' }], viaMx: false });
  });

  it('matches subdomains with a ".parent" entry, but not the parent itself', async () => {
    expect(hopsOf(await router.resolve('a.b.corp.test'))).toEqual(['smarthost.corp.test=smarthost.corp.test:587/0']);
    expect(hopsOf(await router.resolve('corp.test'))).toEqual(['127.0.0.1=127.0.0.1:25/0']);
  });

  it('parses bracketed IPv6 and a host without port (port 25)', async () => {
    expect(hopsOf(await router.resolve('v6.test'))).toEqual(['::1=::1:2526/0']);
    const plain = await router.resolve('plain.test');
    expect(plain.ok && plain.site).toBe('route:relay.test:25');
  });

  it('falls back to "*", and never queries DNS for static routes', async () => {
    expect(hopsOf(await router.resolve('anything.example'))).toEqual(['127.0.0.1=127.0.0.1:25/0']);
    expect(resolver.queries).toEqual([]);
  });

  it('an exact "mx" entry overrides a parent static route', async () => {
    const route = await router.resolve('mx.corp.test');
    expect(route.ok).toBe(false);
    expect(resolver.queries).toContain('MX mx.corp.test');
  });
});

describe('router: MX lookup', () => {
  const zone: Zone = {
    mx: {
      'dest.test': [
        { exchange: 'mx2.dest.test', priority: 20 },
        { exchange: 'mx1a.dest.test', priority: 10 },
        { exchange: 'mx1b.dest.test', priority: 10 },
      ],
      'alias.test': [
        { exchange: 'mx1b.dest.test', priority: 5 },
        { exchange: 'MX2.dest.test.', priority: 7 },
        { exchange: 'mx1a.dest.test', priority: 5 },
      ],
      'nullmx.test': [{ exchange: '', priority: 0 }],
      'servfail.test': 'ESERVFAIL',
      'timeout.test': 'ETIMEOUT',
      'deadmx.test': [{ exchange: 'gone.test', priority: 10 }],
      'flakymx.test': [{ exchange: 'flaky.test', priority: 10 }],
    },
    a: {
      'mx1a.dest.test': ['192.0.2.1'],
      'mx1b.dest.test': ['192.0.2.2', '192.0.2.3'],
      'mx2.dest.test': ['192.0.2.9'],
      'implicit.test': ['198.51.100.7'],
      'flaky.test': 'ESERVFAIL',
      'many.test': ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5'],
    },
    aaaa: { 'mx2.dest.test': ['2001:db8::9'], 'flaky.test': 'ETIMEOUT', 'noaddr.test': [] },
  };

  function router(random = () => 0.5, cacheTtlMs?: number) {
    const resolver = zoneResolver(zone);
    const clock = manualClock();
    return { resolver, clock, router: createRouter({ routes: { '*': 'mx' }, mxPort: 2525, resolver, clock, random, cacheTtlMs }) };
  }

  it('orders hosts by preference, one hop per address, A before AAAA', async () => {
    // Draws are taken in record order (mx2, mx1a, mx1b): mx1b gets the lower tiebreak and goes first.
    const draws = [0.5, 0.9, 0.1];
    const { router: r } = router(() => draws.shift() ?? 0.5);
    expect(hopsOf(await r.resolve('dest.test'))).toEqual([
      'mx1b.dest.test=192.0.2.2:2525/10',
      'mx1b.dest.test=192.0.2.3:2525/10',
      'mx1a.dest.test=192.0.2.1:2525/10',
      'mx2.dest.test=192.0.2.9:2525/20',
      'mx2.dest.test=2001:db8::9:2525/20',
    ]);
  });

  it('shuffles hosts of equal preference with the injected random function', async () => {
    // Draws are taken in record order: mx2, mx1a, mx1b. Preference always comes first.
    const firstHosts = async (draws: number[]) => {
      const { router: r } = router(() => draws.shift() ?? 0.5);
      return [...new Set(hopsOf(await r.resolve('dest.test')).map((h) => h.split('=')[0]))];
    };
    expect(await firstHosts([0.0, 0.2, 0.8])).toEqual(['mx1a.dest.test', 'mx1b.dest.test', 'mx2.dest.test']);
    expect(await firstHosts([0.0, 0.8, 0.2])).toEqual(['mx1b.dest.test', 'mx1a.dest.test', 'mx2.dest.test']);
  });

  it('gives domains that share an MX set the same site', async () => {
    const { router: r } = router();
    const a = await r.resolve('dest.test');
    const b = await r.resolve('alias.test');
    expect(a.ok && a.site).toBe('mx1a.dest.test,mx1b.dest.test,mx2.dest.test');
    expect(b.ok && b.site).toBe(a.ok && a.site);
  });

  it('uses the domain itself when it has no MX (implicit MX)', async () => {
    const { router: r } = router();
    const route = await r.resolve('implicit.test');
    expect(route).toEqual({ ok: true, site: 'implicit.test', hops: [{ host: '198.51.100.7', port: 2525, preference: 0, name: 'implicit.test' }], viaMx: true });
  });

  it('bounces a null MX domain with 5.1.10 no-mail-domain', async () => {
    const { router: r } = router();
    const route = await r.resolve('nullmx.test');
    expect(route.ok).toBe(false);
    expect(!route.ok && route.outcome).toMatchObject({ disposition: 'permanent', enhanced: '5.1.10', bounceClass: 'no-mail-domain', stage: 'dns' });
  });

  it('bounces a domain that does not exist with 5.1.2', async () => {
    const { router: r } = router();
    const route = await r.resolve('nowhere.test');
    expect(!route.ok && route.outcome).toMatchObject({ disposition: 'permanent', enhanced: '5.1.2', code: null });
  });

  it('defers on SERVFAIL and timeouts (bounce class dns)', async () => {
    const { router: r } = router();
    for (const domain of ['servfail.test', 'timeout.test', 'flakymx.test']) {
      const route = await r.resolve(domain);
      expect(!route.ok && route.outcome).toMatchObject({ disposition: 'transient', enhanced: '4.4.3', bounceClass: 'dns' });
    }
  });

  it('bounces when no MX host has an address', async () => {
    const { router: r } = router();
    const route = await r.resolve('deadmx.test');
    expect(!route.ok && route.outcome).toMatchObject({ disposition: 'permanent', enhanced: '5.4.4', bounceClass: 'dns' });
  });

  it('bounces a domain with neither MX nor address records', async () => {
    const { router: r } = router();
    const route = await r.resolve('noaddr.test');
    expect(!route.ok && route.outcome).toMatchObject({ disposition: 'permanent', bounceClass: 'no-mail-domain' });
  });

  it('connects to an address literal domain directly', async () => {
    const { router: r, resolver } = router();
    expect(hopsOf(await r.resolve('[192.0.2.44]'))).toEqual(['192.0.2.44=192.0.2.44:2525/0']);
    expect(hopsOf(await r.resolve('[IPv6:2001:db8::44]'))).toEqual(['2001:db8::44=2001:db8::44:2525/0']);
    expect(resolver.queries).toEqual([]);
  });

  it('caps the addresses tried per MX host', async () => {
    const resolver = zoneResolver({ mx: { 'big.test': [{ exchange: 'many.test', priority: 1 }] }, a: zone.a });
    const r = createRouter({ routes: {}, mxPort: 25, resolver, clock: manualClock(), maxAddressesPerHost: 2 });
    expect(hopsOf(await r.resolve('big.test'))).toEqual(['many.test=203.0.113.1:25/1', 'many.test=203.0.113.2:25/1']);
  });

  it('caches answers for the TTL on the injected clock, but not transient failures', async () => {
    const { router: r, resolver, clock } = router(() => 0.5, 30_000);
    await r.resolve('dest.test');
    const afterFirst = resolver.queries.length;
    await r.resolve('dest.test');
    expect(resolver.queries.length).toBe(afterFirst);
    clock.advance(30_001);
    await r.resolve('dest.test');
    expect(resolver.queries.length).toBeGreaterThan(afterFirst);

    const before = resolver.queries.length;
    await r.resolve('servfail.test');
    await r.resolve('servfail.test');
    expect(resolver.queries.length).toBe(before + 2);
  });

  it('shares one lookup between concurrent callers', async () => {
    const { router: r, resolver } = router();
    const routes = await Promise.all([r.resolve('dest.test'), r.resolve('dest.test'), r.resolve('DEST.test')]);
    expect(routes.every((route) => route.ok)).toBe(true);
    expect(resolver.queries.filter((q) => q === 'MX dest.test')).toHaveLength(1);
  });
});
