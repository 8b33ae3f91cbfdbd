import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Clock } from '../clock.ts';
import type { Accepted, Submission } from '../engine/queue.ts';
import { RookeryError } from '../errors.ts';
import { headerValue, splitHeader } from '../mail/message-headers.ts';
import type { Logger } from '../observability/logger.ts';
import { addressparser } from '../vendor/nodemailer.ts';
import { collectMessage } from './message-collector.ts';
import { receivedField } from './received-header.ts';
import { logSafe, type Rejections } from './rejections.ts';
import { senderAllowed } from './relay-policy.ts';
import type { SessionRegistry, SessionState } from './session-registry.ts';
import { userOf } from './submission-auth.ts';
import type { UserDirectory } from './user-directory.ts';

/**
 * DATA: the message is collected (size limit, CRLF line endings only), an authenticated user's
 * From and Sender header addresses are held to allowedSenders, the Received field is made, and
 * the message is committed to the queue. The 250 reply, carrying the queue id, goes out only
 * after the commit.
 */

export interface DataAcceptanceDeps {
  queue: { submit(submission: Submission): Promise<Accepted> };
  users: UserDirectory;
  sessions: SessionRegistry;
  rejections: Rejections;
  clock: Clock;
  /** The server's log, for a message whose session is no longer known. */
  log: Logger;
  maxMessageBytes: number;
  /** This node's name, in the Received field. */
  hostname: string;
}

/** smtp-server's onData. */
export function dataAcceptance(deps: DataAcceptanceDeps): NonNullable<SMTPServerOptions['onData']> {
  return (stream, session, callback) => {
    const state = deps.sessions.get(session.id);
    receive(deps, stream, session, state)
      .then(
        (text) => callback(null, text),
        (err: Error) => callback(err),
      )
      .finally(() => deps.sessions.endCommit(state));
  };
}

/** Reads the message and queues it; resolves with the reply text, rejects with the refusal. */
async function receive(deps: DataAcceptanceDeps, stream: SMTPServerDataStream, session: SMTPServerSession, state: SessionState | undefined): Promise<string> {
  const { rejections } = deps;
  const envelope = session.envelope;
  const log = state?.log ?? deps.log;
  let collected;
  try {
    collected = await collectMessage(stream, deps.maxMessageBytes);
  } catch (err) {
    // The client went away (or was cut off) in the middle of the message; nothing was queued.
    log.info({ event: 'smtp.message.aborted', err: (err as Error).message }, 'message transfer aborted');
    throw err;
  }
  if (!collected.ok) {
    rejections.reject(state, collected.reason, { bytes: collected.bytes });
    throw new RookeryError(collected.reason);
  }
  // The From (and Sender) header is what recipients see and what DKIM signs for: an
  // authenticated user is held to allowedSenders there too, not only in MAIL FROM.
  const user = userOf(deps.users, session);
  if (user) {
    const { header } = splitHeader(collected.body);
    const authors = ['From', 'Sender'].flatMap((name) => addressesIn(headerValue(header, name)));
    const foreign = authors.find((address) => !senderAllowed(user.allowedSenders, address));
    if (foreign !== undefined) {
      rejections.reject(state, 'SENDER_NOT_ALLOWED', { header: logSafe(foreign), username: user.username });
      throw new RookeryError('SENDER_NOT_ALLOWED', 'From or Sender header address not allowed for this user');
    }
  }
  const submission: Submission = {
    sender: envelope.mailFrom ? envelope.mailFrom.address : '',
    recipients: envelope.rcptTo.map((r) => r.address),
    body: collected.body,
    submitter: typeof session.user === 'string' ? session.user : null,
    source: 'smtp',
    clientAddress: session.remoteAddress,
    received: receivedField({
      helo: session.hostNameAppearsAs || '',
      reverseName: session.clientHostname && session.clientHostname !== `[${session.remoteAddress}]` ? session.clientHostname : null,
      clientIp: session.remoteAddress,
      hostname: deps.hostname,
      protocol: session.transmissionType,
      id: session.id,
      at: deps.clock.now(),
    }),
  };
  deps.sessions.beginCommit(state);
  let accepted: Accepted;
  try {
    accepted = await deps.queue.submit(submission);
  } catch (err) {
    rejections.count('STORAGE_FAILED');
    log.error({ event: 'smtp.commit.failed', err: (err as Error).message, recipients: submission.recipients.length }, 'message could not be queued');
    throw new RookeryError('STORAGE_FAILED');
  }
  if (state) state.messages++;
  log.info(
    {
      event: 'smtp.message.accepted',
      messageId: accepted.id,
      messageIdHeader: accepted.messageIdHeader,
      sender: submission.sender,
      submitter: submission.submitter,
      recipients: submission.recipients.length,
      size: submission.body.length,
      pool: accepted.pool.pool,
    },
    'message queued',
  );
  if (accepted.pool.refusedHeader !== null) {
    log.warn(
      { event: 'smtp.pool.refused', messageId: accepted.id, requested: logSafe(accepted.pool.refusedHeader), submitter: submission.submitter, pool: accepted.pool.pool },
      'X-Rookery-Pool names a pool this client may not use; ignored',
    );
  }
  return `2.0.0 Ok: queued as ${accepted.id}`;
}

/** The addresses of an address header (groups flattened); none for an absent header. */
function addressesIn(value: string | null): string[] {
  if (!value) return [];
  const flatten = (list: ReturnType<typeof addressparser>): string[] =>
    list.flatMap((entry) => ('group' in entry && entry.group ? flatten(entry.group) : [entry.address ?? '']));
  return flatten(addressparser(value));
}
