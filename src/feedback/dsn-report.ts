import type { BounceEvidence } from './bounce-verdict.ts';
import { addressValue, fieldValue, readFieldBlocks, typedValue, type FieldBlock } from './report-fields.ts';
import type { OriginalHeaders, ReportMessage } from './report-message.ts';

/**
 * Delivery status notifications (RFC 3464, in multipart/report; report-type=delivery-status):
 * the per-message fields, and per recipient its Final-Recipient, Original-Recipient, Action,
 * Status, Diagnostic-Code and Remote-MTA. Also the internationalized form (RFC 6533,
 * message/global-delivery-status). Pure: reads a ReportMessage.
 */

export interface DsnRecipient {
  finalRecipient: string | null;
  originalRecipient: string | null;
  /** failed, delayed, delivered, relayed or expanded (lower case); null when missing. */
  action: string | null;
  /** The enhanced status code ("5.1.1"); null when missing or not one. */
  status: string | null;
  /** The diagnostic's type ("smtp", "x-postfix", ...) and text. */
  diagnostic: { type: string; text: string } | null;
  remoteMta: string | null;
}

export interface DsnReport {
  reportingMta: string | null;
  arrivalDate: string | null;
  /** X-Rookery-Queue-ID of a DSN Rookery made: the queue id of the message it reports on. */
  queueId: string | null;
  recipients: DsnRecipient[];
  original: OriginalHeaders | null;
}

/** A DSN reports on at most this many recipients here; more are not read. */
export const MAX_DSN_RECIPIENTS = 100;
const STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})\b/;

/** The DSN of `message`, or null when it has no delivery-status part. */
export function parseDsnReport(message: ReportMessage): DsnReport | null {
  const part = message.parts.find((p) => p.contentType === 'message/delivery-status' || p.contentType === 'message/global-delivery-status');
  if (!part) return null;
  const blocks = readFieldBlocks(part.content.toString('utf8'), { maxBlocks: MAX_DSN_RECIPIENTS + 1, maxFields: 30 * (MAX_DSN_RECIPIENTS + 1) });
  // The per-message group comes first; some MTAs leave it out and start with a recipient's.
  const perMessage = blocks[0] && !isRecipientBlock(blocks[0]) ? blocks[0] : undefined;
  return {
    reportingMta: typedValue(fieldValue(perMessage, 'reporting-mta'))?.value ?? null,
    arrivalDate: fieldValue(perMessage, 'arrival-date'),
    queueId: fieldValue(perMessage, 'x-rookery-queue-id'),
    recipients: blocks.filter(isRecipientBlock).map(recipientOf),
    original: message.original,
  };
}

function isRecipientBlock(block: FieldBlock): boolean {
  return block.has('final-recipient') || block.has('original-recipient') || block.has('action');
}

function recipientOf(block: FieldBlock): DsnRecipient {
  const diagnostic = typedValue(fieldValue(block, 'diagnostic-code'));
  return {
    finalRecipient: addressValue(fieldValue(block, 'final-recipient')),
    originalRecipient: addressValue(fieldValue(block, 'original-recipient')),
    action: fieldValue(block, 'action')?.toLowerCase().split(/[\s(]/)[0] || null,
    status: STATUS.exec(fieldValue(block, 'status') ?? '')?.[0] ?? null,
    diagnostic: diagnostic && diagnostic.value ? { type: diagnostic.type, text: diagnostic.value } : null,
    remoteMta: typedValue(fieldValue(block, 'remote-mta'))?.value || null,
  };
}

/**
 * What a recipient's fields say for the bounce rules: the reply of an "smtp" Diagnostic-Code
 * (its basic code and wording), the Status as the enhanced code, and whether it is a delay.
 */
export function dsnEvidence(r: DsnRecipient): BounceEvidence {
  const reply = r.diagnostic?.type === 'smtp' ? /^([245]\d\d)(?=[\s-]|$)/.exec(r.diagnostic.text) : null;
  return { code: reply ? Number(reply[1]) : null, enhanced: r.status, text: r.diagnostic?.text ?? '', delayed: r.action !== 'failed' };
}
