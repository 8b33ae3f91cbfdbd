import { describe, expect, it } from 'vitest';
import { toWireForm } from '../../src/mail/wire-form.ts';

const wire = (text: string) => toWireForm(Buffer.from(text, 'latin1')).toString('latin1');

describe('toWireForm', () => {
  it('returns a CRLF message as the same buffer', () => {
    const message = Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n');
    expect(toWireForm(message)).toBe(message);
    const empty = Buffer.alloc(0);
    expect(toWireForm(empty)).toBe(empty);
  });

  it('turns bare LF line endings into CRLF', () => {
    expect(wire('From: a@example.com\nSubject: x\n\nbody\n')).toBe('From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n');
    expect(wire('\nstarts with LF')).toBe('\r\nstarts with LF');
  });

  it('turns bare CR into CRLF, also at the very end', () => {
    expect(wire('a\rb\r')).toBe('a\r\nb\r\n');
    expect(wire('a\r\r\nb')).toBe('a\r\n\r\nb');
  });

  it('fixes mixed endings and leaves the CRLF ones alone', () => {
    expect(wire('a\r\nb\nc\r\nd\re\n\n')).toBe('a\r\nb\r\nc\r\nd\r\ne\r\n\r\n');
  });

  it('keeps 8-bit bytes as they are', () => {
    const body = Buffer.concat([Buffer.from('Subject: Grüße\n\n', 'utf8'), Buffer.from([0xff, 0x00, 0x80, 0x0a])]);
    expect(toWireForm(body)).toEqual(Buffer.concat([Buffer.from('Subject: Grüße\r\n\r\n', 'utf8'), Buffer.from([0xff, 0x00, 0x80, 0x0d, 0x0a])]));
  });
});
