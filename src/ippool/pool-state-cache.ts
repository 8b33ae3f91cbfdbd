import type { Logger } from '../observability/logger.ts';
import type { PoolState, ProviderName } from './contracts.ts';
import { ALL_PROVIDERS, parseStateKey, stateKeys, type Scope, type StateKey } from './pool-keys.ts';
import { decodeRecovery, decodeRestriction, decodeTime, encodeRecovery, encodeRestriction, type Recovery, type Restriction } from './restrictions.ts';

/** How often last-sent times are written out (they only need day precision). */
const LAST_SENT_WRITE_MS = 5 * 60_000;

interface Expiring<T> {
  value: T;
  /** null = never. */
  expiresAt: number | null;
}

/** What pool state says about one egress IP. */
interface IpState {
  restrictions: Map<Scope, Expiring<Restriction>>;
  recoveries: Map<Scope, Expiring<Recovery>>;
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

  constructor(
    private readonly backend: PoolState,
    private readonly log: Logger,
  ) {}

  /** The restriction of `ip` for `scope` in force at `now`, or null. */
  restriction(ip: string, scope: Scope, now: number): Restriction | null {
    return live(this.byIp.get(ip)?.restrictions.get(scope), now);
  }

  /** The restriction `ip` is coming back from for `provider` (the latest that has ended), or null. */
  recovery(ip: string, provider: ProviderName, now: number): Recovery | null {
    const recoveries = this.byIp.get(ip)?.recoveries;
    let latest: Recovery | null = null;
    for (const scope of [ALL_PROVIDERS, provider]) {
      const recovery = live(recoveries?.get(scope), now);
      if (recovery && recovery.endedAt <= now && (!latest || recovery.endedAt > latest.endedAt)) latest = recovery;
    }
    return latest;
  }

  lastSent(ip: string): number | null {
    return this.byIp.get(ip)?.lastSent ?? null;
  }

  warmupRestart(ip: string): number | null {
    return this.byIp.get(ip)?.warmupRestart ?? null;
  }

  /** Every restriction held, expired ones included until the next refresh drops them. */
  *restrictions(): Iterable<{ ip: string; scope: Scope; restriction: Restriction }> {
    for (const [ip, state] of this.byIp) {
      for (const [scope, { value }] of state.restrictions) yield { ip, scope, restriction: value };
    }
  }

  /** Records a restriction and the recovery ramp that follows it, which ends at `recoveryEndsAt`. */
  async restrict(ip: string, scope: Scope, restriction: Restriction, recovery: Recovery, recoveryEndsAt: number): Promise<void> {
    const state = this.ip(ip);
    state.restrictions.set(scope, { value: restriction, expiresAt: restriction.until });
    state.recoveries.set(scope, { value: recovery, expiresAt: recoveryEndsAt });
    await this.write(stateKeys.restriction(ip, scope), encodeRestriction(restriction), restriction.until);
    await this.write(stateKeys.recovery(ip, scope), encodeRecovery(recovery), recoveryEndsAt);
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
   * write failed or landed after the listing.
   */
  async refresh(now: number): Promise<void> {
    const next = new Map<string, IpState>();
    for (const entry of await this.backend.list('', now)) this.decode(next, entry);
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
      if (value) state.restrictions.set(key.scope, { value, expiresAt });
      valid = value !== null;
    } else if (key.kind === 'recovery') {
      const value = decodeRecovery(entry.value);
      if (value) state.recoveries.set(key.scope, { value, expiresAt });
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
    state = { restrictions: new Map(), recoveries: new Map(), lastSent: null, warmupRestart: null };
    map.set(ip, state);
  }
  return state;
}

/** Entries of `mine` still in force that `theirs` lacks are copied over. */
function keepLive<T>(mine: Map<Scope, Expiring<T>>, theirs: Map<Scope, Expiring<T>>, now: number): void {
  for (const [scope, entry] of mine) if (live(entry, now) !== null && !theirs.has(scope)) theirs.set(scope, entry);
}

function live<T>(entry: Expiring<T> | undefined, now: number): T | null {
  if (!entry || (entry.expiresAt !== null && entry.expiresAt <= now)) return null;
  return entry.value;
}
