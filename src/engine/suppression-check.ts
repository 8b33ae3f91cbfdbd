import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { SuppressionAction } from '../config/suppression-schema.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Store } from '../storage/store.ts';
import type { SuppressionReason } from '../storage/suppressions.ts';

/** The action on a tenant's suppressed recipients: its own (tenants.<name>.suppression), else suppression.action. */
export function suppressionActionFor(config: Pick<Config, 'suppression' | 'tenants'>, tenant: string | null): SuppressionAction {
  const own = tenant === null ? undefined : config.tenants[tenant]?.suppression?.action;
  return own ?? config.suppression.action;
}

/** The result a recipient dropped at acceptance is stored with: final, never attempted, no DSN. */
export function suppressedOutcome(reason: SuppressionReason): DeliveryOutcome {
  return {
    disposition: 'permanent',
    code: null,
    enhanced: '5.7.1',
    response: `recipient on the suppression list (${reason}); not attempted`,
    stage: 'queue',
    bounceClass: 'suppressed',
    remoteHost: null,
    egressIp: null,
  };
}

/** A recipient found on the suppression list, as given, with the entry's reason. */
export interface SuppressedRecipient {
  address: string;
  reason: SuppressionReason;
}

export interface SuppressionCheckDeps {
  store: Pick<Store, 'suppressedAmong' | 'getSuppression'>;
  clock: Clock;
  /** The action for the mail of a tenant (null: none), from the configuration in effect. */
  action: (tenant: string | null) => SuppressionAction;
}

interface Waiter {
  address: string;
  resolve: (suppressed: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * The suppression list as acceptance asks it, on every door: a message's recipients in one
 * lookup (find), and single recipients at SMTP RCPT (isSuppressed), where the lookups that
 * sessions make in the same turn of the event loop share one statement per tenant. Each caller
 * waits for its own lookup only: no session waits behind another's.
 */
export class SuppressionCheck {
  /** RCPT lookups waiting for this turn's statement, by tenant ('' for none). */
  private pending = new Map<string, { tenant: string | null; waiters: Waiter[] }>();
  private flushing = false;

  constructor(private readonly deps: SuppressionCheckDeps) {}

  action(tenant: string | null): SuppressionAction {
    return this.deps.action(tenant);
  }

  /**
   * The recipients on the tenant's list, with their reasons: one statement for all of them, then
   * one read per recipient found (rare) for its reason. An entry gone between the two (removed,
   * expired) no longer suppresses.
   */
  async find(tenant: string | null, recipients: readonly string[]): Promise<SuppressedRecipient[]> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const found = await store.suppressedAmong(tenant, recipients, now);
    if (found.size === 0) return [];
    const entries = await Promise.all([...found].map(async (address) => ({ address, entry: await store.getSuppression(tenant, address, now) })));
    return entries.flatMap(({ address, entry }) => (entry ? [{ address, reason: entry.reason }] : []));
  }

  /** Whether one recipient is on the tenant's list (SMTP RCPT); rejects when the store cannot answer. */
  isSuppressed(tenant: string | null, address: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const key = tenant ?? '';
      let group = this.pending.get(key);
      if (!group) this.pending.set(key, (group = { tenant, waiters: [] }));
      group.waiters.push({ address, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** One statement per tenant for the lookups of this turn; each settles its own waiters. */
  private flush(): void {
    const groups = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = false;
    const now = this.deps.clock.now();
    for (const { tenant, waiters } of groups) {
      this.deps.store.suppressedAmong(tenant, waiters.map((w) => w.address), now).then(
        (found) => waiters.forEach((w) => w.resolve(found.has(w.address))),
        (err: unknown) => waiters.forEach((w) => w.reject(err)),
      );
    }
  }
}
