import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { newMessage } from '../helpers/new-message.ts';
import { startSendApi } from '../helpers/send-api.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * Personal data over the control API, real HTTP on loopback against a SQLite queue: what
 * GET /v1/recipients/{address} shows, DELETE erasing it, tenant confinement, and an audit log that
 * records the erasure (and requests refused before it) without ever naming the address.
 */

const logger = createLogger('silent');
/** The API's own log, read for addresses. */
const { logger: apiLogger, logs: apiLogs } = capturingLogger('info');
const tokens = { admin: generateApiToken(), operator: generateApiToken(), acmeOps: generateApiToken() };
const CONFIG: ConfigInput = {
  api: {
    tokens: [
      { name: 'admin', role: 'admin', hash: hashApiToken(tokens.admin) },
      { name: 'ops', role: 'operator', hash: hashApiToken(tokens.operator) },
      { name: 'acme-ops', role: 'operator', tenant: 'acme', hash: hashApiToken(tokens.acmeOps) },
    ],
  },
  tenants: { acme: { senderDomains: ['acme.example'] }, beta: { senderDomains: ['beta.example'] } },
};
const SUBJECT = 'Erin.Subject@Dest.example';
const T0 = Date.now() - 60_000;

let dir: TempDir;
let store: Store;
let api: ControlApi;
let base: string;

async function call(method: string, path: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

const everyEntry = { actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null };

beforeEach(async () => {
  dir = await createTempDir('rookery-api-recipients');
  store = createSqliteStore({ path: dir.file('queue.db'), logger });
  await store.migrate();
  const started = await startSendApi({ store, config: CONFIG, logger: apiLogger });
  api = started.api;
  base = `http://${started.host}:${started.port}`;
  await store.enqueue([
    newMessage('rcpt-acme', T0, { recipients: [SUBJECT, 'other@dest.example'], tenant: 'acme' }),
    newMessage('rcpt-beta', T0 + 1, { recipients: ['erin.subject@dest.example'], tenant: 'beta' }),
  ]);
  await store.addSuppressions([{ tenant: 'acme', address: SUBJECT, reason: 'complaint', source: null, createdAt: T0, expiresAt: null }]);
});

afterEach(async () => {
  await api.stop();
  await store.close();
  await dir.remove();
});

describe('/v1/recipients/{address}', () => {
  it("shows every tenant's data to a token of none, a tenant's own to its token", async () => {
    const all = await call('GET', '/v1/recipients/erin.subject@dest.example', tokens.operator);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ address: 'erin.subject@dest.example', tenant: null, moreMessages: false, dsns: 0, webhookDeliveries: 0 });
    expect(all.body.messages.map((m: any) => [m.id, m.tenant, m.recipients.map((r: any) => [r.address, r.state])])).toEqual([
      ['rcpt-beta', 'beta', [['erin.subject@dest.example', 'queued']]],
      ['rcpt-acme', 'acme', [[SUBJECT, 'queued']]],
    ]);
    expect(all.body.suppressions).toEqual([expect.objectContaining({ tenant: 'acme', address: SUBJECT, reason: 'complaint' })]);
    expect((await call('GET', `/v1/recipients/${SUBJECT}?tenant=beta&limit=5`, tokens.admin)).body.messages.map((m: any) => m.id)).toEqual(['rcpt-beta']);
    expect((await call('GET', `/v1/recipients/${SUBJECT}?limit=1`, tokens.admin)).body.moreMessages).toBe(true);

    const own = await call('GET', `/v1/recipients/${SUBJECT}`, tokens.acmeOps);
    expect(own.body.tenant).toBe('acme');
    expect(own.body.messages.map((m: any) => m.id)).toEqual(['rcpt-acme']);
    const other = await call('GET', `/v1/recipients/${SUBJECT}?tenant=beta`, tokens.acmeOps);
    expect(other).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    const bad = await call('GET', '/v1/recipients/@dest.example', tokens.admin);
    expect(bad).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', errors: [{ path: 'params.address' }] } });
  });

  it("erases one tenant's data when the admin names it, audited under the address's hash", async () => {
    const erased = await call('DELETE', `/v1/recipients/${SUBJECT.toLowerCase()}?tenant=acme`, tokens.admin);
    expect(erased.status).toBe(200);
    expect(erased.body).toEqual({
      addressHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      counts: { messages: 0, pending: 1, cancelled: 1, dsns: 0, suppressions: 1, webhookDeliveries: 0, idempotencyRecords: 0, auditEntries: 0 },
    });
    // Beta's message is not acme's to erase; acme's message waits for its other recipient.
    expect((await store.listRecipients('rcpt-beta')).map((r) => r.recipient)).toEqual(['erin.subject@dest.example']);
    expect((await store.listRecipients('rcpt-acme')).map((r) => r.recipient)).toEqual(['other@dest.example']);
    const [entry] = await store.listSuppressions({ tenant: 'acme', reason: null, address: null, since: null, until: null, now: null }, null, 10);
    expect(entry).toMatchObject({ address: null, addressHash: erased.body.addressHash });

    const [audited] = await store.listAudit(everyEntry, null, 10);
    expect(audited).toMatchObject({ actor: 'admin', route: '/v1/recipients/:address', target: erased.body.addressHash, outcome: 'OK' });
    expect(audited!.change).toEqual({ after: { tenant: 'acme', counts: erased.body.counts } });
  });

  it('lets only an admin of no tenant erase, and audits a refused request under the route, never the address', async () => {
    expect((await call('DELETE', `/v1/recipients/${SUBJECT}`, tokens.operator)).status).toBe(403);
    expect((await call('DELETE', `/v1/recipients/${SUBJECT}`, tokens.acmeOps)).status).toBe(403);
    expect((await call('DELETE', `/v1/recipients/${SUBJECT}`, generateApiToken())).status).toBe(401);
    expect((await call('GET', `/v1/recipients/${SUBJECT}`, generateApiToken())).status).toBe(401);
    // Any route with an address in its path, in any encoding of it.
    expect((await call('DELETE', `/v1/suppressions/${encodeURIComponent(SUBJECT)}`, generateApiToken())).status).toBe(401);
    const entries = await store.listAudit(everyEntry, null, 10);
    expect(entries.map((e) => [e.method, e.status, e.target])).toEqual([
      ['DELETE', 401, '/v1/suppressions/:address'],
      ['GET', 401, '/v1/recipients/:address'],
      ['DELETE', 401, '/v1/recipients/:address'],
      ['DELETE', 403, '/v1/recipients/:address'],
      ['DELETE', 403, '/v1/recipients/:address'],
    ]);
    expect(JSON.stringify(entries).toLowerCase()).not.toContain('erin.subject');
    // Nor does the API's log (its request lines leave out paths that name a person).
    expect(JSON.stringify(apiLogs).toLowerCase()).not.toContain('erin.subject');

    // An admin of no tenant erases every tenant's data.
    const erased = await call('DELETE', `/v1/recipients/${SUBJECT}`, tokens.admin);
    expect(erased.body.counts).toMatchObject({ messages: 1, pending: 1, cancelled: 2, suppressions: 1 });
    expect((await call('GET', `/v1/recipients/${SUBJECT}`, tokens.admin)).body).toMatchObject({ messages: [], suppressions: [{ address: null }] });
  });
});
