import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
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
 * Paused mail parked out of the claims' way, over the real control API of a daemon in this
 * process on SQLite and PostgreSQL: a pause parks its domain's mail due within the minute at once,
 * mail accepted into it afterwards within a sweep, a retry acts on it as on any paused mail, GET
 * /v1/messages/{id} shows it paused at its own due time, counts and the queue age still see it,
 * and a resume, or a pause's end, releases it to be delivered. The parked rows are counted in the
 * database itself.
 */

const postgres = await requirePostgres();
const resolver = createFixtureResolver({});
const operator = generateApiToken();
const HOSTNAME = 'parking.rookery.test';

interface RecipientJson {
  address: string;
  state: string;
  attempts: number;
  nextAttemptAt: string | null;
  paused: boolean;
}

for (const backend of [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: !postgres },
]) {
  describe.skipIf(backend.skip)(`parked paused mail on ${backend.name}`, () => {
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

    /** The queued rows parked now, read from the database. */
    async function parked(): Promise<number> {
      const sql = `SELECT count(*) AS n FROM recipients WHERE parked_due_at IS NOT NULL AND state = 'queued'`;
      if (!schema) {
        const db = new DatabaseSync(join(dir!.path, 'data', `${HOSTNAME}.db`), { readOnly: true });
        try {
          return Number((db.prepare(sql).get() as { n: number }).n);
        } finally {
          db.close();
        }
      }
      const client = new pg.Client({ connectionString: schema.url });
      await client.connect();
      try {
        await client.query(`SET search_path TO "${schema.schema}"`);
        return Number((await client.query<{ n: string }>(sql)).rows[0]!.n);
      } finally {
        await client.end();
      }
    }

    async function start() {
      // The first attempt to retry@slow.test is deferred (retried in an hour).
      let deferredOnce = false;
      sink = await startSmtpSink({ script: { onRcptTo: (address) => (address === 'retry@slow.test' && !deferredOnce ? ((deferredOnce = true), { code: 451, message: '4.7.1 Greylisted, try later' }) : undefined) } });
      dir = await createTempDir('rookery-pause-parking');
      let store: Store | undefined;
      if (backend.name === 'postgres') {
        schema = await createTestSchema('pause-parking');
        store = createPostgresStore({ url: schema.url, schema: schema.schema, logger: createLogger('silent'), poolSize: 4 });
      }
      const config: ConfigInput = {
        hostname: HOSTNAME,
        api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'night-shift', role: 'operator', hash: hashApiToken(operator) }] },
        ips: [{ address: '127.0.0.2' }],
        delivery: { routes: { '*': `127.0.0.1:${sink.port}` }, retry: { initial: '1h', jitter: 0 } },
      };
      daemon = await startTestDaemon({ dir, sink, resolver, config, store });
      const { host, port } = daemon.apiAddress();
      const call = async (method: string, path: string, body?: object): Promise<any> => {
        const res = await fetch(`http://${host}:${port}${path}`, {
          method,
          headers: { authorization: `Bearer ${operator}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        const answer = path === '/metrics' ? await res.text() : await res.json();
        expect(res.status, `${method} ${path}`).toBe(200);
        return answer;
      };
      const recipients = async (id: string): Promise<RecipientJson[]> => (await call('GET', `/v1/messages/${id}`)).recipients;
      return { call, recipients };
    }

    const submit = async (recipients: string[], tag: string, sendAt?: number) =>
      (await daemon!.submit({ sender: 'app@sender.test', recipients, body: testMessage({ from: 'app@sender.test', to: recipients[0]!, messageId: `<${tag}@t>` }), submitter: null, source: 'http', clientAddress: null, sendAt })).id;
    const arrived = (address: string) => sink!.messages.some((m) => m.to.includes(address));
    const arrivedAll = (addresses: string[], ms = 20_000) => until(() => addresses.every(arrived), `mail to ${addresses.join(', ')}`, ms);

    it('parks a paused domain at once and what comes into it within a sweep, retries it as before, shows it paused, and releases it on a resume', { timeout: 90_000 }, async () => {
      const api = await start();
      const deferred = await submit(['retry@slow.test'], 'deferred');
      await until(async () => (await api.recipients(deferred))[0]!.attempts === 1, 'the deferral');
      const sendAt = Date.now() + 5_000;
      const scheduled = await submit(['s1@slow.test', 's2@slow.test'], 'scheduled', sendAt);

      // The scheduled rows fall due within the minute: parked at once. The deferred one waits its hour unparked.
      await api.call('POST', '/v1/queue/pause', { scope: { domain: 'slow.test' }, reason: 'provider incident' });
      await until(async () => (await parked()) === 2, 'the park of the pause');
      expect((await api.recipients(scheduled)).map((r) => [r.state, r.paused, r.nextAttemptAt])).toEqual([
        ['queued', true, new Date(sendAt).toISOString()],
        ['queued', true, new Date(sendAt).toISOString()],
      ]);
      expect(await api.recipients(deferred)).toMatchObject([{ state: 'queued', attempts: 1, paused: true }]);

      // Accepted while paused: the open domain's goes, the paused one's is parked by the next sweep.
      const late = await submit(['late@slow.test', 'ok@open.test'], 'late');
      await arrivedAll(['ok@open.test']);
      await until(async () => (await parked()) === 3, 'the sweep to park mail accepted after the pause', 15_000);
      expect((await api.recipients(late)).map((r) => [r.address, r.state, r.paused])).toEqual([
        ['late@slow.test', 'queued', true],
        ['ok@open.test', 'delivered', false],
      ]);

      // A retry: the deferred row is due now, and still not sent while paused (parked in its turn).
      expect(await api.call('POST', '/v1/queue/retry', { scope: { domain: 'slow.test' } })).toEqual({ scope: { domain: 'slow.test' }, retried: 1 });
      await until(async () => (await parked()) === 4, 'the sweep to park the retried row', 15_000);
      const [retried] = await api.recipients(deferred);
      expect(retried).toMatchObject({ state: 'queued', attempts: 1, paused: true });
      expect(Date.parse(retried!.nextAttemptAt!)).toBeLessThanOrEqual(Date.now());

      // Queued for the counts and the queue age, past the scheduled time, and nothing of the domain sent.
      await until(() => Date.now() > sendAt + 1_000, 'the scheduled time');
      expect((await api.call('GET', '/v1/queue')).counts).toMatchObject({ queued: 4, delivering: 0 });
      const age = Number(/^rookery_queue_oldest_age_seconds (\S+)$/m.exec(await api.call('GET', '/metrics'))?.[1]);
      expect(age).toBeGreaterThan(5);
      expect(['retry@slow.test', 's1@slow.test', 's2@slow.test', 'late@slow.test'].some(arrived)).toBe(false);

      // Resumed: every parked row is released and goes.
      await api.call('POST', '/v1/queue/resume', { scope: { domain: 'slow.test' } });
      await arrivedAll(['retry@slow.test', 's1@slow.test', 's2@slow.test', 'late@slow.test']);
      expect(await parked()).toBe(0);
      await until(async () => (await api.recipients(deferred))[0]!.state === 'delivered', 'the retried delivery recorded');
      expect(await api.recipients(deferred)).toMatchObject([{ state: 'delivered', attempts: 2, paused: false }]);
    });

    it('releases parked mail when its pause runs out', { timeout: 60_000 }, async () => {
      const api = await start();
      const sendAt = Date.now() + 2_000;
      const id = await submit(['t@timed.test'], 'timed', sendAt);
      const { pause } = await api.call('POST', '/v1/queue/pause', { scope: { domain: 'timed.test' }, for: '6s', reason: 'short maintenance' });
      await until(async () => (await parked()) === 1, 'the park of the pause');
      expect(await api.recipients(id)).toMatchObject([{ state: 'queued', paused: true, nextAttemptAt: new Date(sendAt).toISOString() }]);
      await arrivedAll(['t@timed.test']);
      expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(pause.until));
      expect(await parked()).toBe(0);
    });
  });
}
