import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { parseVerpAddress } from '../../src/dkim/verp.ts';
import type { TxtResolver } from '../../src/dkim/key-store.ts';
import type { Resolver } from '../../src/engine/routing.ts';
import { startDaemon, type Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

function dnsError(code: string, name: string): Error {
  return Object.assign(new Error(`query ${code} ${name}`), { code });
}

/**
 * The internet's DNS, as far as these tests need it. mx-dead points at 127.0.0.6, where nothing
 * listens on the sink's port, so delivery must fall back to the next MX.
 */
const zone = {
  mx: new Map<string, { exchange: string; priority: number }[]>([
    ['dest.test', [{ exchange: 'mx-live.dest.test', priority: 20 }, { exchange: 'mx-dead.dest.test', priority: 10 }]],
    ['sender.test', [{ exchange: 'mx-live.dest.test', priority: 10 }]],
    ['nullmx.test', [{ exchange: '', priority: 0 }]],
  ]),
  a: new Map<string, string[]>([
    ['mx-live.dest.test', ['127.0.0.1']],
    ['mx-dead.dest.test', ['127.0.0.6']],
    ['implicit.test', ['127.0.0.1']],
  ]),
};

const resolver: Resolver & TxtResolver = {
  async resolveMx(domain) {
    const records = zone.mx.get(domain);
    if (records) return records;
    if (zone.a.has(domain)) throw dnsError('ENODATA', domain);
    throw dnsError('ENOTFOUND', domain);
  },
  async resolve4(host) {
    const addresses = zone.a.get(host);
    if (addresses) return addresses;
    throw dnsError('ENOTFOUND', host);
  },
  async resolveTxt(name) {
    throw dnsError('ENODATA', name);
  },
  async resolve6(host) {
    throw dnsError(zone.a.has(host) ? 'ENODATA' : 'ENOTFOUND', host);
  },
};

describe('delivery through MX lookup', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
  });

  it('follows MX preference with fallback, uses the implicit MX, and bounces a null-MX domain with a DSN', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    const config = parseConfig(
      {
        hostname: 'mta.rookery.test',
        dataDir: dir.file('data'),
        storage: { path: dir.file('queue.db') },
        smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.1/32'] },
        api: { listen: { host: '127.0.0.1', port: 0 } },
        delivery: { mxPort: sink.port },
      },
      'test',
      {},
    );
    daemon = await startDaemon({ config, logger: createLogger('silent'), resolver });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    for (const to of ['user@dest.test', 'user@implicit.test', 'user@nullmx.test']) {
      await client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId: `<${to}>` }));
    }
    client.close();

    // Two deliveries and the DSN for the null-MX recipient, sent back to app@sender.test.
    await sink.waitForMessages(3, 15_000);
    const to = (address: string) => sink!.messages.filter((m) => m.to.includes(address));
    expect(to('user@dest.test')).toHaveLength(1);
    expect(to('user@implicit.test')).toHaveLength(1);
    expect(to('user@nullmx.test')).toHaveLength(0);
    const dsn = to('app@sender.test');
    expect(dsn).toHaveLength(1);
    expect(dsn[0]!.from).toBe('');
    const report = dsn[0]!.raw.toString();
    expect(report).toMatch(/Final-Recipient: rfc822; ?user@nullmx\.test/i);
    expect(report).toMatch(/Status: 5\.1\.10/);
  });

  it('gives each recipient its own VERP return path when the sender domain has one', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    const secret = 'a-test-secret-of-at-least-32-characters';
    const config = parseConfig(
      {
        hostname: 'mta.rookery.test',
        dataDir: dir.file('data'),
        storage: { path: dir.file('queue.db') },
        smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.1/32'] },
        api: { listen: { host: '127.0.0.1', port: 0 } },
        delivery: { mxPort: sink.port },
        returnPath: { secret, domains: { 'sender.test': {} } },
      },
      'test',
      {},
    );
    daemon = await startDaemon({ config, logger: createLogger('silent'), resolver });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    const to = ['a@dest.test', 'b@dest.test', 'c@dest.test'];
    await client.send('app@sender.test', to, testMessage({ from: 'app@sender.test', to: to[0]!, messageId: '<verp@app.test>' }));
    client.close();

    await sink.waitForMessages(3, 15_000);
    // One transaction per recipient, each from its own tagged return path at bounces.sender.test.
    expect(sink.messages.map((m) => m.to.length)).toEqual([1, 1, 1]);
    const ids = sink.messages.map((m) => parseVerpAddress(m.from, secret, { domains: new Set(['bounces.sender.test']) }));
    expect(ids.every((id) => id !== null)).toBe(true);
    expect(new Set(ids.map((id) => id!.messageId)).size).toBe(1);
    expect(new Set(ids.map((id) => id!.recipientId)).size).toBe(3);
    expect(sink.messages.every((m) => m.from.endsWith('@bounces.sender.test'))).toBe(true);
  });
});
