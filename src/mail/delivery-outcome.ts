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
  /** The recipient domain's TLS policy (delivery.tls, delivery.tlsPolicies, MTA-STS) was not met: never sent in clear. */
  | 'tls-policy'
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
  /** The TLS of the session that carried (or refused) the mail; absent or null when no session was reached. */
  tls?: OutcomeTls | null;
}

/** The TLS policy a delivery was held to: a mode of delivery.tls, or the domain's MTA-STS policy (enforce, testing). */
export type TlsPolicyName = 'opportunistic' | 'required' | 'verify' | 'mta-sts' | 'mta-sts-testing';

/** What TLS a session had, recorded on the delivery event. */
export interface OutcomeTls {
  policy: TlsPolicyName;
  /** Protocol, e.g. "TLSv1.3"; null when the session was in clear. */
  version: string | null;
  /** The cipher suite's standard name; null in clear. */
  cipher: string | null;
  /** The certificate was valid for the MX host name. */
  verified: boolean;
  /** Why the policy was not met (TLS-RPT's result type); null when it was. */
  failure: string | null;
}
