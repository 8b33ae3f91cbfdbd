import { describe, expect, it } from 'vitest';
import { authorDomain, MAX_AUTHOR_FIELD_BYTES, readAuthors } from '../../src/mail/authors.ts';
import { splitHeader } from '../../src/mail/message-headers.ts';

/** A message whose From field is `value`, given as UTF-8 text or as raw bytes. */
function withFrom(value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from('Subject: x\r\nFrom: '), Buffer.from(value), Buffer.from('\r\nTo: a@dest.example\r\n\r\nbody\r\n')]);
}

const headerOf = (message: Buffer) => splitHeader(message).header;

/** Characters a UTF-8 reader takes for whitespace and a Latin-1 reader for letters. */
const SEPARATORS = { 'U+2028': '\u2028', 'U+2029': '\u2029', 'U+3000': '\u3000', 'U+2003': '\u2003', 'U+205F': '\u205f', 'U+FEFF': '\ufeff', 'U+00A0': '\u00a0' };

describe('authorDomain (the signer\'s d=)', () => {
  it('reads the From domain from display names, comments, groups and encoded words', () => {
    const from = (value: string) => authorDomain(withFrom(value));
    expect(from('"Alice @ Work" <alice@Example.com>')).toBe('example.com');
    expect(from('alice@example.com (Alice <x@other.example>)')).toBe('example.com');
    expect(from('Team: alice@example.com, bob@example.com;')).toBe('example.com');
    expect(from('=?utf-8?q?J=C3=B6ran?= <joran@example.com>')).toBe('example.com');
    expect(from('"Jöran Müller" <joran@example.com>')).toBe('example.com');
    // RFC 6532: an internationalized address, signed for its domain's A-label.
    expect(from('Jöran <jöran@Bücher.example>')).toBe('xn--bcher-kva.example');
    expect(from('undisclosed')).toBeNull();
    expect(authorDomain(Buffer.from('Subject: x\r\n\r\nFrom: a@example.com\r\n'))).toBeNull();
    // An empty first line ends a header that has no fields: the From after it is body text.
    expect(authorDomain(Buffer.from('\r\nFrom: a@example.com\r\n\r\nbody\r\n'))).toBeNull();
  });

  it.each(Object.entries(SEPARATORS))('signs for no domain when %s (as UTF-8) joins two addresses', (_name, separator) => {
    expect(authorDomain(withFrom(`ceo@victim.example${separator}me@app.example`))).toBeNull();
    expect(authorDomain(withFrom(`<me@app.example>${separator}<ceo@victim.example>`))).toBeNull();
  });

  it('signs for no domain when the author cannot be read one way only', () => {
    expect(authorDomain(withFrom(`Jöran <jöran@bücher.example>${SEPARATORS['U+3000']}<x@y.example>`))).toBeNull();
    expect(authorDomain(Buffer.from('From: a@one.example\r\nFrom: b@two.example\r\n\r\n'))).toBeNull();
    expect(authorDomain(withFrom(`a@one.example (${'x'.repeat(MAX_AUTHOR_FIELD_BYTES)})`))).toBeNull();
  });
});

describe('readAuthors', () => {
  it('gives each field\'s parsed and written addresses, decoded as UTF-8', () => {
    const header = 'From: "Zoë (CEO)" <zoe@app.example>, Team: a@app.example;\r\nSender:\r\n billing@shop.example\r\n';
    expect(readAuthors(Buffer.from(header).toString('latin1'))).toEqual({
      ok: true,
      fields: [
        { name: 'From', addresses: ['zoe@app.example', 'a@app.example'], written: ['zoe@app.example', 'a@app.example'] },
        { name: 'Sender', addresses: ['billing@shop.example'], written: ['billing@shop.example'] },
      ],
    });
    // A lenient parser reads fewer addresses than are written.
    expect(readAuthors('From: <me@app.example> <ceo@victim.example>\r\n')).toMatchObject({
      fields: [{ addresses: ['me@app.example'], written: ['me@app.example', 'ceo@victim.example'] }],
    });
  });

  it('refuses a field that reads two ways, naming why', () => {
    const problem = (value: string | Buffer) => readAuthors(headerOf(withFrom(value)));
    expect(problem(`ceo@victim.example${SEPARATORS['U+2028']}me@app.example`)).toEqual({
      ok: false,
      problem: 'From header has non-ASCII characters other than letters outside quoted strings, comments and display names',
    });
    // Latin-1 bytes that are not UTF-8: a Latin-1 reader sees a no-break space.
    expect(problem(Buffer.from('me@app.example\xa0ceo@victim.example', 'latin1'))).toMatchObject({ ok: false });
    // A raw UTF-8 display name before <...> names no mailbox (common, if not RFC 5322); one with an '@' might.
    expect(readAuthors(headerOf(withFrom('Jürgen Müller <juergen@app.example>')))).toMatchObject({ ok: true, fields: [{ addresses: ['juergen@app.example'] }] });
    expect(readAuthors(headerOf(withFrom('Équipe: a@app.example, Zoë <b@app.example>;')))).toMatchObject({ ok: true, fields: [{ addresses: ['a@app.example', 'b@app.example'] }] });
    expect(problem(`ceo@victim.example${SEPARATORS['U+2028']} <me@app.example>`)).toMatchObject({ ok: false });
    // UTF-8 letters in an address are RFC 6532 mail: read, in the UTF-8 reading.
    expect(problem('Zoë <zoë@bücher.example>')).toEqual({ ok: true, fields: [{ name: 'From', addresses: ['zoë@bücher.example'], written: ['zoë@bücher.example'] }] });
    expect(problem('"jö"@x.example')).toMatchObject({ ok: true, fields: [{ addresses: ['jö@x.example'] }] });
    // Inside quotes non-ASCII is text, but a quoted local part is the address itself: letters only.
    expect(problem(`"ceo${SEPARATORS['U+2028']}"@x.example`)).toMatchObject({ ok: false });
    expect(problem(`"ceo${SEPARATORS['U+3000']}x"@x.example`)).toEqual({ ok: false, problem: 'From header has an address with non-ASCII characters other than letters' });
    // Letters that are not UTF-8 (Latin-1 bytes) are no address either.
    expect(problem(Buffer.from('J\xf6ran <j\xf6ran@x.example>', 'latin1'))).toMatchObject({ ok: false });
    expect(readAuthors('From: a@x.example\r\nSubject: s\r\nfrom : b@x.example\r\n')).toEqual({ ok: false, problem: 'Message has more than one From header' });
    expect(readAuthors('Sender: a@x.example\r\nSENDER: a@x.example\r\n')).toEqual({ ok: false, problem: 'Message has more than one Sender header' });
  });

  it('bounds the cost of any header block: long fields are refused unread, continuation lines and many fields are one pass', () => {
    expect(readAuthors(headerOf(withFrom('a@b.example,'.repeat(200_000))))).toEqual({ ok: false, problem: 'From header is longer than 4096 bytes' });
    expect(readAuthors(`From: a@b.example\r\n${' x\r\n'.repeat(500_000)}`)).toEqual({ ok: false, problem: 'From header is longer than 4096 bytes' });
    expect(readAuthors(`${'From:\r\n'.repeat(500_000)}`)).toEqual({ ok: false, problem: 'Message has more than one From header' });
    // Just within the limit (folding counted), and a field name that only starts like one.
    const folded = `From: ${'x'.repeat(MAX_AUTHOR_FIELD_BYTES - 40)}\r\n <a@b.example>\r\nFromage: cheese\r\n`;
    expect(readAuthors(folded)).toMatchObject({ ok: true, fields: [{ name: 'From', addresses: ['a@b.example'] }] });
  });
});
