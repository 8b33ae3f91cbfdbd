import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProviderName, Reaction, UsageCounters } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { IpOperations } from './ip-operations.ts';
import { DEFAULT_POOL } from './pool-assignment.ts';
import type { PoolReporting } from './pool-reporting.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { WarmupReservation } from './warmup-reservation.ts';

/** What the configuration decides of the egress pool: replaced whole when it is reloaded (EgressPool.reconfigure). */
export interface PoolSetup {
  members: readonly PoolMember[];
  policy: PoolPolicy;
  reactions: { evaluate(input: { ip: string; provider: ProviderName; site: string; outcome: DeliveryOutcome; now: number }): Reaction[] };
}

/** A setup with what is made from it: its members by pool and by address, and the parts that read its policy or members. */
export interface ActiveSetup extends PoolSetup {
  byPool: ReadonlyMap<string, readonly PoolMember[]>;
  byAddress: ReadonlyMap<string, PoolMember>;
  warmup: WarmupReservation;
  operations: IpOperations;
}

/** What a setup's parts work on: the pool's state and counters, which outlive every setup. */
export interface SetupDeps {
  counters: UsageCounters;
  state: PoolStateCache;
  reporting: PoolReporting;
  log: Logger;
  clock: Clock;
}

export function activateSetup({ members, policy, reactions }: PoolSetup, deps: SetupDeps): ActiveSetup {
  const byPool = new Map<string, PoolMember[]>();
  const byAddress = new Map<string, PoolMember>();
  for (const member of members) {
    byAddress.set(member.address, member);
    const list = byPool.get(member.pool) ?? [];
    list.push(member);
    byPool.set(member.pool, list);
  }
  const { counters, state, reporting, log, clock } = deps;
  return {
    members,
    policy,
    reactions,
    byPool,
    byAddress,
    warmup: new WarmupReservation({ counters, policy, state, reporting, log }),
    operations: new IpOperations({ members, state, policy, clock }),
  };
}

/**
 * The pool whose members send mail assigned to `pool`: that pool, or `default` when it has no
 * member. Mail keeps the pool it was given at acceptance, and a reload may remove that pool's
 * last IP: waiting for one would hold the mail until delivery.maxAge bounces it.
 */
export function sendingPool(setup: Pick<ActiveSetup, 'byPool'>, pool: string): string {
  return setup.byPool.has(pool) ? pool : DEFAULT_POOL;
}
