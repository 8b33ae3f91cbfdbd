import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The token of a one-click unsubscribe link (https://…/u/TOKEN): self-contained, so a link
 * clicked weeks after its message was purged (storage.retention) still names tenant, recipient
 * and message; encrypted, so the address never shows in the link; authenticated, so a forged or
 * altered token is refused.
 *
 *     TOKEN = base64url( version 0x01 | salt (16) | AES-256-GCM ciphertext | tag (16) )
 *
 * The plaintext is the JSON array [tenant, address, messageId, issued seconds]; the version
 * byte is the associated data. Each token is sealed with a key and nonce of its own, derived
 * with HKDF-SHA256 from the master key and the token's random salt: a random 96-bit nonce under
 * one key would wear out after some 2^32 tokens (NIST SP 800-38D), which a busy platform reaches;
 * 128-bit salts do not. The master key is HKDF-SHA256 of unsubscribe.secret.
 */

export interface UnsubscribeClaims {
  /** The tenant the message was sent for; null for none. */
  tenant: string | null;
  /** The recipient, as the envelope named it. */
  address: string;
  /** The queue id of the message (of its copy for this recipient). */
  messageId: string;
  /** When the token was made, ms since the epoch (kept to the second). */
  issued: number;
}

/** A token read back: its claims, or why not (malformed: not a token at all; forged: does not authenticate). */
export type OpenedToken = { ok: true; claims: UnsubscribeClaims } | { ok: false; reason: 'malformed' | 'forged' };

const VERSION = 0x01;
const SALT_BYTES = 16;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
/** A token longer than this was not made here (the longest address and tenant give ~620). */
export const MAX_TOKEN_LENGTH = 1024;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MIN_BYTES = 1 + SALT_BYTES + TAG_BYTES + 1;

/** A key of `purpose` derived from the configured secret: the link and the mailto tag never share one. */
export function unsubscribeKey(secret: string, purpose: 'link' | 'mailto'): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'rookery unsubscribe', `${purpose} v1`, KEY_BYTES));
}

export interface UnsubscribeTokens {
  seal(claims: UnsubscribeClaims): string;
  open(token: string): OpenedToken;
}

/**
 * Tokens sealed with `secret`; opened with it or any of `previous` (a rotation: links in mail
 * already sent keep working while their secret is listed).
 */
export function createUnsubscribeTokens(secret: string, previous: readonly string[] = []): UnsubscribeTokens {
  const sealing = unsubscribeKey(secret, 'link');
  const opening = [sealing, ...previous.map((s) => unsubscribeKey(s, 'link'))];
  const aad = Buffer.from([VERSION]);

  return {
    seal(claims) {
      const salt = randomBytes(SALT_BYTES);
      const { key, nonce } = tokenKey(sealing, salt);
      const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
      const plain = Buffer.from(JSON.stringify([claims.tenant, claims.address, claims.messageId, Math.floor(claims.issued / 1000)]), 'utf8');
      return Buffer.concat([aad, salt, cipher.update(plain), cipher.final(), cipher.getAuthTag()]).toString('base64url');
    },

    open(token) {
      if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) return { ok: false, reason: 'malformed' };
      const bytes = Buffer.from(token, 'base64url');
      // A length base64url cannot produce, or bytes that do not encode back to the same text, is not ours.
      if (bytes.length < MIN_BYTES || bytes[0] !== VERSION || bytes.toString('base64url') !== token) return { ok: false, reason: 'malformed' };
      const salt = bytes.subarray(1, 1 + SALT_BYTES);
      const sealed = bytes.subarray(1 + SALT_BYTES, bytes.length - TAG_BYTES);
      const tag = bytes.subarray(bytes.length - TAG_BYTES);
      for (const master of opening) {
        const plain = decrypt(master, salt, sealed, tag, aad);
        if (plain) return claimsOf(plain);
      }
      return { ok: false, reason: 'forged' };
    },
  };
}

function tokenKey(master: Buffer, salt: Buffer): { key: Buffer; nonce: Buffer } {
  const okm = Buffer.from(hkdfSync('sha256', master, salt, 'token', KEY_BYTES + NONCE_BYTES));
  return { key: okm.subarray(0, KEY_BYTES), nonce: okm.subarray(KEY_BYTES) };
}

/** The plaintext, or null when the tag does not verify under this master key. */
function decrypt(master: Buffer, salt: Buffer, sealed: Buffer, tag: Buffer, aad: Buffer): Buffer | null {
  const { key, nonce } = tokenKey(master, salt);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES }).setAAD(aad).setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(sealed), decipher.final()]);
  } catch {
    return null;
  }
}

/** Authenticated bytes are ours, so a shape other than seal()'s means a defect; it is refused like a forgery. */
function claimsOf(plain: Buffer): OpenedToken {
  let value: unknown;
  try {
    value = JSON.parse(plain.toString('utf8'));
  } catch {
    return { ok: false, reason: 'forged' };
  }
  if (!Array.isArray(value) || value.length !== 4) return { ok: false, reason: 'forged' };
  const [tenant, address, messageId, issued] = value as unknown[];
  if ((tenant !== null && typeof tenant !== 'string') || typeof address !== 'string' || typeof messageId !== 'string' || !Number.isSafeInteger(issued)) {
    return { ok: false, reason: 'forged' };
  }
  return { ok: true, claims: { tenant, address, messageId, issued: (issued as number) * 1000 } };
}
