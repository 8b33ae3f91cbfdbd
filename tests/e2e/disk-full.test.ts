import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { createFaultHarness, type FaultHarness } from '../helpers/fault-harness.ts';
import { mountSmallDisk, requireSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';
import { until } from '../helpers/until.ts';

const canMount = await requireSmallDisk();

const SESSIONS = 8;

/**
 * The disk under the SQLite queue fills up under load, then space comes back. While it is full
 * the daemon refuses what it cannot store with a temporary reply and /readyz says the storage
 * cannot write; once space is back, the same process takes mail again, and every message it
 * answered 250 is delivered.
 */
describe.skipIf(!canMount)('disk full under the SQLite queue', () => {
  let harness: FaultHarness;
  let disk: SmallDisk;

  beforeEach(async () => {
    harness = await createFaultHarness('disk-full');
    disk = await mountSmallDisk(64 << 20);
  });
  afterEach(async () => {
    await harness.close();
    await disk.remove();
  });

  it('451 while the disk is full, /readyz 503, and recovery the moment space returns', { timeout: 120_000 }, async () => {
    const token = generateApiToken();
    const { daemon, load } = await harness.start(
      { storage: { path: `${disk.path}/queue.db` }, api: { tokens: [{ name: 'app', role: 'admin', hash: hashApiToken(token) }] } },
      SESSIONS,
    );
    await load.moreAcknowledged(100);

    disk.fill();
    await load.moreRefused(3 * SESSIONS);
    const full = await harness.readiness();
    expect(full.status).toBe(503);
    expect(full.checks.storage).toEqual({ ok: false, error: expect.stringMatching(/full/) });
    // Once the disk space watch has read it (every 5 s), new transactions are refused at MAIL FROM, before their data.
    await until(async () => load.refusals.has('452 4.3.1'), 'MAIL FROM refused with 452 4.3.1', 15_000);
    expect((await harness.readiness()).checks.disk).toEqual({ ok: false, error: expect.stringMatching(/^disk space low: new mail refused until \d+ bytes are free/) });
    const sent = await fetch(`http://${daemon.api.host}:${daemon.api.port}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'app@sender.test', to: 'user@dest.test', subject: 'Hello', text: 'Hi' }),
    });
    expect(sent.status).toBe(503);
    expect(await sent.json()).toMatchObject({ code: 'STORAGE_LOW' });

    disk.free();
    await until(async () => (await harness.readiness()).status === 200, '/readyz 200 once space is back');
    await load.moreAcknowledged(100);

    await harness.expectEveryAcknowledgedDelivered();
    // Refused while full with a temporary reply (the client keeps its copy), never a bounce.
    expect([...load.refusals.keys()].filter((k) => !/^45[12] /.test(k))).toEqual([]);
    // Deliveries made while the disk was full were recorded once it had room, not sent again.
    const { messages } = harness.sink;
    expect(messages).toHaveLength(new Set(messages.map((m) => m.messageId)).size);
  });
});
