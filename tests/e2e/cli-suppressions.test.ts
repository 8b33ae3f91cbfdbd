import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { runRookery, type CliRun } from '../helpers/rookery-cli.ts';
import { startSendApi } from '../helpers/send-api.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

/**
 * `rookery suppressions list|show|add|remove|import|export` as an operator runs them: the real
 * command in its own process against a real control API on loopback over a SQLite queue.
 */

const logger = createLogger('silent');
const tokens = { operator: generateApiToken(), sender: generateApiToken() };
const CONFIG: ConfigInput = {
  api: {
    tokens: [
      { name: 'ops', role: 'operator', hash: hashApiToken(tokens.operator) },
      { name: 'acme-app', role: 'sender', tenant: 'acme', hash: hashApiToken(tokens.sender) },
    ],
  },
  tenants: { acme: { senderDomains: ['acme.test'] } },
};

const temp = await createTempDir('rookery-cli-suppressions');
let store: Store;
let api: ControlApi;
let apiUrl: string;

beforeAll(async () => {
  store = createSqliteStore({ path: temp.file('queue.db'), logger });
  await store.migrate();
  const started = await startSendApi({ store, config: CONFIG, logger });
  api = started.api;
  apiUrl = `http://${started.host}:${started.port}`;
});

afterAll(async () => {
  await api?.stop();
  await store?.close();
  await temp.remove();
});

function rookery(args: string[], token = tokens.operator, stdin?: string): Promise<CliRun> {
  return runRookery(args, { ROOKERY_API_URL: apiUrl, ROOKERY_API_TOKEN: token }, stdin);
}

describe('rookery suppressions', () => {
  it('adds, lists, shows and removes an entry', async () => {
    const added = await rookery(['suppressions', 'add', 'Gone@dest.test', '--tenant', 'acme', '--reason', 'complaint', '--until', '2999-01-01T00:00:00Z']);
    expect(added).toEqual({ code: 0, stdout: 'Suppressed Gone@dest.test (complaint) for tenant acme, until 2999-01-01T00:00:00Z.\n', stderr: '' });
    expect((await rookery(['suppressions', 'add', 'none@dest.test'])).stdout).toBe('Suppressed none@dest.test (manual) for mail of no tenant, until removed.\n');

    const listed = await rookery(['suppressions', 'list']);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ADDRESS\s+TENANT\s+REASON\s+CREATED\s+EXPIRES\s+SOURCE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['Gone@dest.test', 'acme', 'complaint'],
      ['none@dest.test', '(none)', 'manual'],
    ]);
    expect(lines[1]).toMatch(/2999-01-01T00:00:00Z\s+api by ops$/);
    const json = JSON.parse((await rookery(['suppressions', 'list', '--tenant', 'acme', '--json'])).stdout) as { items: Array<{ address: string }> };
    expect(json.items.map((e) => e.address)).toEqual(['Gone@dest.test']);

    const shown = await rookery(['suppressions', 'show', 'gone@dest.test', '--tenant', 'acme']);
    expect(shown.stdout).toMatch(/^Address\s+Gone@dest\.test\nTenant\s+acme\nReason\s+complaint\n/);

    // A sender reads its own tenant's list, and cannot remove from it.
    expect((await rookery(['suppressions', 'list'], tokens.sender)).stdout).toMatch(/Gone@dest\.test/);
    expect(await rookery(['suppressions', 'remove', 'gone@dest.test'], tokens.sender)).toMatchObject({ code: 3, stderr: expect.stringMatching(/^rookery suppressions remove: 403 FORBIDDEN/) });
    expect(await rookery(['suppressions', 'remove', 'gone@dest.test', '--tenant', 'acme'])).toEqual({ code: 0, stdout: 'Removed Gone@dest.test (complaint) from the list of tenant acme.\n', stderr: '' });
    expect((await rookery(['suppressions', 'remove', 'gone@dest.test', '--tenant', 'acme'])).stdout).toBe('gone@dest.test was not on the list.\n');
    expect(await rookery(['suppressions', 'show', 'gone@dest.test', '--tenant', 'acme'])).toMatchObject({ code: 3, stderr: expect.stringMatching(/404 SUPPRESSION_NOT_FOUND/) });
  });

  it('imports a file and exports the list back as it reads it', async () => {
    const file = temp.file('list.csv');
    writeFileSync(file, `address,reason,expires_at\n${Array.from({ length: 500 }, (_, i) => `bulk-${i}@dest.test,unsubscribe,`).join('\n')}\n`);
    expect(await rookery(['suppressions', 'import', file, '--tenant', 'acme'])).toEqual({ code: 0, stdout: 'Imported 500 entries: 500 written (an address given twice, or older than its entry, is not).\n', stderr: '' });

    const exported = await rookery(['suppressions', 'export', '--tenant', 'acme', '--reason', 'unsubscribe']);
    expect(exported.code).toBe(0);
    const rows = exported.stdout.trimEnd().split('\n');
    expect(rows[0]).toBe('address,reason,expires_at,created_at,tenant');
    expect(rows).toHaveLength(501);
    expect(rows.slice(1).every((r) => /^bulk-\d+@dest\.test,unsubscribe,,\S+Z,acme$/.test(r))).toBe(true);

    // The export read back from stdin, as NDJSON: the same entries, nothing newer written.
    const ndjson = (await rookery(['suppressions', 'export', '--format', 'ndjson', '--tenant', 'acme'])).stdout;
    expect(await rookery(['suppressions', 'import', '-', '--format', 'ndjson'], tokens.sender, ndjson)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Imported 500 entries: 500 written/) });

    const bad = await rookery(['suppressions', 'import', '-'], tokens.operator, 'address\nnot an address\nok@dest.test\n');
    expect(bad.code).toBe(3);
    expect(bad.stderr).toBe('rookery suppressions import: 400 INVALID_REQUEST: 1 line cannot be imported (first: line 2: address: not an address (local@domain)); nothing was stored\n  body line 2: address: not an address (local@domain)\n');
    expect(await rookery(['suppressions', 'import', temp.file('missing.csv')])).toMatchObject({ code: 2, stderr: expect.stringContaining('missing.csv: no such file') });
  });
});
