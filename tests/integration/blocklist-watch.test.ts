import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import { blocklistsConfigSchema, type BlocklistsConfig } from '../../src/config/blocklist-schema.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { BlocklistWatch, blocklistStatesOf } from '../../src/ippool/blocklist-watch.ts';
import { REASON_MAX } from '../../src/ippool/blocklist-lookup.ts';
import { queryName } from '../../src/ippool/blocklist-query.ts';
import { EgressPool, type PoolMember } from '../../src/ippool/egress-pool.ts';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { createPoolPolicy } from '../../src/ippool/pool-policy.ts';
import { ReactionEngine } from '../../src/ippool/reaction-rules.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver, type FixtureResolver } from '../helpers/fixture-resolver.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { until } from '../helpers/until.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';

/**
 * The blocklist watch against a real store and egress pool, DNS from a fixture: what a lookup
 * finds is stored, shown and acted on through the pool's own restrictions, and what it cannot
 * find changes nothing.
 */

const T0 = Date.UTC(2026, 10, 30, 9);
const MIN = 60_000;
const A = '11.22.33.44';
const B = '11.22.33.45';
const V6 = '2a01:4f8:c17:b8f::2';
/** A site of the fallback provider, and a Gmail one. */
const OTHER = 'mx.dest.test';
const GMAIL = 'alt1.aspmx.l.google.com,aspmx.l.google.com';
const TXT = 'Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL1';

const settingsOf = (input: unknown): BlocklistsConfig => blocklistsConfigSchema.parse(input);

const LISTS = settingsOf({
  lists: [
    { name: 'zen', zone: 'zen.test', ipv6: true, reaction: { action: 'suspend', providers: ['other'] } },
    { name: 'cop', zone: 'cop.test', reaction: { action: 'weight', factor: 0.5, providers: ['all'] } },
  ],
});

function member(address: string): PoolMember {
  return { address, hostname: `${address}.rookery.test`, pool: 'default', weight: 100, warmup: null };
}

interface Node {
  watch: BlocklistWatch;
  pool: EgressPool;
  metrics: Metrics;
  logs: Array<Record<string, unknown>>;
}

/** A node: its egress pool (local backend in `store`) and its watch of `ips`, with `settings()` in effect. */
async function startNode(store: Store, clock: Clock, resolver: FixtureResolver, ips: string[], settings: () => BlocklistsConfig): Promise<Node> {
  const { logger, logs } = capturingLogger('debug');
  const metrics = new Metrics({ processMetrics: false });
  const backend = createPoolBackend({ store, clock });
  const policy = createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 });
  const pool = new EgressPool({
    members: ips.map(member),
    policy,
    reactions: new ReactionEngine([]),
    backend,
    reputation: createReputationTracker({ windowMs: 3_600_000, minSamples: 20 }),
    paths: new ReadyQueues({ shaping: policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: { interval: MIN, maxInterval: 10 * MIN } }),
    defaultEgress: { address: null, hostname: 'mta.rookery.test' },
    clock,
    logger,
    metrics,
    blocklistStates: (list) => blocklistStatesOf(store, settings(), list),
  });
  await pool.start();
  const watch = new BlocklistWatch({ settings, ips: () => ips, resolver, store, pool, clock, logger, metrics });
  await watch.load();
  return { watch, pool, metrics, logs };
}

/** Selects `n` times to `site` and counts the chosen IPs (or the wait reason). */
async function spread(pool: EgressPool, site: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const s = await pool.select({ pool: 'default', site, count: 1, previous: null });
    const key = s.ok ? s.egress.address! : `wait:${s.reason}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function gauge(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.ipBlocklisted.get();
  return Object.fromEntries(values.map((v) => [`${v.labels.egress_ip} ${v.labels.list}`, v.value]));
}

async function lookups(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.blocklistLookups.get();
  return Object.fromEntries(values.map((v) => [`${v.labels.list} ${v.labels.result}`, v.value]));
}

const events = (logs: Array<Record<string, unknown>>, event: string) => logs.filter((l) => l.event === event);

describe('blocklist watch (SQLite store, local pool backend)', () => {
  let store: Store;
  let clock: ManualClock;
  let resolver: FixtureResolver;
  let settings: BlocklistsConfig;
  const nodes: Node[] = [];

  beforeEach(async () => {
    clock = manualClock(T0);
    store = createSqliteStore({ path: ':memory:', clock, logger: createLogger('silent') });
    await store.migrate();
    resolver = createFixtureResolver();
    settings = LISTS;
  });
  afterEach(async () => {
    for (const node of nodes.splice(0)) {
      await node.watch.stop();
      node.pool.stop();
    }
    await store.close();
  });

  const node = async (ips = [A, B]) => {
    const started = await startNode(store, clock, resolver, ips, () => settings);
    nodes.push(started);
    return started;
  };
  const list = (ip: string, zone: string, records: { a?: string[] | string; txt?: string[] }) => resolver.set(queryName(ip, zone)!, records);
  /** Every lookup of one interval. */
  const fullInterval = async (watch: BlocklistWatch) => {
    let looked = 0;
    for (let t = 0; t < settings.interval; t += MIN) {
      looked += await watch.checkDue();
      clock.advance(MIN);
    }
    return looked;
  };

  it('looks each public egress IP up in each list of its family, the pairs spread over the interval', async () => {
    const { watch, metrics } = await node([A, '127.0.0.2', V6, '10.1.2.3', '2001:db8::7']);
    // A in zen and cop, V6 in zen only (cop takes no IPv6); loopback, private and documentation addresses never.
    expect(await watch.checkDue()).toBe(1);
    expect(Object.values(await lookups(metrics)).filter((n) => n === 0)).toHaveLength(7);
    expect(resolver.queries).toEqual(['A 44.33.22.11.zen.test']);
    expect(watch.nextDueAt()).toBe(T0 + 10 * MIN);
    clock.advance(10 * MIN - 1);
    expect(await watch.checkDue()).toBe(0);
    clock.advance(1);
    expect(await watch.checkDue()).toBe(1);
    clock.advance(10 * MIN);
    expect(await watch.checkDue()).toBe(1);
    expect(resolver.queries).toEqual(['A 44.33.22.11.zen.test', 'A 44.33.22.11.cop.test', `A ${queryName(V6, 'zen.test')}`]);
    expect(queryName(V6, 'zen.test')).toBe('2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.f.8.b.0.7.1.c.0.8.f.4.0.1.0.a.2.zen.test');
    // The next interval starts again with the first pair, one interval after it.
    expect(watch.nextDueAt()).toBe(T0 + 30 * MIN);
    clock.set(T0 + 30 * MIN);
    expect(await watch.checkDue()).toBe(1);
    expect(resolver.queries.at(-1)).toBe('A 44.33.22.11.zen.test');

    // A reload that adds a list looks its pairs up from now; the others keep their times.
    settings = settingsOf({ interval: '1h', lists: [...LISTS.lists, { name: 'psbl', zone: 'psbl.test' }] });
    expect(watch.nextDueAt()).toBe(clock.now());
    expect(await fullInterval(watch)).toBe(4);
  });

  it("keeps a list's TXT reason printable and short: control characters written out, cut at REASON_MAX", async () => {
    const { watch, pool } = await node([A]);
    // Whoever answers for the zone writes the reason: an ESC sequence that clears an operator's screen, a forged row, a flood.
    list(A, 'zen.test', { a: ['127.0.0.2'], txt: [`\u001b[2J\u001b[31mListed\r\nX-Forged: row\u0000 ${'x'.repeat(1_000)}`] });
    await fullInterval(watch);

    const [state] = (await store.listBlocklistStates([A])).filter((s) => s.list === 'zen');
    expect(state!.reason!.startsWith('\\x1b[2J\\x1b[31mListed\\x0d\\x0aX-Forged: row\\x00 xxx')).toBe(true);
    expect(state!.reason).toHaveLength(REASON_MAX);
    expect(state!.reason!.endsWith('x…')).toBe(true);
    const [snapshot] = await pool.snapshot({ address: A });
    const reason = snapshot!.restrictions[0]!.reason;
    expect(reason).toBe(`listed on zen (127.0.0.2): ${state!.reason}`);
    // eslint-disable-next-line no-control-regex
    expect(reason).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('stores, shows and logs a listing, suspends the IP for the providers of the list, and lifts it at the delisting', async () => {
    const { watch, pool, metrics, logs } = await node();
    list(A, 'zen.test', { a: ['127.0.0.2', '127.0.0.4'], txt: [TXT] });
    await fullInterval(watch);

    const [state] = (await store.listBlocklistStates([A])).filter((s) => s.list === 'zen');
    expect(state).toEqual({ ip: A, list: 'zen', listed: true, codes: ['127.0.0.2', '127.0.0.4'], reason: TXT, firstListedAt: T0, lastCheckedAt: T0, lastError: null });
    expect(await gauge(metrics)).toEqual({ [`${A} zen`]: 1, [`${A} cop`]: 0, [`${B} zen`]: 0, [`${B} cop`]: 0 });
    expect(events(logs, 'blocklist.ip.listed')).toEqual([expect.objectContaining({ level: 40, ip: A, list: 'zen', codes: ['127.0.0.2', '127.0.0.4'], reason: TXT, reaction: 'suspend' })]);
    // The zone never reaches a log line (a DQS zone holds a key).
    expect(JSON.stringify(logs)).not.toContain('zen.test');

    // Suspended for `other` only: its mail goes from B, Gmail's from both.
    expect(await spread(pool, OTHER, 6)).toEqual({ [B]: 6 });
    expect(await spread(pool, GMAIL, 6)).toEqual({ [A]: 3, [B]: 3 });
    const [snapshot] = await pool.snapshot({ address: A });
    expect(snapshot!.restrictions).toEqual([
      { scope: 'provider', provider: 'other', site: null, action: 'suspend', ratePerHour: null, rule: 'blocklist:zen', by: null, reason: `listed on zen (127.0.0.2, 127.0.0.4): ${TXT}`, until: T0 + 45 * MIN },
    ]);
    expect(snapshot!.blocklists.map((b) => [b.list, b.listed, b.lastCheckedAt])).toEqual([
      ['zen', true, T0],
      // The second of four pairs: 7.5 minutes in, seen at the next whole minute.
      ['cop', false, T0 + 8 * MIN],
    ]);

    // Still listed: the suspension is renewed, the listing not logged again, its start kept.
    await fullInterval(watch);
    expect(events(logs, 'blocklist.ip.listed')).toHaveLength(1);
    expect((await pool.snapshot({ address: A }))[0]!.restrictions[0]!.until).toBe(T0 + 75 * MIN);
    expect((await store.listBlocklistStates([A]))[1]).toMatchObject({ list: 'zen', firstListedAt: T0, lastCheckedAt: T0 + 30 * MIN });

    // An operator suspends A meanwhile; the delisting lifts the list's suspension, not theirs.
    await pool.operations.suspend(A, { provider: null, until: T0 + 10 * 60 * MIN, reason: 'investigating', by: 'ops' });
    list(A, 'zen.test', {});
    await fullInterval(watch);
    expect(await gauge(metrics)).toMatchObject({ [`${A} zen`]: 0 });
    expect(events(logs, 'blocklist.ip.delisted')).toEqual([expect.objectContaining({ level: 30, ip: A, list: 'zen', listedForMs: 60 * MIN })]);
    expect((await store.listBlocklistStates([A]))[1]).toEqual({ ip: A, list: 'zen', listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: T0 + 60 * MIN, lastError: null });
    expect((await pool.snapshot({ address: A }))[0]!.restrictions.map((r) => r.rule)).toEqual(['operator']);
    expect(await spread(pool, OTHER, 2)).toEqual({ [B]: 2 });
    await pool.operations.resume(A, null);
    expect(await spread(pool, OTHER, 4)).toEqual({ [A]: 2, [B]: 2 });
  });

  it('lowers the weight of a listed IP by the factor of its list, and restores it at the delisting, keeping the operator\'s weight', async () => {
    const { watch, pool } = await node();
    list(A, 'cop.test', { a: ['127.0.0.2'] });
    await pool.operations.setWeight(A, { weight: 80, reason: 'tuning', by: 'ops' });
    await fullInterval(watch);
    // 80 × 0.5 against 100, for every provider.
    expect(await spread(pool, GMAIL, 14)).toEqual({ [A]: 4, [B]: 10 });
    const provider = (await pool.snapshot({ address: A }))[0]!.providers.find((p) => p.provider === 'gmail')!;
    expect(provider).toMatchObject({ effectiveWeight: 40, weightReason: 'listed on cop: weight 80 -> 40' });

    list(A, 'cop.test', {});
    await fullInterval(watch);
    const [after] = await pool.snapshot({ address: A });
    expect(after!.weightOverride).toMatchObject({ weight: 80 });
    expect(after!.providers.find((p) => p.provider === 'gmail')).toMatchObject({ effectiveWeight: 80, weightReason: null });
    expect(await spread(pool, GMAIL, 18)).toEqual({ [A]: 8, [B]: 10 });
  });

  it('keeps the last known state when a lookup times out or fails, and says so', async () => {
    const { watch, pool, metrics, logs } = await node([A]);
    list(A, 'zen.test', { a: ['127.0.0.2'] });
    await fullInterval(watch);
    list(A, 'zen.test', { a: 'ETIMEOUT' });
    list(A, 'cop.test', { a: 'ESERVFAIL' });
    await fullInterval(watch);
    await fullInterval(watch);

    expect(await store.listBlocklistStates([A])).toEqual([
      { ip: A, list: 'cop', listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: T0 + 75 * MIN, lastError: 'ESERVFAIL' },
      { ip: A, list: 'zen', listed: true, codes: ['127.0.0.2'], reason: null, firstListedAt: T0, lastCheckedAt: T0 + 60 * MIN, lastError: 'ETIMEOUT' },
    ]);
    expect(await gauge(metrics)).toEqual({ [`${A} zen`]: 1, [`${A} cop`]: 0 });
    // Every result of each watched list has a series from the start (at 0 until counted), so
    // the alerts' increase() sees the first refusal or failure.
    expect(await lookups(metrics)).toEqual({ 'zen listed': 1, 'zen clear': 0, 'zen refused': 0, 'zen error': 2, 'cop listed': 0, 'cop clear': 1, 'cop refused': 0, 'cop error': 2 });
    expect(events(logs, 'blocklist.ip.delisted')).toEqual([]);
    // Warned when the failure starts, debug while it lasts.
    expect(events(logs, 'blocklist.lookup.failed').map((l) => [l.list, l.level, l.error])).toEqual([
      ['zen', 40, 'ETIMEOUT'],
      ['cop', 40, 'ESERVFAIL'],
      ['zen', 20, 'ETIMEOUT'],
      ['cop', 20, 'ESERVFAIL'],
    ]);
    // The suspension stands, renewed by each lookup that could not answer.
    expect((await pool.snapshot({ address: A }))[0]!.restrictions).toMatchObject([{ rule: 'blocklist:zen', until: T0 + 60 * MIN + 45 * MIN }]);
    expect(await spread(pool, OTHER, 1)).toEqual({ 'wait:suspended': 1 });
  });

  it('gives a list that never answers up after blocklists.timeout, keeping the state', async () => {
    settings = settingsOf({ timeout: 50, lists: [{ name: 'slow', zone: 'slow.test' }] });
    const silent = { resolve4: () => new Promise<string[]>(() => {}), resolveTxt: () => new Promise<string[][]>(() => {}) };
    const { logger } = capturingLogger('silent');
    const metrics = new Metrics({ processMetrics: false });
    const pool = { setBlocklistRestriction: async () => {} };
    const watch = new BlocklistWatch({ settings: () => settings, ips: () => [A], resolver: silent, store, pool, clock, logger, metrics });
    expect(await watch.checkDue()).toBe(1);
    expect(await store.listBlocklistStates([A])).toEqual([{ ip: A, list: 'slow', listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: T0, lastError: 'ETIMEOUT' }]);
    expect(await gauge(metrics)).toEqual({});
  });

  it('takes a 127.255.255.x answer as a refusal: never a listing, an error state with its own metric label', async () => {
    const { watch, pool, metrics, logs } = await node([A]);
    list(A, 'zen.test', { a: ['127.255.255.254'] });
    await fullInterval(watch);
    await fullInterval(watch);
    expect((await store.listBlocklistStates([A])).find((s) => s.list === 'zen')).toEqual({
      ip: A,
      list: 'zen',
      listed: false,
      codes: [],
      reason: null,
      firstListedAt: null,
      lastCheckedAt: T0 + 30 * MIN,
      lastError: 'refused by the list (127.255.255.254: query through a public or open resolver)',
    });
    expect(await gauge(metrics)).toEqual({ [`${A} cop`]: 0 });
    expect(await lookups(metrics)).toMatchObject({ 'zen refused': 2 });
    expect(events(logs, 'blocklist.lookup.refused').map((l) => l.level)).toEqual([40, 20]);
    expect(events(logs, 'blocklist.ip.listed')).toEqual([]);
    expect(await spread(pool, OTHER, 1)).toEqual({ [A]: 1 });

    // Listed, then refused: still listed.
    list(A, 'zen.test', { a: ['127.0.0.3'] });
    await fullInterval(watch);
    list(A, 'zen.test', { a: ['127.255.255.255'] });
    await fullInterval(watch);
    expect((await store.listBlocklistStates([A])).find((s) => s.list === 'zen')).toMatchObject({ listed: true, codes: ['127.0.0.3'], lastError: expect.stringContaining('too many queries') });
    expect(await gauge(metrics)).toMatchObject({ [`${A} zen`]: 1 });
  });

  it('knows after a restart what was listed: the gauge at once, no second alert, the listing\'s start kept', async () => {
    const first = await node([A]);
    list(A, 'zen.test', { a: ['127.0.0.2'] });
    await fullInterval(first.watch);
    await first.watch.stop();
    first.pool.stop();

    clock.advance(5 * MIN);
    const second = await node([A]);
    expect(await gauge(second.metrics)).toEqual({ [`${A} zen`]: 1, [`${A} cop`]: 0 });
    // The suspension the first process set is in pool state still.
    expect(await spread(second.pool, OTHER, 1)).toEqual({ 'wait:suspended': 1 });
    await fullInterval(second.watch);
    expect(events(second.logs, 'blocklist.ip.listed')).toEqual([]);
    expect((await store.listBlocklistStates([A]))[1]).toMatchObject({ list: 'zen', listed: true, firstListedAt: T0, lastCheckedAt: T0 + 35 * MIN });
  });

  it("keeps a stored listing's reaction in force after a restart that lost it, and looks the pair up before it ends", async () => {
    const first = await node([A, B]);
    list(B, 'zen.test', { a: ['127.0.0.2'] });
    // B on zen is the third of four pairs: looked up at T0 + 15 min, suspended until T0 + 60 min.
    await fullInterval(first.watch);
    // Pool state lost meanwhile (a Redis that restarted empty), and the process restarts late in the interval.
    await first.pool.setBlocklistRestriction(B, 'zen', null);
    await first.watch.stop();
    first.pool.stop();
    clock.set(T0 + 50 * MIN);

    const second = await node([A, B]);
    expect((await second.pool.snapshot({ address: B }))[0]!.restrictions).toMatchObject([{ rule: 'blocklist:zen', until: T0 + 60 * MIN }]);
    // Every minute of the next hour B is suspended for `other`: the lookup renews the reaction before it ends.
    for (let t = 50; t <= 110; t++) {
      clock.set(T0 + t * MIN);
      await second.watch.checkDue();
      expect(await spread(second.pool, OTHER, 1), `at T0 + ${t} min`).toEqual({ [A]: 1 });
    }
    expect(resolver.queries.filter((q) => q === `A ${queryName(B, 'zen.test')}`)).toHaveLength(4);
  });

  it('keeps the lookup times of the pairs a reload leaves, so a listed pair is renewed before its reaction ends', async () => {
    const { watch, pool } = await node([A, B]);
    list(B, 'zen.test', { a: ['127.0.0.2'] });
    // B on zen: looked up at T0 + 15 min, suspended until T0 + 60 min, due again at T0 + 45 min.
    await fullInterval(watch);
    clock.set(T0 + 40 * MIN);
    // Two lists more, zen moved last: spread from now again, B on zen would come last of eight, 26 minutes on.
    settings = settingsOf({ lists: [LISTS.lists[1], { name: 'psbl', zone: 'psbl.test' }, { name: 'x', zone: 'x.test' }, LISTS.lists[0]] });
    for (let t = 40; t <= 100; t++) {
      clock.set(T0 + t * MIN);
      await watch.checkDue();
      expect(await spread(pool, OTHER, 1), `at T0 + ${t} min`).toEqual({ [A]: 1 });
    }
    expect((await store.listBlocklistStates([B])).find((s) => s.list === 'zen')).toMatchObject({ listed: true, lastCheckedAt: T0 + 75 * MIN });
  });

  it('lifts the reaction of a list a reload removes, and its gauge series', async () => {
    const { watch, pool, metrics } = await node([A]);
    list(A, 'zen.test', { a: ['127.0.0.2'] });
    await fullInterval(watch);
    expect(await spread(pool, OTHER, 1)).toEqual({ 'wait:suspended': 1 });
    settings = settingsOf({ lists: [LISTS.lists[1]] });
    await watch.checkDue();
    expect(await gauge(metrics)).toEqual({ [`${A} cop`]: 0 });
    expect(await spread(pool, OTHER, 1)).toEqual({ [A]: 1 });
    // Off: nothing watched, nothing shown.
    settings = settingsOf({ enabled: false });
    expect(watch.nextDueAt()).toBeNull();
    expect((await pool.snapshot({ address: A }))[0]!.blocklists).toEqual([]);
  });

  it('warns once per plan when lists are enabled and no IP can be looked up (none, or only private ones behind NAT)', async () => {
    const { watch, logs } = await node(['10.1.2.3', '192.168.7.8']);
    expect(watch.nextDueAt()).toBeNull();
    expect(events(logs, 'blocklist.watch.idle')).toMatchObject([{ level: 40, ips: ['10.1.2.3', '192.168.7.8'], lists: ['zen', 'cop'] }]);
    expect(await watch.checkDue()).toBe(0);
    expect(events(logs, 'blocklist.watch.idle')).toHaveLength(1);
    // Said again when a reload makes a new plan that still watches nothing; not when the lists are off.
    settings = settingsOf({ interval: '1h', lists: LISTS.lists });
    await watch.checkDue();
    expect(events(logs, 'blocklist.watch.idle')).toHaveLength(2);
    settings = settingsOf({ enabled: false });
    await watch.checkDue();
    expect(events(logs, 'blocklist.watch.idle')).toHaveLength(2);

    settings = LISTS;
    const none = await node([]);
    expect(none.watch.nextDueAt()).toBeNull();
    expect(events(none.logs, 'blocklist.watch.idle')).toMatchObject([{ ips: [], msg: expect.stringContaining('no egress IP is configured') }]);
    // A node with one public IP is watched: no warning.
    const watched = await node([A, '10.1.2.3']);
    expect(watched.watch.nextDueAt()).toBe(T0);
    expect(events(watched.logs, 'blocklist.watch.idle')).toEqual([]);
  });

  it('looks up on its own timer once started, and stops it', async () => {
    const { watch } = await node([A]);
    await watch.start();
    await watch.start();
    await until(() => resolver.queries.length === 1, 'the first lookup');
    await watch.stop();
    await watch.stop();
    expect(resolver.queries).toEqual(['A 44.33.22.11.zen.test']);
  });
});

const postgres = await requirePostgres();

describe.skipIf(!postgres)('blocklist watch (two nodes on PostgreSQL)', () => {
  let schema: TestSchema;
  const stores: Store[] = [];
  const nodes: Node[] = [];

  beforeEach(async () => {
    schema = await createTestSchema('blocklist-watch');
  });
  afterEach(async () => {
    for (const n of nodes.splice(0)) {
      await n.watch.stop();
      n.pool.stop();
    }
    for (const s of stores.splice(0)) await s.close();
    await schema.drop();
  });

  it('shares what each node finds for its own IPs: both show both, and a restart of either keeps it', async () => {
    const clock = manualClock(T0);
    const open = async () => {
      const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger: createLogger('silent'), poolSize: 2 });
      await store.migrate();
      stores.push(store);
      return store;
    };
    const resolver = createFixtureResolver();
    resolver.set(queryName(A, 'zen.test')!, { a: ['127.0.0.2'], txt: [TXT] });
    resolver.set(queryName(B, 'cop.test')!, { a: ['127.0.0.2'] });
    const [storeA, storeB] = [await open(), await open()];
    const nodeA = await startNode(storeA, clock, resolver, [A], () => LISTS);
    const nodeB = await startNode(storeB, clock, resolver, [B], () => LISTS);
    nodes.push(nodeA, nodeB);
    for (let t = 0; t < LISTS.interval; t += MIN) {
      await nodeA.watch.checkDue();
      await nodeB.watch.checkDue();
      clock.advance(MIN);
    }
    // Each node looked up its own IP only.
    expect(resolver.queries.filter((q) => q.includes('45.33.22.11'))).toEqual(['A 45.33.22.11.zen.test', 'A 45.33.22.11.cop.test', 'TXT 45.33.22.11.cop.test']);
    expect(resolver.queries.filter((q) => q.includes('44.33.22.11'))).toHaveLength(3);

    const seen = async (store: Store) => (await blocklistStatesOf(store, LISTS, [A, B])).map((s) => [s.ip, s.list, s.listed, s.reason]);
    const expected = [
      [A, 'zen', true, TXT],
      [A, 'cop', false, null],
      [B, 'zen', false, null],
      [B, 'cop', true, null],
    ];
    expect(await seen(storeA)).toEqual(expected);
    expect(await seen(storeB)).toEqual(expected);

    // Node A restarts on a store of its own connection: it knows its listing, and alerts no more.
    const restarted = await startNode(await open(), clock, resolver, [A], () => LISTS);
    nodes.push(restarted);
    expect(await gauge(restarted.metrics)).toEqual({ [`${A} zen`]: 1, [`${A} cop`]: 0 });
    for (let t = 0; t < LISTS.interval; t += MIN) {
      await restarted.watch.checkDue();
      clock.advance(MIN);
    }
    expect(events(restarted.logs, 'blocklist.ip.listed')).toEqual([]);
    expect(await spread(restarted.pool, OTHER, 1)).toEqual({ 'wait:suspended': 1 });
  });
});
