import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { access, chmod, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

export interface SelfSignedTlsOptions {
  dataDir: string;
  hostname: string;
}

const KEY_FILE = 'key.pem';
const CERT_FILE = 'cert.pem';

/**
 * The configured key and certificate (smtp.tls), read and checked now rather than at the first
 * STARTTLS. Each problem names its config path.
 */
export function readTlsFiles(paths: { key: string; cert: string }): { tls: TlsMaterial | null; problems: string[] } {
  const problems: string[] = [];
  const read = (path: string, where: string): Buffer | null => {
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`${where}: cannot read file: ${(err as Error).message}`);
      return null;
    }
  };
  const key = read(paths.key, 'smtp.tls.key');
  const cert = read(paths.cert, 'smtp.tls.cert');
  if (!key || !cert) return { tls: null, problems };
  const problem = pairProblem({ key, cert }, paths.key, paths.cert);
  return problem ? { tls: null, problems: [`smtp.tls: ${problem}`] } : { tls: { key, cert }, problems };
}

/**
 * Problems with a self-signed pair already in `${dataDir}/tls/` (half of one, unreadable, or a
 * key that is not the certificate's), found without writing anything, so check-config refuses
 * what loadOrCreateSelfSignedTls would refuse at start. No pair at all is fine: one is made then.
 */
export function selfSignedTlsProblems(dataDir: string): string[] {
  const dir = join(dataDir, 'tls');
  const keyPath = join(dir, KEY_FILE);
  const certPath = join(dir, CERT_FILE);
  const [hasKey, hasCert] = [existsSync(keyPath), existsSync(certPath)];
  const problem = (text: string) => [`smtp.tls: not set, and the self-signed pair kept in ${dir} cannot be used: ${text}`];
  if (hasKey !== hasCert) return problem(`found ${hasKey ? keyPath : certPath} but not ${hasKey ? certPath : keyPath}; remove ${dir} to have a new pair made`);
  if (!hasKey) return [];
  try {
    const material = { key: readFileSync(keyPath), cert: readFileSync(certPath) };
    const mismatch = pairProblem(material, keyPath, certPath);
    return mismatch ? problem(mismatch) : [];
  } catch (err) {
    return problem((err as Error).message);
  }
}

/**
 * The key and certificate for TLS listeners when smtp.tls is not set: a self-signed pair made
 * once into `${dataDir}/tls/` and reused on every later start, so clients that pin it keep
 * working. Submission clients mostly do not verify the certificate of a server they were
 * pointed at; operators who need a trusted one configure it.
 */
export async function loadOrCreateSelfSignedTls(options: SelfSignedTlsOptions): Promise<TlsMaterial> {
  const dir = join(options.dataDir, 'tls');
  const keyPath = join(dir, KEY_FILE);
  const certPath = join(dir, CERT_FILE);
  const [hasKey, hasCert] = await Promise.all([exists(keyPath), exists(certPath)]);
  if (hasKey !== hasCert) {
    throw new Error(`TLS: found ${hasKey ? keyPath : certPath} but not ${hasKey ? certPath : keyPath}; remove ${dir} to have a new pair made`);
  }
  if (!hasKey) await createSelfSigned(options.dataDir, dir, options.hostname);
  const material = { key: await readPem(keyPath, 'key'), cert: await readPem(certPath, 'certificate') };
  const problem = pairProblem(material, keyPath, certPath);
  if (problem) throw new Error(`TLS: ${problem}`);
  return material;
}

/**
 * Generates the pair in a private temporary directory and renames it into place in one step, so
 * two daemons starting at once on one data directory cannot end up with a key from one run and a
 * certificate from the other: the loser of the rename uses the winner's pair.
 */
async function createSelfSigned(dataDir: string, dir: string, hostname: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const tmp = join(dataDir, `.tls-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 });
  try {
    await openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(tmp, KEY_FILE), '-out', join(tmp, CERT_FILE),
      '-days', '3650', '-subj', `/CN=${hostname}`, '-addext', `subjectAltName=DNS:${hostname}`,
    ]);
    await chmod(join(tmp, KEY_FILE), 0o600);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process made the pair first (or the directory exists and is not empty).
      if (!['EEXIST', 'ENOTEMPTY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'openssl is not installed' : stderr.trim() || err.message;
      reject(new Error(`TLS: could not create a self-signed certificate with openssl (${why}); install openssl or set smtp.tls.key and smtp.tls.cert`));
    });
  });
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`TLS: cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
}

/** When the certificate expires (its notAfter), in Unix seconds: what rookery_tls_certificate_expiry_timestamp_seconds shows. */
export function certificateExpiry(cert: Buffer | string): number {
  return new X509Certificate(cert).validToDate.getTime() / 1000;
}

/** Why the pair cannot serve TLS, naming the file at fault; null when it can. */
function pairProblem(material: TlsMaterial, keyPath: string, certPath: string): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(material.cert);
  } catch (err) {
    return `${certPath} is not a PEM certificate: ${(err as Error).message}`;
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(material.key));
  } catch (err) {
    return `${keyPath} is not a PEM private key: ${(err as Error).message}`;
  }
  return matches ? null : `the key in ${keyPath} does not belong to the certificate in ${certPath}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
