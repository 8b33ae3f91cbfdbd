import type { ApiConnection } from './api-connection.ts';
import { describeProblem, readProblem, type ProblemDocument } from './problem-line.ts';

/**
 * One request to the control API and what became of it: a JSON answer, the API's refusal (a 4xx,
 * with its problem document), or no usable answer (a 5xx, a network error, a timeout, a redirect,
 * a body that is not the API's JSON). The two failures are kept apart because a script reacts to
 * them differently: a refusal will not change on retry, the other may.
 */

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Below the base URL, e.g. `v1/ips/203.0.113.7/suspend` (each parameter percent-encoded). */
  path: string;
  /** Query parameters; undefined ones are left out. */
  query?: Readonly<Record<string, string | number | undefined>>;
  /** Sent as JSON; without one nothing is sent. */
  body?: object;
  /** Sent as it is, with its type, instead of `body` (a file to import). */
  upload?: { contentType: string; data: Buffer };
  /** How long to wait for the answer; REQUEST_TIMEOUT_MS unless the operation is known to take longer. */
  timeoutMs?: number;
}

export interface ApiAnswer {
  status: number;
  /** The body exactly as received, for --json. */
  text: string;
  body: unknown;
}

/** The API answered 4xx: the request was wrong or not allowed. */
export class ApiRefusal extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemDocument | null,
    /** The body as received, for --json. */
    readonly text: string,
  ) {
    super(problem ? describeProblem(problem) : `${status} ${text.slice(0, 200).trim() || 'with no explanation'}`);
  }
}

/** No usable answer: the API failed (5xx) or could not be reached or understood. */
export class ApiFailure extends Error {
  constructor(
    message: string,
    readonly problem: ProblemDocument | null = null,
    readonly text: string | null = null,
  ) {
    super(message);
  }
}

/** Long enough for a domain check's DNS lookups; a hung connection must not hang a script for ever. */
export const REQUEST_TIMEOUT_MS = 60_000;

/**
 * A bulk operation (a retry or a bounce of a scope, a message's cancellation) works through its
 * rows in chunks and answers once all are done, which on a queue of millions takes minutes.
 * Giving up sooner would only leave the operator unsure whether it ran.
 */
export const BULK_TIMEOUT_MS = 15 * 60_000;

export async function callApi(connection: ApiConnection, request: ApiRequest): Promise<ApiAnswer> {
  return answerOf(connection, request, (res) => res.text());
}

/**
 * A request whose 2xx answer is a file (the suppression export): its body is written to `out` as
 * it arrives, never held whole. A refusal or failure is reported as callApi reports it.
 */
export async function downloadApi(connection: ApiConnection, request: ApiRequest, out: NodeJS.WritableStream): Promise<void> {
  await answerOf(connection, request, async (res) => {
    if (!res.ok || !res.body) return res.text();
    for await (const chunk of res.body) {
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
    }
    return null;
  });
}

/** Sends the request; `read` reads the body (null: consumed as a file, nothing to parse). */
async function answerOf(connection: ApiConnection, request: ApiRequest, read: (res: Response) => Promise<string | null>): Promise<ApiAnswer> {
  const url = new URL(request.path, connection.base);
  for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
  const where = `the API at ${connection.base.origin}`;
  const timeoutMs = request.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const contentType = request.upload?.contentType ?? (request.body ? 'application/json' : undefined);

  let res: Response;
  let text: string | null;
  try {
    res = await fetch(url, {
      method: request.method,
      headers: { authorization: `Bearer ${connection.token}`, accept: 'application/json', ...(contentType ? { 'content-type': contentType } : {}) },
      body: request.upload ? request.upload.data : request.body ? JSON.stringify(request.body) : undefined,
      // A redirect is reported, never followed: it could take the token to another host.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await read(res);
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new ApiFailure(`no answer from ${where} within ${waitText(timeoutMs)}${mayStillRun(request)}`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    // The API closed the connection after taking the request: it may have carried it out.
    if (cause?.code === 'UND_ERR_SOCKET') throw new ApiFailure(`${where} closed the connection before answering${mayStillRun(request)}`);
    throw new ApiFailure(`cannot reach ${where}: ${cause?.message ?? cause?.code ?? (err as Error).message}`);
  }

  if (text === null) return { status: res.status, text: '', body: null };
  if (res.status >= 300 && res.status < 400) {
    throw new ApiFailure(`${where} answered ${res.status}, a redirect to ${res.headers.get('location') ?? '(nowhere)'}: give the API's own address with --api or ROOKERY_API_URL`);
  }
  const json = parseJson(text, res.headers.get('content-type'));
  if (res.status >= 400) {
    const problem = readProblem(json);
    if (res.status < 500) throw new ApiRefusal(res.status, problem, text);
    throw new ApiFailure(problem ? describeProblem(problem) : `${where} answered ${res.status} ${res.statusText}`, problem, text);
  }
  if (json === undefined) throw new ApiFailure(`${where} answered ${res.status} with ${res.headers.get('content-type') ?? 'no content type'}, not JSON: is this Rookery's control API?`);
  return { status: res.status, text, body: json };
}

/**
 * What an operator should know when a change got no answer: the daemon goes on with a request
 * it took after the client gave up, and the audit log records it once done, so running it again
 * blindly could bounce or retry twice. A read has nothing to check.
 */
function mayStillRun(request: ApiRequest): string {
  if (request.method === 'GET') return '';
  return '; the operation may still be running, or be done: check `rookery audit` before running it again';
}

function waitText(ms: number): string {
  return ms >= 120_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

/** The body as JSON when it says it is JSON (application/json, application/problem+json); else undefined. */
function parseJson(text: string, contentType: string | null): unknown {
  if (!/^application\/(?:problem\+)?json\b/i.test(contentType ?? '')) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
