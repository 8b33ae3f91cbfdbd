import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dkimPublicKeyData, dkimRecordName, dkimTxtValue, DkimRecordError, parseDkimTxt, publicKeyMatches, zoneFileLine, zoneFileStrings } from '../../src/sender-domains/dns-record.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const otherEd = generateKeyPairSync('ed25519');

// RFC 8463 appendix A: the Ed25519 example key (private seed) and the p= it publishes.
const RFC8463_SEED = 'nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=';
const RFC8463_P = '11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=';
function rfc8463PrivateKey() {
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410 section 7).
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(RFC8463_SEED, 'base64')]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

describe('DKIM key record values', () => {
  it('publishes an RSA key as the base64 of its SubjectPublicKeyInfo', () => {
    const value = dkimTxtValue(rsa.privateKey);
    const spki = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    expect(value).toBe(`v=DKIM1; k=rsa; p=${spki}`);
    // The same from the public key and from PEM text.
    expect(dkimTxtValue(rsa.publicKey)).toBe(value);
    expect(dkimTxtValue(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())).toBe(value);
  });

  it('publishes an Ed25519 key as its raw 32 bytes (RFC 8463 example key)', () => {
    const key = rfc8463PrivateKey();
    expect(dkimTxtValue(key)).toBe(`v=DKIM1; k=ed25519; p=${RFC8463_P}`);
    expect(Buffer.from(dkimPublicKeyData(ed.privateKey).p, 'base64')).toHaveLength(32);
  });

  it('refuses key types DKIM does not use', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => dkimTxtValue(ec.privateKey)).toThrow(DkimRecordError);
  });

  it('names the record <selector>._domainkey.<domain>', () => {
    expect(dkimRecordName('s2025', 'Example.COM')).toBe('s2025._domainkey.example.com');
  });
});

describe('parseDkimTxt', () => {
  it('reads the tags, removing whitespace inside p=', () => {
    const record = parseDkimTxt('v=DKIM1;  k=rsa ; h=sha256:SHA1 ; t=y:s; s=email; n=rotated 2025; p=MIIB AQAB\t CD==;');
    expect(record).toMatchObject({ v: 'DKIM1', k: 'rsa', p: 'MIIBAQABCD==', h: ['sha256', 'sha1'], t: ['y', 's'], s: ['email'], n: 'rotated 2025' });
    expect(record.tags).toMatchObject({ v: 'DKIM1', k: 'rsa', n: 'rotated 2025' });
  });

  it('defaults k to rsa, keeps unknown tags, treats s=* as any service', () => {
    const record = parseDkimTxt('p=AAAA; x_note=hello; s=*');
    expect(record).toMatchObject({ v: null, k: 'rsa', p: 'AAAA', h: null, s: null, t: [], n: null });
    expect(record.tags.x_note).toBe('hello');
  });

  it('accepts an empty p= (a revoked key)', () => {
    expect(parseDkimTxt('v=DKIM1; p=').p).toBe('');
  });

  it.each([
    ['k=rsa; v=DKIM1; p=AAAA', 'v= must be the first tag'],
    ['v=DKIM2; p=AAAA', 'v=DKIM2'],
    ['v=DKIM1; k=rsa', 'no p= tag'],
    ['v=DKIM1; p=AAAA; p=BBBB', 'appears twice'],
    ['v=DKIM1; p=not base64!', 'not base64'],
    ['v=spf1 include:_spf.example.com ~all', 'only DKIM1 exists'],
    ['google-site-verification; p=AAAA', 'not a tag=value pair'],
    ['v=DKIM1;; p=AAAA', 'empty tag'],
  ])('refuses %j', (text, problem) => {
    expect(() => parseDkimTxt(text)).toThrow(problem);
  });

  it('refuses tag names that are not names', () => {
    expect(() => parseDkimTxt('v=DKIM1; x-note=hello; p=AAAA')).toThrow('"x-note" is not a tag name');
  });
});

describe('publicKeyMatches', () => {
  it('matches the record of the same RSA key, given as private, public or PEM', () => {
    const value = dkimTxtValue(rsa.publicKey);
    expect(publicKeyMatches(value, rsa.privateKey)).toBe(true);
    expect(publicKeyMatches(parseDkimTxt(value), rsa.publicKey)).toBe(true);
    expect(publicKeyMatches(value, rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString())).toBe(true);
    expect(publicKeyMatches(value, otherRsa.privateKey)).toBe(false);
  });

  it('accepts an RSA record holding a PKCS#1 RSAPublicKey', () => {
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'der' }).toString('base64');
    expect(publicKeyMatches(`v=DKIM1; k=rsa; p=${pkcs1}`, rsa.privateKey)).toBe(true);
  });

  it('matches Ed25519 records by their raw key', () => {
    const value = dkimTxtValue(ed.publicKey);
    expect(publicKeyMatches(value, ed.privateKey)).toBe(true);
    expect(publicKeyMatches(value, otherEd.privateKey)).toBe(false);
    expect(publicKeyMatches(`v=DKIM1; k=ed25519; p=${RFC8463_P}`, createPublicKey(rfc8463PrivateKey()))).toBe(true);
  });

  it('does not match a record of another key type, a revoked record, or text that is no record', () => {
    const edP = dkimPublicKeyData(ed.publicKey).p;
    const rsaP = dkimPublicKeyData(rsa.publicKey).p;
    expect(publicKeyMatches(`v=DKIM1; k=rsa; p=${edP}`, ed.privateKey)).toBe(false);
    expect(publicKeyMatches(`v=DKIM1; k=ed25519; p=${rsaP}`, rsa.privateKey)).toBe(false);
    expect(publicKeyMatches(`v=DKIM1; p=${rsaP}`, ed.privateKey)).toBe(false);
    expect(publicKeyMatches('v=DKIM1; k=rsa; p=', rsa.privateKey)).toBe(false);
    expect(publicKeyMatches('v=spf1 -all', rsa.privateKey)).toBe(false);
    expect(publicKeyMatches('v=DKIM1; k=rsa; p=AAAA', rsa.privateKey)).toBe(false);
  });
});

describe('zone file strings', () => {
  it('quotes a short value as one string', () => {
    expect(zoneFileStrings('v=DKIM1; k=ed25519; p=abc')).toEqual(['"v=DKIM1; k=ed25519; p=abc"']);
    expect(zoneFileStrings('')).toEqual(['""']);
  });

  it('splits a long value into strings of at most 255 bytes that join back to it', () => {
    const value = dkimTxtValue(rsa.publicKey);
    expect(value.length).toBeGreaterThan(255);
    const strings = zoneFileStrings(value);
    expect(strings.length).toBe(Math.ceil(value.length / 255));
    for (const s of strings) {
      expect(s).toMatch(/^".*"$/);
      expect(Buffer.byteLength(s.slice(1, -1))).toBeLessThanOrEqual(255);
    }
    expect(strings.map((s) => s.slice(1, -1)).join('')).toBe(value);
  });

  it('escapes quotes and backslashes', () => {
    expect(zoneFileStrings('a"b\\c')).toEqual(['"a\\"b\\\\c"']);
  });

  it('writes a zone-file line with an absolute name', () => {
    expect(zoneFileLine('s1._domainkey.example.com', 'v=DKIM1; p=AAAA')).toBe('s1._domainkey.example.com. IN TXT "v=DKIM1; p=AAAA"');
    expect(zoneFileLine('s1._domainkey.example.com.', 'x')).toBe('s1._domainkey.example.com. IN TXT "x"');
  });
});
