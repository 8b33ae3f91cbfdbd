import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import type { DKIMSignOptions } from 'mailauth';
import addressparser from 'nodemailer/lib/addressparser';
import type { Clock } from '../clock.ts';
import { headerValue, splitHeader } from '../engine/message-headers.ts';
import type { Logger } from '../observability/logger.ts';
import { normalizeDomain, type DkimConfig } from './dkim-config.ts';
import type { DkimKey, DkimKeyStore } from './key-store.ts';
import { toWireForm } from './wire-form.ts';

/**
 * DKIM signing of outgoing messages with mailauth: d= is the From domain (or its configured
 * parent, or the fallback domain), one signature per key that signs for it (an RSA and an
 * Ed25519 key sign twice), relaxed/relaxed.
 */

/** Why a message left unsigned; the caller counts it (rookery_dkim_unsigned_total{reason}). */
export type UnsignedReason = 'no-from-domain' | 'no-key' | 'error';

export interface SignResult {
  /** The message in wire form with the DKIM-Signature fields in front; unchanged when unsigned. */
  message: Buffer;
  /** The d= of the signatures; null when unsigned. */
  domain: string | null;
  /** The s= of each signature made. */
  selectors: string[];
}

export interface DkimSigner {
  /** Signs one message (call once per message and keep the result: every signature costs a private-key operation). */
  sign(message: Buffer): Promise<SignResult>;
}

export interface DkimSignerOptions {
  keys: Pick<DkimKeyStore, 'keysFor'>;
  config: DkimConfig;
  clock: Clock;
  logger: Logger;
  onUnsigned?: (reason: UnsignedReason) => void;
}

/** The fields that matter to the reader and to list handling; each present instance is signed. */
export const SIGNED_HEADERS: readonly string[] = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Content-ID', 'Content-Description', 'Content-Disposition',
  'Resent-Date', 'Resent-From', 'Resent-Sender', 'Resent-To', 'Resent-Cc', 'Resent-Message-ID',
  'In-Reply-To', 'References',
  'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Unsubscribe-Post', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive',
  'Feedback-ID', 'BIMI-Selector',
];

/**
 * Named in h= once more than they occur (RFC 6376 8.15), so that a copy with one of them added
 * (a second From or Subject shown instead of the signed one) fails verification.
 */
export const OVER_SIGNED_HEADERS: readonly string[] = ['From', 'To', 'Subject', 'Date', 'Message-ID', 'Reply-To', 'MIME-Version', 'Content-Type'];

const SIGNED = new Set(SIGNED_HEADERS.map((h) => h.toLowerCase()));

interface ParsedHeader {
  /** Lower-case field name. */
  key: string;
  /** Field name as written; mailauth builds h= from these, joined with ": ". */
  casedKey: string;
  line: Buffer;
}

interface MailauthSigner extends Writable {
  signatureHeaders: string[];
  errors: { selector?: string; err: Error }[];
  messageHeaders(headers: { parsed: ParsedHeader[] }): Promise<void>;
}

/*
 * mailauth's dkimSign cannot over-sign: whatever its headerList says, h= names each field that
 * is present exactly once per instance (repeats in headerList are ignored). dkimSign is a thin
 * wrapper around this signer class, whose h= is the `casedKey` of the fields it hashes, in
 * order, and whose hashed header data is their `line`s. Appending the over-signed names to the
 * last hashed field's name puts them at the end of h= without hashing anything for them, which
 * is exactly what a verifier computes for a name with no instance left (RFC 6376 5.4.2).
 * tests/unit/dkim-signer.test.ts checks the h= and that an added Subject breaks verification.
 */
const require = createRequire(import.meta.url);
const { DkimSigner: MailauthDkimSigner } = require('mailauth/lib/dkim/dkim-signer.js') as {
  DkimSigner: new (options: Partial<DKIMSignOptions> & { signatureData: DKIMSignOptions[] }) => MailauthSigner;
};

class OverSigningDkimSigner extends MailauthDkimSigner {
  override async messageHeaders(headers: { parsed: ParsedHeader[] }): Promise<void> {
    // mailauth lists signed fields bottom-up, so the topmost signed field is the last in h=.
    const topmost = headers.parsed.find((h) => SIGNED.has(h.key));
    if (topmost) topmost.casedKey += OVER_SIGNED_HEADERS.map((name) => `: ${name}`).join('');
    return super.messageHeaders(headers);
  }
}

export function createDkimSigner(options: DkimSignerOptions): DkimSigner {
  const { keys, config, clock, onUnsigned } = options;
  const log = options.logger.child({ component: 'dkim' });
  const headerList = SIGNED_HEADERS.join(':');

  function unsigned(message: Buffer, reason: UnsignedReason): SignResult {
    onUnsigned?.(reason);
    return { message, domain: null, selectors: [] };
  }

  /** The configured domain that signs for a From domain: itself, a parent with subdomains, or the fallback. */
  function signingDomain(fromDomain: string): string | null {
    if (Object.hasOwn(config.domains, fromDomain)) return fromDomain;
    for (let dot = fromDomain.indexOf('.'); dot !== -1; dot = fromDomain.indexOf('.', dot + 1)) {
      const parent = fromDomain.slice(dot + 1);
      if (config.domains[parent]?.subdomains) return parent;
    }
    return config.fallback;
  }

  return {
    async sign(input) {
      const message = toWireForm(input);
      const fromDomain = fromHeaderDomain(message);
      if (!fromDomain) return unsigned(message, 'no-from-domain');
      const domain = signingDomain(fromDomain);
      const signingKeys = domain ? keys.keysFor(domain) : [];
      if (!domain || signingKeys.length === 0) return unsigned(message, 'no-key');

      const now = clock.now();
      const signer = new OverSigningDkimSigner({
        canonicalization: 'relaxed/relaxed',
        headerList,
        signTime: new Date(now),
        ...(config.expiry !== null ? { expires: new Date(now + config.expiry) } : {}),
        signatureData: signingKeys.map((key) => signatureData(key)),
      });
      try {
        await new Promise<void>((resolve, reject) => {
          signer.once('error', reject);
          signer.once('finish', resolve);
          signer.end(message);
        });
      } catch (err) {
        log.error({ event: 'dkim.sign_failed', domain, error: (err as Error).message }, 'DKIM signing failed; sending unsigned');
        return unsigned(message, 'error');
      }
      for (const { selector, err } of signer.errors) {
        log.error({ event: 'dkim.sign_failed', domain, selector, error: err.message }, 'DKIM signature could not be made');
      }
      const made = signer.signatureHeaders;
      if (made.length === 0) return unsigned(message, 'error');
      const failed = new Set(signer.errors.map((e) => e.selector));
      return {
        message: Buffer.concat([Buffer.from(made.join('\r\n') + '\r\n', 'latin1'), message]),
        domain,
        selectors: signingKeys.map((k) => k.selector).filter((s) => !failed.has(s)),
      };
    },
  };
}

function signatureData(key: DkimKey): DKIMSignOptions {
  return { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKeyPem, algorithm: key.algorithm };
}

/**
 * The domain of the (first) address in the From field, as a lower-case A-label, or null. Header
 * bytes are read as UTF-8 so that SMTPUTF8 addresses with U-label domains are found too.
 */
export function fromHeaderDomain(message: Buffer): string | null {
  const raw = headerValue(splitHeader(message).header, 'From');
  if (raw === null) return null;
  const [first] = addressparser(Buffer.from(raw, 'latin1').toString('utf8'), { flatten: true });
  const address = first?.address ?? '';
  const at = address.lastIndexOf('@');
  return at > 0 ? normalizeDomain(address.slice(at + 1)) : null;
}
