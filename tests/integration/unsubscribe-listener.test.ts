import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { createUnsubscribeRecorder } from '../../src/feedback/unsubscribe-recorder.ts';
import { createUnsubscribeServer, type UnsubscribeServer } from '../../src/feedback/unsubscribe-server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createUnsubscribeLinks } from '../../src/sender-domains/unsubscribe-links.ts';
import { createUnsubscribeTokens } from '../../src/sender-domains/unsubscribe-token.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { outboxEvents, subscribeToEverything } from '../helpers/webhook-events.ts';

/**
 * The public unsubscribe listener over real HTTP on loopback: the page, the one-click POST in
 * both encodings, and every refusal, recorded in a SQLite suppression list.
 */

const SECRET = 'an-unsubscribe-secret-of-at-least-32-characters';
const ISSUED = Date.UTC(2026, 10, 22, 10, 0, 0);
const CLAIMS = { tenant: 'acme', address: 'jane@dest.example', messageId: '019aab2c3d4e5f60718293', issued: ISSUED };
const ONE_CLICK = { 'content-type': 'application/x-www-form-urlencoded' };

let server: UnsubscribeServer | undefined;
let store: Store | undefined;
let dir: TempDir | undefined;
afterEach(async () => {
  await server?.stop();
  await store?.close();
  await dir?.remove();
  server = store = dir = undefined;
});

async function start(options: { rateLimit?: { max: number; window: number }; failWrites?: boolean } = {}) {
  const config = parseConfig({ unsubscribe: { secret: SECRET } }, 'test', {});
  const links = createUnsubscribeLinks(config);
  const metrics = new Metrics({ processMetrics: false });
  const { logger, logs } = capturingLogger('debug');
  const clock = manualClock(ISSUED + 86_400_000);
  dir = await createTempDir('rookery-unsubscribe-listener');
  const list = createSqliteStore({ path: dir.file('queue.db'), clock, logger: createLogger('silent') });
  store = list;
  await list.migrate();
  const hook = await subscribeToEverything(list, 'acme');
  /** The webhook events written for tenant acme, oldest first. */
  const events = () => outboxEvents(list, hook);
  // A closed store refuses every write, as one that cannot write does.
  if (options.failWrites) await list.close();
  /** The suppression list as stored, oldest first. */
  const entries = async () => {
    const all = { tenant: null, reason: null, address: null, since: null, until: null, now: null };
    const records = await list.listSuppressions(all, null, 100);
    return records.reverse().map(({ tenant, address, reason, source, createdAt, expiresAt }) => ({ tenant, address, reason, source, createdAt, expiresAt }));
  };
  const recorder = createUnsubscribeRecorder({
    suppressions: list,
    metrics,
    logger,
  });
  server = createUnsubscribeServer({
    listen: { host: '127.0.0.1', port: 0 },
    rateLimit: options.rateLimit ?? { max: 1000, window: 60_000 },
    trustedProxies: [],
    links: () => links,
    recorder,
    clock,
    metrics,
    logger,
  });
  const { host, port } = await server.start();
  const token = createUnsubscribeTokens(SECRET).seal(CLAIMS);
  const url = (t = token) => `http://${host}:${port}/u/${t}`;
  return { entries, events, metrics, logs, url, token, clock, store: list };
}

describe('the unsubscribe listener', () => {
  it('shows a confirm page on GET, self-contained and locked down, and records nothing', async () => {
    const { entries, url, token } = await start();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(url(), { headers: { accept: 'text/html' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const html = await res.text();
      expect(html).toContain('<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">');
      // Nothing loads from elsewhere, and nothing of the link or the address is shown.
      expect(html).not.toMatch(/<script|<img|<link|src=|href=/i);
      expect(html).not.toContain(token);
      expect(html).not.toContain('jane');
      expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; form-action 'self'; frame-ancestors 'none'/);
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
    expect(await entries()).toEqual([]);
  });

  it('turns an entry that would lapse into an unsubscribe for good', async () => {
    const { entries, events, url, store: list, clock } = await start();
    await list.addSuppressions([{ tenant: 'acme', address: 'jane@dest.example', reason: 'manual', source: null, createdAt: clock.now() - 1000, expiresAt: clock.now() + 60_000 }]);
    const res = await fetch(url(), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
    expect(res.status).toBe(200);
    expect(await entries()).toMatchObject([{ address: 'jane@dest.example', reason: 'unsubscribe', expiresAt: null }]);
    expect((await events()).map((e) => e.type)).toEqual(['recipient.unsubscribed']);
  });

  it('suppresses the recipient on a one-click POST, and answers a repeat 200 without a second event', async () => {
    const { entries, events, metrics, logs, url, token } = await start();
    const first = await fetch(url(), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(first.headers.get('referrer-policy')).toBe('no-referrer');
    const entry = { tenant: 'acme', address: 'jane@dest.example', reason: 'unsubscribe', source: { kind: 'feedback', channel: 'https', messageId: CLAIMS.messageId, issued: ISSUED }, createdAt: ISSUED + 86_400_000, expiresAt: null };
    expect(await entries()).toEqual([entry]);
    expect(await events()).toEqual([
      expect.objectContaining({ type: 'recipient.unsubscribed', tenant: 'acme', recipient: 'jane@dest.example', messageId: CLAIMS.messageId, at: ISSUED + 86_400_000, data: { channel: 'https' } }),
    ]);

    // A browser's form post (the page's button): a page back.
    const second = await fetch(url(), { method: 'POST', headers: { ...ONE_CLICK, accept: 'text/html' }, body: 'List-Unsubscribe=One-Click' });
    expect(second.status).toBe(200);
    expect(await second.text()).toContain('<h1>Unsubscribed</h1>');
    expect(await entries()).toEqual([entry]);
    expect(await events()).toHaveLength(1);
    expect(await metrics.registry.getSingleMetricAsString('rookery_unsubscribes_total')).toContain('rookery_unsubscribes_total{channel="https"} 1');

    // The log names the message and the domain, never the address or the token.
    const recorded = logs.filter((l) => l.event === 'unsubscribe.recorded');
    expect(recorded).toMatchObject([{ channel: 'https', tenant: 'acme', messageId: CLAIMS.messageId, domain: 'dest.example', repeated: false }, { repeated: true }]);
    const text = JSON.stringify(logs);
    expect(text).not.toContain('jane@');
    expect(text).not.toContain(token);
  });

  it('takes the one-click body as multipart/form-data too', async () => {
    const { entries, url } = await start();
    const form = new FormData();
    form.append('List-Unsubscribe', 'One-Click');
    const res = await fetch(url(), { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(await entries()).toMatchObject([{ tenant: 'acme', address: 'jane@dest.example', reason: 'unsubscribe' }]);
  });

  it('refuses forged (404) and malformed (400) tokens, on GET and POST, and records nothing', async () => {
    const { entries, metrics, url, token } = await start();
    const forged = createUnsubscribeTokens('another-secret-that-is-32-characters-long').seal(CLAIMS);
    const altered = token.slice(0, 30) + (token[30] === 'A' ? 'B' : 'A') + token.slice(31);
    for (const t of [forged, altered]) {
      expect((await fetch(url(t))).status).toBe(404);
      const res = await fetch(url(t), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(await res.json()).toMatchObject({ status: 404, code: 'UNSUBSCRIBE_LINK_UNKNOWN', instance: '/u/…' });
    }
    for (const t of ['short', token.slice(0, 20), 'x'.repeat(5000), `${token.slice(0, 10)}%2B${token.slice(10)}`]) {
      const res = await fetch(url(t), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
      expect([t.slice(0, 12), res.status]).toEqual([t.slice(0, 12), 400]);
      expect(await res.json()).toMatchObject({ code: 'UNSUBSCRIBE_LINK_MALFORMED' });
    }
    const page = await fetch(url('short'), { headers: { accept: 'text/html' } });
    expect([page.status, page.headers.get('content-type')]).toEqual([400, 'text/html; charset=utf-8']);
    expect(await entries()).toEqual([]);
    const refused = await metrics.registry.getSingleMetricAsString('rookery_unsubscribes_refused_total');
    expect(refused).toContain('rookery_unsubscribes_refused_total{channel="https",reason="forged"} 4');
    expect(refused).toContain('rookery_unsubscribes_refused_total{channel="https",reason="malformed"} 5');
  });

  it('refuses a POST without List-Unsubscribe=One-Click, other media types and large bodies, recording nothing', async () => {
    const { entries, url } = await start();
    const post = (body: string | undefined, headers: Record<string, string> = ONE_CLICK) => fetch(url(), { method: 'POST', headers, body });
    const noBody = await post(undefined, {});
    expect([noBody.status, ((await noBody.json()) as { code: string }).code]).toEqual([400, 'UNSUBSCRIBE_NOT_ONE_CLICK']);
    expect((await post('List-Unsubscribe=Yes')).status).toBe(400);
    const json = await post('{"List-Unsubscribe":"One-Click"}', { 'content-type': 'application/json' });
    expect([json.status, ((await json.json()) as { code: string }).code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    const large = await post(`List-Unsubscribe=One-Click&pad=${'x'.repeat(4096)}`);
    expect([large.status, ((await large.json()) as { code: string }).code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect((await fetch(url().replace('/u/', '/x/'))).status).toBe(404);
    expect(await entries()).toEqual([]);
  });

  it('limits requests per client address', async () => {
    const { entries, url } = await start({ rateLimit: { max: 3, window: 60_000 } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await fetch(url())).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await fetch(url(), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await limited.json()).toMatchObject({ code: 'RATE_LIMITED' });
    expect(await entries()).toEqual([]);
  });

  it('answers 503 when the suppression list cannot be written, so the client tries again', async () => {
    const { logs, url } = await start({ failWrites: true });
    const res = await fetch(url(), { method: 'POST', headers: ONE_CLICK, body: 'List-Unsubscribe=One-Click' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('60');
    expect(logs.find((l) => l.event === 'unsubscribe.record.failed')).toMatchObject({ messageId: CLAIMS.messageId, err: expect.any(String) });
  });
});
