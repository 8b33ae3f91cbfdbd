import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { formatDate } from '../../src/ippool/warmup.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres.ts';
import { redisUrl, requirePostgres, requireRedis } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const servicesAvailable = (await requirePostgres()) && (await requireRedis());

/** Where the small site slow.test's MX listens: a sink of its own, on the main sink's port. */
const SLOW_MX = '127.0.0.20';

/**
 * gmail.test is hosted by Google (its MX matches the gmail provider); other.test and slow.test
 * are two small sites of `other`, each with an MX of its own.
 */
const resolver = createFixtureResolver({
  'gmail.test': { mx: [{ exchange: 'aspmx.l.google.com', priority: 5 }] },
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'slow.test': { mx: [{ exchange: 'mx.slow.test', priority: 10 }] },
  'sender.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'aspmx.l.google.com': { a: ['127.0.0.1'] },
  'mx.other.test': { a: ['127.0.0.1'] },
  'mx.slow.test': { a: [SLOW_MX] },
});

describe('egress pool in the daemon', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let scratch: ScratchDatabase | undefined;
  const daemons: Daemon[] = [];
  const sinks: SmtpSink[] = [];

  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop();
    for (const s of sinks.splice(0)) await s.close();
    await sink?.close();
    await scratch?.drop();
    await dir?.remove();
    sink = undefined;
    scratch = undefined;
  });

  async function daemon(config: ConfigInput, clock?: ManualClock): Promise<Daemon> {
    dir ??= await createTempDir();
    const d = await startTestDaemon({ dir, sink: sink!, resolver, clock, config: { ...config, delivery: { retry: { initial: '200ms', max: '1s', jitter: 0 }, ...config.delivery } } });
    daemons.push(d);
    return d;
  }

  async function send(d: Daemon, recipients: string[]): Promise<void> {
    const client = submissionClient(d.smtpAddresses()[0]!, 4);
    await Promise.all(
      recipients.map((to, i) => client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId: `<${i}.${to}>` }))),
    );
    client.close();
  }

  async function metricsOf(d: Daemon): Promise<string> {
    const { host, port } = d.apiAddress();
    return (await fetch(`http://${host}:${port}/metrics`)).text();
  }

  it('throttles only the IP that Gmail answered 421 4.7.28, and only for Gmail', async () => {
    sink = await startSmtpSink({
      script: {
        onRcptTo(address, session) {
          if (session.remoteAddress === '127.0.0.2' && address.endsWith('@gmail.test')) {
            return { code: 421, message: '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.' };
          }
          return undefined;
        },
      },
    });
    const d = await daemon({ hostname: 'a.rookery.test', ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }] });
    const gmail = Array.from({ length: 20 }, (_, i) => `user${i}@gmail.test`);
    const other = Array.from({ length: 20 }, (_, i) => `user${i}@other.test`);
    await send(d, [...gmail, ...other]);
    await sink.waitForMessages(40, 20_000);

    const from = (domain: string) => sink!.messages.filter((m) => m.to[0]!.endsWith(domain)).map((m) => m.remoteAddress);
    // Every Gmail message went out, all from the IP Gmail did not complain about.
    expect(from('@gmail.test')).toHaveLength(20);
    expect(new Set(from('@gmail.test'))).toEqual(new Set(['127.0.0.3']));
    // The throttled IP keeps its share of the other provider's mail.
    expect(from('@other.test').filter((ip) => ip === '127.0.0.2').length).toBeGreaterThanOrEqual(8);
    const metrics = await metricsOf(d);
    expect(metrics).toContain('rookery_ip_restricted{egress_ip="127.0.0.2",provider="gmail",action="throttle",reason="gmail-unusual-rate"} 1');
    expect(metrics).not.toMatch(/rookery_ip_restricted\{egress_ip="127\.0\.0\.3"/);
  });

  it('throttles an IP only toward the small site that answered "slow down"; another small site on the same IP keeps its full rate', { timeout: 30_000 }, async () => {
    sink = await startSmtpSink();
    // A real rate-limit reply (the generic `rate-limited` rule: five within ten minutes throttle
    // the IP to 300/h for 30 minutes) until the throttle is in place; then the site takes mail.
    let slowingDown = true;
    const slow = await startSmtpSink({
      host: SLOW_MX,
      port: sink.port,
      script: { onRcptTo: () => (slowingDown ? { code: 421, message: '4.7.0 Too many messages, slow down' } : undefined) },
    });
    sinks.push(slow);
    const d = await daemon({ hostname: 'slow.rookery.test', ips: [{ address: '127.0.0.2' }] });
    await send(d, Array.from({ length: 10 }, (_, i) => `user${i}@slow.test`));
    const throttle = 'rookery_ip_restricted{egress_ip="127.0.0.2",provider="other:sites",action="throttle",reason="rate-limited"} 1';
    await until(async () => (await metricsOf(d)).includes(throttle), 'the IP throttled toward slow.test');
    // Attempts selected before the throttle was in place finish (refused) in the meantime.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    slowingDown = false;
    const throttledAt = Date.now();

    // Another small site, same IP, mail submitted while slow.test's throttle runs: all of it goes.
    await send(d, Array.from({ length: 50 }, (_, i) => `user${i}@other.test`));
    await sink.waitForMessages(50, 15_000);
    const elapsed = Date.now() - throttledAt;
    expect(new Set(sink.messages.map((m) => m.remoteAddress))).toEqual(new Set(['127.0.0.2']));
    // Meanwhile slow.test, which now accepts everything, got at most the throttle's rate: one
    // message at once (a bucket of one), then one per 12 seconds.
    expect(slow.messages.length).toBeLessThanOrEqual(1 + Math.floor(elapsed / 12_000));
    // Nothing restricts the IP for all of `other`.
    const metrics = await metricsOf(d);
    expect(metrics).toContain(throttle);
    expect(metrics).not.toMatch(/rookery_ip_restricted\{[^}]*provider="other"[,}]/);
  });

  it('suspends an egress IP the host does not have, and its mail goes out from the others', async () => {
    sink = await startSmtpSink();
    const d = await daemon({ hostname: 'b.rookery.test', ips: [{ address: '192.0.2.10' }, { address: '127.0.0.2' }] });
    await send(d, Array.from({ length: 10 }, (_, i) => `user${i}@other.test`));
    await sink.waitForMessages(10, 15_000);
    expect(new Set(sink.messages.map((m) => m.remoteAddress))).toEqual(new Set(['127.0.0.2']));
    expect(await metricsOf(d)).toContain('rookery_ip_restricted{egress_ip="192.0.2.10",provider="*",action="suspend",reason="egress-unavailable"} 1');
  });

  it('sends from the pool X-Rookery-Pool names when the user may use it, and never delivers the header', async () => {
    sink = await startSmtpSink();
    const d = await daemon({
      hostname: 'c.rookery.test',
      ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'marketing' }],
      smtp: {
        listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
        users: [{ username: 'news', password: 'news-Secret-1', allowedSenders: ['*'], pools: ['marketing'] }],
      },
    });
    const client = submissionClient(d.smtpAddresses()[0]!, 1, { user: 'news', pass: 'news-Secret-1' });
    const withHeader = (pool: string, id: string) =>
      Buffer.concat([Buffer.from(`X-Rookery-Pool: ${pool}\r\n`), testMessage({ from: 'app@sender.test', to: 'u@other.test', messageId: id })]);
    await client.send('app@sender.test', ['u@other.test'], withHeader('marketing', '<allowed@app.test>'));
    await client.send('app@sender.test', ['u@other.test'], withHeader('vip', '<refused@app.test>'));
    client.close();
    await sink.waitForMessages(2, 15_000);
    const byId = new Map(sink.messages.map((m) => [m.messageId, m]));
    expect(byId.get('<allowed@app.test>')!.remoteAddress).toBe('127.0.0.3');
    // A pool the user may not use is ignored: the default pool.
    expect(byId.get('<refused@app.test>')!.remoteAddress).toBe('127.0.0.2');
    for (const m of sink.messages) expect(m.raw.toString()).not.toMatch(/X-Rookery-Pool/i);
  });

  // Day 0 of a one-day plan of 48 messages over 16 active hours: 3 an hour. The daemon's clock
  // starts half a second before the hour ends and moves only when the test moves it.
  const hourEnd = Date.UTC(2026, 10, 1, 9);
  const warming = { warmup: { plans: { tiny: [48] } }, ips: [{ address: '127.0.0.2', warmup: { plan: 'tiny', start: '2026-11-01' } }] };
  const verp = { returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'sender.test': {} } } };

  it.each([
    { what: 'one transaction', extra: {}, now: [3], later: [2] },
    { what: 'a transaction per recipient (VERP)', extra: verp, now: [1, 1, 1], later: [1, 1] },
  ])('splits a message larger than a warming IP has room for: 3 recipients now, 2 in the next hour, each once ($what)', async ({ extra, now, later }) => {
    sink = await startSmtpSink();
    const clock = manualClock(hourEnd - 500);
    const d = await daemon({ hostname: 'split.rookery.test', ...warming, ...extra }, clock);
    const to = Array.from({ length: 5 }, (_, i) => `user${i}@other.test`);
    await d.submit({ sender: 'app@sender.test', recipients: to, body: testMessage({ from: 'app@sender.test', to: to[0]!, messageId: '<split@app.test>' }), submitter: null, source: 'http', clientAddress: null });
    await sink.waitForRecipients(3, 10_000);
    // Time for anything beyond the hour's cap to show up.
    await new Promise((r) => setTimeout(r, 1000));
    expect(sink.messages.map((m) => m.to.length)).toEqual(now);
    // The other two waited for the next hour (throttled, not an attempt) and go out then.
    clock.set(hourEnd);
    await sink.waitForRecipients(5, 10_000);
    expect(sink.messages.slice(now.length).map((m) => m.to.length)).toEqual(later);
    expect(sink.messages.flatMap((m) => m.to).sort()).toEqual(to);
    expect(new Set(sink.messages.map((m) => m.remoteAddress))).toEqual(new Set(['127.0.0.2']));
  });

  it.skipIf(!servicesAvailable)('two daemons sharing PostgreSQL and Redis never exceed one warming IP’s cap together', async () => {
    sink = await startSmtpSink();
    scratch = await createScratchDatabase(undefined, 'ippool');
    const shared: Partial<ConfigInput> = {
      storage: { driver: 'postgres', url: scratch.url },
      redis: { url: redisUrl(), keyPrefix: `rookery-test-${randomBytes(4).toString('hex')}:` },
      // Day 0 of a one-day plan of 10 messages, all allowed in one hour.
      warmup: { activeHours: 1, plans: { tiny: [10] } },
      ips: [{ address: '127.0.0.2', warmup: { plan: 'tiny', start: formatDate(Date.now()) } }],
    };
    const a = await daemon({ hostname: 'node-a.rookery.test', ...shared });
    const b = await daemon({ hostname: 'node-b.rookery.test', ...shared });
    await Promise.all([
      send(a, Array.from({ length: 30 }, (_, i) => `a${i}@other.test`)),
      send(b, Array.from({ length: 30 }, (_, i) => `b${i}@other.test`)),
    ]);
    await sink.waitForMessages(10, 15_000);
    // Time for any over-the-cap delivery to show up.
    await new Promise((r) => setTimeout(r, 2000));
    expect(sink.messages).toHaveLength(10);
    // Both nodes ran into the shared cap and hold the rest back (throttled, waiting), not failed.
    const waits = await Promise.all([a, b].map(async (d) => Number(/rookery_selection_waits_total\{pool="default",reason="warmup-cap"\} (\d+)/.exec(await metricsOf(d))?.[1] ?? 0)));
    expect(waits.every((n) => n > 0)).toBe(true);
  });
});
