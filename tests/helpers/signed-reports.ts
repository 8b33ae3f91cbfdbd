import type { DKIMSignOptions } from 'mailauth';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { generateDkimKey } from './dkim-keys.ts';
import { createFixtureResolver, type FixtureResolver } from './fixture-resolver.ts';

/**
 * Feedback reports signed as a feedback loop signs them: DKIM (rsa-sha256, relaxed/relaxed) with
 * a key made once per signer, its record published in a fixture resolver under
 * `fbl._domainkey.<domain>` for each domain that signs.
 */

export const REPORT_SELECTOR = 'fbl';

export interface ReportSigner {
  /** Where the signing domains' key records are (given, or one made for the signer). */
  resolver: FixtureResolver;
  /**
   * The message with a DKIM-Signature by `domain` on top (rsa-sha256 unless `algorithm`;
   * `maxBodyLength` is l=; `headerList` the fields signed, colon-separated, instead of mailauth's
   * default list; `selector` instead of REPORT_SELECTOR).
   */
  sign(message: Buffer | string, domain: string, options?: { algorithm?: 'rsa-sha256' | 'rsa-sha1'; maxBodyLength?: number; headerList?: string; selector?: string }): Promise<Buffer>;
}

export function createReportSigner(resolver: FixtureResolver = createFixtureResolver()): ReportSigner {
  const key = generateDkimKey('rsa');
  return {
    resolver,
    async sign(message, domain, { algorithm = 'rsa-sha256', maxBodyLength, headerList, selector = REPORT_SELECTOR } = {}) {
      const raw = Buffer.isBuffer(message) ? message : Buffer.from(message, 'latin1');
      resolver.set(`${selector}._domainkey.${domain}`, { txt: [key.record] });
      // mailauth's declared options want top-level key fields, but it signs from signatureData.
      const options = { canonicalization: 'relaxed/relaxed', headerList, signatureData: [{ signingDomain: domain, selector, privateKey: key.pem, algorithm, maxBodyLength }] };
      const { signatures, errors } = await dkimSign(raw, options as unknown as DKIMSignOptions);
      if (errors.length > 0 || !signatures) throw new Error(`could not sign for ${domain}: ${JSON.stringify(errors)}`);
      return Buffer.concat([Buffer.from(signatures, 'latin1'), raw]);
    },
  };
}
