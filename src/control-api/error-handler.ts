import type { FastifyError, FastifyInstance } from 'fastify';
import { ERRORS, RookeryError } from '../errors.ts';

/** The body of every error response. `code` is a registry code (src/errors.ts) or a Fastify one. */
export interface ErrorBody {
  statusCode: number;
  code: string;
  message: string;
}

/**
 * The one place errors become HTTP responses: RookeryError carries its own status, client
 * errors (4xx) keep their message, anything else is a 500 whose details go to the log only.
 */
export function registerErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = { statusCode: 404, code: 'NOT_FOUND', message: `Route ${request.method} ${request.url.split('?')[0]} not found` };
    return reply.code(404).send(body);
  });

  app.setErrorHandler((error: FastifyError | RookeryError | Error, request, reply) => {
    const body = toErrorBody(error);
    if (body.statusCode >= 500) {
      request.log.error({ event: 'api.error', err: error, url: request.url.split('?')[0] }, 'request failed');
    }
    return reply.code(body.statusCode).send(body);
  });
}

export function toErrorBody(error: unknown): ErrorBody {
  if (error instanceof RookeryError) {
    // The enhanced status code prefix belongs to SMTP replies; HTTP clients get the text alone.
    const prefix = `${ERRORS[error.code].enhanced} `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return { statusCode: error.statusCode, code: error.code, message };
  }
  const statusCode = (error as FastifyError).statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return { statusCode, code: (error as FastifyError).code ?? 'BAD_REQUEST', message: (error as Error).message };
  }
  if (statusCode === 503) {
    return { statusCode, code: (error as FastifyError).code ?? 'UNAVAILABLE', message: 'Service unavailable' };
  }
  return { statusCode: 500, code: 'INTERNAL', message: 'Internal server error' };
}
