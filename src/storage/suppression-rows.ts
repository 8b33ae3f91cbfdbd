import { createHmac } from 'node:crypto';
import { addressKey } from '../mail/address.ts';
import { DataRefusedError } from './store.ts';
import {
  SUPPRESSION_REASONS,
  type NewSuppression,
  type SuppressionCursor,
  type SuppressionFilters,
  type SuppressionReason,
  type SuppressionRecord,
  type SuppressionSource,
} from './suppressions.ts';

/*
 * Rows of the suppression list shared by the SQLite and PostgreSQL backends: the address hash,
 * the checks both apply before a write, and the bounds both derive from a listing, so the two
 * store and answer the same.
 */

/** The name of the salt's row in store_secrets (made by migration 11 of each backend). */
export const SUPPRESSION_SALT = 'suppression-address-salt';

/**
 * Rows written per transaction by addSuppressions: on SQLite a chunk holds the event loop while
 * it is written (some 20 ms), on PostgreSQL it is one statement.
 */
export const SUPPRESSION_CHUNK = 2000;
/** Rows deleted per statement (and transaction) by purgeExpiredSuppressions. */
export const SUPPRESSION_PURGE_CHUNK = 5000;

/** The longest address kept: RFC 5321 allows 64 + 1 + 255 octets of a path. */
const MAX_ADDRESS = 320;
/** The longest source kept, as JSON: it names an event, it does not hold one. */
const MAX_SOURCE = 4096;
/** Tenant names are API names (src/config/api-schema.ts); '' is mail of no tenant. */
const TENANT = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/;
/**
 * Above every tenant in byte order (SQLite's BINARY, PostgreSQL's COLLATE "C" column): the
 * bound of a listing across tenants that has not started yet.
 */
const ABOVE_EVERY_TENANT = '\u007f';
const NO_HASH = new Uint8Array(0);

/** Keys addresses with the database's salt: every node sharing the database agrees. */
export class AddressHasher {
  private readonly salt: string;

  // A field, not a parameter property: the webhook dispatcher thread loads the store with type stripping.
  constructor(salt: string) {
    this.salt = salt;
    if (salt.length < 32) throw new Error('the suppression salt of the store is missing or too short');
  }

  /**
   * HMAC-SHA256 of the address's key (mail/address.ts addressKey): lower case, a UTF-8 local
   * part folded too, the domain as its A-label, so either form of an IDN finds one entry. For an
   * ASCII address the key is its lower case, as it always was.
   */
  hash(address: string): Buffer {
    return createHmac('sha256', this.salt).update(addressKey(address)).digest();
  }
}

export interface SuppressionDbRow {
  tenant: string;
  address: string | null;
  address_hash: Uint8Array;
  reason: string;
  source: string | null;
  created_at: number;
  expires_at: number | null;
}

/** One row to write, in the column order of the INSERT statements. */
export type SuppressionInsertValues = [tenant: string, addressHash: Buffer, address: string, reason: string, source: string | null, createdAt: number, expiresAt: number | null];

/** The tenant as stored: '' for none; DataRefusedError for anything that is not a tenant name. */
export function tenantKey(tenant: string | null): string {
  if (tenant === null) return '';
  if (typeof tenant !== 'string' || !TENANT.test(tenant)) throw new DataRefusedError(`suppression: ${JSON.stringify(tenant)} is not a tenant name`);
  return tenant;
}

/** Entries checked and hashed between two turns of the event loop while a large call is prepared. */
const PREPARE_SLICE = 5000;

/**
 * The rows of `entries` as stored, checked, in chunks of SUPPRESSION_CHUNK to write one after
 * the other. Every entry is checked before any is written (DataRefusedError names the first bad
 * one). One row per (tenant, address hash): of several, the newest (by createdAt; on a tie the
 * later one), as the store's upsert would leave them, because a multi-row upsert cannot touch
 * one row twice. The rows come in key order: each chunk then writes one stretch of the primary
 * key's B-tree, half the time of keys in random (hash) order. The hashing yields to the event
 * loop every few thousand entries, so a 100,000-entry import never holds up SMTP sessions for long.
 */
export async function suppressionChunks(entries: readonly NewSuppression[], hasher: AddressHasher): Promise<SuppressionInsertValues[][]> {
  const rows = new Map<string, SuppressionInsertValues>();
  for (let start = 0; start < entries.length; start += PREPARE_SLICE) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    entries.slice(start, start + PREPARE_SLICE).forEach((e, k) => {
      const row = checkedRow(e, start + k, hasher);
      const key = `${row[0]}\n${row[1].toString('hex')}`;
      const before = rows.get(key);
      if (!before || before[5] <= row[5]) rows.set(key, row);
    });
  }
  // The keys sort as the rows do: '\n' is below every character of a tenant name.
  const sorted = [...rows.keys()].sort().map((key) => rows.get(key)!);
  const chunks: SuppressionInsertValues[][] = [];
  for (let i = 0; i < sorted.length; i += SUPPRESSION_CHUNK) chunks.push(sorted.slice(i, i + SUPPRESSION_CHUNK));
  return chunks;
}

function checkedRow(e: NewSuppression, i: number, hasher: AddressHasher): SuppressionInsertValues {
  const at = `suppression ${i}`;
  const tenant = tenantKey(e.tenant);
  if (typeof e.address !== 'string' || e.address.length === 0 || e.address.length > MAX_ADDRESS || /[\u0000-\u001f\u007f]/.test(e.address)) {
    throw new DataRefusedError(`${at}: the address must be 1 to ${MAX_ADDRESS} characters without control characters`);
  }
  if (!SUPPRESSION_REASONS.includes(e.reason)) throw new DataRefusedError(`${at}: ${JSON.stringify(e.reason)} is not a suppression reason`);
  if (!Number.isSafeInteger(e.createdAt) || (e.expiresAt !== null && !Number.isSafeInteger(e.expiresAt))) {
    throw new DataRefusedError(`${at}: createdAt and expiresAt must be integer milliseconds`);
  }
  const source = e.source === null ? null : JSON.stringify(e.source);
  if (source !== null && source.length > MAX_SOURCE) throw new DataRefusedError(`${at}: the source is over ${MAX_SOURCE} characters of JSON`);
  return [tenant, hasher.hash(e.address), e.address, e.reason, source, e.createdAt, e.expiresAt];
}

export function toSuppressionRecord(row: SuppressionDbRow): SuppressionRecord {
  return {
    tenant: row.tenant,
    address: row.address,
    addressHash: Buffer.from(row.address_hash).toString('hex'),
    reason: row.reason as SuppressionReason,
    source: row.source === null ? null : (JSON.parse(row.source) as SuppressionSource),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

/** The given addresses of each hash: one lookup per address, every spelling of it answered. */
export function addressesByHash(addresses: readonly string[], hasher: AddressHasher): Map<string, string[]> {
  const byHash = new Map<string, string[]>();
  for (const address of addresses) {
    const key = hasher.hash(address).toString('hex');
    const given = byHash.get(key);
    if (given) given.push(address);
    else byHash.set(key, [address]);
  }
  return byHash;
}

/** Positional values both backends bind for a listing: every bound explicit, no NULL range. */
export interface SuppressionQueryBounds {
  /** One tenant's entries; null: every tenant's. */
  tenant: string | null;
  /** The page starts below this key (exclusive), in (tenant,) created_at, address_hash order. */
  belowTenant: string;
  belowCreatedAt: number;
  belowHash: Uint8Array;
  reason: string | null;
  addressHash: Buffer | null;
  since: number;
  /** Created before. */
  until: number;
  now: number | null;
  limit: number;
}

/**
 * The bounds of a page. The first page of a listing starts below (until, no hash), above every
 * entry created before `until`; a cursor binds where it is lower. For one tenant, a cursor of a
 * tenant above it (of another listing) starts the tenant's listing, one below it ends it.
 */
export function suppressionQueryBounds(f: SuppressionFilters, after: SuppressionCursor | null, limit: number, hasher: AddressHasher): SuppressionQueryBounds {
  const tenant = f.tenant === null ? null : tenantKey(f.tenant);
  const until = f.until ?? Number.MAX_SAFE_INTEGER;
  let below = { tenant: tenant ?? ABOVE_EVERY_TENANT, createdAt: until, hash: NO_HASH as Uint8Array };
  if (after !== null) {
    const cursor = { tenant: after.tenant, createdAt: after.createdAt, hash: Buffer.from(after.addressHash, 'hex') as Uint8Array };
    if (compareKeys(cursor, below) < 0) below = cursor;
    // Below this tenant's entries: nothing of it is left.
    if (tenant !== null && below.tenant !== tenant) below = { tenant, createdAt: -1, hash: NO_HASH };
  }
  return {
    tenant,
    belowTenant: below.tenant,
    belowCreatedAt: below.createdAt,
    belowHash: below.hash,
    reason: f.reason,
    addressHash: f.address === null ? null : hasher.hash(f.address),
    since: f.since ?? 0,
    until,
    now: f.now,
    limit,
  };
}

function compareKeys(a: { tenant: string; createdAt: number; hash: Uint8Array }, b: { tenant: string; createdAt: number; hash: Uint8Array }): number {
  if (a.tenant !== b.tenant) return a.tenant < b.tenant ? -1 : 1;
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return Buffer.compare(a.hash, b.hash);
}
