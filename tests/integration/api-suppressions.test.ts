import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlApi } from '../../src/control-api/server.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';
import { startSendApi } from '../helpers/send-api.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * The suppression list over the control API, real HTTP on loopback against a SQLite queue: the
 * routes, tenant confinement and roles, the audit trail, the bulk import and the streamed export,
 * and the per-recipient answer of a send.
 */

const logger = createLogger('silent');
const tokens = { admin: generateApiToken(), viewer: generateApiToken(), acme: generateApiToken(), acmeOps: generateApiToken(), beta: generateApiToken() };
const CONFIG: ConfigInput = {
  api: {
    tokens: [
      { name: 'admin', role: 'admin', hash: hashApiToken(tokens.admin), allowedSenders: ['*'] },
      { name: 'viewer', role: 'viewer', hash: hashApiToken(tokens.viewer) },
      { name: 'acme-app', role: 'sender', tenant: 'acme', hash: hashApiToken(tokens.acme), allowedSenders: ['*@acme.example'] },
      { name: 'acme-ops', role: 'operator', tenant: 'acme', hash: hashApiToken(tokens.acmeOps) },
      { name: 'beta-app', role: 'sender', tenant: 'beta', hash: hashApiToken(tokens.beta), allowedSenders: ['*@beta.example'] },
    ],
  },
  tenants: { acme: { senderDomains: ['acme.example'] }, beta: { senderDomains: ['beta.example'], suppression: { action: 'drop' } } },
};

let dir: TempDir;
let store: Store;
let api: ControlApi;
let base: string;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

async function call(method: string, path: string, token: string, body?: unknown, contentType = 'application/json'): Promise<Answer> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': contentType } : {}) } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/** A fresh queue and API for each test. */
beforeEach(async () => {
  dir = await createTempDir('rookery-api-suppressions');
  store = createSqliteStore({ path: dir.file('queue.db'), logger });
  await store.migrate();
  const started = await startSendApi({ store, config: CONFIG, logger: logger });
  api = started.api;
  base = `http://${started.host}:${started.port}`;
});

afterEach(async () => {
  await api.stop();
  await store.close();
  await dir.remove();
});

describe('the suppression routes', () => {
  it('adds one entry or a list, lists them newest first by cursor and filters, and removes one', async () => {
    const one = await call('POST', '/v1/suppressions', tokens.admin, { address: 'One@Dest.example', expiresIn: '30d' });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ written: 1, entries: [{ tenant: null, address: 'One@Dest.example', reason: 'manual', expiresAt: expect.any(String) }] });
    const list = await call('POST', '/v1/suppressions', tokens.admin, [
      { address: 'two@dest.example', reason: 'complaint', tenant: 'acme' },
      { address: 'three@dest.example', reason: 'unsubscribe', tenant: 'acme', expiresAt: '2999-01-01T00:00:00Z' },
      { address: 'four@dest.example', tenant: null },
    ]);
    expect(list.body.written).toBe(3);

    const all = await call('GET', '/v1/suppressions?limit=2', tokens.viewer);
    expect(all.body.items).toHaveLength(2);
    expect(all.body.items[0]).toMatchObject({ tenant: 'acme', source: { kind: 'api', actor: 'admin' }, addressHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const rest = await call('GET', `/v1/suppressions?limit=2&cursor=${all.body.nextCursor}`, tokens.viewer);
    expect(rest.body.nextCursor).toBeNull();
    expect([...all.body.items, ...rest.body.items].map((e: { address: string }) => e.address).sort()).toEqual(['One@Dest.example', 'four@dest.example', 'three@dest.example', 'two@dest.example']);
    expect((await call('GET', '/v1/suppressions?tenant=acme&reason=complaint', tokens.viewer)).body.items.map((e: { address: string }) => e.address)).toEqual(['two@dest.example']);
    expect((await call('GET', '/v1/suppressions?tenant=', tokens.viewer)).body.items).toHaveLength(2);
    expect((await call('GET', '/v1/suppressions?address=ONE@dest.example', tokens.viewer)).body.items.map((e: { address: string }) => e.address)).toEqual(['One@Dest.example']);
    const badCursor = await call('GET', '/v1/suppressions?cursor=nope', tokens.viewer);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.errors).toEqual([{ path: 'querystring.cursor', message: 'not a cursor this API gave out' }]);

    // One entry: the list of no tenant unless named.
    expect((await call('GET', '/v1/suppressions/one@dest.example', tokens.viewer)).body).toMatchObject({ address: 'One@Dest.example', message: null, events: [] });
    expect((await call('GET', '/v1/suppressions/two@dest.example', tokens.viewer)).body.code).toBe('SUPPRESSION_NOT_FOUND');
    expect((await call('GET', '/v1/suppressions/two@dest.example?tenant=acme', tokens.viewer)).body.reason).toBe('complaint');

    const removed = await call('DELETE', '/v1/suppressions/ONE@dest.example', tokens.admin);
    expect(removed.body.deleted).toMatchObject({ address: 'One@Dest.example' });
    expect((await call('DELETE', '/v1/suppressions/one@dest.example', tokens.admin)).body).toEqual({ deleted: null });

    const refused = await call('POST', '/v1/suppressions', tokens.admin, { address: 'not an address', expiresIn: 'soon' });
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([{ path: 'body.address', message: 'not an address (local@domain)' }]);
    expect((await call('POST', '/v1/suppressions', tokens.admin, { address: 'x@dest.example', tenant: 'gamma' })).body.errors).toEqual([{ path: 'body.tenant', message: 'unknown tenant "gamma"' }]);
    expect((await call('POST', '/v1/suppressions', tokens.admin, { address: 'x@dest.example', expiresIn: '10d', expiresAt: '2999-01-01T00:00:00Z' })).status).toBe(400);

    const audit = await store.listAudit({ actor: 'admin', route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    expect(audit.map((a) => [a.method, a.route, a.target])).toEqual(
      expect.arrayContaining([
        ['POST', '/v1/suppressions', 'One@Dest.example'],
        ['POST', '/v1/suppressions', '3 addresses'],
        ['DELETE', '/v1/suppressions/:address', 'ONE@dest.example'],
      ]),
    );
    // Newest first: the first DELETE removed the entry, the second found none.
    expect(audit.filter((a) => a.method === 'DELETE').map((a) => a.change)).toEqual([{ before: null, after: null }, { before: expect.objectContaining({ address: 'One@Dest.example' }), after: null }]);
  });

  it("confines a tenant's token to its own list: a sender adds and reads, never removes", async () => {
    await store.addSuppressions([{ tenant: 'beta', address: 'secret@dest.example', reason: 'complaint', source: null, createdAt: Date.now() - 1000, expiresAt: null }]);
    const added = await call('POST', '/v1/suppressions', tokens.acme, { address: 'mine@dest.example', reason: 'unsubscribe' });
    expect(added.body.entries[0]).toMatchObject({ tenant: 'acme' });
    expect((await call('POST', '/v1/suppressions', tokens.acme, { address: 'theirs@dest.example', tenant: 'beta' })).body).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect((await call('GET', '/v1/suppressions', tokens.acme)).body.items.map((e: { address: string }) => e.address)).toEqual(['mine@dest.example']);
    expect((await call('GET', '/v1/suppressions?tenant=beta', tokens.acme)).status).toBe(403);
    expect((await call('GET', '/v1/suppressions/secret@dest.example', tokens.acme)).status).toBe(404);
    expect((await call('GET', '/v1/suppressions/mine@dest.example', tokens.acme)).body.tenant).toBe('acme');
    expect((await call('DELETE', '/v1/suppressions/mine@dest.example', tokens.acme)).body.code).toBe('FORBIDDEN');
    // An operator of the tenant may remove its entries, not another tenant's.
    expect((await call('DELETE', '/v1/suppressions/secret@dest.example?tenant=beta', tokens.acmeOps)).status).toBe(403);
    expect((await call('DELETE', '/v1/suppressions/mine@dest.example', tokens.acmeOps)).body.deleted).toMatchObject({ address: 'mine@dest.example' });
    expect(await store.getSuppression('beta', 'secret@dest.example', Date.now())).not.toBeNull();
    expect((await call('GET', '/v1/suppressions/export?format=ndjson', tokens.acme)).text).toBe('');
  });

  it('shows the message and the attempts that caused an entry', async () => {
    const now = Date.now();
    await store.enqueue([newMessage('caused-1', now, { recipients: ['gone@dest.example', 'kept@dest.example'], tenant: 'acme' })]);
    const claimed = await store.claimDue({ now: now + 1, limit: 10, owner: 'test', leaseMs: 60_000 });
    const outcome: DeliveryOutcome = { disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '5.1.1 no such user', stage: 'rcpt', bounceClass: 'unknown-user', remoteHost: 'mx.dest.example', egressIp: '127.0.0.2' };
    const gone = claimed.find((c) => c.recipient === 'gone@dest.example')!;
    await store.recordAttempts([{ recipientId: gone.recipientId, token: gone.token, outcome, newState: 'bounced', countsAsAttempt: true }]);
    await store.addSuppressions([{ tenant: 'acme', address: 'gone@dest.example', reason: 'hard-bounce', source: { kind: 'attempt', messageId: 'caused-1', recipientId: gone.recipientId }, createdAt: now + 2, expiresAt: null }]);

    const entry = await call('GET', '/v1/suppressions/gone@dest.example', tokens.acme);
    expect(entry.body).toMatchObject({
      reason: 'hard-bounce',
      source: { kind: 'attempt', messageId: 'caused-1' },
      message: { id: 'caused-1', sender: 'app@sender.test' },
      events: [{ attempt: 1, disposition: 'permanent', code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user' }],
    });
  });

  it('imports 100,000 CSV lines in one request and exports them back, CSV and NDJSON, streamed', async () => {
    const lines = Array.from({ length: 100_000 }, (_, i) => `bulk-${i}@dest${i % 50}.example,${i % 3 === 0 ? 'complaint' : ''},${i % 10 === 0 ? '2999-01-01T00:00:00Z' : ''}`);
    const csv = `address,reason,expires_at\n${lines.join('\n')}\n`;
    const imported = await call('POST', '/v1/suppressions/import?tenant=acme', tokens.admin, csv, 'text/csv');
    expect(imported.status, imported.text).toBe(200);
    expect(imported.body).toEqual({ lines: 100_000, written: 100_000 });
    expect(await store.getSuppression('acme', 'BULK-3@dest3.example', Date.now())).toMatchObject({ reason: 'complaint', source: { kind: 'api', actor: 'admin', import: true } });
    expect(await store.getSuppression('acme', 'bulk-10@dest10.example', Date.now())).toMatchObject({ reason: 'manual', expiresAt: Date.parse('2999-01-01T00:00:00Z') });

    const exported = await fetch(`${base}/v1/suppressions/export?tenant=acme`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(exported.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(exported.headers.get('transfer-encoding')).toBe('chunked');
    const text = await exported.text();
    const rows = text.trimEnd().split('\n');
    expect(rows[0]).toBe('address,reason,expires_at,created_at,tenant');
    expect(rows).toHaveLength(100_001);
    expect(new Set(rows.slice(1).map((r) => r.split(',')[0])).size).toBe(100_000);

    // Round trip: the export, imported into an empty list, is the same list.
    const before = (await call('GET', '/v1/suppressions/bulk-30@dest30.example?tenant=acme', tokens.viewer)).body;
    await store.purgeExpiredSuppressions(Number.MAX_SAFE_INTEGER);
    expect((await call('GET', '/v1/suppressions?tenant=acme&limit=1', tokens.viewer)).body.items.map((e: { expiresAt: null }) => e.expiresAt)).toEqual([null]);
    for (const row of rows.slice(1)) {
      if (row.includes('2999')) continue;
      await store.deleteSuppression('acme', row.split(',')[0]!);
      break;
    }
    const again = await call('POST', '/v1/suppressions/import', tokens.admin, text, 'text/csv');
    expect(again.body.lines).toBe(100_000);
    const after = (await call('GET', '/v1/suppressions/bulk-30@dest30.example?tenant=acme', tokens.viewer)).body;
    expect({ ...after, source: null }).toEqual({ ...before, source: null });

    const ndjson = await (await fetch(`${base}/v1/suppressions/export?format=ndjson&tenant=acme&reason=complaint`, { headers: { authorization: `Bearer ${tokens.viewer}` } })).text();
    const parsed = ndjson.trimEnd().split('\n').map((l) => JSON.parse(l) as { reason: string; tenant: string });
    expect(parsed).toHaveLength(33_334);
    expect(parsed.every((e) => e.reason === 'complaint' && e.tenant === 'acme')).toBe(true);
    await call('POST', '/v1/suppressions/import', tokens.admin, ndjson, 'application/x-ndjson');
  }, 120_000);

  it('refuses an import with bad lines, naming each by its number, and stores none of it', async () => {
    const csv = ['address,reason,expires_at', 'good@dest.example,,', 'not-an-address,,', 'fine@dest.example,bored,', '', 'late@dest.example,,yesterday', '"""quoted,comma""@dest.example",manual,', '"unclosed@dest.example,,'].join('\n');
    const refused = await call('POST', '/v1/suppressions/import', tokens.admin, csv, 'text/csv');
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe('INVALID_REQUEST');
    expect(refused.body.detail).toMatch(/^4 lines cannot be imported \(first: line 3: address: not an address/);
    expect(refused.body.errors).toEqual([
      { path: 'body line 3', message: 'address: not an address (local@domain)' },
      { path: 'body line 4', message: 'reason: not a reason: use hard-bounce, complaint, unsubscribe, manual' },
      { path: 'body line 6', message: 'expiresAt: not a time (RFC 3339) in the future: "yesterday"' },
      { path: 'body line 8', message: 'not 3 CSV fields' },
    ]);
    expect(await store.listSuppressions({ tenant: null, reason: null, address: null, since: null, until: null, now: null }, null, 10)).toEqual([]);

    expect((await call('POST', '/v1/suppressions/import', tokens.admin, 'email,reason\nx@y.example,\n', 'text/csv')).body.errors).toEqual([{ path: 'body line 1', message: 'unknown column "email" (columns: address, reason, expires_at, created_at, tenant)' }]);
    const ndjson = ['{"address":"a@dest.example"}', 'not json', '{"address":"b@dest.example","tenant":"beta"}'].join('\n');
    const mixed = await call('POST', '/v1/suppressions/import', tokens.acme, ndjson, 'application/x-ndjson');
    expect(mixed.body.errors).toEqual([
      { path: 'body line 2', message: 'not JSON' },
      { path: 'body line 3', message: 'tenant: a token of tenant "acme" acts on that tenant\'s suppression list only' },
    ]);
    expect((await call('POST', '/v1/suppressions/import', tokens.admin, 'address\nx@y.example\n', 'text/plain')).status).toBe(415);
    // RFC 4180 quoting: a quoted field holds commas, and "" stands for a quote.
    const quoted = await call('POST', '/v1/suppressions/import', tokens.admin, 'address,reason\n"""quoted,comma""@dest.example",manual\n', 'text/csv');
    expect(quoted.body).toEqual({ lines: 1, written: 1 });
    expect(await store.getSuppression(null, '"quoted,comma"@dest.example', Date.now())).not.toBeNull();
  });
});

describe('a send to suppressed recipients', () => {
  const send = (token: string, to: string[], from = 'news@acme.example') => call('POST', '/v1/messages', token, { from, to, subject: 'hello', text: 'hello' });

  it('answers per recipient under the reject action, and 422 when every recipient is suppressed', async () => {
    await store.addSuppressions([{ tenant: 'acme', address: 'gone@dest.example', reason: 'hard-bounce', source: null, createdAt: Date.now() - 1000, expiresAt: null }]);
    const sent = await send(tokens.acme, ['kept@dest.example', 'Gone@dest.example']);
    expect(sent.status).toBe(202);
    expect(sent.body.recipients).toEqual([
      { address: 'kept@dest.example', status: 'queued', id: sent.body.id },
      { address: 'Gone@dest.example', status: 'suppressed', reason: 'hard-bounce' },
    ]);
    expect((await store.listRecipients(sent.body.id)).map((r) => r.recipient)).toEqual(['kept@dest.example']);

    const refused = await send(tokens.acme, ['gone@dest.example']);
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ code: 'RECIPIENT_SUPPRESSED', detail: 'Every recipient is on the suppression list: gone@dest.example (hard-bounce)' });
    // Another tenant's list is its own.
    expect((await send(tokens.admin, ['gone@dest.example'], 'ops@platform.example')).status).toBe(202);
  });

  it('takes them under the drop action, stored bounced and never attempted, as the message shows', async () => {
    await store.addSuppressions([{ tenant: 'beta', address: 'gone@dest.example', reason: 'complaint', source: null, createdAt: Date.now() - 1000, expiresAt: null }]);
    const sent = await send(tokens.beta, ['kept@dest.example', 'gone@dest.example'], 'news@beta.example');
    expect(sent.status).toBe(202);
    expect(sent.body.recipients).toEqual([
      { address: 'kept@dest.example', status: 'queued', id: sent.body.id },
      { address: 'gone@dest.example', status: 'dropped', reason: 'complaint', id: sent.body.id },
    ]);
    const shown = await call('GET', `/v1/messages/${sent.body.id}`, tokens.beta);
    expect(shown.body.recipients.map((r: { address: string; state: string; events: Array<{ bounceClass: string }> }) => [r.address, r.state, r.events.map((e) => e.bounceClass)])).toEqual([
      ['kept@dest.example', 'queued', []],
      ['gone@dest.example', 'bounced', ['suppressed']],
    ]);
    expect(shown.body.recipients[1].dsn).toBeNull();
  });
});
