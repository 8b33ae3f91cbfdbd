import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify';
import type { AddressInfo } from 'node:net';
import { TokenDirectory } from '../access/api-token.ts';
import type { ApiTokenConfig } from '../config/api-schema.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { answerClientError, refuseWhileStopping, registerErrorHandlers } from './error-handler.ts';
import type { ReadinessChecks } from './readiness.ts';
import { registerHealthzRoute } from './routes/healthz.ts';
import { registerMetricsRoute } from './routes/metrics.ts';
import { registerReadyzRoute } from './routes/readyz.ts';
import { leaveUnaudited } from './v1/audit-trail.ts';
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
  /** /v1/webhooks: whether URLs may name private addresses, and the dispatcher to wake. */
  webhooks?: V1ApiDeps['webhooks'];
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
  /** How long a client may take over its requests and sockets; the defaults of API_TIMEOUTS otherwise. */
  timeouts?: Partial<ApiTimeouts>;
}

export interface ApiTimeouts {
  /** From a request's first byte to its last: its headers and its whole body. */
  requestMs: number;
  /** A socket with no byte either way for this long is closed. */
  idleMs: number;
  /** An idle keep-alive socket is closed after this long. */
  keepAliveMs: number;
  /** stop() lets requests in progress finish for this long, then closes their sockets. */
  closeGraceMs: number;
}

/**
 * Without bounds a client dribbling a body (a byte every few seconds, with or without a token)
 * holds its socket and memory forever, and stop() waits for it until systemd kills the daemon.
 * requestMs: the largest body a send may carry (4/3 of a 32 MiB message, ~43 MB) arrives within
 * two minutes at 3 Mbit/s; a slower client is cut and retries (with its Idempotency-Key).
 * idleMs: 30 s with no byte at all is a dead or stalling peer. keepAliveMs: 10 s, above the
 * usual client pool's 4-5 s so a client rarely reuses a socket the server is closing.
 * closeGraceMs: a request already read gets 10 s to commit and be answered at shutdown.
 */
export const API_TIMEOUTS: ApiTimeouts = { requestMs: 120_000, idleMs: 30_000, keepAliveMs: 10_000, closeGraceMs: 10_000 };

export interface ControlApi {
  /** The Fastify instance; more routes may be registered on it before start(). */
  readonly app: FastifyInstance;
  /** Listens on config.api.listen (port 0 picks a free port) and returns the bound address. */
  start(): Promise<{ host: string; port: number }>;
  /** Stops accepting, closes idle keep-alive sockets, lets in-flight requests finish within closeGraceMs, then closes theirs. */
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

/**
 * A path naming a person (GET/DELETE /v1/recipients/{address}, /v1/suppressions/{address}): the
 * journal would keep the address an erasure takes away. The audit log records the request under
 * the route's pattern.
 */
const PERSONAL_PATH = /^\/v1\/(?:recipients|suppressions)\/[^/]*(?:@|%40)/i;

function quietRequest(method: string, url: string): boolean {
  const path = url.split('?')[0]!;
  return QUIET_PATHS.has(path) || (method === 'POST' && QUIET_POSTS.has(path)) || PERSONAL_PATH.test(path);
}

export function createControlApi(deps: ControlApiDeps): ControlApi {
  const logger = deps.logger.child({ component: 'api' });
  const timeouts = { ...API_TIMEOUTS, ...deps.timeouts };
  const app: FastifyInstance = Fastify({
    requestTimeout: timeouts.requestMs,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    // Node checks requestTimeout only every connectionsCheckingInterval (30 s by default).
    http: { headersTimeout: Math.min(60_000, timeouts.requestMs), connectionsCheckingInterval: Math.min(5_000, Math.max(100, Math.floor(timeouts.requestMs / 4))) },
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: (request) => quietRequest(request.method, request.url) }),
    // Requests still arriving while closing get 503 (refuseWhileClosing below: Fastify's own is
    // not a problem document); idle keep-alive sockets are closed at once.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
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
  let closing = false;
  app.addHook('onRequest', async (request, reply) => {
    if (closing) return refuseWhileClosing(request, reply);
  });
  registerHealthzRoute(app);
  registerReadyzRoute(app, { checks: deps.checks, isShuttingDown: deps.isShuttingDown, checkTimeoutMs: deps.checkTimeoutMs });
  registerMetricsRoute(app, { metrics: deps.metrics, logger, checks: deps.checks, checkTimeoutMs: deps.checkTimeoutMs, beforeMetrics: deps.beforeMetrics });
  let tokens = new TokenDirectory(deps.config.api.tokens);
  const { store, clock, pool, domains, reload } = deps;
  const tenants = deps.tenants ?? new TenantDirectory({});
  registerV1Api(app, { api: deps.config.api, tokens: () => tokens, reload, store, clock, pool, domains, tenants, explainer: deps.explainer, queue: deps.queue, intake: deps.intake, webhooks: deps.webhooks, isShuttingDown: deps.isShuttingDown, guarded, metrics: deps.metrics });

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
        closing = true;
        const closed = app.close();
        // A request still in progress after the grace (a client still sending) is cut: its
        // client retries, and shutdown never waits on a peer.
        const grace = setTimeout(() => {
          logger.warn({ event: 'api.connections.closed', graceMs: timeouts.closeGraceMs }, 'requests still in progress at shutdown; their connections closed');
          app.server.closeAllConnections();
        }, timeouts.closeGraceMs);
        try {
          await closed;
        } finally {
          clearTimeout(grace);
        }
        logger.info({ event: 'api.stopped' }, 'control API stopped');
      })();
      return stopping;
    },
  };
}

/**
 * A request that arrives on a kept-alive connection while the API closes (one already in progress
 * holds it open): 503, as Fastify would answer, but as the problem document every other error is.
 * /readyz keeps its own answer, which load balancers read.
 */
function refuseWhileClosing(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  if (request.routeOptions.url === '/readyz') return undefined;
  leaveUnaudited(request);
  return refuseWhileStopping(request, reply);
}
