import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import type { WebhookThread } from '../../src/webhooks/dispatcher-thread.ts';
import { dispatchOnDemand } from '../../src/webhooks/on-demand-dispatching.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { subscribeToEverything } from '../helpers/webhook-events.ts';

/**
 * When the daemon's webhook dispatcher starts: with an endpoint in the store, at once; without,
 * at the first wake or when a look finds one registered meanwhile (through another node). The
 * dispatcher here records what it is asked; the store is a real one.
 */
describe('webhook dispatching on demand', () => {
  let dir: TempDir;
  let store: Store;
  const logger = createLogger('silent');

  beforeEach(async () => {
    dir = await createTempDir('rookery-on-demand');
    store = createSqliteStore({ path: dir.file('queue.db'), logger });
    await store.migrate();
  });
  afterEach(async () => {
    await store.close();
    await dir.remove();
  });

  /** A dispatcher that records its calls; `failStarts` of its first starts fail. */
  function recordingThread(failStarts = 0) {
    const calls: string[] = [];
    const thread: WebhookThread = {
      async start() {
        calls.push('start');
        if (failStarts-- > 0) throw new Error('thread could not load');
      },
      wake: () => calls.push('wake'),
      async stop() {
        calls.push('stop');
      },
    };
    return { thread, calls };
  }

  const hasEndpoint = async () => (await store.listWebhooks(undefined, null, 1)).length > 0;

  it('starts at once when an endpoint is registered already', async () => {
    await subscribeToEverything(store, null);
    const { thread, calls } = recordingThread();
    const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint, logger });
    await dispatching.start();
    expect(calls).toEqual(['start']);
    dispatching.wake();
    await until(() => calls.length === 2, 'the wake passed on');
    await dispatching.stop();
    expect(calls).toEqual(['start', 'wake', 'stop']);
  });

  it('without an endpoint starts nothing until woken, then passes wakes on', async () => {
    const { thread, calls } = recordingThread();
    const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint, logger, lookEveryMs: 60_000 });
    await dispatching.start();
    expect(calls).toEqual([]);
    dispatching.wake();
    dispatching.wake();
    await until(() => calls.length === 2, 'started, then woken');
    expect(calls).toEqual(['start', 'wake']);
    await dispatching.stop();
    expect(calls).toEqual(['start', 'wake', 'stop']);
  });

  it('starts when a look finds an endpoint registered elsewhere, and tries again after a failed start', async () => {
    const { thread, calls } = recordingThread(1);
    const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint, logger, lookEveryMs: 20 });
    await dispatching.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).toEqual([]);
    await subscribeToEverything(store, 'acme');
    await until(() => calls.length === 2, 'a failed start, then one that ran');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Started: the looks end.
    expect(calls).toEqual(['start', 'start']);
    await dispatching.stop();
    expect(calls).toEqual(['start', 'start', 'stop']);
  });

  it('a stop during the start ends it: no thread left running, no look after', async () => {
    await subscribeToEverything(store, null);
    for (const endpoint of [true, false]) {
      const { thread, calls } = recordingThread();
      let answer!: (found: boolean) => void;
      const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint: () => new Promise((resolve) => (answer = resolve)), logger, lookEveryMs: 20 });
      const starting = dispatching.start();
      await dispatching.stop();
      answer(endpoint);
      await starting;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(calls).toEqual([]);
    }
  });

  it('a store that cannot tell at start does not fail the start: the next look asks again', async () => {
    await subscribeToEverything(store, null);
    const { thread, calls } = recordingThread();
    let asked = 0;
    const flaky = async () => (++asked === 1 ? Promise.reject(new Error('database is locked')) : hasEndpoint());
    const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint: flaky, logger, lookEveryMs: 20 });
    await dispatching.start();
    await until(() => calls.length === 1, 'started at a look');
    expect(calls).toEqual(['start']);
    await dispatching.stop();
  });

  it('once stopped never starts, whatever a look or a wake finds', async () => {
    const { thread, calls } = recordingThread();
    const dispatching = dispatchOnDemand({ dispatching: thread, hasEndpoint, logger, lookEveryMs: 20 });
    await dispatching.start();
    await dispatching.stop();
    await subscribeToEverything(store, null);
    dispatching.wake();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).toEqual([]);
  });
});
