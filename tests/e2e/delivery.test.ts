import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const EGRESS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

function daemonConfig(sink: SmtpSink, extra: Partial<ConfigInput> = {}): ConfigInput {
  return testDaemonConfig({
    dir: dir.path,
    sink,
    extra: {
      delivery: { retry: { initial: '300ms', max: '1s', multiplier: 2, jitter: 0.1 } },
      ips: EGRESS.map((address, i) => ({ address, hostname: `mta${i + 1}.rookery.test` })),
      ...extra,
    },
  });
}

let dir: TempDir;

describe('daemon: submission to delivery', () => {
  let sink: SmtpSink | undefined;
  let daemon: DaemonProcess | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-e2e');
  });
  afterEach(async () => {
    await killDaemon(daemon);
    await sink?.close();
    await dir.remove();
  });

  it('delivers from every egress IP, greeting with that IP hostname', async () => {
    sink = await startSmtpSink();
    daemon = await startDaemonProcess(dir.path, daemonConfig(sink));
    const client = submissionClient(daemon.smtp[0]!, 4);
    const ids = Array.from({ length: 40 }, (_, i) => `<spread-${i}@app.test>`);
    await Promise.all(
      ids.map((messageId) =>
        client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId })),
      ),
    );
    client.close();
    await sink.waitForMessages(40, 15_000);

    expect(new Set(sink.messages.map((m) => m.messageId))).toEqual(new Set(ids));
    const bySource = new Map<string, Set<string>>();
    for (const m of sink.messages) {
      const helos = bySource.get(m.remoteAddress) ?? new Set();
      helos.add(m.helo);
      bySource.set(m.remoteAddress, helos);
    }
    expect([...bySource.keys()].sort()).toEqual(EGRESS);
    EGRESS.forEach((address, i) => expect([...bySource.get(address)!]).toEqual([`mta${i + 1}.rookery.test`]));
    // Plain round-robin: an even spread.
    for (const address of EGRESS) expect(sink.messages.filter((m) => m.remoteAddress === address)).toHaveLength(10);
    expect(sink.messages[0]!.raw.toString()).toMatch(/^Received: from /);

    // What the operator sees: acceptances, deliveries per egress IP, the queue by state.
    // The sink sees each message just before the daemon records its outcome: scrape until settled.
    const scrape = async () => (await fetch(`http://${daemon!.api.host}:${daemon!.api.port}/metrics`)).text();
    let metrics = await scrape();
    for (let i = 0; i < 50 && !/rookery_delivery_latency_seconds_count 40\b/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 100));
      metrics = await scrape();
    }
    expect(metrics).toContain('rookery_messages_accepted_total{source="smtp"} 40');
    for (const address of EGRESS) {
      expect(metrics).toContain(`rookery_delivery_outcomes_total{egress_ip="${address}",disposition="delivered"} 10`);
    }
    expect(metrics).toContain('rookery_queue_recipients{state="delivered"} 40');
    expect(metrics).toContain('rookery_queue_recipients{state="queued"} 0');
    expect(metrics).toMatch(/rookery_delivery_latency_seconds_count 40/);
  });

  it('reuses outbound connections for messages that follow each other', async () => {
    sink = await startSmtpSink();
    daemon = await startDaemonProcess(dir.path, daemonConfig(sink));
    const client = submissionClient(daemon.smtp[0]!);
    for (let i = 0; i < 20; i++) {
      await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: `<reuse-${i}@app.test>` }));
      await sink.waitForMessages(i + 1, 5_000);
    }
    client.close();
    // One connection per egress IP, each carrying five transactions.
    expect(sink.connections).toHaveLength(EGRESS.length);
    expect(sink.connections.map((c) => c.transactions)).toEqual([5, 5, 5, 5]);
  });

  it('retries after a 4xx and delivers; bounces a 5xx with a DSN to the sender', async () => {
    let deferred = 0;
    sink = await startSmtpSink({
      script: {
        onRcptTo(address) {
          if (address === 'greylisted@dest.test' && deferred++ < 2) return { code: 451, message: '4.7.1 greylisted, try again' };
          if (address === 'nobody@dest.test') return { code: 550, message: '5.1.1 no such user' };
          return undefined;
        },
      },
    });
    daemon = await startDaemonProcess(dir.path, daemonConfig(sink));
    const client = submissionClient(daemon.smtp[0]!);
    await client.send('app@sender.test', ['greylisted@dest.test'], testMessage({ from: 'app@sender.test', to: 'greylisted@dest.test', messageId: '<grey@app.test>' }));
    await client.send('app@sender.test', ['nobody@dest.test'], testMessage({ from: 'app@sender.test', to: 'nobody@dest.test', messageId: '<bounce@app.test>' }));
    client.close();

    // The greylisted message, and the DSN for the bounced one (sent to app@sender.test with a null sender).
    await sink.waitForMessages(2, 15_000);
    const grey = sink.messages.find((m) => m.messageId === '<grey@app.test>');
    expect(grey?.to).toEqual(['greylisted@dest.test']);
    expect(deferred).toBe(3);
    const dsn = sink.messages.find((m) => m.to.includes('app@sender.test'));
    expect(dsn?.from).toBe('');
    const text = dsn!.raw.toString();
    expect(text).toMatch(/Content-Type: multipart\/report;[\s\S]*report-type=("?)delivery-status\1/i);
    expect(text).toMatch(/Final-Recipient: rfc822; ?nobody@dest\.test/i);
    expect(text).toMatch(/Status: 5\.1\.1/);
    expect(text).toMatch(/Diagnostic-Code: smtp; ?550 5\.1\.1 no such user/i);
    expect(text).toContain('<bounce@app.test>');
  });

  it('refuses relay from an untrusted client without AUTH', async () => {
    sink = await startSmtpSink();
    const config = daemonConfig(sink);
    daemon = await startDaemonProcess(dir.path, { ...config, smtp: { ...config.smtp, trustedNetworks: [] } });
    const client = submissionClient(daemon.smtp[0]!);
    await expect(
      client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<deny@app.test>' })),
    ).rejects.toMatchObject({ responseCode: expect.any(Number) });
    client.close();
    expect(sink.messages).toHaveLength(0);
  });

  it('shuts down gracefully on SIGTERM and resumes the queue on restart', async () => {
    // A sink that defers everything: mail stays queued across the restart.
    let accept = false;
    sink = await startSmtpSink({ script: { onRcptTo: () => (accept ? undefined : { code: 421, message: '4.3.2 not now' }) } });
    daemon = await startDaemonProcess(dir.path, daemonConfig(sink));
    const client = submissionClient(daemon.smtp[0]!);
    for (let i = 0; i < 5; i++) {
      await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: `<resume-${i}@app.test>` }));
    }
    client.close();
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(daemon.logs.some((l) => l.event === 'daemon.stopped')).toBe(true);

    accept = true;
    daemon = await startDaemonProcess(dir.path, daemonConfig(sink));
    await sink.waitForMessages(5, 15_000);
    expect(new Set(sink.messages.map((m) => m.messageId)).size).toBe(5);
  });
});
