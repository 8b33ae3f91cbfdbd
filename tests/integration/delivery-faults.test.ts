import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startDaemon, type Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { RecipientRow, Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { startSmtpSink, type SinkReply, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage, testSubmission } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

/**
 * Faults around one delivery, with the daemon in this process on a real SQLite queue and a
 * loopback sink that holds its reply to the final dot for as long as a test needs: an attempt
 * longer than the lease, a stop that runs out of time, a store that refuses the result (for longer
 * than the lease).
 */

/** A promise the test resolves when it chooses. */
function latch() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('delivery under faults', () => {
  let dir: TempDir;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;
  let logs: Array<Record<string, unknown>>;
  const cleanups: Array<() => unknown> = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-delivery-faults');
    logs = [];
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await sink?.close();
    await dir.remove();
  });

  const queuePath = () => dir.file('queue.db');

  /** A sink whose reply to each message's final dot waits for `reply` (after `onData` ran). */
  async function holdingSink(reply: () => Promise<SinkReply | undefined>, onData: () => void = () => {}): Promise<SmtpSink> {
    sink = await startSmtpSink({ script: { onData: () => (onData(), reply()) } });
    return sink;
  }

  async function start(extra: ConfigInput = {}, store?: Store, clock?: Clock): Promise<Daemon> {
    const input = testDaemonConfig({ dir: dir.path, sink, extra: { ...extra, storage: { path: queuePath() } } });
    const captured = capturingLogger();
    logs = captured.logs;
    daemon = await startDaemon({ resolved: resolveConfig(input, { source: 'test', env: {} }), logger: captured.logger, store, clock, resolver: createFixtureResolver({}) });
    return daemon;
  }

  async function submit(d: Daemon, messageId: string): Promise<string> {
    const accepted = await d.submit(testSubmission(messageId));
    return accepted.id;
  }

  /** Another connection to the queue file, as another process (or node) would have. */
  async function observer(): Promise<Store> {
    const store = createSqliteStore({ path: queuePath(), logger: createLogger('silent') });
    await store.migrate();
    cleanups.push(() => store.close());
    return store;
  }

  async function rowOf(store: Store, messageId: string): Promise<RecipientRow> {
    return (await store.listRecipients(messageId))[0]!;
  }

  it('renews the lease of an attempt that outlasts it, so no other node takes the row', { timeout: 30_000 }, async () => {
    const dataSeen = latch();
    const accept = latch();
    await holdingSink(() => accept.promise.then(() => undefined), dataSeen.open);
    const d = await start({ delivery: { lease: '3s' } });
    const id = await submit(d, '<slow@app.test>');
    await dataSeen.promise;

    // Another node looks for work for more than two lease periods while the transaction waits.
    const other = await observer();
    const end = Date.now() + 7_000;
    while (Date.now() < end) {
      expect(await other.claimDue({ now: Date.now(), limit: 10, owner: 'node-b', leaseMs: 3_000 })).toEqual([]);
      await sleep(250);
    }
    // Renewed in time: the daemon never had to claim its own row again either.
    expect(logs.filter((l) => l.event === 'scheduler.lease.reclaimed')).toEqual([]);
    accept.open();
    await until(async () => (await rowOf(other, id)).state === 'delivered', 'the delivery to be recorded');
    expect(await rowOf(other, id)).toMatchObject({ state: 'delivered', attempts: 1 });
    expect(sink!.messages).toHaveLength(1);
  });

  it('does not look at the queue while every delivery slot is busy', async () => {
    const calls = { claimDue: 0, nextDueAt: 0 };
    const store = createSqliteStore({ path: queuePath(), logger: createLogger('silent') });
    // The real store, with its queue reads counted.
    const counted = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'claimDue' && prop !== 'nextDueAt') return value;
        return (...args: unknown[]) => {
          calls[prop]++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const firstData = latch();
    const accept = latch();
    await holdingSink(() => accept.promise.then(() => undefined), firstData.open);
    const d = await start({ delivery: { concurrency: 1 } }, counted);
    const ids = [await submit(d, '<busy-1@app.test>'), await submit(d, '<busy-2@app.test>'), await submit(d, '<busy-3@app.test>')];
    await firstData.promise;

    // The one slot is busy and two messages are due: nothing to do but wait for the slot.
    calls.claimDue = 0;
    calls.nextDueAt = 0;
    await sleep(1_000);
    expect(calls.claimDue + calls.nextDueAt).toBeLessThanOrEqual(2);

    accept.open();
    await sink!.waitForMessages(3, 15_000);
    const other = await observer();
    await until(async () => (await Promise.all(ids.map((id) => rowOf(other, id)))).every((r) => r.state === 'delivered'), 'three deliveries');
  });

  it('cuts the deliveries still running when the drain time is up, and records them as attempts', async () => {
    const dataSeen = latch();
    const never = latch();
    cleanups.push(never.open);
    await holdingSink(() => never.promise.then(() => undefined), dataSeen.open);
    const d = await start({ delivery: { shutdownTimeout: '300ms' } });
    const id = await submit(d, '<cut@app.test>');
    await dataSeen.promise;

    await d.stop();
    daemon = undefined;
    expect(logs.some((l) => l.event === 'scheduler.drain.timeout')).toBe(true);
    const store = await observer();
    // Not handed back as if never tried: the final dot was sent, so it may have been delivered.
    expect(await rowOf(store, id)).toMatchObject({
      state: 'queued',
      attempts: 1,
      lastOutcome: { disposition: 'transient', stage: 'dot', response: expect.stringMatching(/interrupted by shutdown.*possible duplicate/) },
    });
    expect(await store.listEvents(id)).toHaveLength(1);
  });

  it('retries recording a result the store refused, and never sends the message again', async () => {
    // Another process holds SQLite's write lock from the moment the message arrives.
    let lock: DatabaseSync | undefined;
    cleanups.push(() => lock?.close());
    await holdingSink(async () => {
      lock = new DatabaseSync(queuePath());
      lock.exec('BEGIN IMMEDIATE');
      return undefined;
    });
    const store = createSqliteStore({ path: queuePath(), logger: createLogger('silent'), busyTimeoutMs: 50 });
    const d = await start({}, store);
    const id = await submit(d, '<refused@app.test>');

    await until(() => logs.some((l) => l.event === 'delivery.record.retry'), 'a retry to record the result');
    lock!.exec('ROLLBACK');
    const other = await observer();
    await until(async () => (await rowOf(other, id)).state === 'delivered', 'the result to be recorded');
    expect(await rowOf(other, id)).toMatchObject({ state: 'delivered', attempts: 1 });
    expect((await other.listEvents(id)).map((e) => e.outcome.disposition)).toEqual(['delivered']);
    expect(sink!.messages).toHaveLength(1);
  });

  it('does not send a message whose claim another node took over while its delivery waited for a connection', { timeout: 30_000 }, async () => {
    const clock = manualClock();
    const firstData = latch();
    const accept = latch();
    await holdingSink(() => accept.promise.then(() => undefined), firstData.open);
    // One connection per path: the second message waits for the first one's.
    const d = await start({ delivery: { lease: '3s' }, shaping: { default: { maxConnections: 1 } } }, createSqliteStore({ path: queuePath(), clock, logger: createLogger('silent') }), clock);
    await submit(d, '<first@app.test>');
    await firstData.promise;
    const second = await submit(d, '<second@app.test>');
    const other = await observer();
    await until(async () => (await rowOf(other, second)).state === 'delivering', 'the second message to be claimed');

    // Another node takes both rows over once their leases ran out (renewals may come between: try again).
    let taken: string[] = [];
    await until(async () => {
      clock.advance(4_000);
      taken = [...taken, ...(await other.claimDue({ now: clock.now(), limit: 10, owner: 'node-b', leaseMs: 60_000 })).map((r) => r.messageId)];
      return taken.includes(second);
    }, 'the other node to take the second message over');
    await until(() => logs.some((l) => l.event === 'scheduler.lease.lost' && JSON.stringify(l.recipients).includes(second)), 'this node to see the claim lost');

    accept.open();
    await until(() => logs.some((l) => l.event === 'delivery.stale' && l.messageId === second), 'the second delivery to end');
    expect(sink!.messages.map((m) => m.messageId)).toEqual(['<first@app.test>']);
    expect(await rowOf(other, second)).toMatchObject({ state: 'delivering', attempts: 0 });
  });

  it('bounces the recipients of a transaction whose other recipient another node took over, each with its DSN in the same commit', { timeout: 30_000 }, async () => {
    const clock = manualClock();
    const rcptSeen = latch();
    const answer = latch();
    sink = await startSmtpSink({
      script: {
        onRcptTo: async (address) => {
          if (!address.endsWith('@dest.test')) return undefined;
          rcptSeen.open();
          await answer.promise;
          return { code: 550, message: '5.1.1 no such user' };
        },
      },
    });
    const d = await start({ delivery: { lease: '3s' } }, createSqliteStore({ path: queuePath(), clock, logger: createLogger('silent') }), clock);
    const { id } = await d.submit({
      sender: 'app@sender.test',
      recipients: ['gone1@dest.test', 'gone2@dest.test'],
      body: testMessage({ from: 'app@sender.test', to: 'gone1@dest.test', messageId: '<bounce@app.test>' }),
      submitter: null,
      source: 'http',
      clientAddress: null,
    });
    await rcptSeen.promise;

    // While the transaction waits for its replies, another node takes one of its rows over.
    const other = await observer();
    let taken: number[] = [];
    await until(async () => {
      clock.advance(4_000);
      taken = (await other.claimDue({ now: clock.now(), limit: 1, owner: 'node-b', leaseMs: 60_000 })).map((r) => r.recipientId);
      return taken.length > 0;
    }, 'the other node to take a row over');
    answer.open();

    const rows = () => other.listRecipients(id);
    await until(async () => (await rows()).some((r) => r.state === 'bounced'), 'the bounce to be recorded');
    const [kept] = (await rows()).filter((r) => r.recipientId !== taken[0]);
    const [lost] = (await rows()).filter((r) => r.recipientId === taken[0]);
    expect(kept).toMatchObject({ state: 'bounced', attempts: 1 });
    expect(lost).toMatchObject({ state: 'delivering', attempts: 0 });
    // The DSN reports the bounce that was recorded, and only it.
    await until(() => sink!.messages.some((m) => m.from === ''), 'the DSN to arrive');
    const dsns = sink!.messages.filter((m) => m.from === '');
    expect(dsns).toHaveLength(1);
    const reported = [...dsns[0]!.raw.toString().matchAll(/^Final-Recipient: rfc822; (\S+)/gm)].map((m) => m[1]);
    expect(reported).toEqual([kept!.recipient]);
  });

  it('records a result retried past the lease under the claim this node took over meanwhile, and sends the message once', { timeout: 30_000 }, async () => {
    const clock = manualClock();
    // Another process takes SQLite's write lock when the first message arrives: neither its result
    // nor a lease renewal can be written.
    let lock: DatabaseSync | undefined;
    cleanups.push(() => lock?.close());
    await holdingSink(async () => {
      if (!lock) {
        lock = new DatabaseSync(queuePath());
        lock.exec('BEGIN IMMEDIATE');
      }
      return undefined;
    });
    const store = createSqliteStore({ path: queuePath(), clock, logger: createLogger('silent'), busyTimeoutMs: 50 });
    const d = await start({}, store, clock);
    const id = await submit(d, '<outage@app.test>');
    // Retries far enough apart for the claim below to come between two of them.
    await until(() => logs.some((l) => l.event === 'delivery.record.retry' && Number(l.retryInMs) >= 800), 'retries a second apart');

    // The lease ran out during the outage; once the store is back, this node's next claim takes
    // the row over before the result is tried again.
    clock.advance(61_000);
    lock!.exec('ROLLBACK');
    await submit(d, '<after-outage@app.test>');
    await until(() => logs.some((l) => l.event === 'scheduler.lease.reclaimed'), 'the row to be claimed again');
    const other = await observer();
    await until(async () => (await rowOf(other, id)).state === 'delivered', 'the result to be recorded');
    expect(logs.filter((l) => l.event === 'delivery.stale')).toEqual([]);
    expect(await rowOf(other, id)).toMatchObject({ state: 'delivered', attempts: 1 });
    expect(sink!.messages.filter((m) => m.messageId === '<outage@app.test>')).toHaveLength(1);
  });
});
