import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { generateDkimKey } from '../helpers/dkim-keys.ts';
import { killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';
import { selfSignedPair } from '../helpers/tls-fixture.ts';

/**
 * Reloading the configuration of a running daemon process: SIGHUP and POST /v1/reload read the
 * file again; what may change is applied whole, what needs a restart is reported, and a file
 * with problems changes nothing.
 */

const ADMIN = { token: generateApiToken(), name: 'ops' };
const adminEntry = { name: ADMIN.name, role: 'admin' as const, hash: hashApiToken(ADMIN.token) };
/** The control API on a free port, as the test defaults have it, with these tokens. */
const apiWith = (...tokens: Array<{ name: string; role: 'admin' | 'viewer'; hash: string }>) => ({ listen: { host: '127.0.0.1', port: 0 }, tokens });

/** The `n`th log line (from 1) with this event, waiting for it. */
async function logged(daemon: DaemonProcess, event: string, count: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = daemon.logs.filter((l) => l.event === event);
    if (found.length >= count) return found[count - 1]!;
    if (Date.now() > deadline) throw new Error(`no ${event} #${count} in the log`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('reloading the configuration', () => {
  let dir: TempDir;
  let daemon: DaemonProcess | undefined;
  const sinks: SmtpSink[] = [];

  afterEach(async () => {
    await killDaemon(daemon);
    daemon = undefined;
    for (const sink of sinks.splice(0)) await sink.close();
    await dir?.remove();
  });

  /** Starts a daemon process on `config` (over the test defaults); `rewrite` replaces its file. */
  async function start(extra: ConfigInput, sink?: SmtpSink) {
    dir = await createTempDir('rookery-reload');
    const config = (next: ConfigInput) => testDaemonConfig({ dir: dir.path, sink, extra: next });
    daemon = await startDaemonProcess(dir.path, config(extra));
    const running = daemon;
    const api = (method: string, path: string, token = ADMIN.token, body?: object) =>
      fetch(`http://${running.api.host}:${running.api.port}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body && JSON.stringify(body),
      });
    return {
      daemon: running,
      api,
      rewrite: (next: ConfigInput) => writeFileSync(join(dir.path, 'rookery.yaml'), stringify(config(next))),
      reload: async () => {
        const res = await api('POST', '/v1/reload');
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      },
    };
  }

  it('SIGHUP: a new SMTP user can log in, a removed one cannot, and a session of the removed one sends nothing more', async () => {
    const users = (...names: string[]) => names.map((name) => ({ username: name, password: `${name}-secret`, allowedSenders: ['*'] }));
    const { daemon: d, rewrite } = await start({ smtp: { trustedNetworks: [], users: users('alice') } });
    const smtp = d.smtp[0]!;
    const session = await SmtpTestClient.connect(smtp);
    await session.ehlo();
    expect((await session.authPlain('alice', 'alice-secret')).code).toBe(235);

    rewrite({ smtp: { trustedNetworks: [], users: users('bob') } });
    d.kill('SIGHUP');
    expect(await logged(d, 'daemon.reloaded', 1)).toMatchObject({ trigger: 'signal', changed: ['smtp.users'], restartRequired: [] });

    const login = async (name: string) => {
      const client = await SmtpTestClient.connect(smtp);
      await client.ehlo();
      const reply = await client.authPlain(name, `${name}-secret`);
      await client.close();
      return reply.code;
    };
    expect(await login('bob')).toBe(235);
    expect(await login('alice')).toBe(535);
    // The session that logged in as alice before is no longer anyone's: no relaying.
    expect((await session.send('MAIL FROM:<app@sender.test>')).code).toBe(554);
    await session.close();
  });

  it('POST /v1/reload: a new API token works, a removed one gets 401, and the reload is in the audit log', async () => {
    const viewer = generateApiToken();
    const next = generateApiToken();
    const { api, rewrite, reload } = await start({ api: apiWith(adminEntry, { name: 'old-viewer', role: 'viewer', hash: hashApiToken(viewer) }) });
    expect((await api('GET', '/v1/whoami', viewer)).status).toBe(200);

    rewrite({ api: apiWith(adminEntry, { name: 'new-viewer', role: 'viewer', hash: hashApiToken(next) }) });
    expect(await reload()).toEqual({ status: 200, body: { source: expect.stringMatching(/rookery\.yaml$/), changed: ['api.tokens'], restartRequired: [], warnings: [] } });
    expect(await (await api('GET', '/v1/whoami', next)).json()).toMatchObject({ name: 'new-viewer', role: 'viewer' });
    expect((await api('GET', '/v1/whoami', viewer)).status).toBe(401);

    const audit = (await (await api('GET', '/v1/audit?route=/v1/reload')).json()) as { items: Array<Record<string, unknown>> };
    expect(audit.items).toMatchObject([{ actor: 'ops', method: 'POST', status: 200, outcome: 'OK', change: { after: { changed: ['api.tokens'], restartRequired: [], warnings: [] } } }]);
  });

  it("an IP's new weight, a new IP and a new pool show in GET /v1/ips after the reload", async () => {
    const { api, rewrite, reload } = await start({ api: apiWith(adminEntry), ips: [{ address: '127.0.0.2' }] });
    rewrite({ api: apiWith(adminEntry), ips: [{ address: '127.0.0.2', weight: 30 }, { address: '127.0.0.3', pool: 'bulk', hostname: 'bulk1.rookery.test' }] });
    expect((await reload()).body).toMatchObject({ changed: ['ips'], restartRequired: [] });
    const ips = (await (await api('GET', '/v1/ips')).json()) as { ips: Array<Record<string, unknown>> };
    expect(ips.ips.map((ip) => [ip.address, ip.pool, ip.weight, ip.hostname])).toEqual([
      ['127.0.0.2', 'default', 30, 'mta.rookery.test'],
      ['127.0.0.3', 'bulk', 100, 'bulk1.rookery.test'],
    ]);
  });

  it('a file with problems changes nothing: the API answers 422 listing each with its path, SIGHUP logs them, the daemon runs on', async () => {
    const { daemon: d, api, rewrite, reload } = await start({ api: apiWith(adminEntry), ips: [{ address: '127.0.0.2', weight: 40 }] });
    rewrite({ api: apiWith(), ips: [{ address: 'not-an-ip' }], bogus: true } as ConfigInput);
    const refused = await reload();
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({
      code: 'CONFIG_INVALID',
      status: 422,
      errors: expect.arrayContaining([
        { path: 'ips[0].address', message: 'not an IP address' },
        { path: 'bogus', message: 'unknown key' },
      ]),
    });
    expect(await logged(d, 'daemon.reload.refused', 1)).toMatchObject({ trigger: 'api', problems: expect.arrayContaining(['ips[0].address: not an IP address']) });

    d.kill('SIGHUP');
    expect(await logged(d, 'daemon.reload.refused', 2)).toMatchObject({ trigger: 'signal', problems: expect.arrayContaining(['bogus: unknown key']) });
    // The token the broken file would have removed still works; the IP keeps its weight.
    const ips = (await (await api('GET', '/v1/ips')).json()) as { ips: Array<Record<string, unknown>> };
    expect(ips.ips.map((ip) => [ip.address, ip.weight])).toEqual([['127.0.0.2', 40]]);
    expect(d.logs.filter((l) => l.event === 'daemon.reloaded')).toEqual([]);
    expect(d.child.exitCode).toBeNull();
  });

  it('a DKIM key file that cannot be read refuses the reload; a good one is taken', async () => {
    dir = await createTempDir('rookery-reload');
    const keyPath = dir.file('example.com.s1.pem');
    writeFileSync(keyPath, generateDkimKey('ed25519').pem);
    const dkim = { domains: { 'example.com': { keys: [{ selector: 's1', privateKey: keyPath }] } } };
    daemon = await startDaemonProcess(dir.path, testDaemonConfig({ dir: dir.path, extra: { dkim } }));

    writeFileSync(keyPath, 'not a key\n');
    daemon.kill('SIGHUP');
    const broken = await logged(daemon, 'daemon.reload.refused', 1);
    expect(broken.problems).toEqual([expect.stringMatching(/^dkim\.domains\.example\.com\.keys\[0\]\.privateKey: /)]);

    writeFileSync(keyPath, generateDkimKey('ed25519').pem);
    daemon.kill('SIGHUP');
    expect(await logged(daemon, 'daemon.reloaded', 1)).toMatchObject({ changed: ['dkim key files'], restartRequired: [] });
    expect(daemon.child.exitCode).toBeNull();
  });

  it('a new listener port, API port, hostname or storage is reported as waiting for a restart, and the rest is applied', async () => {
    const { daemon: d, api, rewrite, reload } = await start({ api: apiWith(adminEntry) });
    const token = generateApiToken();
    const moved: ConfigInput = {
      hostname: 'moved.rookery.test',
      api: { listen: { host: '127.0.0.1', port: d.api.port + 1 }, tokens: [adminEntry, { name: 'added', role: 'viewer', hash: hashApiToken(token) }] },
      smtp: { listeners: [{ host: '127.0.0.1', port: d.smtp[0]!.port + 1 }] },
    };
    rewrite(moved);
    // The test config names the SQLite file after the hostname: storage moves too.
    const expected = { changed: ['api.tokens'], restartRequired: ['hostname', 'storage', 'smtp.listeners', 'api.listen'] };
    expect((await reload()).body).toMatchObject(expected);
    expect(await logged(d, 'daemon.reloaded', 1)).toMatchObject({ level: 40, ...expected });
    // Still where it was, with the token applied.
    expect((await api('GET', '/v1/whoami', token)).status).toBe(200);
    const client = await SmtpTestClient.connect(d.smtp[0]!);
    expect(client.greeting.text).toContain('mta.rookery.test');
    await client.close();
    // Until the restart, every reload says so again.
    expect((await reload()).body).toMatchObject({ changed: [], restartRequired: expected.restartRequired });
  });

  it('a delivery in flight during a reload completes where it started; mail accepted after it follows the new routes', async () => {
    let release!: () => void;
    const released = new Promise<undefined>((resolve) => (release = () => resolve(undefined)));
    let inFlight!: () => void;
    const reachedData = new Promise<void>((resolve) => (inFlight = resolve));
    const first = await startSmtpSink({
      script: {
        onData: () => {
          inFlight();
          return released;
        },
      },
    });
    const second = await startSmtpSink();
    sinks.push(first, second);
    const { daemon: d, rewrite, reload } = await start({ api: apiWith(adminEntry), ips: [{ address: '127.0.0.2', hostname: 'before.rookery.test' }] }, first);
    const client = submissionClient(d.smtp[0]!);
    await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<in-flight@app.test>' }));
    await reachedData;

    rewrite({ api: apiWith(adminEntry), ips: [{ address: '127.0.0.2', hostname: 'after.rookery.test' }], delivery: { routes: { '*': `127.0.0.1:${second.port}` } } });
    expect((await reload()).body).toMatchObject({ changed: ['delivery.routes', 'ips'], restartRequired: [] });
    release();
    const [delivered] = await first.waitForMessages(1, 15_000);
    expect(delivered).toMatchObject({ messageId: '<in-flight@app.test>', helo: 'before.rookery.test' });
    expect(await logged(d, 'delivery.delivered', 1)).toMatchObject({ recipient: 'user@dest.test', ip: '127.0.0.2' });

    await client.send('app@sender.test', ['user@dest.test'], testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<after@app.test>' }));
    client.close();
    const [after] = await second.waitForMessages(1, 15_000);
    expect(after).toMatchObject({ messageId: '<after@app.test>', helo: 'after.rookery.test' });
    expect(first.messages).toHaveLength(1);
  });

  it('mail queued in a pool whose last IP a reload removed goes out through the default pool, and the reload says so', async () => {
    let attempts = 0;
    const sink = await startSmtpSink({ script: { onRcptTo: () => (attempts++ === 0 ? { code: 451, message: '4.2.1 mailbox busy, try again later' } : undefined) } });
    sinks.push(sink);
    const settings = (extra: ConfigInput): ConfigInput => ({
      api: apiWith(adminEntry),
      // A deferred recipient waits for the operator's retry below, not for the clock.
      delivery: { retry: { initial: '1h', jitter: 0 } },
      ...extra,
    });
    const { daemon: d, api, rewrite, reload } = await start(
      settings({ ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'bulk' }], pools: { bulk: { senders: ['bulk.test'] } } }),
      sink,
    );
    const client = submissionClient(d.smtp[0]!);
    await client.send('news@bulk.test', ['user@dest.test'], testMessage({ from: 'news@bulk.test', to: 'user@dest.test', messageId: '<stranded@app.test>' }));
    client.close();
    expect(await logged(d, 'delivery.deferred', 1)).toMatchObject({ ip: '127.0.0.3' });

    rewrite(settings({ ips: [{ address: '127.0.0.2' }] }));
    const warnings = ['ips: pool bulk lost its last IP; its mail, queued or new, goes through pool default'];
    expect((await reload()).body).toMatchObject({ changed: ['ips', 'pools'], restartRequired: [], warnings });
    expect(await logged(d, 'daemon.reloaded', 1)).toMatchObject({ level: 40, warnings, msg: expect.stringContaining('pool bulk lost its last IP') });

    expect((await api('POST', '/v1/queue/retry', ADMIN.token, { scope: { domain: 'dest.test' } })).status).toBe(200);
    const [delivered] = await sink.waitForMessages(1, 15_000);
    expect(delivered).toMatchObject({ messageId: '<stranded@app.test>', remoteAddress: '127.0.0.2' });
    expect(await logged(d, 'delivery.delivered', 1)).toMatchObject({ ip: '127.0.0.2' });
    expect(d.logs.filter((l) => l.event === 'ippool.pool.fallback')).toMatchObject([{ level: 40, pool: 'bulk', instead: 'default' }]);
  });

  it('a key and certificate renewed at the smtp.tls paths are applied: new STARTTLS handshakes get the new certificate', async () => {
    dir = await createTempDir('rookery-reload');
    const [before, after] = await Promise.all([selfSignedPair('before.rookery.test'), selfSignedPair('after.rookery.test')]);
    const tls = { key: dir.file('smtp-key.pem'), cert: dir.file('smtp-cert.pem') };
    const install = (pair: { key: Buffer; cert: Buffer }) => {
      writeFileSync(tls.key, pair.key);
      writeFileSync(tls.cert, pair.cert);
    };
    install(before);
    daemon = await startDaemonProcess(dir.path, testDaemonConfig({ dir: dir.path, extra: { smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'starttls' }], tls } } }));
    const smtp = daemon.smtp[0]!;
    const encrypted = async () => {
      const client = await SmtpTestClient.connect(smtp);
      await client.ehlo();
      expect((await client.startTls()).code).toBe(220);
      return client;
    };
    const presented = async () => {
      const client = await encrypted();
      const name = client.peerCertificate()?.subject.CN;
      await client.close();
      return name;
    };
    expect(await presented()).toBe('before.rookery.test');
    const session = await encrypted();

    install(after);
    daemon.kill('SIGHUP');
    expect(await logged(daemon, 'daemon.reloaded', 1)).toMatchObject({ level: 30, changed: ['smtp.tls files'], restartRequired: [] });
    expect(await presented()).toBe('after.rookery.test');
    // A session encrypted before the reload goes on with the certificate it was given.
    expect((await session.ehlo()).code).toBe(250);
    expect(session.peerCertificate()?.subject.CN).toBe('before.rookery.test');
    await session.close();
  });

  it("a changed password ends the sessions logged in with the old one; other users' sessions go on", async () => {
    const users = (alicePassword: string) => [
      { username: 'alice', password: alicePassword, allowedSenders: ['*'] },
      { username: 'bob', password: 'bob-secret', allowedSenders: ['*'] },
    ];
    const { daemon: d, rewrite } = await start({ smtp: { trustedNetworks: [], users: users('old-secret') } });
    const smtp = d.smtp[0]!;
    const loggedIn = async (name: string, password: string) => {
      const client = await SmtpTestClient.connect(smtp);
      await client.ehlo();
      expect((await client.authPlain(name, password)).code).toBe(235);
      return client;
    };
    const alice = await loggedIn('alice', 'old-secret');
    const bob = await loggedIn('bob', 'bob-secret');

    rewrite({ smtp: { trustedNetworks: [], users: users('new-secret') } });
    d.kill('SIGHUP');
    expect(await logged(d, 'daemon.reloaded', 1)).toMatchObject({ changed: ['smtp.users'] });

    // As for a removed user: the session is nobody's, and nobody may relay.
    expect((await alice.send('MAIL FROM:<app@sender.test>')).code).toBe(554);
    await alice.close();
    expect((await bob.send('MAIL FROM:<app@sender.test>')).code).toBe(250);
    expect((await bob.send('RCPT TO:<user@dest.test>')).code).toBe(250);
    await bob.close();
    const again = await loggedIn('alice', 'new-secret');
    expect((await again.send('MAIL FROM:<app@sender.test>')).code).toBe(250);
    expect((await again.send('RCPT TO:<user@dest.test>')).code).toBe(250);
    await again.close();
  });
});
