import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { FreshMessages } from '../../src/engine/fresh-messages.ts';
import { systemClock } from '../../src/clock.ts';

/**
 * POST /v1/messages and /v1/messages/batch over real HTTP on loopback, against a SQLite queue
 * and a PostgreSQL one: JSON and raw messages as stored, bad input refused naming its place, a
 * batch with a bad message, and Idempotency-Key (a retry, another request under the key, racing
 * requests; on PostgreSQL from two API instances, as two daemons would).
 */

const logger = createLogger('silent');
const postgres = await requirePostgres();
const tokens = { app: generateApiToken(), mute: generateApiToken(), admin: generateApiToken(), viewer: generateApiToken() };

const CONFIG: ConfigInput = {
  smtp: { maxRecipients: 5, maxMessageBytes: 64 * 1024 },
  ips: [{ address: '127.0.0.2', pool: 'transactional' }, { address: '127.0.0.3', pool: 'marketing' }, { address: '127.0.0.4', pool: 'vip' }, { address: '127.0.0.5' }],
  api: {
    tokens: [
      { name: 'app', role: 'sender', tenant: 'app', hash: hashApiToken(tokens.app), allowedSenders: ['*@app.example'], pool: 'transactional', pools: ['marketing'] },
      { name: 'mute', role: 'sender', tenant: 'app', hash: hashApiToken(tokens.mute) },
      { name: 'admin', role: 'admin', hash: hashApiToken(tokens.admin), allowedSenders: ['*'] },
      { name: 'viewer', role: 'viewer', hash: hashApiToken(tokens.viewer) },
    ],
  },
  tenants: { app: { senderDomains: ['*'] } },
};
const { config } = resolveConfig(CONFIG, { source: 'test', env: {} });

const backends = [
  {
    name: 'sqlite',
    skip: false,
    async open(): Promise<{ stores: () => Promise<Store>; drop(): Promise<void> }> {
      const dir = await createTempDir('rookery-api-send');
      return {
        stores: async () => {
          const store = createSqliteStore({ path: dir.file('queue.db'), logger });
          await store.migrate();
          return store;
        },
        drop: () => dir.remove(),
      };
    },
  },
  {
    name: 'postgres',
    skip: !postgres,
    async open(): Promise<{ stores: () => Promise<Store>; drop(): Promise<void> }> {
      const schema = await createTestSchema('api-send');
      return {
        stores: async () => {
          const store = createPostgresStore({ url: schema.url, schema: schema.schema, logger, poolSize: 4 });
          await store.migrate();
          return store;
        },
        drop: () => schema.drop(),
      };
    },
  },
];

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(`sending over HTTP on ${backend.name}`, () => {
    let store: Store;
    let opened: { stores: () => Promise<Store>; drop(): Promise<void> };
    const closing: Array<() => Promise<void>> = [];

    beforeAll(async () => {
      opened = await backend.open();
      store = await opened.stores();
    });

    afterEach(async () => {
      for (const close of closing.splice(0).reverse()) await close();
    });

    afterAll(async () => {
      await store.close();
      await opened.drop();
    });

    /** The address of the API startApi started last. */
    let lastAddress = { host: '', port: 0 };

    /** An API on its own port over `on` (default: the file's store). */
    async function startApi(on: Store = store, isShuttingDown?: () => boolean, space?: { low: boolean }, fresh?: FreshMessages) {
      const sources = apiSources({ store: on, config: CONFIG, ...(fresh ? { fresh } : {}) });
      const api = createControlApi({
        isShuttingDown,
        config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: config.api.tokens, authFailures: { max: 100, window: 60_000 } } },
        store: on,
        ...sources,
        intake: { ...sources.intake, ...(space ? { space } : {}) },
        logger,
        metrics: new Metrics({ processMetrics: false }),
        checks: { storage: () => on.ping() },
      });
      closing.push(() => api.stop());
      const { host, port } = await api.start();
      lastAddress = { host, port };
      return async (path: string, options: { json?: unknown; raw?: Buffer | string; token?: string; key?: string; method?: string; contentType?: string } = {}): Promise<Answer> => {
        const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? tokens.app}` };
        if (options.key !== undefined) headers['idempotency-key'] = options.key;
        let body: string | Buffer | undefined;
        if (options.json !== undefined) [headers['content-type'], body] = ['application/json', JSON.stringify(options.json)];
        if (options.raw !== undefined) [headers['content-type'], body] = ['message/rfc822', options.raw];
        if (options.contentType) headers['content-type'] = options.contentType;
        const res = await fetch(`http://${host}:${port}${path}`, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
        const text = await res.text();
        return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : null };
      };
    }

    const simple = (overrides: Record<string, unknown> = {}) => ({ from: 'news@app.example', to: 'user@dest.example', subject: 'Hello', text: 'Hi there', ...overrides });

    it('composes a JSON message, stores it as it will be sent, and answers 202 only then', async () => {
      const call = await startApi();
      const pdf = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
      const sent = await call('/v1/messages', {
        json: {
          from: { name: 'Jürgen at App', address: 'news@app.example' },
          to: ['a@dest.example', { name: 'B', address: 'b@dest.example' }],
          cc: 'c@dest.example',
          bcc: ['hidden@dest.example', 'A@DEST.example'],
          replyTo: 'help@app.example',
          subject: 'Grüße',
          text: 'Plain text',
          html: '<p>Hello <img src="cid:logo@app"></p>',
          attachments: [
            { filename: 'report.pdf', contentType: 'application/pdf', content: pdf.toString('base64') },
            { filename: 'logo.png', contentType: 'image/png', content: Buffer.from('PNG!').toString('base64'), cid: 'logo@app' },
          ],
          headers: { 'X-Campaign': 'spring', 'Message-ID': '<given-1@app.example>', 'List-Unsubscribe': '<mailto:unsub@app.example>' },
          tags: ['welcome', 'spring'],
          metadata: { orderId: '4711', 'user.id': 'u-1' },
        },
      });
      expect(sent.status, sent.text).toBe(202);
      expect(sent.headers.get('content-type')).toMatch(/^application\/json/);
      expect(sent.body).toEqual({
        id: expect.any(String),
        ids: [sent.body.id],
        messageId: '<given-1@app.example>',
        pool: 'transactional',
        sendAt: null,
        recipients: ['a@dest.example', 'b@dest.example', 'c@dest.example', 'hidden@dest.example'].map((address) => ({ address, status: 'queued', id: sent.body.id })),
      });
      expect(sent.headers.get('location')).toBe(`/v1/messages/${sent.body.id}`);

      const stored = (await store.loadMessage(sent.body.id))!;
      expect(stored).toMatchObject({ sender: 'news@app.example', submitter: 'app', source: 'http', pool: 'transactional', messageIdHeader: '<given-1@app.example>' });
      const text = stored.body.toString('latin1');
      expect(text).toMatch(/^From: =\?UTF-8\?Q\?J=C3=BCrgen_at_App\?= <news@app\.example>\r\n/m);
      expect(text).toContain('To: a@dest.example, B <b@dest.example>\r\n');
      expect(text).toContain('Cc: c@dest.example\r\n');
      expect(text).toContain('Reply-To: help@app.example\r\n');
      expect(text).toContain('X-Campaign: spring\r\n');
      expect(text).toContain('List-Unsubscribe: <mailto:unsub@app.example>\r\n');
      expect(text).not.toMatch(/^Bcc:/im);
      expect(text).not.toContain('hidden@dest.example');
      expect(/(^|[^\r])\n/.test(text)).toBe(false);
      // The attachment comes back byte for byte from its base64 part.
      const part = /filename=report\.pdf\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(text);
      expect(Buffer.from(part![1]!.replace(/\r\n/g, ''), 'base64').equals(pdf)).toBe(true);
      expect(text).toMatch(/Content-ID: <logo@app>/);

      const read = await call(`/v1/messages/${sent.body.id}`, { token: tokens.viewer });
      expect(read.body).toMatchObject({ source: 'http', submitter: 'app', sendAt: null, tags: ['welcome', 'spring'], metadata: { orderId: '4711', 'user.id': 'u-1' } });
      expect(read.body.recipients.map((r: { address: string; state: string }) => `${r.address} ${r.state}`)).toEqual([
        'a@dest.example queued', 'b@dest.example queued', 'c@dest.example queued', 'hidden@dest.example queued',
      ]);
      const byTag = await call('/v1/messages?tag=spring', { token: tokens.viewer });
      expect(byTag.body.items.map((m: { id: string }) => m.id)).toContain(sent.body.id);
      expect((await call('/v1/messages?tag=Spring', { token: tokens.viewer })).body.items).toEqual([]);
    });

    it('writes a forwarded message as it is when it fits the line limits, and message/global base64-encoded whatever its lines', async () => {
      const call = await startApi();
      const forwarded = `From: a@elsewhere.example\r\nSubject: fwd\r\n\r\n${'y'.repeat(998)}\r\nlast\r\n`;
      const long = `From: a@elsewhere.example\r\nSubject: long\r\n\r\n${'z'.repeat(5000)}\r\nGrüße\r\n`;
      const sent = await call('/v1/messages', {
        json: simple({
          attachments: [
            { filename: 'fwd.eml', content: Buffer.from(forwarded).toString('base64') },
            { filename: 'long.eml', contentType: 'message/global', content: Buffer.from(long).toString('base64') },
          ],
        }),
      });
      expect(sent.status, sent.text).toBe(202);
      const text = (await store.loadMessage(sent.body.id))!.body.toString('latin1');
      expect(text.split('\r\n').every((line) => line.length <= 998)).toBe(true);
      expect(text).toMatch(/Content-Type: message\/rfc822[^]*?Content-Transfer-Encoding: 7bit[^]*?\r\n\r\nFrom: a@elsewhere\.example\r\nSubject: fwd\r\n/);
      const global = /Content-Type: message\/global; name=long\.eml\r\nContent-Transfer-Encoding: base64\r\n[^]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(text);
      expect(Buffer.from(global![1]!.replace(/\r\n/g, ''), 'base64').toString('utf8')).toBe(long);
    });

    it('takes a raw message with its envelope in the query, in CRLF form, with a pool it may choose', async () => {
      const call = await startApi();
      const raw = 'From: news@app.example\nTo: someone@dest.example\nSubject: raw\nX-Rookery-Pool: vip\n\nline one\nline two\n';
      const sent = await call('/v1/messages?from=news@app.example&to=someone@dest.example&to=other@dest.example&pool=marketing&tag=raw', { raw });
      expect(sent.status, sent.text).toBe(202);
      expect(sent.body).toMatchObject({ pool: 'marketing', messageId: expect.stringMatching(/^<.+@.+>$/), recipients: [{ address: 'someone@dest.example' }, { address: 'other@dest.example' }] });
      const stored = (await store.loadMessage(sent.body.id))!;
      const text = stored.body.toString('latin1');
      expect(text).toContain('Subject: raw\r\n');
      expect(text).toContain('\r\n\r\nline one\r\nline two\r\n');
      expect(text).toMatch(/^Date: /m);
      // The pool header is an instruction to Rookery, never sent.
      expect(text).not.toContain('X-Rookery-Pool');
      expect((await store.getMessageInfo(sent.body.id))!.tags).toEqual(['raw']);

      // Without a pool in the query, the header is honoured only for a pool the token may use.
      const byHeader = await call('/v1/messages?from=news@app.example&to=someone@dest.example', { raw: raw.replace('vip', 'marketing') });
      expect(byHeader.body.pool).toBe('marketing');
      const ignored = await call('/v1/messages?from=news@app.example&to=someone@dest.example', { raw });
      expect(ignored.body.pool).toBe('transactional');
    });

    it('schedules a send: due at sendAt, dated then, at most 30 days ahead', async () => {
      const call = await startApi();
      const at = new Date(Date.now() + 3 * 86_400_000);
      at.setUTCMilliseconds(0);
      const sent = await call('/v1/messages', { json: simple({ sendAt: at.toISOString() }) });
      expect(sent.status, sent.text).toBe(202);
      expect(sent.body.sendAt).toBe(at.toISOString());
      const read = await call(`/v1/messages/${sent.body.id}`, { token: tokens.viewer });
      expect(read.body).toMatchObject({ sendAt: at.toISOString(), recipients: [{ state: 'queued', nextAttemptAt: at.toISOString() }] });
      expect((await store.loadMessage(sent.body.id))!.body.toString()).toContain(`Date: ${at.toUTCString().replace('GMT', '+0000')}`);
      const past = await call('/v1/messages', { json: simple({ sendAt: '2020-01-01T00:00:00Z' }) });
      expect(past.body.sendAt).toBeNull();
    });

    it.each([
      ['an address that is not one', 400, 'INVALID_REQUEST', 'body.to[1]', simple({ to: ['ok@dest.example', 'not an address'] })],
      ['an address smuggling a command', 400, 'INVALID_REQUEST', 'body.to.address', simple({ to: { address: 'x@dest.example>\r\nRCPT TO:<y@evil.example' } })],
      ['a display name with a line break', 400, 'INVALID_REQUEST', 'body.from.name', simple({ from: { name: 'A\r\nBcc: x@evil.example', address: 'news@app.example' } })],
      ['an unknown property', 400, 'INVALID_REQUEST', 'body.bogus', simple({ bogus: 1 })],
      ['no recipient', 400, 'INVALID_REQUEST', 'body.to', simple({ to: undefined })],
      ['no content', 400, 'INVALID_REQUEST', 'body', simple({ text: undefined })],
      ['a header with a line break', 400, 'INVALID_REQUEST', 'body.headers.X-Evil', simple({ headers: { 'X-Evil': 'a\r\nBcc: x@evil.example' } })],
      ['a header the message makes itself', 400, 'INVALID_REQUEST', 'body.headers.from', simple({ headers: { from: 'ceo@victim.example' } })],
      ['a header name with a colon', 400, 'INVALID_REQUEST', 'body.headers.Bad:Name', simple({ headers: { 'Bad:Name': 'x' } })],
      ['an attachment that is not base64', 400, 'INVALID_REQUEST', 'body.attachments[0].content', simple({ attachments: [{ filename: 'a.bin', content: 'not*base64' }] })],
      ['a message/rfc822 attachment with a line over 998 octets', 400, 'INVALID_REQUEST', 'body.attachments[0].content', simple({ attachments: [{ filename: 'fwd.eml', contentType: 'message/rfc822', content: Buffer.from(`Subject: x\r\n\r\n${'y'.repeat(999)}\r\n`).toString('base64') }] })],
      ['an .eml attachment (message/rfc822 by its name) with a bare CR', 400, 'INVALID_REQUEST', 'body.attachments[0].content', simple({ attachments: [{ filename: 'fwd.eml', content: Buffer.from('Subject: x\r\n\r\na\rb\r\n').toString('base64') }] })],
      ['a multipart attachment', 400, 'INVALID_REQUEST', 'body.attachments[0].contentType', simple({ attachments: [{ filename: 'parts.bin', contentType: 'multipart/mixed', content: Buffer.from('x').toString('base64') }] })],
      ['a send more than 30 days ahead', 400, 'INVALID_REQUEST', 'body.sendAt', simple({ sendAt: new Date(Date.now() + 31 * 86_400_000).toISOString() })],
      ['a metadata key of odd characters', 400, 'INVALID_REQUEST', 'body.metadata.a b', simple({ metadata: { 'a b': 'x' } })],
      ['more recipients than smtp.maxRecipients', 400, 'TOO_MANY_RECIPIENTS', 'body.to[5]', simple({ to: ['1', '2', '3', '4', '5', '6'].map((n) => `u${n}@dest.example`) })],
      ['a sender outside allowedSenders', 403, 'SENDER_NOT_ALLOWED', 'body.from', simple({ from: 'ceo@victim.example' })],
      ['a pool the token may not choose', 403, 'POOL_NOT_ALLOWED', 'body.pool', simple({ pool: 'vip' })],
      ['a message over smtp.maxMessageBytes', 413, 'MESSAGE_TOO_LARGE', 'body', simple({ text: 'x'.repeat(70 * 1024) })],
    ])('refuses %s: %i %s naming %s', async (_what, status, code, path, json) => {
      const call = await startApi();
      const before = await store.countByState();
      const res = await call('/v1/messages', { json });
      expect(res.status, res.text).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status, code, instance: '/v1/messages' });
      expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
      expect(await store.countByState()).toEqual(before);
    });

    it('refuses what does not make a message: a token without allowedSenders, a raw envelope missing or misplaced, a stranger From, a body too large or of another type', async () => {
      const call = await startApi();
      const mute = await call('/v1/messages', { json: simple(), token: tokens.mute });
      expect(mute).toMatchObject({ status: 403, body: { code: 'SENDER_NOT_ALLOWED' } });
      expect(mute.body.detail).toContain('allowedSenders');

      const raw = 'From: news@app.example\r\nSubject: x\r\n\r\nx\r\n';
      expect((await call('/v1/messages?to=a@dest.example', { raw })).body.errors).toEqual([{ path: 'querystring.from', message: expect.stringContaining('required') }]);
      expect((await call('/v1/messages?from=news@app.example', { raw })).body.errors[0].path).toBe('querystring.to');
      expect((await call('/v1/messages?from=news@app.example&to=a%20b@dest.example', { raw })).body.errors[0].path).toBe('querystring.to[0]');
      expect((await call('/v1/messages?to=a@dest.example', { json: simple() })).body.errors[0]).toEqual({ path: 'querystring.to', message: expect.stringContaining('message/rfc822') });

      const stranger = await call('/v1/messages?from=news@app.example&to=a@dest.example', { raw: 'From: ceo@victim.example\r\nSubject: x\r\n\r\nx\r\n' });
      expect(stranger).toMatchObject({ status: 403, body: { code: 'SENDER_NOT_ALLOWED' } });
      const twoFroms = await call('/v1/messages?from=news@app.example&to=a@dest.example', { raw: `From: news@app.example\r\n${raw}` });
      expect(twoFroms).toMatchObject({ status: 400, body: { code: 'BAD_AUTHOR_HEADER' } });

      const big = await call('/v1/messages?from=news@app.example&to=a@dest.example', { raw: `${raw}${'x'.repeat(65 * 1024)}\r\n` });
      expect(big).toMatchObject({ status: 413, body: { code: 'MESSAGE_TOO_LARGE' } });
      // Past the request limit (4/3 of smtp.maxMessageBytes and 64 KiB) the body is not even read.
      const huge = await call('/v1/messages', { json: simple({ text: 'x'.repeat(200 * 1024) }) });
      expect(huge).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
      const text = await call('/v1/messages', { raw, contentType: 'text/html' });
      expect(text).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
      expect((await call('/v1/messages', { json: simple(), token: tokens.viewer })).body.code).toBe('FORBIDDEN');
    });

    it('sends a batch in one commit, a result per message: a bad one fails alone', async () => {
      const call = await startApi();
      const res = await call('/v1/messages/batch', {
        json: {
          messages: [
            simple({ to: 'one@dest.example', tags: ['batch-1'] }),
            simple({ to: ['bad address'] }),
            simple({ to: 'two@dest.example', tags: ['batch-1'], pool: 'marketing' }),
            { from: 'news@app.example', nonsense: true },
            simple({ from: 'ceo@victim.example' }),
          ],
        },
      });
      expect(res.status, res.text).toBe(202);
      expect(res.body).toMatchObject({ accepted: 2, failed: 3 });
      const [one, bad, two, odd, stranger] = res.body.results;
      expect(one).toMatchObject({ index: 0, status: 'accepted', pool: 'transactional', recipients: [{ address: 'one@dest.example', status: 'queued' }] });
      expect(two).toMatchObject({ index: 2, status: 'accepted', pool: 'marketing' });
      expect(bad).toMatchObject({ index: 1, status: 'failed', error: { status: 400, code: 'INVALID_REQUEST', errors: [{ path: 'body.messages[1].to[0]' }] } });
      expect(odd.error.errors.map((e: { path: string }) => e.path)).toEqual(['body.messages[3].nonsense']);
      expect(stranger).toMatchObject({ index: 4, status: 'failed', error: { status: 403, code: 'SENDER_NOT_ALLOWED' } });
      const tagged = await call('/v1/messages?tag=batch-1', { token: tokens.viewer });
      expect(tagged.body.items.map((m: { id: string }) => m.id).sort()).toEqual([one.id, two.id].sort());

      const tooMany = await call('/v1/messages/batch', { json: { messages: Array.from({ length: 1001 }, () => simple()) } });
      expect(tooMany).toMatchObject({ status: 400, body: { errors: [{ path: 'body.messages' }] } });
      expect((await call('/v1/messages/batch', { json: { messages: [] } })).status).toBe(400);
    });

    it('answers a repeated Idempotency-Key with the first response and stores nothing new; another request under it is 422', async () => {
      const call = await startApi();
      const key = `order-${backend.name}-1`;
      const json = simple({ to: 'once@dest.example', tags: [key] });
      const first = await call('/v1/messages', { json, key });
      expect(first.status, first.text).toBe(202);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      // The same request: key order and spacing aside.
      const again = await call('/v1/messages', { raw: undefined, json: Object.fromEntries(Object.entries(json).reverse()), key });
      expect(again.status).toBe(202);
      expect(again.text).toBe(first.text);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.headers.get('location')).toBe(`/v1/messages/${first.body.id}`);
      const listed = await call(`/v1/messages?tag=${key}`, { token: tokens.viewer });
      expect(listed.body.items).toHaveLength(1);

      const other = await call('/v1/messages', { json: { ...json, subject: 'Changed' }, key });
      expect(other).toMatchObject({ status: 422, body: { code: 'IDEMPOTENCY_KEY_REUSED' } });
      // The same key on the batch route is another request too.
      expect((await call('/v1/messages/batch', { json: { messages: [json] }, key })).status).toBe(422);
      // A key is the token's own: another token's same key is a new request.
      const admin = await call('/v1/messages', { json, key, token: tokens.admin });
      expect(admin.status).toBe(202);
      expect(admin.body.id).not.toBe(first.body.id);
      // A refused request spends no key: mended, it goes under the same one.
      const mendKey = `mend-${backend.name}`;
      expect((await call('/v1/messages', { json: simple({ to: 'bad' }), key: mendKey })).status).toBe(400);
      expect((await call('/v1/messages', { json: simple({ to: 'mended@dest.example' }), key: mendKey })).status).toBe(202);
      expect((await call('/v1/messages', { json: simple(), key: 'x'.repeat(256) })).body.errors[0].path).toBe('headers.idempotency-key');
    });

    it('replays a batch under its key, and a raw message under its own', async () => {
      const call = await startApi();
      const batch = { messages: [simple({ to: 'b1@dest.example', tags: ['idem-batch'] }), simple({ to: 'nope' })] };
      const first = await call('/v1/messages/batch', { json: batch, key: 'batch-key' });
      const again = await call('/v1/messages/batch', { json: batch, key: 'batch-key' });
      expect([first.status, again.status]).toEqual([202, 202]);
      expect(again.text).toBe(first.text);
      expect((await call('/v1/messages?tag=idem-batch', { token: tokens.viewer })).body.items).toHaveLength(1);

      const raw = 'From: news@app.example\r\nSubject: raw once\r\n\r\nx\r\n';
      const url = '/v1/messages?from=news@app.example&to=raw-once@dest.example&tag=idem-raw';
      const r1 = await call(url, { raw, key: 'raw-key' });
      const r2 = await call(url, { raw, key: 'raw-key' });
      expect(r2.text).toBe(r1.text);
      expect((await call(url, { raw: raw.replace('once', 'twice'), key: 'raw-key' })).status).toBe(422);
      expect((await call('/v1/messages?tag=idem-raw', { token: tokens.viewer })).body.items).toHaveLength(1);
    });

    it('stores one message for racing requests with one key, from two API instances each with its own store', async () => {
      const other = await opened.stores();
      closing.push(() => other.close());
      const [callA, callB] = [await startApi(), await startApi(other)];
      for (let round = 0; round < 3; round++) {
        const key = `race-${backend.name}-${round}`;
        const json = simple({ to: `race${round}@dest.example`, tags: [key] });
        const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? callB : callA)('/v1/messages', { json, key })));
        expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        expect(answers.filter((a) => a.headers.get('idempotent-replayed') === null)).toHaveLength(1);
        expect(answers.map((a) => a.headers.get('location'))).toEqual(Array(6).fill(`/v1/messages/${answers[0]!.body.id}`));
        const listed = await callA(`/v1/messages?tag=${key}`, { token: tokens.viewer });
        expect(listed.body.items.map((m: { id: string }) => m.id)).toEqual([answers[0]!.body.id]);
      }
    });

    it('keeps in memory, for its first delivery, only the message of racing requests with one key that was stored', async () => {
      const fresh = new FreshMessages({ clock: systemClock });
      const call = await startApi(store, undefined, undefined, fresh);
      const key = `fresh-race-${backend.name}`;
      const json = simple({ to: 'fresh-race@dest.example' });
      const answers = await Promise.all(Array.from({ length: 6 }, () => call('/v1/messages', { json, key })));
      expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
      expect(fresh.size).toBe(1);
      expect(fresh.take(answers[0]!.body.id)).toEqual(await store.loadMessage(answers[0]!.body.id));
    });

    it('refuses new mail with 503 and Retry-After once the node stops', async () => {
      const call = await startApi(store, () => true);
      for (const [path, json] of [['/v1/messages', simple()], ['/v1/messages/batch', { messages: [simple()] }]] as const) {
        const res = await call(path, { json });
        expect(res).toMatchObject({ status: 503, body: { code: 'SHUTTING_DOWN' } });
        expect(res.headers.get('retry-after')).toBe('30');
      }
    });

    it('refuses new mail unread with 503 and Retry-After while disk space is low, and takes it once space is back', async () => {
      const space = { low: true };
      const call = await startApi(store, undefined, space);
      for (const [path, json] of [['/v1/messages', simple()], ['/v1/messages/batch', { messages: [simple()] }]] as const) {
        const res = await call(path, { json });
        expect(res).toMatchObject({ status: 503, body: { code: 'STORAGE_LOW', detail: expect.stringMatching(/disk space/) } });
        expect(res.headers.get('retry-after')).toBe('60');
      }
      // The token is checked first: nobody without one learns of it.
      expect(await call('/v1/messages', { json: simple(), token: 'wrong' })).toMatchObject({ status: 401 });
      // Unread: the answer comes while the announced body has not been sent.
      const socket = connect(lastAddress.port, lastAddress.host);
      const answered = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
      socket.write(`POST /v1/messages HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${tokens.app}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"from":`);
      expect(await answered).toMatch(/^HTTP\/1\.1 503 /);
      socket.destroy();
      space.low = false;
      expect(await call('/v1/messages', { json: simple() })).toMatchObject({ status: 202 });
    });

    it('answers a retry whose Idempotency-Key holds an answer while disk space is low, and refuses any other request under a key', async () => {
      const space = { low: false };
      const call = await startApi(store, undefined, space);
      const key = `low-${backend.name}`;
      const json = simple({ to: 'kept@dest.example', tags: [key] });
      const first = await call('/v1/messages', { json, key });
      expect(first.status).toBe(202);
      const batchKey = `low-batch-${backend.name}`;
      const batch = await call('/v1/messages/batch', { json: { messages: [json] }, key: batchKey });
      expect(batch.status).toBe(202);
      space.low = true;
      const again = await call('/v1/messages', { json, key });
      expect(again).toMatchObject({ status: 202, text: first.text });
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(await call('/v1/messages/batch', { json: { messages: [json] }, key: batchKey })).toMatchObject({ status: 202, text: batch.text });
      // Another request under the key is told so, as at any time; a key with no answer stores nothing.
      expect(await call('/v1/messages', { json: simple({ to: 'other@dest.example' }), key })).toMatchObject({ status: 422 });
      expect(await call('/v1/messages', { json, key: `${key}-new` })).toMatchObject({ status: 503, body: { code: 'STORAGE_LOW' } });
      space.low = false;
      const listed = await call(`/v1/messages?tag=${key}`, { token: tokens.viewer });
      expect(listed.status).toBe(200);
      expect(listed.body.items).toHaveLength(2);
    });

    it('records each send in the audit log with the queue id, never the message', async () => {
      const call = await startApi();
      const sent = await call('/v1/messages', { json: simple({ subject: 'audit-secret-subject' }) });
      const batch = await call('/v1/messages/batch', { json: { messages: [simple({ text: 'audit-secret-text' }), simple({ to: 'bad' })] } });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const entries = await store.listAudit({ actor: 'app', route: null, status: 202, outcome: null, since: null, until: null, tenant: null }, null, 100);
      const single = entries.find((e) => e.target === sent.body.id);
      expect(single).toMatchObject({ method: 'POST', route: '/v1/messages', status: 202, outcome: 'OK', change: null });
      const acceptedId = batch.body.results[0].id;
      expect(entries.find((e) => e.route === '/v1/messages/batch')).toMatchObject({ target: `${acceptedId}..${acceptedId} (1 of 2 messages)` });
      expect(JSON.stringify(entries)).not.toMatch(/audit-secret/);
    });
  });
}
