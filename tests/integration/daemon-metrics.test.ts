import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { MessageQuery, Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { selfSignedPair } from '../helpers/tls-fixture.ts';
import { until } from '../helpers/until.ts';

const ANY: MessageQuery = { state: null, sender: null, recipient: null, domain: null, pool: null, tag: null, since: null, until: null, tenant: null, after: null, limit: 100 };

/** The one sample of `name` whose labels include every one of `labels`; null when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return null;
}

/** The metrics the dashboard and alert rules in deploy/ read, fed by a running daemon. */
describe('operations metrics of a running daemon', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let store: Store;
  let daemon: Daemon;

  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
  });

  async function scrape(): Promise<string> {
    const { host, port } = daemon.apiAddress();
    return (await fetch(`http://${host}:${port}/metrics`)).text();
  }

  it('reports bytes accepted, attempts per egress IP and provider, the oldest queued age, readiness and TLS certificate expiry', async () => {
    dir = await createTempDir('rookery-daemon-metrics');
    // later@ is deferred: it stays queued, and its wait is the oldest.
    sink = await startSmtpSink({ script: { onRcptTo: (address) => (address.startsWith('later@') ? { code: 451, message: '4.3.0 try again later' } : undefined) } });
    const pair = await selfSignedPair('mta.rookery.test');
    writeFileSync(dir.file('key.pem'), pair.key);
    writeFileSync(dir.file('cert.pem'), pair.cert);
    const config: ConfigInput = {
      ips: [{ address: '127.0.0.2' }],
      smtp: {
        listeners: [
          { host: '127.0.0.1', port: 0, tls: 'none' },
          { host: '127.0.0.1', port: 0, tls: 'starttls' },
        ],
        tls: { key: dir.file('key.pem'), cert: dir.file('cert.pem') },
      },
      inbound: { listeners: [{ host: '127.0.0.1', port: 0 }] },
      delivery: { retry: { initial: '1h', jitter: 0 } },
    };

    store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    daemon = await startTestDaemon({
      dir,
      sink,
      store,
      resolver: createFixtureResolver({ 'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] }, 'mx.dest.test': { a: ['127.0.0.1'] } }),
      config,
      // What a reload reads: the same settings, and the key and certificate files as they are then.
      reread: () => config,
    });

    const client = submissionClient(daemon.smtpAddresses()[0]!);
    await client.send('app@sender.test', ['now@dest.test'], testMessage({ from: 'app@sender.test', to: 'now@dest.test', messageId: '<m1@sender.test>' }));
    await client.send('app@sender.test', ['later@dest.test'], testMessage({ from: 'app@sender.test', to: 'later@dest.test', messageId: '<m2@sender.test>' }));
    client.close();
    await sink.waitForMessages(1, 15_000);
    await until(async () => (await store.countByState()).delivering === 0 && (await store.countByState()).delivered === 1, 'both attempts recorded');
    await until(async () => sample(await scrape(), 'rookery_ip_attempts_total', { disposition: 'transient' }) === 1, 'the deferral counted');

    const text = await scrape();
    const stored = await store.listMessages(ANY);
    expect(sample(text, 'rookery_bytes_accepted_total', { source: 'smtp' })).toBe(stored.filter((m) => m.source === 'smtp').reduce((sum, m) => sum + m.size, 0));
    expect(sample(text, 'rookery_ip_attempts_total', { egress_ip: '127.0.0.2', disposition: 'delivered' })).toBe(1);
    expect(text).toMatch(/^rookery_ip_attempts_total\{egress_ip="127\.0\.0\.2",provider="[a-z]+",disposition="transient"\} 1$/m);

    expect(text).toMatch(/^rookery_ip_info\{egress_ip="127\.0\.0\.2",pool="default",hostname="[^"]+"\} 1$/m);

    const oldest = sample(text, 'rookery_queue_oldest_age_seconds')!;
    const later = stored.find((m) => m.states.queued === 1)!;
    expect(oldest).toBeGreaterThan(0);
    expect(oldest).toBeLessThanOrEqual((Date.now() - later.createdAt) / 1000);

    expect(sample(text, 'rookery_dependency_ready', { dependency: 'storage' })).toBe(1);
    expect(sample(text, 'rookery_dependency_ready', { dependency: 'disk' })).toBe(1);
    expect(sample(text, 'rookery_dependency_ready', { dependency: 'redis' })).toBeNull();

    const notAfter = new X509Certificate(pair.cert).validToDate.getTime() / 1000;
    const [plain, starttls] = daemon.smtpAddresses();
    const inbound = daemon.inboundAddresses()[0]!;
    expect(sample(text, 'rookery_tls_certificate_expiry_timestamp_seconds', { listener: 'smtp.listeners[1]', address: `127.0.0.1:${starttls!.port}` })).toBe(notAfter);
    expect(sample(text, 'rookery_tls_certificate_expiry_timestamp_seconds', { listener: 'inbound.listeners[0]', address: `127.0.0.1:${inbound.port}` })).toBe(notAfter);
    // The plain listener presents no certificate.
    expect(sample(text, 'rookery_tls_certificate_expiry_timestamp_seconds', { listener: 'smtp.listeners[0]' })).toBeNull();
    expect(plain).toBeDefined();

    // A renewed certificate, taken by a reload: the gauge shows the one now presented.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', dir.file('key.pem'), '-out', dir.file('cert.pem'), '-days', '30', '-subj', '/CN=mta.rookery.test'], { stdio: 'ignore' });
    const renewed = new X509Certificate(readFileSync(dir.file('cert.pem'))).validToDate.getTime() / 1000;
    expect(await daemon.reload('test')).toMatchObject({ ok: true });
    const after = await scrape();
    expect(sample(after, 'rookery_tls_certificate_expiry_timestamp_seconds', { listener: 'smtp.listeners[1]' })).toBe(renewed);
    expect(sample(after, 'rookery_tls_certificate_expiry_timestamp_seconds', { listener: 'inbound.listeners[0]' })).toBe(renewed);
  });

  it('shows the counters the alerts take increase() of at 0 from the start, and those of an IP a reload adds', async () => {
    dir = await createTempDir('rookery-daemon-metrics');
    sink = await startSmtpSink();
    let config: ConfigInput = { ips: [{ address: '127.0.0.2' }] };
    store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    daemon = await startTestDaemon({ dir, sink, store, resolver: createFixtureResolver(), config, reread: () => config });

    const text = await scrape();
    expect(sample(text, 'rookery_dkim_unsigned_total', { reason: 'no-key' })).toBe(0);
    expect(sample(text, 'rookery_feedback_events_total', { kind: 'complaint' })).toBe(0);
    expect(sample(text, 'rookery_mta_sts_fetches_total', { result: 'sts-policy-fetch-error' })).toBe(0);
    expect(sample(text, 'rookery_webhook_deliveries_total', { outcome: 'failed' })).toBe(0);
    expect(sample(text, 'rookery_recipients_final_total', { egress_ip: '127.0.0.2', result: 'bounced' })).toBe(0);
    expect(sample(text, 'rookery_delivery_outcomes_total', { egress_ip: '127.0.0.2', disposition: 'transient' })).toBe(0);
    expect(sample(text, 'rookery_delivery_outcomes_total', { egress_ip: '127.0.0.3' })).toBeNull();

    config = { ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }] };
    expect(await daemon.reload('test')).toMatchObject({ ok: true });
    const after = await scrape();
    expect(sample(after, 'rookery_delivery_outcomes_total', { egress_ip: '127.0.0.3', disposition: 'delivered' })).toBe(0);
    expect(sample(after, 'rookery_recipients_final_total', { egress_ip: '127.0.0.3', result: 'delivered' })).toBe(0);
  });
});
