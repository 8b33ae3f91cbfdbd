import { API_ERRORS, ERRORS, type ApiErrorCode, type ErrorCode } from '../errors.ts';

/**
 * RFC 9457 problem details: the body of every error response of the control API, sent as
 * application/problem+json. `code` is the stable registry code (src/errors.ts) a client switches
 * on; `type` is the same code as a URI, as the RFC asks; `title` is the code's fixed summary and
 * `detail` says what happened this time.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode | ApiErrorCode;
  /** The request path the problem is about. */
  instance?: string;
  /** For an invalid request: each failing place, e.g. `{ path: "querystring.limit", message: "must be <= 100" }`. */
  errors?: Array<{ path: string; message: string }>;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** `AUTH_REQUIRED` -> `urn:rookery:problem:auth-required`: stable, and not a URL that could go stale. */
export function problemType(code: string): string {
  return `urn:rookery:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/** A problem for a registry code; `status` overrides the code's own only where Fastify chose another 4xx. */
export function problem(code: ErrorCode | ApiErrorCode, detail?: string, extra: Partial<Pick<Problem, 'instance' | 'errors' | 'status'>> = {}): Problem {
  const spec = code in API_ERRORS ? API_ERRORS[code as ApiErrorCode] : ERRORS[code as ErrorCode];
  return { type: problemType(code), title: spec.message, status: extra.status ?? spec.http, detail: detail ?? spec.message, code, ...omitUndefined(extra) };
}

function omitUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([key, v]) => v !== undefined && key !== 'status')) as Partial<T>;
}

/**
 * The JSON schema of a problem document, shared by every /v1 route's error responses and shown in
 * the OpenAPI document as components.schemas.Problem.
 */
export const PROBLEM_SCHEMA = {
  $id: 'Problem',
  type: 'object',
  description: 'An RFC 9457 problem document; `code` is stable and names the error.',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', format: 'uri', examples: ['urn:rookery:problem:auth-required'] },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    detail: { type: 'string' },
    code: { type: 'string', enum: [...new Set([...Object.keys(ERRORS), ...Object.keys(API_ERRORS)])] },
    instance: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const;
