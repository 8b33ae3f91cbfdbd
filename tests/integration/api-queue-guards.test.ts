import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * What the queue operations of the control API guard, over real HTTP against a daemon in this
 * process, on SQLite and on PostgreSQL: a bounce whose client gives up is still audited, once; a
 * pause the platform's staff put on a tenant is not the tenant's to lift or replace; scopes are
 * read as the product stores them (a domain's final dot, an IDN) and an unknown pool is refused.
 */

const postgres = await requirePostgres();
const resolver = createFixtureResolver({});
const operator = generateApiToken();
const admin = generateApiToken();
const acmeOps = generateApiToken();
const acmeViewer = generateApiToken();
const TOKENS = [
  { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
  { name: 'root', role: 'admin', hash: hashApiToken(admin) },
  { name: 'acme-ops', role: 'operator', tenant: 'acme', hash: hashApiToken(acmeOps) },
  { name: 'acme-viewer', role: 'viewer', tenant: 'acme', hash: hashApiToken(acmeViewer) },
] as const;

function config(sink: SmtpSink): ConfigInput {
  return {
    hostname: 'queue-guards.rookery.test',
    tenants: { acme: { senderDomains: ['acme.test'] } },
    api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [...TOKENS] },
    ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'bulk' }],
    delivery: { routes: { '*': `127.0.0.1:${sink.port}` }, retry: { initial: '1h', jitter: 0 } },
  };
}

for (const backend of [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
]) {
  describe.skipIf(backend.skip)(`queue operation guards on ${backend.name}`, () => {
    let dir: TempDir | undefined;
    let sink: SmtpSink | undefined;
    let daemon: Daemon | undefined;
    let schema: TestSchema | undefined;

    afterEach(async () => {
      await daemon?.stop();
      await sink?.close();
      await schema?.drop();
      await dir?.remove();
      daemon = sink = schema = dir = undefined;
    });

    async function start(): Promise<Daemon> {
      sink = await startSmtpSink();
      dir = await createTempDir('rookery-queue-guards');
      let store: Store | undefined;
      if (backend.name === 'postgres') {
        schema = await createTestSchema('queue-guards');
        store = createPostgresStore({ url: schema.url, schema: schema.schema, logger: createLogger('silent'), poolSize: 4 });
      }
      daemon = await startTestDaemon({ dir, sink, resolver, config: config(sink), store });
      return daemon;
    }

    const base = () => {
      const { host, port } = daemon!.apiAddress();
      return { host, port, url: `http://${host}:${port}` };
    };
    const call = async (method: string, path: string, body?: object, token = operator): Promise<{ status: number; json: any }> => {
      const res = await fetch(`${base().url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, json: await res.json() };
    };
    const ok = async (method: string, path: string, body?: object, token = operator): Promise<any> => {
      const { status, json } = await call(method, path, body, token);
      expect(status, `${method} ${path}: ${JSON.stringify(json)}`).toBe(200);
      return json;
    };
    const auditOf = async (route: string): Promise<any[]> => (await ok('GET', `/v1/audit?route=${encodeURIComponent(route)}`, undefined, admin)).items;

    it('audits a bounce whose client gave up before the answer, once, with what it did', { timeout: 90_000 }, async () => {
      await start();
      await ok('POST', '/v1/queue/pause', { scope: { domain: 'big.test' }, reason: 'hold' });
      // 5,000 queued recipients: ten chunks of the cancellation, with a pause after each.
      const ids: string[] = [];
      for (let m = 0; m < 50; m++) {
        const recipients = Array.from({ length: 100 }, (_, i) => `r${m}-${i}@big.test`);
        const body = testMessage({ from: 'app@sender.test', to: recipients[0]!, messageId: `<big${m}@t>`, subject: 'big' });
        ids.push((await daemon!.submit({ sender: 'app@sender.test', recipients, body, submitter: null, tenant: null, source: 'http', clientAddress: null })).id);
      }

      // The request is written whole; once the bounce is under way (the first message's rows are
      // cancelled first), the client closes the connection, before any answer came.
      const payload = JSON.stringify({ scope: { domain: 'big.test' }, reason: 'spam run', dsn: false });
      const { host, port } = base();
      const socket = connect({ host, port });
      let answered = false;
      socket.on('data', () => (answered = true));
      await new Promise<void>((resolve, reject) => {
        socket.on('error', reject);
        socket.write(`POST /v1/queue/bounce HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${operator}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`, () => resolve());
      });
      const firstStates = async () => (await ok('GET', `/v1/messages/${ids[0]}`, undefined, admin)).recipients.map((r: { state: string }) => r.state);
      await until(async () => (await firstStates()).includes('bounced'), 'the bounce to start', 15_000, 5);
      expect(answered).toBe(false);
      socket.destroy();

      let entries: any[] = [];
      await until(async () => (entries = await auditOf('/v1/queue/bounce')).length > 0, 'the audit entry of the abandoned bounce', 60_000, 200);
      expect(entries).toEqual([
        expect.objectContaining({ actor: 'night-shift', target: 'domain big.test', status: 200, outcome: 'CLIENT_GONE', change: { after: { cancelled: 5000, inDelivery: 0, dsns: 0 } } }),
      ]);

      // An answered bounce is recorded once as well.
      await ok('POST', '/v1/queue/bounce', { scope: { domain: 'big.test' }, reason: 'again', dsn: false });
      await until(async () => (entries = await auditOf('/v1/queue/bounce')).length === 2, 'the second audit entry');
      await ok('POST', '/v1/queue/resume', { scope: { domain: 'big.test' } });
      await until(async () => (await auditOf('/v1/queue/resume')).length === 1, 'the resume audited');
      expect((await auditOf('/v1/queue/bounce')).map((e) => [e.outcome, e.change])).toEqual([
        ['OK', { after: { cancelled: 0, inDelivery: 0, dsns: 0 } }],
        ['CLIENT_GONE', { after: { cancelled: 5000, inDelivery: 0, dsns: 0 } }],
      ]);
    });

    it("keeps a pause the platform's staff put on a tenant out of the tenant's hands", { timeout: 60_000 }, async () => {
      await start();
      const staff = await ok('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'complaint rate over 0.3 %, ticket 88' });
      const detail = `The pause of tenant acme was made by a token of no tenant (the platform's): only such a token may replace or end it`;
      for (const [path, body] of [
        ['/v1/queue/resume', { scope: { tenant: 'acme' } }],
        ['/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'our own hold', for: '1m' }],
      ] as const) {
        const { status, json } = await call('POST', path, body, acmeOps);
        expect({ status, ...json }, path).toMatchObject({ status: 403, code: 'FORBIDDEN', detail });
      }
      // Still the staff's pause, as it was; the tenant sees it and why, not which staff token made it.
      expect((await ok('GET', '/v1/queue/pauses', undefined, operator)).pauses).toEqual([staff.pause]);
      expect((await ok('GET', '/v1/queue/pauses', undefined, acmeViewer)).pauses).toEqual([{ ...staff.pause, by: null }]);

      // The staff end it; a pause the tenant makes itself is its own to end.
      expect((await ok('POST', '/v1/queue/resume', { scope: { tenant: 'acme' } })).ended).toEqual(staff.pause);
      const own = await ok('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'campaign on hold' }, acmeOps);
      expect((await ok('GET', '/v1/queue/pauses', undefined, acmeViewer)).pauses).toEqual([own.pause]);
      const replaced = await ok('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'campaign on hold, until Monday' }, acmeOps);
      expect(replaced.replaced).toEqual(own.pause);
      // Once the staff replace it, it is theirs.
      await ok('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'held by support' });
      expect((await call('POST', '/v1/queue/resume', { scope: { tenant: 'acme' } }, acmeOps)).status).toBe(403);
      expect((await ok('POST', '/v1/queue/resume', { scope: { tenant: 'acme' } })).ended).toMatchObject({ by: 'night-shift' });
    });

    it('reads a domain as recipients are stored, and refuses a pool nobody has', { timeout: 60_000 }, async () => {
      await start();
      expect((await ok('POST', '/v1/queue/pause', { scope: { domain: 'Held.TEST.' }, reason: 'final dot' })).pause.scope).toEqual({ domain: 'held.test' });
      expect((await ok('POST', '/v1/queue/pause', { scope: { domain: 'bücher.test' }, reason: 'IDN' })).pause.scope).toEqual({ domain: 'xn--bcher-kva.test' });
      const body = testMessage({ from: 'app@sender.test', to: 'a@held.test', messageId: '<held@t>', subject: 'held' });
      const { id } = await daemon!.submit({ sender: 'app@sender.test', recipients: ['a@held.test', 'b@xn--bcher-kva.test', 'c@open.test'], body, submitter: null, tenant: null, source: 'http', clientAddress: null });
      const states = async () => (await ok('GET', `/v1/messages/${id}`, undefined, admin)).recipients.map((r: any) => [r.address, r.state]);
      // At the sink, then recorded (a moment later on a busy machine).
      await until(async () => (await states()).some(([address, state]: string[]) => address === 'c@open.test' && state === 'delivered'), 'the mail to open.test delivered');
      expect(await states()).toEqual([
        ['a@held.test', 'queued'],
        ['b@xn--bcher-kva.test', 'queued'],
        ['c@open.test', 'delivered'],
      ]);
      // The same spellings reach the same rows.
      expect(await ok('POST', '/v1/queue/bounce', { scope: { domain: 'HELD.test.' }, reason: 'x', dsn: false })).toMatchObject({ scope: { domain: 'held.test' }, cancelled: 1 });
      expect(await ok('POST', '/v1/queue/bounce', { scope: { domain: 'BÜCHER.test' }, reason: 'x', dsn: false })).toMatchObject({ scope: { domain: 'xn--bcher-kva.test' }, cancelled: 1 });

      for (const [path, body] of [
        ['/v1/queue/pause', { scope: { pool: 'bluk' }, reason: 'x' }],
        ['/v1/queue/retry', { scope: { pool: 'bluk' } }],
        ['/v1/queue/bounce', { scope: { pool: 'bluk' }, reason: 'x', dsn: false }],
        ['/v1/queue/resume', { scope: { pool: 'bluk' } }],
      ] as const) {
        const { status, json } = await call('POST', path, body);
        expect({ status, ...json }, path).toMatchObject({ status: 400, code: 'INVALID_REQUEST', errors: [{ path: 'body.scope.pool', message: 'no pool named "bluk"; the pools: default, bulk' }] });
      }
      const bad = await call('POST', '/v1/queue/pause', { scope: { domain: 'no..dots' }, reason: 'x' });
      expect({ status: bad.status, ...bad.json }).toMatchObject({ status: 400, errors: [{ path: 'body.scope.domain' }] });
      expect(await ok('POST', '/v1/queue/retry', { scope: { pool: 'bulk' } })).toEqual({ scope: { pool: 'bulk' }, retried: 0 });
    });
  });
}
