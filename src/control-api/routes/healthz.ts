import type { FastifyInstance } from 'fastify';

/** Liveness: answers while the process runs and its event loop turns; checks nothing else. */
export function registerHealthzRoute(app: FastifyInstance): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
}
