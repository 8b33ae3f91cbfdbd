import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../clock.ts';
import type { AuditChange, AuditEntry, AuditLog } from '../../storage/store.ts';
import { pathOf, recordedPath } from '../error-handler.ts';
import { PROBLEM_CONTENT_TYPE } from '../problem.ts';

/**
 * The audit trail of the /v1 API: every request that may change something (any method but GET
 * and HEAD, whatever its result) and every failed authentication (a 401 to a request that
 * presented credentials, a 429 lockout) is recorded in the store after it is answered: when, the
 * token's name (never the token), the client address, the route, the target, the change where a
 * route gives it, the status and the problem code. A read without credentials (401
 * AUTH_REQUIRED) is not recorded: it is no attempt to log in, and anyone could fill the log with
 * it. Recording never fails a request: a store that refuses the entry is logged.
 *
 * A client that gives up first (the CLI's timeout during a large bounce) does not stop the route:
 * it goes on to the end, and what it did must still be on record. Fastify runs no onResponse hook
 * for an answer nobody received, so the entry is then written once the route has answered
 * (onSend), or when the connection closes if that comes after the answer was handed over, with
 * the outcome CLIENT_GONE. Each request is recorded at most once, whichever way it ends.
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** What a route says it acted on, for the audit trail; null until auditRequest is called. */
    auditNote: AuditNote | null;
    /** The problem code answered, read from the response as it is sent. */
    auditOutcome: string | null;
    /** The status the route answered, once it has (onSend ran): its change is final then. */
    auditStatus: number | null;
    /** The client closed the connection before the answer reached it. */
    auditAborted: boolean;
    /** The entry is written (or being written): never twice. */
    auditRecorded: boolean;
    /** The client's address, read as the request comes in: a closed socket no longer has one. */
    auditClientAddress: string;
  }
}

export interface AuditNote {
  /** The thing acted on: a domain, an IP address, a message id, a token name. */
  target: string;
  /** The state before and after, for a route that changes one. */
  change?: AuditChange;
}

/**
 * Keeps a request out of the audit trail: one refused before it was authenticated, for what the
 * node is doing rather than what the request asked (the API closing), changed nothing and is
 * nobody's, whatever credentials it carries.
 */
export function leaveUnaudited(request: FastifyRequest): void {
  request.auditRecorded = true;
}

/** Called by a route to name what it acts on (and what it changed) in the audit trail. */
export function auditRequest(request: FastifyRequest, note: AuditNote): void {
  request.auditNote = note;
}

export interface AuditTrailDeps {
  store: Pick<AuditLog, 'recordAudit'>;
  clock?: Clock;
}

/** The outcome of a request whose client left before the answer: the status says what the route answered. */
export const CLIENT_GONE = 'CLIENT_GONE';

/** Whether a request is recorded: see the opening comment. */
export function isAudited(method: string, status: number, presentedCredentials: boolean): boolean {
  // Without credentials a request is nobody's: anyone could fill the log with them, whatever the method.
  if (status === 401 && !presentedCredentials) return false;
  if (method !== 'GET' && method !== 'HEAD') return true;
  return status === 429 || status === 401;
}

/** Adds the audit hooks to every route of `app`'s context (the /v1 plugin); call before the routes are registered. */
export function recordAuditTrail(app: FastifyInstance, deps: AuditTrailDeps): void {
  const clock = deps.clock ?? systemClock;
  app.decorateRequest('auditNote', null);
  app.decorateRequest('auditOutcome', null);
  app.decorateRequest('auditStatus', null);
  app.decorateRequest('auditAborted', false);
  app.decorateRequest('auditRecorded', false);
  app.decorateRequest('auditClientAddress', '');

  const record = async (request: FastifyRequest, status: number): Promise<void> => {
    if (request.auditRecorded || !isAudited(request.method, status, request.headers.authorization !== undefined)) return;
    request.auditRecorded = true;
    const entry: AuditEntry = {
      at: clock.now(),
      actor: request.principal?.name ?? null,
      tenant: request.principal?.tenant ?? null,
      clientAddress: request.auditClientAddress || (request.ip ?? ''),
      method: request.method,
      route: request.routeOptions.url ?? pathOf(request),
      target: request.auditNote?.target ?? recordedPath(request),
      change: request.auditNote?.change ?? null,
      status,
      outcome: request.auditAborted ? CLIENT_GONE : status < 400 ? 'OK' : (request.auditOutcome ?? `HTTP_${status}`),
    };
    try {
      await deps.store.recordAudit(entry);
    } catch (err) {
      request.log.error({ event: 'api.audit.failed', err, route: entry.route, status }, 'could not record the request in the audit log');
    }
  };

  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (typeof payload === 'string' && String(reply.getHeader('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE)) {
      request.auditOutcome = problemCode(payload);
    }
    request.auditStatus = reply.statusCode;
    // The client left while the route worked: no onResponse will come; record what it did now.
    if (request.auditAborted) await record(request, reply.statusCode);
    return payload;
  });

  // Fastify's onRequestAbort only sees a client that leaves before its request body is read; the
  // response's close sees one that leaves at any time before the answer is written whole.
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    request.auditClientAddress = request.ip;
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      request.auditAborted = true;
      // Left while the answer was being written: the route is done, and no onResponse will come either.
      if (request.auditStatus !== null) void record(request, request.auditStatus);
    });
  });

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => record(request, reply.statusCode));
}

function problemCode(payload: string): string | null {
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}
