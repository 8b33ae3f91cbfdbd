import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import type { AddressInfo } from 'node:net';
import { TokenDirectory } from '../access/api-token.ts';
import type { ApiTokenConfig } from '../config/api-schema.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { registerErrorHandlers } from './error-handler.ts';
import type { ReadinessChecks } from './readiness.ts';
import { registerHealthzRoute } from './routes/healthz.ts';
import { registerMetricsRoute } from './routes/metrics.ts';
import { registerReadyzRoute } from './routes/readyz.ts';
import { isV1Path } from './v1/auth.ts';
import { registerV1Api, type V1ApiDeps } from './v1/register.ts';
import { TenantDirectory, type TenantLookup } from '../access/tenants.ts';
import type { Clock } from '../clock.ts';

export interface ControlApiDeps {
  config: { api: Pick<Config['api'], 'listen' | 'tokens' | 'authFailures'> };
  /** The queue the /v1 routes read. */
  store: V1ApiDeps['store'];
  /** The time the /v1 routes measure ages from; the system clock by default. */
  clock?: Clock;
  /** The egress pool the /v1/ips routes report on. */
  pool: V1ApiDeps['pool'];
  /** The sender domains and their check, for /v1/domains. */
  domains: V1ApiDeps['domains'];
  /** Reloads the configuration, for POST /v1/reload. */
  reload: V1ApiDeps['reload'];
  /** The configured tenants; none by default. */
  tenants?: TenantLookup;
  /** Why a message would go where it goes, for /v1/explain (src/engine/route-explanation.ts). */
  explainer: V1ApiDeps['explainer'];
  /** The operator's pauses, retries and cancellations of queued mail. */
  queue: V1ApiDeps['queue'];
  /** The queue's accept path and the limits of a message, for POST /v1/messages and /batch. */
  intake: V1ApiDeps['intake'];
  logger: Logger;
  metrics: Metrics;
  /** Dependencies /readyz checks; each throws when its dependency does not answer. */
  checks: ReadinessChecks;
  /** True once shutdown began: /readyz answers 503 from then on. */
  isShuttingDown?: () => boolean;
  /** Called before each /metrics scrape to refresh gauges read from elsewhere (queue depth). */
  beforeMetrics?: () => Promise<void>;
  /** Upper bound for each readiness check; default 5 s. */
  checkTimeoutMs?: number;
}

export interface ControlApi {
  /** The Fastify instance; more routes may be registered on it before start(). */
  readonly app: FastifyInstance;
  /** Listens on config.api.listen (port 0 picks a free port) and returns the bound address. */
  start(): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish, closes idle keep-alive sockets. */
  stop(): Promise<void>;
  /** Takes a reloaded configuration's API tokens (api.tokens) from the next request on. */
  replaceTokens(tokens: readonly ApiTokenConfig[]): void;
}

/** Probe and scrape traffic arrives every few seconds; logging each request would drown the log. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
/**
 * Sends: each message taken is logged already (api.message.accepted) and each request is in the
 * audit log, so two more lines per request, thousands a second, would say nothing new.
 */
const QUIET_POSTS = new Set(['/v1/messages', '/v1/messages/batch']);

function quietRequest(method: string, url: string): boolean {
  const path = url.split('?')[0]!;
  return QUIET_PATHS.has(path) || (method === 'POST' && QUIET_POSTS.has(path));
}

export function createControlApi(deps: ControlApiDeps): ControlApi {
  const logger = deps.logger.child({ component: 'api' });
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: (request) => quietRequest(request.method, request.url) }),
    // Requests still arriving while closing get 503; idle keep-alive sockets are closed at once.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // /v1 request schemas: an unknown property is refused with its path rather than dropped,
    // and every failing path is reported, not only the first. A type may be a list (OpenAPI
    // 3.1): a mailbox is an address string or an object with a name.
    ajv: { customOptions: { removeAdditional: false, allErrors: true, allowUnionTypes: true } },
  });

  // Every /v1 route, wherever registered, must be one the v1 plugin guarded: checked before the
  // API listens, so a route added beside the plugin fails the start instead of serving openly.
  const v1Routes: RouteOptions[] = [];
  const guarded = new WeakSet<RouteOptions>();
  app.addHook('onRoute', (route) => void (isV1Path(route.url) && v1Routes.push(route)));
  app.addHook('onReady', async () => {
    const open = v1Routes.find((route) => !guarded.has(route));
    if (open) throw new Error(`${String(open.method)} ${open.url} is registered outside the /v1 plugin (src/control-api/v1/register.ts), without authentication`);
  });

  registerErrorHandlers(app);
  registerHealthzRoute(app);
  registerReadyzRoute(app, { checks: deps.checks, isShuttingDown: deps.isShuttingDown, checkTimeoutMs: deps.checkTimeoutMs });
  registerMetricsRoute(app, { metrics: deps.metrics, logger, beforeMetrics: deps.beforeMetrics });
  let tokens = new TokenDirectory(deps.config.api.tokens);
  const { store, clock, pool, domains, reload } = deps;
  const tenants = deps.tenants ?? new TenantDirectory({});
  registerV1Api(app, { api: deps.config.api, tokens: () => tokens, reload, store, clock, pool, domains, tenants, explainer: deps.explainer, queue: deps.queue, intake: deps.intake, isShuttingDown: deps.isShuttingDown, guarded });

  let starting: Promise<{ host: string; port: number }> | undefined;
  let stopping: Promise<void> | undefined;

  return {
    app,

    start() {
      if (stopping) return Promise.reject(new Error('control API was stopped; create a new one to listen again'));
      starting ??= (async () => {
        const { host, port } = deps.config.api.listen;
        await app.listen({ host, port });
        const address = app.server.address() as AddressInfo;
        logger.info({ event: 'api.listening', host: address.address, port: address.port }, 'control API listening');
        return { host: address.address, port: address.port };
      })();
      return starting;
    },

    replaceTokens(next) {
      tokens = new TokenDirectory(next);
    },

    stop() {
      stopping ??= (async () => {
        // Wait for a start in progress so its socket is not left open behind us.
        await starting?.catch(() => undefined);
        await app.close();
        logger.info({ event: 'api.stopped' }, 'control API stopped');
      })();
      return stopping;
    },
  };
}
