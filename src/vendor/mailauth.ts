import { createRequire } from 'node:module';

/**
 * What Rookery takes from mailauth's internal files (mailauth/lib/...), with the types mailauth
 * does not declare for them:
 *  - the steps of DKIM signing (header parsing and selection, relaxed canonicalization of header
 *    and body, the DKIM-Signature format), which the signer runs itself to over-sign and to reuse
 *    parsed keys (see src/sender-domains/signer.ts);
 *  - the DMARC record lookup with its tree walk, the policy tags, and alignment;
 *  - the SPF evaluator with its declared options (lib/spf has the strict and time-limit options
 *    the package's main entry does not declare);
 *  - DKIM verification alone (lib/dkim/verify), without the SPF, DMARC and ARC checks of the
 *    main entry's authenticate(), for the feedback reports whose signer decides whether they
 *    are trusted (see src/feedback/report-authentication.ts).
 * tests/unit/vendor-contract.test.ts checks that each export still exists with this shape.
 */

export { spf, type SPFOptions } from 'mailauth/lib/spf/index.js';
export { dkimVerify } from 'mailauth/lib/dkim/verify.js';
export type { DKIMVerifyOptions, DKIMVerifyResult } from 'mailauth';

/** A header field as mailauth's parseHeaders returns it. */
export interface ParsedHeader {
  /** Lower-case field name. */
  key: string;
  casedKey: string;
  line: Buffer;
}

/** The fields a signature covers, as getSigningHeaderLines selects them. */
export interface SigningHeaderLines {
  /** The h= value: field names joined with ": ". */
  keys: string;
  /** The fields hashed, in h= order. */
  headers: ParsedHeader[];
}

/** A body hasher (relaxed or simple canonicalization). */
export interface BodyHasher {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

/** The fields of mailauth's parsed DMARC record that Rookery reads. */
export interface DmarcRecord {
  p?: string;
  sp?: string;
  adkim?: string;
  aspf?: string;
  pct?: number;
  rua?: string;
  rr: string;
  isOrgRecord: boolean;
  recordDomain: string;
}

/** mailauth's DNS resolver shape: (name, record type) -> answers. */
export type MailauthResolver = (name: string, type: string) => Promise<unknown[]>;

const require = createRequire(import.meta.url);

const tools = require('mailauth/lib/tools.js') as {
  parseHeaders(header: Buffer): { parsed: ParsedHeader[] };
  getSigningHeaderLines(parsed: ParsedHeader[], fieldNames: string): SigningHeaderLines;
  formatSignatureHeaderLine(type: 'DKIM', values: Record<string, unknown>, folded: boolean): string;
  getAlignment(fromDomain: string, domains: string[], strict: boolean): unknown;
};

/** The header block's fields, in order. */
export const parseHeaders = tools.parseHeaders;
/** The instances of `fieldNames` (colon-separated) a signature covers, bottom-up. */
export const getSigningHeaderLines = tools.getSigningHeaderLines;
/** A DKIM-Signature field (without CRLF) from its tag values; folded for the wire. */
export const formatSignatureHeaderLine = tools.formatSignatureHeaderLine;
/** Relaxed alignment compares organizational domains from the public suffix list. */
export const getAlignment = tools.getAlignment;

export const { dkimBody } = require('mailauth/lib/dkim/body/index.js') as {
  dkimBody(canonicalization: string, algorithm: string, maxBodyLength: false): BodyHasher;
};

export const { generateCanonicalizedHeader } = require('mailauth/lib/dkim/header/index.js') as {
  generateCanonicalizedHeader(
    type: 'DKIM',
    lines: SigningHeaderLines,
    options: Record<string, unknown>,
  ): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, unknown> };
};

const dmarcRecordLookup = require('mailauth/lib/dmarc/get-dmarc-record.js') as ((
  domain: string,
  resolver: MailauthResolver,
) => Promise<DmarcRecord | false>) & {
  getPolicyTags(record: DmarcRecord): { p: string; sp?: string } | null;
};

/** The DMARC record that applies to `domain`: its own, or its organizational domain's; false when none. */
export const getDmarcRecord: (domain: string, resolver: MailauthResolver) => Promise<DmarcRecord | false> = dmarcRecordLookup;

/** The policy tags (p=, sp=) of a record, or null when they are missing or invalid. */
export const getPolicyTags = dmarcRecordLookup.getPolicyTags;
