import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import type { NextHop } from '../../src/engine/routing.ts';
import { createDeliverer, type Deliverer, type DeliveryRequest } from '../../src/engine/smtp-deliverer.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../helpers/smtp-sink.ts';

/**
 * Internationalised mail on the way out (src/engine/international-mail.ts), to loopback sinks
 * that offer SMTPUTF8 and to ones that do not: what goes on the wire, and what bounces with 5.6.7.
 */

const TIMEOUTS = { connect: 2_000, greeting: 2_000, command: 5_000, dataDone: 5_000 };
const ASCII_BODY = Buffer.from('From: app@sender.test\r\nTo: undisclosed-recipients:;\r\nSubject: hello\r\n\r\nHello.\r\n');
const UTF8_BODY = Buffer.from('From: Jörg <app@sender.test>\r\nTo: undisclosed-recipients:;\r\nSubject: Grüße\r\n\r\nHallo.\r\n', 'utf8');

describe('delivery of internationalised mail', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function sink(options: SmtpSinkOptions = {}): Promise<{ sink: SmtpSink; hop: NextHop }> {
    const s = await startSmtpSink(options);
    cleanups.push(() => s.close());
    return { sink: s, hop: { host: s.host, port: s.port, preference: 10, name: 'mx.dest.test' } };
  }

  function deliverer(): Deliverer {
    const unlimited = { ratePerSecond: 10_000, burst: 10_000 };
    const shaping = { maxConnections: 2, maxMessagesPerConnection: 100, messageRate: unlimited, connectionRate: unlimited };
    const queues = new ReadyQueues({ shaping: () => shaping, limiter: new LocalRateLimiter(), clock: systemClock, idleConnectionTimeout: 5_000, deadSite: { interval: 60_000, maxInterval: 600_000 } });
    const d = createDeliverer({ logger: createLogger('silent'), metrics: new Metrics({ processMetrics: false }), timeouts: TIMEOUTS, queues, bounceRules: () => BOUNCE_RULES });
    cleanups.push(() => d.close());
    return d;
  }

  function request(hop: NextHop, overrides: Partial<DeliveryRequest>): DeliveryRequest {
    return { sender: 'app@sender.test', recipients: [], body: ASCII_BODY, path: { ip: '127.0.0.2', site: 'mx.dest.test', provider: 'other' }, hostname: 'mta.rookery.test', hops: [hop], ...overrides };
  }

  it('relays UTF-8 addresses as they are, with SMTPUTF8 on MAIL FROM, to a server that offers it', async () => {
    const { sink: s, hop } = await sink();
    const outcomes = await deliverer().deliver(request(hop, { sender: 'jörg@bücher.test', recipients: ['δοκιμή@παράδειγμα.δοκιμή', 'plain@dest.test'] }));
    expect(outcomes.map((o) => o.disposition)).toEqual(['delivered', 'delivered']);
    const [received] = await s.waitForMessages(1);
    expect(received).toMatchObject({ from: 'jörg@bücher.test', to: ['δοκιμή@παράδειγμα.δοκιμή', 'plain@dest.test'], smtpUtf8: true });
    expect(received!.commands).toEqual(['MAIL FROM:<jörg@bücher.test> SMTPUTF8', 'RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>', 'RCPT TO:<plain@dest.test>']);
  });

  it('asks for SMTPUTF8 for UTF-8 header fields alone, once: the next message on the connection goes without it', async () => {
    const { sink: s, hop } = await sink();
    const d = deliverer();
    expect((await d.deliver(request(hop, { recipients: ['a@dest.test'], body: UTF8_BODY })))[0]!.disposition).toBe('delivered');
    expect((await d.deliver(request(hop, { recipients: ['b@dest.test'] })))[0]!.disposition).toBe('delivered');
    const [utf8, ascii] = await s.waitForMessages(2);
    expect(utf8!.smtpUtf8).toBe(true);
    expect(utf8!.commands[0]).toMatch(/^MAIL FROM:<app@sender\.test> .*SMTPUTF8/);
    expect(utf8!.raw.equals(UTF8_BODY)).toBe(true);
    expect(ascii!.smtpUtf8).toBe(false);
    expect(ascii!.commands[0]).not.toContain('SMTPUTF8');
    expect(s.connections).toHaveLength(1);
  });

  it('to a server without SMTPUTF8: writes domains as A-labels and bounces (5.6.7) only the recipients with a UTF-8 local part', async () => {
    const { sink: s, hop } = await sink({ smtpUtf8: false });
    const outcomes = await deliverer().deliver(request(hop, { sender: 'news@bücher.test', recipients: ['user@bücher.test', 'ünï@dest.test', 'plain@dest.test'] }));
    expect(outcomes[0]!.disposition).toBe('delivered');
    expect(outcomes[1]).toEqual({
      disposition: 'permanent',
      code: null,
      enhanced: '5.6.7',
      response: 'not sent: the recipient address needs SMTPUTF8 (RFC 6531), which mx.dest.test does not offer',
      stage: 'mail',
      bounceClass: 'other',
      remoteHost: 'mx.dest.test',
      egressIp: '127.0.0.2',
    });
    expect(outcomes[2]!.disposition).toBe('delivered');
    const [received] = await s.waitForMessages(1);
    expect(received!.smtpUtf8).toBe(false);
    expect(received!.commands).toEqual(['MAIL FROM:<news@xn--bcher-kva.test>', 'RCPT TO:<user@xn--bcher-kva.test>', 'RCPT TO:<plain@dest.test>']);
  });

  it('to a server without SMTPUTF8: bounces every recipient of a message whose sender or header fields need it, sending nothing', async () => {
    const { sink: s, hop } = await sink({ smtpUtf8: false });
    const d = deliverer();
    const bySender = await d.deliver(request(hop, { sender: 'jörg@sender.test', recipients: ['a@dest.test', 'b@bücher.test'] }));
    expect(bySender.map((o) => [o.disposition, o.enhanced, o.response])).toEqual(
      Array(2).fill(['permanent', '5.6.7', 'not sent: the sender address needs SMTPUTF8 (RFC 6531), which mx.dest.test does not offer']),
    );
    const byHeaders = await d.deliver(request(hop, { recipients: ['a@dest.test'], body: UTF8_BODY }));
    expect(byHeaders[0]).toMatchObject({ disposition: 'permanent', enhanced: '5.6.7', response: 'not sent: UTF-8 header fields need SMTPUTF8 (RFC 6531), which mx.dest.test does not offer' });
    // Legacy 8-bit header bytes (not UTF-8) are no RFC 6532 message: they go as before.
    const latin1 = Buffer.from('From: app@sender.test\r\nSubject: caf\xe9\r\n\r\nx\r\n', 'latin1');
    expect((await d.deliver(request(hop, { recipients: ['a@dest.test'], body: latin1 })))[0]!.disposition).toBe('delivered');
    expect((await s.waitForMessages(1)).map((m) => m.raw.equals(latin1))).toEqual([true]);
  });
});
