import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { ConfigError } from '../../src/config/config-error.ts';
import type { DkimConfig } from '../../src/config/dkim-schema.ts';
import { readDkimKeys, type ConfiguredDkimKey } from '../../src/sender-domains/key-store.ts';
import { createTempDir, type TempDir } from './temp-dir.ts';

/** A private key written to a file, and the DNS TXT record that publishes it. */
export interface DkimKeyFile {
  path: string;
  pem: string;
  /** `v=DKIM1; k=rsa|ed25519; p=...` */
  record: string;
}

export interface DkimKeyFiles {
  dir: TempDir;
  rsa: DkimKeyFile;
  ed25519: DkimKeyFile;
  /** Writes another key into the directory (e.g. a rotation, a replacement, a weak key). */
  write(name: string, type: 'rsa' | 'ed25519', rsaBits?: number): Promise<DkimKeyFile>;
  remove(): Promise<void>;
}

/** A fresh PEM (PKCS#8) private key and its record; RSA of `rsaBits` (default 2048). */
export function generateDkimKey(type: 'rsa' | 'ed25519', rsaBits = 2048): { pem: string; record: string } {
  const { privateKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: rsaBits }) : generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { pem, record: dkimRecord(pem) };
}

/**
 * The TXT record for a private key, derived here independently of src/sender-domains: RSA publishes the
 * DER SubjectPublicKeyInfo, Ed25519 the raw 32-byte key (RFC 8463).
 */
export function dkimRecord(pem: string): string {
  const publicKey = createPublicKey(pem);
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    return `v=DKIM1; k=ed25519; p=${spki.subarray(spki.length - 32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** An RSA-2048 and an Ed25519 key in a temporary directory; generate once per test file. */
export async function createDkimKeyFiles(): Promise<DkimKeyFiles> {
  const dir = await createTempDir('rookery-dkim');
  const write = async (name: string, type: 'rsa' | 'ed25519', rsaBits?: number): Promise<DkimKeyFile> => {
    const key = generateDkimKey(type, rsaBits);
    const path = dir.file(name);
    await writeFile(path, key.pem, { mode: 0o600 });
    return { path, ...key };
  };
  return { dir, rsa: await write('rsa.pem', 'rsa'), ed25519: await write('ed25519.pem', 'ed25519'), write, remove: () => dir.remove() };
}

/**
 * A DNS resolver serving fixed TXT records (name -> record). Long records are split into
 * 255-byte strings as DNS carries them; unknown names fail with ENOTFOUND like node:dns.
 */
export function fixtureTxtResolver(records: Record<string, string | Error>): {
  resolveTxt(name: string): Promise<string[][]>;
  lookups: string[];
} {
  const lookups: string[] = [];
  return {
    lookups,
    async resolveTxt(name) {
      lookups.push(name);
      const record = records[name.toLowerCase().replace(/\.$/, '')];
      if (record instanceof Error) throw record;
      if (record === undefined) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      const chunks: string[] = [];
      for (let i = 0; i < record.length; i += 255) chunks.push(record.slice(i, i + 255));
      return [chunks];
    },
  };
}

export interface MailauthVerdict {
  domain: string | undefined;
  selector: string | undefined;
  algorithm: string | undefined;
  result: string;
  comment: string | undefined;
  expiresAfter: string | null | undefined;
}

/** Verifies every DKIM-Signature of a message with mailauth against fixture TXT records. */
export async function verifyWithMailauth(message: Buffer, records: Record<string, string>, curTime?: Date): Promise<MailauthVerdict[]> {
  const resolver = fixtureTxtResolver(records);
  const { results } = await dkimVerify(message, {
    resolver: (name, type) => (type === 'TXT' ? resolver.resolveTxt(name) : Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }))),
    ...(curTime ? { curTime } : {}),
  });
  return results.map((r) => ({
    domain: r.signingDomain,
    selector: r.selector,
    algorithm: r.algo,
    result: r.status.result,
    comment: r.status.comment,
    expiresAfter: r.expiresAfter,
  }));
}

/** The tags of each DKIM-Signature field of a message, top first (values unfolded, spaces removed). */
export function dkimSignatureTags(message: Buffer): Record<string, string>[] {
  const end = message.indexOf('\r\n\r\n');
  const header = message.subarray(0, end < 0 ? message.length : end).toString('latin1').replace(/\r\n[ \t]/g, ' ');
  return header
    .split('\r\n')
    .filter((line) => /^dkim-signature\s*:/i.test(line))
    .map((line) => {
      const tags: Record<string, string> = {};
      for (const part of line.slice(line.indexOf(':') + 1).split(';')) {
        const eq = part.indexOf('=');
        if (eq > 0) tags[part.slice(0, eq).trim()] = part.slice(eq + 1).replace(/\s+/g, '');
      }
      return tags;
    });
}

/** The keys of a `dkim:` config read as the resolution reads them; a ConfigError lists the problems. */
export function readKeysOf(config: DkimConfig): ConfiguredDkimKey[] {
  const { keys, problems } = readDkimKeys(config);
  if (problems.length) throw new ConfigError('config', problems);
  return keys;
}
