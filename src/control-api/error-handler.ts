import type { FastifyError, FastifyInstance } from 'fastify';
import { API_ERRORS, ERRORS, RookeryError, type ApiErrorCode } from '../errors.ts';

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
    const body = apiError('NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`);
    return reply.code(body.statusCode).send(body);
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
    return { statusCode, code: (error as FastifyError).code ?? 'UNAVAILABLE', message: API_ERRORS.UNAVAILABLE.message };
  }
  return apiError('INTERNAL');
}

function apiError(code: ApiErrorCode, message?: string): ErrorBody {
  const spec = API_ERRORS[code];
  return { statusCode: spec.http, code, message: message ?? spec.message };
}
