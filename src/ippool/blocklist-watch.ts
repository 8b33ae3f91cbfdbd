import { BlockList, isIP } from 'node:net';
import type { Clock } from '../clock.ts';
import type { BlocklistConfig, BlocklistsConfig } from '../config/blocklist-schema.ts';
import { restrictedAddressCheck } from '../mail/special-addresses.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { BlocklistState, BlocklistStates } from '../storage/blocklist-states.ts';
import { lookUpListing, type BlocklistLookup, type BlocklistResolver } from './blocklist-lookup.ts';
import { queryName } from './blocklist-query.ts';
import { nextDue, replan, type Scheduled } from './blocklist-schedule.ts';
import { ALL_PROVIDERS_LABEL } from './restriction-scope.ts';
import type { BlocklistRestriction } from './restrictions.ts';

/**
 * The blocklist watch: every egress IP of this node looked up in the configured DNS blocklists,
 * each (IP, list) pair once per `blocklists.interval` at its own offset (blocklist-schedule.ts).
 *
 * What a lookup finds is stored (the store is shared: every node shows the same, and a restart
 * neither alerts again nor forgets since when an IP is listed), shown by the gauge
 * rookery_ip_blocklisted, logged when it changes (blocklist.ip.listed / blocklist.ip.delisted),
 * and acted on as the list's reaction says: a suspension or a lower weight for some providers,
 * kept in pool state (the egress pool's own restriction mechanism, under a key per list) while
 * listed and lifted at the delisting. The operator's pauses, suspensions and weights live under
 * keys of their own, so neither a listing nor a delisting touches them.
 *
 * A lookup that times out, fails or is refused by the list (127.255.255.x) changes no listing:
 * the state known before stands (a listed IP stays listed, its reaction renewed) and the error
 * is stored, counted and logged. Each node watches the IPs of its own configuration, the ones it
 * sends from. Loopback, private, documentation and other special addresses are never looked
 * up: no public list judges them.
 */

export interface BlocklistWatchDeps {
  /** The section in effect, read at each lookup (a reload applies at once). */
  settings: () => BlocklistsConfig;
  /** This node's egress IPs (canonical spelling), read at each lookup. */
  ips: () => readonly string[];
  resolver: BlocklistResolver;
  store: BlocklistStates;
  /** Where the reactions go: the egress pool's state. */
  pool: { setBlocklistRestriction(ip: string, list: string, restriction: BlocklistRestriction | null): Promise<void> };
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

/** An (IP, list) pair the watch looks up. */
export interface WatchedPair {
  ip: string;
  list: BlocklistConfig;
}

/** Every result of a lookup (rookery_blocklist_lookups_total's `result`): a record, so a new kind must be added. */
const LOOKUP_RESULTS = Object.keys({ listed: null, clear: null, refused: null, error: null } satisfies Record<BlocklistLookup['kind'], null>);
/** How long a reaction outlives the lookup that set it, in intervals: the next lookup renews it. */
const REACTION_INTERVALS = 1.5;
/** The longest sleep between looks at the schedule, so a reload's new lists or IPs are seen soon. */
const MAX_SLEEP_MS = 60_000;

const isSpecial = restrictedAddressCheck();

/** The documentation ranges (RFC 5737, RFC 3849): examples and test setups, never a sender a list could name. */
const DOCUMENTATION = new BlockList();
DOCUMENTATION.addSubnet('192.0.2.0', 24, 'ipv4');
DOCUMENTATION.addSubnet('198.51.100.0', 24, 'ipv4');
DOCUMENTATION.addSubnet('203.0.113.0', 24, 'ipv4');
DOCUMENTATION.addSubnet('2001:db8::', 32, 'ipv6');

/** Whether a list could judge `ip`: a public address, neither special nor for documentation. */
function isPublic(ip: string): boolean {
  return isSpecial(ip) === null && !DOCUMENTATION.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

/** The pairs `settings` and `ips` make: each IP that is a public address, with each list that answers for its family. */
export function watchedPairs(settings: BlocklistsConfig, ips: readonly string[]): WatchedPair[] {
  if (!settings.enabled) return [];
  return ips.filter(isPublic).flatMap((ip) => settings.lists.filter((list) => isIP(ip) === 4 || list.ipv6).map((list) => ({ ip, list })));
}

export class BlocklistWatch {
  private readonly log: Logger;
  /** The last state of each pair, by IP then list name: loaded at start, then as this node finds it. */
  private readonly known = new Map<string, Map<string, BlocklistState>>();
  private schedule: Scheduled<WatchedPair>[] = [];
  /** What the schedule was made from, to make it again when a reload changes it. */
  private plannedFor = '';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** The lifting of reactions of pairs a reload stopped watching. */
  private lifting: Promise<unknown> = Promise.resolve();
  private started = false;

  constructor(private readonly deps: BlocklistWatchDeps) {
    this.log = deps.logger.child({ component: 'blocklist' });
  }

  /** Loads the stored states of this node's IPs (the gauge shows them at once) and starts the schedule. */
  async start(): Promise<void> {
    if (this.started) return;
    await this.load();
    this.started = true;
    this.arm(0);
  }

  /** Stops the schedule and waits for a lookup in flight. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.lifting;
  }

  /**
   * Reads the stored states of the watched pairs into this process (start() does it), and puts
   * each stored listing's reaction in force again for as long as its last lookup set it: pool
   * state may have lost it (a Redis that restarted empty), and the listing stands until a lookup
   * says otherwise. The first schedule then looks such a pair up before that time ends.
   */
  async load(): Promise<void> {
    const settings = this.deps.settings();
    const pairs = watchedPairs(settings, this.deps.ips());
    const stored = await this.deps.store.listBlocklistStates([...new Set(pairs.map((p) => p.ip))]);
    for (const state of stored) {
      const pair = pairs.find((p) => p.ip === state.ip && p.list.name === state.list);
      if (!pair) continue;
      this.remember(state);
      if (state.listed && state.lastCheckedAt !== null) {
        const until = state.lastCheckedAt + Math.round(settings.interval * REACTION_INTERVALS);
        if (until > this.deps.clock.now()) await this.react(pair, reactionTo(pair.list, state, until));
      }
      if (state.listed || (state.lastCheckedAt !== null && state.lastError === null)) this.gauge(state);
    }
  }

  /** Looks up every pair due at the clock's now, one after another; returns how many it looked up. */
  async checkDue(): Promise<number> {
    this.replanIfChanged();
    await this.lifting;
    const { interval } = this.deps.settings();
    let count = 0;
    for (const entry of this.schedule) {
      if (entry.dueAt > this.deps.clock.now()) continue;
      await this.check(entry.pair);
      entry.dueAt = nextDue(entry.dueAt, interval, this.deps.clock.now());
      count++;
    }
    return count;
  }

  /** When the next lookup is due; null when nothing is watched. */
  nextDueAt(): number | null {
    this.replanIfChanged();
    return this.schedule.length ? Math.min(...this.schedule.map((entry) => entry.dueAt)) : null;
  }

  private arm(delayMs: number): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.running = this.checkDue()
        .then(() => undefined)
        .catch((err: unknown) => this.log.error({ event: 'blocklist.watch.failed', err }, 'the blocklist watch failed; it goes on with the next lookup'))
        .finally(() => {
          this.running = null;
          const next = this.nextDueAt();
          this.arm(Math.min(Math.max(next === null ? MAX_SLEEP_MS : next - this.deps.clock.now(), 0), MAX_SLEEP_MS));
        });
    }, delayMs);
    this.timer.unref();
  }

  /** Makes the schedule again when the pairs or the interval changed; lifts what pairs no longer watched left behind. */
  private replanIfChanged(): void {
    const settings = this.deps.settings();
    const pairs = watchedPairs(settings, this.deps.ips());
    const plan = JSON.stringify([settings.interval, pairs]);
    if (plan === this.plannedFor) return;
    this.plannedFor = plan;
    const now = this.deps.clock.now();
    const gone = this.schedule.filter(({ pair }) => !pairs.some((p) => p.ip === pair.ip && p.list.name === pair.list.name));
    for (const { pair } of gone) this.deps.metrics.ipBlocklisted.remove({ egress_ip: pair.ip, list: pair.list.name });
    this.lifting = Promise.all([this.lifting, ...gone.map(({ pair }) => this.react(pair, null))]);
    this.schedule = replan(pairs, this.schedule, samePair, settings.interval, now, (pair) => this.listedDueBy(pair, settings.interval));
    // Each watched list's results at 0, so the first refusal or failure after a start shows in increase().
    for (const name of new Set(pairs.map((p) => p.list.name))) for (const result of LOOKUP_RESULTS) this.deps.metrics.blocklistLookups.inc({ list: name, result }, 0);
    this.log.info({ event: 'blocklist.watch.planned', pairs: pairs.length, intervalMs: settings.interval }, `${pairs.length} blocklist lookups spread over each ${settings.interval / 60_000} min`);
    if (pairs.length === 0) this.warnIdle(settings);
  }

  /**
   * Lists enabled and nothing to look up: no `ips`, or only addresses no list judges (a cloud
   * server behind NAT knows its private address alone). Said once per plan, since the watch then
   * shows no listing and its alerts cannot fire; a list of public IPs would be watched.
   */
  private warnIdle(settings: BlocklistsConfig): void {
    if (!settings.enabled || settings.lists.length === 0) return;
    const ips = this.deps.ips();
    const why = ips.length === 0 ? 'no egress IP is configured (ips)' : `no egress IP is a public address (${ips.join(', ')})`;
    this.log.warn({ event: 'blocklist.watch.idle', ips, lists: settings.lists.map((list) => list.name) }, `the blocklist watch looks up nothing: ${why}; see "Blocklist watch" in the README`);
  }

  /** One lookup of one pair: the state it leaves, stored, shown, logged and acted on. */
  private async check(pair: WatchedPair): Promise<void> {
    const { ip, list } = pair;
    const { timeout, interval } = this.deps.settings();
    const found = await lookUpListing(this.deps.resolver, queryName(ip, list.zone)!, timeout);
    const now = this.deps.clock.now();
    const before = this.known.get(ip)?.get(list.name) ?? unchecked(ip, list.name);
    const after = nextState(before, found, now);
    this.deps.metrics.blocklistLookups.inc({ list: list.name, result: found.kind });
    this.remember(after);
    this.report(pair, before, after, found);
    await this.deps.store.saveBlocklistState(after).catch((err: unknown) => this.log.error({ event: 'blocklist.state.failed', ip, list: list.name, err }, 'storing the blocklist state failed'));
    await this.react(pair, reactionTo(list, after, now + Math.round(interval * REACTION_INTERVALS)));
    // Last: once the gauge shows a listing, its reaction is in force.
    if (found.kind === 'listed' || found.kind === 'clear') this.gauge(after);
  }

  private async react(pair: WatchedPair, restriction: BlocklistRestriction | null): Promise<void> {
    const { ip, list } = pair;
    await this.deps.pool.setBlocklistRestriction(ip, list.name, restriction).catch((err: unknown) => {
      this.log.error({ event: 'blocklist.reaction.failed', ip, list: list.name, err }, `applying the reaction to the listing of ${ip} on ${list.name} failed`);
    });
  }

  private report(pair: WatchedPair, before: BlocklistState, after: BlocklistState, found: BlocklistLookup): void {
    const { ip, list } = pair;
    const fields = { ip, list: list.name };
    if (after.listed && !before.listed) {
      this.log.warn({ ...fields, event: 'blocklist.ip.listed', codes: after.codes, reason: after.reason, reaction: list.reaction.action }, `${ip} is listed on ${list.name} (${after.codes.join(', ')})${after.reason ? `: ${after.reason}` : ''}`);
    } else if (!after.listed && before.listed) {
      const forMs = before.firstListedAt === null ? null : after.lastCheckedAt! - before.firstListedAt;
      this.log.info({ ...fields, event: 'blocklist.ip.delisted', listedForMs: forMs }, `${ip} is no longer listed on ${list.name}`);
    }
    if (found.kind !== 'refused' && found.kind !== 'error') return;
    // Warned when it starts or changes; while the same error persists, debug only.
    const level = before.lastError === after.lastError ? 'debug' : 'warn';
    if (found.kind === 'refused') {
      this.log[level]({ ...fields, event: 'blocklist.lookup.refused', codes: found.codes }, `${list.name} refused the lookup of ${ip} (${found.why}): its listings cannot be seen; see blocklists in the README`);
    } else {
      this.log[level]({ ...fields, event: 'blocklist.lookup.failed', error: found.error }, `looking up ${ip} on ${list.name} failed (${found.error}); the state known before stands`);
    }
  }

  /** A pair known listed is due again one interval after its last lookup, inside its reaction's time. */
  private listedDueBy(pair: WatchedPair, interval: number): number | null {
    const state = this.known.get(pair.ip)?.get(pair.list.name);
    return state?.listed && state.lastCheckedAt !== null ? state.lastCheckedAt + interval : null;
  }

  private gauge(state: BlocklistState): void {
    this.deps.metrics.ipBlocklisted.set({ egress_ip: state.ip, list: state.list }, state.listed ? 1 : 0);
  }

  private remember(state: BlocklistState): void {
    let lists = this.known.get(state.ip);
    if (!lists) this.known.set(state.ip, (lists = new Map()));
    lists.set(state.list, state);
  }
}

/**
 * Each watched pair's state for `ips` (GET /v1/ips), from the store, so another node's finding
 * shows as well; a pair never looked up yet as not listed and never checked.
 */
export async function blocklistStatesOf(store: BlocklistStates, settings: BlocklistsConfig, ips: readonly string[]): Promise<BlocklistState[]> {
  const pairs = watchedPairs(settings, ips);
  if (pairs.length === 0) return [];
  const stored = await store.listBlocklistStates([...new Set(pairs.map((p) => p.ip))]);
  return pairs.map(({ ip, list }) => stored.find((s) => s.ip === ip && s.list === list.name) ?? unchecked(ip, list.name));
}

/** The state a lookup leaves: an answer replaces the listing; a refusal or an error keeps it and says why. */
export function nextState(before: BlocklistState, found: BlocklistLookup, now: number): BlocklistState {
  switch (found.kind) {
    case 'listed':
      return { ...before, listed: true, codes: found.codes, reason: found.reason ?? null, firstListedAt: before.listed ? before.firstListedAt : now, lastCheckedAt: now, lastError: null };
    case 'clear':
      return { ...before, listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: now, lastError: null };
    case 'refused':
      return { ...before, lastCheckedAt: now, lastError: `refused by the list (${found.codes.join(', ')}: ${found.why})` };
    case 'error':
      return { ...before, lastCheckedAt: now, lastError: found.error };
  }
}

function samePair(a: WatchedPair, b: WatchedPair): boolean {
  return a.ip === b.ip && a.list.name === b.list.name;
}

function unchecked(ip: string, list: string): BlocklistState {
  return { ip, list, listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: null, lastError: null };
}

/** What the state of a pair makes the pool do until `until`: the list's reaction while listed, else nothing. */
function reactionTo(list: BlocklistConfig, state: BlocklistState, until: number): BlocklistRestriction | null {
  const { reaction } = list;
  if (!state.listed || reaction.action === 'none') return null;
  // The config's `all` is written as pool state writes every provider.
  const providers = reaction.providers.map((provider) => (provider === 'all' ? ALL_PROVIDERS_LABEL : provider));
  const reason = `listed on ${list.name} (${state.codes.join(', ')})${state.reason ? `: ${state.reason}` : ''}`;
  return { list: list.name, ...reaction, providers, reason, until };
}
