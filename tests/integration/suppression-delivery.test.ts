import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SinkReply, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The suppression list with a whole daemon (in this process) delivering to a loopback sink:
 * permanent failures the rules take add the recipient (at once for an unknown user, after three
 * in a row for a full mailbox, never for a policy refusal), the next message to it is refused,
 * and under the drop action a suppressed recipient gets nothing while the others are delivered.
 */

const token = generateApiToken();

describe('the suppression list in delivery', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: Daemon;
  let store: Store;
  /** What the sink answers to RCPT for an address; undefined accepts. */
  let answer: (address: string) => SinkReply | undefined;
  let post: (to: string[], from?: string) => Promise<{ status: number; body: any }>;

  afterEach(async () => {
    // The daemon closes the store it was given.
    for (const stop of [() => daemon?.stop(), () => sink?.close(), () => dir?.remove()]) await stop();
  });

  async function start(): Promise<void> {
    dir = await createTempDir('rookery-suppression-delivery');
    answer = () => undefined;
    sink = await startSmtpSink({ script: { onRcptTo: (address) => answer(address) } });
    store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    daemon = await startTestDaemon({
      dir,
      sink,
      store,
      resolver: createFixtureResolver({ 'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] }, 'mx.dest.test': { a: ['127.0.0.1'] } }),
      config: {
        ips: [{ address: '127.0.0.2' }],
        // No bounce reports: the senders' domains have no mail servers here.
        delivery: { dsn: { enabled: false }, retry: { initial: 60_000 } },
        api: {
          listen: { host: '127.0.0.1', port: 0 },
          tokens: [
            { name: 'acme-app', role: 'sender', tenant: 'acme', hash: hashApiToken(token), allowedSenders: ['*@acme.test'] },
            { name: 'beta-app', role: 'sender', tenant: 'beta', hash: hashApiToken(`${token}-beta`), allowedSenders: ['*@beta.test'] },
          ],
        },
        tenants: { acme: { senderDomains: ['acme.test'] }, beta: { senderDomains: ['beta.test'], suppression: { action: 'drop' } } },
      },
    });
    const { host, port } = daemon.apiAddress();
    post = async (to, from = 'news@acme.test') => {
      const res = await fetch(`http://${host}:${port}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${from.endsWith('@beta.test') ? `${token}-beta` : token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from, to, subject: 'hello', text: 'hello' }),
      });
      return { status: res.status, body: await res.json() };
    };
  }

  /** Sends one message to `to` and waits until its recipient has a final state. */
  async function sendAndSettle(to: string): Promise<string> {
    const sent = await post([to]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(202);
    await until(async () => (await store.listRecipients(sent.body.id)).every((r) => r.state === 'delivered' || r.state === 'bounced'), `the result for ${to}`);
    return sent.body.id as string;
  }

  it('suppresses an unknown user at once, never a policy refusal, and refuses the next message to it', async () => {
    await start();
    answer = (address) => {
      if (address.startsWith('gone@')) return { code: 550, message: '5.1.1 <gone@dest.test>: Recipient address rejected: User unknown' };
      if (address.startsWith('blocked@')) return { code: 550, message: '5.7.1 Message rejected due to local policy' };
      return undefined;
    };
    const sent = await post(['gone@dest.test', 'blocked@dest.test', 'kept@dest.test']);
    expect(sent.status).toBe(202);
    const [delivered] = await sink.waitForMessages(1, 20_000);
    expect(delivered!.to).toEqual(['kept@dest.test']);

    await until(async () => (await store.getSuppression('acme', 'gone@dest.test', Date.now())) !== null, 'the hard-bounce entry');
    const entry = await store.getSuppression('acme', 'GONE@dest.test', Date.now());
    const [gone] = (await store.listRecipients(sent.body.id)).filter((r) => r.recipient === 'gone@dest.test');
    expect(entry).toMatchObject({ tenant: 'acme', reason: 'hard-bounce', expiresAt: null, source: { kind: 'attempt', messageId: sent.body.id, recipientId: gone!.recipientId } });
    expect(await store.getSuppression('acme', 'blocked@dest.test', Date.now())).toBeNull();
    expect(await store.getSuppression(null, 'gone@dest.test', Date.now())).toBeNull();

    const refused = await post(['gone@dest.test']);
    expect(refused).toMatchObject({ status: 422, body: { code: 'RECIPIENT_SUPPRESSED' } });
  });

  it('suppresses a full mailbox only after three permanent failures in a row', async () => {
    await start();
    let full = true;
    answer = (address) => (address.startsWith('full@') && full ? { code: 552, message: '5.2.2 Mailbox full' } : undefined);
    const suppressed = () => store.getSuppression('acme', 'full@dest.test', Date.now());
    // The rule reads the results once each is recorded; give it the time to, each time.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

    await sendAndSettle('full@dest.test');
    await sendAndSettle('full@dest.test');
    full = false;
    await sendAndSettle('full@dest.test');
    full = true;
    await sendAndSettle('full@dest.test');
    await sendAndSettle('full@dest.test');
    await settle();
    // Two in a row since the delivery: not yet.
    expect(await suppressed()).toBeNull();

    const third = await sendAndSettle('full@dest.test');
    await until(async () => (await suppressed()) !== null, 'the entry after the third failure in a row');
    expect(await suppressed()).toMatchObject({ reason: 'hard-bounce', source: { kind: 'attempt', messageId: third } });
  });

  it('delivers nothing to a suppressed recipient under the drop action while the others are delivered', async () => {
    await start();
    await store.addSuppressions([{ tenant: 'beta', address: 'dropped@dest.test', reason: 'complaint', source: null, createdAt: Date.now() - 1000, expiresAt: null }]);
    const sent = await post(['dropped@dest.test', 'kept@dest.test'], 'news@beta.test');
    expect(sent.status).toBe(202);
    expect(sent.body.recipients.map((r: { status: string }) => r.status)).toEqual(['dropped', 'queued']);
    const [delivered] = await sink.waitForMessages(1, 20_000);
    expect(delivered!.to).toEqual(['kept@dest.test']);
    await until(async () => (await store.listRecipients(sent.body.id)).some((r) => r.state === 'delivered'), 'the delivery recorded');
    const rows = await store.listRecipients(sent.body.id);
    expect(rows.map((r) => [r.recipient, r.state, r.attempts, r.lastOutcome?.bounceClass])).toEqual([
      ['dropped@dest.test', 'bounced', 0, 'suppressed'],
      ['kept@dest.test', 'delivered', 1, 'none'],
    ]);
    // Time for a stray delivery to show up, were there one.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.messages.flatMap((m) => m.to)).toEqual(['kept@dest.test']);
  });
});
