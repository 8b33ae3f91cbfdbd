import type { DeliveryOutcome, OutcomeTls, TlsPolicyName } from '../../mail/delivery-outcome.ts';
import { mxMatches } from './mta-sts-policy.ts';
import type { TlsFailureType, TlsReportPolicy } from './tls-rpt-report.ts';
import type { TlsSession } from './tls-session.ts';

/**
 * What a delivery's connections must achieve in TLS, and the pure checks of a session against it:
 * the configured mode of the recipient domain (delivery.tls, delivery.tlsPolicies) joined with its
 * MTA-STS policy (RFC 8461). A policy not met defers the recipients (4.7.x, bounce class
 * tls-policy); mail is never sent in clear, nor to an MX an enforced policy does not list.
 */

/** opportunistic: TLS when offered, else clear. required: STARTTLS must succeed, any certificate. verify: and the certificate must be valid for the MX name. */
export type TlsMode = 'opportunistic' | 'required' | 'verify';

/** An MTA-STS policy in force for a recipient domain (mode none is no policy). */
export interface StsInForce {
  domain: string;
  id: string;
  mode: 'enforce' | 'testing';
  mx: string[];
  lines: string[];
}

export interface TlsRequirement {
  mode: TlsMode;
  sts: StsInForce | null;
  /** TLS-RPT: the policies (one per recipient domain of the job) each session of the delivery counts for. */
  reports: TlsReportPolicy[];
  /** The domain publishes an MTA-STS policy that could not be fetched or parsed: every session reports this. */
  policyFailure?: TlsFailureType;
}

export const OPPORTUNISTIC: TlsRequirement = Object.freeze({ mode: 'opportunistic', sts: null, reports: [] });

/** The mode an MTA-STS policy in enforce mode asks: a certificate valid for the MX name. */
export function joinSts(mode: TlsMode, sts: StsInForce | null): TlsMode {
  return sts?.mode === 'enforce' ? 'verify' : mode;
}

/** Jobs share connections only under the same requirement: the key that says so. */
export function requirementKey(requirement: TlsRequirement): string {
  const reported = requirement.policyFailure ? requirement.reports.map((r) => r.domain).join(',') : '';
  return [requirement.mode, requirement.sts?.domain ?? '', requirement.sts?.id ?? '', requirement.sts?.mode ?? '', reported].join('\n');
}

/** The name the outcome and event carry for the policy that applied. */
export function policyName(requirement: TlsRequirement): TlsPolicyName {
  if (requirement.sts) return requirement.sts.mode === 'enforce' ? 'mta-sts' : 'mta-sts-testing';
  return requirement.mode;
}

/** Whether the policy lets mail go to this MX host (an enforced MTA-STS policy lists the MX hosts it allows). */
export function mxAllowed(requirement: TlsRequirement, mxName: string): boolean {
  return requirement.sts?.mode !== 'enforce' || mxMatches(requirement.sts.mx, mxName);
}

export interface SessionVerdict {
  /** The TLS-RPT result of the session. */
  result: 'success' | TlsFailureType;
  /** Why the session may not carry the mail; null when it may. */
  refusal: string | null;
}

/**
 * Judges an established session (null: no TLS) to `mxName`. The TLS-RPT result counts what a
 * policy would have wanted even when it only tests (MTA-STS testing) or asks nothing; the refusal
 * is only for what the requirement demands.
 */
export function judgeSession(requirement: TlsRequirement, session: TlsSession | null, mxName: string): SessionVerdict {
  const noTls = `${mxName} did not offer STARTTLS`;
  const badCertificate = session && !session.verified ? `the certificate of ${mxName} is not valid for it (${session.error ?? 'not verified'})` : null;
  const refusal =
    requirement.mode === 'opportunistic' ? null : !session ? noTls : requirement.mode === 'verify' ? badCertificate : null;
  // An enforced policy's MX list is applied before connecting (mxAllowed); testing only counts it.
  if (requirement.sts && !mxMatches(requirement.sts.mx, mxName)) return { result: 'validation-failure', refusal };
  if (!session) return { result: 'starttls-not-supported', refusal };
  const wantsCertificate = requirement.sts !== null || requirement.mode === 'verify';
  if (wantsCertificate && !session.verified) return { result: session.failure ?? 'validation-failure', refusal };
  return { result: 'success', refusal };
}

/** The TLS fields of an outcome for a session that carried (or was refused) mail. */
export function outcomeTls(requirement: TlsRequirement, session: TlsSession | null, failure: TlsFailureType | null): OutcomeTls {
  return {
    policy: policyName(requirement),
    version: session?.version ?? null,
    cipher: session?.cipher ?? null,
    verified: session?.verified ?? false,
    failure,
  };
}

/**
 * The outcome of a delivery its TLS policy refused: a transient failure (the MX may fix its
 * certificate, the policy may change), never a send in clear. 4.7.10 (RFC 7372, encryption
 * needed) when there was no TLS, else 4.7.5 (cryptographic failure).
 */
export function tlsRefusedOutcome(requirement: TlsRequirement, reason: string, remoteHost: string | null, egressIp: string | null, tls: OutcomeTls): DeliveryOutcome {
  const label = policyName(requirement);
  return {
    disposition: 'transient',
    code: null,
    enhanced: tls.failure === 'starttls-not-supported' ? '4.7.10' : '4.7.5',
    response: `TLS policy ${label} not met: ${reason}`,
    stage: 'starttls',
    bounceClass: 'tls-policy',
    remoteHost,
    egressIp,
    tls,
  };
}
