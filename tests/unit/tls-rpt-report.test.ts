import { describe, expect, it } from 'vitest';
import { buildTlsReport, dayRange, parseTlsRptRecord, tlsReportFileName, utcDay, type TlsSessionCount } from '../../src/engine/tls/tls-rpt-report.ts';
import { judgeSession, mxAllowed, type TlsRequirement } from '../../src/engine/tls/tls-requirement.ts';
import type { TlsSession } from '../../src/engine/tls/tls-session.ts';

const reporter = { organization: 'Example Sender', contact: 'postmaster@mta.sender.test', submitter: 'mta.sender.test' };
const sts = { type: 'sts' as const, domain: 'dest.test', id: 'v1', lines: ['version: STSv1', 'mode: enforce', 'mx: *.dest.test', 'max_age: 86400'], mx: ['*.dest.test'] };

describe('TLSRPT record (RFC 8460 3)', () => {
  it('reads the mailto and https destinations of the one TLSRPTv1 record', () => {
    expect(parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:tls@dest.test,https://reports.dest.test/v1/tlsrpt']])).toEqual({
      mailto: ['tls@dest.test'],
      https: ['https://reports.dest.test/v1/tlsrpt'],
      ignored: [],
    });
    expect(parseTlsRptRecord([['v=TLSRPTv1;rua=mailto:a%2Bb@dest.test'], ['spf']])).toEqual({ mailto: ['a+b@dest.test'], https: [], ignored: [] });
  });

  it('skips a malformed escape instead of throwing, and takes only plain local@domain addresses and https URLs', () => {
    expect(parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:%E0%A4%A@evil.test,https://r.dest.test/x']])).toEqual({
      mailto: [],
      https: ['https://r.dest.test/x'],
      ignored: [{ uri: 'mailto:%E0%A4%A@evil.test', why: 'a malformed %-escape' }],
    });
    expect(parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:%zz@evil.test']])).toBeNull();
    const odd = ['mailto:a%00b@evil.test', 'mailto:a%2Cb@x.test', 'mailto:root@[127.0.0.1]', 'mailto:a%0D%0ABcc:x@y.test', 'mailto:"q"@x.test', 'mailto:a@localhost', 'https://user:pw@r.dest.test/'];
    const parsed = parseTlsRptRecord([[`v=TLSRPTv1; rua=${[...odd, 'mailto:x@y.test'].join(',')}`]]);
    expect(parsed?.mailto).toEqual(['x@y.test']);
    expect(parsed?.https).toEqual([]);
    expect(parsed?.ignored.map((i) => i.uri)).toEqual(odd);
  });

  it('takes each destination once and at most five of them', () => {
    const many = Array.from({ length: 8 }, (_, i) => `mailto:r${i}@dest.test`);
    const parsed = parseTlsRptRecord([[`v=TLSRPTv1; rua=mailto:r0@dest.test,mailto:r0@DEST.test,https://r.dest.test/a,https://R.dest.test/a,${many.join(',')}`]]);
    expect(parsed).toEqual({
      mailto: ['r0@dest.test', 'r1@dest.test', 'r2@dest.test', 'r3@dest.test'],
      https: ['https://r.dest.test/a'],
      ignored: [
        { uri: 'mailto:r0@DEST.test', why: 'a repeat' },
        { uri: 'https://R.dest.test/a', why: 'a repeat' },
        { uri: 'mailto:r0@dest.test', why: 'a repeat' },
        ...many.slice(4).map((uri) => ({ uri, why: 'past the first 5' })),
      ],
    });
  });

  it('has none without exactly one record with a usable rua (http is not https)', () => {
    expect(parseTlsRptRecord([])).toBeNull();
    expect(parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:a@x.test'], ['v=TLSRPTv1; rua=mailto:b@x.test']])).toBeNull();
    expect(parseTlsRptRecord([['v=TLSRPTv1;']])).toBeNull();
    expect(parseTlsRptRecord([['v=TLSRPTv1; rua=http://plain.test/']])).toBeNull();
  });
});

describe('aggregate report (RFC 8460 4)', () => {
  it('has the fields of 4.4: the day in UTC, per policy its summary and failure details', () => {
    const row = (over: Partial<TlsSessionCount>): TlsSessionCount => ({ day: '2026-11-29', policy: sts, result: 'success', sendingIp: '', receivingIp: '', receivingMx: '', count: 0, ...over });
    const counts = [
      row({ count: 40 }),
      row({ result: 'certificate-expired', sendingIp: '192.0.2.10', receivingIp: '198.51.100.7', receivingMx: 'mx1.dest.test', count: 3 }),
      row({ result: 'starttls-not-supported', sendingIp: '192.0.2.11', receivingIp: '198.51.100.8', receivingMx: 'mx2.dest.test', count: 2 }),
      row({ policy: { type: 'no-policy-found', domain: 'dest.test', id: '', lines: [], mx: [] }, count: 5 }),
      // Another domain's and another day's rows are not this report's.
      row({ policy: { ...sts, domain: 'other.test' }, count: 99 }),
      row({ day: '2026-11-28', count: 99 }),
    ];
    expect(buildTlsReport(reporter, 'dest.test', '2026-11-29', counts, '2026-11-29.dest.test@mta.sender.test')).toEqual({
      'organization-name': 'Example Sender',
      'date-range': { 'start-datetime': '2026-11-29T00:00:00Z', 'end-datetime': '2026-11-29T23:59:59Z' },
      'contact-info': 'postmaster@mta.sender.test',
      'report-id': '2026-11-29.dest.test@mta.sender.test',
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-string': sts.lines, 'mx-host': ['*.dest.test'], 'policy-domain': 'dest.test' },
          summary: { 'total-successful-session-count': 40, 'total-failure-session-count': 5 },
          'failure-details': [
            { 'result-type': 'certificate-expired', 'sending-mta-ip': '192.0.2.10', 'receiving-ip': '198.51.100.7', 'receiving-mx-hostname': 'mx1.dest.test', 'failed-session-count': 3 },
            { 'result-type': 'starttls-not-supported', 'sending-mta-ip': '192.0.2.11', 'receiving-ip': '198.51.100.8', 'receiving-mx-hostname': 'mx2.dest.test', 'failed-session-count': 2 },
          ],
        },
        {
          policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'dest.test' },
          summary: { 'total-successful-session-count': 5, 'total-failure-session-count': 0 },
        },
      ],
    });
  });

  it('names the file submitter!domain!begin!end!id.json.gz with the day in epoch seconds', () => {
    expect(tlsReportFileName(reporter, 'dest.test', '2026-11-29', '20261129')).toBe('mta.sender.test!dest.test!1795910400!1795996800!20261129.json.gz');
    expect(utcDay(Date.parse('2026-11-29T23:59:59.999Z'))).toBe('2026-11-29');
    expect(dayRange('2026-11-29').start).toBe(Date.parse('2026-11-29T00:00:00Z'));
  });
});

describe('a session judged against its TLS requirement', () => {
  const session = (over: Partial<TlsSession> = {}): TlsSession => ({ version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', verified: true, failure: null, error: null, ...over });
  const badName = session({ verified: false, failure: 'certificate-host-mismatch', error: "Host: mx1.dest.test. is not in the cert's altnames" });
  const req = (over: Partial<TlsRequirement>): TlsRequirement => ({ mode: 'opportunistic', sts: null, reports: [], ...over });

  it('opportunistic refuses nothing, and counts a failure only where a policy wants a certificate', () => {
    expect(judgeSession(req({}), null, 'mx1.dest.test')).toEqual({ result: 'starttls-not-supported', refusal: null });
    expect(judgeSession(req({}), badName, 'mx1.dest.test')).toEqual({ result: 'success', refusal: null });
  });

  it('required refuses clear text only; verify refuses any certificate not valid for the MX name', () => {
    expect(judgeSession(req({ mode: 'required' }), null, 'mx1.dest.test').refusal).toMatch(/did not offer STARTTLS/);
    expect(judgeSession(req({ mode: 'required' }), badName, 'mx1.dest.test').refusal).toBeNull();
    expect(judgeSession(req({ mode: 'verify' }), badName, 'mx1.dest.test')).toEqual({ result: 'certificate-host-mismatch', refusal: expect.stringMatching(/not valid for it/) });
    expect(judgeSession(req({ mode: 'verify' }), session(), 'mx1.dest.test')).toEqual({ result: 'success', refusal: null });
  });

  it('MTA-STS: enforce allows only listed MX hosts; testing counts an unlisted one and refuses nothing', () => {
    const enforce = req({ mode: 'verify', sts: { domain: 'dest.test', id: 'v1', mode: 'enforce', mx: ['*.dest.test'], lines: [] } });
    expect(mxAllowed(enforce, 'mx1.dest.test')).toBe(true);
    expect(mxAllowed(enforce, 'mx.elsewhere.test')).toBe(false);
    const testing = req({ sts: { domain: 'dest.test', id: 'v1', mode: 'testing', mx: ['*.dest.test'], lines: [] } });
    expect(mxAllowed(testing, 'mx.elsewhere.test')).toBe(true);
    expect(judgeSession(testing, session(), 'mx.elsewhere.test')).toEqual({ result: 'validation-failure', refusal: null });
    expect(judgeSession(testing, badName, 'mx1.dest.test')).toEqual({ result: 'certificate-host-mismatch', refusal: null });
  });
});
