import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSelfSignedTls, readTlsFiles } from '../../src/smtp/tls-material.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

describe('TLS key and certificate', () => {
  let dir: TempDir;

  beforeEach(async () => {
    dir = await createTempDir('rookery-tls-material');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('makes a self-signed pair for the hostname once, private to its owner, and reuses it on the next start', async () => {
    const dataDir = dir.file('data');
    const first = await loadOrCreateSelfSignedTls({ dataDir, hostname: 'mta.example.net' });
    const cert = new X509Certificate(first.cert);
    expect(cert.subject).toBe('CN=mta.example.net');
    expect(cert.subjectAltName).toBe('DNS:mta.example.net');
    expect(cert.issuer).toBe(cert.subject);
    expect((await stat(dir.file('data', 'tls', 'key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(dir.file('data', 'tls'))).mode & 0o777).toBe(0o700);
    expect(await readFile(dir.file('data', 'tls', 'cert.pem'))).toEqual(first.cert);

    const second = await loadOrCreateSelfSignedTls({ dataDir, hostname: 'mta.example.net' });
    expect(second.key).toEqual(first.key);
    expect(second.cert).toEqual(first.cert);
  });

  it('two starts at once on one data directory end up with one and the same pair', async () => {
    const dataDir = dir.file('data');
    const [a, b] = await Promise.all([
      loadOrCreateSelfSignedTls({ dataDir, hostname: 'a.example.net' }),
      loadOrCreateSelfSignedTls({ dataDir, hostname: 'a.example.net' }),
    ]);
    expect(a.key).toEqual(b.key);
    expect(a.cert).toEqual(b.cert);
  });

  it('reads configured files as they are', async () => {
    const made = await loadOrCreateSelfSignedTls({ dataDir: dir.file('source'), hostname: 'x.example.net' });
    await writeFile(dir.file('key.pem'), made.key);
    await writeFile(dir.file('cert.pem'), made.cert);
    expect(readTlsFiles({ key: dir.file('key.pem'), cert: dir.file('cert.pem') })).toEqual({ tls: { key: made.key, cert: made.cert }, problems: [] });
  });

  it('names the configured file it cannot read', async () => {
    const made = await loadOrCreateSelfSignedTls({ dataDir: dir.file('source'), hostname: 'x.example.net' });
    await writeFile(dir.file('cert.pem'), made.cert);
    const missing = dir.file('nope', 'key.pem');
    expect(readTlsFiles({ key: missing, cert: dir.file('cert.pem') }).problems).toEqual([
      `smtp.tls.key: cannot read file: ENOENT: no such file or directory, open '${missing}'`,
    ]);
    if (process.getuid?.() !== 0) {
      await writeFile(dir.file('locked.pem'), made.key);
      await chmod(dir.file('locked.pem'), 0o000);
      expect(readTlsFiles({ key: dir.file('locked.pem'), cert: dir.file('cert.pem') }).problems).toEqual([
        `smtp.tls.key: cannot read file: EACCES: permission denied, open '${dir.file('locked.pem')}'`,
      ]);
    }
  });

  it('refuses a key that does not belong to the certificate, and files that are not PEM', async () => {
    const one = await loadOrCreateSelfSignedTls({ dataDir: dir.file('one'), hostname: 'one.example.net' });
    const two = await loadOrCreateSelfSignedTls({ dataDir: dir.file('two'), hostname: 'two.example.net' });
    await writeFile(dir.file('key.pem'), one.key);
    await writeFile(dir.file('cert.pem'), two.cert);
    await writeFile(dir.file('junk.pem'), 'not a pem file');
    const problemsOf = (key: string, cert: string) => readTlsFiles({ key: dir.file(key), cert: dir.file(cert) }).problems;
    expect(problemsOf('key.pem', 'cert.pem')).toEqual([
      `smtp.tls: the key in ${dir.file('key.pem')} does not belong to the certificate in ${dir.file('cert.pem')}`,
    ]);
    expect(problemsOf('key.pem', 'junk.pem')).toEqual([expect.stringContaining(`smtp.tls: ${dir.file('junk.pem')} is not a PEM certificate: `)]);
    expect(problemsOf('junk.pem', 'cert.pem')).toEqual([expect.stringContaining(`smtp.tls: ${dir.file('junk.pem')} is not a PEM private key: `)]);
  });

  it('does not silently replace half a generated pair', async () => {
    await mkdir(dir.file('data', 'tls'), { recursive: true });
    await writeFile(dir.file('data', 'tls', 'cert.pem'), 'left over');
    await expect(loadOrCreateSelfSignedTls({ dataDir: dir.file('data'), hostname: 'x.example.net' })).rejects.toThrow(
      /found .*cert\.pem but not .*key\.pem; remove .* to have a new pair made/,
    );
  });
});
