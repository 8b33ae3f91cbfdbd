import { randomUUID } from 'node:crypto';
import { asciiAddress, domainOf, envelopeAddressProblem } from '../../mail/address.ts';
import { toWireForm } from '../../mail/wire-form.ts';
import { detectMimeType, MailComposer, type MailComposerOptions } from '../../vendor/nodemailer.ts';
import { envelopeRecipients, invalid, refusedAt, scheduledAt, type Draft, type Refusal, type SendLimits } from './message-draft.ts';

/**
 * A JSON message (the body of POST /v1/messages, or an item of a batch) made into MIME by
 * nodemailer's MailComposer. The schema (routes/send-schemas.ts) has checked its shape; this
 * checks what a schema cannot: each address's syntax, base64, the number of recipients, header
 * fields the message makes itself, and the size of the result. MailComposer reads no file and no
 * URL here: attachments come inline, as base64.
 */

export type Mailbox = string | { name?: string; address: string };

export interface JsonMessage {
  from: Mailbox;
  to?: Mailbox | Mailbox[];
  cc?: Mailbox | Mailbox[];
  bcc?: Mailbox | Mailbox[];
  replyTo?: Mailbox | Mailbox[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: Array<{ filename: string; contentType?: string; content: string; cid?: string }>;
  headers?: Record<string, string>;
  tags?: string[];
  metadata?: Record<string, string>;
  pool?: string;
  sendAt?: string;
}

/**
 * Fields the message's own properties make (or Rookery adds: Date follows sendAt), and the MIME
 * structure MailComposer builds: given again in `headers`, they would contradict or duplicate
 * them. X-Rookery-Pool has `pool`.
 */
const RESERVED_HEADERS = new Set([
  'from', 'sender', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'date',
  'mime-version', 'content-type', 'content-transfer-encoding', 'content-disposition', 'x-rookery-pool',
]);

/** Standard base64 with its padding: what `content` must be (Buffer.from would skip anything else silently). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The mailboxes of a field, each with its request path (`body.to[1].address`). */
function mailboxes(value: Mailbox | Mailbox[] | undefined, path: string): Array<{ path: string; address: string; name?: string }> {
  if (value === undefined) return [];
  const one = (m: Mailbox, at: string) => (typeof m === 'string' ? { path: at, address: m } : { path: `${at}.address`, address: m.address, ...(m.name ? { name: m.name } : {}) });
  return Array.isArray(value) ? value.map((m, i) => one(m, `${path}[${i}]`)) : [one(value, path)];
}

/** The addresses of a header-only field (Reply-To), checked like envelope addresses. */
function checkedMailboxes(list: ReturnType<typeof mailboxes>): Refusal | null {
  for (const { path, address } of list) {
    const problem = envelopeAddressProblem(address);
    if (problem) return invalid(path, problem);
  }
  return null;
}

/**
 * The mailboxes as the header fields name them. An address whose local part is ASCII is written
 * with its domain as the A-label: the header block stays ASCII, so the message needs no SMTPUTF8
 * (src/engine/international-mail.ts) for a domain name alone. A UTF-8 local part stays as it is
 * (RFC 6532).
 */
function asComposerAddress(list: ReturnType<typeof mailboxes>) {
  return list.map(({ name, address }) => {
    const written = asciiAddress(address) ?? address;
    return name ? { name, address: written } : written;
  });
}

/** The message as a draft for the queue, or the refusal naming the place at fault; `at` is the item's path (`body`, `body.messages[3]`). */
export async function composeJsonMessage(message: JsonMessage, at: string, limits: SendLimits, now: number): Promise<Draft | Refusal> {
  const [from] = mailboxes(message.from, `${at}.from`);
  const fromProblem = envelopeAddressProblem(from!.address);
  if (fromProblem) return invalid(from!.path, fromProblem);
  const to = mailboxes(message.to, `${at}.to`);
  const cc = mailboxes(message.cc, `${at}.cc`);
  const bcc = mailboxes(message.bcc, `${at}.bcc`);
  const replyTo = mailboxes(message.replyTo, `${at}.replyTo`);
  const recipients = envelopeRecipients([...to, ...cc, ...bcc], limits, `${at}.to`);
  if (!Array.isArray(recipients)) return recipients;
  const replyToProblem = checkedMailboxes(replyTo);
  if (replyToProblem) return replyToProblem;
  if (message.text === undefined && message.html === undefined && !message.attachments?.length) return invalid(at, 'no content: give text, html or attachments');
  for (const name of Object.keys(message.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) return invalid(`${at}.headers.${name}`, 'made by the message\'s own fields; give it there (pool for X-Rookery-Pool, sendAt for Date)');
  }
  const attachments: NonNullable<MailComposerOptions['attachments']> = [];
  for (const [i, a] of (message.attachments ?? []).entries()) {
    if (a.content.length % 4 !== 0 || !BASE64.test(a.content)) return invalid(`${at}.attachments[${i}].content`, 'not base64 (A-Z, a-z, 0-9, +, / with = padding; no line breaks)');
    const content = Buffer.from(a.content, 'base64');
    const type = (a.contentType ?? detectMimeType(a.filename)).toLowerCase();
    // MailComposer would write it as one base64 part, which RFC 2045 6.4 forbids and readers show empty.
    if (type.startsWith('multipart/')) return invalid(`${at}.attachments[${i}].contentType`, `${type} is a structure of parts, not a file: attach its parts one by one`);
    const problem = type === 'message/global' ? null : type.startsWith('message/') ? unencodedMessageProblem(content) : null;
    if (problem) return invalid(`${at}.attachments[${i}].content`, `${problem}; a ${type} attachment goes as it is (MIME allows it no base64): attach it as message/global, or as application/octet-stream`);
    attachments.push({
      filename: a.filename,
      content,
      ...(a.contentType ? { contentType: a.contentType } : {}),
      // RFC 6532 3.5: message/global may be encoded, and so carries any line and any octet safely.
      ...(type === 'message/global' ? { contentTransferEncoding: 'base64' as const } : {}),
      ...(a.cid ? { cid: a.cid } : {}),
    });
  }
  const sendAt = scheduledAt(message.sendAt, `${at}.sendAt`, now, limits);
  if (sendAt !== null && typeof sendAt === 'object') return sendAt;

  const given = Object.keys(message.headers ?? {}).some((name) => name.toLowerCase() === 'message-id');
  const composer = new MailComposer({
    from: asComposerAddress([from!])[0],
    // Made here when the client gives none: MailComposer's own reads every address field again
    // and draws five random numbers, a fifth of the cost of composing a small message.
    ...(given ? {} : { messageId: `<${randomUUID()}@${domainOf(from!.address)}>` }),
    ...(to.length ? { to: asComposerAddress(to) } : {}),
    ...(cc.length ? { cc: asComposerAddress(cc) } : {}),
    // Not written into the message (MimeNode leaves Bcc out); the envelope carries them.
    ...(bcc.length ? { bcc: asComposerAddress(bcc) } : {}),
    ...(replyTo.length ? { replyTo: asComposerAddress(replyTo) } : {}),
    ...(message.subject !== undefined ? { subject: message.subject } : {}),
    ...(message.text !== undefined ? { text: message.text } : {}),
    ...(message.html !== undefined ? { html: message.html } : {}),
    ...(attachments.length ? { attachments } : {}),
    ...(message.headers ? { headers: message.headers } : {}),
    // A scheduled message is dated when it goes.
    date: new Date(sendAt ?? now),
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const composed = await composeWithin(composer, limits.maxMessageBytes);
  const body = composed && toWireForm(composed);
  if (body === null || body.length > limits.maxMessageBytes) {
    return refusedAt('MESSAGE_TOO_LARGE', at, `the message comes to more than ${limits.maxMessageBytes} bytes (smtp.maxMessageBytes)`);
  }
  return {
    sender: from!.address,
    recipients,
    body,
    pool: message.pool ?? null,
    sendAt,
    tags: message.tags ?? [],
    metadata: message.metadata ?? null,
  };
}

/**
 * The composed message, or null as soon as it passes `maxBytes`: text or html of characters
 * quoted-printable writes as three bytes each can triple, and a request within its body limit
 * must not make a message several times smtp.maxMessageBytes before being refused.
 */
function composeWithin(composer: MailComposer, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const stream = composer.compile().createReadStream();
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      chunks.length = 0;
      stream.destroy();
      resolve(null);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks, size)));
    stream.on('error', reject);
  });
}

/**
 * Why a message/* attachment cannot be written as it is, or null. MailComposer writes such a part
 * unencoded (RFC 2046 5.2.1 allows it 7bit, 8bit or binary only), so its lines are the message's:
 * one over RFC 5322's 998 octets, a NUL or a bare CR would be refused, or rewritten, by the
 * servers it passes through.
 */
export function unencodedMessageProblem(content: Buffer): string | null {
  let start = 0;
  for (let i = 0; i <= content.length; i++) {
    const byte = content[i];
    if (byte === 0) return 'it holds a NUL octet';
    if (byte === 0x0d && content[i + 1] !== 0x0a) return 'it holds a CR that ends no line';
    if (byte !== 0x0a && i < content.length) continue;
    const end = i > start && content[i - 1] === 0x0d ? i - 1 : i;
    if (end - start > 998) return `its line ${lineNumber(content, start)} is longer than 998 octets`;
    start = i + 1;
  }
  return null;
}

function lineNumber(content: Buffer, offset: number): number {
  let lines = 1;
  for (let i = 0; i < offset; i++) if (content[i] === 0x0a) lines++;
  return lines;
}
