import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../../clock.ts';
import type { EgressPool } from '../../../ippool/egress-pool.ts';
import type { OperationResult } from '../../../ippool/ip-operations.ts';
import { sendInvalid } from '../../error-handler.ts';
import { auditRequest } from '../audit-trail.ts';
import { expiryProperties, readExpiry, type ExpiryFields } from '../expiry.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { IP_SCHEMA } from './ip-schema.ts';
import { ADDRESS_PARAMS, ipJson, isAddressParam, refuseAddress, unknownIp } from './ips.ts';

export interface IpOperationsRouteDeps {
  pool: Pick<EgressPool, 'snapshot' | 'operations'>;
  /** The time `for` counts from and `until` must lie after; the system clock by default. */
  clock?: Clock;
}

const REASON = { type: 'string', minLength: 1, maxLength: 500, description: 'Why, for the other operators (shown in GET /v1/ips).' } as const;
const PROVIDER = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[a-z0-9][a-z0-9_-]*$',
  description: 'A destination provider (gmail, outlook, ..., other); omitted: every provider.',
} as const;

const SUSPEND_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: {
    provider: PROVIDER,
    ...expiryProperties('suspension'),
    reason: REASON,
  },
} as const;

const WARMUP_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: {
    plan: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: "A warm-up plan (config/warmup-plans.yaml or warmup.plans); omitted: the IP's configured plan.",
    },
    reason: REASON,
  },
} as const;

const RESUME_BODY = { type: 'object', additionalProperties: false, properties: { provider: PROVIDER } } as const;

const WEIGHT_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['weight', 'reason'],
  properties: { weight: { type: 'integer', minimum: 0, maximum: 10_000, description: 'In place of the configured weight (0..10000); 0 takes no new mail.' }, reason: REASON },
} as const;

type Params = { address: string };
type SuspendBody = ExpiryFields & { provider?: string; reason: string };

/**
 * The operator's run-time changes to an egress IP (src/ippool/ip-operations.ts): suspend and
 * resume, for one provider or every one, and a weight in place of the configured one. Each is
 * persisted in the pool's shared state, applied by every node sharing it within its refresh
 * (10 s; at once on the node that answers), and answered with the IP's snapshot after the
 * change. A resume ends only what an operator set: a reaction's restriction runs to its end.
 * A warm-up restart starts a plan (the configured one, or one named) from today in place of the
 * configured plan until DELETE. Each is audited with the part of the IP it changes, before and after.
 */
export function registerIpOperationsRoutes(app: FastifyInstance, deps: IpOperationsRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  const route = (method: 'POST' | 'PUT' | 'DELETE', url: string, summary: string, body: object | null) => ({
    ...v1Route({ summary, roles: rolesFor(method, url) ?? [], tags: ['ips'] }),
    params: ADDRESS_PARAMS,
    querystring: NO_QUERY,
    ...(body ? { body } : {}),
    response: { 200: jsonResponse('The egress IP after the change.', IP_SCHEMA), ...problemResponses(...AUTH_PROBLEMS, 404) },
  });

  app.post<{ Params: Params; Body: SuspendBody }>('/v1/ips/:address/suspend', {
    schema: route('POST', '/v1/ips/:address/suspend', 'Suspend an egress IP', SUSPEND_BODY),
    handler: async (request, reply) => {
      const until = readExpiry(request.body, clock.now(), false);
      if ('error' in until) return sendInvalid(request, reply, until.error.path, until.error.message);
      const { provider = null, reason } = request.body;
      return answer(request, reply, deps, RESTRICTIONS, (address) => deps.pool.operations.suspend(address, { provider, until: until.ms!, reason, by: request.principal!.name }));
    },
  });

  app.post<{ Params: Params; Body: { provider?: string } }>('/v1/ips/:address/resume', {
    schema: route('POST', '/v1/ips/:address/resume', "End an operator's suspension of an egress IP", RESUME_BODY),
    handler: async (request, reply) => {
      const provider = request.body.provider ?? null;
      return answer(request, reply, deps, RESTRICTIONS, (address) => deps.pool.operations.resume(address, provider));
    },
  });

  app.put<{ Params: Params; Body: { weight: number; reason: string } }>('/v1/ips/:address/weight', {
    schema: route('PUT', '/v1/ips/:address/weight', 'Set the weight of an egress IP', WEIGHT_BODY),
    handler: async (request, reply) => {
      const { weight, reason } = request.body;
      return answer(request, reply, deps, WEIGHT, (address) => deps.pool.operations.setWeight(address, { weight, reason, by: request.principal!.name }));
    },
  });

  app.delete<{ Params: Params }>('/v1/ips/:address/weight', {
    schema: route('DELETE', '/v1/ips/:address/weight', 'Return an egress IP to its configured weight', null),
    handler: async (request, reply) => answer(request, reply, deps, WEIGHT, (address) => deps.pool.operations.setWeight(address, null)),
  });

  app.post<{ Params: Params; Body: { plan?: string; reason: string } }>('/v1/ips/:address/warmup', {
    schema: route('POST', '/v1/ips/:address/warmup', 'Start the warm-up plan of an egress IP again from today', WARMUP_BODY),
    handler: async (request, reply) => {
      const { plan = null, reason } = request.body;
      return answer(request, reply, deps, WARMUP, (address) => deps.pool.operations.restartWarmup(address, { plan, reason, by: request.principal!.name }));
    },
  });

  app.delete<{ Params: Params }>('/v1/ips/:address/warmup', {
    schema: route('DELETE', '/v1/ips/:address/warmup', 'Return an egress IP to its configured warm-up plan', null),
    handler: async (request, reply) => answer(request, reply, deps, WARMUP, (address) => deps.pool.operations.removeWarmup(address)),
  });
}

/** The fields of the IP each operation changes: what the audit log records before and after. */
const RESTRICTIONS = ['restrictions'] as const;
const WEIGHT = ['weightOverride'] as const;
const WARMUP = ['warmupOverride', 'warmup'] as const;

/**
 * Checks the address, runs the operation, and answers the IP's snapshot or the problem; the
 * audit entry names the IP and its `changed` fields before and after.
 */
async function answer(
  request: FastifyRequest<{ Params: Params }>,
  reply: FastifyReply,
  deps: IpOperationsRouteDeps,
  changed: readonly string[],
  run: (address: string) => Promise<OperationResult>,
) {
  const { address } = request.params;
  if (!isAddressParam(address)) return refuseAddress(request, reply);
  auditRequest(request, { target: address });
  const [before] = await deps.pool.snapshot({ address });
  const result = await run(address);
  // The body as the route's schema checked it: a refusal names what it found there.
  const named = (request.body ?? {}) as { provider?: string; plan?: string };
  switch (result.refused) {
    case 'unknown-ip':
      return unknownIp(request, reply);
    case 'unknown-provider':
      return sendInvalid(request, reply, 'body.provider', `unknown provider ${JSON.stringify(named.provider)} (known: ${result.known.join(', ')})`);
    case 'unknown-plan':
      return sendInvalid(request, reply, 'body.plan', `unknown warm-up plan ${JSON.stringify(named.plan)} (known: ${result.known.join(', ')})`);
    case 'no-plan':
      return sendInvalid(request, reply, 'body.plan', `required: ${address} has no warm-up plan configured (ips[].warmup); name one of ${result.known.join(', ')}`);
  }
  const [ip] = await deps.pool.snapshot({ address: result.address });
  const after = ipJson(ip!);
  const pick = (json: Record<string, unknown>) => Object.fromEntries(changed.map((field) => [field, json[field]]));
  auditRequest(request, { target: result.address, change: { before: before ? pick(ipJson(before)) : null, after: pick(after) } });
  return after;
}
