import type { DkimConfig } from '../config/dkim-schema.ts';
import { VERP_PREFIX, type ReturnPathConfig } from '../config/return-path-schema.ts';
import { domainOf } from '../mail/address.ts';
import type { DkimKeyStore } from './key-store.ts';
import { signingChoice, type SigningChoice } from './signing-choice.ts';
import { returnPathDomainOf } from './verp.ts';

/**
 * What a sender's mail would carry (GET /v1/explain): the DKIM domain and selectors that would
 * sign it and the return path it would leave with, decided by the rules the signer and the
 * delivery use (signing-choice.ts, verp.ts) and the keys that sign now.
 */

export interface SenderExplanation {
  dkim: {
    /** The From domain assumed: the signature follows the From header, taken here to be the sender's domain. */
    fromDomain: string;
    /** d= of the signatures; null when the mail would leave unsigned. */
    domain: string | null;
    source: SigningChoice['source'];
    /** The selector of each key that signs now (an RSA and an Ed25519 key sign twice); empty when unsigned. */
    selectors: string[];
    detail: string;
  };
  returnPath: {
    /** Whether each recipient gets a VERP return path of its own. */
    verp: boolean;
    /** The bounce domain of the VERP addresses; null without VERP. */
    domain: string | null;
    /** The envelope sender it would carry: the sender as given, or the VERP form with its placeholders. */
    address: string;
    detail: string;
  };
}

export interface SenderExplanationSources {
  dkim: DkimConfig;
  keys: Pick<DkimKeyStore, 'keysFor'>;
  returnPath: ReturnPathConfig;
}

export function explainSender(sender: string, { dkim, keys, returnPath }: SenderExplanationSources): SenderExplanation {
  const fromDomain = domainOf(sender);
  const choice = signingChoice(fromDomain, dkim);
  const signing = choice.domain ? keys.keysFor(choice.domain) : [];
  const bounceDomain = returnPathDomainOf(fromDomain, returnPath);
  return {
    dkim: {
      fromDomain,
      domain: signing.length ? choice.domain : null,
      source: choice.source,
      selectors: signing.map((key) => key.selector),
      detail: signingDetail(fromDomain, choice, signing),
    },
    returnPath: bounceDomain
      ? {
          verp: true,
          domain: bounceDomain,
          address: `${VERP_PREFIX}<queue id>.<recipient id>.<tag>@${bounceDomain}`,
          detail: `VERP (returnPath.domains.${fromDomain}): an envelope sender per recipient naming it, so each recipient goes in a transaction of its own`,
        }
      : { verp: false, domain: null, address: sender, detail: `the sender as given: returnPath.domains does not list ${fromDomain}` },
  };
}

function signingDetail(fromDomain: string, choice: SigningChoice, signing: ReadonlyArray<{ selector: string; algorithm: string }>): string {
  const assumed = `assuming the From header's domain is ${fromDomain}`;
  if (!choice.domain) return `no DKIM key for ${fromDomain} and no dkim.fallback: unsigned (${assumed})`;
  if (signing.length === 0) return `no key of ${choice.domain} signs now (see GET /v1/domains): unsigned (${assumed})`;
  const keys = signing.map((key) => `${key.selector} (${key.algorithm})`).join(', ');
  const why = {
    domain: `its own key`,
    parent: `dkim.domains.${choice.domain}.subdomains`,
    fallback: `dkim.fallback: ${fromDomain} has no key of its own`,
    none: '',
  }[choice.source];
  return `signed with d=${choice.domain}, ${why}: ${keys} (${assumed})`;
}
