import { join } from 'node:path';
import type { ConfigInput } from '../../src/config/schema.ts';

/**
 * The configuration every test daemon starts from, in this process or as a process: its files
 * under `dir`, SMTP submission (no TLS) and the control API on free loopback ports, 127.0.0.1
 * trusted to relay, info logs (a daemon process reports its bound ports in them), and with `sink`
 * every domain routed to that loopback port. `extra` is laid over it; its `smtp`, `api` and
 * `delivery` are merged key by key (an `api` with tokens alone still listens on a free port).
 */
export function testDaemonConfig(options: { dir: string; sink?: { port: number }; extra?: ConfigInput }): ConfigInput {
  const { dir, sink, extra = {} } = options;
  const hostname = extra.hostname ?? 'mta.rookery.test';
  return {
    hostname,
    dataDir: join(dir, 'data'),
    storage: { path: join(dir, 'data', `${hostname}.db`) },
    log: { level: 'info' },
    ...extra,
    api: { listen: { host: '127.0.0.1', port: 0 }, ...extra.api },
    smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.1/32'], ...extra.smtp },
    delivery: { ...(sink ? { routes: { '*': `127.0.0.1:${sink.port}` } } : {}), ...extra.delivery },
  };
}

/**
 * Shaping that never binds, for tests that push load through one loopback "site": the default
 * (100 messages a second per IP and site) would make them wait for the limit, not the fault.
 */
export const UNSHAPED: ConfigInput = { shaping: { default: { messageRate: '1000000/s', connectionRate: '10000/s' } } };
