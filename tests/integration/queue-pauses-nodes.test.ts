import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres.ts';
import { redisUrl, requirePostgres, requireRedis } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const servicesAvailable = (await requirePostgres()) && (await requireRedis());

/**
 * A pause made through one node's API, on two daemons sharing one PostgreSQL queue and one
 * Redis: the other node reads it on its own (within its few seconds) and leaves the paused mail
 * queued, parked out of both nodes' claims by its own sweep; a node started afterwards has it
 * from the store; a resume through either releases the parked mail for every node and restarts
 * the delivery, and the other node reads the resume too.
 */

const resolver = createFixtureResolver({});
const operator = generateApiToken();

function api(d: Daemon) {
  const { host, port } = d.apiAddress();
  const call = async (method: string, path: string, body?: object): Promise<any> => {
    const res = await fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${operator}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    expect(res.status, `${method} ${path}`).toBe(200);
    return res.json();
  };
  /** This node's own count of the domain pauses in force (a read that does not refresh its copy). */
  const domainPauses = async () => {
    const text = await (await fetch(`http://${host}:${port}/metrics`)).text();
    return Number(/^rookery_queue_pauses\{scope="domain"\} (\d+)$/m.exec(text)?.[1] ?? NaN);
  };
  return { call, domainPauses };
}

describe('queue pauses shared by two daemons', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let scratch: ScratchDatabase | undefined;
  const daemons = new Set<Daemon>();

  afterEach(async () => {
    for (const d of daemons) await d.stop();
    daemons.clear();
    await sink?.close();
    await scratch?.drop();
    await dir?.remove();
    sink = scratch = dir = undefined;
  });

  it.skipIf(!servicesAvailable)('stops the delivery of paused mail on the other node, keeps the pause for a node started later, and restarts it on a resume', { timeout: 90_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir('rookery-pause-nodes');
    scratch = await createScratchDatabase(undefined, 'pausenodes');
    const shared: ConfigInput = {
      api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'night-shift', role: 'operator', hash: hashApiToken(operator) }] },
      ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      storage: { driver: 'postgres', url: scratch.url },
      redis: { url: redisUrl(), keyPrefix: `rookery-test-${randomBytes(4).toString('hex')}:` },
      delivery: { routes: { '*': `127.0.0.1:${sink.port}` }, retry: { initial: '1h', jitter: 0 } },
    };
    const node = async (name: string) => {
      const d = await startTestDaemon({ dir: dir!, sink: sink!, resolver, config: { ...shared, hostname: `${name}.rookery.test` } });
      daemons.add(d);
      return d;
    };
    const stop = async (d: Daemon) => {
      await d.stop();
      daemons.delete(d);
    };
    const arrived = (to: string) => sink!.messages.find((m) => m.to.includes(to));
    /** The queued rows parked in the shared queue. */
    const parked = async () => {
      const client = new pg.Client({ connectionString: scratch!.url });
      await client.connect();
      try {
        return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM recipients WHERE parked_due_at IS NOT NULL AND state = 'queued'`)).rows[0]!.n);
      } finally {
        await client.end();
      }
    };

    const a = await node('node-a');
    const b = await node('node-b');
    await api(a).call('POST', '/v1/queue/pause', { scope: { domain: 'paused.test' }, reason: 'provider incident' });
    // Node B reads it on its own, within its refresh.
    await until(async () => (await api(b).domainPauses()) === 1, 'the pause on node b', 20_000);

    // Only node B left to deliver: it sends the open domain's mail and leaves the paused one queued.
    await stop(a);
    const body = testMessage({ from: 'app@sender.test', to: 'x@paused.test', messageId: '<shared@t>' });
    const { id } = await b.submit({ sender: 'app@sender.test', recipients: ['x@paused.test', 'y@open.test'], body, submitter: null, source: 'http', clientAddress: null });
    await until(() => arrived('y@open.test') !== undefined, 'the open domain delivered by node b');
    expect(arrived('y@open.test')!.helo).toBe('node-b.rookery.test');
    const states = async (d: Daemon): Promise<Record<string, string>> => Object.fromEntries(((await api(d).call('GET', `/v1/messages/${id}`)).recipients as Array<{ address: string; state: string; attempts: number }>).map((r) => [r.address, `${r.state}/${r.attempts}`]));
    await until(async () => (await states(b))['y@open.test'] === 'delivered/1', 'the delivery recorded');
    expect(await states(b)).toEqual({ 'x@paused.test': 'queued/0', 'y@open.test': 'delivered/1' });
    // Node B's sweep parks it: no claim of any node walks it any more.
    await until(async () => (await parked()) === 1, 'the paused row parked by node b', 20_000);

    // Node A starts again: the pause is in the store, so it holds the mail back too.
    const a2 = await node('node-a');
    expect((await api(a2).call('GET', '/v1/queue/pauses')).pauses).toMatchObject([{ scope: { domain: 'paused.test' }, by: 'night-shift' }]);
    expect(await api(a2).domainPauses()).toBe(1);
    expect(await states(a2)).toEqual({ 'x@paused.test': 'queued/0', 'y@open.test': 'delivered/1' });

    // Resumed through node A: the mail goes, and node B reads the resume as well.
    expect((await api(a2).call('POST', '/v1/queue/resume', { scope: { domain: 'paused.test' } })).ended).toMatchObject({ reason: 'provider incident' });
    await until(() => arrived('x@paused.test') !== undefined, 'the paused mail delivered after the resume', 20_000);
    expect(await parked()).toBe(0);
    // Recorded just after the sink's reply.
    await until(async () => (await states(b))['x@paused.test'] === 'delivered/1', 'the delivery recorded');
    await until(async () => (await api(b).domainPauses()) === 0, 'the resume on node b', 20_000);
  });
});
