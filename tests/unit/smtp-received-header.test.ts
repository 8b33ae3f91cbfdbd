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

  it('uses the IP without reverse name, IPv6 literals, and strips comment-breaking characters from HELO', () => {
    const field = receivedField({
      helo: 'evil (x) name',
      reverseName: null,
      clientIp: '2001:db8::5',
      hostname: 'mta.rookery.test',
      protocol: 'ESMTP',
      id: 'id1',
      at,
    });
    expect(field.startsWith('from evilxname (2001:db8::5 [IPv6:2001:db8::5])\r\n')).toBe(true);
  });

  it('falls back to the address literal when the client gave no HELO', () => {
    const field = receivedField({ helo: '', reverseName: null, clientIp: '192.0.2.1', hostname: 'h', protocol: 'SMTP', id: 'i', at });
    expect(field.startsWith('from [192.0.2.1] (192.0.2.1 [192.0.2.1])')).toBe(true);
  });
});
