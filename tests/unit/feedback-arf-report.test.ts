import { describe, expect, it } from 'vitest';
import { parseArfReport } from '../../src/feedback/arf-report.ts';
import { readReportMessage } from '../../src/feedback/report-message.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';

const VERP = 'b+0190a4c2e6f1a3b5c7d9e1.7.xa5znjwbpn@bounces.sender.test';

async function arfOf(name: string) {
  return parseArfReport(await readReportMessage(feedbackFixture(name)));
}

describe('ARF complaints (RFC 5965)', () => {
  it('reads the minimal report of RFC 5965 B.1: the original names itself by Message-ID and To', async () => {
    expect(await arfOf('arf-rfc5965-minimal.eml')).toEqual({
      feedbackType: 'abuse', userAgent: 'SomeGenerator/1.0', version: '1', originalMailFrom: null, originalRcptTo: [], arrivalDate: null, sourceIp: null, reportingMta: null,
      original: { messageId: '<arf-minimal.1@sender.test>', returnPath: null, queueId: null, to: ['user@example.com'], from: 'app@sender.test' },
    });
  });

  it('reads every optional field of RFC 5965 B.2, and the VERP return path of the attached original', async () => {
    expect(await arfOf('arf-rfc5965-full.eml')).toEqual({
      feedbackType: 'abuse', userAgent: 'SomeGenerator/1.0', version: '1', originalMailFrom: VERP, originalRcptTo: ['user@dest.test'],
      arrivalDate: 'Thu, 8 Mar 2026 14:00:00 EDT', sourceIp: '127.0.0.2', reportingMta: 'mail.example.com',
      original: { messageId: '<0190a4c2e6f1a3b5c7d9e1.7@sender.test>', returnPath: VERP, queueId: null, to: ['user@dest.test'], from: 'app@sender.test' },
    });
  });

  it("reads Yahoo's report: Received-Date for Arrival-Date, a redacted recipient", async () => {
    expect(await arfOf('arf-yahoo.eml')).toMatchObject({
      userAgent: 'Yahoo!-Mail-Feedback/2.0', originalRcptTo: ['redacted@yahoo.test'], arrivalDate: 'Mon, 30 Nov 2026 08:00:01 +0000', sourceIp: '127.0.0.2',
      original: { returnPath: VERP, to: ['redacted@yahoo.test'] },
    });
  });

  it("reads JMRP's report, whose original is a base64 attachment carrying X-Rookery-Queue-ID", async () => {
    expect(await arfOf('arf-jmrp.eml')).toMatchObject({
      userAgent: 'Microsoft JMRP', originalMailFrom: 'app@sender.test', originalRcptTo: [],
      original: { messageId: '<0190a4c2e6f1a3b5c7d9e1.7@sender.test>', returnPath: null, queueId: '0190a4c2e6f1a3b5c7d9e1', to: ['user@dest.test'] },
    });
  });

  it('reads a report that returns the headers of the original only (text/rfc822-headers)', async () => {
    expect(await arfOf('arf-headers-only.eml')).toMatchObject({
      userAgent: 'Fastmail/FBL', originalRcptTo: ['user@dest.test'],
      original: { messageId: '<0190a4c2e6f1a3b5c7d9e1.7@sender.test>', returnPath: VERP, to: ['user@dest.test'] },
    });
  });

  it('reads the null sender as an empty Original-Mail-From, and is no report without a feedback-report part', async () => {
    const raw = Buffer.from(
      'From: fbl@isp.test\r\nTo: fbl@sender.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n' +
        '--x\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: Not-Spam\r\nOriginal-Mail-From: <>\r\n--x--\r\n',
    );
    expect(parseArfReport(await readReportMessage(raw))).toMatchObject({ feedbackType: 'not-spam', originalMailFrom: '', original: null });
    expect(parseArfReport(await readReportMessage(feedbackFixture('postfix-user-unknown.eml')))).toBeNull();
  });
});
