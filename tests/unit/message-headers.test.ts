import { describe, expect, it } from 'vitest';
import { hasHeader, headerValue, rfc5322Date, splitHeader, withHeaders } from '../../src/mail/message-headers.ts';

const message = Buffer.from('From: a@x.test\r\nSubject: hi\r\n there\r\n\r\nbody line\r\n\r\nMessage-ID: <not-a-header>\r\n');

describe('message headers', () => {
  it('finds fields only in the header block, case-insensitively, with folded values unfolded', () => {
    const { header } = splitHeader(message);
    expect(hasHeader(header, 'subject')).toBe(true);
    expect(headerValue(header, 'SUBJECT')).toBe('hi there');
    // A "Message-ID:" line in the body is not a header.
    expect(hasHeader(header, 'Message-ID')).toBe(false);
    // A field whose name merely ends with the name asked for does not count.
    expect(hasHeader('X-Date: 1\r\n', 'Date')).toBe(false);
  });

  it('prepends and appends fields and keeps the body bytes as they were', () => {
    const out = withHeaders(message, ['Received: from a by b'], ['Message-ID: <1@h>', 'Date: x']).toString();
    expect(out).toBe(
      'Received: from a by b\r\nFrom: a@x.test\r\nSubject: hi\r\n there\r\nMessage-ID: <1@h>\r\nDate: x\r\n\r\nbody line\r\n\r\nMessage-ID: <not-a-header>\r\n',
    );
  });

  it('removes fields by name, folded lines included, and nothing else', () => {
    const input = Buffer.from('X-Rookery-Pool: marketing\r\nSubject: a\r\nx-rookery-pool: b\r\n  folded\r\nTo: t\r\n\r\nX-Rookery-Pool: in the body\r\n');
    expect(withHeaders(input, [], [], ['X-Rookery-Pool']).toString()).toBe('Subject: a\r\nTo: t\r\n\r\nX-Rookery-Pool: in the body\r\n');
  });

  it('handles a message that is all header', () => {
    const out = withHeaders(Buffer.from('Subject: x\r\n'), [], ['Date: y']).toString();
    expect(out).toBe('Subject: x\r\nDate: y\r\n\r\n');
  });

  it('adds fields to a message without header fields before its blank line, not into its body', () => {
    const headerless = Buffer.from('\r\nbody line\r\nDate: in the body\r\n');
    expect(splitHeader(headerless)).toEqual({ header: '', body: headerless });
    expect(withHeaders(headerless, ['Received: r'], ['Message-ID: <1@h>']).toString()).toBe('Received: r\r\nMessage-ID: <1@h>\r\n\r\nbody line\r\nDate: in the body\r\n');
  });

  it('formats dates per RFC 5322', () => {
    expect(rfc5322Date(Date.UTC(2026, 10, 22, 10, 0, 0))).toBe('Sun, 22 Nov 2026 10:00:00 +0000');
  });
});
