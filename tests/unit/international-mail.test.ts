import { describe, expect, it } from 'vitest';
import { envelopeForServer, hasUtf8Headers } from '../../src/engine/international-mail.ts';
import { addressKey, asciiAddress, asciiDomain, domainOf, splitAddress } from '../../src/mail/address.ts';

const SERVER = { remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' };
const ASCII_BODY = Buffer.from('From: a@sender.test\r\nSubject: x\r\n\r\nGrüße im Text.\r\n', 'utf8');
const UTF8_BODY = Buffer.from('From: a@sender.test\r\nSubject: Grüße\r\n\r\nx\r\n', 'utf8');

describe('addresses in one form for comparing', () => {
  it('puts a domain in lower case with U-labels as A-labels, leaving what is no domain name as given', () => {
    expect(asciiDomain('Bücher.Example')).toBe('xn--bcher-kva.example');
    expect(asciiDomain('XN--BCHER-KVA.example')).toBe('xn--bcher-kva.example');
    expect(asciiDomain('[192.0.2.1]')).toBe('[192.0.2.1]');
    expect(domainOf('jörg@BÜCHER.example')).toBe('xn--bcher-kva.example');
    expect(splitAddress('Jörg@bücher.example')).toEqual({ local: 'Jörg', domain: 'xn--bcher-kva.example' });
  });

  it('keys an address by its folded local part and its A-label domain; an ASCII address by its lower case, as before', () => {
    expect(addressKey('JÖRG@Bücher.example')).toBe('jörg@xn--bcher-kva.example');
    expect(addressKey('jörg@xn--bcher-kva.example')).toBe('jörg@xn--bcher-kva.example');
    expect(addressKey('ΔΟΚΙΜΉ@example.com')).toBe('δοκιμή@example.com');
    expect(addressKey('Plain.User@Example.COM')).toBe('plain.user@example.com');
  });

  it('keys the two Unicode spellings of one mailbox alike (NFC, RFC 6532 3.1), local part and domain', () => {
    const precomposed = 'j\u00f6rg@b\u00fccher.example';
    const decomposed = 'jo\u0308rg@bu\u0308cher.example';
    expect(addressKey(decomposed)).toBe(addressKey(precomposed));
    expect(addressKey('JO\u0308RG@example.com')).toBe('j\u00f6rg@example.com');
    expect(domainOf(decomposed)).toBe('xn--bcher-kva.example');
    // A name IDNA refuses is kept as given, in NFC all the same.
    expect(asciiDomain('bu\u0308cher\u3000.example')).toBe(asciiDomain('b\u00fccher\u3000.example'));
    // ASCII keys are what they always were (entries already stored are found by them).
    expect(addressKey('Mixed.Case+Tag@Sub.Example.COM')).toBe('mixed.case+tag@sub.example.com');
  });

  it('has an ASCII form for an ASCII local part only', () => {
    expect(asciiAddress('user@bücher.example')).toBe('user@xn--bcher-kva.example');
    expect(asciiAddress('jörg@example.com')).toBeNull();
    expect(asciiAddress('postmaster')).toBe('postmaster');
  });
});

describe('the envelope a server gets (RFC 6531)', () => {
  const delivery = (sender: string, recipients: string[], body = ASCII_BODY) => ({ sender, recipients, body });

  it('needs nothing for ASCII mail, nor for a domain in U-labels: A-labels, no SMTPUTF8, whatever the server offers', () => {
    for (const offers of [true, false]) {
      expect(envelopeForServer(delivery('news@bücher.test', ['a@dest.test', 'b@Bücher.test']), offers, SERVER)).toEqual({
        sender: 'news@xn--bcher-kva.test',
        recipients: ['a@dest.test', 'b@xn--bcher-kva.test'],
        smtpUtf8: false,
      });
    }
    expect(envelopeForServer(delivery('', ['a@dest.test']), false, SERVER)).toEqual({ sender: '', recipients: ['a@dest.test'], smtpUtf8: false });
  });

  it('sends what needs SMTPUTF8 as it is to a server that offers it', () => {
    expect(envelopeForServer(delivery('a@sender.test', ['jörg@bücher.test', 'b@bücher.test']), true, SERVER)).toEqual({
      sender: 'a@sender.test',
      recipients: ['jörg@bücher.test', 'b@bücher.test'],
      smtpUtf8: true,
    });
    expect(envelopeForServer(delivery('a@sender.test', ['b@dest.test'], UTF8_BODY), true, SERVER).smtpUtf8).toBe(true);
  });

  it('bounces a UTF-8 local part with 5.6.7 at a server without it; the sender or UTF-8 headers bounce every recipient', () => {
    const one = envelopeForServer(delivery('a@sender.test', ['jörg@dest.test', 'b@bücher.test']), false, SERVER);
    expect(one.recipients[0]).toMatchObject({ disposition: 'permanent', enhanced: '5.6.7', stage: 'mail', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' });
    expect(one.recipients[1]).toBe('b@xn--bcher-kva.test');
    for (const [sender, body, what] of [['jörg@sender.test', ASCII_BODY, 'the sender address needs'], ['a@sender.test', UTF8_BODY, 'UTF-8 header fields need']] as const) {
      const all = envelopeForServer(delivery(sender, ['a@dest.test', 'b@dest.test'], body), false, SERVER);
      expect(all.recipients).toEqual(Array(2).fill(expect.objectContaining({ disposition: 'permanent', enhanced: '5.6.7', response: `not sent: ${what} SMTPUTF8 (RFC 6531), which mx.dest.test does not offer` })));
    }
  });

  it('reads UTF-8 in the header block only, and legacy 8-bit there as no UTF-8', () => {
    expect(hasUtf8Headers(UTF8_BODY)).toBe(true);
    expect(hasUtf8Headers(ASCII_BODY)).toBe(false);
    expect(hasUtf8Headers(Buffer.from('Subject: caf\xe9\r\n\r\nx\r\n', 'latin1'))).toBe(false);
    expect(hasUtf8Headers(Buffer.from('Subject: café', 'utf8'))).toBe(true);
  });
});
