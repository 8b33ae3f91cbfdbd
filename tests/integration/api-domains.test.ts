import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createDkimKeyFiles, type DkimKeyFile, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * GET /v1/domains and POST /v1/domains/{domain}/check over real HTTP, against a daemon in this
 * process with real DKIM key files and DNS from a fixture zone: a rotation whose newer key DNS
 * publishes (so it signs), a dual-signing Ed25519 key, a parent domain signing its subdomains
 * and standing in as fallback, and a domain with a VERP return path only.
 */

const tokens = { viewer: generateApiToken(), operator: generateApiToken(), admin: generateApiToken(), sender: generateApiToken() };
const resolver = createFixtureResolver();

let dir: TempDir;
let keys: DkimKeyFiles;
let daemon: Daemon;
let old: DkimKeyFile;
let call: (method: string, path: string, token?: string) => Promise<Response>;

beforeAll(async () => {
  dir = await createTempDir();
  keys = await createDkimKeyFiles();
  old = await keys.write('old.pem', 'rsa', 1024);
  const parent = await keys.write('parent.pem', 'ed25519');
  // DNS publishes the newer RSA key (keys.rsa), the Ed25519 key and SPF for the egress IP; not the old RSA key.
  resolver.set('new2026._domainkey.sender.test', { txt: [keys.rsa.record] });
  resolver.set('ed2026._domainkey.sender.test', { txt: [keys.ed25519.record] });
  resolver.set('sender.test', { txt: ['v=spf1 ip4:127.0.0.2 -all'], mx: [{ exchange: 'mx.sender.test', priority: 10 }] });
  resolver.set('_dmarc.sender.test', { txt: ['v=DMARC1; p=reject'] });
  resolver.set('bounces.sender.test', { txt: ['v=spf1 ip4:127.0.0.2 -all'], mx: [{ exchange: 'mx.sender.test', priority: 10 }] });
  resolver.set('mx.sender.test', { a: ['192.0.2.1'] });
  daemon = await startTestDaemon({
    dir,
    sink: { port: 9 },
    resolver,
    config: {
      hostname: 'domains.rookery.test',
      api: {
        listen: { host: '127.0.0.1', port: 0 },
        tokens: (['viewer', 'operator', 'admin', 'sender'] as const).map((role) => ({ name: role, role, hash: hashApiToken(tokens[role]), ...(role === 'sender' ? { tenant: 'app' } : {}) })),
      },
      ips: [{ address: '127.0.0.2' }],
      dkim: {
        domains: {
          'Sender.Test': {
            keys: [
              { selector: 'old2026', privateKey: old.path },
              { selector: 'new2026', privateKey: keys.rsa.path },
              { selector: 'ed2026', privateKey: keys.ed25519.path },
            ],
          },
          'parent.test': { keys: [{ selector: 'p1', privateKey: parent.path }], subdomains: true },
        },
        fallback: 'parent.test',
        workers: 0,
      },
      tenants: { app: { senderDomains: ['sender.test'] } },
      returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'sender.test': {}, 'verp-only.test': { domain: 'b.verp-only.test' } } },
    },
  });
  const { host, port } = daemon.apiAddress();
  call = (method, path, token = tokens.viewer) => fetch(`http://${host}:${port}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
});

afterAll(async () => {
  await daemon?.stop();
  await keys?.remove();
  await dir?.remove();
});

describe('GET /v1/domains', () => {
  it('lists every sender domain with its keys: which signs, which DNS publishes, subdomains, fallback, return path', async () => {
    const res = await call('GET', '/v1/domains');
    expect(res.status).toBe(200);
    const { domains } = (await res.json()) as { domains: Array<{ domain: string; keys: Array<{ loadedAt: string }> }> };
    expect(domains.map((d) => d.domain)).toEqual(['parent.test', 'sender.test', 'verp-only.test']);
    const loadedAt = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(domains[0]).toEqual({
      domain: 'parent.test',
      subdomains: true,
      fallback: true,
      returnPath: null,
      keys: [{ selector: 'p1', algorithm: 'ed25519-sha256', bits: null, signing: true, published: null, loadedAt, error: null }],
    });
    expect(domains[1]).toEqual({
      domain: 'sender.test',
      subdomains: false,
      fallback: false,
      returnPath: 'bounces.sender.test',
      keys: [
        // A rotation: the newest key DNS publishes signs, the older one stands by.
        { selector: 'old2026', algorithm: 'rsa-sha256', bits: 1024, signing: false, published: false, loadedAt, error: null },
        { selector: 'new2026', algorithm: 'rsa-sha256', bits: 2048, signing: true, published: true, loadedAt, error: null },
        // Alone of its algorithm: signs whatever DNS says (not looked up).
        { selector: 'ed2026', algorithm: 'ed25519-sha256', bits: null, signing: true, published: null, loadedAt, error: null },
      ],
    });
    expect(domains[2]).toEqual({ domain: 'verp-only.test', subdomains: false, fallback: false, returnPath: 'b.verp-only.test', keys: [] });
  });

  it('is refused to a sender token', async () => {
    expect((await call('GET', '/v1/domains', tokens.sender)).status).toBe(403);
  });
});

describe('POST /v1/domains/{domain}/check', () => {
  it('runs the domain check against the running configuration and DNS', async () => {
    const res = await call('POST', '/v1/domains/SENDER.test/check', tokens.operator);
    expect(res.status).toBe(200);
    const report = (await res.json()) as { domain: string; returnPathDomain: string; checkedAt: string; status: string; counts: { ok: number; warn: number; error: number }; checks: Array<Record<string, unknown>> };
    expect(report).toMatchObject({ domain: 'sender.test', returnPathDomain: 'bounces.sender.test' });
    expect(new Date(report.checkedAt).toISOString()).toBe(report.checkedAt);
    const dkimKey = (selector: string) => report.checks.find((c) => c.check === 'dkim-key' && c.selector === selector);
    expect(dkimKey('new2026')).toMatchObject({ status: 'ok', matches: true, keyType: 'rsa', bits: 2048 });
    expect(dkimKey('old2026')).toMatchObject({ record: null });
    expect(report.checks.find((c) => c.check === 'spf-ip')).toMatchObject({ ip: '127.0.0.2', result: 'pass' });
    expect(report.checks.find((c) => c.check === 'dmarc-record')).toMatchObject({ policy: 'reject' });
    // Every check keeps its own fields (the report is the one `rookery domains check --json` prints).
    for (const check of report.checks) expect(check).toEqual(expect.objectContaining({ area: expect.any(String), status: expect.any(String), message: expect.any(String) }));
    expect(report.counts.ok + report.counts.warn + report.counts.error).toBe(report.checks.length);
    expect((await call('POST', '/v1/domains/verp-only.test/check', tokens.admin)).status).toBe(200);
  });

  it('answers 404 for a domain that is not configured, and 403 to viewer and sender tokens', async () => {
    const res = await call('POST', '/v1/domains/elsewhere.test/check', tokens.admin);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'NOT_FOUND', detail: 'elsewhere.test is not a configured sender domain (dkim.domains, returnPath.domains)' });
    expect((await call('POST', '/v1/domains/sender.test/check', tokens.viewer)).status).toBe(403);
    expect((await call('POST', '/v1/domains/sender.test/check', tokens.sender)).status).toBe(403);
  });
});
