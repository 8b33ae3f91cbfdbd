import { rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import type { ApiTimeouts } from '../../src/control-api/server.ts';
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

  async function startApi(config: ConfigInput = CONFIG, timeouts?: Partial<ApiTimeouts>) {
    const started = await startSendApi({ store, config, logger, ...(timeouts ? { timeouts } : {}) });
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

  /** A POST announcing a body of `length` bytes and sending a byte of it every 100 ms; resolves with what it heard when its socket closes. */
  function dribble(host: string, port: number, auth: boolean, length = 100_000): { socket: Socket; closed: Promise<string> } {
    const socket = connect(port, host);
    let heard = '';
    socket.on('data', (chunk) => (heard += chunk.toString()));
    socket.on('error', () => undefined);
    socket.write(`POST /v1/messages HTTP/1.1\r\nHost: x\r\n${auth ? `Authorization: Bearer ${token}\r\n` : ''}Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{`);
    const drip = setInterval(() => socket.write(' '), 100);
    const closed = new Promise<string>((resolve) => socket.on('close', () => (clearInterval(drip), resolve(heard))));
    closing.push(async () => void socket.destroy());
    return { socket, closed };
  }

  /** `promise`, or a failure naming `what` once `ms` passed without it settling. */
  function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  it('cuts a client that dribbles its body, with or without a token, once the request timeout passes', async () => {
    const { host, port } = await startApi(CONFIG, { requestMs: 1000 });
    const [withToken, without] = [dribble(host, port, true), dribble(host, port, false)];
    const heard = await within(10_000, 'the dribbling requests cut', Promise.all([withToken.closed, without.closed]));
    // Without a token the 401 comes at once, but the socket stayed open while the body dribbled.
    expect(heard.map((h) => h.split('\r\n')[0])).toEqual(['HTTP/1.1 408 Request Timeout', 'HTTP/1.1 401 Unauthorized']);
  });

  it('stops within its grace while a client is still sending, closing that connection', async () => {
    const { api, host, port } = await startApi(CONFIG, { closeGraceMs: 300 });
    const slow = dribble(host, port, true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await within(10_000, 'api.stop()', api.stop());
    await within(1_000, 'the dribbling connection closed', slow.closed);
  });

  it('refuses a send with 503 and Retry-After while large requests hold the memory budget, and takes it once they are gone', async () => {
    // Each 80 kB request may hold its body and a 64 KiB message: two do not fit in 200 kB.
    const { host, port, call } = await startApi({ ...CONFIG, smtp: { ...CONFIG.smtp, maxBufferedBytes: 200_000 } });
    const large = simple({ text: 'x'.repeat(40_000), attachments: [{ filename: 'a.bin', content: Buffer.alloc(12_000).toString('base64') }] });
    const slow = dribble(host, port, true, 80_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = await call('/v1/messages', { json: large });
    expect(refused).toMatchObject({ status: 503, body: { code: 'BUFFERS_FULL' } });
    expect(refused.headers.get('retry-after')).toBe('5');
    expect((await call('/v1/messages', { json: simple() })).status).toBe(202);
    slow.socket.destroy();
    await slow.closed;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await call('/v1/messages', { json: large })).status).toBe(202);
  });

  it('stops composing a message once it passes smtp.maxMessageBytes: quoted-printable that triples is refused 413', async () => {
    const { call } = await startApi();
    const tripled = await call('/v1/messages', { json: simple({ text: undefined, html: `<p>${'='.repeat(40_000)}</p>` }) });
    expect(tripled).toMatchObject({ status: 413, body: { code: 'MESSAGE_TOO_LARGE', errors: [{ path: 'body' }] } });
  });

  it('takes a raw message as a mail server does: Bcc removed, a From and a blank line required, measured in CRLF, dated at its sendAt', async () => {
    const { call } = await startApi();
    const url = '/v1/messages?from=news@app.example&to=seen@dest.example&to=secret@hidden.example';
    const bcc = await call(url, { raw: 'From: news@app.example\r\nTo: seen@dest.example\r\nBcc: secret@hidden.example,\r\n other@hidden.example\r\nSubject: x\r\n\r\nbody\r\n' });
    expect(bcc.status, bcc.text).toBe(202);
    const stored = (await store.loadMessage(bcc.body.id))!.body.toString('latin1');
    expect(stored).not.toMatch(/^Bcc:/im);
    expect(stored).not.toContain('hidden.example');
    expect(stored).toContain('To: seen@dest.example\r\nSubject: x\r\n');

    const authorless = await call(url, { raw: 'To: seen@dest.example\r\nSubject: x\r\n\r\nbody\r\n' });
    expect(authorless).toMatchObject({ status: 400, body: { code: 'BAD_AUTHOR_HEADER', errors: [{ path: 'body', message: expect.stringContaining('From') }] } });
    const unseparated = await call(url, { raw: 'From: news@app.example\nSubject: x\nhello, no blank line here\n' });
    expect(unseparated).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', errors: [{ path: 'body', message: expect.stringContaining('blank line') }] } });

    // 60 KiB of LF lines is 120 KiB stored: past the 64 KiB smtp.maxMessageBytes.
    const lines = await call(url, { raw: `From: news@app.example\n\n${'\n'.repeat(60 * 1024)}` });
    expect(lines).toMatchObject({ status: 413, body: { code: 'MESSAGE_TOO_LARGE', errors: [{ path: 'body', message: expect.stringContaining('CRLF') }] } });

    const at = new Date(Date.now() + 5 * 86_400_000);
    at.setUTCMilliseconds(0);
    const scheduled = await call(`${url}&sendAt=${at.toISOString()}`, { raw: 'From: news@app.example\r\nSubject: x\r\n\r\nx\r\n' });
    expect(scheduled.status, scheduled.text).toBe(202);
    expect((await store.loadMessage(scheduled.body.id))!.body.toString()).toContain(`Date: ${at.toUTCString().replace('GMT', '+0000')}\r\n`);
  });

  it('refuses a body of a type the route does not take with 415, naming the types it does, with or without a key', async () => {
    const { call } = await startApi();
    for (const key of [undefined, 'plain-1']) {
      const plain = await call('/v1/messages', { body: JSON.stringify(simple()), contentType: 'text/plain', ...(key ? { key } : {}) });
      expect(plain).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE', detail: expect.stringContaining('message/rfc822') } });
      const batch = await call('/v1/messages/batch', { body: JSON.stringify({ messages: [simple()] }), contentType: 'text/plain', ...(key ? { key: `batch-${key}` } : {}) });
      expect(batch).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE', detail: expect.stringContaining('application/json') } });
      const rawBatch = await call('/v1/messages/batch', { body: 'From: news@app.example\r\n\r\nx\r\n', contentType: 'message/rfc822', ...(key ? { key: `raw-${key}` } : {}) });
      expect(rawBatch).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    }
    expect((await store.countByState()).queued ?? 0).toBe(0);
  });

  it('answers a batch item nested deeper than the call stack the same with an Idempotency-Key as without', async () => {
    const { call } = await startApi();
    const depth = 60_000;
    const body = `{"messages":[{"a":${'['.repeat(depth)}1${']'.repeat(depth)}}]}`;
    const without = await call('/v1/messages/batch', { body, contentType: 'application/json' });
    const keyed = await call('/v1/messages/batch', { body, contentType: 'application/json', key: 'deep-1' });
    expect(without.status, without.text).toBe(202);
    expect(without.body).toMatchObject({ accepted: 0, failed: 1, results: [{ error: { code: 'INVALID_REQUEST', errors: expect.arrayContaining([expect.objectContaining({ path: 'body.messages[0].a' })]) } }] });
    expect({ status: keyed.status, body: keyed.body }).toEqual({ status: without.status, body: without.body });
  });

  it('answers batch items keyed like Object.prototype members with a result of their own, and refuses a __proto__ key outright', async () => {
    const { call } = await startApi();
    const body = `{"messages":[{"constructor":{"x":1}},${JSON.stringify(simple())},${JSON.stringify(simple({ metadata: { constructor: 'c', toString: 't' } }))}]}`;
    const res = await call('/v1/messages/batch', { body, contentType: 'application/json' });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ accepted: 2, failed: 1 });
    expect(res.body.results.map((r: { error?: { code: string } }) => r.error?.code ?? 'accepted')).toEqual(['INVALID_REQUEST', 'accepted', 'accepted']);
    const kept = await call(`/v1/messages/${res.body.results[2].id}`);
    expect(kept.body.metadata).toEqual({ constructor: 'c', toString: 't' });
    // The JSON parser's guard against prototype poisoning: the whole request is a 400, nothing stored.
    const before = await store.countByState();
    const poisoned = await call('/v1/messages/batch', { body: `{"messages":[${JSON.stringify(simple())},{"__proto__":{"from":"news@app.example"}}]}`, contentType: 'application/json' });
    expect(poisoned).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    expect(await store.countByState()).toEqual(before);
  });

  it('spends no key on a batch of which nothing was accepted, and tells a rate-limited item when to come back', async () => {
    const { call } = await startApi({ ...CONFIG, tenants: { app: { senderDomains: ['*'], rate: '2/m' } } });
    const refused = await call('/v1/messages/batch', { json: { messages: [simple({ to: 'bad' })] }, key: 'all-failed' });
    expect(refused).toMatchObject({ status: 202, body: { accepted: 0, failed: 1 } });
    const mended = await call('/v1/messages/batch', { json: { messages: [simple()] }, key: 'all-failed' });
    expect(mended).toMatchObject({ status: 202, body: { accepted: 1, failed: 0 } });
    expect(mended.headers.get('idempotent-replayed')).toBeNull();

    const limited = await call('/v1/messages/batch', { json: { messages: [simple({ to: 'a@dest.example' }), simple({ to: 'b@dest.example' })] } });
    expect(limited.body).toMatchObject({ accepted: 1, failed: 1 });
    const failed = limited.body.results.find((r: { status: string }) => r.status === 'failed');
    expect(failed).toMatchObject({ error: { status: 429, code: 'TENANT_RATE_LIMITED' }, retryAfter: expect.any(Number) });
    expect(failed.retryAfter).toBeGreaterThanOrEqual(1);
    expect(failed.retryAfter).toBeLessThanOrEqual(60);
  });

  it('refuses a send scheduled past dkim.expiry less an hour, naming sendAt and why: it is signed at acceptance', async () => {
    const { call } = await startApi({ ...CONFIG, dkim: { expiry: '1d' } });
    const late = new Date(Date.now() + 23.5 * 3_600_000).toISOString();
    const json = await call('/v1/messages', { json: simple({ sendAt: late }) });
    expect(json).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', errors: [{ path: 'body.sendAt', message: expect.stringContaining('dkim.expiry') }] } });
    const raw = await call(`/v1/messages?from=news@app.example&to=a@dest.example&sendAt=${late}`, { raw: 'From: news@app.example\r\nSubject: x\r\n\r\nx\r\n' });
    expect(raw.body.errors[0].path).toBe('querystring.sendAt');
    const soon = new Date(Date.now() + 22 * 3_600_000).toISOString();
    expect((await call('/v1/messages', { json: simple({ sendAt: soon }) })).status).toBe(202);
  });
});
