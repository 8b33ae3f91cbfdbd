import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DkimConfig } from '../config/dkim-schema.ts';
import { dkimRecordName, dkimTxtValue, DkimRecordError, parseDkimTxt, publicKeyMatches, type DkimRecord } from './dns-record.ts';
import { describeFailure, lookupTxt, type DomainCheckResolver, type Lookup } from './domain-check-dns.ts';
import type { DkimKeyCheck, DkimSigningCheck } from './domain-check-report.ts';
import { signingChoice, type SigningChoice } from './signing-choice.ts';

/**
 * DKIM of a sender domain: which configured domain signs its mail (itself, a parent that covers
 * subdomains, or the fallback, as the signer chooses), and for each of that domain's keys
 * whether the key file is usable and `<selector>._domainkey.<domain>` publishes its public half.
 */

const MIN_RSA_BITS = 1024;

export async function checkDkim(input: {
  domain: string;
  dkim: DkimConfig | undefined;
  /** Selectors asked for by the operator; those no configured key uses are checked for presence only. */
  selectors?: readonly string[];
  resolver: DomainCheckResolver;
}): Promise<{ signing: SigningChoice; checks: Array<DkimSigningCheck | DkimKeyCheck> }> {
  const { domain, dkim, resolver } = input;
  const signing = signingChoice(domain, dkim);
  const keys = signing.domain && dkim ? (dkim.domains[signing.domain]?.keys ?? []) : [];
  const recordDomain = signing.domain ?? domain;

  const configured = await Promise.all(keys.map(async (key) => inspectKey(recordDomain, key.selector, key.privateKey, resolver)));
  const configuredSelectors = new Set(keys.map((k) => k.selector.toLowerCase()));
  const extra = [...new Set((input.selectors ?? []).map((s) => s.toLowerCase()))].filter((s) => !configuredSelectors.has(s));
  const presence = await Promise.all(extra.map((selector) => inspectKey(recordDomain, selector, null, resolver)));

  return {
    signing,
    checks: [signingCheck(domain, signing, keys.length), ...configured.map((k, _, all) => keyCheck(domain, k, all)), ...presence.map((k) => keyCheck(domain, k, []))],
  };
}

function signingCheck(domain: string, signing: SigningChoice, keyCount: number): DkimSigningCheck {
  const base = { area: 'dkim', check: 'dkim-signing', subject: domain, signingDomain: signing.domain, source: signing.source } as const;
  const generate = `create a key with \`rookery dkim generate --domain ${domain} --selector <name>\` and list it under dkim.domains.${domain}.keys`;
  switch (signing.source) {
    case 'domain':
      return { ...base, status: 'ok', message: `mail From: ${domain} is signed with d=${domain} (${plural(keyCount, 'key')})`, fix: null };
    case 'parent':
      return {
        ...base,
        status: 'ok',
        message: `mail From: ${domain} is signed with d=${signing.domain} (dkim.domains.${signing.domain}.subdomains), ${plural(keyCount, 'key')}`,
        fix: null,
      };
    case 'fallback':
      return {
        ...base,
        status: 'warn',
        message: `${domain} has no DKIM key of its own: its mail is signed by the fallback domain ${signing.domain}`,
        fix: generate,
      };
    case 'none':
      return { ...base, status: 'error', message: `${domain} has no DKIM key and there is no fallback: its mail leaves unsigned`, fix: generate };
  }
}

/** What was found for one selector, before it is judged. */
interface Inspection {
  signingDomain: string;
  selector: string;
  recordName: string;
  keyFile: string | null;
  key: { key: KeyObject; type: 'rsa' | 'ed25519'; bits: number | null } | { problem: string } | null;
  txt: Lookup<string>;
  /** The DKIM records among the TXT records found. */
  records: DkimRecord[];
  /** Why a TXT record found is not a DKIM key record. */
  invalid: string | null;
  matches: boolean | null;
}

async function inspectKey(signingDomain: string, selector: string, keyFile: string | null, resolver: DomainCheckResolver): Promise<Inspection> {
  const recordName = dkimRecordName(selector, signingDomain);
  const [key, txt] = await Promise.all([keyFile === null ? null : loadKey(keyFile), lookupTxt(resolver, recordName)]);
  const records: DkimRecord[] = [];
  let invalid: string | null = null;
  for (const text of txt.ok ? txt.records : []) {
    try {
      records.push(parseDkimTxt(text));
    } catch (err) {
      if (!(err instanceof DkimRecordError)) throw err;
      invalid = err.message;
    }
  }
  const [record] = records;
  const matches = key && 'key' in key && records.length === 1 && record ? publicKeyMatches(record, key.key) : null;
  return { signingDomain, selector, recordName, keyFile, key, txt, records, invalid, matches };
}

async function loadKey(path: string): Promise<NonNullable<Inspection['key']>> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    return { problem: `cannot read key file ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return { problem: `${path} does not hold an unencrypted PEM private key` };
  }
  if (key.asymmetricKeyType === 'ed25519') return { key, type: 'ed25519', bits: null };
  if (key.asymmetricKeyType !== 'rsa') return { problem: `${path} holds a ${key.asymmetricKeyType} key; DKIM signs with RSA or Ed25519` };
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return { problem: `${path} holds an RSA key of ${bits} bits; receivers refuse keys under ${MIN_RSA_BITS} bits (RFC 8301)` };
  return { key, type: 'rsa', bits };
}

/**
 * Judges one selector. `group` holds every configured selector of the domain: when another key
 * of the same type is published and matches, this one is a rotation step (a new key waiting for
 * its record, or an old one that can go), which is worth a warning, not an error.
 */
function keyCheck(domain: string, found: Inspection, group: readonly Inspection[]): DkimKeyCheck {
  const { signingDomain, selector, recordName, keyFile, key, txt, records } = found;
  const usable = key && 'key' in key ? key : null;
  const expected = usable ? dkimTxtValue(usable.key) : null;
  const base = {
    area: 'dkim',
    check: 'dkim-key',
    subject: recordName,
    selector,
    signingDomain,
    recordName,
    configured: keyFile !== null,
    keyFile,
    keyType: usable?.type ?? null,
    bits: usable?.bits ?? null,
    record: txt.ok ? txt.records.join(' | ') || null : null,
    expectedRecord: expected,
    matches: found.matches,
  } as const;
  const publish = expected ? `publish TXT record ${recordName} with value "${expected}"` : null;
  const rotation = usable !== null && group.some((other) => other !== found && other.matches && other.key && 'type' in other.key && other.key.type === usable.type);
  const configPath = `dkim.domains.${signingDomain}.keys`;

  if (!txt.ok && txt.missing === null) {
    return { ...base, status: 'warn', message: `the DKIM record ${recordName} could not be looked up`, fix: describeFailure(recordName, 'TXT', txt.error) };
  }
  if (key && 'problem' in key) {
    const published = records.length > 0 ? `; a record is published at ${recordName}` : '';
    return {
      ...base,
      status: 'error',
      message: `${key.problem}: Rookery cannot sign with selector ${selector}${published}`,
      fix: `restore the key file, or create a new key with \`rookery dkim generate --domain ${signingDomain} --selector <new name>\` and replace this entry in ${configPath}`,
    };
  }
  const what = usable ? `the ${usable.type === 'rsa' ? `RSA-${usable.bits}` : 'Ed25519'} key in ${keyFile}` : null;

  if (records.length === 0) {
    if (found.invalid) {
      return {
        ...base,
        status: 'error',
        message: `the TXT record at ${recordName} is not a DKIM key record (${found.invalid}): signatures by selector ${selector} cannot be verified`,
        fix: publish ? `replace it: ${publish}` : `replace it with the record printed by rookery dkim generate`,
      };
    }
    if (!usable) {
      return { ...base, status: 'error', message: `no DKIM record at ${recordName} (selector ${selector} is not configured; checked for presence only)`, fix: `publish the record printed by rookery dkim generate for this selector` };
    }
    return rotation
      ? { ...base, status: 'warn', message: `no DKIM record at ${recordName} yet: ${what} does not sign until it is published (another ${usable.type} key signs meanwhile)`, fix: publish }
      : { ...base, status: 'error', message: `no DKIM record at ${recordName}: signatures made with ${what} cannot be verified`, fix: publish };
  }
  if (records.length > 1) {
    return {
      ...base,
      status: 'error',
      message: `${recordName} holds ${records.length} DKIM records: verifiers may use any of them, so signatures fail at random`,
      fix: publish ? `keep only one: ${publish}` : `keep exactly one DKIM record at ${recordName}`,
    };
  }
  const [record] = records as [DkimRecord];
  if (record.p === '') {
    return { ...base, status: 'error', message: `the key published at ${recordName} is revoked (empty p=)`, fix: publish ?? `remove selector ${selector} or publish its key` };
  }
  if (record.s && !record.s.includes('email')) {
    return { ...base, status: 'error', message: `the record at ${recordName} is limited to s=${record.s.join(':')}, so verifiers ignore it for email`, fix: publish ?? 'remove s= from the record' };
  }
  if (!usable) {
    return { ...base, status: 'ok', message: `DKIM record published at ${recordName} (k=${record.k}; selector ${selector} is not configured, checked for presence only)`, fix: null };
  }
  if (record.h && !record.h.includes('sha256')) {
    return { ...base, status: 'error', message: `the record at ${recordName} allows only h=${record.h.join(':')}, but Rookery signs with sha256`, fix: publish };
  }
  if (!found.matches) {
    const mismatch = `the record at ${recordName} publishes a different key than ${what} (k=${record.k}): signatures fail`;
    return rotation
      ? { ...base, status: 'warn', message: `${mismatch} with this selector; another ${usable.type} key signs meanwhile`, fix: `${publish} (replacing the current one)` }
      : { ...base, status: 'error', message: mismatch, fix: `${publish} (replacing the current one), or point privateKey in ${configPath} at the key that record was made from` };
  }
  if (record.t.includes('y')) {
    return { ...base, status: 'warn', message: `the record at ${recordName} matches ${what}, but is marked for testing (t=y): receivers may ignore signatures`, fix: `remove t=y from the record once testing is done` };
  }
  const signer = signingDomain === domain ? '' : ` (d=${signingDomain})`;
  return { ...base, status: 'ok', message: `the record at ${recordName} matches ${what}${signer}`, fix: null };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
