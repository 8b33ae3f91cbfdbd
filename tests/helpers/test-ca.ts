import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createTempDir, type TempDir } from './temp-dir.ts';

/**
 * A certificate authority of the test's own, made with openssl: the root a test gives as `ca`
 * (in production the system's roots are used), and leaf certificates for host names, in date or
 * expired (openssl ca takes any dates, which x509 -req of OpenSSL 3.0 does not).
 */

export interface TlsPair {
  key: Buffer;
  cert: Buffer;
}

export interface TestCa {
  /** The root certificate (PEM). */
  cert: Buffer;
  /** A key and certificate for `names` (DNS names or IP addresses), signed by the root; `expired`: its dates are in the past. */
  issue(names: string[], options?: { expired?: boolean }): Promise<TlsPair>;
  remove(): Promise<void>;
}

const run = promisify(execFile);

export async function createTestCa(): Promise<TestCa> {
  const dir: TempDir = await createTempDir('rookery-test-ca');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', dir.file('ca.key'), '-out', dir.file('ca.pem'),
    '-days', '2', '-subj', '/CN=Rookery Test Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await writeFile(dir.file('index.txt'), '');
  await writeFile(dir.file('serial'), '1000\n');
  await writeFile(
    dir.file('ca.cnf'),
    [
      '[ca]', 'default_ca = test', '[test]', `dir = ${dir.path}`, 'database = $dir/index.txt', 'new_certs_dir = $dir', 'serial = $dir/serial',
      'default_md = sha256', 'policy = any', 'copy_extensions = copy', 'unique_subject = no', '[any]', 'commonName = supplied', '',
    ].join('\n'),
  );
  let n = 0;
  return {
    cert: await readFile(dir.file('ca.pem')),
    async issue(names, options = {}) {
      const base = dir.file(`leaf-${++n}`);
      const san = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
      await run('openssl', [
        'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`,
        '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`,
      ]);
      const dates = options.expired ? ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z'] : ['-days', '2'];
      await run('openssl', ['ca', '-batch', '-notext', '-config', dir.file('ca.cnf'), '-cert', dir.file('ca.pem'), '-keyfile', dir.file('ca.key'), '-in', `${base}.csr`, '-out', `${base}.pem`, ...dates]);
      return { key: await readFile(`${base}.key`), cert: await readFile(`${base}.pem`) };
    },
    remove: () => dir.remove(),
  };
}
