import type net from 'node:net';
import tls from 'node:tls';
import type { TlsFailureType } from './tls-rpt-report.ts';

/**
 * What the TLS of an outbound session achieved: the protocol and cipher, and whether the
 * certificate is valid for the MX host name (a chain to a trusted root, in date, the name in it).
 * Every session is checked, whatever its policy needs: the result goes on the delivery event and
 * into TLS-RPT counts, and a policy that needs it (verify, MTA-STS enforce) refuses the session.
 */

/** As recorded on a delivery event (DeliveryOutcome.tls). */
export interface TlsSessionInfo {
  version: string;
  cipher: string;
  /** The certificate is valid for the MX host name. */
  verified: boolean;
}

export interface TlsSession extends TlsSessionInfo {
  /** Why it did not verify, as TLS-RPT names it; null when verified. */
  failure: TlsFailureType | null;
  /** The library's words for it; null when verified. */
  error: string | null;
}

/** OpenSSL's verify errors that mean no trusted chain (rather than a broken or odd certificate). */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The session on `socket` (the TLS socket after STARTTLS), checked against `hostName`; null when it is not TLS. */
export function inspectTlsSocket(socket: net.Socket | null, hostName: string): TlsSession | null {
  if (!(socket instanceof tls.TLSSocket) || !socket.encrypted) return null;
  const version = socket.getProtocol() ?? 'unknown';
  const cipher = socket.getCipher()?.standardName ?? socket.getCipher()?.name ?? 'unknown';
  const base = { version, cipher };
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'not authorized');
    // Given a servername, Node checks the name too: a chain that verifies under another name fails as ERR_TLS_CERT_ALTNAME_INVALID.
    const failure =
      reason === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'certificate-host-mismatch' : EXPIRED.has(reason) ? 'certificate-expired' : UNTRUSTED.has(reason) ? 'certificate-not-trusted' : 'validation-failure';
    return { ...base, verified: false, failure, error: reason };
  }
  const mismatch = tls.checkServerIdentity(hostName.replace(/\.$/, ''), socket.getPeerCertificate());
  if (mismatch) return { ...base, verified: false, failure: 'certificate-host-mismatch', error: mismatch.message };
  return { ...base, verified: true, failure: null, error: null };
}

/** The fields a delivery event keeps. */
export function sessionInfo(session: TlsSession | null): TlsSessionInfo | null {
  return session ? { version: session.version, cipher: session.cipher, verified: session.verified } : null;
}
