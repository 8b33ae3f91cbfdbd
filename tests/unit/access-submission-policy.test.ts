import { describe, expect, it } from 'vitest';
import { checkHeaderBlock, checkRecipient, MAX_HEADER_BYTES } from '../../src/access/submission-policy.ts';
import { envelopeAddressProblem } from '../../src/mail/address.ts';

describe('checkHeaderBlock', () => {
  it('refuses a header block over the limit before reading its authors', () => {
    const header = `From: a@x.example\r\nFrom: b@x.example\r\nX-Pad: ${'p'.repeat(MAX_HEADER_BYTES)}\r\n`;
    expect(checkHeaderBlock(header, null)).toMatchObject({ code: 'HEADER_TOO_LARGE', bytes: header.length });
  });

  it('holds the author fields to allowedSenders, and only reads them for a trusted client', () => {
    const header = 'From: ceo@victim.example\r\nSubject: x\r\n';
    expect(checkHeaderBlock(header, ['*@app.example'])).toMatchObject({ code: 'SENDER_NOT_ALLOWED', address: 'ceo@victim.example' });
    expect(checkHeaderBlock(header, null)).toBeNull();
    expect(checkHeaderBlock('From: a@x.example\r\nFrom: b@x.example\r\n', null)).toMatchObject({ code: 'BAD_AUTHOR_HEADER' });
  });
});

describe('checkRecipient', () => {
  it('needs a domain', () => {
    expect(checkRecipient('postmaster', [], 10)).toEqual({ code: 'BAD_ADDRESS', message: 'Recipient address must have a domain' });
  });

  it('counts a new address against the limit, a repeat (any ASCII case) not', () => {
    const accepted = ['a@x.example', 'b@x.example'];
    expect(checkRecipient('c@x.example', accepted, 2)).toMatchObject({ code: 'TOO_MANY_RECIPIENTS' });
    expect(checkRecipient('B@X.example', accepted, 2)).toBeNull();
    expect(checkRecipient('c@x.example', accepted, 3)).toBeNull();
  });

  it('takes an IDN in either form, and a UTF-8 local part in any case, for one address', () => {
    const accepted = ['jörg@bücher.example'];
    expect(checkRecipient('JÖRG@xn--bcher-kva.example', accepted, 1)).toBeNull();
    expect(checkRecipient('jorg@bücher.example', accepted, 1)).toMatchObject({ code: 'TOO_MANY_RECIPIENTS' });
  });
});

describe('envelopeAddressProblem', () => {
  it.each(['user@example.com', "o'brien+tag@mail.example.co.uk", 'a.b-c@xn--bcher-kva.example', 'UPPER@Example.COM', 'user@bücher.example', 'jörg.müller@bücher.example', 'δοκιμή@παράδειγμα.δοκιμή', '用户@例子.广告'])('takes %j', (address) => {
    expect(envelopeAddressProblem(address)).toBeNull();
  });

  it.each([
    ['user', 'not an address'],
    ['@example.com', 'not an address'],
    ['user@', 'not a domain name'],
    ['user@localhost', 'not a domain name'],
    ['a b@example.com', 'the part before @'],
    ['a..b@example.com', 'the part before @'],
    ['.a@example.com', 'the part before @'],
    ['"a b"@example.com', 'the part before @'],
    ['a@b@example.com', 'the part before @'],
    ['user@example.com\r\nRCPT TO:<x@evil.example>', 'not an address'],
    ['user@exa mple.com', 'not a domain name'],
    ['user@bü cher.example', 'not a domain name'],
    ['user@bücher.example.', 'not a domain name'],
    ['jö\u3000rg@bücher.example', 'the part before @'],
    ['jörg\u200b@bücher.example', 'the part before @'],
    ['a\u2028b@example.com', 'the part before @'],
    [`${'ü'.repeat(33)}@example.com`, 'longer than 64'],
    ['<user@example.com>', 'the part before @'],
    [`${'a'.repeat(65)}@example.com`, 'longer than 64'],
    // The decomposed spelling of jörg@ / bücher.: the precomposed one is the address.
    ['jo\u0308rg@example.com', 'normalization form C'],
    ['user@bu\u0308cher.example', 'normalization form C'],
  ])('refuses %j', (address, problem) => {
    expect(envelopeAddressProblem(address)).toContain(problem);
  });
});
