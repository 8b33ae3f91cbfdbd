import { afterEach, describe, expect, it } from 'vitest';
import { PausedMail } from '../../src/engine/paused-mail.ts';
import { QueuePauses } from '../../src/engine/queue-pauses.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * PausedMail on a real SQLite queue with QueuePauses wired as the daemon wires them: a pause
 * parks a backlog larger than one chunk, a sweep parks what came in since, a resume releases it
 * all and wakes the scheduler, and a start releases what a stopped node left parked.
 */

const T0 = 1_700_000_000_000;
/** More than one chunk (2,000) of each move. */
const BACKLOG = 4_500;

describe('paused mail', () => {
  let dir: TempDir | undefined;
  const stores: Store[] = [];
  const parts: PausedMail[] = [];

  afterEach(async () => {
    await Promise.all(parts.splice(0).map((p) => p.stop()));
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await dir?.remove();
    dir = undefined;
  });

  async function setup() {
    dir ??= await createTempDir('rookery-paused-mail');
    const store = createSqliteStore({ path: dir.file('queue.db'), logger: capturingLogger('silent').logger });
    await store.migrate();
    stores.push(store);
    const clock = manualClock(T0);
    const { logger, logs } = capturingLogger('debug');
    let wakes = 0;
    let parking: Promise<void> = Promise.resolve();
    const parked = new PausedMail({ store, clock, logger, pauses: () => pauses.current(), onReleased: () => wakes++, sweepMs: 3_600_000 });
    parts.push(parked);
    const pauses = new QueuePauses({ store, clock, logger, metrics: new Metrics(), onPaused: (p) => void (parking = parked.park(p)), onEnded: () => void parked.release() });
    const claim = async () => (await store.claimDue({ now: clock.now(), limit: BACKLOG * 2, owner: 'node-a', leaseMs: 60_000 })).map((c) => c.recipient);
    return { store, clock, logs, parked, pauses, claim, wakes: () => wakes, parking: () => parking };
  }

  it('parks a paused backlog in chunks, then what came in since at a sweep, and releases it all on a resume', async () => {
    const { store, clock, logs, parked, pauses, claim, wakes, parking } = await setup();
    const backlog = Array.from({ length: BACKLOG }, (_, i) => newMessage(`backlog-${i}`, T0 - 60_000, { recipients: [`r${i}@paused.test`] }));
    await store.enqueue([...backlog, newMessage('open', T0, { recipients: ['a@open.test'] })]);

    await pauses.pause({ scope: { kind: 'domain', domain: 'paused.test' }, reason: 'provider incident', by: 'night-shift', createdAt: T0, until: null });
    await parking();
    expect(logs.filter((l) => l.event === 'queue.parked').map((l) => [l.scope, l.recipients])).toEqual([['domain paused.test', BACKLOG]]);
    // Claims, even without the pause filter, see the open domain only.
    expect(await claim()).toEqual(['a@open.test']);

    clock.advance(1_000);
    await store.enqueue([newMessage('late', clock.now(), { recipients: ['late@paused.test'] })]);
    await parked.sweep();
    expect(await claim()).toEqual([]);

    expect(await pauses.resume({ kind: 'domain', domain: 'paused.test' }, 'night-shift')).not.toBeNull();
    await parked.release();
    expect(logs.filter((l) => l.event === 'queue.released').map((l) => l.recipients)).toEqual([BACKLOG + 1]);
    expect(wakes()).toBe(3);
    const claimed = await claim();
    expect(claimed).toHaveLength(BACKLOG + 1);
    expect(claimed.at(-1)).toBe('late@paused.test');
  });

  it('releases the parked mail of a pause that ran out at the next sweep', async () => {
    const { store, clock, pauses, parked, claim } = await setup();
    await store.enqueue([newMessage('a', T0, { recipients: ['a@timed.test'] })]);
    await pauses.pause({ scope: { kind: 'domain', domain: 'timed.test' }, reason: 'maintenance', by: 'night-shift', createdAt: T0, until: T0 + 5_000 });
    await parked.sweep();
    expect(await claim()).toEqual([]);
    clock.advance(5_000);
    expect(await claim()).toEqual([]);
    // The sweep sees the pause gone: a release runs next in line.
    await parked.sweep();
    let claimed: string[] = [];
    await until(async () => (claimed = await claim()).length > 0, 'the release after the sweep');
    expect(claimed).toEqual(['a@timed.test']);
  });

  it('releases at its start the mail a pause that ended while it was stopped left parked, and parks that of the pauses in force', async () => {
    const { store, clock, pauses, parked, claim } = await setup();
    await store.enqueue([newMessage('a', T0, { recipients: ['a@ended.test'] }), newMessage('b', T0, { recipients: ['b@held.test'] })]);
    for (const domain of ['ended.test', 'held.test']) await store.setPause({ scope: { kind: 'domain', domain }, reason: 'r', by: 'x', createdAt: T0, until: null }, T0);
    expect(await store.parkPaused({ kind: 'domain', domain: 'ended.test' }, T0 + 1, T0, 10)).toBe(1);
    // Resumed by a node that stopped before it released anything.
    await store.deletePause({ kind: 'domain', domain: 'ended.test' }, T0);

    await pauses.load();
    parked.start();
    await parked.sweep();
    await parked.release();
    clock.advance(1);
    expect(await claim()).toEqual(['a@ended.test']);
    expect(await store.parkPaused({ kind: 'domain', domain: 'held.test' }, T0 + 10, T0, 10)).toBe(0);
  });
});
