import type net from 'node:net';
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer, { type MailComposerOptions } from 'nodemailer/lib/mail-composer';
import MimeNode from 'nodemailer/lib/mime-node';
import SMTPConnection, { type SMTPConnectionEnvelope, type SMTPConnectionSendInfo, type SMTPError } from 'nodemailer/lib/smtp-connection';

/**
 * What Rookery takes from nodemailer below its transport API: the SMTP client connection
 * (nodemailer/lib/smtp-connection), the address parser, the MIME builder and the message composer
 * (nodemailer/lib/mail-composer: what the HTTP API builds a message from JSON with), and two members of
 * the connection that are not public: its socket (_socket, for per-phase timeouts and the
 * liveness test), its envelope state (_envelope, which lists the recipients refused at RCPT TO
 * when the transaction fails later), and the flags its declarations mark @private (destroyed,
 * secure, upgrading). tests/unit/vendor-contract.test.ts checks each of them.
 */

export { addressparser, MailComposer, MimeNode, SMTPConnection };
export type { MailComposerOptions, SMTPConnectionSendInfo, SMTPError };

/** The connection's TCP (or TLS) socket; null before connect and after close. */
export function socketOf(connection: SMTPConnection): net.Socket | null {
  return connection._socket || null;
}

/**
 * The errors of the recipients the server refused at RCPT TO in the current transaction, read
 * from the connection's envelope state: a transaction that fails after RCPT (at DATA, or at the
 * final dot) reports only its own error, not these.
 */
export function refusedRecipientErrors(connection: SMTPConnection): SMTPError[] {
  const envelope = (connection as unknown as { _envelope?: Pick<SMTPConnectionEnvelope, 'rejectedErrors'> | false })._envelope;
  return envelope && envelope.rejectedErrors ? envelope.rejectedErrors : [];
}

/** The connection's own flags: closed for good, running over TLS, in the middle of STARTTLS. */
export function connectionFlags(connection: SMTPConnection): { destroyed: boolean; secure: boolean; upgrading: boolean } {
  return { destroyed: connection.destroyed, secure: connection.secure, upgrading: !!connection.upgrading };
}
