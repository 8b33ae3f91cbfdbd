import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../../clock.ts';
import { ERASED } from '../../../storage/personal-data.ts';
import type { Store } from '../../../storage/store.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { dsnSearchWindow, messageDetailView } from '../message-view.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, problemResponses, v1Route } from '../schemas.ts';
import { addressProblem } from '../suppression-input.ts';
import { ERASE_QUERY, ERASURE, RECIPIENT_DATA, RECIPIENT_QUERY } from './recipient-schemas.ts';
import { ADDRESS_PARAMS, entryView } from './suppression-schemas.ts';

export interface RecipientRouteDeps {
  store: Pick<Store, 'recipientData' | 'eraseRecipient' | 'findDsns'>;
  clock?: Clock;
}

type RecipientRequest<Q> = FastifyRequest<{ Params: { address: string }; Querystring: Q }>;

/**
 * Personal data of a recipient address, for data-subject requests: GET /v1/recipients/{address}
 * answers what Rookery holds about it (the messages it is a recipient of, their attempts and
 * feedback, its suppression entries, how many DSNs and webhook deliveries name it), DELETE erases
 * it (Store.eraseRecipient), keeping its suppression entries by their keyed hash only. A token of
 * a tenant reads its tenant's data only (and never erases: admin tokens belong to no tenant);
 * others name a tenant, or act on every tenant's.
 * The erasure is audited under the address's hash, never the address; a refused request under
 * the route's pattern, not its path (audit-trail.ts).
 */
export function registerRecipientRoutes(app: FastifyInstance, deps: RecipientRouteDeps): void {
  const clock = deps.clock ?? systemClock;

  app.get('/v1/recipients/:address', {
    schema: {
      ...v1Route({ summary: 'What Rookery holds about a recipient address', roles: rolesFor('GET', '/v1/recipients/:address') ?? [], tags: ['recipients'] }),
      params: ADDRESS_PARAMS,
      querystring: RECIPIENT_QUERY,
      response: { 200: jsonResponse('Its messages (never their bodies), suppression entries, and what else names it.', RECIPIENT_DATA), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: RecipientRequest<{ tenant?: string; limit: number }>, reply: FastifyReply) => {
      const scope = scopeOf(request, reply);
      if (!('tenant' in scope)) return scope;
      const { address } = request.params;
      const data = await deps.store.recipientData(address, scope.tenant, request.query.limit);
      const messages = [];
      for (const m of data.messages) {
        const window = dsnSearchWindow(m.message, m.recipients, m.events);
        const dsns = window ? await deps.store.findDsns(m.message.id, window.from, window.to) : [];
        messages.push(messageDetailView(m.message, m.recipients, m.events, dsns, m.feedback));
      }
      return {
        address,
        tenant: scope.tenant,
        messages,
        moreMessages: data.moreMessages,
        suppressions: data.suppressions.map(entryView),
        dsns: data.dsns,
        webhookDeliveries: data.webhookDeliveries,
      };
    },
  });

  app.delete('/v1/recipients/:address', {
    schema: {
      ...v1Route({ summary: 'Erase a recipient address: its messages, events and deliveries; its suppression kept by hash only', roles: rolesFor('DELETE', '/v1/recipients/:address') ?? [], tags: ['recipients'] }),
      params: ADDRESS_PARAMS,
      querystring: ERASE_QUERY,
      response: { 200: jsonResponse('Erased; what went, by kind. Repeating it is safe (and completes one cut short).', ERASURE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: RecipientRequest<{ tenant?: string }>, reply: FastifyReply) => {
      const scope = scopeOf(request, reply);
      if (!('tenant' in scope)) return scope;
      // Named before the work starts: an erasure that fails half-way is on record without the address.
      auditRequest(request, { target: ERASED });
      const { counts, addressHash } = await deps.store.eraseRecipient(request.params.address, scope.tenant, clock.now());
      auditRequest(request, { target: addressHash, change: { after: { tenant: scope.tenant, counts } } });
      request.log.info({ event: 'api.recipient.erased', addressHash, tenant: scope.tenant, ...counts }, 'erased a recipient address');
      return { addressHash, counts };
    },
  });
}

/**
 * Whose data a request acts on: a tenant's token its own tenant's (naming another is forbidden);
 * another token the tenant it names ('' for mail of no tenant), else every tenant's (null). The
 * address must be one (local@domain): a part of one would match other people's data.
 */
function scopeOf(request: RecipientRequest<{ tenant?: string }>, reply: FastifyReply): { tenant: string | null } | FastifyReply {
  const bad = addressProblem(request.params.address);
  if (bad) return sendInvalid(request, reply, 'params.address', bad);
  const own = request.principal!.tenant;
  const named = request.query.tenant;
  if (own === null) return { tenant: named ?? null };
  if (named !== undefined && named !== own) {
    return sendProblem(reply, problem('FORBIDDEN', `A token of tenant "${own}" reads that tenant's data only`, { instance: pathOf(request) }));
  }
  return { tenant: own };
}
