import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ApiRole } from '../../src/config/api-schema.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createControlApi, type ControlApi } from '../../src/control-api/server.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { freePort } from '../helpers/free-port.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { runRookery, type CliRun } from '../helpers/rookery-cli.ts';
import { until } from '../helpers/until.ts';

/**
 * The `rookery` API commands as an operator runs them: the real command in its own process
 * against a real control API on loopback over a SQLite queue holding delivered, deferred and new
 * mail, with DNS from a fixture zone. Human output, --json (the API's JSON as it came), paging
 * with --cursor and --all, the IP operations and warm-up restarts, explain, the queue's pauses,
 * retries and cancellations, reload, and the exit codes scripts rely on: 1 no token, 2 usage, 3 a
 * refusal (400, 401, 403, 404, a configuration's 422), 4 no usable answer (a 500, an API that is
 * not there).
 */

const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const logger = createLogger('silent');

const tokens = Object.fromEntries((['admin', 'operator', 'viewer', 'sender'] as const).map((role) => [role, generateApiToken()])) as Record<ApiRole, string>;
/** Read again by each reload: the reload tests change it, and put it back. */
const SOURCES: ConfigInput = {
  ips: [{ address: '127.0.0.2', hostname: 'a.mta.test' }, { address: '2001:db8::7', pool: 'v6' }],
  tenants: { acme: { senderDomains: ['sender.test'], pools: ['default'] } },
  returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'sender.test': {} } },
};
const resolver = createFixtureResolver({
  'dest.test': { mx: [{ exchange: 'mx1.dest.test', priority: 10 }] },
  'mx1.dest.test': { a: ['192.0.2.10'] },
});

const temp = await createTempDir('rookery-cli-api');
const clock = manualClock(T0);
let store: Store;
let api: ControlApi;
let apiUrl: string;
const opened: Array<{ stop(): Promise<void> }> = [];

function startApi(on: Store): ControlApi {
  const control = createControlApi({
    config: {
      api: {
        listen: { host: '127.0.0.1', port: 0 },
        tokens: Object.entries(tokens).map(([role, token]) => ({ name: `${role}-token`, role: role as ApiRole, hash: hashApiToken(token) })),
        authFailures: { max: 100, window: 60_000 },
      },
    },
    store: on,
    clock,
    logger,
    metrics: new Metrics({ processMetrics: false }),
    checks: { storage: () => on.ping() },
    ...apiSources({ store: on, clock, config: SOURCES, resolver }),
  });
  opened.push(control);
  return control;
}

beforeAll(async () => {
  store = createSqliteStore({ path: temp.file('queue.db'), clock, logger });
  await store.migrate();
  await fill(store);
  api = startApi(store);
  const { host, port } = await api.start();
  apiUrl = `http://${host}:${port}`;
});

afterAll(async () => {
  for (const item of opened.reverse()) await item.stop();
  await store?.close();
  await temp.remove();
});

/** Runs the real command in a fresh process, against the test's API with the operator's token unless `env` says otherwise. */
function rookery(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runRookery(args, { ROOKERY_API_URL: apiUrl, ROOKERY_API_TOKEN: tokens.operator, ...env });
}

async function apiJson(path: string, token = tokens.admin): Promise<unknown> {
  return (await fetch(`${apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })).json();
}

describe('rookery API commands: who, where and with which token', () => {
  it('shows the token in use, for a person and as the API JSON', async () => {
    const human = await rookery(['whoami']);
    expect(human).toEqual({ code: 0, stdout: 'Name    operator-token\nRole    operator\nTenant  (none)\n', stderr: '' });
    const json = await rookery(['whoami', '--json'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ name: 'viewer-token', role: 'viewer', tenant: null });
  });

  it('reads the token from --token-file before ROOKERY_API_TOKEN, and the API from --api before ROOKERY_API_URL', async () => {
    const file = temp.file('admin.token');
    writeFileSync(file, `${tokens.admin}\n`, { mode: 0o600 });
    const closed = `http://127.0.0.1:${await freePort()}`;
    const result = await rookery(['whoami', '--json', '--token-file', file, '--api', apiUrl], { ROOKERY_API_URL: closed, ROOKERY_API_TOKEN: tokens.viewer });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ name: 'admin-token', role: 'admin' });
    // Behind a proxy at a path prefix: the routes are found below it (here, not found: 404, exit 3).
    expect(await rookery(['whoami', '--api', `${apiUrl}/rookery`])).toMatchObject({ code: 3, stderr: 'rookery whoami: 404 NOT_FOUND: Route GET /rookery/v1/whoami not found\n' });
  });

  it('has no way to give a token as an argument, where ps would show it', async () => {
    const result = await rookery(['whoami', '--token', tokens.admin], { ROOKERY_API_TOKEN: undefined });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown option '--token'");
    expect(result.stderr).not.toContain(tokens.admin);
  });

  it('exits 1 without a usable token or API URL, naming what to fix', async () => {
    expect(await rookery(['queue'], { ROOKERY_API_TOKEN: undefined })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'rookery queue: no API token: set ROOKERY_API_TOKEN or give --token-file PATH (rookery token create makes one)\n',
    });
    expect(await rookery(['queue', '--token-file', temp.file('missing.token')])).toEqual({ code: 1, stdout: '', stderr: `rookery queue: --token-file ${temp.file('missing.token')}: no such file\n` });
    const notToken = temp.file('not-a.token');
    writeFileSync(notToken, 'password: hunter2 and more\n');
    const bad = await rookery(['queue', '--token-file', notToken]);
    expect(bad).toMatchObject({ code: 1, stderr: `rookery queue: --token-file ${notToken}: does not hold an API token (one line, as rookery token create prints it)\n` });
    expect(bad.stderr).not.toContain('hunter2');
    expect(await rookery(['queue'], { ROOKERY_API_URL: 'ftp://127.0.0.1' })).toMatchObject({ code: 1, stderr: 'rookery queue: ROOKERY_API_URL: not an http or https URL: ftp:\n' });
    expect(await rookery(['queue', '--api', 'http://ops:secret@127.0.0.1:8025'])).toMatchObject({
      code: 1,
      stderr: 'rookery queue: --api: a user or password in the URL is not used; give the token with ROOKERY_API_TOKEN or --token-file\n',
    });
  });

  it('exits 3 on a refusal: a wrong token (401) and a role that may not (403), one line each', async () => {
    const wrong = await rookery(['queue'], { ROOKERY_API_TOKEN: generateApiToken() });
    expect(wrong).toEqual({ code: 3, stdout: '', stderr: 'rookery queue: 401 AUTH_FAILED: The API token is not valid\n' });
    const forbidden = await rookery(['ips', 'suspend', '127.0.0.2', '--for', '1h', '--reason', 'test'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(forbidden).toEqual({
      code: 3,
      stdout: '',
      stderr: 'rookery ips suspend: 403 FORBIDDEN: Role "viewer" may not POST /v1/ips/:address/suspend; allowed: admin, operator\n',
    });
    // --json: the problem document as the API sent it, for a script to read its code.
    const json = await rookery(['audit', '--json'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 403, code: 'FORBIDDEN', instance: '/v1/audit' });
  });

  it('exits 4 when there is no usable answer: nothing listening, a server error', async () => {
    const port = await freePort();
    expect(await rookery(['queue'], { ROOKERY_API_URL: `http://127.0.0.1:${port}` })).toEqual({
      code: 4,
      stdout: '',
      stderr: `rookery queue: cannot reach the API at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    });
    // An API whose queue is gone answers 500.
    const broken = createSqliteStore({ path: temp.file('broken.db'), clock, logger });
    await broken.migrate();
    const brokenApi = startApi(broken);
    const { host, port: brokenPort } = await brokenApi.start();
    await broken.close();
    const failed = await rookery(['queue', '--json'], { ROOKERY_API_URL: `http://${host}:${brokenPort}` });
    expect(failed.code).toBe(4);
    expect(failed.stderr).toBe('rookery queue: 500 INTERNAL: Internal server error\n');
    expect(JSON.parse(failed.stdout)).toMatchObject({ status: 500, code: 'INTERNAL' });
  });

  it('refuses bad arguments as usage errors (exit 2) before sending anything', async () => {
    expect(await rookery(['ips', 'show'])).toEqual({ code: 2, stdout: '', stderr: 'rookery ips show: give ADDRESS\n(see rookery ips show --help)\n' });
    expect(await rookery(['ips', 'suspend', '127.0.0.2', '--for', '2h'])).toMatchObject({ code: 2, stderr: 'rookery ips suspend: --reason is required\n(see rookery ips suspend --help)\n' });
    expect(await rookery(['ips', 'weight', 'set', '127.0.0.2', 'lots', '--reason', 'x'])).toMatchObject({ code: 2, stderr: expect.stringContaining('WEIGHT "lots": not a whole number') });
    expect(await rookery(['messages', '--limit', 'ten'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--limit "ten": not a whole number') });
    // URL resolution would drop a `..` segment and ask another route.
    expect(await rookery(['messages', 'show', '..'])).toMatchObject({ code: 2, stderr: expect.stringContaining('"..": not a value a route can take') });
    expect(await rookery(['ips', 'weight'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^rookery: missing subcommand of "ips weight"; one of:\n {2}rookery ips weight set /) });
    expect(await rookery(['domains', 'check', 'sender.test', '--api', apiUrl])).toMatchObject({ code: 2, stderr: expect.stringContaining('--api is for the check asked of the daemon: add --remote') });
    expect(await rookery(['domains', 'check', 'sender.test', '--remote', '--selector', 's1'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--selector is for the check run here') });
  });
});

describe('rookery queue and messages', () => {
  it('shows the counts and the deferred backlog, times in UTC', async () => {
    const result = await rookery(['queue']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        'Recipients: 2 queued, 0 delivering, 1 delivered, 1 bounced',
        '',
        'Deferred: 1 recipient, oldest accepted 2026-11-30T10:00:00Z (1h ago)',
        '',
        'DOMAIN     DEFERRED  OLDEST                AGE',
        'dest.test         1  2026-11-30T10:00:00Z  1h',
        '',
        'POOL     DEFERRED  OLDEST                AGE',
        'default         1  2026-11-30T10:00:00Z  1h',
        '',
        'EGRESS IP  DEFERRED  OLDEST                AGE',
        '127.0.0.2         1  2026-11-30T10:00:00Z  1h',
        '',
      ].join('\n'),
    );
    const json = await rookery(['queue', '--json', '--top', '5']);
    expect(JSON.parse(json.stdout)).toEqual(await apiJson('/v1/queue?top=5'));
  });

  it('lists messages with filters, a page at a time, and every page with --all', async () => {
    const all = await rookery(['messages']);
    expect(all.code).toBe(0);
    expect(all.stdout.split('\n')[0]).toMatch(/^ID +CREATED +SENDER +POOL +SIZE +RECIPIENTS$/);
    expect(all.stdout).toMatch(/^m-1 +2026-11-30T10:00:00Z +app@sender\.test +default +\d+ +1 queued, 1 delivered$/m);
    expect(all.stdout.trim().split('\n').slice(1).map((line) => line.split(' ')[0])).toEqual(['m-3', 'm-2', 'm-1']);
    expect(all.stderr).toBe('');

    const filtered = await rookery(['messages', '--sender', 'news@sender.test']);
    expect(filtered.stdout.trim().split('\n').slice(1).map((line) => line.split(' ')[0])).toEqual(['m-2']);

    const first = await rookery(['messages', '--limit', '2']);
    expect(first.stdout.trim().split('\n')).toHaveLength(3);
    const cursor = /^\(more: add --cursor (\S+), or --all for every page\)$/.exec(first.stderr.trim())?.[1];
    expect(cursor, first.stderr).toBeDefined();
    const second = await rookery(['messages', '--limit', '2', '--cursor', cursor!, '--json']);
    expect(JSON.parse(second.stdout)).toMatchObject({ items: [{ id: 'm-1' }], nextCursor: null });

    const every = await rookery(['messages', '--all', '--limit', '1', '--json']);
    expect(every.code).toBe(0);
    expect(JSON.parse(every.stdout)).toEqual(await apiJson('/v1/messages'));

    const bad = await rookery(['messages', '--since', 'yesterday']);
    expect(bad).toMatchObject({ code: 3, stderr: 'rookery messages: 400 INVALID_REQUEST: querystring.since: must match format "date-time"\n' });
  });

  it('shows one message: envelope, recipients, each attempt with its reply', async () => {
    const result = await rookery(['messages', 'show', 'm-1']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('ID          m-1\nCreated     2026-11-30T10:00:00Z\nSender      app@sender.test\nMessage-ID  <m-1@sender.test>\nPool        default\n');
    expect(result.stdout).toMatch(/^later@dest\.test +queued +1 +2026-11-30T10:11:00Z +2026-11-30T10:01:00Z +-$/m);
    expect(result.stdout).toMatch(/^2026-11-30T10:01:00Z +later@dest\.test +1 +transient +127\.0\.0\.2 +mx1\.dest\.test +451 4\.7\.1 Greylisted, try later$/m);
    expect(result.stdout).toMatch(/^2026-11-30T10:01:00Z +ok@dest\.test +1 +delivered +127\.0\.0\.2 +mx1\.dest\.test +250 2\.0\.0 Ok: queued as ABC$/m);
    // A remote reply cannot reach the terminal as control characters.
    const hostile = await rookery(['messages', 'show', 'm-3']);
    expect(hostile.stdout).toContain('550 5.1.1 ?[31mred?[0m no such user');
    expect(hostile.stdout).not.toContain('\u001b');

    expect(await rookery(['messages', 'show', 'nope'])).toEqual({ code: 3, stdout: '', stderr: 'rookery messages show: 404 MESSAGE_NOT_FOUND: No message with queue id nope\n' });
  });
});

describe('rookery ips', () => {
  it('lists the IPs and shows one, an IPv6 address as typed', async () => {
    const list = await rookery(['ips']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ADDRESS +POOL +WEIGHT +WARM-UP +RESTRICTED +BLOCKLISTED +LAST SENT\n127\.0\.0\.2 +default +100 +- +- +- +-\n2001:db8::7 +v6 +100 +- +- +- +-\n$/);
    const v6 = await rookery(['ips', 'show', '2001:db8::7']);
    expect(v6.code).toBe(0);
    expect(v6.stdout).toContain('Address    2001:db8::7\nHostname   ');
    expect(v6.stdout).toMatch(/^gmail +100 +- +0 +0 +0 +0 +- +- +-$/m);
    expect(await rookery(['ips', 'show', '192.0.2.9'])).toMatchObject({ code: 3, stderr: 'rookery ips show: 404 NOT_FOUND: No egress IP 192.0.2.9 is configured (ips[].address)\n' });
    expect(await rookery(['ips', 'show', 'mail.example'])).toMatchObject({ code: 3, stderr: 'rookery ips show: 400 INVALID_REQUEST: params.address: not an IP address: "mail.example"\n' });
  });

  it('suspends for a provider and resumes, sets a weight and clears it, each answered with the IP after the change', async () => {
    const suspended = await rookery(['ips', 'suspend', '127.0.0.2', '--provider', 'gmail', '--for', '2h', '--reason', 'Gmail postmaster ticket 4711']);
    expect(suspended.code).toBe(0);
    expect(suspended.stdout).toMatch(/^RESTRICTION +SCOPE +UNTIL +RULE +BY +REASON\nsuspend +gmail +2026-11-30T13:00:00Z +operator +operator-token +Gmail postmaster ticket 4711$/m);
    expect((await rookery(['ips'])).stdout).toMatch(/^127\.0\.0\.2 +default +100 +- +suspend gmail +- +-$/m);
    const json = JSON.parse((await rookery(['ips', 'show', '127.0.0.2', '--json'])).stdout) as { restrictions: unknown[] };
    expect(json.restrictions).toEqual([expect.objectContaining({ scope: 'provider', provider: 'gmail', action: 'suspend', until: '2026-11-30T13:00:00.000Z', by: 'operator-token' })]);

    const unknown = await rookery(['ips', 'suspend', '127.0.0.2', '--provider', 'nosuch', '--for', '2h', '--reason', 'x']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^rookery ips suspend: 400 INVALID_REQUEST: body\.provider: unknown provider "nosuch" \(known: .*gmail.*\)\n$/);
    const both = await rookery(['ips', 'suspend', '127.0.0.2', '--for', '2h', '--until', '2026-12-01T00:00:00Z', '--reason', 'x']);
    expect(both).toMatchObject({ code: 3, stderr: 'rookery ips suspend: 400 INVALID_REQUEST: body: give exactly one of until and for\n' });

    const resumed = await rookery(['ips', 'resume', '127.0.0.2', '--provider', 'gmail']);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('No restrictions.\n');

    const drained = await rookery(['ips', 'weight', 'set', '127.0.0.2', '0', '--reason', 'draining before the move']);
    expect(drained.code).toBe(0);
    expect(drained.stdout).toMatch(/^Weight +0, set by operator-token at 2026-11-30T11:00:00Z: draining before the move \(configured 100\)$/m);
    expect((await rookery(['ips'])).stdout).toMatch(/^127\.0\.0\.2 +default +0 \(set; configured 100\) +/m);
    const cleared = await rookery(['ips', 'weight', 'clear', '127.0.0.2', '--json']);
    expect(cleared.code).toBe(0);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ address: '127.0.0.2', weight: 100, weightOverride: null });
  });
});

describe('rookery domains', () => {
  it('lists the sender domains', async () => {
    const result = await rookery(['domains']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^DOMAIN +RETURN PATH +SELECTOR +ALGORITHM +SIGNING +IN DNS +LOADED +ERROR\nsender\.test +bounces\.sender\.test +- +- +- +- +- +-\n$/);
  });

  it('asks the daemon to check a domain with --remote: the report, exit 1 for its errors', async () => {
    const result = await rookery(['domains', 'check', 'sender.test', '--remote']);
    expect(result.stdout).toMatch(/^Domain sender\.test \(return path bounces\.sender\.test\), checked 2026-11-30T11:00:00\.000Z\n/);
    expect(result.stdout).toMatch(/^sender\.test: not ready \(/m);
    expect(result.code).toBe(1);
    const json = await rookery(['domains', 'check', 'sender.test', '--remote', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ domain: 'sender.test', status: 'error' });
    expect(await rookery(['domains', 'check', 'other.test', '--remote'])).toMatchObject({
      code: 3,
      stderr: 'rookery domains check: 404 NOT_FOUND: other.test is not a configured sender domain (dkim.domains, returnPath.domains)\n',
    });
    expect(await rookery(['domains', 'check', 'sender.test', '--remote'], { ROOKERY_API_TOKEN: tokens.viewer })).toMatchObject({ code: 3, stderr: expect.stringContaining('403 FORBIDDEN') });
  });
});

describe('rookery audit', () => {
  it("lists what was changed, by whom, newest first; --all --json is every page as one answer", async () => {
    await rookery(['ips', 'weight', 'clear', '2001:db8::7']);
    await until(async () => ((await apiJson('/v1/audit?route=/v1/ips/:address/weight')) as { items: unknown[] }).items.length >= 3, 'the audit entries');
    const result = await rookery(['audit', '--route', '/v1/ips/:address/weight'], { ROOKERY_API_TOKEN: tokens.admin });
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^AT +ACTOR +CLIENT +REQUEST +TARGET +STATUS +OUTCOME$/);
    // The target is the IP the request acted on; `(changed)`: the entry holds the change, before and after (--json).
    expect(lines[1]).toMatch(/^2026-11-30T11:00:00Z +operator-token +127\.0\.0\.1 +DELETE \/v1\/ips\/:address\/weight +2001:db8::7 +200 +OK \(changed\)$/);
    expect(lines.slice(1).map((line) => line.split(/ {2,}/)[3])).toEqual(['DELETE /v1/ips/:address/weight', 'DELETE /v1/ips/:address/weight', 'PUT /v1/ips/:address/weight']);

    const every = await rookery(['audit', '--all', '--limit', '2', '--json'], { ROOKERY_API_TOKEN: tokens.admin });
    expect(every.code).toBe(0);
    expect(JSON.parse(every.stdout)).toEqual(await apiJson('/v1/audit?limit=1000'));
    expect(await rookery(['audit', '--status', '2xx'], { ROOKERY_API_TOKEN: tokens.admin })).toMatchObject({ code: 2, stderr: expect.stringContaining('--status "2xx": not a whole number') });
  });
});

describe('rookery ips warmup', () => {
  it('restarts a warm-up plan from today in place of the configured one, and clears it', async () => {
    // 127.0.0.2 has no plan of its own: the API names the plans to choose from.
    const none = await rookery(['ips', 'warmup', 'restart', '127.0.0.2', '--reason', 'moved to a new /24']);
    expect(none).toMatchObject({ code: 3, stdout: '' });
    expect(none.stderr).toMatch(/^rookery ips warmup restart: 400 INVALID_REQUEST: body\.plan: required: 127\.0\.0\.2 has no warm-up plan configured \(ips\[\]\.warmup\); name one of .*conservative.*\n$/);
    expect(await rookery(['ips', 'warmup', 'restart', '127.0.0.2', '--plan', 'conservative'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--reason is required') });
    expect(await rookery(['ips', 'warmup', 'restart', '127.0.0.2', '--plan', 'conservative', '--reason', 'x'], { ROOKERY_API_TOKEN: tokens.viewer })).toMatchObject({
      code: 3,
      stderr: 'rookery ips warmup restart: 403 FORBIDDEN: Role "viewer" may not POST /v1/ips/:address/warmup; allowed: admin, operator\n',
    });

    const restarted = await rookery(['ips', 'warmup', 'restart', '127.0.0.2', '--plan', 'conservative', '--reason', 'moved to a new /24']);
    expect(restarted.code).toBe(0);
    expect(restarted.stdout).toContain(
      'Warm-up       conservative: warming, day 0 (counted from 2026-11-30T00:00:00Z)\nRestarted by  operator-token at 2026-11-30T11:00:00Z, plan conservative: moved to a new /24\n',
    );
    expect(restarted.stdout).toMatch(/^gmail +100 +- +0 +0 +0 +0 +0\/\d+ +0\/\d+ +-$/m);
    expect((await rookery(['ips'])).stdout).toMatch(/^127\.0\.0\.2 +default +100 +conservative: warming, day 0 +- +- +-$/m);

    const cleared = await rookery(['ips', 'warmup', 'clear', '127.0.0.2']);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain('Warm-up    none (warm)\n');
    expect(cleared.stdout).not.toContain('Restarted by');
    const json = await rookery(['ips', 'warmup', 'clear', '127.0.0.2', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ address: '127.0.0.2', warmupOverride: null, warmup: null });
  });
});

describe('rookery explain', () => {
  it('reports the tenant, the pool and its rule, the next hops, each egress IP with what keeps it from sending, DKIM and the return path', async () => {
    const sender = ['explain', 'app@sender.test', 'someone@dest.test', '--tenant', 'acme'];
    const head = [
      'Sender       app@sender.test',
      'Recipient    someone@dest.test',
      'At           2026-11-30T11:00:00Z',
      'Tenant       tenant acme may send as app@sender.test (senderDomains: sender.test)',
      'Pool         pool default: no pool of its user, and no pools.*.senders covers sender.test (rule: default)',
      'Route        MX to site mx1.dest.test, provider other',
      "DKIM         no DKIM key for sender.test and no dkim.fallback: unsigned (assuming the From header's domain is sender.test)",
      'Return path  b+<queue id>.<recipient id>.<tag>@bounces.sender.test: VERP (returnPath.domains.sender.test): an envelope sender per recipient naming it, so each recipient goes in a transaction of its own',
      '',
      'NEXT HOP    PORT  PREFERENCE  NAME',
      '192.0.2.10    25          10  mx1.dest.test',
      '',
      'Egress IPs of pool default toward mx1.dest.test (provider other):',
      'ADDRESS    HOSTNAME    ELIGIBLE  SHARE  WEIGHT  CONFIGURED',
    ];
    expect(await rookery(sender)).toEqual({ code: 0, stdout: [...head, '127.0.0.2  a.mta.test  yes        100%     100         100', ''].join('\n'), stderr: '' });

    // Every check that fails is listed under the table.
    expect((await rookery(['ips', 'suspend', '127.0.0.2', '--for', '1h', '--reason', 'ticket 9'])).code).toBe(0);
    try {
      const suspended = await rookery(sender);
      expect(suspended.stdout).toBe(
        [
          ...head,
          '127.0.0.2  a.mta.test  no           0%     100         100',
          '127.0.0.2 may not send now:',
          '  suspended: suspended for every provider until 2026-11-30T12:00:00.000Z by operator-token: ticket 9',
          '',
        ].join('\n'),
      );
      const json = await rookery([...sender, '--json']);
      expect(JSON.parse(json.stdout)).toEqual(await apiJson('/v1/explain?sender=app@sender.test&recipient=someone@dest.test&tenant=acme'));
    } finally {
      await rookery(['ips', 'resume', '127.0.0.2']);
    }
  });

  it('reports a lookup failure as the route, and refuses what the configuration does not have', async () => {
    const nowhere = await rookery(['explain', 'app@sender.test', 'someone@nowhere.test'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(nowhere.code).toBe(0);
    expect(nowhere.stdout).toContain('Tenant       (none)\n');
    expect(nowhere.stdout).toContain('Route        none: 5.1.2 domain nowhere.test does not exist (NXDOMAIN) (the recipient would bounce)\n');
    expect(nowhere.stdout).not.toContain('NEXT HOP');
    expect(nowhere.stdout).not.toContain('Egress IPs');

    expect(await rookery(['explain', 'app@sender.test', 'someone@dest.test', '--user', 'bob'])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'rookery explain: 400 INVALID_REQUEST: querystring.user: no SMTP user "bob" (smtp.users[].username: none)\n',
    });
    expect(await rookery(['explain', 'not-an-address', 'someone@dest.test'])).toMatchObject({ code: 3, stderr: 'rookery explain: 400 INVALID_REQUEST: querystring.sender: not an address (local@domain): "not-an-address"\n' });
    expect(await rookery(['explain', 'app@sender.test'])).toMatchObject({ code: 2, stderr: 'rookery explain: give RECIPIENT\n(see rookery explain --help)\n' });
    expect(await rookery(['explain', 'app@sender.test', 'someone@dest.test'], { ROOKERY_API_TOKEN: tokens.sender })).toMatchObject({ code: 3, stderr: expect.stringContaining('403 FORBIDDEN') });
  });
});

describe('rookery queue pause, resume, retry and bounce; rookery messages cancel', () => {
  it('pauses a domain, a pool and an egress IP, lists the pauses and resumes them', async () => {
    expect(await rookery(['queue', 'pauses'])).toEqual({ code: 0, stdout: 'No pauses in force.\n', stderr: '' });
    const paused = await rookery(['queue', 'pause', '--domain', 'dest.test', '--for', '2h', '--reason', 'Outlook deferring everything']);
    expect(paused).toEqual({ code: 0, stdout: 'Paused domain dest.test until 2026-11-30T13:00:00Z, by operator-token at 2026-11-30T11:00:00Z: Outlook deferring everything\n', stderr: '' });
    const longer = await rookery(['queue', 'pause', '--domain', 'dest.test', '--until', '2026-12-01T08:00:00Z', '--reason', 'ticket 4711']);
    expect(longer.stdout).toBe(
      'Paused domain dest.test until 2026-12-01T08:00:00Z, by operator-token at 2026-11-30T11:00:00Z: ticket 4711\n' +
        'It replaces the pause of domain dest.test until 2026-11-30T13:00:00Z, by operator-token at 2026-11-30T11:00:00Z: Outlook deferring everything\n',
    );
    // Without --for or --until: until resumed.
    expect((await rookery(['queue', 'pause', '--pool', 'default', '--reason', 'list cleaning'])).stdout).toBe(
      'Paused pool default until resumed, by operator-token at 2026-11-30T11:00:00Z: list cleaning\n',
    );
    const ip = await rookery(['queue', 'pause', '--ip', '2001:db8::7', '--for', '30m', '--reason', 'moving the IP', '--json']);
    expect(JSON.parse(ip.stdout)).toEqual({ pause: { scope: { egressIp: '2001:db8::7' }, reason: 'moving the IP', by: 'operator-token', createdAt: '2026-11-30T11:00:00.000Z', until: '2026-11-30T11:30:00.000Z' }, replaced: null });

    // Oldest first; those of one instant (the clock stands still here) by kind, then value.
    const list = await rookery(['queue', 'pauses'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(list).toEqual({
      code: 0,
      stdout: [
        'SCOPE                  UNTIL                 SINCE                 BY              REASON',
        'domain dest.test       2026-12-01T08:00:00Z  2026-11-30T11:00:00Z  operator-token  ticket 4711',
        'egress IP 2001:db8::7  2026-11-30T11:30:00Z  2026-11-30T11:00:00Z  operator-token  moving the IP',
        'pool default           resumed               2026-11-30T11:00:00Z  operator-token  list cleaning',
        '',
      ].join('\n'),
      stderr: '',
    });
    expect(JSON.parse((await rookery(['queue', 'pauses', '--json'])).stdout)).toEqual(await apiJson('/v1/queue/pauses'));

    expect(await rookery(['queue', 'resume', '--domain', 'dest.test'])).toEqual({ code: 0, stdout: 'Resumed domain dest.test: ended its pause, by operator-token at 2026-11-30T11:00:00Z: ticket 4711\n', stderr: '' });
    expect((await rookery(['queue', 'resume', '--domain', 'dest.test'])).stdout).toBe('No pause of domain dest.test was in force.\n');
    expect((await rookery(['queue', 'resume', '--pool', 'default'])).code).toBe(0);
    expect(JSON.parse((await rookery(['queue', 'resume', '--ip', '2001:db8::7', '--json'])).stdout)).toMatchObject({ ended: { scope: { egressIp: '2001:db8::7' } } });
    expect((await rookery(['queue', 'pauses'])).stdout).toBe('No pauses in force.\n');
  });

  it('refuses a scope that is not exactly one, before sending; the API refuses a bad value or role', async () => {
    const usage = 'give one of --domain, --pool, --ip';
    expect(await rookery(['queue', 'pause', '--reason', 'x'])).toEqual({ code: 2, stdout: '', stderr: `rookery queue pause: ${usage}\n(see rookery queue pause --help)\n` });
    expect(await rookery(['queue', 'retry', '--domain', 'dest.test', '--pool', 'default'])).toMatchObject({ code: 2, stderr: `rookery queue retry: ${usage}, not 2\n(see rookery queue retry --help)\n` });
    expect(await rookery(['queue', 'pause', '--domain', 'dest.test'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--reason is required') });
    expect(await rookery(['queue', 'bounce', '--domain', 'dest.test'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--reason is required') });

    expect(await rookery(['queue', 'pause', '--ip', 'nonsense', '--reason', 'x'])).toEqual({ code: 3, stdout: '', stderr: 'rookery queue pause: 400 INVALID_REQUEST: body.scope.egressIp: not an IP address: "nonsense"\n' });
    expect(await rookery(['queue', 'pause', '--domain', 'dest.test', '--for', '2h', '--until', '2026-12-01T00:00:00Z', '--reason', 'x'])).toMatchObject({
      code: 3,
      stderr: 'rookery queue pause: 400 INVALID_REQUEST: body: give at most one of until and for\n',
    });
    const forbidden = await rookery(['queue', 'bounce', '--pool', 'default', '--reason', 'x', '--json'], { ROOKERY_API_TOKEN: tokens.viewer });
    expect(forbidden).toMatchObject({ code: 3, stderr: 'rookery queue bounce: 403 FORBIDDEN: Role "viewer" may not POST /v1/queue/bounce; allowed: admin, operator\n' });
    expect(JSON.parse(forbidden.stdout)).toMatchObject({ status: 403, code: 'FORBIDDEN', instance: '/v1/queue/bounce' });
  });

  it('makes waiting mail due now, and cancels the queued mail of a scope and of one message, with a DSN when asked', async () => {
    const now = clock.now();
    await store.enqueue([newMessage('m-4', now, { recipients: ['a@retry.test', 'b@retry.test'] })]);
    // Deferred an hour: what a retry makes due now (a first attempt scheduled later it leaves alone).
    const claimed = await store.claimDue({ now, limit: 100, owner: 'node-a', leaseMs: 60_000 });
    const deferred = claimed.filter((r) => r.messageId === 'm-4');
    await store.release(claimed.filter((r) => r.messageId !== 'm-4'), now);
    await store.recordAttempts(deferred.map((r) => ({ recipientId: r.recipientId, token: r.token, outcome: DEFERRED, newState: 'queued' as const, nextAttemptAt: now + 3_600_000, countsAsAttempt: true })));
    await store.enqueue([
      newMessage('m-5', now, { recipients: ['a@cancel.test', 'b@cancel.test'] }),
      newMessage('m-6', now, { recipients: ['c@other.test'] }),
      newMessage('m-7', now, { recipients: ['d@other.test'] }),
    ]);
    expect(await rookery(['queue', 'retry', '--domain', 'retry.test'])).toEqual({ code: 0, stdout: 'Made 2 queued recipients of domain retry.test due now.\n', stderr: '' });
    expect(JSON.parse((await rookery(['queue', 'retry', '--domain', 'retry.test', '--json'])).stdout)).toEqual({ scope: { domain: 'retry.test' }, retried: 0 });

    const bounced = await rookery(['queue', 'bounce', '--domain', 'cancel.test', '--reason', 'spam run from a compromised account', '--dsn']);
    expect(bounced).toEqual({
      code: 0,
      stdout: [
        'Cancelled    2 queued recipients of domain cancel.test: bounced, never attempted again',
        'In delivery  0, left to finish',
        'DSNs         1 queued to the senders',
        '',
      ].join('\n'),
      stderr: '',
    });
    expect((await rookery(['messages', 'show', 'm-5'])).stdout).toMatch(/^a@cancel\.test +bounced +/m);

    const cancelled = await rookery(['messages', 'cancel', 'm-6', '--reason', 'sent by mistake']);
    expect(cancelled).toEqual({
      code: 0,
      stdout: ['Cancelled    1 queued recipient of message m-6: bounced, never attempted again', 'In delivery  0, left to finish', 'DSNs         0 queued to the senders', ''].join('\n'),
      stderr: '',
    });
    expect(JSON.parse((await rookery(['messages', 'cancel', 'm-7', '--dsn', '--json'])).stdout)).toEqual({ id: 'm-7', cancelled: 1, inDelivery: 0, dsns: 1 });
    // Nothing left to cancel is not an error.
    expect(JSON.parse((await rookery(['messages', 'cancel', 'm-7', '--json'])).stdout)).toEqual({ id: 'm-7', cancelled: 0, inDelivery: 0, dsns: 0 });

    expect(await rookery(['messages', 'cancel', 'nope'])).toEqual({ code: 3, stdout: '', stderr: 'rookery messages cancel: 404 MESSAGE_NOT_FOUND: No message with queue id nope\n' });
    expect(await rookery(['messages', 'cancel', 'm-4'], { ROOKERY_API_TOKEN: tokens.sender })).toMatchObject({ code: 3, stderr: expect.stringContaining('403 FORBIDDEN') });
    expect(await rookery(['messages', 'cancel'])).toMatchObject({ code: 2, stderr: 'rookery messages cancel: give ID\n(see rookery messages cancel --help)\n' });
  });
});

describe('rookery reload', () => {
  const admin = { ROOKERY_API_TOKEN: tokens.admin };

  it('prints what changed and what waits for a restart; every problem on its own line, exit 3, when the file has problems', async () => {
    const original = structuredClone(SOURCES);
    try {
      expect(await rookery(['reload'], admin)).toEqual({ code: 0, stdout: 'Reloaded test\nChanged: nothing\n', stderr: '' });

      Object.assign(SOURCES, { hostname: 'mta.changed.test', ips: [{ address: '127.0.0.2', hostname: 'a.mta.test', weight: 50 }, { address: '2001:db8::7', pool: 'v6' }] });
      expect(await rookery(['reload'], admin)).toEqual({
        code: 0,
        stdout: 'Reloaded test\nChanged: ips\nWaiting for a restart (the running value stays until then): hostname\n',
        stderr: '',
      });
      expect(JSON.parse((await rookery(['reload', '--json'], admin)).stdout)).toEqual({ source: 'test', changed: [], restartRequired: ['hostname'], warnings: [] });

      Object.assign(SOURCES, { ips: [{ address: 'not-an-ip' }, { address: '2001:db8::7', pool: 'v6', weight: -1 }] });
      const refused = await rookery(['reload'], admin);
      expect(refused).toMatchObject({ code: 3, stdout: '' });
      expect(refused.stderr.split('\n')).toEqual([
        'rookery reload: 422 CONFIG_INVALID: test has 2 problems; the running configuration stays in effect',
        '  ips[0].address: not an IP address',
        expect.stringMatching(/^ {2}ips\[1\]\.weight: \S/),
        '',
      ]);
      const json = await rookery(['reload', '--json'], admin);
      expect(json.code).toBe(3);
      expect(JSON.parse(json.stdout)).toMatchObject({ status: 422, code: 'CONFIG_INVALID', errors: [{ path: 'ips[0].address' }, { path: 'ips[1].weight' }] });
    } finally {
      for (const key of Object.keys(SOURCES)) delete (SOURCES as Record<string, unknown>)[key];
      Object.assign(SOURCES, original);
    }
    // Other refusals stay one line.
    expect(await rookery(['reload'])).toEqual({ code: 3, stdout: '', stderr: 'rookery reload: 403 FORBIDDEN: Role "operator" may not POST /v1/reload; allowed: admin\n' });
  });
});

const DELIVERED: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as ABC', stage: 'dot', bounceClass: 'none', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2' };
const DEFERRED: DeliveryOutcome = { disposition: 'transient', code: 451, enhanced: '4.7.1', response: '451 4.7.1 Greylisted, try later', stage: 'rcpt', bounceClass: 'policy', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2' };
/** A remote reply with a terminal escape in it. */
const HOSTILE: DeliveryOutcome = { ...DELIVERED, disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '550 5.1.1 \u001b[31mred\u001b[0m no such user', bounceClass: 'unknown-user' };

/**
 * m-1: one recipient delivered, one deferred (greylisted); m-3: bounced with a hostile reply;
 * m-2: not tried yet. The clock stops an hour after m-1 was accepted.
 */
async function fill(on: Store): Promise<void> {
  await on.enqueue([newMessage('m-1', T0, { recipients: ['ok@dest.test', 'later@dest.test'] }), newMessage('m-3', T0 + 20_000, { recipients: ['gone@far.test'] })]);
  clock.set(T0 + 60_000);
  const claimed = await on.claimDue({ now: clock.now(), limit: 10, owner: 'node-a', leaseMs: 60_000 });
  const lease = (rcpt: string) => {
    const c = claimed.find((row) => row.recipient === rcpt)!;
    return { recipientId: c.recipientId, token: c.token };
  };
  await on.recordAttempts(
    [
      { ...lease('ok@dest.test'), outcome: DELIVERED, newState: 'delivered', countsAsAttempt: true },
      { ...lease('later@dest.test'), outcome: DEFERRED, newState: 'queued', nextAttemptAt: T0 + 660_000, countsAsAttempt: true },
      { ...lease('gone@far.test'), outcome: HOSTILE, newState: 'bounced', countsAsAttempt: true },
    ],
    [],
  );
  await on.enqueue([newMessage('m-2', T0 + 10_000, { sender: 'news@sender.test', recipients: ['a@other.test'] })]);
  clock.set(T0 + 3_600_000);
}
