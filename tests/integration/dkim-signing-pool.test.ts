import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimConfigSchema } from '../../src/config/dkim-schema.ts';
import { createDkimKeyStore, type DkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { createDkimSigner, type UnsignedReason } from '../../src/sender-domains/signer.ts';
import { createSigningPool, type SigningPool } from '../../src/sender-domains/signing-pool.ts';
import { createPrivateKey } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { systemClock } from '../../src/clock.ts';
import type { SigningKey } from '../../src/sender-domains/signature-fields.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { until } from '../helpers/until.ts';
import { createDkimKeyFiles, fixtureTxtResolver, readKeysOf, verifyWithMailauth, type DkimKeyFile, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { capturingLogger } from '../helpers/log-capture.ts';

/*
 * The signing threads: signatures made there verify, the event loop does not do the RSA work,
 * and a thread that dies or a pool that cannot sign costs time, never a signature.
 */

let files: DkimKeyFiles;
let rsa4096: DkimKeyFile;
let keys: DkimKeyStore;
const pools: SigningPool[] = [];
const config = () => dkimConfigSchema.parse({ domains: { 'example.com': { keys: [{ selector: 'rsa', privateKey: rsa4096.path }] } } });

beforeAll(async () => {
  files = await createDkimKeyFiles();
  rsa4096 = await files.write('rsa4096.pem', 'rsa', 4096);
  keys = createDkimKeyStore({ keys: readKeysOf(config()), resolver: fixtureTxtResolver({}), clock: systemClock, logger: capturingLogger().logger });
  await keys.start();
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await keys.stop();
  await files.remove();
});

function message(i: number, body = 'Hello.'): Buffer {
  return Buffer.from(`From: alice@example.com\r\nTo: bob@example.org\r\nSubject: n${i}\r\nMessage-ID: <m${i}@example.com>\r\n\r\n${body}\r\n`);
}

function setup(workerFile?: URL, size = 2) {
  const { logger, logs } = capturingLogger();
  const pool = createSigningPool({ size, logger, ...(workerFile ? { workerFile } : {}) });
  pools.push(pool);
  const unsigned: UnsignedReason[] = [];
  const signer = createDkimSigner({ keys, config: config(), clock: systemClock, logger, pool, onUnsigned: (r) => unsigned.push(r) });
  return { pool, signer, unsigned, logs };
}

describe('DKIM signing threads', () => {
  it('sign concurrent messages off the event loop, each verifying', async () => {
    const { signer } = setup();
    const records = { 'rsa._domainkey.example.com': rsa4096.record };
    const count = 40;
    const before = process.threadCpuUsage();
    const signed = await Promise.all(Array.from({ length: count }, (_, i) => signer.sign(message(i))));
    const mainThread = process.threadCpuUsage(before);
    for (const [i, result] of signed.entries()) {
      expect(result.domain).toBe('example.com');
      expect(result.message.toString()).toContain(`Subject: n${i}`);
      expect(await verifyWithMailauth(result.message, records)).toMatchObject([{ result: 'pass' }]);
    }
    // Forty RSA-4096 signatures cost about a quarter of a second of CPU or more; made on the
    // threads, this thread spends on them only the copying and the messages: a fraction (about a
    // quarter on a busy 2-core machine, where cache misses raise it; inline it would be all).
    const inline = process.threadCpuUsage();
    for (let i = 0; i < count; i++) await createDkimSigner({ keys, config: config(), clock: systemClock, logger: capturingLogger().logger }).sign(message(i));
    const inlineCost = process.threadCpuUsage(inline);
    const cpu = (u: NodeJS.CpuUsage) => u.user + u.system;
    expect(cpu(mainThread)).toBeLessThan(cpu(inlineCost) / 2);
  });

  it('a thread that dies costs nothing but time: its messages are signed on the event loop, and its slot waits before a new thread', async () => {
    const { pool, signer, unsigned, logs } = setup(new URL('../fixtures/workers/crashing-signing-worker.ts', import.meta.url), 1);
    await pool.start();
    const crashed = await signer.sign(message(1, 'CRASH'));
    expect(crashed.domain).toBe('example.com');
    expect(crashed.message.toString()).toContain('CRASH');
    expect(logs.filter((l) => l.event === 'dkim.worker.failed')).toMatchObject([{ inHand: 1, error: 'exited with code 3' }]);
    // Within the second after: no thread to ask, so signed here without a new one.
    const soon = await signer.sign(message(2));
    expect(soon.domain).toBe('example.com');
    expect(logs.filter((l) => l.event === 'dkim.sign.inline')).toHaveLength(2);

    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const results = await Promise.all([3, 4, 5].map((i) => signer.sign(message(i))));
    expect(results.map((r) => r.domain)).toEqual(['example.com', 'example.com', 'example.com']);
    expect(logs.filter((l) => l.event === 'dkim.sign.inline')).toHaveLength(2);
    expect(unsigned).toEqual([]);
  });

  it('ends a thread that leaves a message unanswered, and signs that message on the event loop', async () => {
    const { logger, logs } = capturingLogger();
    const pool = createSigningPool({ size: 1, logger, workerFile: new URL('../fixtures/workers/crashing-signing-worker.ts', import.meta.url), answerTimeoutMs: 300 });
    pools.push(pool);
    await pool.start();
    const signer = createDkimSigner({ keys, config: config(), clock: systemClock, logger, pool });
    const hung = await signer.sign(message(1, 'HANG'));
    expect(hung.domain).toBe('example.com');
    expect(logs.filter((l) => l.event === 'dkim.worker.failed')).toMatchObject([{ inHand: 1, error: 'no answer within 300 ms' }]);
  });

  it('refuses to start when a thread cannot load its code', async () => {
    const { pool } = setup(new URL('../fixtures/workers/no-such-worker.ts', import.meta.url));
    await expect(pool.start()).rejects.toThrow(/DKIM signing thread could not start/);
  });

  it('makes its threads forget a key unused for ten minutes, and sends it again when it is used again', async () => {
    const clock = manualClock(1_000_000);
    const pool = createSigningPool({ size: 1, logger: capturingLogger().logger, clock, workerFile: new URL('../fixtures/workers/recording-signing-worker.ts', import.meta.url) });
    pools.push(pool);
    await pool.start();
    const requests: Array<{ sent?: number[]; named?: number[]; forget?: number[] }> = [];
    const channel = new BroadcastChannel('signing-requests');
    channel.onmessage = (event) => requests.push((event as MessageEvent).data);
    try {
      // Two keys, as before and after a reload: one file read twice is two KeyObjects.
      const keyOf = (): SigningKey => ({ domain: 'example.com', selector: 'rsa', algorithm: 'rsa-sha256', privateKey: createPrivateKey(rsa4096.pem) });
      const [before, after] = [keyOf(), keyOf()];
      const sign = async (key: SigningKey) => expect((await pool.sign(message(1), [key], clock.now(), null)).failures).toEqual([]);
      await sign(before);
      clock.advance(5 * 60_000);
      await sign(after);
      clock.advance(6 * 60_000);
      await sign(after);
      clock.advance(6 * 60_000);
      await sign(before);
      // Both idle now: dropped, then the first sent again for this message and only named for the next.
      clock.advance(11 * 60_000);
      await sign(before);
      await sign(before);
      await until(() => requests.length === 8, 'eight messages seen');
      const [a, b] = [requests[0]!.named![0]!, requests[1]!.named![0]!];
      expect(requests).toEqual([
        { sent: [a], named: [a] },
        { sent: [b], named: [b] },
        // Eleven minutes after its last use the first key is dropped, before the message that found it idle.
        { forget: [a] },
        { sent: [], named: [b] },
        // Used again, it crosses again; the second key stays, in use 6 minutes ago.
        { sent: [a], named: [a] },
        { forget: [b, a] },
        { sent: [a], named: [a] },
        { sent: [], named: [a] },
      ]);
    } finally {
      channel.close();
    }
  });

  it('once closed, its messages are signed on the event loop', async () => {
    const { pool, signer, unsigned } = setup();
    expect((await signer.sign(message(1))).domain).toBe('example.com');
    await pool.close();
    await pool.close();
    expect((await signer.sign(message(2))).domain).toBe('example.com');
    expect(unsigned).toEqual([]);
  });
});
