import { lookup as dnsLookup } from 'node:dns';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { createSemaphore } from '../concurrency-limit.ts';
import { createGuardedLookup } from '../guarded-lookup.ts';
import { STS_MAX_POLICY_BYTES } from './mta-sts-policy.ts';

/**
 * Fetches an MTA-STS policy body (RFC 8461 3.3): GET https://mta-sts.<domain>/.well-known/mta-sts.txt
 * over HTTPS with a certificate valid for that name (the system's roots unless `ca` is given),
 * no redirects, a 200 with text/plain, at most 64 KiB, within the timeout. The policy host is
 * named by the recipient domain's owner: unless private networks are allowed, it is connected to
 * only at a public address (else mta-sts.<domain> pointed at 127.0.0.1 or 10.x would have us
 * probe our own network, the result reported back to the owner by TLS-RPT), and only a few
 * fetches run at once whatever the number of domains being delivered to.
 */

export type StsFetchResult =
  | { ok: true; body: string }
  /** sts-webpki-invalid: the HTTPS certificate did not verify; sts-policy-fetch-error: anything else. */
  | { ok: false; failure: 'sts-policy-fetch-error' | 'sts-webpki-invalid'; reason: string };

export type StsFetcher = (domain: string) => Promise<StsFetchResult>;

export interface StsFetcherOptions {
  /** Whole-fetch limit (connect to last byte). */
  timeoutMs: number;
  maxBytes?: number;
  /** Trusted roots (tests: a test CA); the system's by default. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Port of the policy host (443; tests: a loopback server's). */
  port?: number;
  /** Name resolution for the policy host (tests: loopback); the system's by default. */
  lookup?: LookupFunction;
  /** Connect to policy hosts at private, loopback or link-local addresses (delivery.mtaSts.allowPrivateNetworks; tests). */
  allowPrivateNetworks: boolean;
  /** Fetches at once (default 8); the others wait their turn (a delivery does not wait for them: tls-policies.ts). */
  maxConcurrent?: number;
}

/** TLS errors from the certificate check, as opposed to a network or HTTP failure. */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME/;

export function createStsFetcher(options: StsFetcherOptions): StsFetcher {
  const maxBytes = options.maxBytes ?? STS_MAX_POLICY_BYTES;
  const slots = createSemaphore(options.maxConcurrent ?? 8);
  const lookup = options.allowPrivateNetworks
    ? options.lookup
    : (createGuardedLookup('delivery.mtaSts.allowPrivateNetworks', (options.lookup as typeof dnsLookup | undefined) ?? dnsLookup) as unknown as LookupFunction);
  const fetchNow = (domain: string) =>
    new Promise<StsFetchResult>((resolve) => {
      const host = `mta-sts.${domain}`;
      let settled = false;
      const done = (result: StsFetchResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        request.destroy();
        resolve(result);
      };
      const fail = (reason: string) => done({ ok: false, failure: 'sts-policy-fetch-error', reason });
      const request = https.get(
        {
          host,
          servername: host,
          port: options.port ?? 443,
          path: '/.well-known/mta-sts.txt',
          headers: { 'user-agent': 'Rookery MTA-STS', accept: 'text/plain' },
          rejectUnauthorized: true,
          // A fresh connection per fetch: an agent's pool would outlive the fetch, and fetches are rare.
          agent: false,
          ...(options.ca ? { ca: options.ca } : {}),
          ...(lookup ? { lookup } : {}),
        },
        (response) => {
          const status = response.statusCode ?? 0;
          // RFC 8461 3.3: redirects are not followed.
          if (status !== 200) return fail(`${host} answered HTTP ${status}${status >= 300 && status < 400 ? ' (a redirect, not followed)' : ''}`);
          const type = (response.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
          if (type !== 'text/plain') return fail(`${host} served ${type || 'no content type'}, not text/plain`);
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) return fail(`the policy at ${host} is larger than ${maxBytes} bytes`);
            chunks.push(chunk);
          });
          response.on('end', () => done({ ok: true, body: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', (err) => fail(`reading the policy from ${host} failed: ${err.message}`));
        },
      );
      request.on('error', (err: Error & { code?: string }) => {
        const certificate = CERTIFICATE_ERROR.test(err.code ?? '') || CERTIFICATE_ERROR.test(err.message);
        if (certificate) done({ ok: false, failure: 'sts-webpki-invalid', reason: `the certificate of ${host} is not valid: ${err.message}` });
        // A refused address is said in full (which address, which setting allows it); other errors by their code.
        else fail(`fetching the policy from ${host} failed: ${err.code === 'ERESTRICTED' ? err.message : (err.code ?? err.message)}`);
      });
      const timer = setTimeout(() => fail(`fetching the policy from ${host} took longer than ${options.timeoutMs} ms`), options.timeoutMs);
    });
  return (domain) => slots.run(() => fetchNow(domain));
}
