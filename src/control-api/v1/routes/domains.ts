import type { FastifyInstance } from 'fastify';
import type { TenantLookup } from '../../../access/tenants.ts';
import { domainMatches } from '../../../mail/address.ts';
import type { DomainReport } from '../../../sender-domains/domain-check.ts';
import type { SenderDomain, SenderDomains } from '../../../sender-domains/sender-domains-view.ts';
import { pathOf, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';

export interface DomainsRouteDeps {
  domains: SenderDomains;
  /** Runs the domain check (src/sender-domains/domain-check.ts) against the running configuration. */
  check(domain: string): Promise<DomainReport>;
}

const KEY = {
  type: 'object',
  additionalProperties: false,
  required: ['selector', 'algorithm', 'bits', 'signing', 'published', 'loadedAt', 'error'],
  properties: {
    selector: { type: 'string', description: 'The DNS record lives at `<selector>._domainkey.<domain>`.' },
    algorithm: { type: 'string', enum: ['rsa-sha256', 'ed25519-sha256'] },
    bits: { type: ['integer', 'null'], description: 'RSA modulus length; null for Ed25519.' },
    signing: { type: 'boolean', description: 'Whether this key signs now.' },
    published: {
      type: ['boolean', 'null'],
      description: 'Whether DNS was seen publishing this key; null when not looked up (a single key of its algorithm signs regardless). A newer key of a rotation waits for it.',
    },
    loadedAt: { type: 'string', format: 'date-time', description: 'When the key in use was read from its file.' },
    error: { type: ['string', 'null'], description: 'Why the file could not be reloaded (the previous key stays in use).' },
  },
} as const;

const DOMAIN = {
  type: 'object',
  additionalProperties: false,
  required: ['domain', 'subdomains', 'fallback', 'returnPath', 'keys'],
  properties: {
    domain: { type: 'string', description: 'Lower-case A-label.' },
    subdomains: { type: 'boolean', description: 'Mail From: any subdomain is signed with d= this domain.' },
    fallback: { type: 'boolean', description: 'This domain signs mail whose From domain has no key (dkim.fallback).' },
    returnPath: { type: ['string', 'null'], description: 'The VERP bounce domain (returnPath.domains); null when the envelope sender is left as given.' },
    keys: { type: 'array', items: KEY, description: 'DKIM keys in the order configured, oldest first.' },
  },
} as const;

const DOMAIN_LIST = {
  type: 'object',
  additionalProperties: false,
  required: ['domains'],
  properties: { domains: { type: 'array', items: DOMAIN, description: 'Every domain of dkim.domains and returnPath.domains, by name.' } },
} as const;

const CHECK = {
  type: 'object',
  required: ['area', 'check', 'status', 'subject', 'message', 'fix'],
  additionalProperties: true,
  description: 'One thing checked; the fields beyond these depend on `check` (see `rookery domains check --json`).',
  properties: {
    area: { type: 'string', enum: ['dkim', 'spf', 'dmarc', 'return-path'] },
    check: { type: 'string' },
    status: { type: 'string', enum: ['ok', 'warn', 'error'] },
    subject: { type: 'string' },
    message: { type: 'string' },
    fix: { type: ['string', 'null'] },
  },
} as const;

const REPORT = {
  type: 'object',
  additionalProperties: false,
  required: ['domain', 'returnPathDomain', 'checkedAt', 'status', 'counts', 'checks'],
  properties: {
    domain: { type: 'string' },
    returnPathDomain: { type: 'string', description: 'The envelope sender domain checked for bounces and SPF alignment.' },
    checkedAt: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['ok', 'warn', 'error'], description: 'The worst status of all checks.' },
    counts: {
      type: 'object',
      additionalProperties: false,
      required: ['ok', 'warn', 'error'],
      properties: { ok: { type: 'integer' }, warn: { type: 'integer' }, error: { type: 'integer' } },
    },
    checks: { type: 'array', items: CHECK },
  },
} as const;

const DOMAIN_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['domain'],
  properties: { domain: { type: 'string', description: 'A configured sender domain (any case; U-label or A-label).' } },
} as const;

/**
 * GET /v1/domains: the sender domains with their DKIM keys' states; POST
 * /v1/domains/{domain}/check: the DNS check of one (DKIM records, SPF of each egress IP, DMARC,
 * the bounce domain's MX). The check changes nothing; it is a POST because it is an action that
 * makes DNS queries each time, never a cached read. A tenant's token sees its own sender domains
 * only (and may not run checks: route-roles.ts).
 */
export function registerDomainsRoutes(app: FastifyInstance, deps: DomainsRouteDeps & { tenants: TenantLookup }): void {
  app.get('/v1/domains', {
    schema: {
      ...v1Route({ summary: 'Sender domains and their DKIM keys', roles: rolesFor('GET', '/v1/domains') ?? [], tags: ['domains'] }),
      querystring: NO_QUERY,
      response: { 200: jsonResponse('Every configured sender domain.', DOMAIN_LIST), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request) => {
      // A token of a tenant sees the domains that tenant may send as.
      const own = request.principal!.tenant;
      const tenant = own === null ? null : deps.tenants.get(own);
      const visible = deps.domains.list().filter((d) => !tenant || tenant.senderDomains.some((pattern) => domainMatches(d.domain, pattern)));
      return { domains: visible.map(domainJson) };
    },
  });

  app.post<{ Params: { domain: string } }>('/v1/domains/:domain/check', {
    schema: {
      ...v1Route({ summary: 'Check the DNS of a sender domain', roles: rolesFor('POST', '/v1/domains/:domain/check') ?? [], tags: ['domains'] }),
      params: DOMAIN_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('What receivers will find in DNS for the domain, each with a fix where one is needed.', REPORT), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request, reply) => {
      const found = deps.domains.find(request.params.domain);
      auditRequest(request, { target: found?.domain ?? request.params.domain });
      if (!found) {
        const instance = pathOf(request);
        return sendProblem(reply, problem('NOT_FOUND', `${request.params.domain} is not a configured sender domain (dkim.domains, returnPath.domains)`, { instance }));
      }
      return deps.check(found.domain);
    },
  });
}

function domainJson(domain: SenderDomain): object {
  return { ...domain, keys: domain.keys.map((key) => ({ ...key, loadedAt: new Date(key.loadedAt).toISOString() })) };
}
