import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { simpleParser } from 'mailparser';
import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TlsReportSender, type TlsReportSenderDeps } from '../../src/engine/tls/tls-report-sender.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import type { TlsSessionCount } from '../../src/storage/tls-reports.ts';
import { createHttpPoster, type HttpPoster } from '../../src/engine/http-poster.ts';
import { createFixtureResolver, type FixtureZone } from '../helpers/fixture-resolver.ts';
import { startHttpsFixture, type HttpsFixture } from '../helpers/https-fixture.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTestCa, type TestCa } from '../helpers/test-ca.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The daily TLS reports (RFC 8460) of two nodes sharing one store: sent once per domain and day,
 * after the day, by HTTPS POST (to a loopback server with a test CA) and by mail through the
 * queue; none for a domain without a TLSRPT record; a failed POST tried again once its claim runs out.
 */

const logger = createLogger('silent');
const DAY = '2026-11-29';
const reporter = { organization: 'Rookery Test Org', contact: 'postmaster@mta.rookery.test', submitter: 'mta.rookery.test' };
const sts = (domain: string) => ({ type: 'sts' as const, domain, id: 'v1', lines: ['version: STSv1', 'mode: enforce', `mx: mx.${domain}`, 'max_age: 86400'], mx: [`mx.${domain}`] });

describe('TLS report sender', () => {
  let ca: TestCa;
  let server: HttpsFixture;
  let failing: Set<string>;
  let dir: TempDir;
  let store: Store;
  let clock: ManualClock;
  let posters: HttpPoster[];
  /** Answers held back (reports.stall.test): a receiver that never answers. */
  let stalled: ServerResponse[];

  beforeAll(async () => {
    ca = await createTestCa();
    server = await startHttpsFixture(await ca.issue(['reports.both.test', 'reports.down.test', 'reports.stall.test']), (req, res) => {
      if (req.host === 'reports.stall.test') return void stalled.push(res);
      res.writeHead(failing.has(req.host) ? 500 : 200).end();
    });
  });

  afterAll(async () => {
    await server.close();
    await ca.remove();
  });

  beforeEach(async () => {
    failing = new Set();
    server.requests.length = 0;
    posters = [];
    stalled = [];
    clock = manualClock(Date.parse('2026-11-30T00:30:00Z'));
    dir = await createTempDir('rookery-tls-reports');
    store = createSqliteStore({ path: dir.file('queue.db'), logger, clock });
    await store.migrate();
  });

  afterEach(async () => {
    stalled.forEach((res) => res.destroy());
    posters.forEach((p) => p.close());
    await store.close();
    await dir.remove();
  });

  function sender(owner: string, zone: FixtureZone = {}, over: Partial<TlsReportSenderDeps> = {}): TlsReportSender {
    const resolver = createFixtureResolver({
      ...zone,
      '_smtp._tls.both.test': { txt: [`v=TLSRPTv1; rua=mailto:tls-reports@both.test,https://reports.both.test:${server.port}/v1/tlsrpt`] },
      '_smtp._tls.down.test': { txt: [`v=TLSRPTv1; rua=https://reports.down.test:${server.port}/tlsrpt`] },
      '_smtp._tls.none.test': { txt: ['v=spf1 -all'] },
    });
    // A long timeout: a POST to a receiver that never answers ends only by a stop.
    const poster = createHttpPoster({ timeoutMs: 120_000, allowPrivateNetworks: true, ca: ca.cert, lookup: server.lookup as never, userAgent: 'Rookery-TLSRPT/1' });
    posters.push(poster);
    return new TlsReportSender({
      store, resolver, poster, dkim: { sign: async (message: Buffer) => ({ message, domain: null }) } as never, metrics: new Metrics({ processMetrics: false }),
      clock, logger, reporter, from: 'noreply-tlsrpt@mta.rookery.test', pool: 'default', owner, claimMs: 600_000, ...over,
    });
  }

  async function countSessions(): Promise<void> {
    const counts: TlsSessionCount[] = [];
    for (const domain of ['both.test', 'down.test', 'none.test']) {
      counts.push({ day: DAY, policy: sts(domain), result: 'success', sendingIp: '', receivingIp: '', receivingMx: '', count: 12 });
      counts.push({ day: DAY, policy: sts(domain), result: 'certificate-expired', sendingIp: '192.0.2.7', receivingIp: '198.51.100.1', receivingMx: `mx.${domain}`, count: 2 });
    }
    // Today's sessions are not reported before the day ends.
    counts.push({ day: '2026-11-30', policy: sts('today.test'), result: 'success', sendingIp: '', receivingIp: '', receivingMx: '', count: 1 });
    await store.addTlsSessionCounts(counts);
  }

  it('sends each domain\'s report once though two nodes run at once: POSTed gzipped, mailed through the queue with the RFC 8460 headers and attachment', async () => {
    await countSessions();
    failing.add('reports.down.test');
    const [a, b] = await Promise.all([sender('node-a').runOnce(), sender('node-b').runOnce()]);
    const outcomes = new Map([...a, ...b].filter(([, r]) => r !== 'taken'));
    expect(Object.fromEntries(outcomes)).toEqual({ [`${DAY} both.test`]: 'sent', [`${DAY} down.test`]: 'failed', [`${DAY} none.test`]: 'skipped' });

    const posts = server.requests.filter((r) => r.host === 'reports.both.test');
    expect(posts).toHaveLength(1);
    expect(posts[0]).toMatchObject({ method: 'POST', path: '/v1/tlsrpt', headers: { 'content-type': 'application/tlsrpt+gzip', 'user-agent': 'Rookery-TLSRPT/1' } });
    const report = JSON.parse((await promisify(gunzip)(posts[0]!.body)).toString());
    expect(report).toEqual({
      'organization-name': 'Rookery Test Org',
      'date-range': { 'start-datetime': '2026-11-29T00:00:00Z', 'end-datetime': '2026-11-29T23:59:59Z' },
      'contact-info': 'postmaster@mta.rookery.test',
      'report-id': '2026-11-29.both.test@mta.rookery.test',
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-string': sts('both.test').lines, 'mx-host': ['mx.both.test'], 'policy-domain': 'both.test' },
          summary: { 'total-successful-session-count': 12, 'total-failure-session-count': 2 },
          'failure-details': [{ 'result-type': 'certificate-expired', 'sending-mta-ip': '192.0.2.7', 'receiving-ip': '198.51.100.1', 'receiving-mx-hostname': 'mx.both.test', 'failed-session-count': 2 }],
        },
      ],
    });

    const queued = await store.listMessages({ state: null, sender: null, recipient: 'tls-reports@both.test', domain: null, pool: null, since: null, until: null, tenant: null, tag: null, after: null, limit: 10 });
    expect(queued).toHaveLength(1);
    const mail = (await store.loadMessage(queued[0]!.id))!;
    expect(mail).toMatchObject({ sender: '', source: 'dsn', pool: 'default' });
    const parsed = await simpleParser(mail.body);
    expect(parsed.subject).toBe('Report Domain: both.test Submitter: mta.rookery.test Report-ID: <2026-11-29.both.test@mta.rookery.test>');
    expect(parsed.headers.get('tls-report-domain')).toBe('both.test');
    expect(parsed.headers.get('tls-report-submitter')).toBe('mta.rookery.test');
    expect((parsed.headers.get('content-type') as { value: string; params: Record<string, string> })).toMatchObject({ value: 'multipart/report', params: { 'report-type': 'tlsrpt' } });
    expect(parsed.attachments).toHaveLength(1);
    const [attachment] = parsed.attachments;
    expect(attachment).toMatchObject({ contentType: 'application/tlsrpt+gzip', filename: 'mta.rookery.test!both.test!1795910400!1795996800!20261129.json.gz' });
    expect(JSON.parse((await promisify(gunzip)(attachment!.content)).toString())).toEqual(report);

    // Sent and skipped are final; the failed POST waits for its claim to run out, then goes once.
    failing.clear();
    clock.advance(300_000);
    expect(Object.fromEntries(await sender('node-b').runOnce())).toEqual({});
    clock.advance(300_000);
    expect(Object.fromEntries(await sender('node-b').runOnce())).toEqual({ [`${DAY} down.test`]: 'sent' });
    expect(server.requests.filter((r) => r.host === 'reports.down.test')).toHaveLength(2);
    expect(server.requests.filter((r) => r.host === 'reports.both.test')).toHaveLength(1);
    expect(await store.listMessages({ state: null, sender: null, recipient: null, domain: null, pool: null, since: null, until: null, tenant: null, tag: null, after: null, limit: 10 })).toHaveLength(1);
  });

  const counted = (domain: string, day = DAY): TlsSessionCount => ({ day, policy: sts(domain), result: 'success', sendingIp: '', receivingIp: '', receivingMx: '', count: 1 });
  const mailto = (domain: string) => ({ txt: [`v=TLSRPTv1; rua=mailto:tls@${domain}`] });

  it('ends only its own report when a rua is malformed or a report throws, and purges old counts on every pass', async () => {
    await store.addTlsSessionCounts([counted('0evil.test'), counted('1sign.test'), counted('both.test'), counted('dest.test', '2026-11-10')]);
    const dkim = {
      sign: async (message: Buffer) => {
        if (message.includes('1sign.test')) throw new Error('the signing key cannot be read');
        return { message, domain: null };
      },
    };
    const a = sender('node-a', { '_smtp._tls.0evil.test': { txt: ['v=TLSRPTv1; rua=mailto:%zz@evil.test'] }, '_smtp._tls.1sign.test': mailto('1sign.test') }, { dkim: dkim as never });
    expect(Object.fromEntries(await a.runOnce())).toEqual({ [`${DAY} 0evil.test`]: 'skipped', [`${DAY} 1sign.test`]: 'failed', [`${DAY} both.test`]: 'sent' });
    expect(server.requests.filter((r) => r.host === 'reports.both.test')).toHaveLength(1);
    expect(await store.tlsSessionCounts('dest.test', '2026-11-10')).toEqual([]);
  });

  it('takes every due report in one pass, not only the first hundred', async () => {
    const domains = Array.from({ length: 230 }, (_, i) => `d${String(i).padStart(3, '0')}.test`);
    await store.addTlsSessionCounts(domains.map((d) => counted(d)));
    const results = await sender('node-a', Object.fromEntries(domains.map((d) => [`_smtp._tls.${d}`, mailto(d)]))).runOnce();
    expect([...results.values()].filter((r) => r === 'sent')).toHaveLength(230);
    expect(await store.tlsReportsDue(DAY, clock.now(), 10)).toEqual([]);
  });

  it('reports a day only once its last counts have had time to be flushed', async () => {
    await store.addTlsSessionCounts([counted('both.test')]);
    clock.set(Date.parse('2026-11-30T00:05:00Z'));
    expect(Object.fromEntries(await sender('node-a').runOnce())).toEqual({});
    clock.set(Date.parse('2026-11-30T00:10:00Z'));
    expect(Object.fromEntries(await sender('node-a').runOnce())).toEqual({ [`${DAY} both.test`]: 'sent' });
  });

  it('starts no pass while one is at work, and on stop cuts the POST at work short and begins no other report', async () => {
    await store.addTlsSessionCounts([counted('a.test'), counted('b.test')]);
    const zone = { '_smtp._tls.a.test': { txt: [`v=TLSRPTv1; rua=https://reports.stall.test:${server.port}/tlsrpt`] }, '_smtp._tls.b.test': mailto('b.test') };
    const running = sender('node-a', zone, { concurrency: 1, intervalMs: 20 });
    running.start();
    await until(() => stalled.length === 1, 'the POST to the receiver that does not answer');
    // Many intervals go by while a.test's POST hangs: no second pass takes b.test meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.tlsReportsDue(DAY, clock.now(), 10)).toEqual(['b.test']);
    await running.stop();
    // a.test's claim stands until it runs out (then tried again); b.test was never begun.
    expect(await store.tlsReportsDue(DAY, clock.now(), 10)).toEqual(['b.test']);
    expect(await store.listMessages({ state: null, sender: null, recipient: null, domain: null, pool: null, since: null, until: null, tenant: null, tag: null, after: null, limit: 10 })).toEqual([]);
  });

  it('cuts a report off before its claim runs out, so another node taking the claim over never sends it at the same time', async () => {
    await store.addTlsSessionCounts([counted('a.test')]);
    const zone = { '_smtp._tls.a.test': { txt: [`v=TLSRPTv1; rua=https://reports.stall.test:${server.port}/tlsrpt`] } };
    // A claim of 31 s leaves the report one second of work (30 s are kept as a margin).
    expect(Object.fromEntries(await sender('node-a', zone, { claimMs: 31_000 }).runOnce())).toEqual({ [`${DAY} a.test`]: 'failed' });
    expect(stalled).toHaveLength(1);
    expect(await store.tlsReportsDue(DAY, clock.now(), 10)).toEqual([]);
    clock.advance(31_000);
    expect(await store.tlsReportsDue(DAY, clock.now(), 10)).toEqual(['a.test']);
  });
});
