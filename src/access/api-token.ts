import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiRole, ApiTokenConfig } from '../config/api-schema.ts';

/**
 * API tokens: made here, stored in the config only as a hash, checked on every /v1 request.
 *
 * Why SHA-256 and not scrypt (as for SMTP passwords): a token is 32 random bytes, 256 bits no
 * one chose, so there is no dictionary to try and nothing for a slow, salted hash to protect
 * against; guessing a token whose hash leaked means searching 2^256 preimages. A fast hash also
 * keeps every request cheap, where scrypt would cost tens of milliseconds of CPU per call and hand
 * anyone able to reach the port a way to burn it. The check compares the presented token's digest
 * with every configured digest in constant time, so neither its bytes nor which entry matched
 * shows in the time taken.
 */

/** Tokens start with this, so secret scanners and people can tell one at a glance. */
export const API_TOKEN_PREFIX = 'rk_';

/** A new token: the prefix and 32 random bytes in base64url (43 characters). */
export function generateApiToken(): string {
  return `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The config form of a token's hash: "sha256:" and the hex digest of its UTF-8 bytes. */
export function hashApiToken(token: string): string {
  return `sha256:${digest(token).toString('hex')}`;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Who is calling: the token that authenticated the request, never the token itself. */
export interface ApiPrincipal {
  readonly name: string;
  readonly role: ApiRole;
  /** The tenant the token belongs to; null for one that belongs to none. */
  readonly tenant: string | null;
  /** Who its mail may come from (api.tokens[].allowedSenders); null: it may not send. */
  readonly allowedSenders: readonly string[] | null;
}

/** The configured tokens, with their digests decoded once. */
export class TokenDirectory {
  private readonly entries: ReadonlyArray<{ principal: ApiPrincipal; digest: Buffer }>;

  constructor(tokens: readonly ApiTokenConfig[]) {
    this.entries = tokens.map((t) => ({
      principal: Object.freeze({ name: t.name, role: t.role, tenant: t.tenant ?? null, allowedSenders: t.allowedSenders ? Object.freeze([...t.allowedSenders]) : null }),
      digest: Buffer.from(t.hash.slice('sha256:'.length), 'hex'),
    }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The configured token of this name (names are unique), or null: who made a pause, for instance. */
  named(name: string): ApiPrincipal | null {
    return this.entries.find((e) => e.principal.name === name)?.principal ?? null;
  }

  /** The principal whose token this is, or null. Every entry is compared, without an early exit. */
  authenticate(token: string): ApiPrincipal | null {
    const presented = digest(token);
    let found: ApiPrincipal | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(presented, entry.digest)) found = entry.principal;
    }
    return found;
  }
}
