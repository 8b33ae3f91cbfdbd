/**
 * The exit codes of the commands that talk to the control API, for scripts: 1 and 2 mean what
 * they mean for every rookery command (a setup problem, a usage error); 3 and 4 tell a refusal,
 * which will not change on retry, from no usable answer, which may.
 */
export const EXIT = {
  ok: 0,
  /** No token, an unreadable --token-file, a bad --api URL; for `domains check`, a domain with an error. */
  failure: 1,
  usage: 2,
  /** The API answered 4xx: a bad request, no or a wrong token (401), a role that may not (403), not found (404). */
  refused: 3,
  /** The API answered 5xx, or could not be reached, or its answer was not the API's JSON. */
  unavailable: 4,
} as const;

export const API_EXIT_CODES =
  'Exit codes: 0 done, 1 no usable token or API URL, 2 usage error, 3 the API refused the request (4xx: bad request,\n' +
  'token missing or wrong, role not allowed, not found), 4 no usable answer (5xx, unreachable, timeout).';
