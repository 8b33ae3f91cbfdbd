import { describe, expect, it } from 'vitest';
import { receivedField } from '../../src/smtp/received-header.ts';

const at = Date.UTC(2026, 10, 22, 10, 0, 0);

describe('receivedField', () => {
  it('writes the RFC 5321 trace with reverse name, address literal, protocol, id and date', () => {
    expect(
      receivedField({
        helo: 'app.example',
        reverseName: 'host7.app.example',
        clientIp: '192.0.2.10',
        hostname: 'mta.rookery.test',
        protocol: 'ESMTPSA',
        id: 'abc123',
        at,
      }),
    ).toBe(
      'from app.example (host7.app.example [192.0.2.10])\r\n' +
        '\tby mta.rookery.test (Rookery) with ESMTPSA id abc123;\r\n' +
        '\tSun, 22 Nov 2026 10:00:00 +0000',
    );
  });

  it('uses the IP without reverse name and IPv6 literals; an EHLO name that is not a host name goes into the comment, encoded', () => {
    const field = receivedField({
      helo: 'evil (x) name',
      reverseName: null,
      clientIp: '2001:db8::5',
      hostname: 'mta.rookery.test',
      protocol: 'ESMTP',
      id: 'id1',
      at,
    });
    expect(field.startsWith('from [IPv6:2001:db8::5] (2001:db8::5 [IPv6:2001:db8::5] helo=evil%20%28x%29%20name)\r\n')).toBe(true);
  });

  it.each([
    ['"><script>', '%22%3E%3Cscript%3E'],
    ['caf\u00e9.example', 'caf%C3%A9.example'],
    ['\ufffd\ufffd', '%EF%BF%BD%EF%BF%BD'],
    ['a..b', 'a..b'],
    ['[300.1.1.1]', '%5B300.1.1.1%5D'],
  ])('writes EHLO %j in a safe form', (helo, encoded) => {
    const field = receivedField({ helo, reverseName: 'host.app.example', clientIp: '192.0.2.7', hostname: 'h', protocol: 'ESMTP', id: 'i', at });
    const first = field.split('\r\n')[0]!;
    expect(first).toBe(`from [192.0.2.7] (host.app.example [192.0.2.7] helo=${encoded})`);
    expect(first).toMatch(/^[\x21-\x7e ]+$/);
    expect(first).not.toMatch(/[<>"]/);
  });

  it('keeps host names and address literals as the client gave them', () => {
    for (const helo of ['app.example', 'localhost', 'mail_1.app.example.', '[192.0.2.7]', '[IPv6:2001:db8::7]']) {
      const field = receivedField({ helo, reverseName: null, clientIp: '192.0.2.7', hostname: 'h', protocol: 'ESMTP', id: 'i', at });
      expect(field.startsWith(`from ${helo} (192.0.2.7 [192.0.2.7])`), helo).toBe(true);
    }
  });

  it('falls back to the address literal when the client gave no HELO', () => {
    const field = receivedField({ helo: '', reverseName: null, clientIp: '192.0.2.1', hostname: 'h', protocol: 'SMTP', id: 'i', at });
    expect(field.startsWith('from [192.0.2.1] (192.0.2.1 [192.0.2.1])')).toBe(true);
  });
});
