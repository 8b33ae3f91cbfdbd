import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { createControlApi, type ControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * A bulk change works for longer than the listener's idle timeout without a byte on its socket:
 * its client still gets the answer (the idle timeout is for dead peers, not for work under way).
 */

const logger = createLogger('silent');
const token = generateApiToken();
let dir: TempDir | undefined;
let store: Store | undefined;
let api: ControlApi | undefined;

afterEach(async () => {
  await api?.stop();
  await store?.close();
  await dir?.remove();
  api = store = dir = undefined;
});

describe('a long bulk change', () => {
  it('answers a bounce that outlasts the idle timeout', { timeout: 60_000 }, async () => {
    dir = await createTempDir('rookery-long-requests');
    store = createSqliteStore({ path: dir.file('queue.db'), clock: { now: () => Date.now() }, logger });
    await store.migrate();
    const now = Date.now();
    // 16,000 queued recipients: 32 chunks of the cancellation, each followed by a pause as long.
    await store.enqueue(Array.from({ length: 160 }, (_, m) => newMessage(`big-${m}`, now, { recipients: Array.from({ length: 100 }, (_, i) => `r${m}-${i}@big.test`) })));
    api = createControlApi({
      config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'ops', role: 'operator', hash: hashApiToken(token) }], authFailures: { max: 10, window: 60_000 } } },
      store,
      logger,
      metrics: new Metrics({ processMetrics: false }),
      checks: { storage: () => store!.ping() },
      // Far shorter than the bounce takes (without the lift, the socket is closed mid-work), yet
      // longer than a loaded machine may take to read and authenticate the request before it.
      timeouts: { idleMs: 250 },
      ...apiSources({ store }),
    });
    const { host, port } = await api.start();
    const res = await fetch(`http://${host}:${port}/v1/queue/bounce`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: { domain: 'big.test' }, reason: 'spam run', dsn: false }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ cancelled: 16_000, inDelivery: 0 });
  });
});
