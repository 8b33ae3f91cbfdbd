import { DataRefusedError, type IdempotencyRecord } from './store.ts';

/*
 * Rows of the idempotency keys shared by the SQLite and PostgreSQL backends: the check both apply
 * before a write is queued, and the mapping of a row to the record.
 */

export interface IdempotencyDbRow {
  scope: string;
  key: string;
  request_hash: string;
  status: number;
  response: string;
  created_at: number;
}

/** The values of one row, in the column order of the INSERT statements. */
export type IdempotencyInsertValues = [string, string, string, number, string, number];

/** Records deleted per transaction (or statement) by purgeIdempotencyKeys. */
export const IDEMPOTENCY_PURGE_CHUNK = 1000;

/** The record as stored; DataRefusedError for one no backend could store (a NUL: PostgreSQL text cannot hold it). */
export function idempotencyInsertValues(r: IdempotencyRecord): IdempotencyInsertValues {
  for (const [name, value] of [['scope', r.scope], ['key', r.key], ['requestHash', r.requestHash], ['response', r.response]] as const) {
    if (typeof value !== 'string' || value === '' || value.includes('\u0000')) throw new DataRefusedError(`idempotency record: ${name} must be a non-empty string without NUL`);
  }
  if (!Number.isInteger(r.status) || !Number.isSafeInteger(r.createdAt)) throw new DataRefusedError('idempotency record: status and createdAt must be integers');
  return [r.scope, r.key, r.requestHash, r.status, r.response, r.createdAt];
}

export function toIdempotencyRecord(row: IdempotencyDbRow): IdempotencyRecord {
  return { scope: row.scope, key: row.key, requestHash: row.request_hash, status: row.status, response: row.response, createdAt: row.created_at };
}
