import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { tenantMaySend, type TenantLookup } from '../access/tenants.ts';
import { checkRecipient } from '../access/submission-policy.ts';
import { RookeryError } from '../errors.ts';
import { envelopeAddressProblem, isAscii } from '../mail/address.ts';
import type { Rejections } from './rejections.ts';
import { checkMailFrom, checkRcptTo, type RelayClient } from './relay-policy.ts';
import type { SessionRegistry, SessionState } from './session-registry.ts';
import { userOf } from './submission-auth.ts';
import type { UserDirectory } from './user-directory.ts';
import type { SuppressionCheck } from '../engine/suppression-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * MAIL FROM and RCPT TO: a UTF-8 address held to letters (see internationalAddressProblem), the relay policy (relay-policy.ts) applied to the session, the sender
 * domains of the user's tenant, recipients that need a domain, and the recipient limit
 * (src/access/submission-policy.ts, shared with the HTTP API), and under the reject action the
 * suppression list of the user's tenant (550 5.7.1 for a suppressed recipient; the others of the
 * transaction are taken; under the drop action the queue looks them up with the message). (The
 * queue checks the tenant's sender domains again for every door; here a refusal comes before the
 * message is sent.)
 */

export interface EnvelopeCheckDeps {
  /** The user directory in effect, asked at each command: a reload replaces it (SubmissionServer.replaceUsers). */
  users: () => UserDirectory;
  /** The tenants in effect (a reload replaces them). */
  tenants: TenantLookup;
  sessions: SessionRegistry;
  rejections: Rejections;
  maxRecipients: number;
  /** The server's log, for a session no longer known. */
  log: Logger;
  metrics: Metrics;
  /** The suppression list: under the reject action a suppressed recipient is refused here. */
  suppressions: Pick<SuppressionCheck, 'action' | 'isSuppressed'>;
}

export function envelopeChecks(deps: EnvelopeCheckDeps): Required<Pick<SMTPServerOptions, 'onMailFrom' | 'onRcptTo'>> {
  const { sessions, rejections } = deps;
  const relayClient = (session: SMTPServerSession, state: SessionState | undefined): RelayClient => {
    const user = userOf(deps.users(), session);
    // A session whose user a reload removed is neither a user's nor the trusted network's: refused.
    if (typeof session.user === 'string' && !user) return { allowedSenders: [], trusted: false, removed: true };
    return { allowedSenders: user ? user.allowedSenders : null, trusted: state?.trusted ?? false };
  };

  return {
    onMailFrom(address, session, callback) {
      const state = sessions.get(session.id);
      const unreadable = internationalAddressProblem(address.address);
      if (unreadable) {
        rejections.reject(state, 'BAD_ADDRESS', { sender: address.address, detail: unreadable });
        return callback(new RookeryError('BAD_ADDRESS', `Bad sender address: ${unreadable}`));
      }
      const refusal = checkMailFrom(relayClient(session, state), address.address);
      if (refusal) {
        rejections.reject(state, refusal, { sender: address.address, username: session.user });
        return callback(new RookeryError(refusal));
      }
      const tenantName = userOf(deps.users(), session)?.tenant;
      const tenant = tenantName ? deps.tenants.get(tenantName) : null;
      if (tenant && !tenantMaySend(tenant, address.address)) {
        rejections.reject(state, 'TENANT_SENDER_NOT_ALLOWED', { sender: address.address, username: session.user, tenant: tenant.name });
        return callback(new RookeryError('TENANT_SENDER_NOT_ALLOWED'));
      }
      callback();
    },

    onRcptTo(address, session, callback) {
      const state = sessions.get(session.id);
      const refusal = checkRcptTo(relayClient(session, state));
      if (refusal) {
        rejections.reject(state, refusal, { recipient: address.address });
        return callback(new RookeryError(refusal));
      }
      // smtp-server accepts a bare "postmaster"; an outbound relay has no local mailbox for it.
      const recipients = session.envelope.rcptTo;
      const unreadable = internationalAddressProblem(address.address);
      const problem = unreadable ? { code: 'BAD_ADDRESS' as const, message: `Bad recipient address: ${unreadable}` } : checkRecipient(address.address, recipients.map((r) => r.address), deps.maxRecipients);
      if (problem) {
        rejections.reject(state, problem.code, problem.code === 'BAD_ADDRESS' ? { recipient: address.address } : { recipients: recipients.length });
        return callback(new RookeryError(problem.code, problem.message));
      }
      // Under the drop action the queue looks the recipients up with the message, after DATA.
      const tenant = userOf(deps.users(), session)?.tenant ?? null;
      if (deps.suppressions.action(tenant) !== 'reject') return callback();
      deps.suppressions.isSuppressed(tenant, address.address).then(
        (suppressed) => {
          if (!suppressed) return callback();
          rejections.reject(state, 'RECIPIENT_SUPPRESSED', { recipient: address.address, ...(tenant ? { tenant } : {}) });
          deps.metrics.recipientsSuppressed.inc({ door: 'smtp', action: 'reject' });
          callback(new RookeryError('RECIPIENT_SUPPRESSED'));
        },
        (err: unknown) => {
          // The list could not be read: the client tries this recipient again later.
          rejections.count('STORAGE_FAILED');
          (state?.log ?? deps.log).error({ event: 'smtp.suppression.failed', err: (err as Error).message }, 'the suppression list could not be read');
          callback(new RookeryError('STORAGE_FAILED'));
        },
      );
    },
  };
}

/**
 * Why a non-ASCII address (the command gate let it in under SMTPUTF8) is no address Rookery
 * relays, or null. smtp-server takes any UTF-8 but controls and a few invisible characters; held
 * here to what the HTTP API takes (mail/address.ts): UTF-8 letters, marks and digits, so that no
 * space-like character (U+3000, U+2028) splits one mailbox into two for some reader further on.
 * An ASCII address keeps smtp-server's own reading (quoted local parts and all).
 */
function internationalAddressProblem(address: string): string | null {
  return address === '' || isAscii(address) ? null : envelopeAddressProblem(address);
}
