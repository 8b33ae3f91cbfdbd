import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { dkimConfigSchema, type DkimConfigInput } from '../../src/config/dkim-schema.ts';
import { createDkimKeyStore, type DkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { createDkimSigner, type DkimSigner } from '../../src/sender-domains/signer.ts';
import { createSigningPool, type SigningPool } from '../../src/sender-domains/signing-pool.ts';
import { toWireForm } from '../../src/mail/wire-form.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createDkimKeyFiles, dkimSignatureTags, fixtureTxtResolver, readKeysOf, verifyWithMailauth, type DkimKeyFile, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { inCi, pythonDkimAvailability, verifyWithPythonDkim } from '../helpers/python-dkim.ts';

/*
 * Every signed message is verified by two independent implementations: mailauth (whose signer
 * made it, so a shared mistake would pass there) and Debian's python3-dkim (dkimpy, behind
 * `dkimverify`), each against the public keys served by a fixture DNS.
 *
 * Raw UTF-8 in header fields (SMTPUTF8, RFC 6532) is signed and verified as bytes: both
 * verifiers accept it, dkimpy without decoding it. Internationalised From domains sign with
 * d= as an A-label, which both look up as such. (An author field keeps raw UTF-8 to its quoted
 * strings and comments, or it is not read at all: see src/mail/authors.ts.)
 */

const python = pythonDkimAvailability();
if (!python.available && !inCi) console.warn(`dkim-sign-verify: python3-dkim cross-checks skipped: ${python.reason}`);

const logger = createLogger('silent');
let files: DkimKeyFiles;
let rsaNew: DkimKeyFile;
const stores: DkimKeyStore[] = [];
const pool = createSigningPool({ size: 2, logger });

beforeAll(async () => {
  files = await createDkimKeyFiles();
  rsaNew = await files.write('rsa-new.pem', 'rsa');
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.stop()));
  await pool.close();
  await files.remove();
});

/** The DNS zone of the fixture resolver: every selector the configs below use. */
function zone(): Record<string, string> {
  const records: Record<string, string> = {};
  for (const domain of ['example.com', 'xn--bcher-kva.example']) {
    records[`rsa._domainkey.${domain}`] = files.rsa.record;
    records[`ed._domainkey.${domain}`] = files.ed25519.record;
  }
  records['old._domainkey.rotating.example'] = files.rsa.record;
  records['new._domainkey.rotating.example'] = rsaNew.record;
  return records;
}

async function signerFor(dkim: DkimConfigInput, pool?: SigningPool): Promise<DkimSigner> {
  const config = dkimConfigSchema.parse(dkim);
  const keys = createDkimKeyStore({ keys: readKeysOf(config), resolver: fixtureTxtResolver(zone()), clock: systemClock, logger });
  stores.push(keys);
  await keys.start();
  return createDkimSigner({ keys, config, clock: systemClock, logger, pool });
}

/** Both verifiers pass every signature, and the signatures are the ones expected. */
async function expectVerified(message: Buffer, expected: { domain: string; selector: string }[]): Promise<void> {
  const records = zone();
  const byMailauth = await verifyWithMailauth(message, records);
  expect(byMailauth.map((v) => ({ domain: v.domain, selector: v.selector, result: v.result, comment: v.comment }))).toEqual(
    expected.map((e) => ({ ...e, result: 'pass', comment: undefined })),
  );
  if (!python.available) {
    if (inCi) throw new Error(`python3-dkim is required under CI=true: ${python.reason}`);
    return;
  }
  const byPython = await verifyWithPythonDkim(message, records);
  expect(byPython.map((v) => ({ domain: v.domain, selector: v.selector, valid: v.valid, error: v.error, log: v.valid ? [] : v.log }))).toEqual(
    expected.map((e) => ({ ...e, valid: true, error: null, log: [] })),
  );
}

const compose = (mail: ConstructorParameters<typeof MailComposer>[0]) => new MailComposer(mail).compile().build();

/** A small PNG (1x1) and some bytes that are not text, as attachments. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const BINARY = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256));

const corpus: [string, () => Promise<Buffer> | Buffer][] = [
  [
    'plain text',
    () =>
      compose({
        from: 'Alice <alice@example.com>',
        to: 'bob@example.org',
        subject: 'Plain text',
        text: 'Hello Bob,\n\nthis is plain text.\n\n-- \nAlice\n',
        messageId: '<plain@example.com>',
        date: new Date('2026-06-01T12:00:00Z'),
      }),
  ],
  [
    'HTML with attachments',
    () =>
      compose({
        from: 'Alice <alice@example.com>',
        to: ['bob@example.org', 'Carol <carol@example.org>'],
        cc: 'dave@example.org',
        replyTo: 'support@example.com',
        subject: 'Your invoice',
        text: 'Your invoice is attached.',
        html: '<p>Your invoice is attached.</p><img src="cid:logo@example.com">',
        attachments: [
          { filename: 'logo.png', content: PNG, cid: 'logo@example.com' },
          { filename: 'invoice.bin', content: BINARY, contentType: 'application/octet-stream' },
          { filename: 'notes.txt', content: 'line one\r\nline two\r\n' },
        ],
        headers: { 'List-Unsubscribe': '<https://example.com/u/1>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
      }),
  ],
  [
    '8-bit body and raw UTF-8 headers (SMTPUTF8)',
    () =>
      Buffer.from(
        'From: "Jöran Ångström" <joran@example.com>\r\n' +
          'To: Zoë <zoë@example.org>\r\n' +
          'Subject: Grüße aus Köln 🐦 — ça va?\r\n' +
          'Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n' +
          'Message-ID: <utf8@example.com>\r\n' +
          'MIME-Version: 1.0\r\n' +
          'Content-Type: text/plain; charset=utf-8\r\n' +
          'Content-Transfer-Encoding: 8bit\r\n' +
          '\r\n' +
          'Hallo Zoë,\r\n\r\nschöne Grüße, 你好, привет.\r\n  trailing spaces and\ttabs  \r\n\r\n\r\n',
        'utf8',
      ),
  ],
  [
    'very long lines in the body and long folded headers',
    () =>
      Buffer.from(
        'From: alice@example.com\r\n' +
          'To: bob@example.org\r\n' +
          `Subject: ${'long subject words '.repeat(20).trim()}\r\n` +
          `References: ${Array.from({ length: 30 }, (_, i) => `<ref-${i}@example.com>`).join('\r\n ')}\r\n` +
          'Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n' +
          'Message-ID: <long@example.com>\r\n' +
          '\r\n' +
          `${'x'.repeat(1_500)}\r\n` +
          `${'word '.repeat(400)}\r\n` +
          `${'y'.repeat(5_000)}\r\n`,
      ),
  ],
  [
    'LF-only line endings, put in wire form first',
    () =>
      toWireForm(
        Buffer.from('From: alice@example.com\nTo: bob@example.org\nSubject: From the HTTP API\nDate: Mon, 01 Jun 2026 12:00:00 +0000\n\nline one\nline two\n\n'),
      ),
  ],
  [
    'LF-only line endings, handed to the signer as they are',
    () => Buffer.from('From: alice@example.com\nTo: bob@example.org\nSubject: As given\n\nline one\nline two\n'),
  ],
  ['a body without a final line break', () => Buffer.from('From: alice@example.com\r\nTo: bob@example.org\r\nSubject: x\r\n\r\nno final CRLF')],
  ['an empty body', () => Buffer.from('From: alice@example.com\r\nTo: bob@example.org\r\nSubject: empty\r\n\r\n')],
];

describe('python3-dkim', () => {
  it.skipIf(!python.available && !inCi)('is installed (required under CI=true)', () => {
    expect(python, python.reason).toMatchObject({ available: true });
  });
});

describe.each([
  ['RSA-2048', { keys: [{ selector: 'rsa', privateKey: '{rsa}' }] }, ['rsa']],
  ['Ed25519', { keys: [{ selector: 'ed', privateKey: '{ed25519}' }] }, ['ed']],
  ['dual RSA + Ed25519', { keys: [{ selector: 'rsa', privateKey: '{rsa}' }, { selector: 'ed', privateKey: '{ed25519}' }] }, ['rsa', 'ed']],
  ['dual RSA + Ed25519 on signing threads', { keys: [{ selector: 'rsa', privateKey: '{rsa}' }, { selector: 'ed', privateKey: '{ed25519}' }], threads: true }, ['rsa', 'ed']],
] as const)('signed with %s, verified by mailauth and python3-dkim', (_name, domainConfig, selectors) => {
  let signer: DkimSigner;
  beforeAll(async () => {
    const keys = domainConfig.keys.map((k) => ({ selector: k.selector, privateKey: k.privateKey === '{rsa}' ? files.rsa.path : files.ed25519.path }));
    signer = await signerFor({ domains: { 'example.com': { keys } }, expiry: '7d' }, 'threads' in domainConfig ? pool : undefined);
  });

  it.each(corpus)('%s', async (_label, build) => {
    const input = await build();
    const signed = await signer.sign(input);
    expect(signed.domain).toBe('example.com');
    expect(signed.selectors).toEqual(selectors);
    expect(signed.message.toString('latin1')).not.toMatch(/[^\r]\n|\r[^\n]/);
    await expectVerified(signed.message, selectors.map((selector) => ({ domain: 'example.com', selector })));
  });
});

describe('signing domains, verified by both', () => {
  it('signs an internationalised From domain with its A-label', async () => {
    const signer = await signerFor({
      domains: { 'bücher.example': { keys: [{ selector: 'rsa', privateKey: files.rsa.path }, { selector: 'ed', privateKey: files.ed25519.path }] } },
    });
    const message = (from: string) => Buffer.from(`From: ${from}\r\nTo: leser@example.org\r\nSubject: Neue Bücher\r\n\r\nHallo.\r\n`, 'utf8');
    // Written as the A-label or as U-labels (RFC 6532, a UTF-8 local part too), one domain: d= its A-label.
    for (const from of ['"Bücherei" <info@xn--bcher-kva.example>', '"Bücherei" <info@bücher.example>', 'jörg@Bücher.example']) {
      const signed = await signer.sign(message(from));
      expect(signed.domain).toBe('xn--bcher-kva.example');
      expect(dkimSignatureTags(signed.message).map((t) => t.d)).toEqual(['xn--bcher-kva.example', 'xn--bcher-kva.example']);
      await expectVerified(signed.message, [
        { domain: 'xn--bcher-kva.example', selector: 'rsa' },
        { domain: 'xn--bcher-kva.example', selector: 'ed' },
      ]);
    }
    // A character that is no letter, where it could be part of an address, still reads two ways: not signed.
    expect((await signer.sign(message('info@bücher.example\u3000<x@example.com>'))).domain).toBeNull();
  });

  it('signs a subdomain and a fallback domain with d= the configured domain', async () => {
    const signer = await signerFor({
      domains: { 'example.com': { keys: [{ selector: 'rsa', privateKey: files.rsa.path }], subdomains: true } },
      fallback: 'example.com',
    });
    const sub = await signer.sign(Buffer.from('From: news@mail.news.example.com\r\nSubject: a\r\n\r\nx\r\n'));
    await expectVerified(sub.message, [{ domain: 'example.com', selector: 'rsa' }]);
    const other = await signer.sign(Buffer.from('From: someone@customer.example\r\nSubject: b\r\n\r\ny\r\n'));
    await expectVerified(other.message, [{ domain: 'example.com', selector: 'rsa' }]);
  });

  it('signs with the rotated-in key once DNS publishes it', async () => {
    const signer = await signerFor({
      domains: { 'rotating.example': { keys: [{ selector: 'old', privateKey: files.rsa.path }, { selector: 'new', privateKey: rsaNew.path }] } },
    });
    const signed = await signer.sign(Buffer.from('From: a@rotating.example\r\nTo: b@example.org\r\nSubject: r\r\n\r\nz\r\n'));
    expect(signed.selectors).toEqual(['new']);
    await expectVerified(signed.message, [{ domain: 'rotating.example', selector: 'new' }]);
  });

  it('both verifiers refuse a signed message with an added Subject', async () => {
    const signer = await signerFor({ domains: { 'example.com': { keys: [{ selector: 'rsa', privateKey: files.rsa.path }, { selector: 'ed', privateKey: files.ed25519.path }] } } });
    const signed = await signer.sign(Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: Hello\r\n\r\nbody\r\n'));
    await expectVerified(signed.message, [
      { domain: 'example.com', selector: 'rsa' },
      { domain: 'example.com', selector: 'ed' },
    ]);
    const replayed = Buffer.concat([Buffer.from('Subject: Something else\r\n'), signed.message]);
    expect((await verifyWithMailauth(replayed, zone())).map((v) => v.result)).toEqual(['fail', 'fail']);
    if (python.available) expect((await verifyWithPythonDkim(replayed, zone())).map((v) => v.valid)).toEqual([false, false]);
  });
});
