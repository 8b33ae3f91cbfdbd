import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startDaemon, type Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { startSmtpSink, type SinkSession, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

/**
 * A destination site that refuses connections (421 at the greeting) from every egress IP, or from
 * one of them: the daemon in this process on a real SQLite queue, two egress IPs on loopback, and
 * loopback sinks for the dead site and for the rest of the mail.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('a dead destination site', () => {
  let dir: TempDir;
  let live: SmtpSink;
  let site: SmtpSink;
  let daemon: Daemon | undefined;
  let logs: Array<Record<string, unknown>>;
  /** Whether the site refuses a connection. */
  let refuses: (session: SinkSession) => boolean;

  beforeEach(async () => {
    dir = await createTempDir('rookery-dead-site');
    logs = [];
    live = await startSmtpSink();
    site = await startSmtpSink({ script: { onConnect: (session) => (refuses(session) ? { code: 421, message: '4.3.2 service not available' } : undefined) } });
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await live.close();
    await site.close();
    await dir.remove();
  });

  async function start(store: Store, extra: ConfigInput = {}, clock?: Clock): Promise<Daemon> {
    const input = testDaemonConfig({
      dir: dir.path,
      extra: {
        ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
        ...extra,
        delivery: {
          routes: { 'dead.test': `127.0.0.1:${site.port}`, '*': `127.0.0.1:${live.port}` },
          retry: { initial: '500ms', max: '1s' },
          deadSite: { interval: '1s', maxInterval: '2s' },
          ...extra.delivery,
        },
      },
    });
    const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logs.push(JSON.parse(String(chunk))), done()) }));
    daemon = await startDaemon({ resolved: resolveConfig(input, { source: 'test', env: {} }), logger, store, clock, resolver: createFixtureResolver({}) });
    return daemon;
  }

  async function submit(d: Daemon, to: string, messageId: string): Promise<string> {
    const accepted = await d.submit({
      sender: 'app@sender.test',
      recipients: [to],
      body: testMessage({ from: 'app@sender.test', to, messageId }),
      submitter: null,
      source: 'http',
      clientAddress: null,
    });
    return accepted.id;
  }

  async function metric(d: Daemon, name: string): Promise<number> {
    const { host, port } = d.apiAddress();
    const text = await (await fetch(`http://${host}:${port}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  }

  const events = (name: string) => logs.filter((l) => l.event === name);

  /** Queues mail to the dead site and to a live one; checks the site is held, then back once it answers. */
  async function heldThenResumed(d: Daemon, store: Store, ips: string[]): Promise<void> {
    const ids = [];
    for (let i = 0; i < 60; i++) ids.push(await submit(d, `user${i}@dead.test`, `<dead${i}@app.test>`));
    await submit(d, 'user@live.test', '<live@app.test>');

    await live.waitForMessages(1);
    await until(() => events('delivery.site.down').length === 1, 'the site to be held');
    await until(async () => (await metric(d, 'rookery_site_held_total')) >= 40, 'held mail');
    const hour = Date.now() + 30 * 60_000;
    const held = (await Promise.all(ids.map((id) => store.listRecipients(id)))).flat().filter((r) => r.state === 'queued' && r.nextAttemptAt! > hour);
    expect(held.length).toBeGreaterThan(40);
    // Probes go on (one per path and interval), but no delivery connects any more.
    const connections = site.connections.length;
    await sleep(2_500);
    expect(site.connections.length - connections).toBeLessThanOrEqual(2 * ips.length);
    // At most one connection per path and message slot before the paths went down, then probes.
    expect(site.connections.length).toBeLessThan(30);
    expect(await metric(d, 'rookery_sites_down')).toBe(1);
    expect(events('delivery.site.down')).toEqual([expect.objectContaining({ level: 40, site: `route:127.0.0.1:${site.port}`, ips })]);
    expect(events('delivery.deferred').length).toBeLessThan(30);

    refuses = () => false;
    await site.waitForMessages(60, 20_000);
    expect(new Set(site.messages.map((m) => m.to[0])).size).toBe(60);
    expect(events('delivery.site.up')).toEqual([expect.objectContaining({ level: 30, site: `route:127.0.0.1:${site.port}` })]);
    expect(await metric(d, 'rookery_sites_down')).toBe(0);
  }

  it('holds its mail without an attempt per message while every IP is refused, and delivers it once a probe gets through', { timeout: 60_000 }, async () => {
    refuses = () => true;
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    await heldThenResumed(await start(store), store, ['127.0.0.2', '127.0.0.3']);
  });

  it('holds it just the same when the daemon sends from the OS default address (no egress IPs)', { timeout: 60_000 }, async () => {
    refuses = () => true;
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    await heldThenResumed(await start(store, { ips: [] }), store, ['default']);
  });

  it('sends from the other IP when the site refuses only one, without holding the site', { timeout: 60_000 }, async () => {
    refuses = (session) => session.remoteAddress === '127.0.0.2';
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    const d = await start(store);
    for (let i = 0; i < 30; i++) await submit(d, `user${i}@dead.test`, `<half${i}@app.test>`);

    await site.waitForMessages(30, 20_000);
    expect(new Set(site.messages.map((m) => m.remoteAddress))).toEqual(new Set(['127.0.0.3']));
    expect(events('delivery.path.down')).toEqual([expect.objectContaining({ ip: '127.0.0.2', site: `route:127.0.0.1:${site.port}` })]);
    expect(events('delivery.site.down')).toEqual([]);
    expect(site.connections.filter((c) => c.remoteAddress === '127.0.0.2').length).toBeLessThanOrEqual(12);
  });

  it('does not hold the site when the IP that reaches it is only at its warm-up cap: the mail waits for an IP, not for an hour', { timeout: 30_000 }, async () => {
    refuses = (session) => session.remoteAddress === '127.0.0.2';
    // A fixed time, a minute into an hour: the warm-up cap of 127.0.0.3 (one message an hour) resets at 11:00.
    const t0 = Date.UTC(2026, 10, 2, 10, 1);
    const clock = manualClock(t0);
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    const d = await start(
      store,
      {
        ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', warmup: { plan: 'one-an-hour', start: '2026-11-02' } }],
        warmup: { activeHours: 24, plans: { 'one-an-hour': [24] } },
        delivery: { deadSite: { interval: '1m', maxInterval: '2m' } },
      },
      clock,
    );
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await submit(d, `user${i}@dead.test`, `<capped${i}@app.test>`));
    const rows = async () => (await Promise.all(ids.map((id) => store.listRecipients(id)))).flat();
    // The first attempts: 127.0.0.3 takes one message (its cap), 127.0.0.2 is refused and goes down.
    await site.waitForMessages(1);
    await until(async () => (await rows()).every((r) => r.state === 'delivered' || (r.state === 'queued' && r.lastOutcome !== null)), 'every first attempt');
    // Their retries fall due: no IP may take them now, but one that can reach the site only waits for its cap.
    clock.advance(1_000);
    await until(async () => (await rows()).every((r) => r.state === 'delivered' || (r.state === 'queued' && r.lastOutcome?.disposition === 'throttled')), 'every retry to wait for an IP');
    expect(events('delivery.path.down')).toEqual([expect.objectContaining({ ip: '127.0.0.2' })]);
    expect(events('delivery.site.down')).toEqual([]);
    expect(await metric(d, 'rookery_sites_down')).toBe(0);
    // Each waits for the first IP that may take it (127.0.0.2 after its probe), not for an hour's hold.
    const waiting = (await rows()).filter((r) => r.state === 'queued');
    expect(waiting).toHaveLength(7);
    for (const row of waiting) expect(row.nextAttemptAt).toBeLessThanOrEqual(t0 + 60_000);
    expect(site.messages.map((m) => m.remoteAddress)).toEqual(['127.0.0.3']);
  });
});
