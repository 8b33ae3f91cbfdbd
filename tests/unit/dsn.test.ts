import { describe, expect, it } from 'vitest';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { buildDsn, type DsnInput } from '../../src/engine/dsn.ts';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import { expiredOutcome } from '../../src/engine/retry-policy.ts';

const ORIGINAL_HEADER =
  'Received: from app.sender.test (app.sender.test [192.0.2.50])\r\n\tby mta.rookery.test; Sun, 22 Nov 2026 10:00:00 +0000\r\n' +
  'From: App <app@sender.test>\r\nTo: nobody@dest.test, full@dest.test\r\nSubject: Your invoice\r\nMessage-ID: <inv-1@sender.test>\r\n';
const ORIGINAL = Buffer.from(`${ORIGINAL_HEADER}\r\nSecret body line that must not be returned.\r\n`);

function failure(extra: Partial<DeliveryOutcome>): DeliveryOutcome {
  return {
    disposition: 'permanent',
    code: 550,
    enhanced: '5.1.1',
    response: '5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown',
    stage: 'rcpt',
    bounceClass: 'unknown-user',
    remoteHost: 'mx1.dest.test',
    egressIp: '127.0.0.2',
    ...extra,
  };
}

function input(extra: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mta.rookery.test',
    original: { id: '0190aabbccdd1234567890', sender: 'app@sender.test', messageIdHeader: '<inv-1@sender.test>', body: ORIGINAL, createdAt: Date.UTC(2026, 10, 22, 10), pool: 'marketing' },
    failed: [
      { recipient: 'nobody@dest.test', outcome: failure({}) },
      {
        recipient: 'full@dest.test',
        outcome: expiredOutcome(failure({ disposition: 'transient', code: 452, enhanced: '4.2.2', response: '4.2.2 Mailbox full', bounceClass: 'mailbox-full' })),
      },
    ],
    now: Date.UTC(2026, 10, 27, 10, 30),
    id: '0190ffeeddcc0987654321',
    ...extra,
  };
}

interface Part {
  headers: string;
  body: string;
}

/** Splits a multipart message at its boundary: a deliberately plain MIME reader. */
function parseMultipart(raw: string): { headers: string; parts: Part[] } {
  const { header, body } = splitHeader(Buffer.from(raw, 'latin1'));
  const contentType = headerValue(header, 'Content-Type') ?? '';
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const text = body.toString('latin1');
  const sections = text.split(`--${boundary}`);
  expect(sections.at(-1)!.startsWith('--')).toBe(true); // closing delimiter
  const parts = sections.slice(1, -1).map((section) => {
    const content = section.replace(/^\r\n/, '').replace(/\r\n$/, '');
    const end = content.indexOf('\r\n\r\n');
    return { headers: content.slice(0, end + 2), body: content.slice(end + 4) };
  });
  return { headers: header, parts };
}

/** message/delivery-status: groups of fields separated by blank lines, folded lines unfolded. */
function statusGroups(body: string): Array<Record<string, string>> {
  return body
    .trim()
    .split('\r\n\r\n')
    .map((group) => {
      const fields: Record<string, string> = {};
      for (const line of group.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
        const colon = line.indexOf(':');
        fields[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      return fields;
    });
}

describe('buildDsn', () => {
  it('returns a null-sender message to the original sender', async () => {
    const dsn = await buildDsn(input());
    expect(dsn).toMatchObject({
      id: '0190ffeeddcc0987654321',
      sender: '',
      recipients: ['app@sender.test'],
      messageIdHeader: '<0190ffeeddcc0987654321@mta.rookery.test>',
      submitter: null,
      source: 'dsn',
      clientAddress: null,
      createdAt: input().now,
      dueAt: input().now,
      // Back through the pool of the message it reports on.
      pool: 'marketing',
      tenant: null,
    });
    // A tenant's bounce report is the tenant's: its token reads it.
    const base = input();
    expect((await buildDsn({ ...base, original: { ...base.original, tenant: 'acme' } })).tenant).toBe('acme');
  });

  it('is wire form: CRLF line endings only, ASCII, lines within limits', async () => {
    const raw = (await buildDsn(input())).body.toString('latin1');
    expect(raw).not.toMatch(/[^\r]\n/);
    expect(raw).not.toMatch(/\r[^\n]/);
    expect(raw).toMatch(/^[\x09\x0a\x0d\x20-\x7e]*$/);
    expect(Math.max(...raw.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(998);
  });

  it('has the report headers: From MAILER-DAEMON, To the sender, auto-submitted, threaded to the original', async () => {
    const { headers } = parseMultipart((await buildDsn(input())).body.toString('latin1'));
    expect(headerValue(headers, 'From')).toBe('Mail Delivery System <MAILER-DAEMON@mta.rookery.test>');
    expect(headerValue(headers, 'To')).toBe('app@sender.test');
    expect(headerValue(headers, 'Auto-Submitted')).toBe('auto-replied');
    expect(headerValue(headers, 'Message-ID')).toBe('<0190ffeeddcc0987654321@mta.rookery.test>');
    expect(headerValue(headers, 'In-Reply-To')).toBe('<inv-1@sender.test>');
    expect(headerValue(headers, 'Date')).toBe('Fri, 27 Nov 2026 10:30:00 +0000');
    expect(headerValue(headers, 'MIME-Version')).toBe('1.0');
    expect(headerValue(headers, 'Content-Type')).toMatch(/^multipart\/report; report-type=delivery-status;/);
  });

  it('uses the configured From address when given', async () => {
    const { headers } = parseMultipart((await buildDsn(input({ from: 'bounces@rookery.test' }))).body.toString('latin1'));
    expect(headerValue(headers, 'From')).toBe('Mail Delivery System <bounces@rookery.test>');
  });

  it('has three parts: explanation, delivery-status, original headers', async () => {
    const { parts } = parseMultipart((await buildDsn(input())).body.toString('latin1'));
    expect(parts.map((p) => headerValue(p.headers, 'Content-Type'))).toEqual([
      'text/plain; charset=utf-8',
      'message/delivery-status',
      'text/rfc822-headers',
    ]);
    // Wrapped at 72 columns; compare the words.
    const human = parts[0]!.body.replace(/\s+/g, ' ');
    expect(human).toContain('<nobody@dest.test>: delivery failed: the recipient address does not exist.');
    expect(human).toContain('550 5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown');
    expect(human).toMatch(/<full@dest\.test>: message expired/);
    expect(human).toMatch(/Last error \(host mx1\.dest\.test\): 452 4\.2\.2 Mailbox full/);
  });

  it('reports per message and per recipient fields (RFC 3464)', async () => {
    const { parts } = parseMultipart((await buildDsn(input())).body.toString('latin1'));
    const [message, nobody, full] = statusGroups(parts[1]!.body);
    expect(message).toEqual({
      'reporting-mta': 'dns; mta.rookery.test',
      'x-rookery-queue-id': '0190aabbccdd1234567890',
      'arrival-date': 'Sun, 22 Nov 2026 10:00:00 +0000',
    });
    expect(nobody).toEqual({
      'final-recipient': 'rfc822; nobody@dest.test',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mx1.dest.test',
      'diagnostic-code': 'smtp; 550 5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown',
      'last-attempt-date': 'Fri, 27 Nov 2026 10:30:00 +0000',
    });
    expect(full).toMatchObject({ 'final-recipient': 'rfc822; full@dest.test', action: 'failed', status: '5.4.7', 'diagnostic-code': 'smtp; 452 4.2.2 Mailbox full' });
  });

  it('reports a local failure with a non-SMTP diagnostic type and no Remote-MTA', async () => {
    const dns = failure({ code: null, enhanced: '5.1.2', response: 'domain dest.test does not exist (NXDOMAIN)', stage: 'dns', remoteHost: null, bounceClass: 'no-mail-domain' });
    const { parts } = parseMultipart((await buildDsn(input({ failed: [{ recipient: 'x@dest.test', outcome: dns }] }))).body.toString('latin1'));
    const [, recipient] = statusGroups(parts[1]!.body);
    expect(recipient).toEqual({
      'final-recipient': 'rfc822; x@dest.test',
      action: 'failed',
      status: '5.1.2',
      'diagnostic-code': 'X-Rookery; domain dest.test does not exist (NXDOMAIN)',
      'last-attempt-date': 'Fri, 27 Nov 2026 10:30:00 +0000',
    });
  });

  it('returns the original header block, never the body', async () => {
    const dsn = await buildDsn(input());
    const { parts } = parseMultipart(dsn.body.toString('latin1'));
    expect(headerValue(parts[2]!.headers, 'Content-Transfer-Encoding')).toBe('7bit');
    expect(parts[2]!.body).toBe(ORIGINAL_HEADER);
    expect(dsn.body.toString('latin1')).not.toContain('Secret body line');
  });

  it('encodes an original header block that is not plain ASCII', async () => {
    const header = 'Subject: Rechnung f\u00fcr Sie\r\nMessage-ID: <utf@sender.test>\r\n';
    const original = { ...input().original, body: Buffer.from(`${header}\r\nbody\r\n`, 'utf8') };
    const raw = (await buildDsn(input({ original }))).body.toString('latin1');
    expect(raw).toMatch(/^[\x09\x0a\x0d\x20-\x7e]*$/);
    const { parts } = parseMultipart(raw);
    expect(headerValue(parts[2]!.headers, 'Content-Transfer-Encoding')).toMatch(/quoted-printable|base64/);
  });

  it('folds a long diagnostic so no line exceeds 78 characters', async () => {
    const long = failure({ response: `5.7.1 ${'policy reason words '.repeat(20)}`.trim(), bounceClass: 'policy', enhanced: '5.7.1' });
    const { parts } = parseMultipart((await buildDsn(input({ failed: [{ recipient: 'x@dest.test', outcome: long }] }))).body.toString('latin1'));
    expect(Math.max(...parts[1]!.body.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(78);
    const [, recipient] = statusGroups(parts[1]!.body);
    expect(recipient!['diagnostic-code']).toBe(`smtp; 550 5.7.1 ${'policy reason words '.repeat(20)}`.trim());
  });

  it('refuses to report on a message from the null sender', async () => {
    const original = { ...input().original, sender: '' };
    await expect(buildDsn(input({ original }))).rejects.toThrow(/null sender/);
  });

  it('refuses to build a report without failures', async () => {
    await expect(buildDsn(input({ failed: [] }))).rejects.toThrow(/no failed recipients/);
  });
});

describe('DSNs about internationalised mail (RFC 6533)', () => {
  const header = 'From: Jörg <news@sender.test>\r\nTo: ünï@dest.test\r\nSubject: Grüße\r\nMessage-ID: <intl@sender.test>\r\n';
  const original = { ...input().original, body: Buffer.from(`${header}\r\nbody\r\n`, 'utf8') };
  const refused = failure({ code: null, enhanced: '5.6.7', response: 'not sent: the recipient address needs SMTPUTF8 (RFC 6531), which mx1.dest.test does not offer', stage: 'mail', bounceClass: 'other' });

  it('reports a UTF-8 recipient with the utf-8 address type in message/global-delivery-status, and the UTF-8 header block as message/global-headers, both 8bit', async () => {
    const dsn = await buildDsn(input({ original, failed: [{ recipient: 'ünï@dest.test', outcome: refused }, { recipient: 'plain@dest.test', outcome: failure({}) }] }));
    const { parts } = parseMultipart(dsn.body.toString('latin1'));
    expect(parts.map((p) => [headerValue(p.headers, 'Content-Type'), headerValue(p.headers, 'Content-Transfer-Encoding')])).toEqual([
      ['text/plain; charset=utf-8', 'quoted-printable'],
      ['message/global-delivery-status', '8bit'],
      ['message/global-headers', '8bit'],
    ]);
    const status = Buffer.from(parts[1]!.body, 'latin1').toString('utf8');
    const [, utf8, plain] = statusGroups(status);
    expect(utf8).toMatchObject({ 'final-recipient': 'utf-8; ünï@dest.test', action: 'failed', status: '5.6.7', 'remote-mta': 'dns; mx1.dest.test' });
    expect(utf8!['diagnostic-code']).toBe('X-Rookery; not sent: the recipient address needs SMTPUTF8 (RFC 6531), which mx1.dest.test does not offer');
    expect(plain).toMatchObject({ 'final-recipient': 'utf-8; plain@dest.test' });
    expect(Buffer.from(parts[2]!.body, 'latin1').toString('utf8')).toBe(header);
    // Lines within limits, CRLF only, and the report's own header block stays ASCII.
    const raw = dsn.body.toString('latin1');
    expect(raw).not.toMatch(/[^\r]\n/);
    expect(splitHeader(dsn.body).header).toMatch(/^[\x09\x0a\x0d\x20-\x7e]*$/);
  });

  it('goes to a UTF-8 sender with the address as it is', async () => {
    const dsn = await buildDsn(input({ original: { ...original, sender: 'jörg@sender.test' }, failed: [{ recipient: 'plain@dest.test', outcome: failure({}) }] }));
    expect(dsn.recipients).toEqual(['jörg@sender.test']);
    expect(Buffer.from(headerValue(splitHeader(dsn.body).header, 'To')!, 'latin1').toString('utf8')).toBe('jörg@sender.test');
  });
});
