import { rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { startSendApi, type Answer, type CallOptions } from '../helpers/send-api.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * The edges of sending over HTTP, on the embedded queue: what a replay answers once the disk
 * failed, slow and oversized requests, scheduled sends and DKIM expiry, the raw door's header
 * rules, and requests of odd shape.
 */

const logger = createLogger('silent');
const token = generateApiToken();

const CONFIG: ConfigInput = {
  smtp: { maxRecipients: 5, maxMessageBytes: 64 * 1024 },
  ips: [{ address: '127.0.0.2' }],
  api: { tokens: [{ name: 'app', role: 'sender', tenant: 'app', hash: hashApiToken(token), allowedSenders: ['*@app.example'] }] },
  tenants: { app: { senderDomains: ['*'] } },
};

const simple = (overrides: Record<string, unknown> = {}) => ({ from: 'news@app.example', to: 'user@dest.example', subject: 'Hello', text: 'Hi there', ...overrides });

describe('sending over HTTP: limits and edges', () => {
  let dir: TempDir;
  let store: Store;
  const closing: Array<() => Promise<unknown>> = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-api-send-limits');
    store = createSqliteStore({ path: dir.file('queue.db'), logger });
    await store.migrate();
  });

  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close();
    await store.close();
    await dir.remove();
  });

  async function startApi(config: ConfigInput = CONFIG) {
    const started = await startSendApi({ store, config, logger });
    closing.push(() => started.api.stop());
    return { ...started, call: (path: string, options: Omit<CallOptions, 'token'> = {}): Promise<Answer> => started.call(path, { token, ...options }) };
  }

  it('never replays a 202 for a commit the disk did not confirm', async () => {
    const { call } = await startApi();
    await rm(dir.file('queue.db-wal'));
    const first = await call('/v1/messages', { json: simple(), key: 'unsynced' });
    expect(first).toMatchObject({ status: 503, body: { code: 'STORAGE_FAILED' } });
    const again = await call('/v1/messages', { json: simple(), key: 'unsynced' });
    expect(again).toMatchObject({ status: 503, body: { code: 'STORAGE_FAILED' } });
    expect(again.headers.get('idempotent-replayed')).toBeNull();
  });
});
