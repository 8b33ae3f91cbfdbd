import { PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA } from '../problem.ts';

/**
 * Pieces every /v1 route schema is built from, so each declares the same error responses and
 * security requirement and the OpenAPI document says so for every route.
 */

export { PROBLEM_SCHEMA };

/** The name of the bearer scheme in components.securitySchemes. */
export const BEARER_SCHEME = 'bearerAuth';

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'The request does not match its schema; `errors` names each failing path.',
  401: 'No API token, or one that is not valid (WWW-Authenticate: Bearer).',
  403: "The token's role does not allow this route.",
  404: 'No such resource (the detail names it).',
  413: 'The request body, or the message it makes, is larger than allowed (smtp.maxMessageBytes).',
  415: 'A body of a type the route does not take.',
  422: 'The request cannot be done as asked: see `code` (CONFIG_INVALID, IDEMPOTENCY_KEY_REUSED, TENANT_LIMIT_TOO_SMALL) and `errors`.',
  429: "Too many failed authentications from this address, or a tenant's rate or daily quota used up (Retry-After says when to come back).",
  503: 'The node cannot take the request now (storage failed, or it is starting or stopping); nothing was changed or stored: try again (a send with the same Idempotency-Key).',
};

/** The problem responses a /v1 route can give, each as application/problem+json. */
export function problemResponses(...statuses: number[]): Record<number, object> {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: ERROR_DESCRIPTIONS[status] ?? 'An error.', content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: 'Problem#' } } } },
    ]),
  );
}

/** What every authenticated route answers besides its own statuses. */
export const AUTH_PROBLEMS = [400, 401, 403, 429] as const;

/** A JSON response body for the OpenAPI document and the serializer. */
export function jsonResponse(description: string, schema: object): object {
  return { description, content: { 'application/json': { schema } } };
}

/** No query parameters: an unknown one is an error rather than silently ignored. */
export const NO_QUERY = { type: 'object', additionalProperties: false, properties: {} } as const;

/** The query fields of every paged listing (read by readPageQuery): where the last page ended, and its size. */
export const PAGE_QUERY = {
  cursor: { type: 'string', minLength: 1, maxLength: 400, description: 'nextCursor of the previous page.' },
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
} as const;

/** The schema fields every /v1 route shares: its roles in the description, bearer security. */
export function v1Route(options: { summary: string; roles: readonly string[]; tags: string[] }): object {
  return {
    summary: options.summary,
    description: `Roles: ${options.roles.join(', ')}.`,
    tags: options.tags,
    security: [{ [BEARER_SCHEME]: [] }],
  };
}
