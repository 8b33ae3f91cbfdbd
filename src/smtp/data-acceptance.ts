import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Clock } from '../clock.ts';
import { checkHeaderBlock } from '../access/submission-policy.ts';
import type { Accepted, Submission } from '../engine/queue.ts';
import { RookeryError, SMTP_REPLIES, smtpReplyText } from '../errors.ts';
import { splitHeader } from '../mail/message-headers.ts';
import type { Logger } from '../observability/logger.ts';
import type { BufferBudget } from '../engine/buffer-budget.ts';
import { watchSessionDataRate } from './data-rate.ts';
import { collectMessage } from './message-collector.ts';
import { receivedField } from './received-header.ts';
import { logSafe, type Rejections } from './rejections.ts';
import type { SessionRegistry, SessionState } from './session-registry.ts';
import { userOf } from './submission-auth.ts';
import type { UserDirectory } from './user-directory.ts';

/**
 * DATA: the message is collected (size limit, CRLF line endings only, within the shared buffer
 * budget, at the minimum data rate), its header block is held to MAX_HEADER_BYTES and its author
 * fields are checked (src/access/submission-policy.ts, as the HTTP API checks them), the Received field is made, and the message is
 * committed to the queue. The 250 reply, carrying the queue id, goes out only after the commit.
 */

export interface DataAcceptanceDeps {
  queue: { submit(submission: Submission): Promise<Accepted> };
  /** The user directory in effect, asked at each command: a reload replaces it (SubmissionServer.replaceUsers). */
  users: () => UserDirectory;
  sessions: SessionRegistry;
  rejections: Rejections;
  clock: Clock;
  /** The server's log, for a message whose session is no longer known. */
  log: Logger;
  maxMessageBytes: number;
  /** Bytes held by messages being received, over every session. */
  buffers: BufferBudget;
  /** The DATA time limit: this much, plus a second for every minDataRate bytes. */
  dataGraceMs: number;
  minDataRate: number;
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
  const log = state?.log ?? deps.log;
  // The session is ended (421) when the message falls behind the minimum rate.
  const stopWatch = watchSessionDataRate(stream, state, { graceMs: deps.dataGraceMs, minBytesPerSecond: deps.minDataRate, rejections });
  let collected;
  try {
    collected = await collectMessage(stream, deps.maxMessageBytes, deps.buffers);
  } catch (err) {
    // The client went away (or was cut off) in the middle of the message; nothing was queued.
    log.info({ event: 'smtp.message.aborted', err: (err as Error).message }, 'message transfer aborted');
    throw err;
  } finally {
    stopWatch();
  }
  if (!collected.ok) {
    rejections.reject(state, collected.reason, { bytes: collected.bytes });
    throw new RookeryError(collected.reason);
  }
  try {
    return await commit(deps, collected.body, session, state, log);
  } finally {
    deps.buffers.release(collected.body.length);
  }
}

/** Checks the author fields and queues the message; resolves with the reply text. */
async function commit(deps: DataAcceptanceDeps, body: Buffer, session: SMTPServerSession, state: SessionState | undefined, log: Logger): Promise<string> {
  const { rejections } = deps;
  const envelope = session.envelope;
  const user = userOf(deps.users(), session);
  // A user a reload removed while this transaction was open sends nothing more: without its
  // entry the message would go out unchecked, with no tenant and none of its limits.
  if (typeof session.user === 'string' && !user) {
    rejections.reject(state, 'RELAY_DENIED', { username: session.user, detail: 'user removed by a reload' });
    throw new RookeryError('RELAY_DENIED');
  }
  const { header } = splitHeader(body);
  const refusal = checkHeaderBlock(header, user ? user.allowedSenders : null);
  if (refusal?.code === 'HEADER_TOO_LARGE') {
    rejections.reject(state, refusal.code, { bytes: refusal.bytes });
    throw new RookeryError(refusal.code, refusal.message);
  }
  if (refusal) {
    rejections.reject(state, refusal.code, { header: refusal.address && logSafe(refusal.address), username: user?.username, detail: refusal.message });
    throw new RookeryError(refusal.code, refusal.message);
  }
  const submission: Submission = {
    sender: envelope.mailFrom ? envelope.mailFrom.address : '',
    recipients: envelope.rcptTo.map((r) => r.address),
    body,
    submitter: typeof session.user === 'string' ? session.user : null,
    tenant: user?.tenant ?? null,
    source: 'smtp',
    // Under the reject action each RCPT was looked up and answered (envelope-checks.ts).
    suppressedRecipients: 'refused-at-rcpt',
    clientAddress: session.remoteAddress,
    received: receivedField({
      helo: session.hostNameAppearsAs || '',
      reverseName: session.clientHostname && session.clientHostname !== `[${session.remoteAddress}]` ? session.clientHostname : null,
      clientIp: session.remoteAddress,
      hostname: deps.hostname,
      // RFC 6531 3.7.3: a transaction under SMTPUTF8 is received "with UTF8SMTP" (UTF8SMTPSA ...).
      protocol: session.envelope.smtpUtf8 ? session.transmissionType.replace(/^E?SMTP/, 'UTF8SMTP') : session.transmissionType,
      id: session.id,
      at: deps.clock.now(),
    }),
  };
  deps.sessions.beginCommit(state);
  let accepted: Accepted;
  try {
    accepted = await deps.queue.submit(submission);
  } catch (err) {
    // The queue refused the message itself (the tenant's sender domains, rate or quota).
    if (err instanceof RookeryError) {
      rejections.reject(state, err.code, { sender: submission.sender, username: submission.submitter, tenant: submission.tenant, recipients: submission.recipients.length });
      throw err;
    }
    rejections.count('STORAGE_FAILED');
    // Committed, but the disk did not confirm it (storage/write-batcher.ts): it may still be
    // delivered, and a client that sends it again then causes a duplicate; never a loss.
    const uncertain = (err as Error).name === 'UncertainDurabilityError';
    log.error(
      { event: 'smtp.commit.failed', err: (err as Error).message, recipients: submission.recipients.length, ...(uncertain ? { maybeStored: true } : {}) },
      uncertain ? 'message stored but not confirmed on disk; answered as not queued' : 'message could not be queued',
    );
    throw new RookeryError('STORAGE_FAILED');
  }
  if (state) state.messages++;
  log.info(
    {
      event: 'smtp.message.accepted',
      messageId: accepted.id,
      ...(accepted.ids.length > 1 ? { copies: accepted.ids } : {}),
      messageIdHeader: accepted.messageIdHeader,
      sender: submission.sender,
      ...(submission.submitter !== null ? { submitter: submission.submitter } : {}),
      ...(submission.tenant ? { tenant: submission.tenant } : {}),
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
  return queuedReply(accepted.ids);
}

/**
 * Queue ids listed in a 250 at most: 16 of 22 characters keep the line well inside the 512
 * octets RFC 5321 (4.5.3.1.5) allows a reply line.
 */
const MAX_LISTED_IDS = 16;

/**
 * The 250 text: the queue id, or the ids of the copies a message split per recipient was
 * stored as (each with its own List-Unsubscribe), as many as fit on the line.
 */
export function queuedReply(ids: readonly string[]): string {
  const listed = ids.slice(0, MAX_LISTED_IDS).join(' ');
  const more = ids.length - MAX_LISTED_IDS;
  return more > 0 ? `2.0.0 Ok: queued as ${listed} and ${more} more (one per recipient)` : `2.0.0 Ok: queued as ${listed}`;
}
