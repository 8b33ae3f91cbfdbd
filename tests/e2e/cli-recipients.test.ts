import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';
import { runRookery, type CliRun } from '../helpers/rookery-cli.ts';
import { startSendApi } from '../helpers/send-api.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

/**
 * `rookery recipients show|erase` as an operator runs them: the real command in its own process
 * against a real control API on loopback over a SQLite queue.
 */

const logger = createLogger('silent');
const tokens = { admin: generateApiToken(), operator: generateApiToken() };
const CONFIG: ConfigInput = {
  api: {
    tokens: [
      { name: 'admin', role: 'admin', hash: hashApiToken(tokens.admin) },
      { name: 'ops', role: 'operator', hash: hashApiToken(tokens.operator) },
    ],
  },
  tenants: { acme: { senderDomains: ['acme.test'] } },
};

const temp = await createTempDir('rookery-cli-recipients');
let store: Store;
let api: ControlApi;
let apiUrl: string;

beforeAll(async () => {
  store = createSqliteStore({ path: temp.file('queue.db'), logger });
  await store.migrate();
  const started = await startSendApi({ store, config: CONFIG, logger });
  api = started.api;
  apiUrl = `http://${started.host}:${started.port}`;
  await store.enqueue([newMessage('cli-rcpt', Date.parse('2026-03-01T10:00:00Z'), { recipients: ['Erin@dest.test'], tenant: 'acme' })]);
  await store.addSuppressions([{ tenant: 'acme', address: 'Erin@dest.test', reason: 'complaint', source: null, createdAt: Date.parse('2026-03-01T11:00:00Z'), expiresAt: null }]);
});

afterAll(async () => {
  await api?.stop();
  await store?.close();
  await temp.remove();
});

function rookery(args: string[], token: string): Promise<CliRun> {
  return runRookery(args, { ROOKERY_API_URL: apiUrl, ROOKERY_API_TOKEN: token });
}

describe('rookery recipients', () => {
  it('shows what is held about an address, refuses an erasure to an operator, and erases it for an admin', async () => {
    const shown = await rookery(['recipients', 'show', 'erin@DEST.test'], tokens.operator);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('Searched            every tenant\n');
    expect(shown.stdout).toMatch(/^cli-rcpt +acme +2026-03-01T10:00:00Z +app@sender\.test +queued +0 +-$/m);
    expect(shown.stdout).toMatch(/^Erin@dest\.test +acme +complaint +2026-03-01T11:00:00Z +never +-$/m);

    const refused = await rookery(['recipients', 'erase', 'erin@dest.test'], tokens.operator);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/FORBIDDEN/);

    const erased = await rookery(['recipients', 'erase', 'erin@dest.test', '--tenant', 'acme'], tokens.admin);
    expect(erased.code, erased.stderr).toBe(0);
    expect(erased.stdout).toMatch(/^Erased erin@dest\.test \(tenant acme\):\n  1 message deleted\n  0 messages kept until the other recipients are final, then deleted\n  1 waiting recipient cancelled, without a DSN\n/);
    expect(erased.stdout).toContain('  1 suppression entry kept by hash only\n');
    expect(erased.stdout).toMatch(/^Address hash \(the audit log's target\): [0-9a-f]{64}$/m);

    const after = await rookery(['recipients', 'show', 'erin@dest.test', '--json'], tokens.admin);
    expect(JSON.parse(after.stdout)).toMatchObject({ messages: [], suppressions: [{ address: null, reason: 'complaint' }] });
  });
});
