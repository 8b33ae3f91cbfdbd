import { describe, expect, it } from 'vitest';
import type { DomainReport } from '../../src/sender-domains/domain-check.ts';
import { formatDomainReport } from '../../src/sender-domains/domain-check-format.ts';

/** What `rookery domains check` prints for a person, from a report. */

const report: DomainReport = {
  domain: 'example.com',
  returnPathDomain: 'bounces.example.com',
  checkedAt: '2025-06-02T10:00:00.000Z',
  status: 'error',
  counts: { ok: 3, warn: 1, error: 1 },
  checks: [
    { area: 'dkim', check: 'dkim-signing', status: 'ok', subject: 'example.com', message: 'mail From: example.com is signed with d=example.com (1 key)', fix: null, signingDomain: 'example.com', source: 'domain' },
    {
      area: 'dkim',
      check: 'dkim-key',
      status: 'error',
      subject: 's1._domainkey.example.com',
      message: 'no DKIM record at s1._domainkey.example.com',
      fix: 'publish TXT record s1._domainkey.example.com with value "v=DKIM1; k=ed25519; p=AAAA"',
      selector: 's1',
      signingDomain: 'example.com',
      recordName: 's1._domainkey.example.com',
      configured: true,
      keyFile: '/etc/rookery/dkim/example.com.s1.pem',
      keyType: 'ed25519',
      bits: null,
      record: null,
      expectedRecord: 'v=DKIM1; k=ed25519; p=AAAA',
      matches: null,
    },
    { area: 'spf', check: 'spf-ip', status: 'ok', subject: '192.0.2.10', message: 'pass: example.com authorises 192.0.2.10', fix: null, domain: 'example.com', ip: '192.0.2.10', hostname: 'mta1.example.com', pool: 'default', result: 'pass' },
    {
      area: 'spf',
      check: 'spf-ip',
      status: 'warn',
      subject: '192.0.2.11',
      message: 'softfail: example.com does not authorise 192.0.2.11',
      fix: 'add ip4:192.0.2.11 to the SPF record of example.com (before its "all")',
      domain: 'example.com',
      ip: '192.0.2.11',
      hostname: 'mta1.example.com',
      pool: 'default',
      result: 'softfail',
    },
    { area: 'return-path', check: 'return-path-mx', status: 'ok', subject: 'bounces.example.com', message: 'bounces to bounces.example.com go to MX mx.example.com (10)', fix: null, domain: 'bounces.example.com', mx: [{ exchange: 'mx.example.com', priority: 10 }], addresses: [] },
  ],
};

describe('domain report output', () => {
  it('groups checks by area, marks each, puts the fix under it and ends with the verdict', () => {
    expect(formatDomainReport(report)).toBe(
      [
        'Domain example.com (return path bounces.example.com), checked 2025-06-02T10:00:00.000Z',
        '',
        'DKIM',
        '  ✓ mail From: example.com is signed with d=example.com (1 key)',
        '  ✗ no DKIM record at s1._domainkey.example.com',
        '      fix: publish TXT record s1._domainkey.example.com with value "v=DKIM1; k=ed25519; p=AAAA"',
        '',
        'SPF',
        '  ✓ pass: example.com authorises 192.0.2.10',
        '  ! softfail: example.com does not authorise 192.0.2.11',
        '      fix: add ip4:192.0.2.11 to the SPF record of example.com (before its "all")',
        '',
        'Return path',
        '  ✓ bounces to bounces.example.com go to MX mx.example.com (10)',
        '',
        'example.com: not ready (3 ok, 1 warning, 1 error)',
        '',
      ].join('\n'),
    );
  });

  it('writes out the control characters of what DNS answered, never passing them to the terminal', () => {
    const dkim = report.checks[1]!;
    const hostile = { ...report, checks: [{ ...dkim, message: 'the TXT record at s1._domainkey.example.com is not a DKIM key record (\u001b[2Jv=\r\nX)', fix: 'publish \u009b31m' }] };
    const lines = formatDomainReport(hostile).split('\n');
    expect(lines.slice(2, 5)).toEqual(['DKIM', '  ✗ the TXT record at s1._domainkey.example.com is not a DKIM key record (\\x1b[2Jv=\\x0d\\x0aX)', '      fix: publish \\x9b31m']);
  });

  it('says ready, or ready with warnings, when nothing is an error', () => {
    const warnOnly = { ...report, returnPathDomain: 'example.com', status: 'warn' as const, counts: { ok: 4, warn: 2, error: 0 }, checks: [] };
    const text = formatDomainReport(warnOnly);
    expect(text.split('\n')[0]).toBe('Domain example.com, checked 2025-06-02T10:00:00.000Z');
    expect(text.trimEnd().split('\n').at(-1)).toBe('example.com: ready, with warnings (4 ok, 2 warnings, 0 errors)');
    expect(formatDomainReport({ ...warnOnly, status: 'ok', counts: { ok: 9, warn: 0, error: 0 } }).trimEnd().split('\n').at(-1)).toBe('example.com: ready (9 ok, 0 warnings, 0 errors)');
  });
});
