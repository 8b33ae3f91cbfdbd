import type { Egress } from '../../ippool/egress.ts';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { OpenFailure } from '../outbound-connection.ts';
import type { NextHop } from '../routing.ts';
import type { TlsFailureType } from './tls-rpt-report.ts';
import type { TlsSessionRecorder } from './tls-session-counter.ts';
import type { TlsSession } from './tls-session.ts';
import { judgeSession, mxAllowed, outcomeTls, policyName, tlsRefusedOutcome, type TlsRequirement } from './tls-requirement.ts';

/**
 * Where the deliverer (smtp-deliverer.ts) applies a delivery's TLS requirement: the MX hosts an
 * enforced MTA-STS policy allows, a failed handshake where clear text is not allowed, and each new
 * session's TLS; each new session is counted (metrics, TLS-RPT) as it is judged.
 */

export interface TlsGate {
  /** The hops the requirement allows; `refused` (every one counted as a failed session) when none. */
  admitHops(tls: TlsRequirement, hops: NextHop[], egress: Egress): { hops: NextHop[]; refused: DeliveryOutcome | null };
  /** A failed TLS handshake where the requirement allows no clear text: its refusal, counted; else null (an ordinary setup failure). */
  handshakeRefused(tls: TlsRequirement, failure: OpenFailure, hop: NextHop, egress: Egress): DeliveryOutcome | null;
  /** Counts a new session and judges it: the refusal when the requirement refuses it, else null. */
  admitSession(tls: TlsRequirement, session: TlsSession | null, hop: NextHop, egress: Egress): DeliveryOutcome | null;
}

export function createTlsGate(deps: { metrics: Pick<Metrics, 'outboundTlsSessions'>; sessions?: TlsSessionRecorder | undefined }): TlsGate {
  function count(tls: TlsRequirement, result: 'success' | TlsFailureType, hop: NextHop, egress: Egress): void {
    // A published policy that could not be had is what each of its sessions reports.
    const counted = tls.policyFailure ?? result;
    deps.metrics.outboundTlsSessions.inc({ policy: policyName(tls), result: counted });
    if (tls.reports.length === 0 || !deps.sessions) return;
    const failed = counted !== 'success';
    deps.sessions.record({
      policies: tls.reports,
      result: counted,
      sendingIp: failed ? (egress.address ?? '') : '',
      receivingIp: failed ? hop.host : '',
      receivingMx: failed ? hop.name : '',
    });
  }

  return {
    admitHops(tls, hops, egress) {
      const allowed = hops.filter((hop) => mxAllowed(tls, hop.name));
      if (allowed.length > 0) return { hops: allowed, refused: null };
      const names = [...new Set(hops.map((h) => h.name))];
      for (const name of names) count(tls, 'validation-failure', hops.find((h) => h.name === name)!, egress);
      const reason = `no MX host (${names.join(', ')}) is listed by the MTA-STS policy of ${tls.sts?.domain} (mx: ${tls.sts?.mx.join(', ')})`;
      return { hops: [], refused: tlsRefusedOutcome(tls, reason, null, egress.address, outcomeTls(tls, null, 'validation-failure')) };
    },

    handshakeRefused(tls, failure, hop, egress) {
      if (failure.stage !== 'starttls' || tls.mode === 'opportunistic') return null;
      count(tls, 'validation-failure', hop, egress);
      const reason = `the TLS handshake with ${hop.name} failed (${(failure.error as Error)?.message ?? String(failure.error)})`;
      return tlsRefusedOutcome(tls, reason, hop.name, egress.address, outcomeTls(tls, null, 'validation-failure'));
    },

    admitSession(tls, session, hop, egress) {
      const verdict = judgeSession(tls, session, hop.name);
      count(tls, verdict.result, hop, egress);
      if (verdict.refusal === null) return null;
      const failure = verdict.result === 'success' ? 'validation-failure' : verdict.result;
      return tlsRefusedOutcome(tls, verdict.refusal, hop.name, egress.address, outcomeTls(tls, session, failure));
    },
  };
}
