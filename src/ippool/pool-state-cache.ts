import type { Logger } from '../observability/logger.ts';
import { asRestriction, blocklistScopes } from './blocklist-effects.ts';
import type { PoolState } from './contracts.ts';
import { parseStateKey, stateKeys, type StateKey } from './pool-keys.ts';
import { scopeLabel, type Scope } from './restriction-scope.ts';
import {
  decodeBlocklistRestriction,
  decodeRecovery,
  decodeRestriction,
  decodeTime,
  decodeWarmupOverride,
  decodeWeightOverride,
  encodeBlocklistRestriction,
  encodeRecovery,
  encodeRestriction,
  encodeWarmupOverride,
  encodeWeightOverride,
  type BlocklistRestriction,
  type Recovery,
  type Restriction,
  type WarmupOverride,
  type WeightOverride,
} from './restrictions.ts';

/** How often last-sent times are written out (they only need day precision). */
const LAST_SENT_WRITE_MS = 5 * 60_000;

interface Timed<T> {
  value: T;
  /** null = never. */
  expiresAt: number | null;
}

interface Expiring<T> extends Timed<T> {
  scope: Scope;
}

/** What pool state says about one egress IP; restrictions and recoveries by scope label. */
interface IpState {
  restrictions: Map<string, Expiring<Restriction>>;
  recoveries: Map<string, Expiring<Recovery>>;
  /** Suspensions an operator set, apart from the reactions' restrictions. */
  operatorSuspensions: Map<string, Expiring<Restriction>>;
  /** What blocklist listings do to the IP, by list name. */
  blocklists: Map<string, Timed<BlocklistRestriction>>;
  weightOverride: WeightOverride | null;
  warmupOverride: WarmupOverride | null;
  lastSent: number | null;
  warmupRestart: number | null;
}

/** One IP's pool state as reports see it (PoolStateCache.view). */
export interface IpStateView {
  restrictions: Array<{ value: Restriction; scope: Scope; expiresAt: number | null }>;
  recoveries: Array<{ value: Recovery; scope: Scope; expiresAt: number | null }>;
  operatorSuspensions: Array<{ value: Restriction; scope: Scope; expiresAt: number | null }>;
  weightOverride: WeightOverride | null;
  warmupOverride: WarmupOverride | null;
  lastSent: number | null;
  warmupRestart: number | null;
}

/**
 * This process's copy of pool state (restrictions, recoveries, last-sent times, plan restarts),
 * decoded once per refresh into typed maps so that eligibility checks read plain objects.
 * Writes apply here at once and go to the backend; a backend failure is logged, not thrown: it
 * must never fail a delivery that already happened, and this process still applies its copy.
 */
export class PoolStateCache {
  private byIp = new Map<string, IpState>();
  private readonly lastSentWritten = new Map<string, number>();
  /** Keys already reported as unreadable, so a bad entry is logged once, not every refresh. */
  private readonly reported = new Set<string>();
  /** Counts operator changes and blocklist reactions, so a refresh whose listing may predate one lists again. */
  private operatorChanges = 0;

  constructor(
    private readonly backend: PoolState,
    private readonly log: Logger,
  ) {}

  /** The restriction of `ip` for `scope` in force at `now`, or null. */
  restriction(ip: string, scope: Scope, now: number): Restriction | null {
    return live(this.byIp.get(ip)?.restrictions.get(scopeLabel(scope)), now);
  }

  /** The restriction `ip` is coming back from in any of `scopes` (the latest that has ended), with its scope; or null. */
  recovery(ip: string, scopes: readonly Scope[], now: number): { recovery: Recovery; scope: Scope } | null {
    const recoveries = this.byIp.get(ip)?.recoveries;
    let latest: { recovery: Recovery; scope: Scope } | null = null;
    for (const scope of scopes) {
      const recovery = live(recoveries?.get(scopeLabel(scope)), now);
      if (recovery && recovery.endedAt <= now && (!latest || recovery.endedAt > latest.recovery.endedAt)) latest = { recovery, scope };
    }
    return latest;
  }

  /** An operator's suspension of `ip` in force at `now` in any of `scopes`, or null. */
  operatorSuspension(ip: string, scopes: readonly Scope[], now: number): Restriction | null {
    const held = this.byIp.get(ip)?.operatorSuspensions;
    for (const scope of scopes) {
      const suspension = live(held?.get(scopeLabel(scope)), now);
      if (suspension) return suspension;
    }
    return null;
  }

  /** What blocklist listings of `ip` do to it at `now`, by list. */
  blocklistRestrictions(ip: string, now: number): BlocklistRestriction[] {
    const entries = this.byIp.get(ip)?.blocklists.values() ?? [];
    return [...entries].flatMap((entry) => live(entry, now) ?? []);
  }

  /** The weight an operator set for `ip`, or null for its configured one. */
  weightOverride(ip: string): WeightOverride | null {
    return this.byIp.get(ip)?.weightOverride ?? null;
  }

  /** The warm-up plan an operator (re)started for `ip`, or null for its configured one. */
  warmupOverride(ip: string): WarmupOverride | null {
    return this.byIp.get(ip)?.warmupOverride ?? null;
  }

  lastSent(ip: string): number | null {
    return this.byIp.get(ip)?.lastSent ?? null;
  }

  warmupRestart(ip: string): number | null {
    return this.byIp.get(ip)?.warmupRestart ?? null;
  }

  /** How many sites `ip` is restricted toward at `now` (restrictions of site scope in force). */
  siteRestrictions(ip: string, now: number): number {
    let count = 0;
    for (const entry of this.byIp.get(ip)?.restrictions.values() ?? []) {
      if (entry.scope.kind === 'site' && live(entry, now)) count++;
    }
    return count;
  }

  /** Every restriction held (blocklist suspensions too, one per scope), ended ones included until the next refresh drops them. */
  *restrictions(): Iterable<{ ip: string; scope: Scope; restriction: Restriction }> {
    for (const [ip, state] of this.byIp) {
      for (const { scope, value } of state.restrictions.values()) yield { ip, scope, restriction: value };
      for (const { value } of state.blocklists.values()) {
        if (value.action !== 'suspend') continue;
        for (const scope of blocklistScopes(value)) yield { ip, scope, restriction: asRestriction(value) };
      }
    }
  }

  /**
   * What pool state holds for `ip` at `now`, for reports (the control API): the restrictions in
   * force and the recovery ramps not yet over, each with its scope and when its entry expires.
   */
  view(ip: string, now: number): IpStateView {
    const state = this.byIp.get(ip);
    const liveEntries = <T>(entries: Map<string, Expiring<T>> | undefined) =>
      [...(entries?.values() ?? [])].filter((entry) => live(entry, now) !== null).map(({ value, scope, expiresAt }) => ({ value, scope, expiresAt }));
    return {
      restrictions: liveEntries(state?.restrictions),
      recoveries: liveEntries(state?.recoveries),
      operatorSuspensions: liveEntries(state?.operatorSuspensions),
      weightOverride: state?.weightOverride ?? null,
      warmupOverride: state?.warmupOverride ?? null,
      lastSent: state?.lastSent ?? null,
      warmupRestart: state?.warmupRestart ?? null,
    };
  }

  /** Records a restriction and the recovery ramp that follows it, which ends at `recoveryEndsAt`. */
  async restrict(ip: string, scope: Scope, restriction: Restriction, recovery: Recovery, recoveryEndsAt: number): Promise<void> {
    const state = this.ip(ip);
    const label = scopeLabel(scope);
    state.restrictions.set(label, { value: restriction, scope, expiresAt: restriction.until });
    state.recoveries.set(label, { value: recovery, scope, expiresAt: recoveryEndsAt });
    await this.write(stateKeys.restriction(ip, scope), encodeRestriction(restriction), restriction.until);
    await this.write(stateKeys.recovery(ip, scope), encodeRecovery(recovery), recoveryEndsAt);
  }

  /**
   * The operator's changes: written to the backend first, and a failure is thrown (the operator
   * is told; nothing changes here), then applied to this copy. Unlike a reaction's restriction,
   * they are never kept past a refresh that does not list them: the backend is the truth, so a
   * resume on one node ends the suspension on every node.
   */
  async suspendByOperator(ip: string, scope: Scope, suspension: Restriction): Promise<void> {
    await this.backend.set(stateKeys.operatorSuspension(ip, scope), encodeRestriction(suspension), suspension.until);
    this.operatorChanges++;
    this.ip(ip).operatorSuspensions.set(scopeLabel(scope), { value: suspension, scope, expiresAt: suspension.until });
  }

  /**
   * Sets (null: removes) what the listing of `ip` on `list` does to it. Like an operator's
   * change, written to the backend first (a failure is thrown) and then taken from the backend
   * alone: the watch renews it with each lookup, and a delisting on this node ends it everywhere.
   */
  async setBlocklistRestriction(ip: string, list: string, restriction: BlocklistRestriction | null): Promise<void> {
    const key = stateKeys.blocklist(ip, list);
    // Every lookup of a clean IP lifts its reaction: only write when there is one to lift.
    if (restriction === null && !this.byIp.get(ip)?.blocklists.has(list)) return;
    await (restriction === null ? this.backend.delete(key) : this.backend.set(key, encodeBlocklistRestriction(restriction), restriction.until));
    this.operatorChanges++;
    if (restriction === null) this.ip(ip).blocklists.delete(list);
    else this.ip(ip).blocklists.set(list, { value: restriction, expiresAt: restriction.until });
  }

  /** Ends the operator's suspensions of `ip` in `scopes` (whether or not they exist). */
  async resumeByOperator(ip: string, scopes: readonly Scope[]): Promise<void> {
    for (const scope of scopes) {
      await this.backend.delete(stateKeys.operatorSuspension(ip, scope));
      this.operatorChanges++;
      this.ip(ip).operatorSuspensions.delete(scopeLabel(scope));
    }
  }

  /** The scopes `ip` has operator suspensions in, as this copy knows them (a resume of all ends these). */
  operatorSuspensionScopes(ip: string): Scope[] {
    return [...(this.byIp.get(ip)?.operatorSuspensions.values() ?? [])].map((entry) => entry.scope);
  }

  /** Sets (or with null removes) the operator's weight for `ip`. */
  async overrideWeight(ip: string, override: WeightOverride | null): Promise<void> {
    await this.writeOverride(stateKeys.weightOverride(ip), override && encodeWeightOverride(override));
    this.ip(ip).weightOverride = override;
  }

  /** Sets (or with null removes) the warm-up plan an operator (re)started for `ip`. */
  async overrideWarmup(ip: string, override: WarmupOverride | null): Promise<void> {
    await this.writeOverride(stateKeys.warmupOverride(ip), override && encodeWarmupOverride(override));
    this.ip(ip).warmupOverride = override;
  }

  /** An operator's override, kept until removed (null removes it); a failure is thrown, before this copy changes. */
  private async writeOverride(key: StateKey, value: string | null): Promise<void> {
    await (value === null ? this.backend.delete(key) : this.backend.set(key, value, null));
    this.operatorChanges++;
  }

  /** Notes that `ip` sent at `now`; written out now and then (the idle restart needs days, not seconds). */
  recordSent(ip: string, now: number): void {
    this.ip(ip).lastSent = now;
    if (now - (this.lastSentWritten.get(ip) ?? 0) < LAST_SENT_WRITE_MS) return;
    this.lastSentWritten.set(ip, now);
    void this.write(stateKeys.lastSent(ip), String(now), null);
  }

  async restartWarmup(ip: string, start: number): Promise<void> {
    this.ip(ip).warmupRestart = start;
    await this.write(stateKeys.warmupRestart(ip), String(start), null);
  }

  /**
   * Re-reads pool state, to see changes made by operators or other processes. What this
   * process knows better survives: last-sent times not yet written out, and restrictions whose
   * write failed or landed after the listing. Entries that have ended are dropped first, even
   * when the backend cannot be read: per-site restrictions come and go, and memory and the
   * gauges built from restrictions() must not keep them.
   */
  async refresh(now: number): Promise<void> {
    for (const state of this.byIp.values()) {
      dropEnded(state.restrictions, now);
      dropEnded(state.recoveries, now);
      dropEnded(state.operatorSuspensions, now);
      dropEnded(state.blocklists, now);
    }
    let next = new Map<string, IpState>();
    // An operator's change made here while the listing ran may be missing from it, and operator
    // state is taken from the listing alone: list again (a few times at most) if one was made.
    for (let attempt = 0; attempt < 3; attempt++) {
      const changes = this.operatorChanges;
      next = new Map<string, IpState>();
      for (const entry of await this.backend.list('', now)) this.decode(next, entry);
      if (changes === this.operatorChanges) break;
    }
    for (const [ip, mine] of this.byIp) {
      const theirs = ipIn(next, ip);
      if (mine.lastSent !== null && mine.lastSent > (theirs.lastSent ?? 0)) theirs.lastSent = mine.lastSent;
      keepLive(mine.restrictions, theirs.restrictions, now);
      keepLive(mine.recoveries, theirs.recoveries, now);
    }
    this.byIp = next;
  }

  private decode(into: Map<string, IpState>, entry: { key: string; value: string; expiresAt: number | null }): void {
    const key = parseStateKey(entry.key);
    if (!key) return;
    const { expiresAt } = entry;
    const state = ipIn(into, key.ip);
    let valid = false;
    if (key.kind === 'restriction') {
      const value = decodeRestriction(entry.value);
      if (value) state.restrictions.set(scopeLabel(key.scope), { value, scope: key.scope, expiresAt });
      valid = value !== null;
    } else if (key.kind === 'operator-suspension') {
      const value = decodeRestriction(entry.value);
      if (value) state.operatorSuspensions.set(scopeLabel(key.scope), { value, scope: key.scope, expiresAt });
      valid = value !== null;
    } else if (key.kind === 'blocklist') {
      const value = decodeBlocklistRestriction(entry.value);
      if (value) state.blocklists.set(key.list, { value, expiresAt });
      valid = value !== null;
    } else if (key.kind === 'weight-override') {
      state.weightOverride = decodeWeightOverride(entry.value);
      valid = state.weightOverride !== null;
    } else if (key.kind === 'warmup-override') {
      state.warmupOverride = decodeWarmupOverride(entry.value);
      valid = state.warmupOverride !== null;
    } else if (key.kind === 'recovery') {
      const value = decodeRecovery(entry.value);
      if (value) state.recoveries.set(scopeLabel(key.scope), { value, scope: key.scope, expiresAt });
      valid = value !== null;
    } else {
      const value = decodeTime(entry.value);
      if (key.kind === 'last-sent') state.lastSent = value;
      else state.warmupRestart = value;
      valid = value !== null;
    }
    if (valid || this.reported.has(entry.key)) return;
    this.reported.add(entry.key);
    this.log.warn({ event: 'ippool.state.invalid', key: entry.key, value: entry.value }, `ignoring pool state entry ${entry.key}: not a valid value`);
  }

  private ip(ip: string): IpState {
    return ipIn(this.byIp, ip);
  }

  private async write(key: StateKey, value: string, expiresAt: number | null): Promise<void> {
    try {
      await this.backend.set(key, value, expiresAt);
    } catch (err) {
      this.log.error({ event: 'ippool.state.write.failed', key, err }, 'writing pool state failed');
    }
  }
}

function ipIn(map: Map<string, IpState>, ip: string): IpState {
  let state = map.get(ip);
  if (!state) {
    state = { restrictions: new Map(), recoveries: new Map(), operatorSuspensions: new Map(), blocklists: new Map(), weightOverride: null, warmupOverride: null, lastSent: null, warmupRestart: null };
    map.set(ip, state);
  }
  return state;
}

/** Entries of `mine` still in force that `theirs` lacks are copied over. */
function keepLive<T>(mine: Map<string, Expiring<T>>, theirs: Map<string, Expiring<T>>, now: number): void {
  for (const [label, entry] of mine) if (live(entry, now) !== null && !theirs.has(label)) theirs.set(label, entry);
}

function dropEnded<T>(entries: Map<string, Timed<T>>, now: number): void {
  for (const [label, entry] of entries) if (live(entry, now) === null) entries.delete(label);
}

function live<T>(entry: Timed<T> | undefined, now: number): T | null {
  if (!entry || (entry.expiresAt !== null && entry.expiresAt <= now)) return null;
  return entry.value;
}
