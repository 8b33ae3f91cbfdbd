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
import { startSmtpSink, type SinkScript, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The queue operations of the control API over real HTTP, against a daemon in this process that
 * delivers real mail to a loopback sink from two egress IPs, on SQLite and on PostgreSQL: pauses
 * of a domain, a pool, a tenant and an egress IP (kept across a restart, ended by a resume or on
 * their own), a retry, a bounce with DSNs, the cancellation of one message, and the tokens of a
 * tenant confined to their own tenant's mail.
 */

const postgres = await requirePostgres();
const resolver = createFixtureResolver({});
const operator = generateApiToken();
const viewer = generateApiToken();
const admin = generateApiToken();
const STAFF_TOKENS = [
  { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
  { name: 'dashboard', role: 'viewer', hash: hashApiToken(viewer) },
  { name: 'root', role: 'admin', hash: hashApiToken(admin) },
] as const;
/** Tokens of the tenants acme and beta (TENANTS). */
const acmeOps = generateApiToken();
const acmeViewer = generateApiToken();
const betaOps = generateApiToken();
const TENANT_TOKENS = [
  { name: 'acme-ops', role: 'operator', tenant: 'acme', hash: hashApiToken(acmeOps) },
  { name: 'acme-viewer', role: 'viewer', tenant: 'acme', hash: hashApiToken(acmeViewer) },
  { name: 'beta-ops', role: 'operator', tenant: 'beta', hash: hashApiToken(betaOps) },
] as const;

/** Two tenants and their tokens beside the staff's; without beta (as a reload that removed it would leave it). */
function tenantsConfig(tenants: ReadonlyArray<'acme' | 'beta'> = ['acme', 'beta']): ConfigInput {
  return {
    tenants: Object.fromEntries(tenants.map((name) => [name, { senderDomains: [`${name}.test`] }])),
    api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [...STAFF_TOKENS, ...TENANT_TOKENS.filter((t) => tenants.includes(t.tenant))] },
  };
}

function config(sink: SmtpSink, extra: ConfigInput = {}): ConfigInput {
  return {
    hostname: 'queue-ops.rookery.test',
    api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [...STAFF_TOKENS] },
    ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
    ...extra,
    // Every domain to the sink; a deferred recipient is not tried again within a test.
    delivery: { routes: { '*': `127.0.0.1:${sink.port}` }, retry: { initial: '1h', jitter: 0 }, ...extra.delivery },
  };
}

function client(d: Daemon) {
  const { host, port } = d.apiAddress();
  const call = (method: string, path: string, body?: object, token = operator) =>
    fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const ok = async (method: string, path: string, body?: object, token = operator): Promise<any> => {
    const res = await call(method, path, body, token);
    const json = await res.json();
    expect(res.status, `${method} ${path}: ${JSON.stringify(json)}`).toBe(200);
    return json;
  };
  /** The audit entries of a route, newest first, once there are `count` (each is written after its answer). */
  const audit = async (route: string, count: number): Promise<any[]> => {
    let items: any[] = [];
    await until(async () => (items = (await ok('GET', `/v1/audit?route=${encodeURIComponent(route)}`, undefined, admin)).items).length >= count, `${count} audit entries of ${route}`);
    return items;
  };
  const message = (id: string): Promise<MessageJson> => ok('GET', `/v1/messages/${id}`, undefined, viewer);
  const state = async (id: string) => Object.fromEntries((await message(id)).recipients.map((r) => [r.address, `${r.state}/${r.attempts}`]));
  /** Waits for the recipients' states ("state/attempts"): a result is recorded just after the sink's reply. */
  const states = async (id: string, expected: Record<string, string>) => {
    let last: Record<string, string> = {};
    await until(async () => JSON.stringify((last = await state(id))) === JSON.stringify(expected), `${id} to be ${JSON.stringify(expected)}`).catch(() => {});
    expect(last).toEqual(expected);
  };
  return { call, ok, audit, message, state, states };
}

/** Submits one message as the HTTP API does (for a tenant when given); its queue id. */
async function submit(d: Daemon, sender: string, recipients: string[], tag: string, tenant: string | null = null): Promise<string> {
  const body = testMessage({ from: sender || 'mailer@sender.test', to: recipients[0]!, messageId: `<${tag}@t>`, subject: tag });
  return (await d.submit({ sender, recipients, body, submitter: null, tenant, source: 'http', clientAddress: null })).id;
}

const backends = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`queue operations on ${backend.name}`, () => {
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

    /** Starts (or restarts, on the same queue) the daemon; the sink keeps its script. */
    async function start(extra: ConfigInput = {}, script?: SinkScript): Promise<ReturnType<typeof client>> {
      sink ??= await startSmtpSink({ script });
      dir ??= await createTempDir('rookery-queue-ops');
      let store: Store | undefined;
      if (backend.name === 'postgres') {
        schema ??= await createTestSchema('queue-ops');
        store = createPostgresStore({ url: schema.url, schema: schema.schema, logger: createLogger('silent'), poolSize: 4 });
      }
      daemon = await startTestDaemon({ dir, sink, resolver, config: config(sink, extra), store });
      return client(daemon);
    }

    /** The recipients the sink has accepted, each with the egress IP it came from. */
    const arrived = () => new Map(sink!.messages.flatMap((m) => m.to.map((to) => [to, m.remoteAddress] as const)));
    const arrivedAll = (addresses: string[]) => until(() => addresses.every((a) => arrived().has(a)), `mail to ${addresses.join(', ')}`, 20_000);

    it('pauses a domain and a pool: their mail stays queued, untried, across a restart, until resumed', { timeout: 60_000 }, async () => {
      const extra: ConfigInput = { ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'bulk' }], pools: { bulk: { senders: ['bulk.test'] } } };
      let api = await start(extra);

      const paused = await api.ok('POST', '/v1/queue/pause', { scope: { domain: 'paused.test' }, for: '2h', reason: 'provider incident' });
      expect(paused).toEqual({
        pause: { scope: { domain: 'paused.test' }, reason: 'provider incident', by: 'night-shift', createdAt: expect.any(String), until: expect.any(String) },
        replaced: null,
      });
      expect(Date.parse(paused.pause.until) - Date.parse(paused.pause.createdAt)).toBe(2 * 3_600_000);
      // Paused again (any case): the new reason replaces the old, and no end means until resumed.
      const again = await api.ok('POST', '/v1/queue/pause', { scope: { domain: 'PAUSED.test' }, reason: 'provider incident, open-ended' });
      expect(again.replaced).toEqual(paused.pause);
      expect(again.pause).toMatchObject({ scope: { domain: 'paused.test' }, until: null });
      await api.ok('POST', '/v1/queue/pause', { scope: { pool: 'bulk' }, reason: 'list cleaning' });
      const listed = await api.ok('GET', '/v1/queue/pauses', undefined, viewer);
      expect(listed.pauses.map((p: { scope: object }) => p.scope)).toEqual([{ domain: 'paused.test' }, { pool: 'bulk' }]);

      const bulk = await submit(daemon!, 'news@bulk.test', ['c@open.test'], 'bulk');
      const first = await submit(daemon!, 'app@sender.test', ['a@paused.test', 'b@open.test'], 'first');
      // b@ was claimed after both were queued: the paused rows were left alone by that claim.
      await arrivedAll(['b@open.test']);
      await api.states(first, { 'a@paused.test': 'queued/0', 'b@open.test': 'delivered/1' });
      await api.states(bulk, { 'c@open.test': 'queued/0' });

      // A restart on the same queue keeps both pauses.
      await daemon!.stop();
      api = await start(extra);
      expect((await api.ok('GET', '/v1/queue/pauses', undefined, viewer)).pauses).toEqual(listed.pauses);
      expect(listed.pauses[0]).toEqual(again.pause);
      const second = await submit(daemon!, 'app@sender.test', ['d@paused.test', 'e@open.test'], 'second');
      await arrivedAll(['e@open.test']);
      await api.states(second, { 'd@paused.test': 'queued/0', 'e@open.test': 'delivered/1' });
      expect(arrived().has('a@paused.test') || arrived().has('c@open.test')).toBe(false);

      const resumed = await api.ok('POST', '/v1/queue/resume', { scope: { domain: 'paused.test' } });
      expect(resumed).toEqual({ ended: again.pause });
      expect(await api.ok('POST', '/v1/queue/resume', { scope: { domain: 'paused.test' } })).toEqual({ ended: null });
      await arrivedAll(['a@paused.test', 'd@paused.test']);
      await api.states(bulk, { 'c@open.test': 'queued/0' });
      await api.ok('POST', '/v1/queue/resume', { scope: { pool: 'bulk' } });
      await arrivedAll(['c@open.test']);
      expect(arrived().get('c@open.test')).toBe('127.0.0.3');
      expect((await api.ok('GET', '/v1/queue/pauses', undefined, viewer)).pauses).toEqual([]);

      // Audited: who paused what, and the change.
      expect((await api.audit('/v1/queue/pause', 3)).map((e: any) => [e.actor, e.target, e.status, e.change.before?.reason ?? null, e.change.after.reason])).toEqual([
        ['night-shift', 'pool bulk', 200, null, 'list cleaning'],
        ['night-shift', 'domain paused.test', 200, 'provider incident', 'provider incident, open-ended'],
        ['night-shift', 'domain paused.test', 200, null, 'provider incident'],
      ]);
      expect((await api.audit('/v1/queue/resume', 3)).map((e: any) => [e.target, e.change])).toEqual([
        ['pool bulk', { before: expect.objectContaining({ reason: 'list cleaning' }), after: null }],
        ['domain paused.test', { before: null, after: null }],
        ['domain paused.test', { before: again.pause, after: null }],
      ]);
    });

    it("takes a paused egress IP out of selection: mail goes through the pool's others, or waits for the pause to end", { timeout: 60_000 }, async () => {
      const api = await start();
      await api.ok('POST', '/v1/queue/pause', { scope: { egressIp: '127.0.0.3' }, reason: 'moving to another host' });
      const ids = await Promise.all([0, 1, 2, 3].map((i) => submit(daemon!, 'app@sender.test', [`ip${i}@open.test`], `ip${i}`)));
      await arrivedAll(['ip0@open.test', 'ip1@open.test', 'ip2@open.test', 'ip3@open.test']);
      expect(new Set([0, 1, 2, 3].map((i) => arrived().get(`ip${i}@open.test`)))).toEqual(new Set(['127.0.0.2']));
      expect(ids).toHaveLength(4);
      // What selection does, explain says: the paused IP's first check is the pause.
      const explained = await api.ok('GET', '/v1/explain?sender=app@sender.test&recipient=x@open.test', undefined, viewer);
      const paused = explained.egress.ips.find((ip: { address: string }) => ip.address === '127.0.0.3');
      expect(paused).toMatchObject({ eligible: false, checks: expect.arrayContaining([expect.objectContaining({ check: 'paused', ok: false, retryAt: null })]) });

      // None left: the mail waits (not an attempt) until the pause of .2 runs out on its own.
      await api.ok('POST', '/v1/queue/pause', { scope: { egressIp: '127.0.0.2' }, for: '5s', reason: 'short maintenance' });
      const waiting = await submit(daemon!, 'app@sender.test', ['wait@open.test'], 'wait');
      await until(async () => (await api.message(waiting)).recipients[0]!.events.length > 0, 'the wait for an egress IP');
      const [row] = (await api.message(waiting)).recipients;
      expect(row).toMatchObject({ state: 'queued', attempts: 0, events: [{ disposition: 'throttled', response: expect.stringContaining('(paused)') }] });
      await arrivedAll(['wait@open.test']);
      expect(arrived().get('wait@open.test')).toBe('127.0.0.2');
      expect((await api.ok('GET', '/v1/queue/pauses', undefined, viewer)).pauses.map((p: { scope: object }) => p.scope)).toEqual([{ egressIp: '127.0.0.3' }]);

      await api.ok('POST', '/v1/queue/resume', { scope: { egressIp: '127.0.0.3' } });
      await Promise.all([4, 5, 6, 7].map((i) => submit(daemon!, 'app@sender.test', [`ip${i}@open.test`], `ip${i}`)));
      await arrivedAll(['ip4@open.test', 'ip5@open.test', 'ip6@open.test', 'ip7@open.test']);
      expect(new Set([4, 5, 6, 7].map((i) => arrived().get(`ip${i}@open.test`)))).toEqual(new Set(['127.0.0.2', '127.0.0.3']));
    });

    it('makes deferred mail due now on a retry', { timeout: 60_000 }, async () => {
      let refusals = 0;
      const api = await start({}, { onRcptTo: (address) => (address.endsWith('@defer.test') && refusals++ === 0 ? { code: 451, message: '4.7.1 Greylisted, try later' } : undefined) });
      const id = await submit(daemon!, 'app@sender.test', ['r@defer.test'], 'defer');
      await until(async () => (await api.state(id))['r@defer.test'] === 'queued/1', 'the deferral');
      const [deferred] = (await api.message(id)).recipients;
      expect(Date.parse(deferred!.nextAttemptAt!) - Date.now()).toBeGreaterThan(30 * 60_000);

      expect(await api.ok('POST', '/v1/queue/retry', { scope: { egressIp: '127.0.0.9' } })).toEqual({ scope: { egressIp: '127.0.0.9' }, retried: 0 });
      expect(await api.ok('POST', '/v1/queue/retry', { scope: { domain: 'defer.test' } })).toEqual({ scope: { domain: 'defer.test' }, retried: 1 });
      await arrivedAll(['r@defer.test']);
      await api.states(id, { 'r@defer.test': 'delivered/2' });
    });

    it('finds the mail of an egress IP however the config and the request spell it: a retry and a bounce by egressIp', { timeout: 60_000 }, async () => {
      const refused = new Set<string>();
      // An IPv6 egress IP written long-hand in the config, mail to a sink on the same loopback.
      sink = await startSmtpSink({ host: '::1', script: { onRcptTo: (address) => (refused.has(address) ? undefined : (refused.add(address), { code: 451, message: '4.7.1 Greylisted, try later' })) } });
      const api = await start({ ips: [{ address: '0:0:0:0:0:0:0:1' }], delivery: { routes: { '*': `[::1]:${sink.port}` } } });
      const retried = await submit(daemon!, 'app@sender.test', ['r@defer.test'], 'retried');
      await api.states(retried, { 'r@defer.test': 'queued/1' });
      expect((await api.message(retried)).recipients[0]!.events.map((e) => e.egressIp)).toEqual(['::1']);
      expect(await api.ok('POST', '/v1/queue/retry', { scope: { egressIp: '0:0::1' } })).toEqual({ scope: { egressIp: '::1' }, retried: 1 });
      await arrivedAll(['r@defer.test']);
      await api.states(retried, { 'r@defer.test': 'delivered/2' });

      const bounced = await submit(daemon!, 'app@sender.test', ['b@defer.test'], 'bounced');
      await api.states(bounced, { 'b@defer.test': 'queued/1' });
      expect(await api.ok('POST', '/v1/queue/bounce', { scope: { egressIp: '0::0:1' }, reason: 'moving off this address', dsn: false })).toEqual({
        scope: { egressIp: '::1' },
        cancelled: 1,
        inDelivery: 0,
        dsns: 0,
      });
      await api.states(bounced, { 'b@defer.test': 'bounced/1' });
    });

    it('bounces what is queued in a scope, with a DSN to each sender, and leaves mail in delivery to finish', { timeout: 60_000 }, async () => {
      let release: () => void = () => {};
      const held = new Promise<undefined>((resolve) => (release = () => resolve(undefined)));
      let holding = false;
      const api = await start({}, { onRcptTo: (address) => (address.endsWith('@hold.test') ? ((holding = true), held) : undefined) });
      await api.ok('POST', '/v1/queue/pause', { scope: { domain: 'gone.test' }, reason: 'hold while we decide' });
      const m1 = await submit(daemon!, 'app@sender.test', ['x@gone.test', 'y@gone.test'], 'm1');
      const m2 = await submit(daemon!, 'other@sender.test', ['z@gone.test', 'k@keep.test'], 'm2');
      const nullSender = await submit(daemon!, '', ['n@gone.test'], 'null-sender');
      const inFlight = await submit(daemon!, 'app@sender.test', ['h@hold.test'], 'in-flight');
      await arrivedAll(['k@keep.test']);
      await until(() => holding, 'the delivery to hold.test to start');

      const bounced = await api.ok('POST', '/v1/queue/bounce', { scope: { domain: 'gone.test' }, reason: 'spam run', dsn: true });
      expect(bounced).toEqual({ scope: { domain: 'gone.test' }, cancelled: 4, inDelivery: 0, dsns: 2 });
      expect(await api.ok('POST', '/v1/queue/bounce', { scope: { domain: 'hold.test' }, reason: 'too late', dsn: false })).toEqual({ scope: { domain: 'hold.test' }, cancelled: 0, inDelivery: 1, dsns: 0 });
      release();
      await arrivedAll(['h@hold.test']);
      await api.states(inFlight, { 'h@hold.test': 'delivered/1' });

      // Recorded as cancelled, never attempted, each with the DSN that reports it.
      const detail = await api.message(m1);
      expect(detail.recipients.map((r) => [r.address, r.state, r.attempts, r.dsn !== null])).toEqual([
        ['x@gone.test', 'bounced', 0, true],
        ['y@gone.test', 'bounced', 0, true],
      ]);
      expect(detail.recipients[0]!.events).toEqual([
        expect.objectContaining({ attempt: 0, disposition: 'permanent', enhanced: '5.0.0', response: 'cancelled by an operator: spam run', stage: 'queue', bounceClass: 'cancelled', egressIp: null }),
      ]);
      await api.states(m2, { 'z@gone.test': 'bounced/0', 'k@keep.test': 'delivered/1' });
      await api.states(nullSender, { 'n@gone.test': 'bounced/0' });

      // The DSNs go out like any mail: one per message, none to the null sender.
      await until(() => sink!.messages.filter((m) => m.from === '').length === 2, 'the two DSNs');
      const dsns = sink!.messages.filter((m) => m.from === '');
      expect(dsns.map((m) => m.to).sort()).toEqual([['app@sender.test'], ['other@sender.test']]);
      const m1Dsn = dsns.find((m) => m.to[0] === 'app@sender.test')!.raw.toString();
      expect(m1Dsn).toContain('Final-Recipient: rfc822; x@gone.test');
      expect(m1Dsn).toContain('Final-Recipient: rfc822; y@gone.test');
      expect(m1Dsn).toContain('X-Rookery; cancelled by an operator: spam run');

      // Nothing is left to deliver once the pause ends.
      await api.ok('POST', '/v1/queue/resume', { scope: { domain: 'gone.test' } });
      expect((await api.audit('/v1/queue/bounce', 2)).map((e: any) => [e.target, e.change])).toEqual([
        ['domain hold.test', { after: { cancelled: 0, inDelivery: 1, dsns: 0 } }],
        ['domain gone.test', { after: { cancelled: 4, inDelivery: 0, dsns: 2 } }],
      ]);
      expect([...arrived().keys()].filter((to) => to.endsWith('@gone.test'))).toEqual([]);
    });

    it('cancels what is left of one message: DELETE /v1/messages/{id}', { timeout: 60_000 }, async () => {
      const api = await start();
      await api.ok('POST', '/v1/queue/pause', { scope: { domain: 'later.test' }, reason: 'hold' });
      const id = await submit(daemon!, 'app@sender.test', ['p@later.test', 'q@later.test', 'o@open.test'], 'cancel-me');
      await arrivedAll(['o@open.test']);

      expect(await api.ok('DELETE', `/v1/messages/${id}?dsn=true&reason=customer%20asked`)).toEqual({ id, cancelled: 2, inDelivery: 0, dsns: 1 });
      expect(await api.ok('DELETE', `/v1/messages/${id}`)).toEqual({ id, cancelled: 0, inDelivery: 0, dsns: 0 });
      await api.states(id, { 'p@later.test': 'bounced/0', 'q@later.test': 'bounced/0', 'o@open.test': 'delivered/1' });
      const events = (await api.message(id)).recipients[0]!.events;
      expect(events.map((e) => e.response)).toEqual(['cancelled by an operator: customer asked']);
      await until(() => sink!.messages.some((m) => m.from === '' && m.raw.toString().includes('customer asked')), 'the DSN');

      const missing = await api.call('DELETE', '/v1/messages/no-such-message');
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: 'MESSAGE_NOT_FOUND', detail: 'No message with queue id no-such-message' });
      expect((await api.audit('/v1/messages/:id', 3)).map((e: any) => [e.method, e.target, e.status, e.change])).toEqual([
        ['DELETE', 'no-such-message', 404, null],
        ['DELETE', id, 200, { after: { cancelled: 0, inDelivery: 0, dsns: 0 } }],
        ['DELETE', id, 200, { after: { cancelled: 2, inDelivery: 0, dsns: 1 } }],
      ]);
    });

    it("pauses a tenant: its mail stays queued while another tenant's and mail of no tenant go; a tenant's token acts on its own tenant only", { timeout: 60_000 }, async () => {
      const api = await start(tenantsConfig());
      const paused = await api.ok('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'customer asked to hold' }, acmeOps);
      expect(paused.pause).toMatchObject({ scope: { tenant: 'acme' }, by: 'acme-ops', until: null });

      const acmeA = await submit(daemon!, 'news@acme.test', ['a1@open.test', 'a2@open.test'], 'acme-a', 'acme');
      const acmeB = await submit(daemon!, 'news@acme.test', ['a3@open.test'], 'acme-b', 'acme');
      const beta = await submit(daemon!, 'news@beta.test', ['c1@open.test'], 'beta', 'beta');
      const none = await submit(daemon!, 'app@sender.test', ['n1@open.test'], 'none');
      await arrivedAll(['c1@open.test', 'n1@open.test']);
      await api.states(beta, { 'c1@open.test': 'delivered/1' });
      await api.states(none, { 'n1@open.test': 'delivered/1' });
      await api.states(acmeA, { 'a1@open.test': 'queued/0', 'a2@open.test': 'queued/0' });

      // Beta holds and cancels its own mail; acme's stays as it is.
      await api.ok('POST', '/v1/queue/pause', { scope: { tenant: 'beta' }, reason: 'list cleaning' }, betaOps);
      const beta2 = await submit(daemon!, 'news@beta.test', ['c2@open.test'], 'beta-2', 'beta');
      expect(await api.ok('POST', '/v1/queue/bounce', { scope: { tenant: 'beta' }, reason: 'stale list', dsn: false }, betaOps)).toEqual({ scope: { tenant: 'beta' }, cancelled: 1, inDelivery: 0, dsns: 0 });
      await api.states(beta2, { 'c2@open.test': 'bounced/0' });
      await api.states(acmeA, { 'a1@open.test': 'queued/0', 'a2@open.test': 'queued/0' });

      // Each sees its own tenant's pauses; the staff see every one.
      await api.ok('POST', '/v1/queue/pause', { scope: { domain: 'elsewhere.test' }, reason: 'staff hold' });
      const scopes = async (token: string) => (await api.ok('GET', '/v1/queue/pauses', undefined, token)).pauses.map((p: { scope: object }) => p.scope);
      expect(await scopes(acmeViewer)).toEqual([{ tenant: 'acme' }]);
      expect(await scopes(betaOps)).toEqual([{ tenant: 'beta' }]);
      expect(await scopes(viewer)).toEqual([{ tenant: 'acme' }, { tenant: 'beta' }, { domain: 'elsewhere.test' }]);
      expect((await api.ok('POST', '/v1/queue/resume', { scope: { tenant: 'beta' } }, betaOps)).ended).toMatchObject({ scope: { tenant: 'beta' }, by: 'beta-ops' });

      // Any other scope is refused to a tenant's token, whatever exists; a viewer of a tenant changes nothing.
      for (const [path, body] of [
        ['/v1/queue/pause', { scope: { domain: 'open.test' }, reason: 'x' }],
        ['/v1/queue/pause', { scope: { tenant: 'beta' }, reason: 'x' }],
        ['/v1/queue/pause', { scope: { tenant: 'no-such-tenant' }, reason: 'x' }],
        ['/v1/queue/resume', { scope: { pool: 'default' } }],
        ['/v1/queue/retry', { scope: { egressIp: '127.0.0.2' } }],
        ['/v1/queue/bounce', { scope: { tenant: 'beta' }, reason: 'x', dsn: false }],
      ] as const) {
        const res = await api.call('POST', path, body, acmeOps);
        const problem = (await res.json()) as object;
        expect({ status: res.status, ...problem }, `${path} ${JSON.stringify(body)}`).toMatchObject({
          status: 403,
          code: 'FORBIDDEN',
          detail: `A token of tenant "acme" acts on that tenant's mail only: {"scope":{"tenant":"acme"}}`,
        });
      }
      const viewerPause = await api.call('POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'x' }, acmeViewer);
      expect(viewerPause.status).toBe(403);
      expect(((await viewerPause.json()) as { detail: string }).detail).toMatch(/^Role "viewer" may not POST/);

      // A message of another tenant is unknown to a tenant's token; its own it cancels.
      const foreign = await api.call('DELETE', `/v1/messages/${acmeB}`, undefined, betaOps);
      expect(foreign.status).toBe(404);
      expect(await foreign.json()).toMatchObject({ code: 'MESSAGE_NOT_FOUND' });
      expect(await api.ok('DELETE', `/v1/messages/${acmeB}`, undefined, acmeOps)).toEqual({ id: acmeB, cancelled: 1, inDelivery: 0, dsns: 0 });

      // Paused mail is due already: nothing to make due now.
      expect(await api.ok('POST', '/v1/queue/retry', { scope: { tenant: 'acme' } }, acmeOps)).toEqual({ scope: { tenant: 'acme' }, retried: 0 });
      expect([...arrived().keys()].filter((to) => to.startsWith('a'))).toEqual([]);
      expect((await api.ok('POST', '/v1/queue/resume', { scope: { tenant: 'acme' } }, acmeOps)).ended).toEqual(paused.pause);
      await arrivedAll(['a1@open.test', 'a2@open.test']);
      await api.states(acmeA, { 'a1@open.test': 'delivered/1', 'a2@open.test': 'delivered/1' });
      await api.states(acmeB, { 'a3@open.test': 'bounced/0' });
      expect(arrived().has('a3@open.test') || arrived().has('c2@open.test')).toBe(false);

      // Audited under the scope asked for, refusals included.
      const pauses = await api.audit('/v1/queue/pause', 7);
      expect(pauses.filter((e: any) => e.actor === 'acme-ops').map((e: any) => [e.target, e.status])).toEqual([
        ['tenant no-such-tenant', 403],
        ['tenant beta', 403],
        ['domain open.test', 403],
        ['tenant acme', 200],
      ]);
    });

    it('refuses a tenant the configuration does not have, but ends the pause of one it no longer has', { timeout: 60_000 }, async () => {
      let api = await start(tenantsConfig());
      await api.ok('POST', '/v1/queue/pause', { scope: { tenant: 'beta' }, reason: 'hold' });
      const held = await submit(daemon!, 'news@beta.test', ['b1@open.test'], 'beta-held', 'beta');
      for (const [path, body] of [
        ['/v1/queue/pause', { scope: { tenant: 'gamma' }, reason: 'x' }],
        ['/v1/queue/resume', { scope: { tenant: 'gamma' } }],
        ['/v1/queue/retry', { scope: { tenant: 'gamma' } }],
        ['/v1/queue/bounce', { scope: { tenant: 'gamma' }, reason: 'x', dsn: false }],
      ] as const) {
        const res = await api.call('POST', path, body);
        expect({ status: res.status, ...((await res.json()) as object) }, path).toMatchObject({
          status: 400,
          code: 'INVALID_REQUEST',
          errors: [{ path: 'body.scope.tenant', message: 'no tenant named "gamma" in the configuration' }],
        });
      }

      // Beta leaves the configuration with its mail paused: the pause can still be ended.
      await daemon!.stop();
      api = await start(tenantsConfig(['acme']));
      expect((await api.ok('GET', '/v1/queue/pauses', undefined, viewer)).pauses.map((p: { scope: object }) => p.scope)).toEqual([{ tenant: 'beta' }]);
      const again = await api.call('POST', '/v1/queue/pause', { scope: { tenant: 'beta' }, reason: 'x' });
      expect(again.status).toBe(400);
      expect((await api.ok('POST', '/v1/queue/resume', { scope: { tenant: 'beta' } })).ended).toMatchObject({ scope: { tenant: 'beta' } });
      expect((await api.call('POST', '/v1/queue/resume', { scope: { tenant: 'beta' } })).status).toBe(400);
      await arrivedAll(['b1@open.test']);
      await api.states(held, { 'b1@open.test': 'delivered/1' });
    });

    it('refuses bad requests with a problem naming the path, and changes nothing', { timeout: 30_000 }, async () => {
      const api = await start();
      const scope = { domain: 'example.test' };
      const cases: Array<[string, string, object | undefined, string]> = [
        ['POST', '/v1/queue/pause', { reason: 'x' }, 'body.scope'],
        ['POST', '/v1/queue/pause', { scope: {}, reason: 'x' }, 'body.scope'],
        ['POST', '/v1/queue/pause', { scope: { domain: 'a.test', pool: 'b' }, reason: 'x' }, 'body.scope'],
        ['POST', '/v1/queue/pause', { scope: { tenant: 'acme' }, reason: 'x' }, 'body.scope.tenant'],
        ['POST', '/v1/queue/pause', { scope: { egressIp: 'not-an-ip' }, reason: 'x' }, 'body.scope.egressIp'],
        ['POST', '/v1/queue/pause', { scope: { egressIp: 'fe80::1%eth0' }, reason: 'x' }, 'body.scope.egressIp'],
        ['POST', '/v1/queue/pause', { scope: { domain: 'a b.test' }, reason: 'x' }, 'body.scope.domain'],
        ['POST', '/v1/queue/pause', { scope }, 'body.reason'],
        ['POST', '/v1/queue/pause', { scope, reason: 'x', for: 'soon' }, 'body.for'],
        ['POST', '/v1/queue/pause', { scope, reason: 'x', for: '1h', until: '2099-01-01T00:00:00Z' }, 'body'],
        ['POST', '/v1/queue/pause', { scope, reason: 'x', until: '2001-01-01T00:00:00Z' }, 'body.until'],
        ['POST', '/v1/queue/pause', { scope, reason: 'x', for: '400d' }, 'body.for'],
        ['POST', '/v1/queue/resume', { scope: { pool: '' } }, 'body.scope.pool'],
        ['POST', '/v1/queue/retry', {}, 'body.scope'],
        ['POST', '/v1/queue/bounce', { scope, reason: 'x' }, 'body.dsn'],
        ['POST', '/v1/queue/bounce', { scope, dsn: true }, 'body.reason'],
        ['DELETE', '/v1/messages/some-id?dsn=maybe', undefined, 'querystring.dsn'],
      ];
      for (const [method, path, body, errorPath] of cases) {
        const res = await api.call(method, path, body);
        const problem = (await res.json()) as { code: string; errors?: Array<{ path: string }> };
        expect({ status: res.status, ...problem }, `${method} ${path} ${JSON.stringify(body)}`).toMatchObject({ status: 400, code: 'INVALID_REQUEST', errors: [expect.objectContaining({ path: errorPath })] });
      }
      expect((await api.ok('GET', '/v1/queue/pauses', undefined, viewer)).pauses).toEqual([]);
    });
  });
}

interface MessageJson {
  recipients: Array<{
    address: string;
    state: string;
    attempts: number;
    nextAttemptAt: string | null;
    dsn: { id: string } | null;
    events: Array<{ attempt: number; disposition: string; enhanced: string | null; response: string; stage: string; bounceClass: string; egressIp: string | null }>;
  }>;
}
