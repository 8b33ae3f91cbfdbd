import { addressValue, fieldValue, readFieldBlocks, typedValue } from './report-fields.ts';
import type { OriginalHeaders, ReportMessage } from './report-message.ts';

/**
 * Abuse feedback reports (ARF, RFC 5965: multipart/report; report-type=feedback-report), as
 * Yahoo, Microsoft JMRP and Fastmail send them: the message/feedback-report fields and the
 * headers of the message complained about (attached as message/rfc822, or text/rfc822-headers
 * when the reporter returns headers only). Pure: reads a ReportMessage.
 */

export interface ArfReport {
  /** abuse, fraud, virus, other, not-spam, ... (lower case). */
  feedbackType: string | null;
  userAgent: string | null;
  version: string | null;
  originalMailFrom: string | null;
  /** Original-Rcpt-To may repeat (one per recipient the reporter saw). */
  originalRcptTo: string[];
  arrivalDate: string | null;
  sourceIp: string | null;
  reportingMta: string | null;
  original: OriginalHeaders | null;
}

/** The report of `message`, or null when it has no feedback-report part. */
export function parseArfReport(message: ReportMessage): ArfReport | null {
  const part = message.parts.find((p) => p.contentType === 'message/feedback-report');
  if (!part) return null;
  // One group of fields; what follows a blank line is not part of it.
  const [fields] = readFieldBlocks(part.content.toString('utf8'), { maxBlocks: 1, maxFields: 200 });
  const mailFrom = fieldValue(fields, 'original-mail-from');
  return {
    feedbackType: fieldValue(fields, 'feedback-type')?.toLowerCase() ?? null,
    userAgent: fieldValue(fields, 'user-agent'),
    version: fieldValue(fields, 'version'),
    // "<>" is the null sender, which addressValue leaves out.
    originalMailFrom: mailFrom === null ? null : (addressValue(mailFrom) ?? mailFrom.replace(/^<(.*)>$/, '$1')),
    originalRcptTo: (fields?.get('original-rcpt-to') ?? []).flatMap((v) => addressValue(v) ?? []),
    arrivalDate: fieldValue(fields, 'arrival-date') ?? fieldValue(fields, 'received-date'),
    sourceIp: fieldValue(fields, 'source-ip'),
    reportingMta: typedValue(fieldValue(fields, 'reporting-mta'))?.value ?? null,
    original: message.original,
  };
}
