import { describeFailure, lookupTxt, mailauthResolver, type DomainCheckResolver } from './domain-check-dns.ts';
import type { DmarcAlignmentCheck, DmarcPolicy, DmarcRecordCheck } from './domain-check-report.ts';
import { getAlignment, getDmarcRecord, getPolicyTags, type DmarcRecord } from '../vendor/mailauth.ts';

/**
 * DMARC (RFC 7489, and the DMARCbis tree walk mailauth implements): the policy that applies to
 * mail From: the domain, found at _dmarc.<domain> or inherited from its organizational domain,
 * told in words; and whether the identities Rookery's mail carries (DKIM d=, MAIL FROM domain)
 * align with the From domain, which is what lets that mail pass DMARC.
 */

const DMARC_RECORD = /^v\s*=\s*DMARC1\s*(?:;|$)/i;

const MEANING: Record<DmarcPolicy, string> = {
  reject: 'receivers are asked to reject mail that fails DMARC',
  quarantine: 'receivers are asked to treat mail that fails DMARC as spam (quarantine)',
  none: 'monitoring only: mail that fails DMARC is delivered as usual and only reported',
};

export async function checkDmarc(input: {
  domain: string;
  resolver: DomainCheckResolver;
  /** d= of Rookery's signatures for the domain; null when its mail leaves unsigned. */
  signingDomain: string | null;
  /** The MAIL FROM domain of its mail (the domain itself, or a VERP bounce domain). */
  returnPathDomain: string;
}): Promise<Array<DmarcRecordCheck | DmarcAlignmentCheck>> {
  const { domain, resolver } = input;
  const name = `_dmarc.${domain}`;
  const base = { area: 'dmarc', check: 'dmarc-record', subject: name, recordDomain: null, policy: null, pct: null, adkim: null, aspf: null, rua: [] } as const;

  // Several records make every one of them void (RFC 7489 6.6.3); mailauth would silently walk
  // up to the organizational domain instead, so that case is caught here to say why.
  const own = await lookupTxt(resolver, name);
  const ownRecords = own.ok ? own.records.filter((r) => DMARC_RECORD.test(r.trim())) : [];
  if (ownRecords.length > 1) {
    return [
      {
        ...base,
        status: 'error',
        record: ownRecords.join(' | '),
        message: `${name} holds ${ownRecords.length} DMARC records: receivers ignore them all`,
        fix: `keep exactly one TXT record starting with v=DMARC1 at ${name}`,
      },
    ];
  }

  let found: DmarcRecord | false;
  try {
    found = await getDmarcRecord(domain, mailauthResolver(resolver));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return [{ ...base, status: 'warn', record: null, message: 'the DMARC record could not be looked up', fix: describeFailure(name, 'TXT', code) }];
  }
  if (!found) {
    return [
      {
        ...base,
        status: 'warn',
        record: null,
        message: `no DMARC record at ${name} or above it: receivers apply no policy, and Gmail and Yahoo require one from bulk senders`,
        fix: `publish TXT record ${name} with value "v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}" to start monitoring, then raise p= to quarantine or reject`,
      },
    ];
  }

  const applied = getPolicyTags(found);
  const recordName = `_dmarc.${found.recordDomain}`;
  const facts = {
    record: found.rr,
    recordDomain: found.recordDomain,
    pct: typeof found.pct === 'number' ? found.pct : null,
    adkim: found.adkim === 's' ? 's' : 'r',
    aspf: found.aspf === 's' ? 's' : 'r',
    rua: found.rua ? found.rua.split(',').map((uri) => uri.trim()).filter(Boolean) : [],
  } as const;
  if (!applied) {
    return [
      {
        ...base,
        ...facts,
        subject: recordName,
        status: 'error',
        message: `the DMARC record at ${recordName} is invalid (p= must be none, quarantine or reject): receivers ignore it`,
        fix: `correct p= in the TXT record at ${recordName}`,
      },
    ];
  }

  // A record found above the domain governs it through sp= (RFC 7489 6.3).
  const policy = (found.isOrgRecord ? (applied.sp ?? applied.p) : applied.p) as DmarcPolicy;
  const source = found.isOrgRecord ? `no record at ${name}, inherited from ${recordName}: ${applied.sp ? 'sp' : 'p'}=${policy}` : `${recordName}: p=${policy}`;
  const parts = [`${source}: ${MEANING[policy]}`];
  if (facts.pct !== null && facts.pct < 100 && policy !== 'none') parts.push(`only for ${facts.pct} % of failing mail (pct=${facts.pct})`);
  parts.push(`DKIM alignment ${facts.adkim === 's' ? 'strict' : 'relaxed'}, SPF alignment ${facts.aspf === 's' ? 'strict' : 'relaxed'}`);
  parts.push(facts.rua.length ? `aggregate reports go to ${facts.rua.join(', ')}` : 'no aggregate reports requested (rua=)');
  const invalidPolicy = applied.p === 'none' && found.p !== 'none';
  const record: DmarcRecordCheck = {
    ...base,
    ...facts,
    subject: recordName,
    policy,
    status: invalidPolicy ? 'warn' : 'ok',
    message: invalidPolicy ? `p= is not valid, so receivers apply p=none; ${parts.join('; ')}` : parts.join('; '),
    fix: invalidPolicy ? `correct p= in the TXT record at ${recordName}` : null,
  };
  return [record, alignment(input, facts.adkim === 's', facts.aspf === 's')];
}

function alignment(input: { domain: string; signingDomain: string | null; returnPathDomain: string }, strictDkim: boolean, strictSpf: boolean): DmarcAlignmentCheck {
  const { domain, signingDomain, returnPathDomain } = input;
  const dkimAligned = signingDomain !== null && Boolean(getAlignment(domain, [signingDomain], strictDkim));
  const spfAligned = Boolean(getAlignment(domain, [returnPathDomain], strictSpf));
  const dkimWords =
    signingDomain === null
      ? 'unsigned mail has no DKIM identity'
      : `DKIM d=${signingDomain} ${dkimAligned ? 'aligns' : 'does not align'} with ${domain}${strictDkim ? ' (adkim=s)' : ''}`;
  const spfWords = `MAIL FROM domain ${returnPathDomain} ${spfAligned ? 'aligns' : 'does not align'}${strictSpf ? ' (aspf=s)' : ''}`;
  const base = { area: 'dmarc', check: 'dmarc-alignment', subject: domain, dkimAligned, spfAligned } as const;
  if (dkimAligned) {
    return { ...base, status: 'ok', message: `${dkimWords}; ${spfWords}`, fix: null };
  }
  const signWithOwnKey = `sign with a key of ${domain} itself: rookery dkim generate --domain ${domain} --selector <name>, and list it under dkim.domains`;
  if (spfAligned) {
    return {
      ...base,
      status: 'warn',
      message: `${dkimWords}; ${spfWords}, so DMARC rests on SPF alone, which fails when mail is forwarded`,
      fix: signWithOwnKey,
    };
  }
  return { ...base, status: 'error', message: `${dkimWords}; ${spfWords}: Rookery's mail from ${domain} fails DMARC`, fix: signWithOwnKey };
}
