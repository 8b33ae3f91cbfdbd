import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { WebhookEvent } from './webhook-outbox.ts';

/*
 * The suppression list: addresses mail is no longer sent to, per tenant. Part of every Store, so
 * every node sharing PostgreSQL refuses the same recipients. An entry is keyed by a keyed hash of
 * the lower-cased address (HMAC-SHA256 with a random salt made once per database by its
 * migration), so an erasure can forget the address and keep the opt-out: the hash still matches
 * the address when it comes back.
 */

/** Why an address is suppressed. */
export type SuppressionReason = 'hard-bounce' | 'complaint' | 'unsubscribe' | 'manual';
export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ['hard-bounce', 'complaint', 'unsubscribe', 'manual'];

/**
 * What caused an entry, kept as JSON with it: a delivery attempt's result, a report that came back
 * (a DSN, an ARF complaint, an unsubscribe), or a request to the API (one entry, or an import).
 */
export type SuppressionSource =
  | { kind: 'attempt'; messageId: string; recipientId: number }
  | { kind: 'feedback'; messageId?: string | null; recipientId?: number | null; [detail: string]: unknown }
  | { kind: 'api'; actor: string | null; import?: boolean };

export interface NewSuppression {
  /** The tenant whose mail it stops; null for mail sent for no tenant. */
  tenant: string | null;
  address: string;
  reason: SuppressionReason;
  source: SuppressionSource | null;
  createdAt: number;
  /** When it stops applying; null never. */
  expiresAt: number | null;
}

export interface SuppressionRecord {
  /** '' for mail sent for no tenant. */
  tenant: string;
  /** The address as last given; null once erased (the hash keeps the opt-out). */
  address: string | null;
  /** The keyed hash of the lower-cased address, hex. */
  addressHash: string;
  reason: SuppressionReason;
  source: SuppressionSource | null;
  createdAt: number;
  expiresAt: number | null;
}

/** Filters of listSuppressions; null matches anything. */
export interface SuppressionFilters {
  /** One tenant's entries ('' for those of no tenant); null: every tenant's. */
  tenant: string | null;
  reason: SuppressionReason | null;
  /** The entries of this address (case ignored). */
  address: string | null;
  /** Created at or after. */
  since: number | null;
  /** Created before. */
  until: number | null;
  /** Only entries in force at this time (not expired); null: every stored entry, expired ones not purged yet included. */
  now: number | null;
}

/** A page's sort key: tenant, created time, address hash (all descending). */
export interface SuppressionCursor {
  tenant: string;
  createdAt: number;
  addressHash: string;
}

export interface AddSuppressionOptions {
  /**
   * An entry that never expires is left as it is (its reason and source too), and the webhook
   * events are written only when an entry was written: a repeated unsubscribe, even two at once
   * on two nodes, changes nothing and reports nothing a second time.
   */
  keepPermanent?: boolean;
}

export interface Suppressions {
  /**
   * Adds entries, or replaces the entry of the same tenant and address (case ignored) when the
   * one given is at least as new (its createdAt is at or after the stored one's; of two in one
   * call with the same createdAt, the later in the list) and does not weaken it: the newer
   * entry's reason, source, expiry, createdAt and spelling of the address win, except that an
   * entry with an expiry never replaces one in force that never expires or expires later (a
   * complaint cannot be turned into something that lapses; removing it is deleteSuppression's).
   * An older entry given changes nothing. Webhook events given are written with the first chunk,
   * in its transaction. Written in chunks of a few thousand rows, each chunk one transaction (a
   * multi-row statement), so 100,000 entries take seconds and other writes go in between; when
   * a chunk fails, the chunks before it stay written (adding again is safe). Returns how many
   * entries were written (added or replaced). DataRefusedError, with nothing written, for an
   * entry no backend could store (an empty or over-long address, a tenant that is not a tenant
   * name, a source too large).
   */
  addSuppressions(entries: readonly NewSuppression[], webhooks?: readonly WebhookEvent[], options?: AddSuppressionOptions): Promise<number>;

  /**
   * Which of `addresses` (as given: every spelling of a suppressed address) the tenant's list
   * holds in force at `now`. One statement for all of them (PostgreSQL: one round trip), each
   * address a primary-key lookup.
   */
  suppressedAmong(tenant: string | null, addresses: readonly string[], now: number): Promise<Set<string>>;

  /** The tenant's entry of `address` in force at `now`, or null. */
  getSuppression(tenant: string | null, address: string, now: number): Promise<SuppressionRecord | null>;

  /**
   * Entries by tenant (descending), newest first within one, after `after` when given, at most
   * `limit`. One tenant's listing walks its entries by time in the index; across tenants, the
   * time bounds are tested on each entry.
   */
  listSuppressions(filters: SuppressionFilters, after: SuppressionCursor | null, limit: number): Promise<SuppressionRecord[]>;

  /** Deletes the tenant's entry of `address`, expired or not; whether there was one. */
  deleteSuppression(tenant: string | null, address: string): Promise<boolean>;

  /** Deletes entries expired at `now`, in chunks (other writes go in between); returns how many. */
  purgeExpiredSuppressions(now: number): Promise<number>;

  /**
   * The final results (delivered or bounced) of the tenant's messages to `address` (ASCII case
   * ignored), newest first, at most `limit`, from the recipient rows the queue keeps (for
   * storage.retention): what the automatic rules count consecutive permanent failures in.
   * Recipients cancelled or suppressed at acceptance were never tried and are left out.
   */
  finalResultsOf(tenant: string | null, address: string, limit: number): Promise<DeliveryOutcome[]>;
}
