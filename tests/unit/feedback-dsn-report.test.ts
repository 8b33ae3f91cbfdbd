import { describe, expect, it } from 'vitest';
import { buildDsn } from '../../src/engine/dsn.ts';
import { bounceVerdict } from '../../src/feedback/bounce-verdict.ts';
import { dsnEvidence, MAX_DSN_RECIPIENTS, parseDsnReport } from '../../src/feedback/dsn-report.ts';
import { readReportMessage } from '../../src/feedback/report-message.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';

async function dsnOf(raw: Buffer) {
  const report = parseDsnReport(await readReportMessage(raw));
  if (!report) throw new Error('not a DSN');
  return report;
}

function failure(overrides: Partial<DeliveryOutcome>): DeliveryOutcome {
  return { disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '5.1.1 no such user', stage: 'rcpt', bounceClass: 'unknown-user', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2', ...overrides };
}

describe('DSN reports (RFC 3464)', () => {
  it("reads Rookery's own DSNs: the queue id, each recipient's action, status, diagnostic and remote MTA", async () => {
    const original = Buffer.from('From: app@sender.test\r\nTo: a@dest.test, b@other.test\r\nMessage-ID: <m1@sender.test>\r\nSubject: hi\r\n\r\nbody\r\n');
    const dsn = await buildDsn({
      reportingMta: 'mx.rookery.test',
      original: { id: '0190aaaabbbbccccddddeeee', sender: 'app@sender.test', messageIdHeader: '<m1@sender.test>', body: original, pool: 'default', createdAt: Date.UTC(2026, 10, 30) },
      failed: [
        { recipient: 'a@dest.test', outcome: failure({}) },
        { recipient: 'b@other.test', outcome: failure({ code: 554, enhanced: '5.7.1', response: '5.7.1 Service unavailable; client host [127.0.0.2] blocked using zen.spamhaus.org', bounceClass: 'spam', remoteHost: 'mx.other.test' }) },
      ],
      now: Date.UTC(2026, 10, 30, 1),
      id: 'dsn-1',
    });
    const report = await dsnOf(dsn.body);
    expect(report).toMatchObject({ reportingMta: 'mx.rookery.test', queueId: '0190aaaabbbbccccddddeeee', arrivalDate: 'Mon, 30 Nov 2026 00:00:00 +0000' });
    expect(report.recipients).toEqual([
      { finalRecipient: 'a@dest.test', originalRecipient: null, action: 'failed', status: '5.1.1', diagnostic: { type: 'smtp', text: '550 5.1.1 no such user' }, remoteMta: 'mx.dest.test' },
      {
        finalRecipient: 'b@other.test', originalRecipient: null, action: 'failed', status: '5.7.1',
        diagnostic: { type: 'smtp', text: '554 5.7.1 Service unavailable; client host [127.0.0.2] blocked using zen.spamhaus.org' }, remoteMta: 'mx.other.test',
      },
    ]);
    // Only the header block of the original comes back (text/rfc822-headers).
    expect(report.original).toEqual({ messageId: '<m1@sender.test>', returnPath: null, queueId: null, to: ['a@dest.test', 'b@other.test'], from: 'app@sender.test' });
    expect(report.recipients.map((r) => bounceVerdict(dsnEvidence(r), BOUNCE_RULES))).toEqual([
      { disposition: 'permanent', code: 550, enhanced: '5.1.1', text: '5.1.1 no such user', bounceClass: 'unknown-user' },
      { disposition: 'permanent', code: 554, enhanced: '5.7.1', text: '5.7.1 Service unavailable; client host [127.0.0.2] blocked using zen.spamhaus.org', bounceClass: 'spam' },
    ]);
  });

  it("reads Postfix's DSN for a 550 5.1.1 at RCPT, with the whole original returned as message/rfc822", async () => {
    const report = await dsnOf(feedbackFixture('postfix-user-unknown.eml'));
    expect(report).toMatchObject({ reportingMta: 'mx1.relay.test', queueId: null, arrivalDate: 'Mon, 30 Nov 2026 08:40:10 +0000 (UTC)' });
    expect(report.recipients).toEqual([
      {
        finalRecipient: 'unknown.user@dest.test', originalRecipient: 'unknown.user@dest.test', action: 'failed', status: '5.1.1', remoteMta: '127.0.0.1',
        // Folded over two lines in the report.
        diagnostic: { type: 'smtp', text: '550 5.1.1 <unknown.user@dest.test>: Recipient address rejected: User unknown in virtual mailbox table' },
      },
    ]);
    expect(report.original).toEqual({
      messageId: '<0190a4c2e6f1a3b5c7d9e1.7@sender.test>', returnPath: 'b+0190a4c2e6f1a3b5c7d9e1.7.xa5znjwbpn@bounces.sender.test',
      queueId: null, to: ['unknown.user@dest.test'], from: 'app@sender.test',
    });
    expect(bounceVerdict(dsnEvidence(report.recipients[0]!), BOUNCE_RULES)).toMatchObject({ disposition: 'permanent', code: 550, enhanced: '5.1.1', bounceClass: 'unknown-user' });
  });

  it("reads Postfix's DSN that returns the original's headers only (RET=HDRS)", async () => {
    const report = await dsnOf(feedbackFixture('postfix-headers-only.eml'));
    expect(report.recipients[0]).toMatchObject({ finalRecipient: 'unknown.other@dest.test', action: 'failed', status: '5.1.1' });
    expect(report.original).toMatchObject({ messageId: '<0190a4c2e6f1a3b5c7d9e1.8@sender.test>', returnPath: 'b+0190a4c2e6f1a3b5c7d9e1.8.leb6g3hzzs@bounces.sender.test' });
  });

  it("classifies Postfix's DSN for a refusal after DATA as spam, and its delay warning as transient", async () => {
    const spam = await dsnOf(feedbackFixture('postfix-spam-rejected.eml'));
    expect(bounceVerdict(dsnEvidence(spam.recipients[0]!), BOUNCE_RULES)).toEqual({
      disposition: 'permanent', code: 554, enhanced: '5.7.1', text: '5.7.1 Message rejected as spam by content filter', bounceClass: 'spam',
    });

    const delayed = await dsnOf(feedbackFixture('postfix-delayed.eml'));
    expect(delayed.recipients[0]).toMatchObject({ action: 'delayed', status: '4.7.1', finalRecipient: 'grey.listed@dest.test' });
    expect(bounceVerdict(dsnEvidence(delayed.recipients[0]!), BOUNCE_RULES)).toMatchObject({ disposition: 'transient', code: 450, enhanced: '4.7.1', bounceClass: 'policy' });
  });

  it('takes the status as the enhanced code when the diagnostic is not an SMTP reply', async () => {
    const verdict = bounceVerdict(dsnEvidence({
      finalRecipient: 'a@dest.test', originalRecipient: null, action: 'failed', status: '5.4.4', remoteMta: null,
      diagnostic: { type: 'x-postfix', text: 'Host or domain name not found. Name service error for name=dest.test type=MX' },
    }), BOUNCE_RULES);
    expect(verdict).toEqual({ disposition: 'permanent', code: null, enhanced: '5.4.4', text: '5.4.4 Host or domain name not found. Name service error for name=dest.test type=MX', bounceClass: 'dns' });
  });

  it('reads a report without a per-message group, and one with typeless and bracketed addresses', async () => {
    const raw = dsnMessage('Final-Recipient: <A@Dest.test>\r\nAction: Failed (permanent)\r\nStatus: 5.2.1 (disabled)\r\n');
    const report = await dsnOf(raw);
    expect(report.reportingMta).toBeNull();
    expect(report.recipients).toEqual([{ finalRecipient: 'A@Dest.test', originalRecipient: null, action: 'failed', status: '5.2.1', diagnostic: null, remoteMta: null }]);
    expect(report.original).toBeNull();
  });

  it(`reads at most ${MAX_DSN_RECIPIENTS} recipients of one report`, async () => {
    const blocks = Array.from({ length: MAX_DSN_RECIPIENTS + 20 }, (_, i) => `Final-Recipient: rfc822; r${i}@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\n`);
    const report = await dsnOf(dsnMessage(`Reporting-MTA: dns; mx.test\r\n\r\n${blocks.join('\r\n')}`));
    expect(report.recipients).toHaveLength(MAX_DSN_RECIPIENTS);
  });

  it('reads a UTF-8 recipient (RFC 6533): in its own DSN as it is, in a remote one in the xtext form', async () => {
    const original = Buffer.from('From: app@sender.test\r\nTo: ünï@dest.test\r\nSubject: hi\r\n\r\nbody\r\n', 'utf8');
    const own = await buildDsn({
      reportingMta: 'mx.rookery.test',
      original: { id: '0190aaaabbbbccccddddeeee', sender: 'app@sender.test', messageIdHeader: null, body: original, pool: 'default' },
      failed: [{ recipient: 'ünï@dest.test', outcome: failure({}) }],
      now: Date.UTC(2026, 10, 30, 1),
      id: 'dsn-1',
    });
    expect((await dsnOf(own.body)).recipients).toMatchObject([{ finalRecipient: 'ünï@dest.test', action: 'failed', status: '5.1.1' }]);

    const remote = Buffer.from(
      'From: MAILER-DAEMON@mx.dest.test\r\nTo: b+x@bounces.sender.test\r\nSubject: failure\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n' +
        '--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n' +
        '--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n' +
        'Final-Recipient: utf-8; \\x{FC}n\\x{EF}@dest.test\r\nOriginal-Recipient: utf-8; j\\x{0}x@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\n' +
        '--b--\r\n',
    );
    expect((await dsnOf(remote)).recipients).toMatchObject([{ finalRecipient: 'ünï@dest.test', originalRecipient: 'j\\x{0}x@dest.test' }]);
  });

  it('is no DSN without a delivery-status part', async () => {
    expect(parseDsnReport(await readReportMessage(feedbackFixture('exim-user-unknown.eml')))).toBeNull();
    expect(parseDsnReport(await readReportMessage(feedbackFixture('arf-yahoo.eml')))).toBeNull();
  });
});

function dsnMessage(status: string): Buffer {
  return Buffer.from(
    'From: MAILER-DAEMON@mx.test\r\nTo: b@bounces.test\r\nSubject: Undeliverable\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n' +
      '--b1\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n' +
      `--b1\r\nContent-Type: message/delivery-status\r\n\r\n${status}\r\n--b1--\r\n`,
  );
}
