import type { Clock } from '../clock.ts';
import { authorDomain } from '../mail/authors.ts';
import type { Logger } from '../observability/logger.ts';
import type { DkimConfig } from '../config/dkim-schema.ts';
import type { DkimKey, DkimKeyStore } from './key-store.ts';
import { toWireForm } from '../mail/wire-form.ts';
import { signatureFields, type SignatureFields } from './signature-fields.ts';
import { signingChoice } from './signing-choice.ts';
import type { SigningPool } from './signing-pool.ts';

/**
 * DKIM signing of outgoing messages with mailauth: d= is the From domain (or its configured
 * parent, or the fallback domain), one signature per key that signs for it (an RSA and an
 * Ed25519 key sign twice), relaxed/relaxed (signature-fields.ts). With a signing pool the
 * signatures are made on its worker threads; without one, or when its threads cannot (one died
 * with the message in hand), on the event loop: slower, but mail never leaves unsigned for it.
 */

/** Why a message left unsigned; the caller counts it (rookery_dkim_unsigned_total{reason}). */
export type UnsignedReason = 'no-from-domain' | 'no-key' | 'error';

export interface SignResult {
  /**
   * The message in wire form with the DKIM-Signature fields in front; unsigned, the message in wire
   * form, or as given when no domain has keys (the queue hands it over in wire form).
   */
  message: Buffer;
  /** The d= of the signatures; null when unsigned. */
  domain: string | null;
  /** The s= of each signature made. */
  selectors: string[];
}

export interface DkimSigner {
  /** Signs one message (call once per message and keep the result: every signature costs a private-key operation). */
  sign(message: Buffer): Promise<SignResult>;
}

export interface DkimSignerOptions {
  keys: Pick<DkimKeyStore, 'keysFor'>;
  config: DkimConfig;
  clock: Clock;
  logger: Logger;
  onUnsigned?: (reason: UnsignedReason) => void;
  /** Worker threads that make the signatures; absent: signed on the calling thread. */
  pool?: Pick<SigningPool, 'sign'>;
}


export function createDkimSigner(options: DkimSignerOptions): DkimSigner {
  const { keys, config, clock, onUnsigned, pool } = options;
  const log = options.logger.child({ component: 'dkim' });
  const hasDomains = Object.keys(config.domains).length > 0;

  function unsigned(message: Buffer, reason: UnsignedReason): SignResult {
    onUnsigned?.(reason);
    return { message, domain: null, selectors: [] };
  }

  /** Signed on the pool's threads, or on this thread when the pool cannot (a thread died, none is running, it is closed). */
  async function onThreads(threads: Pick<SigningPool, 'sign'>, message: Buffer, signingKeys: readonly DkimKey[], now: number): Promise<SignatureFields> {
    try {
      return await threads.sign(message, signingKeys, now, config.expiry);
    } catch (err) {
      log.warn({ event: 'dkim.sign.inline', error: (err as Error).message }, 'DKIM signing threads unavailable; signed on the event loop');
      return signatureFields(message, signingKeys, now, config.expiry);
    }
  }

  return {
    async sign(input) {
      // Nothing to sign with: the message is left as the queue made it (in wire form already), and
      // neither its line endings nor its author fields need be read.
      if (!hasDomains) return unsigned(input, 'no-key');
      const message = toWireForm(input);
      const fromDomain = authorDomain(message);
      if (!fromDomain) return unsigned(message, 'no-from-domain');
      const { domain } = signingChoice(fromDomain, config);
      const signingKeys = domain ? keys.keysFor(domain) : [];
      if (!domain || signingKeys.length === 0) return unsigned(message, 'no-key');

      try {
        const now = clock.now();
        const made = pool ? await onThreads(pool, message, signingKeys, now) : signatureFields(message, signingKeys, now, config.expiry);
        for (const { selector, error } of made.failures) {
          log.error({ event: 'dkim.sign.failed', domain, selector, error }, 'DKIM signature could not be made');
        }
        const signatures = made.fields;
        if (signatures.length === 0) return unsigned(message, 'error');
        return {
          message: Buffer.concat([Buffer.from(signatures.map((s) => `${s.field}\r\n`).join(''), 'latin1'), message]),
          domain,
          selectors: signatures.map((s) => s.selector),
        };
      } catch (err) {
        log.error({ event: 'dkim.sign.failed', domain, error: (err as Error).message }, 'DKIM signing failed; sending unsigned');
        return unsigned(message, 'error');
      }
    },
  };
}

