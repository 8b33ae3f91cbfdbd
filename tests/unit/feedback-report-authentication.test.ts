import { Resolver } from 'node:dns/promises';
import { describe, expect, it } from 'vitest';
import { authenticateReport, judgeReport as judgeSender, MAX_REPORT_SIGNATURES, type ReportAuthenticationDeps, type SignatureVerdict } from '../../src/feedback/report-authentication.ts';
import { readReportMessage } from '../../src/feedback/report-message.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';
import { createFixtureResolver, SILENT } from '../helpers/fixture-resolver.ts';
import { createReportSigner, REPORT_SELECTOR } from '../helpers/signed-reports.ts';

/**
 * Whether a report to a feedback-loop address is believed: the decision from the From domain and
 * the signatures' verdicts, then the whole check on reports signed with mailauth (the keys
 * published in a fixture resolver).
 */

const REPORTERS = ['yahoo.test', 'hotmail.test', 'example.com'];
const sig = (domain: string, result = 'pass', underSized = 0, signedFields = ['from', 'to', 'subject', 'content-type']): SignatureVerdict => ({ domain, result, underSized, signedFields });
/** The decision on a report addressed to us, from its From and signatures. */
const judgeReport = (from: string | null, signatures: SignatureVerdict[], reporters: readonly string[]) => judgeSender({ from, addressedToUs: true }, signatures, reporters);

describe('judgeReport', () => {
  it('believes a passing signature by a reporter or its subdomain, aligned with the From', () => {
    expect(judgeReport('fbl@yahoo.test', [sig('yahoo.test')], REPORTERS)).toEqual({ verdict: 'trusted', fromDomain: 'yahoo.test', signer: 'yahoo.test' });
    // Relaxed alignment: one organizational domain, either way round.
    expect(judgeReport('fbl@arf.mail.yahoo.test', [sig('yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted', signer: 'yahoo.test' });
    expect(judgeReport('fbl@yahoo.test', [sig('fbl.yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted', signer: 'fbl.yahoo.test' });
    // Any one of several will do.
    expect(judgeReport('fbl@example.com', [sig('relay.test'), sig('example.com', 'fail'), sig('example.com')], REPORTERS)).toMatchObject({ verdict: 'trusted' });
  });

  it('says why it does not believe one', () => {
    const reason = (from: string | null, signatures: SignatureVerdict[], reporters = REPORTERS) => {
      const judged = judgeReport(from, signatures, reporters);
      return judged.verdict === 'unauthenticated' ? judged.reason : judged.verdict;
    };
    expect(reason('fbl@yahoo.test', [sig('yahoo.test')], [])).toBe('no-reporters');
    expect(reason(null, [sig('yahoo.test')])).toBe('from-unclear');
    expect(reason('undisclosed-recipients', [sig('yahoo.test')])).toBe('from-unclear');
    expect(reason('fbl@yahoo.test', [])).toBe('no-signature');
    // A reporter's name inside another domain is not the reporter.
    expect(reason('fbl@notyahoo.test', [sig('notyahoo.test')])).toBe('signer-not-trusted');
    expect(reason('fbl@yahoo.test.attacker.test', [sig('yahoo.test.attacker.test')])).toBe('signer-not-trusted');
    // A reporter's signature on someone else's From: mail its own users can send.
    expect(reason('fbl@attacker.test', [sig('yahoo.test')])).toBe('from-not-aligned');
    expect(reason('fbl@hotmail.test', [sig('yahoo.test')])).toBe('from-not-aligned');
    expect(reason('fbl@yahoo.test', [sig('yahoo.test', 'fail')])).toBe('signature-failed');
    expect(reason('fbl@yahoo.test', [sig('yahoo.test', 'neutral')])).toBe('signature-failed');
    expect(reason('fbl@yahoo.test', [sig('yahoo.test', 'policy')])).toBe('signature-failed');
    // l= left body bytes unsigned: anyone could have written them.
    expect(reason('fbl@yahoo.test', [sig('yahoo.test', 'pass', 120)])).toBe('signature-failed');
  });

  it('believes only a report addressed to us, with its To covered by the trusted signature', () => {
    const judged = (addressedToUs: boolean, signatures: SignatureVerdict[]) => judgeSender({ from: 'fbl@yahoo.test', addressedToUs }, signatures, REPORTERS);
    // A feedback loop's report to another subscriber, passed on unchanged: never, nor a retry.
    expect(judged(false, [sig('yahoo.test')])).toMatchObject({ verdict: 'unauthenticated', reason: 'not-addressed-to-us' });
    expect(judged(false, [sig('yahoo.test', 'temperror')])).toMatchObject({ verdict: 'unauthenticated', reason: 'not-addressed-to-us' });
    // A To the signature does not cover could have been written by anyone.
    expect(judged(true, [sig('yahoo.test', 'pass', 0, ['from', 'subject'])])).toMatchObject({ verdict: 'unauthenticated', reason: 'to-not-signed' });
    // Nor a Content-Type: another boundary could make the quoted original read as the report.
    expect(judged(true, [sig('yahoo.test', 'pass', 0, ['from', 'to', 'subject'])])).toMatchObject({ verdict: 'unauthenticated', reason: 'content-type-not-signed' });
    expect(judged(true, [sig('yahoo.test', 'pass', 0, ['from', 'to']), sig('yahoo.test', 'pass', 0, ['from', 'content-type'])])).toMatchObject({ verdict: 'unauthenticated', reason: 'content-type-not-signed' });
    expect(judged(true, [sig('yahoo.test', 'pass', 0, ['from']), sig('yahoo.test', 'fail')])).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed' });
    expect(judged(true, [sig('yahoo.test', 'pass', 0, ['from']), sig('yahoo.test')])).toMatchObject({ verdict: 'trusted' });
  });

  it('asks for a retry only when a trusted, aligned signer could not be checked', () => {
    expect(judgeReport('fbl@yahoo.test', [sig('yahoo.test', 'temperror')], REPORTERS)).toEqual({ verdict: 'temperror', fromDomain: 'yahoo.test', signatures: [sig('yahoo.test', 'temperror')] });
    expect(judgeReport('fbl@yahoo.test', [sig('yahoo.test', 'temperror'), sig('yahoo.test')], REPORTERS)).toMatchObject({ verdict: 'trusted' });
    // No retry could make these count.
    expect(judgeReport('fbl@attacker.test', [sig('attacker.test', 'temperror')], REPORTERS)).toMatchObject({ verdict: 'unauthenticated', reason: 'signer-not-trusted' });
    expect(judgeReport('fbl@attacker.test', [sig('yahoo.test', 'temperror')], REPORTERS)).toMatchObject({ verdict: 'unauthenticated', reason: 'from-not-aligned' });
  });
});

describe('judgeReport with reporter addresses', () => {
  // As the config gives them: the local part as written, the domain lower case.
  const ENTRIES = ['reports@mail.test', 'Staff@fbl.hotmail.test', 'example.com'];
  const judge = (from: string, signatures: SignatureVerdict[]) => judgeReport(from, signatures, ENTRIES);

  it('believes a report from the address itself, signed by its organization', () => {
    expect(judge('reports@mail.test', [sig('mail.test')])).toEqual({ verdict: 'trusted', fromDomain: 'mail.test', signer: 'mail.test' });
    // The domain in any case; a parent or a subdomain of it signing (relaxed alignment).
    expect(judge('reports@MAIL.Test', [sig('mail.test')])).toMatchObject({ verdict: 'trusted', fromDomain: 'mail.test' });
    expect(judge('Staff@fbl.hotmail.test', [sig('hotmail.test')])).toMatchObject({ verdict: 'trusted', signer: 'hotmail.test' });
    // A domain entry beside them still takes any of its addresses.
    expect(judge('whoever@example.com', [sig('example.com')])).toMatchObject({ verdict: 'trusted' });
  });

  it('drops a report from another mailbox of that domain, however well signed', () => {
    const reason = (from: string, signatures: SignatureVerdict[]) => {
      const judged = judge(from, signatures);
      return judged.verdict === 'unauthenticated' ? judged.reason : judged.verdict;
    };
    // A user of the provider signing a report of their own.
    expect(reason('someone@mail.test', [sig('mail.test')])).toBe('reporter-address-mismatch');
    expect(reason('reports@other.mail.test', [sig('mail.test')])).toBe('reporter-address-mismatch');
    expect(reason('Staff@hotmail.test', [sig('hotmail.test')])).toBe('reporter-address-mismatch');
    // The local part as the entry writes it: only the domain is compared without regard to case.
    expect(reason('staff@fbl.hotmail.test', [sig('hotmail.test')])).toBe('reporter-address-mismatch');
    // The address, signed by someone else or not aligned, or not verified.
    expect(reason('reports@mail.test', [sig('attacker.test')])).toBe('signer-not-trusted');
    // Another party of the organization: a sibling of the address's domain, or a subdomain of it.
    expect(reason('Staff@fbl.hotmail.test', [sig('customer.hotmail.test')])).toBe('signer-not-trusted');
    expect(reason('Staff@fbl.hotmail.test', [sig('x.fbl.hotmail.test')])).toBe('signer-not-trusted');
    expect(reason('reports@mail.test', [sig('dkim.mail.test')])).toBe('signer-not-trusted');
    expect(reason('reports@attacker.test', [sig('mail.test')])).toBe('from-not-aligned');
    expect(reason('reports@mail.test', [sig('mail.test', 'fail')])).toBe('signature-failed');
  });

  it('asks for a retry only for the address itself', () => {
    expect(judge('reports@mail.test', [sig('mail.test', 'temperror')])).toMatchObject({ verdict: 'temperror' });
    expect(judge('someone@mail.test', [sig('mail.test', 'temperror')])).toMatchObject({ verdict: 'unauthenticated', reason: 'reporter-address-mismatch' });
  });
});

describe('authenticateReport', () => {
  const signer = createReportSigner();
  const report = feedbackFixture('arf-rfc5965-minimal.eml').toString('latin1');
  /** As the listener asks: fbl@sender.test is our feedback address. */
  const deps = (resolver: ReportAuthenticationDeps['resolver'], reporters: readonly string[] = REPORTERS): ReportAuthenticationDeps => ({
    resolver,
    reporters,
    isFeedbackAddress: (address) => address.toLowerCase() === 'fbl@sender.test',
    now: Date.now(),
  });
  const check = (raw: Buffer | string, reporters = REPORTERS) => authenticateReport(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1'), deps(signer.resolver, reporters));

  it('verifies the signature on the bytes as received', async () => {
    const signed = await signer.sign(report, 'example.com');
    expect(await check(signed)).toEqual({ verdict: 'trusted', fromDomain: 'example.com', signer: 'example.com' });
    const altered = Buffer.from(signed.toString('latin1').replace('Feedback-Type: abuse', 'Feedback-Type: fraud'), 'latin1');
    expect(await check(altered)).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed', signatures: [{ domain: 'example.com', result: 'neutral' }] });
    expect(await check(report)).toEqual({ verdict: 'unauthenticated', reason: 'no-signature', fromDomain: 'example.com', signatures: [] });
  });

  it('takes one author only: a second From field or address is no From to align with', async () => {
    const twoFields = await signer.sign(report.replace('From: <abusedesk@example.com>\r\n', 'From: <abusedesk@example.com>\r\nFrom: <x@attacker.test>\r\n'), 'example.com');
    expect(await check(twoFields)).toMatchObject({ verdict: 'unauthenticated', reason: 'duplicate-fields' });
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
    expect(await authenticateReport(signed, deps(own.resolver))).toMatchObject({ verdict: 'temperror', signatures: [{ domain: 'example.com', result: 'temperror' }] });
    // A key that does not exist is no retry: the signature fails.
    own.resolver.set('fbl._domainkey.example.com', { txt: 'ENODATA' });
    expect(await authenticateReport(signed, deps(own.resolver))).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed' });
  });

  it('looks up the keys of signers an entry vouches for only: any other signature fails without a lookup', async () => {
    const own = createReportSigner();
    let signed: Buffer = Buffer.from(report, 'latin1');
    for (const domain of ['d1.attacker.test', 'd2.attacker.test', 'example.com.attacker.test', 'example.com']) signed = await own.sign(signed, domain);
    // A selector that spells a trusted key's name does not make the key of another domain one.
    signed = await own.sign(signed, 'attacker.test', { selector: `${REPORT_SELECTOR}._domainkey.example.com` });
    expect(await authenticateReport(signed, deps(own.resolver))).toMatchObject({ verdict: 'trusted', signer: 'example.com' });
    expect(own.resolver.queries).toEqual([`TXT ${REPORT_SELECTOR}._domainkey.example.com`]);
    // Their verdicts say so.
    const untrusted = await authenticateReport(signed, deps(own.resolver, ['yahoo.test']));
    expect(untrusted).toMatchObject({ verdict: 'unauthenticated', reason: 'signer-not-trusted' });
    expect(untrusted.verdict === 'unauthenticated' && new Set(untrusted.signatures.map((s) => s.result))).toEqual(new Set(['not-checked']));
  });

  it('counts the signatures as mailauth reads the header: a field name folded before its colon is one too', async () => {
    const own = createReportSigner();
    let many: Buffer = Buffer.from(report, 'latin1');
    for (let i = 0; i <= MAX_REPORT_SIGNATURES; i++) many = await own.sign(many, `d${i}.attacker.test`);
    const folded = Buffer.from(many.toString('latin1').replace(/^DKIM-Signature:/gm, 'DKIM-Signature\r\n :'), 'latin1');
    expect(await authenticateReport(folded, deps(own.resolver))).toMatchObject({ verdict: 'unauthenticated', reason: 'too-many-signatures' });
    expect(own.resolver.queries).toEqual([]);
  });

  it("ends the key lookups when the report's time is up: a trusted signer's DNS that never answers is a temperror", async () => {
    const own = createReportSigner();
    const signed = await own.sign(report, 'example.com');
    own.resolver.set(`${REPORT_SELECTOR}._domainkey.example.com`, { txt: SILENT });
    const deadline = new AbortController();
    const checked = authenticateReport(signed, { ...deps(own.resolver), signal: deadline.signal });
    setTimeout(() => deadline.abort(), 20);
    expect(await checked).toMatchObject({ verdict: 'temperror', signatures: [{ domain: 'example.com', result: 'temperror' }] });
  });

  it("drops a trusted domain's signature whose key name cannot be asked, instead of asking for retries forever", async () => {
    const own = createReportSigner();
    const signed = await own.sign(report, 'example.com', { selector: 'a'.repeat(64) });
    // node:dns refuses a label over 63 characters itself (EBADNAME): nothing is sent.
    const resolver = new Resolver({ timeout: 1000, tries: 1 });
    expect(await authenticateReport(signed, deps(resolver))).toMatchObject({ verdict: 'unauthenticated', reason: 'signature-failed', signatures: [{ domain: 'example.com', result: 'neutral' }] });
  });

  it('refuses a second From, To, Subject or Content-Type: DKIM verifies the bottom one, the report reader reads the top one', async () => {
    const signed = (await signer.sign(report, 'example.com')).toString('latin1');
    for (const field of ['Content-Type: multipart/mixed; boundary="other"', 'To: <fbl@sender.test>', 'Subject: FW: Your weekly digest', 'From: <abusedesk@example.com>', 'Content-Type\r\n : text/plain']) {
      expect(await check(`${field}\r\n${signed}`), field).toMatchObject({ verdict: 'unauthenticated', reason: 'duplicate-fields' });
    }
    // A field only the reader sees as one (mailauth reads a name after a vertical tab as no field name).
    const hidden = Buffer.from(`\x0bContent-Type: text/plain\r\n${signed}`, 'latin1');
    const readFields = (await readReportMessage(hidden)).fieldNames;
    expect(await authenticateReport(hidden, deps(signer.resolver), readFields)).toMatchObject({ verdict: 'unauthenticated', reason: 'duplicate-fields' });
    expect(await authenticateReport(Buffer.from(signed, 'latin1'), deps(signer.resolver), (await readReportMessage(Buffer.from(signed, 'latin1'))).fieldNames)).toMatchObject({ verdict: 'trusted' });
  });

  it('believes a report addressed to one of our feedback addresses only, in a To its signature covers', async () => {
    // A feedback loop's report to another of its subscribers, passed on unchanged.
    const elsewhere = await signer.sign(report.replace('To: <fbl@sender.test>', 'To: <fbl@attacker.test>'), 'example.com');
    expect(await check(elsewhere)).toMatchObject({ verdict: 'unauthenticated', reason: 'not-addressed-to-us' });
    const toUnsigned = await signer.sign(report, 'example.com', { headerList: 'From:Subject:Date:MIME-Version:Content-Type' });
    expect(await check(toUnsigned)).toMatchObject({ verdict: 'unauthenticated', reason: 'to-not-signed' });
    const contentTypeUnsigned = await signer.sign(report, 'example.com', { headerList: 'From:To:Subject:Date:MIME-Version' });
    expect(await check(contentTypeUnsigned)).toMatchObject({ verdict: 'unauthenticated', reason: 'content-type-not-signed' });
    // One of several addresses will do, in a group too, in any case.
    const several = await signer.sign(report.replace('To: <fbl@sender.test>', 'To: abuse@attacker.test, loops: <FBL@Sender.test>;'), 'example.com');
    expect(await check(several)).toMatchObject({ verdict: 'trusted' });
  });

  it("takes for an address entry a signature by the address's domain or a parent of it, never a sibling's", async () => {
    const from = report.replace('From: <abusedesk@example.com>', 'From: <reports@fbl.example.net>');
    const outcome = async (domain: string) => {
      const judged = await check(await signer.sign(from, domain), ['reports@fbl.example.net']);
      return judged.verdict === 'trusted' ? judged.signer : judged.verdict === 'unauthenticated' ? judged.reason : judged.verdict;
    };
    expect(await outcome('fbl.example.net')).toBe('fbl.example.net');
    expect(await outcome('example.net')).toBe('example.net');
    expect(await outcome('customer.example.net')).toBe('signer-not-trusted');
    expect(await outcome('x.customer.example.net')).toBe('signer-not-trusted');
  });
});
