import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { restrictedAddressCheck } from '../mail/special-addresses.ts';
import { createGuardedLookup } from './guarded-lookup.ts';

/**
 * One POST (a webhook delivery, a TLS report) over kept-alive connections (one agent per scheme,
 * shared by every endpoint). Redirects are not followed (a 3xx is an answer like any other non-2xx), the
 * answer's body is read only up to a small cap, and each POST ends within the timeout. Unless
 * private networks are allowed, every connection's address is checked after DNS (a custom
 * lookup), so a name that resolves to a restricted address, at registration or later, is refused.
 */

export interface PostOutcome {
  /** The HTTP status; null when no answer came (refused, unreachable, timed out, restricted). */
  status: number | null;
  /** Why it failed, for the delivery's history: the error, or the status and the start of the body. */
  error: string | null;
  /** How long it took. */
  ms: number;
}

export interface HttpPoster {
  /** A JSON body unless `headers` give another content-type (TLS-RPT posts gzip). `signal` ends it early (a stop). */
  post(url: string, headers: Record<string, string>, body: string | Buffer, signal?: AbortSignal): Promise<PostOutcome>;
  /** Closes the kept-alive connections. */
  close(): void;
}

export interface HttpPosterOptions {
  timeoutMs: number;
  allowPrivateNetworks: boolean;
  /** Bytes of an answer's body read; the rest is not (the connection is dropped). Default 4 KiB. */
  maxResponseBytes?: number;
  /** Name resolution; the system's by default. */
  lookup?: typeof dnsLookup;
  /** Trusted roots for https (tests: a test CA); the system's by default. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** The User-Agent header. */
  userAgent?: string;
  /** The setting that allows private networks, named in a refusal (default webhooks.allowPrivateNetworks). */
  setting?: string;
}

/** What a receiver's answer may add to the error kept for it. */
const ERROR_BODY_CHARS = 200;

export function createHttpPoster(options: HttpPosterOptions): HttpPoster {
  const check = restrictedAddressCheck();
  const cap = options.maxResponseBytes ?? 4096;
  const setting = options.setting ?? 'webhooks.allowPrivateNetworks';
  const agentOptions = { keepAlive: true, scheduling: 'lifo' as const };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent({ ...agentOptions, ...(options.ca ? { ca: options.ca } : {}) }) };

  const guardedLookup = createGuardedLookup(setting, options.lookup ?? dnsLookup);

  const attempt = (target: URL, headers: Record<string, string>, body: string | Buffer, started: number, signal: AbortSignal | undefined): Promise<PostOutcome & { retryOnFreshSocket?: boolean }> =>
    new Promise((settle) => {
      let status: number | null = null;
      let text = '';
      let done = false;
      const finish = (error: string | null, extra: { retryOnFreshSocket?: boolean } = {}) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const ok = status !== null && status >= 200 && status < 300;
        const why = error ?? (ok ? null : `HTTP ${status}${text ? `: ${text}` : ''}`);
        settle({ status, error: why, ms: performance.now() - started, ...extra });
      };
      const secure = target.protocol === 'https:';
      const request = (secure ? https : http).request(target, {
        method: 'POST',
        agent: secure ? agents.https : agents.http,
        headers: { 'content-type': 'application/json', ...headers, 'content-length': String(Buffer.byteLength(body)), 'user-agent': options.userAgent ?? 'Rookery-Webhooks/1' },
        ...(options.allowPrivateNetworks ? (options.lookup ? { lookup: options.lookup as never } : {}) : { lookup: guardedLookup as never }),
      });
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      const abort = () => request.destroy(new Error('aborted (stopping)'));
      if (signal?.aborted) abort();
      else signal?.addEventListener('abort', abort, { once: true });
      request.on('close', () => signal?.removeEventListener('abort', abort));
      request.on('response', (response) => {
        status = response.statusCode ?? null;
        let received = 0;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (text.length < ERROR_BODY_CHARS) text += chunk.slice(0, ERROR_BODY_CHARS - text.length);
          received += Buffer.byteLength(chunk);
          // Past the cap the rest is not read: the connection is dropped instead of kept.
          if (received > cap) response.destroy();
        });
        // The status decides; a body cut at the cap, or ended by the timeout, changes nothing.
        response.on('end', () => finish(null));
        response.on('close', () => finish(null));
        response.on('error', () => finish(null));
      });
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (status !== null) return finish(null);
        // A kept-alive connection the receiver closed as it was reused: not the receiver's failure.
        finish(err.message, { retryOnFreshSocket: request.reusedSocket && err.code === 'ECONNRESET' });
      });
      request.end(body);
    });

  return {
    async post(url, headers, body, signal) {
      const started = performance.now();
      const target = new URL(url);
      const host = target.hostname.replace(/^\[|\]$/g, '');
      // An address in the URL is connected to without a lookup: checked here instead.
      const why = !options.allowPrivateNetworks && isIP(host) ? check(host) : null;
      if (why) return { status: null, error: `${host} is ${why}: refused (${setting})`, ms: 0 };
      const first = await attempt(target, headers, body, started, signal);
      if (!first.retryOnFreshSocket || signal?.aborted) return { status: first.status, error: first.error, ms: first.ms };
      const second = await attempt(target, headers, body, started, signal);
      return { status: second.status, error: second.error, ms: second.ms };
    },

    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
