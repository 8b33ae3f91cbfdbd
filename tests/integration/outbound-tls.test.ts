import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { utcDay } from '../../src/engine/tls/tls-rpt-report.ts';
import { createFixtureResolver, type FixtureZone } from '../helpers/fixture-resolver.ts';
import { startHttpsFixture, type HttpsFixture } from '../helpers/https-fixture.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTestCa, type TestCa } from '../helpers/test-ca.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * Outbound TLS through the daemon: MX hosts are loopback SMTP sinks on one port (the daemon's
 * mxPort), each on its own address, with STARTTLS or without, with a certificate of the test CA
 * valid for its MX name, for another name, expired, or self-signed; MTA-STS policies are served
 * by a loopback HTTPS server. Each case is one recipient domain; its first attempt's event says
 * what happened.
 */

const logger = createLogger('silent');

/** The MX sinks: address -> what it offers. */
const HOSTS = {
  plain: '127.0.0.1',
  good: '127.0.0.21',
  wrongName: '127.0.0.22',
  expired: '127.0.0.23',
  selfSigned: '127.0.0.24',
} as const;

/** domain -> [its MX name, the sink it reaches]. */
const DOMAINS: Record<string, [string, keyof typeof HOSTS]> = {
  'plain.test': ['mx.plain.test', 'plain'],
  'good.test': ['mx.good.test', 'good'],
  'wrong.test': ['mx.wrong.test', 'wrongName'],
  'req-plain.test': ['mx.plain.test', 'plain'],
  'req-wrong.test': ['mx.wrong.test', 'wrongName'],
  'ver-good.test': ['mx.good.test', 'good'],
  'ver-wrong.test': ['mx.wrong.test', 'wrongName'],
  'ver-expired.test': ['mx.expired.test', 'expired'],
  'ver-self.test': ['mx.self.test', 'selfSigned'],
  'sts.test': ['mx.good.test', 'good'],
  'sts-unlisted.test': ['mx.good.test', 'good'],
  'sts-badcert.test': ['mx.wrong.test', 'wrongName'],
  'sts-testing.test': ['mx.wrong.test', 'wrongName'],
  'sts-none.test': ['mx.plain.test', 'plain'],
  'sts-down.test': ['mx.plain.test', 'plain'],
  'sts-slow.test': ['mx.good.test', 'good'],
};

const POLICIES: Record<string, string> = {
  'sts.test': 'version: STSv1\nmode: enforce\nmx: *.good.test\nmax_age: 86400\n',
  'sts-unlisted.test': 'version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n',
  'sts-badcert.test': 'version: STSv1\nmode: enforce\nmx: mx.wrong.test\nmax_age: 86400\n',
  'sts-testing.test': 'version: STSv1\nmode: testing\nmx: mx.wrong.test\nmax_age: 86400\n',
  'sts-none.test': 'version: STSv1\nmode: none\nmax_age: 86400\n',
  'sts-slow.test': 'version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n',
};

function zone(): FixtureZone {
  const records: FixtureZone = {};
  for (const [domain, [mx, host]] of Object.entries(DOMAINS)) {
    records[domain] = { mx: [{ exchange: mx, priority: 10 }] };
    records[mx] = { a: [HOSTS[host]] };
    if (POLICIES[domain] || domain === 'sts-down.test') records[`_mta-sts.${domain}`] = { txt: ['v=STSv1; id=1;'] };
  }
  return records;
}

describe('outbound TLS policies', () => {
  let ca: TestCa;
  let sinks: SmtpSink[];
  let policyServer: HttpsFixture;
  /** Answers the policy server holds back (of sts-slow.test) until a test sends them. */
  const heldBack: Array<() => void> = [];
  let dir: TempDir;
  let store: Store;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    ca = await createTestCa();
    const good = await ca.issue(['mx.good.test']);
    const wrong = await ca.issue(['somewhere.else.test']);
    const expired = await ca.issue(['mx.expired.test'], { expired: true });
    const plain = await startSmtpSink({ host: HOSTS.plain });
    const port = plain.port;
    sinks = [
      plain,
      await startSmtpSink({ host: HOSTS.good, port, tls: good }),
      await startSmtpSink({ host: HOSTS.wrongName, port, tls: wrong }),
      await startSmtpSink({ host: HOSTS.expired, port, tls: expired }),
      await startSmtpSink({ host: HOSTS.selfSigned, port, tls: true }),
    ];
    const policyHosts = Object.keys(POLICIES).map((d) => `mta-sts.${d}`);
    policyServer = await startHttpsFixture(await ca.issue([...policyHosts, 'mta-sts.sts-down.test']), (req, res) => {
      const policy = POLICIES[req.host.replace(/^mta-sts\./, '')];
      if (!policy) return void res.writeHead(503).end('down');
      const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
      if (req.host === 'mta-sts.sts-slow.test') heldBack.push(answer);
      else answer();
    });
  });

  afterAll(async () => {
    heldBack.splice(0).forEach((answer) => answer());
    await Promise.all(sinks.map((s) => s.close()));
    await policyServer.close();
    await ca.remove();
  });

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await dir.remove();
  });

  async function start(config: Parameters<typeof startTestDaemon>[0]['config'] = {}) {
    dir = await createTempDir('rookery-outbound-tls');
    store = createSqliteStore({ path: dir.file('queue.db'), logger });
    daemon = await startTestDaemon({
      dir,
      sink: sinks[0]!,
      resolver: createFixtureResolver(zone()),
      store,
      // The policy server is on loopback: allowed here, refused by default.
      config: { ...config, delivery: { ...config.delivery, mtaSts: { allowPrivateNetworks: true, ...config.delivery?.mtaSts } } },
      tlsTrust: { ca: ca.cert, stsPort: policyServer.port, lookup: policyServer.lookup },
    });
    return daemon;
  }

  /** Sends one message to each domain; resolves with each domain's first event. */
  async function firstEvents(d: Daemon, domains: string[]): Promise<Record<string, DeliveryOutcome>> {
    const ids = new Map<string, string>();
    for (const domain of domains) {
      const to = `user@${domain}`;
      const accepted = await d.submit({
        sender: 'app@sender.test', recipients: [to], body: testMessage({ from: 'app@sender.test', to, messageId: `<${domain}@app.test>` }),
        submitter: null, source: 'smtp', clientAddress: '127.0.0.1',
      });
      ids.set(domain, accepted.id);
    }
    const events: Record<string, DeliveryOutcome> = {};
    await until(async () => {
      for (const [domain, id] of ids) {
        const [first] = await store.listEvents(id);
        if (first) events[domain] = first.outcome;
      }
      return Object.keys(events).length === domains.length;
    }, 'a first attempt of every domain');
    return events;
  }

  const received = (domain: string) => sinks.flatMap((s) => s.messages).filter((m) => m.to.includes(`user@${domain}`));

  it('opportunistic, required and verify: never sent in clear or under a refused certificate; the TLS on every event', async () => {
    const d = await start({
      delivery: {
        tlsPolicies: {
          'req-plain.test': 'required', 'req-wrong.test': 'required',
          'ver-good.test': 'verify', 'ver-wrong.test': 'verify', 'ver-expired.test': 'verify', 'ver-self.test': 'verify',
        },
        mtaSts: { enabled: false },
      },
    });
    const events = await firstEvents(d, ['plain.test', 'good.test', 'wrong.test', 'req-plain.test', 'req-wrong.test', 'ver-good.test', 'ver-wrong.test', 'ver-expired.test', 'ver-self.test']);
    const tls13 = { version: 'TLSv1.3', cipher: expect.stringMatching(/^TLS_/) };

    // Opportunistic: in clear when not offered; any certificate, said whether it verified.
    expect(events['plain.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'opportunistic', version: null, cipher: null, verified: false, failure: null } });
    expect(events['good.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'opportunistic', ...tls13, verified: true } });
    expect(events['wrong.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'opportunistic', ...tls13, verified: false } });
    expect(received('wrong.test')[0]!.secure).toBe(true);

    // Required: STARTTLS must succeed, any certificate.
    expect(events['req-plain.test']).toMatchObject({
      disposition: 'transient', enhanced: '4.7.10', stage: 'starttls', bounceClass: 'tls-policy', remoteHost: 'mx.plain.test',
      response: 'TLS policy required not met: mx.plain.test did not offer STARTTLS',
      tls: { policy: 'required', version: null, failure: 'starttls-not-supported' },
    });
    expect(received('req-plain.test')).toEqual([]);
    expect(events['req-wrong.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'required', verified: false } });

    // Verify: a certificate valid for the MX name, else deferred with the reason.
    expect(events['ver-good.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'verify', ...tls13, verified: true, failure: null } });
    expect(events['ver-wrong.test']).toMatchObject({
      disposition: 'transient', enhanced: '4.7.5', bounceClass: 'tls-policy', response: expect.stringMatching(/^TLS policy verify not met: the certificate of mx\.wrong\.test is not valid for it/),
      tls: { policy: 'verify', ...tls13, verified: false, failure: 'certificate-host-mismatch' },
    });
    expect(events['ver-expired.test']).toMatchObject({ disposition: 'transient', tls: { failure: 'certificate-expired' } });
    expect(events['ver-self.test']).toMatchObject({ disposition: 'transient', tls: { failure: 'certificate-not-trusted' } });
    for (const domain of ['ver-wrong.test', 'ver-expired.test', 'ver-self.test']) expect(received(domain)).toEqual([]);
  });

  it('MTA-STS: enforce delivers only to listed MX hosts with a valid certificate, testing delivers and counts, the policy is shared through the store', async () => {
    const d = await start();
    const events = await firstEvents(d, ['sts.test', 'sts-unlisted.test', 'sts-badcert.test', 'sts-testing.test', 'sts-none.test', 'sts-down.test']);

    expect(events['sts.test']).toMatchObject({ disposition: 'delivered', remoteHost: 'mx.good.test', tls: { policy: 'mta-sts', verified: true, failure: null } });
    // Not listed: not even connected to.
    expect(events['sts-unlisted.test']).toMatchObject({
      disposition: 'transient', enhanced: '4.7.5', bounceClass: 'tls-policy', remoteHost: null,
      response: 'TLS policy mta-sts not met: no MX host (mx.good.test) is listed by the MTA-STS policy of sts-unlisted.test (mx: mx.elsewhere.test)',
      tls: { policy: 'mta-sts', failure: 'validation-failure' },
    });
    expect(events['sts-badcert.test']).toMatchObject({ disposition: 'transient', tls: { policy: 'mta-sts', failure: 'certificate-host-mismatch' } });
    for (const domain of ['sts-unlisted.test', 'sts-badcert.test']) expect(received(domain)).toEqual([]);
    // Testing: delivered all the same; mode none and a policy that cannot be fetched: as without one.
    expect(events['sts-testing.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'mta-sts-testing', verified: false } });
    expect(events['sts-none.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'opportunistic', version: null } });
    expect(events['sts-down.test']).toMatchObject({ disposition: 'delivered', tls: { policy: 'opportunistic' } });
    expect(await store.getStsPolicy('sts.test')).toMatchObject({ id: '1', mode: 'enforce', mx: ['*.good.test'] });
    const { host, port } = d.apiAddress();
    const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text();
    expect(metrics).toContain('rookery_outbound_tls_sessions_total{policy="mta-sts",result="success"} 1');
    expect(metrics).toContain('rookery_outbound_tls_sessions_total{policy="mta-sts",result="certificate-host-mismatch"} 1');
    expect(metrics).toContain('rookery_mta_sts_fetches_total{result="fetched"} 5');
    expect(metrics).toContain('rookery_mta_sts_fetches_total{result="sts-policy-fetch-error"} 1');

    // TLS-RPT: the sessions counted per policy domain, flushed to the store as the daemon stops.
    await d.stop();
    daemon = undefined;
    const reopened = createSqliteStore({ path: dir.file('queue.db'), logger });
    await reopened.migrate();
    try {
      const day = utcDay(Date.now());
      const results = async (domain: string) => (await reopened.tlsSessionCounts(domain, day)).map((c) => [c.policy.type, c.result, c.receivingMx, c.count]);
      expect(await results('sts.test')).toEqual([['sts', 'success', '', 1]]);
      expect(await results('sts-unlisted.test')).toEqual([['sts', 'validation-failure', 'mx.good.test', 1]]);
      expect(await results('sts-badcert.test')).toEqual([['sts', 'certificate-host-mismatch', 'mx.wrong.test', 1]]);
      expect(await results('sts-testing.test')).toEqual([['sts', 'certificate-host-mismatch', 'mx.wrong.test', 1]]);
      expect(await results('sts-none.test')).toEqual([['no-policy-found', 'starttls-not-supported', 'mx.plain.test', 1]]);
      expect(await results('sts-down.test')).toEqual([['sts', 'sts-policy-fetch-error', 'mx.plain.test', 1]]);
    } finally {
      await reopened.close();
    }
  });

  it('a slow policy host holds only its own domain: its mail waits (not an attempt) while the fetch goes on, the rest of the message goes', async () => {
    const d = await start();
    const accepted = await d.submit({
      sender: 'app@sender.test', recipients: ['user@sts-slow.test', 'user@sts.test'],
      body: testMessage({ from: 'app@sender.test', to: 'user@sts.test', messageId: '<slow@app.test>' }), submitter: null, source: 'smtp', clientAddress: '127.0.0.1',
    });
    await until(async () => (await store.listEvents(accepted.id)).length === 2, 'both recipients\' first events');
    const byRecipient = new Map((await store.listRecipients(accepted.id)).map((r) => [r.recipientId, r.recipient]));
    const events = Object.fromEntries((await store.listEvents(accepted.id)).map((e) => [byRecipient.get(e.recipientId), e]));
    expect(events['user@sts.test']!.outcome).toMatchObject({ disposition: 'delivered', tls: { policy: 'mta-sts', verified: true } });
    expect(events['user@sts-slow.test']).toMatchObject({
      attempt: 0,
      outcome: { disposition: 'throttled', enhanced: '4.7.0', bounceClass: 'tls-policy', response: 'not tried: the MTA-STS policy of sts-slow.test is still being fetched' },
    });
    expect(received('sts-slow.test')).toEqual([]);
    // The fetch went on: once answered, the policy is there for the retry.
    expect(await store.getStsPolicy('sts-slow.test')).toBeNull();
    heldBack.splice(0).forEach((answer) => answer());
    await until(async () => (await store.getStsPolicy('sts-slow.test')) !== null, 'the slow policy stored');
  });
});
