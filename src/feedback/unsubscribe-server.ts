import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../clock.ts';
import { problem, PROBLEM_CONTENT_TYPE } from '../control-api/problem.ts';
import type { ApiErrorCode, ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { UnsubscribeLinks } from '../sender-domains/unsubscribe-links.ts';
import type { UnsubscribeClaims } from '../sender-domains/unsubscribe-token.ts';
import { FORM_TYPES, isOneClick, MAX_FORM_BYTES } from './unsubscribe-form.ts';
import { confirmPage, HTML_TYPE, resultPage, SECURITY_HEADERS } from './unsubscribe-pages.ts';
import type { UnsubscribeRecorder } from './unsubscribe-recorder.ts';

/**
 * The public unsubscribe listener: `GET /u/TOKEN` shows a page with a confirm button and records
 * nothing (mail scanners fetch links); `POST /u/TOKEN` with List-Unsubscribe=One-Click (RFC 8058,
 * from a mail client or the page's button) suppresses the recipient for the tenant and answers
 * 200, again 200 for a repeat. A token that is not one Rookery makes is 400, one that does not
 * authenticate 404; neither records anything.
 *
 * Its own Fastify instance, apart from the control API: it faces the internet (behind the
 * operator's TLS proxy), takes no credentials, and is limited per client address
 * (unsubscribe.rateLimit; the address a trusted proxy names in X-Forwarded-For). Bodies are tiny
 * and timeouts short. Fastify's request log is off: the URL carries the token, so each outcome is
 * logged here without it. People get HTML; other clients (a one-click POST) get text, and
 * errors as RFC 9457 problem documents.
 */

export interface UnsubscribeServerDeps {
  listen: { host: string; port: number };
  rateLimit: { max: number; window: number };
  trustedProxies: readonly string[];
  /** The links of the configuration in effect, asked per request: a reload may change the secret. */
  links: () => Pick<UnsubscribeLinks, 'openLink'>;
  recorder: UnsubscribeRecorder;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
}

export interface UnsubscribeServer {
  /** Listens (port 0 picks a free port) and returns the bound address. */
  start(): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets requests in progress finish for a few seconds, then closes their sockets. */
  stop(): Promise<void>;
}

type AnswerCode = ApiErrorCode | ErrorCode;

/** A person's browser asked: the answer is a page. */
const wantsHtml = (request: FastifyRequest): boolean => /\btext\/html\b/i.test(request.headers.accept ?? '');

const TIMEOUTS = { requestMs: 10_000, idleMs: 10_000, keepAliveMs: 5_000, closeGraceMs: 5_000 };
/** Longer than any token, so a long one reaches the handler and is refused as malformed (400), not as an unknown route. */
const MAX_PARAM_LENGTH = 8192;

export function createUnsubscribeServer(deps: UnsubscribeServerDeps): UnsubscribeServer {
  const logger = deps.logger.child({ component: 'unsubscribe' });
  const app: FastifyInstance = Fastify({
    requestTimeout: TIMEOUTS.requestMs,
    connectionTimeout: TIMEOUTS.idleMs,
    keepAliveTimeout: TIMEOUTS.keepAliveMs,
    http: { headersTimeout: TIMEOUTS.requestMs, connectionsCheckingInterval: 2_500 },
    bodyLimit: MAX_FORM_BYTES,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    trustProxy: deps.trustedProxies.length > 0 ? [...deps.trustedProxies] : false,
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  const refuse = (request: FastifyRequest, reply: FastifyReply, code: AnswerCode, reason: string, detail?: string): FastifyReply => {
    deps.metrics.unsubscribesRefused.inc({ channel: 'https', reason });
    logger.debug({ event: 'unsubscribe.refused', reason, client: request.ip, method: request.method }, 'unsubscribe request refused');
    return answer(request, reply, { code, detail });
  };

  /** The token's claims; null once its refusal is sent. */
  const claimsOf = (request: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply): UnsubscribeClaims | null => {
    const opened = deps.links().openLink(request.params.token);
    if (opened.ok) return opened.claims;
    if (opened.reason === 'malformed') refuse(request, reply, 'UNSUBSCRIBE_LINK_MALFORMED', 'malformed');
    else refuse(request, reply, 'UNSUBSCRIBE_LINK_UNKNOWN', 'forged');
    return null;
  };

  app.addHook('onSend', async (_request, reply) => void reply.headers(SECURITY_HEADERS));
  app.setNotFoundHandler((request, reply) => answer(request, reply, { code: 'NOT_FOUND', detail: 'No such page' }));
  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 429) return refuse(request, reply, 'RATE_LIMITED', 'rate-limited');
    if (status === 413) return refuse(request, reply, 'PAYLOAD_TOO_LARGE', 'too-large');
    if (status === 415) return refuse(request, reply, 'UNSUPPORTED_MEDIA_TYPE', 'media-type', `Send ${FORM_TYPES.join(' or ')}`);
    if (status < 500) return refuse(request, reply, 'BAD_REQUEST', 'bad-request', error.message);
    logger.error({ event: 'unsubscribe.error', err: error }, 'unsubscribe request failed');
    return answer(request, reply, { code: 'INTERNAL' });
  });
  // Only the two form encodings of RFC 8058, read as text (JSON and the rest: 415).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([...FORM_TYPES], { parseAs: 'string' }, (_request, body, done) => done(null, body));

  app.register(async (scope) => {
    await scope.register(rateLimit, { global: true, max: deps.rateLimit.max, timeWindow: deps.rateLimit.window });

    scope.get('/u/:token', async (request: FastifyRequest<{ Params: { token: string } }>, reply) => {
      const claims = claimsOf(request, reply);
      if (!claims) return reply;
      return reply.code(200).type(HTML_TYPE).send(confirmPage());
    });

    scope.post('/u/:token', async (request: FastifyRequest<{ Params: { token: string } }>, reply) => {
      const claims = claimsOf(request, reply);
      if (!claims) return reply;
      if (!isOneClick(request.headers['content-type'], typeof request.body === 'string' ? request.body : '')) {
        return refuse(request, reply, 'UNSUBSCRIBE_NOT_ONE_CLICK', 'not-one-click');
      }
      try {
        await deps.recorder.record({ ...claims, channel: 'https', at: deps.clock.now() });
      } catch (err) {
        // Nothing recorded: the client may try again (mail clients retry a one-click POST).
        logger.error({ event: 'unsubscribe.record.failed', messageId: claims.messageId, err: (err as Error).message }, 'unsubscribe could not be recorded');
        reply.header('retry-after', '60');
        return answer(request, reply, { code: 'UNAVAILABLE', detail: 'The unsubscribe could not be recorded; try again in a minute' });
      }
      return answer(request, reply, null);
    });
  });

  let starting: Promise<{ host: string; port: number }> | undefined;
  let stopping: Promise<void> | undefined;
  return {
    start() {
      if (stopping) return Promise.reject(new Error('unsubscribe listener was stopped; create a new one to listen again'));
      starting ??= (async () => {
        await app.listen({ host: deps.listen.host, port: deps.listen.port });
        const address = app.server.address() as AddressInfo;
        logger.info({ event: 'unsubscribe.listening', host: address.address, port: address.port }, 'unsubscribe listener listening');
        return { host: address.address, port: address.port };
      })();
      return starting;
    },

    stop() {
      stopping ??= (async () => {
        await starting?.catch(() => undefined);
        const closed = app.close();
        const grace = setTimeout(() => app.server.closeAllConnections(), TIMEOUTS.closeGraceMs);
        try {
          await closed;
        } finally {
          clearTimeout(grace);
        }
        logger.info({ event: 'unsubscribe.stopped' }, 'unsubscribe listener stopped');
      })();
      return stopping;
    },
  };
}

/**
 * The answer to a request: `null` is success (the recipient is unsubscribed). A person gets a
 * page, another client a line of text or a problem document.
 */
function answer(request: FastifyRequest, reply: FastifyReply, refusal: { code: AnswerCode; detail?: string | undefined } | null): FastifyReply {
  if (refusal === null) {
    const text = 'You are unsubscribed and will not receive these emails any more.';
    return wantsHtml(request) ? reply.code(200).type(HTML_TYPE).send(resultPage('Unsubscribed', text)) : reply.code(200).type('text/plain; charset=utf-8').send(`${text}\n`);
  }
  const body = problem(refusal.code, refusal.detail, { instance: request.url.startsWith('/u/') ? '/u/…' : request.url.split('?')[0]! });
  if (wantsHtml(request)) return reply.code(body.status).type(HTML_TYPE).send(resultPage(body.title, body.detail));
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}
