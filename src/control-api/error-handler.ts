import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, RookeryError, type ApiErrorCode, type ErrorCode } from '../errors.ts';
import { problem, PROBLEM_CONTENT_TYPE, type Problem } from './problem.ts';

/**
 * The one place errors become HTTP responses, all as RFC 9457 problem documents (problem.ts):
 * RookeryError carries its own code and status, a request that fails its route's schema is an
 * INVALID_REQUEST naming each failing path, other client errors (4xx) keep their message, and
 * anything else is a 500 whose details go to the log only.
 */
export function registerErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request);
    return sendProblem(reply, problem('NOT_FOUND', `Route ${request.method} ${path} not found`, { instance: path }));
  });

  app.setErrorHandler((error: FastifyError | RookeryError | Error, request, reply) => {
    const body = { ...toProblem(error), instance: pathOf(request) };
    if (body.status >= 500) {
      request.log.error({ event: 'api.error', err: error, url: pathOf(request) }, 'request failed');
    }
    if (error instanceof RookeryError) setRetryAfter(reply, error.retryAfterMs);
    return sendProblem(reply, body);
  });
}

/**
 * Fastify's clientErrorHandler: what Node's HTTP parser refuses before any route sees it (header
 * fields or a URL too large, a request line it cannot read, a request that took too long) is a
 * problem document too, written on the socket, which then closes.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request line and header fields are larger than this API takes']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request did not arrive in time']
        : [400, 'Bad Request', 'Not an HTTP request this API can read'];
  const body = JSON.stringify(problem('BAD_REQUEST', detail, { status }));
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** A refusal that passes with time (a rate or quota) says when to come back: RFC 9110 Retry-After, whole seconds. */
export function setRetryAfter(reply: FastifyReply, ms: number | null | undefined): void {
  if (ms) reply.header('retry-after', String(retryAfterSeconds(ms)));
}

/** A wait in ms as the whole seconds of a Retry-After: rounded up, at least one. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** 503 SHUTTING_DOWN: this node is stopping; another node, or this one in a while, takes the request. */
export function refuseWhileStopping(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  setRetryAfter(reply, 30_000);
  return sendProblem(reply, problem('SHUTTING_DOWN', 'This node is stopping; send the request to another node or again shortly', { instance: pathOf(request) }));
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

/** A 400 INVALID_REQUEST naming the one place of the request that is wrong, as schema failures do. */
export function sendInvalid(request: FastifyRequest, reply: FastifyReply, path: string, message: string): FastifyReply {
  return sendProblem(reply, problem('INVALID_REQUEST', `${path}: ${message}`, { errors: [{ path, message }], instance: pathOf(request) }));
}

/** The request's media type, without parameters, in lower case ('' when none is given). */
export function mediaTypeOf(request: FastifyRequest): string {
  return String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The path without the query string: a query may carry things not meant for logs or echoes. */
export function pathOf(request: FastifyRequest): string {
  return request.url.split('?')[0]!;
}

/** Routes whose path names a person (a recipient's address). */
const PERSONAL_ROUTES = new Set(['/v1/recipients/:address', '/v1/suppressions/:address']);

/**
 * The path as logs and the audit log keep it: the path, except where it names a person
 * (PERSONAL_ROUTES, in any percent-encoding), which is kept as the route's pattern, so no record
 * outlives an erasure with the address in it.
 */
export function recordedPath(request: FastifyRequest): string {
  const pattern = request.routeOptions.url;
  return pattern !== undefined && PERSONAL_ROUTES.has(pattern) ? pattern : pathOf(request);
}

/** Fastify's client errors by status, as registry codes. */
const CLIENT_ERRORS: Partial<Record<number, ErrorCode | ApiErrorCode>> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

export function toProblem(error: unknown): Problem {
  if (error instanceof RookeryError) {
    // The enhanced status code prefix belongs to SMTP replies; HTTP clients get the text alone.
    const prefix = `${ERRORS[error.code].enhanced} `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return problem(error.code, message);
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const errors = validationErrors(fastifyError);
    return problem('INVALID_REQUEST', errors.map((e) => `${e.path}: ${e.message}`).join('; '), { errors });
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return problem(CLIENT_ERRORS[status] ?? 'BAD_REQUEST', fastifyError.message, { status });
  }
  if (status === 503) return problem('UNAVAILABLE');
  return problem('INTERNAL');
}

/**
 * Ajv's findings as config-style paths: where (body, querystring, params, headers) and the place
 * inside, e.g. `body.to[2]` or `querystring.bogus` for an unknown parameter.
 */
export function validationErrors(error: Pick<FastifyError, 'validation' | 'validationContext'>): Array<{ path: string; message: string }> {
  // A name refused by propertyNames comes twice: as the failing keyword on the name, and as the
  // propertyNames summary; the summary says it better (names are not values).
  const found = (error.validation ?? []).filter((v) => (v as { propertyName?: string }).propertyName === undefined);
  return found.map((v) => {
    const parts = [error.validationContext ?? 'request', ...v.instancePath.split('/').slice(1).map(unescapePointer)];
    const params = v.params as Record<string, unknown>;
    let message = v.message ?? 'is invalid';
    if (v.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      parts.push(params.additionalProperty);
      message = 'unknown property';
    } else if (v.keyword === 'required' && typeof params.missingProperty === 'string') {
      parts.push(params.missingProperty);
      message = 'required';
    } else if (v.keyword === 'propertyNames' && typeof params.propertyName === 'string') {
      parts.push(params.propertyName);
      message = 'not an allowed name here';
    }
    return { path: formatPath(parts), message };
  });
}

function unescapePointer(part: string): string {
  return part.replaceAll('~1', '/').replaceAll('~0', '~');
}

function formatPath(parts: string[]): string {
  return parts.map((p, i) => (/^\d+$/.test(p) && i > 0 ? `[${p}]` : i > 0 ? `.${p}` : p)).join('');
}
