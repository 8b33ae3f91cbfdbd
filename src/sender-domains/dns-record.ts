import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * DKIM key records (RFC 6376 section 3.6.1): the TXT record at `<selector>._domainkey.<domain>`
 * that publishes a signing key's public half. RSA keys are published as the base64 of the
 * SubjectPublicKeyInfo DER (`k=rsa`), Ed25519 keys as the base64 of the raw 32-byte key
 * (`k=ed25519`, RFC 8463 section 4.2).
 */

/** A private or public key: a KeyObject, or PEM text / bytes. */
export type KeyInput = KeyObject | string | Buffer;

export interface DkimRecord {
  /** Version; when present it is "DKIM1" (anything else is refused by the parser). */
  v: string | null;
  /** Key type; "rsa" when the record has no k= tag. */
  k: string;
  /** Public key data, whitespace removed; empty for a revoked key. */
  p: string;
  /** Hash algorithms the key may be used with (h=), null when unrestricted. */
  h: string[] | null;
  /** Service types (s=), null when unrestricted ("*"). */
  s: string[] | null;
  /** Flags (t=): "y" = testing, "s" = no subdomains in i=. */
  t: string[];
  /** Notes for humans (n=). */
  n: string | null;
  /** Every tag as published, unknown ones included. */
  tags: Record<string, string>;
}

export class DkimRecordError extends Error {
  override name = 'DkimRecordError';
}

/** The DNS name of a selector's key record, without the trailing dot. */
export function dkimRecordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`.toLowerCase();
}

/** `k=` and `p=` for a key (public, or private from which the public half is derived). */
export function dkimPublicKeyData(key: KeyInput): { k: 'rsa' | 'ed25519'; p: string } {
  // createPublicKey derives the public half from a private key, but refuses a public KeyObject.
  const publicKey = typeof key === 'object' && 'type' in key && key.type === 'public' ? key : createPublicKey(key);
  switch (publicKey.asymmetricKeyType) {
    case 'rsa':
      return { k: 'rsa', p: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
    case 'ed25519': {
      const { x } = publicKey.export({ format: 'jwk' });
      return { k: 'ed25519', p: Buffer.from(x ?? '', 'base64url').toString('base64') };
    }
    default:
      throw new DkimRecordError(`DKIM keys are RSA or Ed25519, not ${publicKey.asymmetricKeyType ?? 'unknown'}`);
  }
}

/** The TXT record value to publish for a key: `v=DKIM1; k=rsa; p=...`. */
export function dkimTxtValue(key: KeyInput): string {
  const { k, p } = dkimPublicKeyData(key);
  return `v=DKIM1; k=${k}; p=${p}`;
}

/**
 * Parses a key record (the TXT record's strings already joined). Throws DkimRecordError saying
 * what is wrong when the text is not a valid DKIM key record.
 */
export function parseDkimTxt(text: string): DkimRecord {
  const tags: Record<string, string> = {};
  const parts = text.split(';');
  parts.forEach((part, i) => {
    if (part.trim() === '') {
      // A trailing ";" is allowed; an empty tag in the middle is not.
      if (i === parts.length - 1) return;
      throw new DkimRecordError('empty tag (";;")');
    }
    const eq = part.indexOf('=');
    if (eq < 0) throw new DkimRecordError(`"${part.trim()}" is not a tag=value pair`);
    const name = part.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new DkimRecordError(`"${name}" is not a tag name`);
    if (name in tags) throw new DkimRecordError(`tag ${name}= appears twice`);
    tags[name] = part.slice(eq + 1).trim();
  });

  const names = Object.keys(tags);
  if ('v' in tags) {
    if (names[0] !== 'v') throw new DkimRecordError('v= must be the first tag');
    if (tags.v !== 'DKIM1') throw new DkimRecordError(`v=${tags.v}: only DKIM1 exists`);
  }
  if (!('p' in tags)) throw new DkimRecordError('no p= tag (the public key)');
  // Folding whitespace may appear inside the base64 of p= (RFC 6376 section 3.6.1).
  const p = (tags.p ?? '').replace(/\s+/g, '');
  if (p !== '' && !/^[A-Za-z0-9+/]+={0,2}$/.test(p)) throw new DkimRecordError('p= is not base64');
  const list = (value: string | undefined) => (value === undefined ? null : value.split(':').map((item) => item.trim()).filter(Boolean));
  const services = list(tags.s);

  return {
    v: tags.v ?? null,
    k: (tags.k ?? 'rsa').toLowerCase(),
    p,
    h: list(tags.h)?.map((hash) => hash.toLowerCase()) ?? null,
    s: services === null || services.includes('*') ? null : services,
    t: list(tags.t) ?? [],
    n: tags.n ?? null,
    tags,
  };
}

/**
 * True when the record publishes the public half of `key`. A record that does not parse, is
 * revoked (empty p=) or names another key type does not match. RSA records holding a PKCS#1
 * RSAPublicKey instead of SubjectPublicKeyInfo (published by some old tools) are accepted.
 */
export function publicKeyMatches(record: DkimRecord | string, key: KeyInput): boolean {
  let parsed: DkimRecord;
  try {
    parsed = typeof record === 'string' ? parseDkimTxt(record) : record;
  } catch (err) {
    if (err instanceof DkimRecordError) return false;
    throw err;
  }
  if (parsed.p === '') return false;
  const expected = dkimPublicKeyData(key);
  if (parsed.k !== expected.k) return false;
  if (expected.k === 'ed25519') return parsed.p === expected.p;
  const published = rsaSpkiBase64(Buffer.from(parsed.p, 'base64'));
  return published === expected.p;
}

function rsaSpkiBase64(der: Buffer): string | null {
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const key = createPublicKey({ key: der, format: 'der', type });
      if (key.asymmetricKeyType === 'rsa') return key.export({ type: 'spki', format: 'der' }).toString('base64');
    } catch {
      // Not this encoding; try the next one.
    }
  }
  return null;
}

/**
 * The value as zone-file character strings: a TXT string holds at most 255 bytes
 * (RFC 1035 section 3.3), so a longer value (any RSA-2048 key) is split into several quoted
 * strings, which resolvers join back without separators. The value is printable ASCII.
 */
export function zoneFileStrings(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const strings: string[] = [];
  for (let start = 0; start < bytes.length || strings.length === 0; start += 255) {
    const chunk = bytes.subarray(start, start + 255).toString('utf8');
    strings.push(`"${chunk.replace(/["\\]/g, (c) => `\\${c}`)}"`);
  }
  return strings;
}

/** One zone-file line for the record: `s1._domainkey.example.com. IN TXT "..." "..."`. */
export function zoneFileLine(name: string, value: string): string {
  return `${name.endsWith('.') ? name : `${name}.`} IN TXT ${zoneFileStrings(value).join(' ')}`;
}
