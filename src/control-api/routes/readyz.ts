import type { FastifyInstance } from 'fastify';
import { runReadinessChecks, type ReadinessChecks } from '../readiness.ts';

export interface ReadyzRouteDeps {
  checks: ReadinessChecks;
  isShuttingDown?: () => boolean;
  checkTimeoutMs?: number;
}

/**
 * Readiness: 200 when every dependency answers, 503 naming the one that did not (and why), and
 * 503 while shutting down so a load balancer stops sending work before the listeners close.
 */
export function registerReadyzRoute(app: FastifyInstance, deps: ReadyzRouteDeps): void {
  app.get('/readyz', async (_request, reply) => {
    if (deps.isShuttingDown?.()) {
      return reply.code(503).send({ status: 'shutting-down', checks: {} });
    }
    const report = await runReadinessChecks(deps.checks, deps.checkTimeoutMs);
    return reply.code(report.ready ? 200 : 503).send({ status: report.ready ? 'ready' : 'not-ready', checks: report.checks });
  });
}
