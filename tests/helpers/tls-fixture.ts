import { loadOrCreateSelfSignedTls, type TlsMaterial } from '../../src/smtp/tls-material.ts';
import { createTempDir } from './temp-dir.ts';

let material: Promise<TlsMaterial> | null = null;

/**
 * A self-signed key and certificate for test servers, made once per test file (with openssl,
 * through the same code the daemon uses) in a temporary directory that is removed at once.
 */
export function tlsFixture(): Promise<TlsMaterial> {
  material ??= (async () => {
    const dir = await createTempDir('rookery-tls');
    try {
      return await loadOrCreateSelfSignedTls({ dataDir: dir.path, hostname: 'mta.rookery.test' });
    } finally {
      await dir.remove();
    }
  })();
  return material;
}
