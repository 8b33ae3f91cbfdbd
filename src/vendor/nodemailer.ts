import type net from 'node:net';
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer, { type MailComposerOptions } from 'nodemailer/lib/mail-composer';
import { detectMimeType } from 'nodemailer/lib/mime-funcs';
import MimeNode from 'nodemailer/lib/mime-node';
import SMTPConnection, { type SMTPConnectionEnvelope, type SMTPConnectionSendInfo, type SMTPError } from 'nodemailer/lib/smtp-connection';
import { dotStuffingTransform } from './nodemailer-data-stream.ts';

/**
 * What Rookery takes from nodemailer below its transport API: the SMTP client connection
 * (nodemailer/lib/smtp-connection), the address parser, the MIME builder and the message composer
 * (nodemailer/lib/mail-composer: what the HTTP API builds a message from JSON with, and the
 * content type it gives an attachment by its filename), and two members of
 * the connection that are not public: its socket (_socket, for per-phase timeouts and the
 * liveness test), its envelope state (_envelope, which lists the recipients refused at RCPT TO
 * when the transaction fails later), the flags its declarations mark @private (destroyed,
 * secure, upgrading), the extensions the server announced (_supportedExtensions) and the
 * command writer (_sendCommand, to ask for SMTPUTF8 on MAIL FROM for a message whose headers
 * alone are UTF-8). tests/unit/vendor-contract.test.ts checks each of them.
 *
 * It also replaces the _transform of the connection's DATA writer (smtp-connection/data-stream.js,
 * which the package does not export, so it is reached by its file's URL beside the connection's)
 * with one of the same output that skips from line end to line end: the library's loop over
 * every byte of every message was a twentieth of the event loop's time when delivering.
 */

/** nodemailer's DataStream class, as its connection module imports it (the same module instance). */
export const DataStream: { prototype: { _transform: unknown } } = (
  await import(new URL('./data-stream.js', import.meta.resolve('nodemailer/lib/smtp-connection')).href)
).default;
DataStream.prototype._transform = dotStuffingTransform;

export { addressparser, detectMimeType, MailComposer, MimeNode, SMTPConnection };
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

/** The ESMTP extensions the server announced in its EHLO reply, as nodemailer recognized them (upper case). */
export function serverExtensions(connection: SMTPConnection): readonly string[] {
  return (connection as unknown as { _supportedExtensions?: string[] })._supportedExtensions ?? [];
}

/**
 * Makes the next MAIL FROM the connection writes carry the SMTPUTF8 parameter. nodemailer adds it
 * by itself only when an envelope address is not ASCII (and the server offers it); RFC 6531 3.4
 * asks for it for UTF-8 header fields too. The caller has checked that the server offers it.
 * Returns the undo, for a transaction that ended before it wrote MAIL FROM.
 */
export function askSmtpUtf8OnNextMail(connection: SMTPConnection): () => void {
  const internals = connection as unknown as { _sendCommand: (command: string, logged?: string) => void };
  const write = internals._sendCommand;
  const undo = () => {
    // The prototype's writer serves every later command again.
    if (internals._sendCommand === asking) delete (internals as Partial<typeof internals>)._sendCommand;
  };
  const asking = function (this: unknown, command: string, logged?: string) {
    if (!/^MAIL FROM:/i.test(command)) return write.call(this, command, logged);
    undo();
    return write.call(this, / SMTPUTF8(?: |$)/i.test(command) ? command : `${command} SMTPUTF8`, logged);
  };
  internals._sendCommand = asking;
  return undo;
}
