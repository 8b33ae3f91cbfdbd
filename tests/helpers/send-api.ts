import type { ConfigInput } from '../../src/config/schema.ts';
import { createControlApi, type ApiTimeouts, type ControlApi } from '../../src/control-api/server.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from './api-sources.ts';

/** An answer of the API, its body parsed when it is JSON. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

export interface CallOptions {
  json?: unknown;
  raw?: Buffer | string;
  body?: string;
  token: string;
  key?: string;
  method?: string;
  contentType?: string;
}

/**
 * A control API over `store` on a free loopback port, built from `config` as the daemon builds
 * it, and a function that calls it with a bearer token (JSON, a raw message, or any body).
 */
export async function startSendApi(options: { store: Store; config: ConfigInput; logger: Logger; isShuttingDown?: () => boolean; timeouts?: Partial<ApiTimeouts> }): Promise<{
  api: ControlApi;
  host: string;
  port: number;
  call: (path: string, options: CallOptions) => Promise<Answer>;
}> {
  const { store, logger } = options;
  const { config } = resolveConfig(options.config, { source: 'test', env: {} });
  const api = createControlApi({
    isShuttingDown: options.isShuttingDown,
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: config.api.tokens, authFailures: { max: 100, window: 60_000 } } },
    store,
    ...apiSources({ store, config: options.config }),
    logger,
    metrics: new Metrics({ processMetrics: false }),
    checks: { storage: () => store.ping() },
  });
  const { host, port } = await api.start();
  const call = async (path: string, o: CallOptions): Promise<Answer> => {
    const headers: Record<string, string> = { authorization: `Bearer ${o.token}` };
    if (o.key !== undefined) headers['idempotency-key'] = o.key;
    let body: string | Buffer | undefined = o.body;
    if (o.json !== undefined) [headers['content-type'], body] = ['application/json', JSON.stringify(o.json)];
    if (o.raw !== undefined) [headers['content-type'], body] = ['message/rfc822', o.raw];
    if (o.contentType) headers['content-type'] = o.contentType;
    const res = await fetch(`http://${host}:${port}${path}`, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
    const text = await res.text();
    let parsed: unknown = null;
    if (/json/.test(res.headers.get('content-type') ?? '') && text) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, text, body: parsed };
  };
  return { api, host, port, call };
}
