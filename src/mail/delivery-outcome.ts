/**
 * The one type for the result of a delivery attempt for one recipient. Storage events,
 * metrics, retries, DSNs (and later reputation and webhooks) all read this.
 */
export type Disposition = 'delivered' | 'transient' | 'permanent' | 'throttled';

/** Where in the SMTP conversation the result was decided. */
export type DeliveryStage =
  | 'queue' // decided before any connection (expiry, no route)
  | 'dns'
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'dot';

/** Why a recipient failed, independent of the remote's wording (used by DSNs and reputation). */
export type BounceClass =
  | 'none'
  | 'unknown-user'
  | 'mailbox-full'
  | 'message-rejected'
  | 'policy'
  | 'spam'
  | 'rate-limited'
  | 'dns'
  | 'no-mail-domain'
  | 'connection'
  /** The egress IP is not configured on this host (EADDRNOTAVAIL): the pool suspends it. */
  | 'egress-unavailable'
  | 'protocol'
  | 'expired'
  /** An operator cancelled it (POST /v1/queue/bounce, DELETE /v1/messages/{id}): never attempted again. */
  | 'cancelled'
  /** The recipient was on the suppression list at acceptance (the drop action): never attempted. */
  | 'suppressed'
  | 'other';

export interface DeliveryOutcome {
  disposition: Disposition;
  /** SMTP basic reply code; null when no reply was received (connection or DNS failure). */
  code: number | null;
  /** Enhanced status code (RFC 3463), e.g. "5.1.1"; derived from the basic code when the remote gave none. */
  enhanced: string | null;
  /** The remote reply text, or a description of the local error. */
  response: string;
  stage: DeliveryStage;
  bounceClass: BounceClass;
  /** The MX / next-hop host that answered (or failed), null when none was reached. */
  remoteHost: string | null;
  /** The egress IP the attempt used; null for the OS default source address. */
  egressIp: string | null;
}
