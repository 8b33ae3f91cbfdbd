import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { AttemptEvent, Store } from '../../src/storage/store.ts';
import { rawServer, startCuttingProxy, startTarpit } from '../helpers/faulty-remotes.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { startSmtpSink, type SinkScript, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { UNSHAPED } from '../helpers/test-config.ts';
import { until } from '../helpers/until.ts';

/**
 * Remote servers that misbehave: a tarpit, a connection reset in the middle of DATA, a server
 * that accepts the message and closes before its reply, 421 on connect, a storm of rate-limit
 * replies from one site. Each destination is a loopback address on the sink's port (MX records
 * from a fixture resolver), with the fault in front of a real sink. Every message answered 250
 * must arrive; every failure is a temporary one, retried.
 */

/** Loopback addresses of the destinations (MX hosts); all listen on the sink's port. */
const SINK = '127.0.0.11';
const HOSTS = {
  tarpit: '127.0.0.10',
  dripper: '127.0.0.16',
  resetter: '127.0.0.12',
  closer: '127.0.0.13',
  busy: '127.0.0.14',
  storm: '127.0.0.15',
};

const resolver = createFixtureResolver({
  // The tarpit is the preferred MX; the sink is the backup.
  'tarpit.test': { mx: [{ exchange: 'mx1.tarpit.test', priority: 10 }, { exchange: 'mx2.tarpit.test', priority: 20 }] },
  'mx1.tarpit.test': { a: [HOSTS.tarpit] },
  'mx2.tarpit.test': { a: [SINK] },
  'drip.test': { mx: [{ exchange: 'mx.drip.test', priority: 10 }] },
  'mx.drip.test': { a: [HOSTS.dripper] },
  'reset.test': { mx: [{ exchange: 'mx.reset.test', priority: 10 }] },
  'mx.reset.test': { a: [HOSTS.resetter] },
  'closer.test': { mx: [{ exchange: 'mx.closer.test', priority: 10 }] },
  'mx.closer.test': { a: [HOSTS.closer] },
  'busy.test': { mx: [{ exchange: 'mx.busy.test', priority: 10 }] },
  'mx.busy.test': { a: [HOSTS.busy] },
  'storm.test': { mx: [{ exchange: 'mx.storm.test', priority: 10 }] },
  'mx.storm.test': { a: [HOSTS.storm] },
  'calm.test': { mx: [{ exchange: 'mx.calm.test', priority: 10 }] },
  'mx.calm.test': { a: [SINK] },
});

/** The system's clock, which a test can move on: the daemon lives through half an hour at once. */
function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { now: () => Date.now() + offset, advance: (ms) => void (offset += ms) };
}

/** Short time limits: a misbehaving server costs the test a second, not the minutes of the defaults. */
const DELIVERY = {
  timeouts: { connect: '1s', greeting: '1s', command: '1s', dataDone: '2s' },
  retry: { initial: '200ms', max: '1s' },
  // A site none of whose hops answers is held and probed: soon, here.
  deadSite: { interval: '300ms', maxInterval: '1s' },
};

describe('remote faults', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: Daemon | undefined;
  let logs: Array<Record<string, unknown>>;
  const cleanups: Array<() => unknown> = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-remote-faults');
    sink = await startSmtpSink({ host: SINK });
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await sink.close();
    await dir.remove();
  });

  async function start(clock?: Clock): Promise<Daemon> {
    const captured = capturingLogger();
    logs = captured.logs;
    daemon = await startTestDaemon({ dir, sink, resolver, clock, logger: captured.logger, config: { ...UNSHAPED, ips: [{ address: '127.0.0.2', hostname: 'out.rookery.test' }], delivery: DELIVERY } });
    return daemon;
  }

  /** Submits one message per recipient over SMTP; returns the queue ids of those answered 250, by Message-ID. */
  async function submitAll(recipients: string[], bodyBytes?: number): Promise<Map<string, string>> {
    const client = submissionClient(daemon!.smtpAddresses()[0]!, 4);
    const acknowledged = new Map<string, string>();
    try {
      await Promise.all(
        recipients.map(async (to, i) => {
          const messageId = `<${to.replace('@', '.')}-${i}@app.test>`;
          const info = await client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId, bodyBytes }));
          acknowledged.set(messageId, /queued as (\S+)/.exec(info.response)![1]!);
        }),
      );
    } finally {
      client.close();
    }
    expect(acknowledged.size).toBe(recipients.length);
    return acknowledged;
  }

  /** The queue, read through a connection of its own. */
  async function observer(): Promise<Store> {
    const store = createSqliteStore({ path: dir.file('data', 'mta.rookery.test.db'), logger: createLogger('silent') });
    await store.migrate();
    cleanups.push(() => store.close());
    return store;
  }

  /** How many copies of each of these messages the sink received. */
  function copiesAtSink(acknowledged: Map<string, string>): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of sink.messages) if (m.messageId && acknowledged.has(m.messageId)) counts.set(m.messageId, (counts.get(m.messageId) ?? 0) + 1);
    return counts;
  }

  /** Waits until every acknowledged message reached the sink; returns how many copies of each arrived. */
  async function expectAllDelivered(acknowledged: Map<string, string>, timeoutMs = 20_000): Promise<Map<string, number>> {
    await until(() => copiesAtSink(acknowledged).size === acknowledged.size, `${acknowledged.size} messages at the sink`, timeoutMs).catch(() => {});
    const copies = copiesAtSink(acknowledged);
    expect([...acknowledged.keys()].filter((id) => !copies.has(id))).toEqual([]);
    return copies;
  }

  async function eventsOf(store: Store, queueId: string): Promise<AttemptEvent['outcome'][]> {
    return (await store.listEvents(queueId)).map((e) => e.outcome);
  }

  /** The outcomes of a message's attempts, once `n` are recorded (a delivery reaches the sink just before its result is stored). */
  async function recordedEvents(store: Store, queueId: string, n: number): Promise<AttemptEvent['outcome'][]> {
    await until(async () => (await eventsOf(store, queueId)).length >= n, `${n} attempts of ${queueId} recorded`);
    return eventsOf(store, queueId);
  }

  it('a tarpit as the preferred MX (one byte a minute) costs the greeting timeout, then the backup MX takes the mail', async () => {
    const tarpit = await startTarpit({ host: HOSTS.tarpit, port: sink.port });
    cleanups.push(() => tarpit.close());
    await start();
    const acknowledged = await submitAll(['a@tarpit.test', 'b@tarpit.test', 'c@tarpit.test']);

    const copies = await expectAllDelivered(acknowledged);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
    expect(tarpit.accepted()).toBeGreaterThanOrEqual(1);
    // The daemon gave up on the tarpit's greeting and closed its connections.
    await until(() => tarpit.closedByClient() === tarpit.accepted(), 'the tarpit connections closed by the daemon');
    expect(logs.filter((l) => l.event === 'delivery.hop.failed' && l.mx === 'mx1.tarpit.test').map((l) => l.stage)).toContain('greeting');
    // Each went out on its first attempt, through the backup.
    const store = await observer();
    for (const queueId of acknowledged.values()) {
      expect(await recordedEvents(store, queueId, 1)).toEqual([expect.objectContaining({ disposition: 'delivered', remoteHost: 'mx2.tarpit.test' })]);
    }
  });

  it('a tarpit dripping its reply to EHLO faster than the reply time limit is cut once the setup has taken its time', async () => {
    const tarpit = await startTarpit({ host: HOSTS.tarpit, port: sink.port, from: 'ehlo', intervalMs: 200 });
    cleanups.push(() => tarpit.close());
    await start();
    const acknowledged = await submitAll(['a@tarpit.test']);

    const copies = await expectAllDelivered(acknowledged);
    expect([...copies.values()]).toEqual([1]);
    await until(() => tarpit.closedByClient() === tarpit.accepted(), 'the tarpit connections closed by the daemon');
    expect(logs.filter((l) => l.event === 'delivery.hop.failed' && l.mx === 'mx1.tarpit.test').map((l) => l.stage)).toContain('ehlo');
  });

  it('a reply to the final dot dripped without end is cut once the transaction has taken its time: retried, a possible duplicate', async () => {
    const proxy = await startCuttingProxy({ host: SINK, port: sink.port }, { kind: 'drip-final-reply', intervalMs: 200 }, { host: HOSTS.dripper, port: sink.port });
    cleanups.push(() => proxy.close());
    await start();
    const acknowledged = await submitAll(['user@drip.test']);

    // The server took the message before the endless reply: the retry delivers it a second time.
    await until(() => copiesAtSink(acknowledged).get([...acknowledged.keys()][0]!) === 2, 'the message, then its retry, at the sink');
    const store = await observer();
    const queueId = [...acknowledged.values()][0]!;
    const [first, second] = await recordedEvents(store, queueId, 2);
    expect(first).toMatchObject({ disposition: 'transient', stage: 'dot', code: null, response: expect.stringMatching(/timed out.*possible duplicate/) });
    expect(second).toMatchObject({ disposition: 'delivered' });
  });

  it('a reset in the middle of DATA is a temporary failure: retried, and delivered once', async () => {
    const proxy = await startCuttingProxy({ host: SINK, port: sink.port }, { kind: 'reset-in-data', afterBytes: 2_000 }, { host: HOSTS.resetter, port: sink.port });
    cleanups.push(() => proxy.close());
    await start();
    const acknowledged = await submitAll(['user@reset.test'], 200_000);

    const copies = await expectAllDelivered(acknowledged);
    expect(proxy.cuts()).toBe(1);
    // The sink never accepted the cut transaction: one copy.
    expect([...copies.values()]).toEqual([1]);
    const store = await observer();
    const [first, second] = await recordedEvents(store, [...acknowledged.values()][0]!, 2);
    expect(first).toMatchObject({ disposition: 'transient', bounceClass: 'connection', code: null });
    expect(second).toMatchObject({ disposition: 'delivered' });
  });

  it('a server that accepts the message and closes before its reply: retried, and the attempt marked a possible duplicate', async () => {
    const proxy = await startCuttingProxy({ host: SINK, port: sink.port }, { kind: 'close-before-final-reply' }, { host: HOSTS.closer, port: sink.port });
    cleanups.push(() => proxy.close());
    await start();
    const acknowledged = await submitAll(['user@closer.test']);

    // The server had the message when the connection went: the retry delivers it a second time.
    await until(() => copiesAtSink(acknowledged).get([...acknowledged.keys()][0]!) === 2, 'the message, then its retry, at the sink');
    expect(proxy.cuts()).toBe(1);
    const store = await observer();
    const queueId = [...acknowledged.values()][0]!;
    const [first, second] = await recordedEvents(store, queueId, 2);
    expect(first).toMatchObject({ disposition: 'transient', stage: 'dot', code: null, response: expect.stringMatching(/possible duplicate/) });
    expect(second).toMatchObject({ disposition: 'delivered' });
    const deferred = logs.find((l) => l.event === 'delivery.deferred' && l.messageId === queueId);
    expect(deferred).toMatchObject({ stage: 'dot', response: expect.stringMatching(/possible duplicate/) });
  });

  it('421 on connect is a temporary failure: retried until the server takes the mail', async () => {
    let refused = 0;
    const busy = await startSmtpSink({
      host: HOSTS.busy,
      port: sink.port,
      script: { onConnect: () => (refused < 2 ? (refused++, { code: 421, message: '4.3.2 Service not available, closing transmission channel' }) : undefined) },
    });
    cleanups.push(() => busy.close());
    await start();
    const acknowledged = await submitAll(['user@busy.test']);

    await busy.waitForMessages(1);
    expect(busy.messages.map((m) => m.messageId)).toEqual([...acknowledged.keys()]);
    const store = await observer();
    const queueId = [...acknowledged.values()][0]!;
    await until(async () => (await eventsOf(store, queueId)).at(-1)?.disposition === 'delivered', 'the delivery to be recorded');
    const events = await eventsOf(store, queueId);
    // Attempts refused with the 421; the site may also have been held meanwhile (waits, not attempts).
    const attempts = events.filter((e) => e.disposition !== 'throttled');
    expect(attempts.at(0)).toMatchObject({ disposition: 'transient', code: 421, stage: 'greeting' });
    expect(attempts.slice(0, -1).every((e) => e.code === 421 && e.stage === 'greeting')).toBe(true);
  });

  it('a storm of rate-limit replies from one site throttles the IP toward that site only: another site on the IP gets its mail at once, and all of it goes once the throttle is over', { timeout: 90_000 }, async () => {
    let storming = true;
    // A real rate-limit reply, counted by the generic `rate-limited` rule: five within ten
    // minutes throttle the IP to 300/h for 30 minutes, toward this site (a site of `other`) alone.
    const script: SinkScript = { onRcptTo: () => (storming ? { code: 421, message: '4.7.0 Too many messages, slow down' } : undefined) };
    const storm = await startSmtpSink({ host: HOSTS.storm, port: sink.port, script });
    cleanups.push(() => storm.close());
    const clock = movableClock();
    const d = await start(clock);
    const stormy = await submitAll(Array.from({ length: 20 }, (_, i) => `user${i}@storm.test`));
    await until(() => logs.some((l) => l.event === 'ippool.throttle'), 'the IP to be throttled');

    // Mail for another site, submitted in the middle of the storm, goes out at once from the same IP.
    const calm = await submitAll(Array.from({ length: 20 }, (_, i) => `user${i}@calm.test`));
    await expectAllDelivered(calm);
    expect(storm.messages).toHaveLength(0);
    // The one restriction is the throttle toward the storm's site.
    const restrictions = logs.filter((l) => l.event === 'ippool.throttle' || l.event === 'ippool.suspend');
    expect(new Set(restrictions.map((l) => `${String(l.event)} ${String(l.provider)} ${String(l.site)} ${String(l.rule)}`))).toEqual(new Set(['ippool.throttle other mx.storm.test rate-limited']));
    const { host, port } = d.apiAddress();
    const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text();
    expect(metrics).toContain('rookery_ip_restricted{egress_ip="127.0.0.2",provider="other:sites",action="throttle",reason="rate-limited"} 1');
    expect(metrics).not.toMatch(/rookery_ip_restricted\{[^}]*provider="other"[,}]/);

    // The storm ends. Rather than wait out the throttle's 30 minutes and the ramp after it (from
    // 300/h, doubling every 15 minutes), the daemon's clock moves on by 30 minutes and 6 steps.
    storming = false;
    clock.advance(30 * 60_000 + 6 * 15 * 60_000);
    // Up to a minute of real time: on a busy CI machine one of twenty once needed more than 30 s.
    await storm.waitForMessages(stormy.size, 60_000);
    expect(new Set(storm.messages.map((m) => m.messageId))).toEqual(new Set(stormy.keys()));
  });
});
