import { afterEach, describe, expect, it } from 'vitest';
import type { NewSuppression } from '../../src/storage/suppressions.ts';
import { APP_PASSWORD, envelope, message, queueIdOf, rejections, runCleanups, startHarness, type Harness } from '../helpers/submission-harness.ts';

/**
 * The suppression list at SMTP acceptance, over real sockets: under the reject action a
 * suppressed recipient gets 550 5.7.1 at RCPT while the others of the transaction are taken;
 * under the drop action it is taken and stored bounced, never attempted.
 */

afterEach(runCleanups);

const LISTENER = { host: '127.0.0.1', port: 0, tls: 'none' } as const;

function entry(h: Harness, address: string, tenant: string | null = null): NewSuppression {
  return { tenant, address, reason: 'hard-bounce', source: { kind: 'api', actor: 'ops' }, createdAt: h.clock.now() - 1000, expiresAt: null };
}

async function recipientsOf(h: Harness, reply: string) {
  return (await h.store.listRecipients(queueIdOf(reply))).map((r) => [r.recipient, r.state, r.lastOutcome?.bounceClass ?? null]);
}

describe('SMTP submission: the suppression list', () => {
  it('refuses a suppressed recipient at RCPT with 550 5.7.1 and takes the others of the transaction', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] });
    await h.store.addSuppressions([entry(h, 'Gone@Dest.example'), entry(h, 'acme-only@dest.example', 'acme')]);
    const client = await h.connect();
    const replies = await envelope(client, 'a@app.example', ['kept@dest.example', 'gone@DEST.example', 'acme-only@dest.example']);
    expect(replies.slice(1).map((r) => r.code)).toEqual([250, 250, 550, 250]);
    expect(replies[3]!.text).toBe('5.7.1 Recipient suppressed');
    const accepted = await client.data(message('a@app.example', 'kept@dest.example'));
    expect(accepted.code).toBe(250);
    // Another tenant's entry does not touch mail of no tenant.
    expect(await recipientsOf(h, accepted.text)).toEqual([
      ['kept@dest.example', 'queued', null],
      ['acme-only@dest.example', 'queued', null],
    ]);
    expect(await rejections(h.metrics, 'RECIPIENT_SUPPRESSED')).toBe(1);
    expect((await h.metrics.recipientsSuppressed.get()).values).toEqual([expect.objectContaining({ labels: { door: 'smtp', action: 'reject' }, value: 1 })]);
    expect(h.logs.find((l) => l.event === 'smtp.recipient.rejected')).toMatchObject({ reason: 'RECIPIENT_SUPPRESSED', recipient: 'gone@DEST.example' });

    // Every recipient refused: the transaction has none, and DATA is refused as SMTP refuses it.
    expect((await client.send('MAIL FROM:<a@app.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<gone@dest.example>')).code).toBe(550);
    expect((await client.data(message('a@app.example', 'gone@dest.example'))).code).toBeGreaterThanOrEqual(500);
    expect((await h.store.countByState()).queued).toBe(2);
    expect((await client.send('QUIT')).code).toBe(221);
  });

  it('answers the RCPTs of many sessions at once, each its own', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] });
    await h.store.addSuppressions(Array.from({ length: 10 }, (_, i) => entry(h, `gone${i}@dest.example`)));
    const sessions = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const client = await h.connect();
        const replies = await envelope(client, 'a@app.example', [`gone${i}@dest.example`, `kept${i}@dest.example`]);
        return replies.slice(2).map((r) => r.code);
      }),
    );
    expect(sessions).toEqual(Array.from({ length: 20 }, (_, i) => (i < 10 ? [550, 250] : [250, 250])));
    expect(await rejections(h.metrics, 'RECIPIENT_SUPPRESSED')).toBe(10);
  });

  it('takes a suppressed recipient under the drop action and stores it bounced, never attempted', async () => {
    const h = await startHarness({ listeners: [LISTENER], trustedNetworks: ['127.0.0.0/8'] }, { config: { suppression: { action: 'drop' } } });
    await h.store.addSuppressions([entry(h, 'gone@dest.example')]);
    const client = await h.connect();
    const replies = await envelope(client, 'a@app.example', ['kept@dest.example', 'gone@dest.example']);
    expect(replies.slice(1).map((r) => r.code)).toEqual([250, 250, 250]);
    const accepted = await client.data(message('a@app.example', 'kept@dest.example'));
    expect(accepted.code).toBe(250);
    expect(await recipientsOf(h, accepted.text)).toEqual([
      ['kept@dest.example', 'queued', null],
      ['gone@dest.example', 'bounced', 'suppressed'],
    ]);
    const [row] = (await h.store.listRecipients(queueIdOf(accepted.text))).slice(1);
    expect(row!.lastOutcome).toMatchObject({ disposition: 'permanent', stage: 'queue', enhanced: '5.7.1', response: expect.stringMatching(/hard-bounce/) });
    const counted = await h.metrics.recipientsSuppressed.get();
    expect(counted.values).toEqual([expect.objectContaining({ labels: { door: 'smtp', action: 'drop' }, value: 1 })]);
    expect(await rejections(h.metrics, 'RECIPIENT_SUPPRESSED')).toBe(0);
  });

  it("follows the action of the user's tenant, and its list only", async () => {
    const users = [{ username: 'app', password: APP_PASSWORD, allowedSenders: ['*'], tenant: 'acme' }];
    const tenants = { acme: { senderDomains: ['acme.example'], suppression: { action: 'drop' as const } } };
    const h = await startHarness({ listeners: [LISTENER], users }, { config: { tenants } });
    await h.store.addSuppressions([entry(h, 'gone@dest.example', 'acme'), entry(h, 'none-only@dest.example')]);
    const client = await h.connect();
    await client.ehlo();
    expect((await client.authPlain('app', APP_PASSWORD)).code).toBe(235);
    expect((await client.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<gone@dest.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<none-only@dest.example>')).code).toBe(250);
    const accepted = await client.data(message('news@acme.example', 'gone@dest.example'));
    expect(await recipientsOf(h, accepted.text)).toEqual([
      ['gone@dest.example', 'bounced', 'suppressed'],
      ['none-only@dest.example', 'queued', null],
    ]);
  });
});
