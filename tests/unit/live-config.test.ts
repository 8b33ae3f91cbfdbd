import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { LiveConfig, type PrepareReload } from '../../src/live-config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { copyDataFiles } from '../helpers/data-files.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { selfSignedPair } from '../helpers/tls-fixture.ts';

/**
 * LiveConfig over real resolutions: `file` stands for the configuration file, read again at
 * each reload; `prepare` is the daemon's part, here recording what it was asked to apply.
 */
function live(initial: ConfigInput, prepare?: PrepareReload, options: { started?: boolean; configDir?: string } = {}) {
  let file: ConfigInput = initial;
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  const read = () => resolveConfig(file, { source: 'rookery.yaml', env: {}, configDir: options.configDir });
  const applied: string[][] = [];
  const config = new LiveConfig({
    initial: read(),
    reread: read,
    logger,
    prepare: prepare ?? (async (_next, plan) => () => void applied.push(plan.changed)),
  });
  if (options.started ?? true) config.open();
  return { config, lines, applied, write: (next: ConfigInput) => void (file = next) };
}

const BASE: ConfigInput = { hostname: 'mta1.example.com', ips: [{ address: '203.0.113.7' }] };

/** Copies of the shipped data files, edited by the tests. */
const temp = await createTempDir('rookery-live-config');

describe('LiveConfig', () => {
  afterAll(() => temp.remove());

  it('applies a new file whole, with the running value of what needs a restart, and logs one line', async () => {
    const { config, lines, applied, write } = live(BASE);
    const before = config.current;
    write({ ...BASE, hostname: 'mta2.example.com', ips: [{ address: '203.0.113.7', weight: 5 }] });
    expect(await config.reload('signal')).toEqual({ ok: true, source: 'rookery.yaml', changed: ['ips'], restartRequired: ['hostname'], warnings: [] });
    expect(applied).toEqual([['ips']]);
    expect(config.current).not.toBe(before);
    expect(config.current.config.ips[0]!.weight).toBe(5);
    expect(config.current.config.hostname).toBe('mta1.example.com');
    expect(Object.isFrozen(config.current.config)).toBe(true);
    expect(lines).toMatchObject([{ event: 'daemon.reloaded', trigger: 'signal', changed: ['ips'], restartRequired: ['hostname'], level: 40 }]);
  });

  it('changes nothing for a file with problems, and answers every one', async () => {
    const { config, lines, applied, write } = live(BASE);
    const before = config.current;
    write({ ...BASE, ips: [{ address: 'nowhere' }], smtp: { maxRecipients: 0 } });
    const outcome = await config.reload('api');
    expect(outcome).toEqual({ ok: false, source: 'rookery.yaml', problems: ['smtp.maxRecipients: Too small: expected number to be >0', 'ips[0].address: not an IP address'] });
    expect(config.current).toBe(before);
    expect(applied).toEqual([]);
    expect(lines).toMatchObject([{ event: 'daemon.reload.refused', trigger: 'api', level: 50 }]);
  });

  it('changes nothing when the components cannot take the new configuration', async () => {
    const { config, write } = live(BASE, async () => {
      throw new Error('no room');
    });
    const before = config.current;
    write({ ...BASE, ips: [] });
    expect(await config.reload('api')).toMatchObject({ ok: false, problems: ['(root): the new configuration could not be applied: no room'] });
    expect(config.current).toBe(before);
  });

  it('runs reloads one after the other', async () => {
    const events: string[] = [];
    let count = 0;
    const { config, write } = live(BASE, async (_next, plan) => {
      const n = ++count;
      events.push(`prepare ${n}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      return () => void events.push(`commit ${n}: ${plan.changed.join(',') || '-'}`);
    });
    write({ ...BASE, ips: [{ address: '203.0.113.7', weight: 1 }] });
    const [first, second] = await Promise.all([config.reload('api'), config.reload('signal')]);
    expect(events).toEqual(['prepare 1', 'commit 1: ips', 'prepare 2', 'commit 2: -']);
    expect(first).toMatchObject({ ok: true, changed: ['ips'] });
    expect(second).toMatchObject({ ok: true, changed: [] });
  });

  it('refuses reloads as unavailable until start-up completed, and from the moment stop began', async () => {
    const { config, lines, applied, write } = live(BASE, undefined, { started: false });
    write({ ...BASE, ips: [{ address: '203.0.113.7', weight: 5 }] });
    expect(await config.reload('api')).toEqual({ ok: false, source: 'rookery.yaml', unavailable: 'the daemon is still starting' });
    config.open();
    expect(await config.reload('api')).toMatchObject({ ok: true, changed: ['ips'] });
    config.close();
    expect(await config.reload('signal')).toEqual({ ok: false, source: 'rookery.yaml', unavailable: 'the daemon is stopping' });
    expect(applied).toEqual([['ips']]);
    expect(lines.map((l) => [l.event, l.reason])).toEqual([
      ['daemon.reload.unavailable', 'the daemon is still starting'],
      ['daemon.reloaded', undefined],
      ['daemon.reload.unavailable', 'the daemon is stopping'],
    ]);
  });

  it('does not commit a reload that was being prepared, or waiting for another, when stop began', async () => {
    let prepared!: () => void;
    const preparing = new Promise<void>((resolve) => (prepared = resolve));
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const commits: string[][] = [];
    const { config, write } = live(BASE, async (_next, plan) => {
      prepared();
      await finished;
      return () => void commits.push(plan.changed);
    });
    const before = config.current;
    write({ ...BASE, ips: [{ address: '203.0.113.7', weight: 5 }] });
    const first = config.reload('api');
    const queued = config.reload('signal');
    await preparing;
    config.close();
    finish();
    expect(await first).toMatchObject({ ok: false, unavailable: 'the daemon is stopping' });
    expect(await queued).toMatchObject({ ok: false, unavailable: 'the daemon is stopping' });
    expect(commits).toEqual([]);
    expect(config.current).toBe(before);
  });

  it('warns, in its answer and its log line, of each pool that lost its last IP and where its mail goes', async () => {
    const pools: ConfigInput = { ...BASE, ips: [{ address: '203.0.113.7' }, { address: '203.0.113.8', pool: 'bulk' }, { address: '203.0.113.9', pool: 'news' }] };
    const { config, lines, write } = live(pools);
    write({ ...BASE, ips: [{ address: '203.0.113.7' }, { address: '203.0.113.8', pool: 'news' }] });
    const warnings = ['ips: pool bulk lost its last IP; its mail, queued or new, goes through pool default'];
    expect(await config.reload('api')).toEqual({ ok: true, source: 'rookery.yaml', changed: ['ips'], restartRequired: [], warnings });
    expect(lines.at(-1)).toMatchObject({ event: 'daemon.reloaded', level: 40, warnings, msg: `configuration reloaded: ips; ${warnings[0]}` });
  });

  it('warns when it empties ips while pools, users or tenants still name pools: everything leaves from the default address', async () => {
    const named: ConfigInput = {
      ...BASE,
      ips: [{ address: '203.0.113.7' }, { address: '203.0.113.8', pool: 'bulk' }],
      pools: { bulk: { senders: ['news.example.com'] } },
      smtp: { users: [{ username: 'app', password: 'secret', allowedSenders: ['*'], pool: 'bulk', pools: ['default'], tenant: 'acme' }] },
      tenants: { acme: { senderDomains: ['*'], pools: ['bulk', 'default'] } },
    };
    const { config, lines, write } = live(named);
    write({ ...named, ips: [] });
    const warning =
      "ips: empty: every message now goes out from the host's default address, whatever its pool; pools are still named at pools.bulk, smtp.users[0].pool, smtp.users[0].pools[0], tenants.acme.pools";
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: ['ips'], warnings: [warning] });
    expect(lines.at(-1)).toMatchObject({ event: 'daemon.reloaded', level: 40, warnings: [warning] });

    // Emptied without any pool named: nothing to warn of.
    const { config: plain, write: writePlain } = live(BASE);
    writePlain({ ...BASE, ips: [] });
    expect(await plain.reload('signal')).toMatchObject({ ok: true, changed: ['ips'], warnings: [] });
  });

  it('reports each edited shipped data file in changed, unless its config section changed too; an edit that changes nothing is no change', async () => {
    const data = copyDataFiles(temp.file('data-files'));
    const { config, write } = live(BASE, undefined, { configDir: data.configDir });
    data.edit('plans', (text) => `${text}\nextra: [5, 10]\n`);
    data.edit('shaping', (text) => text.replace('maxConnections: 10', 'maxConnections: 8'));
    data.edit('reactionRules', (text) => text.replace('duration: 24h', 'duration: 12h'));
    data.edit('bounceRules', (text) => `${text}\n- name: local-rule\n  codes: [599]\n  bounceClass: other\n`);
    data.edit('providers', (text) => `${text}\n# A comment changes nothing.\n`);
    expect(await config.reload('signal')).toMatchObject({
      ok: true,
      changed: ['config/warmup-plans.yaml', 'config/shaping.yaml', 'config/reaction-rules.yaml', 'config/bounce-rules.yaml'],
    });
    expect(config.current.pool.shaping.default.maxConnections).toBe(8);
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: [] });

    data.edit('shaping', (text) => text.replace('maxConnections: 8', 'maxConnections: 6'));
    write({ ...BASE, shaping: { default: { maxMessagesPerConnection: 40 } } });
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: ['shaping'] });
    expect(config.current.pool.shaping.default).toMatchObject({ maxConnections: 6, maxMessagesPerConnection: 40 });
  });

  it('takes smtp.tls files renewed at the same paths; new paths wait for a restart', async () => {
    const [first, renewed] = await Promise.all([selfSignedPair('first.example.com'), selfSignedPair('renewed.example.com')]);
    const at = (name: string, pair: { key: Buffer; cert: Buffer }) => {
      const paths = { key: temp.file(`${name}-key.pem`), cert: temp.file(`${name}-cert.pem`) };
      writeFileSync(paths.key, pair.key);
      writeFileSync(paths.cert, pair.cert);
      return paths;
    };
    const listeners = [{ host: '127.0.0.1', port: 2525, tls: 'starttls' as const }];
    const paths = at('smtp', first);
    const { config, write } = live({ ...BASE, smtp: { listeners, tls: paths } });
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: [] });

    at('smtp', renewed);
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: ['smtp.tls files'], restartRequired: [] });
    expect(config.current.tls?.cert.equals(renewed.cert)).toBe(true);

    write({ ...BASE, smtp: { listeners, tls: at('elsewhere', first) } });
    expect(await config.reload('signal')).toMatchObject({ ok: true, changed: [], restartRequired: ['smtp.tls'] });
    expect(config.current.tls?.cert.equals(renewed.cert)).toBe(true);
  });
});
