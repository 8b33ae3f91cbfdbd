import { loadOrCreateSelfSignedTls, type TlsMaterial } from '../../src/smtp/tls-material.ts';
import { createTempDir } from './temp-dir.ts';

let material: Promise<TlsMaterial> | null = null;

/**
 * A self-signed key and certificate for test servers, made once per test file (with openssl,
 * through the same code the daemon uses) in a temporary directory that is removed at once.
 */
export function tlsFixture(): Promise<TlsMaterial> {
  material ??= selfSignedPair('mta.rookery.test');
  return material;
}

/** A new self-signed key and certificate for `hostname` (its subject's CN), made as tlsFixture() makes its own. */
export async function selfSignedPair(hostname: string): Promise<TlsMaterial> {
  const dir = await createTempDir('rookery-tls');
  try {
    return await loadOrCreateSelfSignedTls({ dataDir: dir.path, hostname });
  } finally {
    await dir.remove();
  }
}
