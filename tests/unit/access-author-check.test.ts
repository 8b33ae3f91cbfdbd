import { describe, expect, it } from 'vitest';
import { checkAuthors } from '../../src/access/author-check.ts';

const ALLOWED = ['*@app.example'];
const from = (value: string) => `From: ${value}\r\nSubject: x\r\n`;

describe('checkAuthors', () => {
  it.each([
    '<me@app.example> <ceo@victim.example>',
    'me@app.example ceo@victim.example',
    'ceo@victim.example <me@app.example>',
    '<me@app.example>ceo@victim.example',
    'me@app.example <>',
    'no address at all',
  ])('refuses %j: it does not parse to exactly the addresses written', (value) => {
    expect(checkAuthors(from(value), ALLOWED)).toEqual({ code: 'BAD_AUTHOR_HEADER', message: 'From header does not parse as a list of addresses' });
  });

  it.each([
    'me@app.example',
    'Me <me@app.example>',
    '"ceo@victim.example" <me@app.example>',
    'CEO (ceo@victim.example) <me@app.example>',
    'me@app.example (comment "with" quotes)',
    '"App \\"quoted\\" (not a comment)" <ME@APP.EXAMPLE>',
    '=?utf-8?Q?ceo=40victim.example?= <me@app.example>',
    'Team: a@app.example, b@app.example;',
    '<@relay.example:me@app.example>',
  ])('accepts %j', (value) => {
    expect(checkAuthors(from(value), ALLOWED)).toBeNull();
  });

  it('holds every parsed address to allowedSenders', () => {
    expect(checkAuthors(from('me@app.example, ceo@victim.example'), ALLOWED)).toMatchObject({ code: 'SENDER_NOT_ALLOWED', address: 'ceo@victim.example' });
    expect(checkAuthors('From: me@app.example\r\nSender: ceo@victim.example\r\n', ALLOWED)).toMatchObject({ code: 'SENDER_NOT_ALLOWED' });
  });

  it('refuses a second From or Sender field (any case, blanks before the colon) for every client', () => {
    expect(checkAuthors('From: a@x.example\r\nSubject: s\r\nfrom : b@x.example\r\n', null)).toEqual({ code: 'BAD_AUTHOR_HEADER', message: 'Message has more than one From header' });
    expect(checkAuthors('Sender: a@x.example\r\nSENDER: a@x.example\r\n', null)).toMatchObject({ message: 'Message has more than one Sender header' });
    // A session without a user is not held to allowedSenders or to the strict parse.
    expect(checkAuthors(from('<a@x.example> <b@y.example>'), null)).toBeNull();
    expect(checkAuthors('Subject: no author\r\n', ALLOWED)).toBeNull();
  });
});
