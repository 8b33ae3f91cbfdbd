import { MimeNode } from '../vendor/nodemailer.ts';
import type { NewMessage } from '../storage/store.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import { rfc5322Date, splitHeader } from '../mail/message-headers.ts';
import { hasUtf8Headers } from './international-mail.ts';

/**
 * Delivery status notifications (RFC 3464, in the multipart/report container of RFC 6522):
 * a human-readable explanation, the machine-readable message/delivery-status part and the
 * original message's header block, sent from the null reverse-path so it can never bounce back.
 */

export interface DsnInput {
  /** This MTA's host name (Reporting-MTA, default From domain). */
  reportingMta: string;
  original: {
    id: string;
    sender: string;
    messageIdHeader: string | null;
    /** The original message in wire form; only its header block is returned. */
    body: Buffer;
    /** When the original was accepted (Arrival-Date); omitted when unknown. */
    createdAt?: number;
    /** The original's egress pool: the report goes back through the same sender's IPs. */
    pool: string;
    /** The original's tenant, whose report it is. */
    tenant?: string | null;
  };
  failed: Array<{ recipient: string; outcome: DeliveryOutcome }>;
  now: number;
  /** Queue id of the DSN itself. */
  id: string;
  /** From address; default MAILER-DAEMON@<reportingMta>. */
  from?: string;
}

const CRLF = '\r\n';

export async function buildDsn(input: DsnInput): Promise<NewMessage> {
  const { reportingMta, original, failed, now, id } = input;
  // RFC 5321 6.1 / RFC 3464 2: never report on a message from the null sender (no bounce loops).
  if (original.sender === '') throw new Error(`refusing to build a DSN for message ${original.id}: it has the null sender`);
  if (failed.length === 0) throw new Error(`refusing to build a DSN for message ${original.id}: no failed recipients`);

  const messageIdHeader = `<${id}@${reportingMta}>`;
  const from = input.from ?? `MAILER-DAEMON@${reportingMta}`;
  const international = [original.sender, ...failed.map((f) => f.recipient)].some((a) => !isAscii(a));

  const root = new MimeNode('multipart/report; report-type=delivery-status', { newline: 'win', hostname: reportingMta });
  root.setHeader('From', { name: 'Mail Delivery System', address: from });
  root.setHeader('To', original.sender);
  root.setHeader('Subject', 'Undelivered Mail Returned to Sender');
  root.setHeader('Date', new Date(now));
  root.setHeader('Message-ID', messageIdHeader);
  // RFC 3834: automatic replies are marked so that responders do not answer them.
  root.setHeader('Auto-Submitted', 'auto-replied');
  if (original.messageIdHeader && /^<[^<>\s]+>$/.test(original.messageIdHeader)) {
    root.setHeader('In-Reply-To', original.messageIdHeader);
    root.setHeader('References', original.messageIdHeader);
  }

  root.createChild('text/plain; charset=utf-8').setContent(humanText(input));
  // RFC 6533: addresses that are not ASCII need the "utf-8" address type and the global report
  // type, whose UTF-8 goes as it is (8bit, 6.2); MimeNode would send a message/* part unencoded
  // and unlabelled.
  const status = deliveryStatus(input, international);
  if (international) {
    root.createChild('message/global-delivery-status').setRaw(`Content-Type: message/global-delivery-status${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}${status}`);
  } else {
    root.createChild('message/delivery-status').setContent(status);
  }
  appendHeadersPart(root, original.body, international);

  const body = await root.build();
  return {
    id,
    sender: '',
    recipients: [original.sender],
    messageIdHeader,
    body,
    submitter: null,
    source: 'dsn',
    clientAddress: null,
    createdAt: now,
    dueAt: now,
    pool: original.pool,
    // The tenant whose mail bounced reads its DSN (GET /v1/messages/{id}).
    tenant: original.tenant ?? null,
  };
}

function isAscii(value: string): boolean {
  return /^[\x20-\x7e]*$/.test(value);
}

/** Printable ASCII only (DSN fields are 7-bit), control characters and others as "?". */
function asciiText(value: string): string {
  return value.replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
}

/** Folds a header-style field at spaces so lines stay under 78 characters. */
function fold(field: string): string {
  const words = field.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > 76) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.join(CRLF);
}

/** DSN Status must be 5.x.x for Action: failed; a transient class (e.g. an expiry after 4xx) is reported as 5. */
function failedStatus(outcome: DeliveryOutcome): string {
  const enhanced = outcome.enhanced && /^[245]\.\d{1,3}\.\d{1,3}$/.test(outcome.enhanced) ? outcome.enhanced : '5.0.0';
  return `5${enhanced.slice(1)}`;
}

function diagnosticCode(outcome: DeliveryOutcome): string {
  // "smtp" diagnostics carry a remote reply; local failures use an extension type (as Postfix's X-Postfix).
  if (outcome.code !== null) return `smtp; ${outcome.code} ${asciiText(outcome.response)}`;
  return `X-Rookery; ${asciiText(outcome.response)}`;
}

function deliveryStatus(input: DsnInput, international: boolean): string {
  const { reportingMta, original, failed, now } = input;
  const perMessage = [`Reporting-MTA: dns; ${reportingMta}`, `X-Rookery-Queue-ID: ${original.id}`];
  if (original.createdAt !== undefined) perMessage.push(`Arrival-Date: ${rfc5322Date(original.createdAt)}`);
  const addressType = international ? 'utf-8' : 'rfc822';
  const blocks = [perMessage.join(CRLF)];
  for (const { recipient, outcome } of failed) {
    const fields = [`Final-Recipient: ${addressType}; ${recipient}`, 'Action: failed', `Status: ${failedStatus(outcome)}`];
    if (outcome.remoteHost) fields.push(`Remote-MTA: dns; ${outcome.remoteHost}`);
    fields.push(fold(`Diagnostic-Code: ${diagnosticCode(outcome)}`));
    fields.push(`Last-Attempt-Date: ${rfc5322Date(now)}`);
    blocks.push(fields.join(CRLF));
  }
  return blocks.join(CRLF + CRLF) + CRLF;
}

const REASONS: Partial<Record<DeliveryOutcome['bounceClass'], string>> = {
  'unknown-user': 'the recipient address does not exist',
  'mailbox-full': 'the recipient mailbox is full',
  'message-rejected': 'the receiving server refused the message',
  policy: 'the receiving server refused the message by policy',
  spam: 'the receiving server treated the message as spam',
  'rate-limited': 'the receiving server kept limiting the rate of delivery',
  dns: 'the destination domain could not be resolved',
  'no-mail-domain': 'the destination domain does not accept mail',
  connection: 'the receiving server could not be reached',
  protocol: 'the receiving server did not follow the SMTP protocol',
  cancelled: 'the operator of this mail system cancelled its delivery',
};

function humanText(input: DsnInput): string {
  const { reportingMta, original, failed } = input;
  const lines = [
    `This is the mail system at host ${reportingMta}.`,
    '',
    'Your message could not be delivered to one or more recipients. Its',
    'headers are attached below. The details of each failure follow.',
    '',
  ];
  if (original.messageIdHeader) lines.push(`Message-ID: ${original.messageIdHeader}`, '');
  for (const { recipient, outcome } of failed) {
    const where = outcome.remoteHost ? ` (host ${outcome.remoteHost})` : '';
    const said = (outcome.code !== null ? `${outcome.code} ${outcome.response}` : outcome.response).trim();
    if (outcome.bounceClass === 'expired') {
      lines.push(...wrap(`<${recipient}>: message expired: it could not be delivered before the queue lifetime ran out.`, ''));
      lines.push(...wrap(`Last error${where}: ${said}`, '    '));
    } else {
      const reason = REASONS[outcome.bounceClass];
      lines.push(...wrap(`<${recipient}>: delivery failed${reason ? `: ${reason}` : ''}.`, ''));
      lines.push(...wrap(`${outcome.code !== null ? 'The server said' : 'Error'}${where}: ${said}`, '    '));
    }
    lines.push('');
  }
  return lines.join(CRLF);
}

/** Word-wraps to 72 columns (so the part can go as 7bit), every line starting with `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length > indent.length && line.length + 1 + word.length > 72) {
      lines.push(line);
      line = `${indent}  ${word}`;
    } else {
      line = line.length > indent.length ? `${line} ${word}` : `${line}${word}`;
    }
  }
  lines.push(line);
  return lines;
}

/**
 * The original's header block. A plain ASCII one goes as it is (text/rfc822-headers, 7bit), so it
 * reads like the original. A UTF-8 one (RFC 6532) in a report that is international anyway goes
 * as message/global-headers (RFC 6533 6.3), 8bit, as it is too; otherwise (legacy 8-bit, over-long
 * lines, or a report that is ASCII but for it) MimeNode encodes it, so the report stays 7-bit.
 */
function appendHeadersPart(root: MimeNode, body: Buffer, international: boolean): void {
  const { header } = splitHeader(body);
  const headerBytes = Buffer.from(header, 'latin1');
  const fits = header.split(CRLF).every((line) => line.length <= 998);
  if (fits && /^[\x09\x0a\x0d\x20-\x7e]*$/.test(header)) {
    root.createChild('text/rfc822-headers').setRaw(`Content-Type: text/rfc822-headers${CRLF}Content-Transfer-Encoding: 7bit${CRLF}${CRLF}${header}`);
  } else if (fits && international && hasUtf8Headers(headerBytes)) {
    const raw = Buffer.concat([Buffer.from(`Content-Type: message/global-headers${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}`), headerBytes]);
    root.createChild('message/global-headers').setRaw(raw);
  } else {
    root.createChild('text/rfc822-headers').setContent(headerBytes);
  }
}
