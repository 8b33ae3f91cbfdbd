import { createHash, sign } from 'node:crypto';
import type { DkimKey } from './key-store.ts';
import {
  dkimBody,
  formatSignatureHeaderLine,
  generateCanonicalizedHeader,
  getSigningHeaderLines,
  parseHeaders,
  type SigningHeaderLines,
} from '../vendor/mailauth.ts';

/**
 * The DKIM-Signature fields of one message: pure work (hashing and private-key operations) with
 * no state, so that it runs the same on the event loop and in a signing worker thread
 * (signing-worker.ts).
 *
 * mailauth's dkimSign would do, but for two things: it cannot over-sign (h= names each field
 * present once per instance, whatever its headerList repeats), and it parses the PEM private key
 * again for every signature, which throws away OpenSSL's per-key precomputation and makes an
 * RSA-2048 signature cost ~3.5 times the signing operation itself. So the steps of dkimSign are
 * taken here with mailauth's own pieces (header parsing and selection, relaxed canonicalization
 * of header and body, the DKIM-Signature format), and the signature is made with the key store's
 * parsed key. tests/integration/dkim-sign-verify.test.ts verifies the result with mailauth and
 * with python3-dkim.
 */

/** The fields that matter to the reader and to list handling; each present instance is signed. */
export const SIGNED_HEADERS: readonly string[] = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Content-ID', 'Content-Description', 'Content-Disposition',
  'Resent-Date', 'Resent-From', 'Resent-Sender', 'Resent-To', 'Resent-Cc', 'Resent-Message-ID',
  'In-Reply-To', 'References',
  'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Unsubscribe-Post', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive',
  'Feedback-ID', 'BIMI-Selector',
];

/**
 * Named in h= once more than they occur (RFC 6376 8.15), so that a copy with one of them added
 * (a second From or Subject shown instead of the signed one) fails verification.
 */
export const OVER_SIGNED_HEADERS: readonly string[] = ['From', 'To', 'Subject', 'Date', 'Message-ID', 'Reply-To', 'MIME-Version', 'Content-Type'];

/**
 * Over-signed only when the message has them: a copy with a second List-Unsubscribe (a link of
 * someone else's, shown first) fails verification, as RFC 8058 wants the fields bound to the
 * signature; mail without them (most of it) is not made to break when a mailing list adds its own.
 */
export const OVER_SIGNED_WHEN_PRESENT: readonly string[] = ['List-Unsubscribe', 'List-Unsubscribe-Post'];

const SIGNED_HEADER_LIST = SIGNED_HEADERS.join(':');
const CANONICALIZATION = 'relaxed/relaxed';
const HEADER_END = Buffer.from('\r\n\r\n');

/** What a signature needs of a key (a KeyObject crosses to a worker thread as a clone of the same key). */
export type SigningKey = Pick<DkimKey, 'domain' | 'selector' | 'algorithm' | 'privateKey'>;

export interface SignatureFields {
  /** One field (without its CRLF) per key that signed, in key order. */
  fields: { selector: string; field: string }[];
  /** The keys whose signature failed, with the reason. */
  failures: { selector: string; error: string }[];
}

/**
 * One DKIM-Signature field per key: relaxed/relaxed, SHA-256, t= `now`, x= `now + expiry` when
 * set. The body is hashed once for all of them. `message` is in wire form.
 */
export function signatureFields(message: Uint8Array, keys: readonly SigningKey[], now: number, expiry: number | null): SignatureFields {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const end = bytes.indexOf(HEADER_END);
  const header = end < 0 ? bytes : bytes.subarray(0, end + 2);
  const bodyHasher = dkimBody(CANONICALIZATION, 'sha256', false);
  if (end >= 0) bodyHasher.update(bytes.subarray(end + 4));
  const bodyHash = bodyHasher.digest('base64');

  // Every instance of the signed fields, bottom-up, then the over-signed names once more: for
  // these a verifier finds no instance left and hashes nothing (RFC 6376 5.4.2).
  const selected = getSigningHeaderLines(parseHeaders(header).parsed, SIGNED_HEADER_LIST);
  const present = OVER_SIGNED_WHEN_PRESENT.filter((name) => selected.headers.some((field) => field.key === name.toLowerCase()));
  const lines: SigningHeaderLines = { keys: [selected.keys, ...OVER_SIGNED_HEADERS, ...present].join(': '), headers: selected.headers };

  const timestamp = Math.floor(now / 1000);
  const expiration = expiry === null ? false : Math.floor((now + expiry) / 1000);
  const result: SignatureFields = { fields: [], failures: [] };
  for (const key of keys) {
    try {
      const { canonicalizedHeader, dkimHeaderOpts } = generateCanonicalizedHeader('DKIM', lines, {
        signingDomain: key.domain,
        selector: key.selector,
        algorithm: key.algorithm,
        canonicalization: CANONICALIZATION,
        bodyHash,
        timestamp,
        expiration,
      });
      // RFC 8463: Ed25519 signs the SHA-256 hash of the header data; RSA hashes as part of signing.
      const signature =
        key.algorithm === 'rsa-sha256'
          ? sign('sha256', canonicalizedHeader, key.privateKey)
          : sign(null, createHash('sha256').update(canonicalizedHeader).digest(), key.privateKey);
      dkimHeaderOpts.b = signature.toString('base64');
      result.fields.push({ selector: key.selector, field: formatSignatureHeaderLine('DKIM', dkimHeaderOpts, true) });
    } catch (err) {
      result.failures.push({ selector: key.selector, error: (err as Error).message });
    }
  }
  return result;
}
