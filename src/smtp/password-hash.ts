import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes for smtp.users[].passwordHash, in the self-describing form
 * `scrypt$N$r$p$saltB64$hashB64` (N is the CPU/memory cost itself, not its log2), so the cost can
 * be raised later without breaking hashes already in config files.
 */

/** scrypt's cost parameters: N (CPU and memory), r (block size), p (parallelism). */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export interface ScryptHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

/** OWASP's minimum for scrypt (N=2^14, r=8, p=1): ~16 MiB and a few tens of ms per check. */
export const DEFAULT_SCRYPT = { N: 16_384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Refuse parameters that would let a config value make every AUTH allocate more than this. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  checkParams(params.N, params.r, params.p);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/**
 * True when `password` matches `encoded`. The comparison takes the same time whatever the
 * mismatch. Throws on a malformed hash: that is a configuration error, not a wrong password.
 */
export async function verifyPassword(password: string, encoded: string | ScryptHash): Promise<boolean> {
  const parsed = typeof encoded === 'string' ? parsePasswordHash(encoded) : encoded;
  const candidate = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(candidate, parsed.hash);
}

/** Parses `scrypt$N$r$p$saltB64$hashB64`; the error says what is wrong (never echoes the hash). */
export function parsePasswordHash(encoded: string): ScryptHash {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    throw new Error('password hash must have the form scrypt$N$r$p$salt$hash');
  }
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  if (![n, r, p].every((v) => /^\d{1,10}$/.test(v))) throw new Error('password hash: N, r and p must be positive integers');
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  checkParams(params.N, params.r, params.p);
  const base64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!base64.test(salt) || !base64.test(hash)) throw new Error('password hash: salt and hash must be base64');
  const parsed = { ...params, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  if (parsed.salt.length < 8) throw new Error('password hash: salt must be at least 8 bytes');
  if (parsed.hash.length < 16) throw new Error('password hash: hash must be at least 16 bytes');
  return parsed;
}

function checkParams(N: number, r: number, p: number): void {
  if (!Number.isInteger(N) || N < 2 || (N & (N - 1)) !== 0) throw new Error('password hash: N must be a power of two');
  if (!Number.isInteger(r) || r < 1 || !Number.isInteger(p) || p < 1 || p > 16) {
    throw new Error('password hash: r must be >= 1 and p between 1 and 16');
  }
  if (128 * N * r > MAX_SCRYPT_MEMORY) throw new Error('password hash: N * r needs more than 256 MiB of memory');
}

function derive(password: string, salt: Buffer, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 2 * 128 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}
