import { describe, expect, it } from 'vitest';
import { readReportMessage, type ReportLimits } from '../../src/feedback/report-message.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';

const LIMITS: ReportLimits = { maxBytes: 64 * 1024, maxParts: 10, maxHeaderBytes: 4096, maxHeaderFields: 50 };

describe('reading a report within bounds', () => {
  it("keeps the report's parts apart from its text: the attached original is not merged into it", async () => {
    const message = await readReportMessage(feedbackFixture('arf-rfc5965-full.eml'));
    expect(message.parts.map((p) => p.contentType)).toEqual(['message/feedback-report', 'message/rfc822']);
    expect(message.text).toContain('This is an email abuse report');
    expect(message.text).not.toContain('Hello, here is your digest');
    expect(message.subject).toBe('FW: Your weekly digest');
    expect(message.from).toBe('abusedesk@example.com');
  });

  it('refuses a message over the size limit', async () => {
    await expect(readReportMessage(Buffer.alloc(LIMITS.maxBytes + 1, 'a'), LIMITS)).rejects.toMatchObject({ name: 'MalformedReportError', reason: 'too-large' });
  });

  it('refuses a message of too many parts', async () => {
    const parts = Array.from({ length: 20 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join('');
    const raw = Buffer.from(`Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`);
    await expect(readReportMessage(raw, LIMITS)).rejects.toMatchObject({ reason: 'too-many-parts' });
  });

  it('refuses a header block over the size limit, and too many header fields', async () => {
    await expect(readReportMessage(Buffer.from(`Subject: ${'x'.repeat(5000)}\r\n\r\nbody\r\n`), LIMITS)).rejects.toMatchObject({ reason: 'too-many-headers' });
    const fields = Array.from({ length: 60 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
    await expect(readReportMessage(Buffer.from(`${fields}\r\nbody\r\n`), LIMITS)).rejects.toMatchObject({ reason: 'too-many-headers' });
  });

  it('reads a message that is not MIME at all, and one with a broken structure, without failing', async () => {
    expect(await readReportMessage(Buffer.from('just some bytes \x00\xff without a header\r\n'), LIMITS)).toMatchObject({ parts: [], original: null });
    const broken = Buffer.from('Content-Type: multipart/report; report-type=delivery-status; boundary=zz\r\n\r\n--zz\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n');
    expect((await readReportMessage(broken, LIMITS)).parts.map((p) => p.contentType)).toEqual(['message/delivery-status']);
  });
});
