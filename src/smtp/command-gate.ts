import type { SMTPServerSession } from 'smtp-server';
import { ERRORS, SMTP_REPLIES, smtpReplyText, type SmtpReplySpec } from '../errors.ts';
import type { CommandGate, GateReply } from '../vendor/smtp-server.ts';
import type { AuthLockout } from './auth-lockout.ts';
import { authAvailable, type AuthOffer } from './listener-policy.ts';
import type { Rejections } from './rejections.ts';
import type { SessionRegistry } from './session-registry.ts';

/**
 * What every command line passes before smtp-server handles it: no command once the server is
 * stopping, the command length limit, and whether AUTH may be used now (offered on this listener,
 * not inside a transaction, client address not locked out). No smtp-server hook runs per command.
 */

export interface CommandGateDeps {
  maxCommandBytes: number;
  lockout: AuthLockout;
  sessions: SessionRegistry;
  rejections: Rejections;
  isStopping: () => boolean;
}

/** The gate of a listener that offers AUTH as `offer` says. */
export function commandGate(deps: CommandGateDeps, offer: AuthOffer): CommandGate {
  const { lockout, sessions, rejections } = deps;
  return (line: Buffer, session: SMTPServerSession, inAuthExchange: boolean): GateReply | null => {
    if (deps.isStopping()) return reply(ERRORS.SHUTTING_DOWN);
    const state = sessions.get(session.id);
    // RFC 5321 counts the CRLF in the line length.
    if (line.length + 2 > deps.maxCommandBytes) {
      rejections.reject(state, 'COMMAND_TOO_LONG', { bytes: line.length });
      return reply(SMTP_REPLIES.COMMAND_TOO_LONG);
    }
    if (!inAuthExchange && /^auth(?:\s|$)/i.test(line.subarray(0, 5).toString('latin1'))) {
      if (!authAvailable(offer, session.secure)) {
        rejections.reject(state, 'AUTH_NOT_AVAILABLE', {});
        return reply(offer === 'after-starttls' ? SMTP_REPLIES.STARTTLS_REQUIRED : SMTP_REPLIES.AUTH_NOT_ENABLED);
      }
      // RFC 4954 4: no AUTH inside a transaction, or MAIL FROM would escape the user's allowedSenders.
      if (session.envelope.mailFrom) {
        rejections.reject(state, 'AUTH_NOT_AVAILABLE', { inTransaction: true });
        return reply(SMTP_REPLIES.AUTH_IN_TRANSACTION);
      }
      if (lockout.isLocked(session.remoteAddress)) {
        rejections.reject(state, 'AUTH_LOCKED', {});
        return reply(ERRORS.AUTH_LOCKED);
      }
    }
    return null;
  };
}

function reply(spec: SmtpReplySpec): GateReply {
  return { code: spec.smtp, text: smtpReplyText(spec) };
}
