import type { FastifyInstance } from 'fastify';
import type { ReloadOutcome } from '../../../config/reload-scope.ts';
import { pathOf, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';

export interface ReloadRouteDeps {
  /** Reads the configuration file again and applies it whole, or changes nothing (the daemon's LiveConfig). */
  reload(): Promise<ReloadOutcome>;
}

const PATHS = { type: 'array', items: { type: 'string' } } as const;

const RELOADED = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'changed', 'restartRequired', 'warnings'],
  properties: {
    source: { type: 'string', description: 'The configuration file read.' },
    changed: { ...PATHS, description: 'The settings applied with a new value (config paths, e.g. `ips`, `smtp.users`); empty when nothing changed.' },
    restartRequired: {
      ...PATHS,
      description: 'Settings whose new value waits for a restart (listeners, storage, `hostname`, ...): the running value stays in effect until then.',
    },
    warnings: {
      ...PATHS,
      description: 'What the applied configuration does that needs attention, each starting with its config path (e.g. a pool that lost its last IP, whose mail goes through the default pool).',
    },
  },
} as const;

/**
 * POST /v1/reload: the configuration file read again, as SIGHUP does. Answers what changed and
 * what waits for a restart, or a 422 listing every problem of the file (each with its config
 * path), in which case nothing changed, or a 503 while the daemon is starting or stopping. The
 * audit trail records the summary as the change.
 */
export function registerReloadRoute(app: FastifyInstance, deps: ReloadRouteDeps): void {
  app.post('/v1/reload', {
    schema: {
      ...v1Route({ summary: 'Reload the configuration', roles: rolesFor('POST', '/v1/reload') ?? [], tags: ['config'] }),
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The configuration was applied.', RELOADED), ...problemResponses(...AUTH_PROBLEMS, 422, 503) },
    },
    handler: async (request, reply) => {
      const outcome = await deps.reload();
      if (!outcome.ok && 'unavailable' in outcome) {
        auditRequest(request, { target: outcome.source });
        const detail = `${outcome.unavailable}; nothing was reloaded, try again once it runs`;
        return sendProblem(reply, problem('UNAVAILABLE', detail, { instance: pathOf(request) }));
      }
      if (!outcome.ok) {
        auditRequest(request, { target: outcome.source });
        const count = outcome.problems.length === 1 ? 'a problem' : `${outcome.problems.length} problems`;
        const detail = `${outcome.source} has ${count}; the running configuration stays in effect`;
        return sendProblem(reply, problem('CONFIG_INVALID', detail, { errors: outcome.problems.map(problemEntry), instance: pathOf(request) }));
      }
      const { source, changed, restartRequired, warnings } = outcome;
      auditRequest(request, { target: source, change: { after: { changed, restartRequired, warnings } } });
      return { source, changed, restartRequired, warnings };
    },
  });
}

/** A problem line of the configuration ("ips[0].address: not an IP address") as a path and a message; a whole-file problem has the path "(root)". */
function problemEntry(line: string): { path: string; message: string } {
  const match = /^([^\s:]+): ([\s\S]*)$/.exec(line);
  return match ? { path: match[1]!, message: match[2]! } : { path: '(root)', message: line };
}
