import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { runReadinessChecks, type ReadinessChecks } from '../readiness.ts';

export interface MetricsRouteDeps {
  metrics: Metrics;
  logger: Logger;
  /** The readiness checks (as /readyz runs them), shown as rookery_dependency_ready at each scrape. */
  checks?: ReadinessChecks;
  checkTimeoutMs?: number;
  /** Refreshes gauges that are read from elsewhere (queue depth from the store) before a scrape. */
  beforeMetrics?: () => Promise<void>;
}

/** Prometheus scrape endpoint, in the text exposition format of the daemon's own registry. */
export function registerMetricsRoute(app: FastifyInstance, deps: MetricsRouteDeps): void {
  app.get('/metrics', async (_request, reply) => {
    let storageReady = true;
    if (deps.checks) {
      const report = await runReadinessChecks(deps.checks, deps.checkTimeoutMs);
      for (const [dependency, result] of Object.entries(report.checks)) deps.metrics.dependencyReady.set({ dependency }, result.ok ? 1 : 0);
      storageReady = report.checks.storage?.ok !== false;
    }
    // Storage failing its check would make the reads wait or fail too: the scrape answers at
    // once with those gauges as they were, and rookery_dependency_ready says why.
    if (deps.beforeMetrics && storageReady) {
      try {
        await deps.beforeMetrics();
      } catch (err) {
        // A scrape with a stale gauge beats a failed scrape that loses every other metric.
        deps.logger.warn({ event: 'metrics.refresh.failed', error: (err as Error).message }, 'could not refresh gauges before scrape');
      }
    }
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
}
