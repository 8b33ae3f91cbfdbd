import type { AddressObject, ParsedMail } from 'mailparser';
import { splitHeader } from '../mail/message-headers.ts';

/**
 * A message that came back (a bounce, a DSN, a complaint) read with mailparser, within bounds:
 * its subject and human-readable text, the parts a report is made of (message/delivery-status,
 * message/feedback-report, the returned original as message/rfc822 or text/rfc822-headers) and
 * the headers of that original. The MIME work is mailparser's; this file only asks it for the
 * report's parts as they are (an attached original is not merged into the text) and bounds it.
 */

export interface ReportLimits {
  /** Largest message read. */
  maxBytes: number;
  /** Most MIME parts (nodes) in the message, the attached original's included. */
  maxParts: number;
  /** Largest header block of any part. */
  maxHeaderBytes: number;
  /** Most header fields of the message itself. */
  maxHeaderFields: number;
}

export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  maxBytes: 2 * 1024 * 1024,
  maxParts: 100,
  maxHeaderBytes: 64 * 1024,
  maxHeaderFields: 500,
};

/** Why a message could not be read as a report; the metric's reason label. */
export type MalformedReason = 'too-large' | 'too-many-parts' | 'too-many-headers' | 'unreadable';

export class MalformedReportError extends Error {
  override readonly name = 'MalformedReportError';
  constructor(
    readonly reason: MalformedReason,
    message: string,
  ) {
    super(message);
  }
}

export interface ReportPart {
  /** Lower case, without parameters. */
  contentType: string;
  /** Decoded (transfer encoding undone). */
  content: Buffer;
}

/** What a report says of the message it is about, from that message's header block. */
export interface OriginalHeaders {
  /** The Message-ID with its angle brackets. */
  messageId: string | null;
  /** The Return-Path address (a VERP address when Rookery sent it with one). */
  returnPath: string | null;
  /** X-Rookery-Queue-ID, when the original carries it. */
  queueId: string | null;
  /** The To addresses. */
  to: string[];
  from: string | null;
}

export interface ReportMessage {
  subject: string;
  /** The From address of the report. */
  from: string | null;
  /** The human-readable text (text/plain parts, or HTML turned into text), cut to MAX_TEXT_LENGTH. */
  text: string;
  /** Every part that is not human-readable body text, in order. */
  parts: ReportPart[];
  /** The headers of the attached original, when the report returns one. */
  original: OriginalHeaders | null;
  /** The names (lower case) of the message's own header fields as mailparser read them, in order. */
  fieldNames: string[];
}

/** The text read by heuristics (plain bounces); the reply that matters is near the top. */
export const MAX_TEXT_LENGTH = 64 * 1024;
/** Content types that carry the original message or its header block (RFC 3462, RFC 6532). */
const ORIGINAL_TYPES = ['message/rfc822', 'text/rfc822-headers', 'message/global', 'message/global-headers'];

let parser: Promise<typeof import('mailparser')> | null = null;

/**
 * mailparser, loaded once. Not at startup: a daemon with no inbound listener reads no report and
 * does without its memory. The inbound listener loads it as it starts, so that loading (a few
 * hundred milliseconds of the event loop) never happens under traffic.
 */
export function loadReportParser(): Promise<typeof import('mailparser')> {
  return (parser ??= import('mailparser'));
}

export async function readReportMessage(raw: Buffer, limits: ReportLimits = DEFAULT_REPORT_LIMITS): Promise<ReportMessage> {
  if (raw.length > limits.maxBytes) throw new MalformedReportError('too-large', `message of ${raw.length} bytes is over ${limits.maxBytes}`);
  const parsed = await parse(raw, limits);
  if (parsed.headerLines.length > limits.maxHeaderFields) {
    throw new MalformedReportError('too-many-headers', `message has ${parsed.headerLines.length} header fields, over ${limits.maxHeaderFields}`);
  }
  const parts = parsed.attachments.map((a) => ({ contentType: a.contentType.toLowerCase(), content: a.content }));
  const attached = parts.find((p) => ORIGINAL_TYPES.includes(p.contentType));
  return {
    subject: parsed.subject ?? '',
    from: firstAddress(parsed.from),
    text: (parsed.text ?? '').slice(0, MAX_TEXT_LENGTH),
    parts,
    original: attached ? await readOriginalHeaders(attached.content, limits) : null,
    fieldNames: parsed.headerLines.map((line) => line.key),
  };
}

/** The header block of an attached original (a whole message, or its headers only). */
export async function readOriginalHeaders(content: Buffer, limits: ReportLimits = DEFAULT_REPORT_LIMITS): Promise<OriginalHeaders> {
  const { header } = splitHeader(content);
  const parsed = await parse(Buffer.from(`${header.slice(0, limits.maxHeaderBytes)}\r\n\r\n`, 'latin1'), limits);
  const returnPath = parsed.headers.get('return-path') as AddressObject | string | undefined;
  const queueId = parsed.headers.get('x-rookery-queue-id');
  return {
    messageId: parsed.messageId ?? null,
    returnPath: typeof returnPath === 'string' ? returnPath.replace(/^\s*<|>\s*$/g, '') || null : firstAddress(returnPath),
    queueId: typeof queueId === 'string' && queueId.trim() ? queueId.trim() : null,
    to: addresses(parsed.to),
    from: firstAddress(parsed.from),
  };
}

/**
 * mailparser with the report's parts left as they are: a delivery-status part is not merged into
 * the text (keepDeliveryStatus), an attached original is one part, not parsed into the report's
 * own text (ignoreEmbedded); no checksums, links or HTML made; bounded in parts and header size.
 */
async function parse(raw: Buffer, limits: ReportLimits): Promise<ParsedMail> {
  const { simpleParser } = await loadReportParser();
  try {
    return await simpleParser(raw, {
      keepDeliveryStatus: true,
      ignoreEmbedded: true,
      checksumAlgo: false,
      skipTextToHtml: true,
      skipTextLinks: true,
      skipImageLinks: true,
      maxHtmlLengthToParse: MAX_TEXT_LENGTH * 4,
      maxChildNodes: limits.maxParts,
      maxHeadSize: limits.maxHeaderBytes,
    });
  } catch (err) {
    const message = (err as Error).message;
    const reason = /child nodes/i.test(message) ? 'too-many-parts' : /head(er)? size|too large/i.test(message) ? 'too-many-headers' : 'unreadable';
    throw new MalformedReportError(reason, `message cannot be read: ${message}`);
  }
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  const out: string[] = [];
  const visit = (entries: AddressObject['value']) => {
    for (const entry of entries) {
      if (entry.address) out.push(entry.address);
      if (entry.group) visit(entry.group);
    }
  };
  for (const object of field === undefined ? [] : Array.isArray(field) ? field : [field]) visit(object.value);
  return out;
}

function firstAddress(field: AddressObject | AddressObject[] | undefined): string | null {
  return addresses(field)[0] ?? null;
}
