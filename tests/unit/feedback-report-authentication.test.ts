import { describe, expect, it } from 'vitest';
import { authenticateReport, judgeReport, MAX_REPORT_SIGNATURES, type SignatureVerdict } from '../../src/feedback/report-authentication.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';
import { createReportSigner } from '../helpers/signed-reports.ts';

/**
 * Whether a report to a feedback-loop address is believed: the decision from the From domain and
 * the signatures' verdicts, then the whole check on reports signed with mailauth (the keys
 * published in a fixture resolver).
 */

const REPORTERS = ['yahoo.test', 'hotmail.test', 'example.com'];
const sig = (domain: string, result = 'pass', underSized = 0): SignatureVerdict => ({ domain, result, underSized });

describe('judgeReport', () => {
  it('believes a passing signature by a reporter or its subdomain, aligned with the From', () => {
    expect(judgeReport('yahoo.test', [sig('yahoo.test')], REPORTERS)).toEqual({ verdict: 'trusted', fromDomain: 'yahoo.test', signer: 'yahoo.test' });
    // Relaxed alignment: one organizational domain, either way round.
    expect(judgeReport('arf.mail.yahoo.test', [sig('yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted', signer: 'yahoo.test' });
    expect(judgeReport('yahoo.test', [sig('fbl.yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted', signer: 'fbl.yahoo.test' });
    // Any one of several will do.
    expect(judgeReport('example.com', [sig('relay.test'), sig('example.com', 'fail'), sig('example.com')], REPORTERS)).toMatchObject({ verdict: 'trusted' });
  });

  it('says why it does not believe one', () => {
    const reason = (from: string | null, signatures: SignatureVerdict[], reporters = REPORTERS) => {
      const judged = judgeReport(from, signatures, reporters);
      return judged.verdict === 'unauthenticated' ? judged.reason : judged.verdict;
    };
    expect(reason('yahoo.test', [sig('yahoo.test')], [])).toBe('no-reporters');
    expect(reason(null, [sig('yahoo.test')])).toBe('from-unclear');
    expect(reason('yahoo.test', [])).toBe('no-signature');
    // A reporter's name inside another domain is not the reporter.
    expect(reason('notyahoo.test', [sig('notyahoo.test')])).toBe('signer-not-trusted');
    expect(reason('yahoo.test.attacker.test', [sig('yahoo.test.attacker.test')])).toBe('signer-not-trusted');
    // A reporter's signature on someone else's From: mail its own users can send.
    expect(reason('attacker.test', [sig('yahoo.test')])).toBe('from-not-aligned');
    expect(reason('hotmail.test', [sig('yahoo.test')])).toBe('from-not-aligned');
    expect(reason('yahoo.test', [sig('yahoo.test', 'fail')])).toBe('signature-failed');
    expect(reason('yahoo.test', [sig('yahoo.test', 'neutral')])).toBe('signature-failed');
    expect(reason('yahoo.test', [sig('yahoo.test', 'policy')])).toBe('signature-failed');
    // l= left body bytes unsigned: anyone could have written them.
    expect(reason('yahoo.test', [sig('yahoo.test', 'pass', 120)])).toBe('signature-failed');
  });

  it('asks for a retry only when a trusted, aligned signer could not be checked', () => {
    expect(judgeReport('yahoo.test', [sig('yahoo.test', 'temperror')], REPORTERS)).toEqual({ verdict: 'temperror', fromDomain: 'yahoo.test', signatures: [sig('yahoo.test', 'temperror')] });
    expect(judgeReport('yahoo.test', [sig('yahoo.test', 'temperror'), sig('yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted' });
    // No retry could make these count.
    expect(judgeReport('attacker.test', [sig('attacker.test', 'temperror')], REPORTERS)).toMatchObject({ verdict: 'unauthenticated', reason: 'signer-not-trusted' });
    expect(judgeReport('attacker.test', [sig('yahoo.test', 'temperror')], REPORTERS)).toMatchObject({ verdict: 'unauthenticated', reason: 'from-not-aligned' });
  });
});

describe('authenticateReport', () => {
  const signer = createReportSigner();
  const report = feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1');
  const check = (raw: Buffer | string, reporters = REPORTERS) =>
    authenticateReport(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1'), { resolver: signer.resolver, reporters, now: Date.now() });

  it('verifies the signature on the bytes as received', async () => {
    const signed = await signer.sign(report, 'example.com');
    expect(await check(signed)).toEqual({ verdict: 'trusted', fromDomain: 'example.com', signer: 'example.com' });
    const altered = Buffer.from(signed.toString('latin1').replace('Feedback-Type: abuse', 'Feedback-Type: fraud'), 'latin1');
    expect(await check(altered)).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed', signatures: [{ domain: 'example.com', result: 'neutral' }] });
    expect(await check(report)).toEqual({ verdict: 'unauthenticated', reason: 'no-signature', fromDomain: 'example.com', signatures: [] });
  });

  it('takes one author only: a second From field or address is no From to align with', async () => {
    const twoFields = await signer.sign(report.replace('From: <abusedesk@example.com>\r\n', 'From: <abusedesk@example.com>\r\nFrom: <x@attacker.test>\r\n'), 'example.com');
    expect(await check(twoFields)).toMatchObject({ verdict: 'unauthenticated', reason: 'from-unclear' });
    const twoAddresses = await signer.sign(report.replace('From: <abusedesk@example.com>', 'From: <abusedesk@example.com>, <x@attacker.test>'), 'example.com');
    expect(await check(twoAddresses)).toMatchObject({ verdict: 'unauthenticated', reason: 'from-unclear' });
  });

  it('refuses rsa-sha1 (RFC 8301) and content an l= tag left unsigned', async () => {
    expect(await check(await signer.sign(report, 'example.com', { algorithm: 'rsa-sha1' }))).toMatchObject({ reason: 'signature-failed', signatures: [{ result: 'policy' }] });
    const limited = await signer.sign(report, 'example.com', { maxBodyLength: 200 });
    expect(await check(limited)).toMatchObject({ reason: 'signature-failed', signatures: [{ result: 'pass', underSized: expect.any(Number) }] });
  });

  it('looks nothing up without reporters, or for more signatures than a feedback loop adds', async () => {
    const signed = await signer.sign(report, 'example.com');
    const before = signer.resolver.queries.length;
    expect(await check(signed, [])).toMatchObject({ verdict: 'unauthenticated', reason: 'no-reporters' });
    let many: Buffer = Buffer.from(report, 'latin1');
    for (let i = 0; i <= MAX_REPORT_SIGNATURES; i++) many = await signer.sign(many, `s${i}.example.com`);
    expect(await check(many)).toMatchObject({ verdict: 'unauthenticated', reason: 'too-many-signatures' });
    expect(signer.resolver.queries.length).toBe(before);
  });

  it('reports a failed key lookup of a trusted signer as temperror', async () => {
    const own = createReportSigner();
    const signed = await own.sign(report, 'example.com');
    own.resolver.set('fbl._domainkey.example.com', { txt: 'ESERVFAIL' });
    expect(await authenticateReport(signed, { resolver: own.resolver, reporters: REPORTERS, now: Date.now() })).toMatchObject({ verdict: 'temperror', signatures: [{ domain: 'example.com', result: 'temperror' }] });
    // A key that does not exist is no retry: the signature fails.
    own.resolver.set('fbl._domainkey.example.com', { txt: 'ENODATA' });
    expect(await authenticateReport(signed, { resolver: own.resolver, reporters: REPORTERS, now: Date.now() })).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed' });
  });
});
