/**
 * Opaque page cursors: base64url of the JSON of the last item's sort key. Clients pass them back
 * unchanged; a cursor that does not decode to the expected key is refused (a 400 naming
 * querystring.cursor), never read as "from the start".
 */

export class MalformedCursorError extends Error {
  constructor() {
    super('not a cursor this API gave out');
    this.name = 'MalformedCursorError';
  }
}

/** A message page's sort key: created time, then queue id (both descending). */
export interface MessageCursor {
  createdAt: number;
  id: string;
}

export function encodeMessageCursor(key: MessageCursor): string {
  return Buffer.from(JSON.stringify([key.createdAt, key.id])).toString('base64url');
}

/** The JSON array a cursor encodes; MalformedCursorError for anything else. */
function decodeCursorArray(cursor: string): unknown[] {
  let value: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new MalformedCursorError();
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new MalformedCursorError();
  }
  if (!Array.isArray(value)) throw new MalformedCursorError();
  return value;
}

export function decodeMessageCursor(cursor: string): MessageCursor {
  const value = decodeCursorArray(cursor);
  if (value.length !== 2) throw new MalformedCursorError();
  const [createdAt, id] = value;
  if (!Number.isSafeInteger(createdAt) || (createdAt as number) < 0 || typeof id !== 'string' || id === '') throw new MalformedCursorError();
  return { createdAt: createdAt as number, id };
}

/** An audit page's sort key: time, then entry id (both descending). */
export interface AuditPageCursor {
  at: number;
  id: number;
}

export function encodeAuditCursor(key: AuditPageCursor): string {
  return Buffer.from(JSON.stringify(['a', key.at, key.id])).toString('base64url');
}

export function decodeAuditCursor(cursor: string): AuditPageCursor {
  const value = decodeCursorArray(cursor);
  // The 'a' tag keeps a cursor of another listing (messages) from passing as one of this.
  if (value.length !== 3 || value[0] !== 'a') throw new MalformedCursorError();
  const [, at, id] = value;
  if (!isNonNegativeInteger(at) || !isNonNegativeInteger(id)) throw new MalformedCursorError();
  return { at, id };
}

function isNonNegativeInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A suppression page's sort key: tenant ('' for none), created time, address hash (all descending). */
export interface SuppressionPageCursor {
  tenant: string;
  createdAt: number;
  addressHash: string;
}

export function encodeSuppressionCursor(key: SuppressionPageCursor): string {
  return Buffer.from(JSON.stringify(['s', key.tenant, key.createdAt, key.addressHash])).toString('base64url');
}

export function decodeSuppressionCursor(cursor: string): SuppressionPageCursor {
  const value = decodeCursorArray(cursor);
  // The 's' tag keeps a cursor of another listing from passing as one of this.
  if (value.length !== 4 || value[0] !== 's') throw new MalformedCursorError();
  const [, tenant, createdAt, addressHash] = value;
  if (typeof tenant !== 'string' || !/^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/.test(tenant)) throw new MalformedCursorError();
  if (!isNonNegativeInteger(createdAt) || typeof addressHash !== 'string' || !/^[0-9a-f]{64}$/.test(addressHash)) throw new MalformedCursorError();
  return { tenant, createdAt, addressHash };
}

/** A webhook listing's sort key: the last endpoint id. */
export function encodeWebhookCursor(id: string): string {
  return Buffer.from(JSON.stringify(['w', id])).toString('base64url');
}

export function decodeWebhookCursor(cursor: string): string {
  const value = decodeCursorArray(cursor);
  if (value.length !== 2 || value[0] !== 'w' || typeof value[1] !== 'string' || value[1] === '') throw new MalformedCursorError();
  return value[1];
}

/** A delivery listing's sort key: created time, then delivery id (both descending). */
export function encodeDeliveryCursor(key: MessageCursor): string {
  return Buffer.from(JSON.stringify(['d', key.createdAt, key.id])).toString('base64url');
}

export function decodeDeliveryCursor(cursor: string): MessageCursor {
  const value = decodeCursorArray(cursor);
  if (value.length !== 3 || value[0] !== 'd') throw new MalformedCursorError();
  const [, createdAt, id] = value;
  if (!isNonNegativeInteger(createdAt) || typeof id !== 'string' || id === '') throw new MalformedCursorError();
  return { createdAt, id };
}
