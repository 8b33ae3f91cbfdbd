import { generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { moveIntoPlace, syncPath } from '../storage/durable-file.ts';

/**
 * New DKIM signing keys and their private key files. RSA-2048 is the default: RFC 8301 requires
 * verifiers to handle 1024 to 4096 bits and signers to use at least 1024, and 2048 is what
 * large receivers expect. Ed25519 (RFC 8463) is offered for dual signing beside RSA; not every
 * verifier knows it yet, so it never replaces RSA on its own.
 */

export const DKIM_ALGORITHMS = ['rsa-sha256', 'ed25519-sha256'] as const;
export type DkimAlgorithm = (typeof DKIM_ALGORITHMS)[number];

export const DEFAULT_RSA_BITS = 2048;
export const MIN_RSA_BITS = 1024;
/** Larger keys do not fit the TXT records many DNS hosting panels accept, and verifiers may refuse them. */
export const MAX_RSA_BITS = 4096;

export interface GeneratedDkimKey {
  algorithm: DkimAlgorithm;
  /** RSA modulus size; null for Ed25519. */
  bits: number | null;
  /** PKCS#8 PEM, the form the key file holds. */
  privateKeyPem: string;
  publicKey: KeyObject;
}

const generate = promisify(generateKeyPair);

export async function generateDkimKey(options: { algorithm: DkimAlgorithm; bits?: number }): Promise<GeneratedDkimKey> {
  if (options.algorithm === 'ed25519-sha256') {
    if (options.bits !== undefined) throw new RangeError('Ed25519 keys have a fixed size; bits applies to RSA only');
    const { publicKey, privateKey } = await generate('ed25519');
    return { algorithm: options.algorithm, bits: null, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
  }
  const bits = options.bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS || bits % 8 !== 0) {
    throw new RangeError(`RSA key size must be a multiple of 8 from ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits, not ${bits}`);
  }
  const { publicKey, privateKey } = await generate('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  return { algorithm: options.algorithm, bits, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

/**
 * A problem with a selector given by the operator, or null. It becomes part of a DNS name and of
 * a file name, so only DNS labels are accepted: this also keeps "../" out of paths. A selector
 * may itself have several labels (RFC 6376 section 3.1), e.g. "2025.eu".
 */
export function selectorProblem(selector: string): string | null {
  return selector.split('.').every(isLabel) ? null : 'not a selector (letters, digits and hyphens, dots between labels)';
}

function isLabel(label: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label);
}

/** `<dir>/<domain>.<selector>.pem`. */
export function dkimKeyPath(dir: string, domain: string, selector: string): string {
  return join(dir, `${domain.toLowerCase()}.${selector}.pem`);
}

export class KeyFileExistsError extends Error {
  override name = 'KeyFileExistsError';
  constructor(readonly path: string) {
    super(`${path} already exists`);
  }
}

/**
 * Writes a private key readable by its owner only (0600; the directory is created 0700).
 * The key is written to a temporary file, flushed, then moved into place, so the path never
 * holds a partial key. An existing file is kept, and KeyFileExistsError thrown, unless `force`:
 * the old key may be the one whose record is published, and losing it breaks signing.
 */
export async function writePrivateKeyFile(path: string, pem: string, options: { force?: boolean } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(pem);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temporary).catch(() => {});
    throw err;
  }
  await handle.close();
  try {
    if (!(await moveIntoPlace(temporary, path, options))) throw new KeyFileExistsError(path);
  } finally {
    await unlink(temporary).catch(() => {});
  }
  await syncPath(dirname(path));
}
