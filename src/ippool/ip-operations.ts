import type { Clock } from '../clock.ts';
import type { ProviderName } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { canonicalIp } from '../mail/ip-address.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { ALL_PROVIDERS, providerScope, type Scope } from './restriction-scope.ts';
import { OPERATOR_RULE } from './restrictions.ts';
import { utcDayStart } from './warmup.ts';

/**
 * What an operator changes on an egress IP at run time (POST /v1/ips/{address}/suspend and
 * /resume, PUT and DELETE /v1/ips/{address}/weight, POST and DELETE /v1/ips/{address}/warmup):
 * written to pool state, so every node sharing the backend applies it after its next refresh
 * and it survives a restart.
 *
 * An operator's suspension is kept under a key of its own (pool-keys.ts), beside whatever the
 * reaction rules restrict: suspending does not replace a reaction's throttle, and resuming ends
 * only what an operator set; a reaction's restriction runs to its own end. An operator's
 * suspension has no ramp back afterwards: it says nothing about the IP's standing with anyone.
 */

/** Why an operation was not done; the caller words it for its client. */
export type OperationRefusal =
  | { refused: 'unknown-ip' }
  | { refused: 'unknown-provider'; known: readonly ProviderName[] }
  | { refused: 'unknown-plan'; known: readonly string[] }
  /** A warm-up restart without a plan for an IP configured warm: there is no plan to restart. */
  | { refused: 'no-plan'; known: readonly string[] };

/** The member the operation changed (its configured spelling of the address). */
export type OperationResult = { refused: null; address: string } | OperationRefusal;

export interface IpOperationsDeps {
  members: readonly PoolMember[];
  state: PoolStateCache;
  policy: Pick<PoolPolicy, 'providers' | 'warmupPlans'>;
  clock: Clock;
}

export class IpOperations {
  constructor(private readonly deps: IpOperationsDeps) {}

  /** Suspends `address` for `provider` (null: every provider) until `until` (ms). */
  async suspend(address: string, request: { provider: ProviderName | null; until: number; reason: string; by: string }): Promise<OperationResult> {
    const found = this.target(address, request.provider);
    if (found.refused) return found;
    const suspension = { action: 'suspend' as const, rule: OPERATOR_RULE, by: request.by, reason: request.reason, until: request.until };
    await this.deps.state.suspendByOperator(found.address, found.scope, suspension);
    return { refused: null, address: found.address };
  }

  /** Ends the operator's suspension of `address` for `provider`, or with null every one of its operator suspensions. */
  async resume(address: string, provider: ProviderName | null): Promise<OperationResult> {
    const found = this.target(address, provider);
    if (found.refused) return found;
    // Every scope the operator may have used (this node's copy may lag another node's change).
    const scopes: Scope[] = provider === null ? [ALL_PROVIDERS, ...this.deps.policy.providers().map(providerScope)] : [found.scope];
    await this.deps.state.resumeByOperator(found.address, scopes);
    return { refused: null, address: found.address };
  }

  /** Sets the weight `address` is selected with in place of its configured one; null: back to the configured one. */
  async setWeight(address: string, change: { weight: number; reason: string; by: string } | null): Promise<OperationResult> {
    const found = this.target(address, null);
    if (found.refused) return found;
    await this.deps.state.overrideWeight(found.address, change && { ...change, setAt: this.deps.clock.now() });
    return { refused: null, address: found.address };
  }

  /**
   * Starts `address`'s warm-up plan again from today (00:00 UTC): `plan`, or with null its
   * configured one, in place of the configured plan until removed. Today's counts stay counted.
   */
  async restartWarmup(address: string, request: { plan: string | null; reason: string; by: string }): Promise<OperationResult> {
    const found = this.target(address, null);
    if (found.refused) return found;
    const known = this.deps.policy.warmupPlans();
    const member = this.deps.members.find((m) => m.address === found.address)!;
    const plan = request.plan ?? member.warmup?.plan ?? null;
    if (plan === null) return { refused: 'no-plan', known };
    if (!known.includes(plan)) return { refused: 'unknown-plan', known };
    const now = this.deps.clock.now();
    await this.deps.state.overrideWarmup(found.address, { plan, start: utcDayStart(now), by: request.by, reason: request.reason, setAt: now });
    return { refused: null, address: found.address };
  }

  /** Removes the operator's warm-up plan of `address`: its configured plan (or none) applies again. */
  async removeWarmup(address: string): Promise<OperationResult> {
    const found = this.target(address, null);
    if (found.refused) return found;
    await this.deps.state.overrideWarmup(found.address, null);
    return { refused: null, address: found.address };
  }

  private target(address: string, provider: ProviderName | null): OperationRefusal | { refused: null; address: string; scope: Scope } {
    const wanted = canonicalIp(address);
    const member = this.deps.members.find((m) => canonicalIp(m.address) === wanted);
    if (!member) return { refused: 'unknown-ip' };
    if (provider === null) return { refused: null, address: member.address, scope: ALL_PROVIDERS };
    const known = this.deps.policy.providers();
    if (!known.includes(provider)) return { refused: 'unknown-provider', known };
    return { refused: null, address: member.address, scope: providerScope(provider) };
  }
}
