import { MimeNode } from '../../vendor/nodemailer.ts';
import type { NewMessage } from '../../storage/store.ts';
import { rfc5322Date } from '../../mail/message-headers.ts';
import type { TlsReporter } from './tls-rpt-report.ts';

/**
 * A TLS report as mail (RFC 8460 5.3): multipart/report; report-type="tlsrpt", a short text part
 * and the gzipped JSON as an application/tlsrpt+gzip attachment named as 5.3 says, the
 * TLS-Report-Domain and TLS-Report-Submitter headers and the Subject the RFC gives. From the null
 * reverse-path, as a DSN: a report that cannot be delivered must not bounce back into a loop.
 */

export interface TlsReportMailInput {
  reporter: TlsReporter;
  /** The header From. */
  from: string;
  to: string[];
  domain: string;
  day: string;
  reportId: string;
  fileName: string;
  gzipped: Buffer;
  /** Queue id of the message. */
  id: string;
  pool: string;
  now: number;
}

export async function buildTlsReportMail(input: TlsReportMailInput): Promise<NewMessage> {
  const { reporter, domain, reportId, now, id } = input;
  const messageIdHeader = `<${id}@${reporter.submitter}>`;
  const root = new MimeNode('multipart/report; report-type="tlsrpt"', { newline: 'win', hostname: reporter.submitter });
  root.setHeader('From', input.from);
  root.setHeader('To', input.to.join(', '));
  root.setHeader('Subject', `Report Domain: ${domain} Submitter: ${reporter.submitter} Report-ID: <${reportId}>`);
  root.setHeader('Date', rfc5322Date(now));
  root.setHeader('Message-ID', messageIdHeader);
  root.setHeader('TLS-Report-Domain', domain);
  root.setHeader('TLS-Report-Submitter', reporter.submitter);
  root.setHeader('Auto-Submitted', 'auto-generated');
  root
    .createChild('text/plain; charset=utf-8')
    .setContent(`This is an aggregate TLS report (RFC 8460) from ${reporter.organization} for ${domain}, UTC day ${input.day}.\r\nThe report is attached as ${input.fileName}.\r\n`);
  root.createChild('application/tlsrpt+gzip', { filename: input.fileName }).setContent(input.gzipped);
  return {
    id,
    sender: '',
    recipients: input.to,
    messageIdHeader,
    body: await root.build(),
    submitter: null,
    // Internal mail, as a DSN: no tenant's, no webhooks, never reported on by a DSN.
    source: 'dsn',
    clientAddress: null,
    createdAt: now,
    dueAt: now,
    pool: input.pool,
  };
}
