import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import type { NextHop } from '../../src/engine/routing.ts';
import { createDeliverer, type Deliverer, type DeliveryRequest } from '../../src/engine/smtp-deliverer.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import { RedisRateLimiter } from '../../src/ippool/backend/redis-rate-limiter.ts';
import type { RateLimiter } from '../../src/ippool/contracts.ts';
import type { EgressPath } from '../../src/ippool/egress-path.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createRedisClient } from '../../src/storage/redis-client.ts';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../helpers/smtp-sink.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { rawServer } from '../helpers/faulty-remotes.ts';

const EGRESS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const TIMEOUTS = { connect: 2_000, greeting: 2_000, command: 5_000, dataDone: 5_000 };

function message(id: string, extra = ''): Buffer {
  return Buffer.from(`From: app@sender.test\r\nTo: user@dest.test\r\nMessage-ID: <${id}@sender.test>\r\nSubject: test ${id}\r\n${extra}\r\nHello.\r\n.a line that starts with a dot\r\n`);
}

/** The path from `ip` to a site (provider 'other': the shaping below applies). */
function from(ip: string, site = 'mx.dest.test'): EgressPath {
  return { ip, site, provider: 'other' };
}

function hopTo(server: { host: string; port: number }, name = 'mx.dest.test'): NextHop {
  return { host: server.host, port: server.port, preference: 10, name };
}

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Forwards connections to the sink; `killOnNextMailFrom` drops a connection, without a reply, when the client next sends MAIL FROM. */
async function proxyTo(sink: SmtpSink) {
  let armed = false;
  const proxy = await rawServer((client) => {
    const upstream = net.connect(sink.port, sink.host);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes('MAIL FROM')) {
        armed = false;
        client.destroy();
        return;
      }
      upstream.write(chunk);
    });
  });
  return { ...proxy, killOnNextMailFrom: () => (armed = true) };
}

/**
 * Offers STARTTLS on its first connection and answers the handshake with garbage; later
 * connections are forwarded to the sink. Models a server with a broken TLS setup.
 */
async function brokenTlsFront(sink: SmtpSink) {
  return rawServer((socket, index) => {
    if (index > 0) {
      const upstream = net.connect(sink.port, sink.host);
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      socket.pipe(upstream).pipe(socket);
      return;
    }
    socket.write('220 front.dest.test ESMTP\r\n');
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (/^EHLO /i.test(line)) socket.write('250-front.dest.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n');
        else if (/^STARTTLS/i.test(line)) {
          socket.write('220 2.0.0 Ready to start TLS\r\n');
          socket.end('this is not a TLS server hello\r\n');
        }
      }
    });
  });
}

describe('smtp deliverer', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function sink(options?: SmtpSinkOptions): Promise<SmtpSink> {
    const s = await startSmtpSink(options);
    cleanups.push(() => s.close());
    return s;
  }

  interface DelivererSetup {
    timeouts?: typeof TIMEOUTS;
    /** Shaping of every path. */
    maxConnections?: number;
    maxMessagesPerConnection?: number;
    idleConnectionTimeout?: number;
    /** The rate limiter of the ready queues (default: in process). */
    limiter?: RateLimiter;
  }

  function deliverer(setup: DelivererSetup = {}): { deliverer: Deliverer; metrics: Metrics; queues: ReadyQueues } {
    const metrics = new Metrics({ processMetrics: false });
    const unlimited = { ratePerSecond: 10_000, burst: 10_000 };
    const shaping = { maxConnections: setup.maxConnections ?? 4, maxMessagesPerConnection: setup.maxMessagesPerConnection ?? 100, messageRate: unlimited, connectionRate: unlimited };
    const queues = new ReadyQueues({ shaping: () => shaping, limiter: setup.limiter ?? new LocalRateLimiter(), clock: systemClock, idleConnectionTimeout: setup.idleConnectionTimeout ?? 5_000, deadSite: { interval: 60_000, maxInterval: 600_000 } });
    const d = createDeliverer({ logger: createLogger('silent'), metrics, timeouts: setup.timeouts ?? TIMEOUTS, queues, bounceRules: () => BOUNCE_RULES });
    cleanups.push(() => d.close());
    return { deliverer: d, metrics, queues };
  }

  function request(hops: NextHop[], overrides: Partial<DeliveryRequest> = {}): DeliveryRequest {
    return {
      sender: 'app@sender.test',
      recipients: ['user@dest.test'],
      body: message('m1'),
      path: from('127.0.0.2'),
      hostname: 'mta1.rookery.test',
      hops,
      ...overrides,
    };
  }

  it('delivers the envelope and the exact bytes', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    const body = message('exact', `X-Eight-Bit: caf\u00e9\r\n`);
    const outcomes = await d.deliver(request([hopTo(s)], { body, recipients: ['a@dest.test', 'b@dest.test'] }));
    expect(outcomes).toEqual([
      {
        disposition: 'delivered',
        code: 250,
        enhanced: '2.0.0',
        response: 'Ok: queued',
        stage: 'dot',
        bounceClass: 'none',
        remoteHost: 'mx.dest.test',
        egressIp: '127.0.0.2',
        // The sink offers no STARTTLS: in clear, as opportunistic TLS allows.
        tls: { policy: 'opportunistic', version: null, cipher: null, verified: false, failure: null },
      },
      expect.objectContaining({ disposition: 'delivered' }),
    ]);
    const [received] = await s.waitForMessages(1);
    expect(received).toMatchObject({ from: 'app@sender.test', to: ['a@dest.test', 'b@dest.test'], messageId: '<exact@sender.test>' });
    expect(received!.raw.equals(body)).toBe(true);
  });

  it('sends the null sender as MAIL FROM:<>', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    const [outcome] = await d.deliver(request([hopTo(s)], { sender: '' }));
    expect(outcome!.disposition).toBe('delivered');
    expect((await s.waitForMessages(1))[0]!.from).toBe('');
  });

  it('connects from each egress IP and greets with its host name', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    await Promise.all(
      EGRESS.map((address, i) =>
        d.deliver(request([hopTo(s)], { body: message(`ip${i}`), path: from(address), hostname: `mta${i + 2}.rookery.test` })),
      ),
    );
    await s.waitForMessages(EGRESS.length);
    const seen = s.messages.map((m) => `${m.messageId} ${m.remoteAddress} ${m.helo}`).sort();
    expect(seen).toEqual(EGRESS.map((address, i) => `<ip${i}@sender.test> ${address} mta${i + 2}.rookery.test`).sort());
  });

  it('reuses a connection for sequential messages', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    for (let i = 0; i < 12; i++) {
      const [outcome] = await d.deliver(request([hopTo(s)], { body: message(`seq${i}`) }));
      expect(outcome!.disposition).toBe('delivered');
    }
    expect(s.connections.map((c) => c.transactions)).toEqual([12]);
    expect(d.stats()).toMatchObject({ connectionsOpened: 1, transactions: 12, idle: 1 });
  });

  it('opens a new connection for a new EHLO name of the egress IP (a reload changed its hostname) rather than reuse one', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    await d.deliver(request([hopTo(s)], { body: message('before'), hostname: 'before.rookery.test' }));
    await d.deliver(request([hopTo(s)], { body: message('after'), hostname: 'after.rookery.test' }));
    await d.deliver(request([hopTo(s)], { body: message('again'), hostname: 'after.rookery.test' }));
    expect(s.messages.map((m) => `${m.messageId} ${m.helo}`)).toEqual(['<before@sender.test> before.rookery.test', '<after@sender.test> after.rookery.test', '<again@sender.test> after.rookery.test']);
    expect(s.connections.map((c) => c.transactions)).toEqual([1, 2]);
    expect(d.stats()).toMatchObject({ connectionsOpened: 2, idle: 1 });
  });

  it('opens a new connection after maxMessagesPerConnection transactions', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer({ maxMessagesPerConnection: 5 });
    for (let i = 0; i < 12; i++) await d.deliver(request([hopTo(s)], { body: message(`max${i}`) }));
    expect(s.connections.map((c) => c.transactions)).toEqual([5, 5, 2]);
  });

  it('keeps separate connections per egress IP', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    for (let i = 0; i < 6; i++) {
      await d.deliver(request([hopTo(s)], { body: message(`sep${i}`), path: from(EGRESS[i % 2]!) }));
    }
    expect(s.connections.map((c) => `${c.remoteAddress}:${c.transactions}`).sort()).toEqual(['127.0.0.2:3', '127.0.0.3:3']);
  });

  it('gives each recipient its own outcome in one transaction', async () => {
    const s = await sink({
      script: {
        onRcptTo: (address) =>
          address === 'nobody@dest.test'
            ? { code: 550, message: '5.1.1 no such user' }
            : address === 'later@dest.test'
              ? { code: 451, message: '4.7.1 try later' }
              : undefined,
      },
    });
    const { deliverer: d } = deliverer();
    const outcomes = await d.deliver(request([hopTo(s)], { recipients: ['ok1@dest.test', 'nobody@dest.test', 'later@dest.test', 'ok2@dest.test'] }));
    expect(outcomes.map((o) => [o.disposition, o.code, o.enhanced, o.stage, o.bounceClass])).toEqual([
      ['delivered', 250, '2.0.0', 'dot', 'none'],
      ['permanent', 550, '5.1.1', 'rcpt', 'unknown-user'],
      ['transient', 451, '4.7.1', 'rcpt', 'policy'],
      ['delivered', 250, '2.0.0', 'dot', 'none'],
    ]);
    expect(outcomes[1]!.response).toBe('5.1.1 no such user');
    const [received] = await s.waitForMessages(1);
    expect(received!.to).toEqual(['ok1@dest.test', 'ok2@dest.test']);
    expect(s.connections.map((c) => c.transactions)).toEqual([1]);
  });

  it('reports every recipient refused, and keeps the connection for the next message', async () => {
    const s = await sink({ script: { onRcptTo: (address) => (address.startsWith('no') ? { code: 550, message: '5.1.1 no such user' } : undefined) } });
    const { deliverer: d } = deliverer();
    const refused = await d.deliver(request([hopTo(s)], { recipients: ['no1@dest.test', 'no2@dest.test'] }));
    expect(refused.map((o) => `${o.disposition} ${o.code} ${o.stage}`)).toEqual(['permanent 550 rcpt', 'permanent 550 rcpt']);
    const [next] = await d.deliver(request([hopTo(s)], { recipients: ['yes@dest.test'] }));
    expect(next!.disposition).toBe('delivered');
    expect(s.connections).toHaveLength(1);
  });

  it('applies a 4xx to DATA to every accepted recipient; a refused one keeps its own reply', async () => {
    const s = await sink({
      script: {
        onRcptTo: (address) => (address === 'nobody@dest.test' ? { code: 550, message: '5.1.1 no such user' } : undefined),
        onData: () => ({ code: 451, message: '4.3.0 queue full, try later' }),
      },
    });
    const { deliverer: d } = deliverer();
    const outcomes = await d.deliver(request([hopTo(s)], { recipients: ['a@dest.test', 'nobody@dest.test', 'b@dest.test'] }));
    expect(outcomes.map((o) => `${o.disposition} ${o.code} ${o.stage}`)).toEqual(['transient 451 dot', 'permanent 550 rcpt', 'transient 451 dot']);
    expect(outcomes[0]!.response).toBe('4.3.0 queue full, try later');
    expect(s.messages).toHaveLength(0);
  });

  it('bounces every recipient on a permanent MAIL FROM refusal', async () => {
    const s = await sink({ script: { onMailFrom: () => ({ code: 553, message: '5.7.1 sender not allowed' }) } });
    const { deliverer: d } = deliverer();
    const outcomes = await d.deliver(request([hopTo(s)], { recipients: ['a@dest.test', 'b@dest.test'] }));
    expect(outcomes.map((o) => `${o.disposition} ${o.code} ${o.enhanced} ${o.stage} ${o.bounceClass}`)).toEqual([
      'permanent 553 5.7.1 mail policy',
      'permanent 553 5.7.1 mail policy',
    ]);
  });

  it('defers on a 4xx at RCPT, bounces on a 5xx', async () => {
    const s = await sink({
      script: { onRcptTo: (a) => (a.startsWith('soft') ? { code: 452, message: '4.2.2 mailbox full' } : { code: 554, message: '5.7.1 rejected' }) },
    });
    const { deliverer: d } = deliverer();
    const [soft] = await d.deliver(request([hopTo(s)], { recipients: ['soft@dest.test'] }));
    const [hard] = await d.deliver(request([hopTo(s)], { recipients: ['hard@dest.test'] }));
    expect(soft).toMatchObject({ disposition: 'transient', code: 452, bounceClass: 'mailbox-full' });
    expect(hard).toMatchObject({ disposition: 'permanent', code: 554, bounceClass: 'policy' });
  });

  it('falls back to the next MX when the first refuses connections', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    const dead = { host: '127.0.0.1', port: await closedPort(), preference: 10, name: 'mx1.dest.test' };
    const [outcome] = await d.deliver(request([dead, hopTo(s, 'mx2.dest.test')]));
    expect(outcome).toMatchObject({ disposition: 'delivered', remoteHost: 'mx2.dest.test' });
    expect(await s.waitForMessages(1)).toHaveLength(1);
  });

  it('falls back to the next MX after a 421 greeting or a 5xx greeting', async () => {
    const busy = await sink({ script: { onConnect: () => ({ code: 421, message: '4.3.2 too busy' }) } });
    const hostile = await sink({ script: { onConnect: () => ({ code: 554, message: '5.7.1 no SMTP service here' }) } });
    const good = await sink();
    const { deliverer: d } = deliverer();
    const [outcome] = await d.deliver(request([hopTo(busy, 'mx1.dest.test'), hopTo(hostile, 'mx2.dest.test'), hopTo(good, 'mx3.dest.test')]));
    expect(outcome).toMatchObject({ disposition: 'delivered', remoteHost: 'mx3.dest.test' });
    expect([busy.connections.length, hostile.connections.length, good.messages.length]).toEqual([1, 1, 1]);
  });

  it('defers every recipient when all hops fail, reporting the most relevant failure', async () => {
    const hostile = await sink({ script: { onConnect: () => ({ code: 554, message: '5.7.1 no SMTP service here' }) } });
    const { deliverer: d } = deliverer();
    const dead = { host: '127.0.0.1', port: await closedPort(), preference: 20, name: 'mx2.dest.test' };
    const outcomes = await d.deliver(request([hopTo(hostile, 'mx1.dest.test'), dead], { recipients: ['a@dest.test', 'b@dest.test'] }));
    // A server's reply says more than a refused connection; a greeting refusal never bounces on its own.
    expect(outcomes).toEqual([
      expect.objectContaining({ disposition: 'transient', code: 554, stage: 'greeting', remoteHost: 'mx1.dest.test', response: '5.7.1 no SMTP service here' }),
      expect.objectContaining({ disposition: 'transient', code: 554 }),
    ]);
  });

  it('reports a refused connection when that is all there is', async () => {
    const { deliverer: d } = deliverer();
    const dead = { host: '127.0.0.1', port: await closedPort(), preference: 10, name: 'mx1.dest.test' };
    const [outcome] = await d.deliver(request([dead]));
    expect(outcome).toMatchObject({ disposition: 'transient', code: null, stage: 'connect', bounceClass: 'connection', response: 'connection refused by mx1.dest.test' });
  });

  it('uses STARTTLS when offered', async () => {
    const s = await sink({ tls: true });
    const { deliverer: d } = deliverer();
    const [outcome] = await d.deliver(request([hopTo(s)]));
    expect(outcome!.disposition).toBe('delivered');
    const [received] = await s.waitForMessages(1);
    expect(received!.secure).toBe(true);
  });

  it('delivers in plaintext when the TLS handshake fails', async () => {
    const s = await sink();
    const front = await brokenTlsFront(s);
    cleanups.push(() => front.close());
    const { deliverer: d } = deliverer();
    const [outcome] = await d.deliver(request([hopTo(front)]));
    expect(outcome!.disposition).toBe('delivered');
    expect(front.accepted()).toBe(2);
    const [received] = await s.waitForMessages(1);
    expect(received!.secure).toBe(false);
  });

  it('defers when the server never sends its greeting', async () => {
    const silent = await rawServer(() => {});
    cleanups.push(() => silent.close());
    const { deliverer: d } = deliverer({ timeouts: { ...TIMEOUTS, greeting: 200 } });
    const [outcome] = await d.deliver(request([hopTo(silent)]));
    expect(outcome).toMatchObject({ disposition: 'transient', code: null, stage: 'greeting', bounceClass: 'connection' });
    expect(outcome!.response).toMatch(/greeting timed out/);
  });

  it('defers when the reply to the final dot does not come within dataDone', async () => {
    const s = await sink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 1_500)) } });
    const { deliverer: d } = deliverer({ timeouts: { ...TIMEOUTS, dataDone: 200 } });
    const [outcome] = await d.deliver(request([hopTo(s)]));
    expect(outcome).toMatchObject({ disposition: 'transient', code: null, stage: 'dot', bounceClass: 'connection' });
    // The server may have taken the message: the retry may deliver it twice.
    expect(outcome!.response).toMatch(/timed out.*\(possible duplicate\)$/);
  });

  it('defers with a clear message when the egress address is not on this host', async () => {
    const s = await sink();
    const { deliverer: d } = deliverer();
    const outcomes = await d.deliver(request([hopTo(s, 'mx1.dest.test'), hopTo(s, 'mx2.dest.test')], { path: from('192.0.2.10') }));
    expect(outcomes[0]).toMatchObject({ disposition: 'transient', code: null, stage: 'connect', bounceClass: 'egress-unavailable', egressIp: '192.0.2.10' });
    expect(outcomes[0]!.response).toMatch(/egress address 192\.0\.2\.10 is not configured on this host \(EADDRNOTAVAIL\)/);
    expect(s.connections).toHaveLength(0);
  });

  it('defers when no hop has an address the egress IP can reach', async () => {
    const { deliverer: d } = deliverer();
    const [outcome] = await d.deliver(request([{ host: '2001:db8::25', port: 25, preference: 10, name: 'mx.dest.test' }]));
    expect(outcome).toMatchObject({ disposition: 'transient', bounceClass: 'connection' });
    expect(outcome!.response).toMatch(/no next hop .* reachable from egress address 127\.0\.0\.2/);
  });

  it("holds to the path's maxConnections under concurrency; extra deliveries wait rather than fail", async () => {
    const s = await sink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 20)) } });
    const { deliverer: d } = deliverer({ maxConnections: 2 });
    const running = Array.from({ length: 10 }, (_, i) => d.deliver(request([hopTo(s)], { body: message(`c${i}`) })));
    expect(d.stats().waiting).toBe(8);
    const outcomes = (await Promise.all(running)).flat();
    expect(outcomes.every((o) => o.disposition === 'delivered')).toBe(true);
    expect(s.connections).toHaveLength(2);
    expect(s.connections.reduce((n, c) => n + c.transactions, 0)).toBe(10);
    expect(d.stats().waiting).toBe(0);
  });

  it('counts the connection limit per egress IP and site', async () => {
    const s = await sink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 20)) } });
    const { deliverer: d } = deliverer({ maxConnections: 1 });
    const running = [];
    for (const address of ['127.0.0.2', '127.0.0.3']) {
      for (const site of ['site-a', 'site-b']) {
        for (let i = 0; i < 3; i++) running.push(d.deliver(request([hopTo(s)], { path: from(address, site) })));
      }
    }
    await Promise.all(running);
    expect(s.connections).toHaveLength(4);
    expect(s.connections.map((c) => c.transactions)).toEqual([3, 3, 3, 3]);
  });

  it('retries on a fresh connection when a pooled one was closed by the server (421)', async () => {
    let first: string | undefined;
    const s = await sink({
      script: {
        // The first connection says it timed out when it is used a second time.
        onMailFrom: (_address, session) => {
          first ??= session.connectionId;
          const used = s.connections.find((c) => c.id === session.connectionId)!.transactions;
          return session.connectionId === first && used > 0 ? { code: 421, message: '4.4.2 idle timeout, closing' } : undefined;
        },
      },
    });
    const { deliverer: d } = deliverer();
    expect((await d.deliver(request([hopTo(s)], { body: message('p1') })))[0]!.disposition).toBe('delivered');
    expect((await d.deliver(request([hopTo(s)], { body: message('p2') })))[0]!.disposition).toBe('delivered');
    expect(s.messages.map((m) => m.messageId)).toEqual(['<p1@sender.test>', '<p2@sender.test>']);
    expect(s.connections).toHaveLength(2);
  });

  it('retries on a fresh connection when a pooled one drops without a reply', async () => {
    const s = await sink();
    const proxy = await proxyTo(s);
    cleanups.push(() => proxy.close());
    const { deliverer: d } = deliverer();
    expect((await d.deliver(request([hopTo(proxy)], { body: message('d1') })))[0]!.disposition).toBe('delivered');
    proxy.killOnNextMailFrom();
    expect((await d.deliver(request([hopTo(proxy)], { body: message('d2') })))[0]!.disposition).toBe('delivered');
    expect(s.messages.map((m) => m.messageId)).toEqual(['<d1@sender.test>', '<d2@sender.test>']);
    expect(proxy.accepted()).toBe(2);
  });

  it("closes idle connections after idleConnectionTimeout, and then forgets the path's ready queue", async () => {
    const s = await sink();
    const { deliverer: d, queues } = deliverer({ idleConnectionTimeout: 100 });
    await d.deliver(request([hopTo(s)]));
    expect(d.stats().connectionsOpen).toBe(1);
    expect(queues.stats()).toMatchObject({ paths: 1, open: 1, idle: 1 });
    await until(() => d.stats().connectionsOpen === 0);
    expect(d.stats().idle).toBe(0);
    expect(queues.stats().paths).toBe(0);
    await d.deliver(request([hopTo(s)], { body: message('after-idle') }));
    expect(s.connections).toHaveLength(2);
  });

  it('tracks open connections per egress IP in the metrics gauge', async () => {
    const s = await sink();
    const { deliverer: d, metrics } = deliverer();
    await d.deliver(request([hopTo(s)], { path: from('127.0.0.4') }));
    await d.deliver(request([hopTo(s)], { path: from('127.0.0.5') }));
    const gauge = async () => (await metrics.outboundConnections.get()).values.map((v) => `${v.labels.egress_ip}=${v.value}`).sort();
    expect(await gauge()).toEqual(['127.0.0.4=1', '127.0.0.5=1']);
    await d.close();
    expect(await gauge()).toEqual(['127.0.0.4=0', '127.0.0.5=0']);
  });

  it('close waits for deliveries in flight, QUITs connections, then refuses new work', async () => {
    const s = await sink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)) } });
    const { deliverer: d } = deliverer();
    const inFlight = d.deliver(request([hopTo(s)]));
    await until(() => d.stats().connectionsOpened === 1);
    await d.close();
    expect((await inFlight)[0]!.disposition).toBe('delivered');
    expect(d.stats()).toMatchObject({ connectionsOpen: 0, idle: 0 });
    const [late] = await d.deliver(request([hopTo(s)]));
    // Not an attempt: the message waits in the queue for the next start.
    expect(late).toMatchObject({ disposition: 'throttled', enhanced: '4.3.2', stage: 'queue' });
    expect(s.messages).toHaveLength(1);
  });

  it('close lets deliveries still waiting for a slot go back without opening connections', async () => {
    const s = await sink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)) } });
    const { deliverer: d } = deliverer({ maxConnections: 1 });
    const running = [1, 2, 3].map((i) => d.deliver(request([hopTo(s)], { body: message(`w${i}`) })));
    await until(() => d.stats().connectionsOpened === 1);
    await d.close();
    const outcomes = (await Promise.all(running)).flat();
    expect(outcomes.map((o) => o.disposition)).toEqual(['delivered', 'throttled', 'throttled']);
    expect(s.connections).toHaveLength(1);
  });

  /** A sink that holds its reply to the final dot until the test ends; `arrived` counts messages waiting for it. */
  async function holdingSink(options: SmtpSinkOptions = {}) {
    let release!: () => void;
    const held = new Promise<undefined>((resolve) => (release = () => resolve(undefined)));
    cleanups.push(async () => release());
    let arrived = 0;
    const s = await sink({ ...options, script: { onData: () => (arrived++, held) } });
    return { sink: s, arrived: () => arrived };
  }

  it('abort cuts a transaction waiting for the reply to the final dot: a failed attempt, and a possible duplicate', async () => {
    const { sink: s, arrived } = await holdingSink();
    const { deliverer: d } = deliverer({ maxConnections: 1 });
    const cut = d.deliver(request([hopTo(s)]));
    const waiting = d.deliver(request([hopTo(s)], { body: message('waiting') }));
    await until(() => arrived() === 1);
    d.abort();
    expect(await cut).toEqual([
      {
        disposition: 'transient',
        code: null,
        enhanced: '4.3.2',
        response: expect.stringMatching(/^delivery interrupted by shutdown after the message was sent.*\(possible duplicate\)$/),
        stage: 'dot',
        bounceClass: 'other',
        remoteHost: 'mx.dest.test',
        egressIp: '127.0.0.2',
      },
    ]);
    // Waiting for the connection slot: nothing was sent, so not an attempt; nor is anything after.
    expect(await waiting).toEqual([expect.objectContaining({ disposition: 'throttled', enhanced: '4.3.2', stage: 'queue' })]);
    expect(await d.deliver(request([hopTo(s)]))).toEqual([expect.objectContaining({ disposition: 'throttled' })]);
    await until(() => d.stats().connectionsOpen === 0);
    expect(s.messages).toHaveLength(0);
  });

  it('abort cuts a transaction over TLS as well', async () => {
    const { sink: s, arrived } = await holdingSink({ tls: true });
    const { deliverer: d } = deliverer();
    const cut = d.deliver(request([hopTo(s)]));
    await until(() => arrived() === 1);
    expect(s.connections[0]!.secure).toBe(true);
    d.abort();
    expect(await cut).toEqual([expect.objectContaining({ disposition: 'transient', stage: 'dot', response: expect.stringContaining('possible duplicate') })]);
    await until(() => d.stats().connectionsOpen === 0);
  });

  it('answers a wait, without connecting, when the connection-rate limiter cannot be reached (Redis down)', async () => {
    const s = await sink();
    const redis = createRedisClient(`redis://127.0.0.1:${await closedPort()}`, createLogger('silent'));
    cleanups.push(() => redis.close());
    const { deliverer: d } = deliverer({ limiter: new RedisRateLimiter(redis.redis, 'rookery-test:') });
    const outcomes = await d.deliver(request([hopTo(s)], { recipients: ['a@dest.test', 'b@dest.test'] }));
    expect(outcomes).toEqual([
      expect.objectContaining({ disposition: 'throttled', code: null, response: expect.stringMatching(/^not tried: .*connection rate/) }),
      expect.objectContaining({ disposition: 'throttled' }),
    ]);
    expect(s.connections).toHaveLength(0);
  });

  it('abort cuts a session whose server has not even greeted: the message was not sent', async () => {
    const silent = await rawServer(() => {});
    cleanups.push(() => silent.close());
    const { deliverer: d } = deliverer();
    const cut = d.deliver(request([hopTo(silent)]));
    await until(() => silent.accepted() === 1);
    d.abort();
    expect(await cut).toEqual([
      expect.objectContaining({ disposition: 'transient', stage: 'greeting', response: 'delivery interrupted by shutdown before the message was sent' }),
    ]);
  });
});

/** Polls a condition (no timing assertions: only a generous ceiling). */
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
