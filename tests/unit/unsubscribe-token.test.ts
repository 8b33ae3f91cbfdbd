import { createDecipheriv, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newQueueId } from '../../src/engine/queue-id.ts';
import { createMailtoAddresses } from '../../src/sender-domains/unsubscribe-mailto-address.ts';
import { createUnsubscribeTokens, MAX_TOKEN_LENGTH, type UnsubscribeClaims } from '../../src/sender-domains/unsubscribe-token.ts';

const SECRET = 'an-unsubscribe-secret-of-at-least-32-characters';
const OTHER = 'another-unsubscribe-secret-at-least-32-characters';
const ISSUED = Date.UTC(2026, 10, 22, 10, 0, 0);
const CLAIMS: UnsubscribeClaims = { tenant: 'acme', address: 'Jane.Doe+news@Example.ORG', messageId: newQueueId(ISSUED), issued: ISSUED };

/** The token with one base64url character changed at `index` (to another that keeps it well-formed). */
function altered(token: string, index: number): string {
  const c = token[index]!;
  return token.slice(0, index) + (c === 'A' ? 'B' : 'A') + token.slice(index + 1);
}

describe('unsubscribe link tokens', () => {
  const tokens = createUnsubscribeTokens(SECRET);

  it('round-trips tenant, address, message id and time (to the second), in base64url', () => {
    const token = tokens.seal({ ...CLAIMS, issued: ISSUED + 789 });
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(tokens.open(token)).toEqual({ ok: true, claims: CLAIMS });
    expect(tokens.open(tokens.seal({ ...CLAIMS, tenant: null }))).toEqual({ ok: true, claims: { ...CLAIMS, tenant: null } });
  });

  it('never shows the address: the same claims seal differently each time, and no form of the address is in the token', () => {
    const a = tokens.seal(CLAIMS);
    const b = tokens.seal(CLAIMS);
    expect(a).not.toBe(b);
    const decoded = Buffer.from(a, 'base64url').toString('latin1').toLowerCase();
    for (const form of [CLAIMS.address, 'jane.doe', 'example.org']) {
      expect(decoded).not.toContain(form.toLowerCase());
      expect(a.toLowerCase()).not.toContain(Buffer.from(form).toString('base64url').slice(0, 8).toLowerCase());
    }
  });

  it('is AES-256-GCM with a key and nonce per token from HKDF, as documented', () => {
    const bytes = Buffer.from(tokens.seal(CLAIMS), 'base64url');
    const master = Buffer.from(hkdfSync('sha256', SECRET, 'rookery unsubscribe', 'link v1', 32));
    const okm = Buffer.from(hkdfSync('sha256', master, bytes.subarray(1, 17), 'token', 44));
    const decipher = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32)).setAAD(Buffer.from([1])).setAuthTag(bytes.subarray(-16));
    const plain = Buffer.concat([decipher.update(bytes.subarray(17, -16)), decipher.final()]);
    expect(JSON.parse(plain.toString())).toEqual(['acme', CLAIMS.address, CLAIMS.messageId, ISSUED / 1000]);
  });

  it('refuses every altered character as forged', () => {
    const token = tokens.seal(CLAIMS);
    // Each character after the version byte's: the salt, the ciphertext and the tag.
    for (let i = 2; i < token.length; i++) {
      const changed = altered(token, i);
      const opened = tokens.open(changed);
      // The last character carries only some bits; a change that makes a non-canonical encoding is malformed.
      expect([i, opened.ok]).toEqual([i, false]);
    }
    expect(tokens.open(altered(token, 5))).toEqual({ ok: false, reason: 'forged' });
    expect(tokens.open(altered(token, token.length - 5))).toEqual({ ok: false, reason: 'forged' });
  });

  it('refuses truncated and extended tokens', () => {
    const token = tokens.seal(CLAIMS);
    for (const cut of [1, 2, 3, 4, 8, 16, 24, Math.floor(token.length / 2)]) {
      expect(tokens.open(token.slice(0, -cut)).ok).toBe(false);
    }
    expect(tokens.open(token.slice(0, 40))).toEqual({ ok: false, reason: 'malformed' });
    expect(tokens.open(`${token}AAAA`)).toEqual({ ok: false, reason: 'forged' });
  });

  it('tells malformed from forged: alphabet, length, version', () => {
    const token = tokens.seal(CLAIMS);
    expect(tokens.open('')).toEqual({ ok: false, reason: 'malformed' });
    expect(tokens.open('not a token')).toEqual({ ok: false, reason: 'malformed' });
    expect(tokens.open(`${token.slice(0, 10)}+/${token.slice(12)}`)).toEqual({ ok: false, reason: 'malformed' });
    expect(tokens.open('A'.repeat(MAX_TOKEN_LENGTH + 4))).toEqual({ ok: false, reason: 'malformed' });
    const version2 = Buffer.from(token, 'base64url');
    version2[0] = 2;
    expect(tokens.open(version2.toString('base64url'))).toEqual({ ok: false, reason: 'malformed' });
    // Well-formed but made with another secret.
    expect(createUnsubscribeTokens(OTHER).open(token)).toEqual({ ok: false, reason: 'forged' });
  });

  it('opens tokens of a previous secret after a rotation, and seals with the new one only', () => {
    const old = createUnsubscribeTokens(OTHER).seal(CLAIMS);
    const rotated = createUnsubscribeTokens(SECRET, [OTHER]);
    expect(rotated.open(old)).toEqual({ ok: true, claims: CLAIMS });
    expect(createUnsubscribeTokens(SECRET).open(rotated.seal(CLAIMS))).toEqual({ ok: true, claims: CLAIMS });
  });

  it('stays within MAX_TOKEN_LENGTH for the longest tenant and envelope address', () => {
    const longest = { tenant: 't'.repeat(64), address: `${'l'.repeat(64)}@${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(63)}.${'g'.repeat(61)}`, messageId: 'f'.repeat(22), issued: ISSUED };
    const token = tokens.seal(longest);
    expect(token.length).toBeLessThan(700);
    expect(tokens.open(token)).toEqual({ ok: true, claims: longest });
  });
});

describe('unsubscribe mailto addresses', () => {
  const mailto = createMailtoAddresses(SECRET);
  const domains = new Set(['unsub.kiwi.example']);
  const messageId = newQueueId(ISSUED);

  it('has the documented form, a local part of 45 octets (RFC 5321 allows 64), and reads back in any case', () => {
    const address = mailto.address(messageId, 'unsub.kiwi.example');
    expect(address).toMatch(new RegExp(`^unsub\\+${messageId}\\.[a-z2-7]{16}@unsub\\.kiwi\\.example$`));
    expect(address.split('@')[0]!.length).toBe(45);
    expect(mailto.messageOf(address, domains)).toBe(messageId);
    expect(mailto.messageOf(address.toUpperCase(), domains)).toBe(messageId);
  });

  it('refuses another domain, an altered id or tag, another secret, and non-ASCII look-alikes', () => {
    const address = mailto.address(messageId, 'unsub.kiwi.example');
    const [local, domain] = address.split('@') as [string, string];
    const [id, tag] = local.slice('unsub+'.length).split('.') as [string, string];
    expect(mailto.messageOf(address, new Set(['other.example.com']))).toBeNull();
    expect(mailto.messageOf(`unsub+${id.slice(0, -1)}${id.endsWith('0') ? '1' : '0'}.${tag}@${domain}`, domains)).toBeNull();
    expect(mailto.messageOf(`unsub+${id}.${tag.slice(0, -1)}${tag.endsWith('a') ? 'b' : 'a'}@${domain}`, domains)).toBeNull();
    expect(mailto.messageOf(`unsub+${id}.${tag.slice(0, -1)}@${domain}`, domains)).toBeNull();
    expect(mailto.messageOf(`other+${id}.${tag}@${domain}`, domains)).toBeNull();
    expect(createMailtoAddresses(OTHER).messageOf(address, domains)).toBeNull();
    // U+212A KELVIN SIGN lower-cases to an ASCII "k".
    expect(mailto.messageOf(address.replace('k', '\u212a'), domains)).toBeNull();
  });

  it('reads addresses of a previous secret', () => {
    const old = createMailtoAddresses(OTHER).address(messageId, 'unsub.kiwi.example');
    expect(createMailtoAddresses(SECRET, [OTHER]).messageOf(old, domains)).toBe(messageId);
  });
});
