import type { SMTPServerSession } from 'smtp-server';
import { ERRORS, SMTP_REPLIES, smtpReplyText, type SmtpReplySpec } from '../errors.ts';
import type { GateReply, SessionGuard } from '../vendor/smtp-server.ts';
import type { AuthLockout } from './auth-lockout.ts';
import type { BufferBudget } from '../engine/buffer-budget.ts';
import { clientKeyOf } from './client-key.ts';
import { authAvailable, type AuthOffer } from './listener-policy.ts';
import type { Rejections } from './rejections.ts';
import type { SessionRegistry } from './session-registry.ts';
import { utf8EnvelopeRefusal } from './utf8-envelope.ts';

/**
 * What every command line passes before smtp-server handles it: no command once the server is
 * stopping, the command length limit, no control characters in MAIL and RCPT, UTF-8 in them only
 * under SMTPUTF8 (utf8-envelope.ts), no new transaction while little disk space is left, no new
 * DATA while the message buffers are full, and whether AUTH may be used now (offered on this
 * listener, not inside a transaction, client not locked out). No smtp-server hook runs per
 * command. Also the admission of each connection as it is accepted (session-registry.ts), and the
 * replies to a client that talks before its greeting and to one whose next command is late.
 */

export interface CommandGateDeps {
  maxCommandBytes: number;
  lockout: AuthLockout;
  sessions: SessionRegistry;
  rejections: Rejections;
  buffers: BufferBudget;
  /** Little disk space is left beside the queue (storage-space.ts): no new transaction starts. */
  storageLow: () => boolean;
  isStopping: () => boolean;
  /** The listener offers SMTPUTF8 (RFC 6531): UTF-8 addresses are taken in transactions that ask for it. */
  smtpUtf8: boolean;
}

/** C0 controls (CR, LF, NUL, TAB, ...) and DEL. */
const CONTROL = /[\x00-\x1f\x7f]/;

/** The guard of a listener that offers AUTH as `offer` says. */
export function sessionGuard(deps: CommandGateDeps, offer: AuthOffer): SessionGuard {
  const { lockout, sessions, rejections } = deps;
  return {
    admit: (remoteAddress) => sessions.admit(remoteAddress),

    command(line: Buffer, session: SMTPServerSession, inAuthExchange: boolean): GateReply | null {
      if (deps.isStopping()) return reply(ERRORS.SHUTTING_DOWN);
      const state = sessions.get(session.id);
      // RFC 5321 counts the CRLF in the line length.
      if (line.length + 2 > deps.maxCommandBytes) {
        rejections.reject(state, 'COMMAND_TOO_LONG', { bytes: line.length });
        return reply(SMTP_REPLIES.COMMAND_TOO_LONG);
      }
      if (inAuthExchange) return null;
      const text = line.toString('latin1');
      const verb = /^[a-z]{4}(?=\s|$|:)/i.exec(text)?.[0].toUpperCase();
      // The envelope ends up in logs, the queue and bounces: a CR or other control byte has no place there.
      if ((verb === 'MAIL' || verb === 'RCPT') && CONTROL.test(text)) {
        rejections.reject(state, 'CONTROL_CHARACTER', { command: verb });
        return reply(SMTP_REPLIES.CONTROL_CHARACTER);
      }
      const utf8 = verb === 'MAIL' || verb === 'RCPT' ? utf8EnvelopeRefusal(verb, line, session, deps.smtpUtf8) : null;
      if (utf8) {
        rejections.reject(state, utf8, { command: verb });
        return reply(SMTP_REPLIES[utf8]);
      }
      if (verb === 'MAIL' && deps.storageLow()) {
        rejections.reject(state, 'STORAGE_LOW', {});
        return reply(ERRORS.STORAGE_LOW);
      }
      if (verb === 'DATA' && session.envelope.rcptTo.length > 0 && deps.buffers.exhausted) {
        rejections.reject(state, 'BUFFERS_FULL', { buffered: deps.buffers.used });
        return reply(ERRORS.BUFFERS_FULL);
      }
      if (verb === 'AUTH') {
        if (!authAvailable(offer, session.secure)) {
          rejections.reject(state, 'AUTH_NOT_AVAILABLE', {});
          return reply(offer === 'after-starttls' ? SMTP_REPLIES.STARTTLS_REQUIRED : SMTP_REPLIES.AUTH_NOT_ENABLED);
        }
        // RFC 4954 4: no AUTH inside a transaction, or MAIL FROM would escape the user's allowedSenders.
        if (session.envelope.mailFrom) {
          rejections.reject(state, 'AUTH_NOT_AVAILABLE', { inTransaction: true });
          return reply(SMTP_REPLIES.AUTH_IN_TRANSACTION);
        }
        if (lockout.isLocked(clientKeyOf(session.remoteAddress))) {
          rejections.reject(state, 'AUTH_LOCKED', {});
          return reply(ERRORS.AUTH_LOCKED);
        }
      }
      return null;
    },

    earlyTalker(remoteAddress: string): GateReply {
      rejections.reject(undefined, 'EARLY_TALKER', { ip: remoteAddress });
      return reply(SMTP_REPLIES.EARLY_TALKER);
    },

    commandTimeout(session: SMTPServerSession): GateReply {
      rejections.reject(sessions.get(session.id), 'COMMAND_TIMEOUT', {});
      return reply(SMTP_REPLIES.COMMAND_TIMEOUT);
    },
  };
}

function reply(spec: SmtpReplySpec): GateReply {
  return { code: spec.smtp, text: smtpReplyText(spec) };
}
