import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createStsFetcher } from '../../src/engine/tls/mta-sts-fetcher.ts';
import { createStsResolver, type StsResolver } from '../../src/engine/tls/mta-sts-resolver.ts';
import { createTlsPolicies } from '../../src/engine/tls/tls-policies.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver, type FixtureResolver } from '../helpers/fixture-resolver.ts';
import { startHttpsFixture, type HttpsFixture, type RecordedRequest } from '../helpers/https-fixture.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTestCa, type TestCa } from '../helpers/test-ca.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * MTA-STS discovery against a real HTTPS policy server on loopback (a test CA's certificate for
 * the mta-sts hosts), DNS from a table and a real store: what is fetched when, what is kept.
 */

const logger = createLogger('silent');
const T0 = Date.parse('2026-11-30T08:00:00Z');
const POLICY = 'version: STSv1\nmode: enforce\nmx: mx.dest.test\nmx: *.backup.dest.test\nmax_age: 3600\n';

describe('MTA-STS policy discovery', () => {
  let ca: TestCa;
  let server: HttpsFixture;
  /** What the policy server answers, by host: [status, content type, body] or a function. */
  let answers: Map<string, (res: ServerResponse) => void>;
  let dir: TempDir;
  let store: Store;
  let clock: ManualClock;
  let dns: FixtureResolver;
  let resolver: StsResolver;

  const serve = (host: string, body: string, status = 200, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}) =>
    answers.set(host, (res) => res.writeHead(status, { 'content-type': type, ...headers }).end(body));
  const fetchesOf = (domain: string) => server.requests.filter((r: RecordedRequest) => r.host === `mta-sts.${domain}`).length;

  beforeAll(async () => {
    ca = await createTestCa();
    const pair = await ca.issue(['mta-sts.dest.test', 'mta-sts.moved.test', 'mta-sts.big.test', 'mta-sts.html.test', 'mta-sts.broken.test']);
    server = await startHttpsFixture(pair, (req, res) => {
      const answer = answers.get(req.host);
      if (!answer || req.path !== '/.well-known/mta-sts.txt') return void res.writeHead(404).end();
      answer(res);
    });
  });

  afterAll(async () => {
    await server.close();
    await ca.remove();
  });

  beforeEach(async () => {
    answers = new Map();
    server.requests.length = 0;
    dir = await createTempDir('rookery-mta-sts');
    clock = manualClock(T0);
    store = createSqliteStore({ path: dir.file('rookery.db'), logger, clock });
    await store.migrate();
    dns = createFixtureResolver({ '_mta-sts.dest.test': { txt: ['v=STSv1; id=first;'] } });
    const fetch = createStsFetcher({ timeoutMs: 2_000, ca: ca.cert, port: server.port, lookup: server.lookup, allowPrivateNetworks: true });
    resolver = createStsResolver({ resolver: dns, fetch, store, clock, logger, recheckMs: 60_000 });
  });

  afterEach(async () => {
    await store.close();
    await dir.remove();
  });

  it('fetches a policy once, shares it through the store, and asks DNS again only after the recheck interval', async () => {
    serve('mta-sts.dest.test', POLICY);
    const found = await resolver.lookup('Dest.Test');
    expect(found).toEqual({
      kind: 'policy',
      policy: { domain: 'dest.test', id: 'first', mode: 'enforce', mx: ['mx.dest.test', '*.backup.dest.test'], maxAge: 3600, lines: POLICY.trim().split('\n'), fetchedAt: T0, expiresAt: T0 + 3_600_000 },
    });
    expect(await store.getStsPolicy('dest.test')).toEqual(found.kind === 'policy' ? found.policy : null);
    // Lookups at once share the remembered answer: no query, no fetch.
    await Promise.all([resolver.lookup('dest.test'), resolver.lookup('dest.test')]);
    expect(dns.queries.filter((q) => q === 'TXT _mta-sts.dest.test')).toHaveLength(1);

    // Another node (another resolver on the same store) finds the id unchanged: no fetch.
    const other = createStsResolver({ resolver: dns, fetch: () => Promise.reject(new Error('must not fetch')), store, clock, logger });
    expect(await other.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    expect(dns.queries.filter((q) => q === 'TXT _mta-sts.dest.test')).toHaveLength(3);
    expect(fetchesOf('dest.test')).toBe(1);
  });

  it('fetches again when the TXT id changes, and when the cached policy has expired', async () => {
    serve('mta-sts.dest.test', POLICY);
    await resolver.lookup('dest.test');
    serve('mta-sts.dest.test', POLICY.replace('mode: enforce', 'mode: testing'));
    dns.set('_mta-sts.dest.test', { txt: ['v=STSv1; id=second;'] });
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'second', mode: 'testing' } });
    expect(fetchesOf('dest.test')).toBe(2);
    // Past max_age the same id is fetched again.
    clock.advance(3_600_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'second', fetchedAt: T0 + 3_660_000 } });
    expect(fetchesOf('dest.test')).toBe(3);
  });

  it('keeps using a cached policy still within max_age when the fetch fails, the TXT record is gone or DNS fails', async () => {
    serve('mta-sts.dest.test', POLICY);
    await resolver.lookup('dest.test');
    // A new id, but the server is broken: the cached policy stays in force (RFC 8461 5.1).
    dns.set('_mta-sts.dest.test', { txt: ['v=STSv1; id=second;'] });
    serve('mta-sts.dest.test', 'oops', 500);
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    // An attacker removes the record, or DNS fails: still the cached policy.
    dns.set('_mta-sts.dest.test', {});
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    dns.set('_mta-sts.dest.test', { txt: 'ESERVFAIL' });
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    // Once expired, with the fetch still failing: no policy can be had, and the failure is said.
    dns.set('_mta-sts.dest.test', { txt: ['v=STSv1; id=second;'] });
    clock.advance(3_600_000);
    expect(await resolver.lookup('dest.test')).toEqual({ kind: 'failed', failure: 'sts-policy-fetch-error', reason: expect.stringMatching(/HTTP 500/) });
  });

  it('refreshes a policy in use before it expires, so blocking DNS at its first max_age turns nothing off', async () => {
    const daily = POLICY.replace('max_age: 3600', 'max_age: 86400');
    serve('mta-sts.dest.test', daily);
    await resolver.lookup('dest.test');
    // A day of mail to the domain, DNS and HTTPS healthy, the TXT id unchanged.
    for (let minutes = 5; minutes < 24 * 60; minutes += 5) {
      clock.advance(300_000);
      expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
      await resolver.settled();
    }
    expect(fetchesOf('dest.test')).toBe(2);
    expect((await store.getStsPolicy('dest.test'))!.expiresAt).toBe(T0 + 12 * 3_600_000 + 86_400_000);
    // The first fetch's max_age has passed; an attacker now blocks the TXT lookup.
    clock.advance(301_000);
    dns.set('_mta-sts.dest.test', { txt: 'ETIMEOUT' });
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first', mode: 'enforce' } });
  });

  it('keeps the cached policy until it expires when its refresh fails', async () => {
    serve('mta-sts.dest.test', POLICY);
    await resolver.lookup('dest.test');
    serve('mta-sts.dest.test', 'oops', 500);
    clock.advance(1_800_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first', expiresAt: T0 + 3_600_000 } });
    await resolver.settled();
    expect(fetchesOf('dest.test')).toBe(2);
    expect((await store.getStsPolicy('dest.test'))!.expiresAt).toBe(T0 + 3_600_000);
    clock.advance(60_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'policy', policy: { id: 'first' } });
    await resolver.settled();
    clock.advance(1_740_000);
    expect(await resolver.lookup('dest.test')).toMatchObject({ kind: 'failed', failure: 'sts-policy-fetch-error' });
  });

  it('fetches no policy from a host at a private address unless allowed, and only a few at once', async () => {
    serve('mta-sts.dest.test', POLICY);
    const guarded = createStsResolver({
      resolver: dns, clock, logger, store,
      fetch: createStsFetcher({ timeoutMs: 2_000, ca: ca.cert, port: server.port, lookup: server.lookup, allowPrivateNetworks: false }),
    });
    expect(await guarded.lookup('dest.test')).toEqual({
      kind: 'failed', failure: 'sts-policy-fetch-error', reason: expect.stringMatching(/127\.0\.0\.1, which is .*refused \(delivery\.mtaSts\.allowPrivateNetworks\)/),
    });
    expect(server.requests).toHaveLength(0);

    // Five domains at once through a fetcher of two slots: two requests reach the server until answers come.
    const held: Array<() => void> = [];
    const domains = ['dest.test', 'moved.test', 'big.test', 'html.test', 'broken.test'];
    for (const domain of domains) answers.set(`mta-sts.${domain}`, (res) => held.push(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY)));
    const fetch = createStsFetcher({ timeoutMs: 10_000, ca: ca.cert, port: server.port, lookup: server.lookup, allowPrivateNetworks: true, maxConcurrent: 2 });
    const fetched = Promise.all(domains.map((domain) => fetch(domain)));
    await until(() => held.length === 2, 'two fetches at the server');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.requests).toHaveLength(2);
    await until(() => {
      held.splice(0).forEach((answer) => answer());
      return server.requests.length === 5;
    }, 'every fetch at the server');
    held.splice(0).forEach((answer) => answer());
    expect((await fetched).every((r) => r.ok)).toBe(true);
    expect(server.requests).toHaveLength(5);
  });

  it('remembers answers up to a number of bytes, the oldest forgotten first', async () => {
    serve('mta-sts.dest.test', POLICY);
    serve('mta-sts.moved.test', POLICY.replace('dest.test', 'moved.test'));
    dns.set('_mta-sts.moved.test', { txt: ['v=STSv1; id=first;'] });
    const fetch = createStsFetcher({ timeoutMs: 2_000, ca: ca.cert, port: server.port, lookup: server.lookup, allowPrivateNetworks: true });
    const small = createStsResolver({ resolver: dns, fetch, store, clock, logger, recheckMs: 60_000, maxBytes: 150 });
    await small.lookup('dest.test');
    await small.lookup('dest.test');
    expect(dns.queries.filter((q) => q === 'TXT _mta-sts.dest.test')).toHaveLength(1);
    await small.lookup('moved.test');
    await small.lookup('dest.test');
    expect(dns.queries.filter((q) => q === 'TXT _mta-sts.dest.test')).toHaveLength(2);
  });

  it('has no policy without a TXT record, and fetches nothing then', async () => {
    expect(await resolver.lookup('none.test')).toEqual({ kind: 'none' });
    expect(server.requests).toHaveLength(0);
  });

  it('refuses redirects, other content types, oversized bodies, invalid policies and a certificate that does not verify', async () => {
    const failureOf = async (domain: string) => {
      dns.set(`_mta-sts.${domain}`, { txt: ['v=STSv1; id=x;'] });
      const found = await resolver.lookup(domain);
      return found.kind === 'failed' ? `${found.failure}: ${found.reason}` : found.kind;
    };
    serve('mta-sts.moved.test', '', 301, 'text/plain', { location: 'https://mta-sts.dest.test/.well-known/mta-sts.txt' });
    expect(await failureOf('moved.test')).toMatch(/^sts-policy-fetch-error: .*HTTP 301 \(a redirect, not followed\)/);
    serve('mta-sts.html.test', POLICY, 200, 'text/html');
    expect(await failureOf('html.test')).toMatch(/^sts-policy-fetch-error: .*served text\/html/);
    serve('mta-sts.big.test', `${POLICY}${'# padding\n'.repeat(7000)}`);
    expect(await failureOf('big.test')).toMatch(/^sts-policy-fetch-error: .*larger than 65536 bytes/);
    serve('mta-sts.broken.test', 'version: STSv1\nmode: enforce\nmax_age: 60\n');
    expect(await failureOf('broken.test')).toMatch(/^sts-policy-invalid: no mx line/);
    // The server's certificate does not name mta-sts.stranger.test.
    expect(await failureOf('stranger.test')).toMatch(/^sts-webpki-invalid: the certificate of mta-sts\.stranger\.test is not valid/);
  });

  it('explains the TLS a domain would be held to from the cached policy, fetching nothing', async () => {
    const tls = createTlsPolicies({ sts: resolver, settings: () => ({ mode: 'opportunistic', policies: { '.bank.test': 'required' }, mtaSts: true, reports: true }) });
    expect(await tls.explain('dest.test', true, T0)).toEqual({ mode: 'opportunistic', mtaSts: null, detail: 'opportunistic (delivery.tls); no MTA-STS policy cached (one is looked up at the next delivery)' });
    expect((await tls.explain('a.bank.test', true, T0)).detail).toBe('required (delivery.tlsPolicies); no MTA-STS policy cached (one is looked up at the next delivery)');
    expect(server.requests).toHaveLength(0);
    serve('mta-sts.dest.test', POLICY);
    await resolver.lookup('dest.test');
    expect(await tls.explain('dest.test', true, T0)).toEqual({
      mode: 'verify',
      mtaSts: { id: 'first', mode: 'enforce', mx: ['mx.dest.test', '*.backup.dest.test'], expiresAt: T0 + 3_600_000 },
      detail: 'verify: opportunistic (delivery.tls), MTA-STS policy first (enforce, mx: mx.dest.test, *.backup.dest.test) valid until 2026-11-30T09:00:00.000Z; only the listed MX hosts, with a certificate valid for them',
    });
    expect((await tls.explain('dest.test', true, T0 + 3_600_000)).detail).toBe(
      'opportunistic: opportunistic (delivery.tls), MTA-STS policy first (enforce, mx: mx.dest.test, *.backup.dest.test) expired: fetched again at the next delivery',
    );
    expect((await tls.explain('dest.test', false, T0)).detail).toBe('opportunistic (delivery.tls); MTA-STS does not apply to a configured route');
  });
});
