import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';

export interface MetricsRouteDeps {
  metrics: Metrics;
  logger: Logger;
  /** Refreshes gauges that are read from elsewhere (queue depth from the store) before a scrape. */
  beforeMetrics?: () => Promise<void>;
}

/** Prometheus scrape endpoint, in the text exposition format of the daemon's own registry. */
export function registerMetricsRoute(app: FastifyInstance, deps: MetricsRouteDeps): void {
  app.get('/metrics', async (_request, reply) => {
    if (deps.beforeMetrics) {
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
