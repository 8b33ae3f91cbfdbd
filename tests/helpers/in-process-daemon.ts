import type { ConfigInput } from '../../src/config/schema.ts';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/main.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import type { SmtpSink } from './smtp-sink.ts';
import type { TempDir } from './temp-dir.ts';
import { testDaemonConfig } from './test-config.ts';

/**
 * A daemon in this process for integration tests (see testDaemonConfig), delivering every MX hop
 * to the sink's port, with DNS from `resolver`. `config` is laid over it (delivery settings are
 * merged). A `clock` replaces the system's, a `store` the SQLite queue. Silent unless given a logger.
 */
export async function startTestDaemon(options: {
  dir: TempDir;
  sink: Pick<SmtpSink, 'port'>;
  resolver: NonNullable<DaemonOptions['resolver']>;
  config?: ConfigInput;
  clock?: DaemonOptions['clock'];
  logger?: Logger;
  /** A queue of the test's own (else SQLite under `dir`). */
  store?: DaemonOptions['store'];
  /** What a reload reads (laid over the same defaults as `config`); else `config` again. */
  reread?: () => ConfigInput;
  /** Roots and name resolution for outbound TLS and MTA-STS (a test CA, loopback policy hosts). */
  tlsTrust?: DaemonOptions['tlsTrust'];
}): Promise<Daemon> {
  const { dir, sink, resolver, config = {}, clock, store } = options;
  const resolve = (extra: ConfigInput) =>
    resolveConfig(testDaemonConfig({ dir: dir.path, extra: { ...extra, delivery: { mxPort: sink.port, ...extra.delivery } } }), { source: 'test', env: {} });
  const { reread } = options;
  return startDaemon({
    resolved: resolve(config),
    reread: reread && (() => resolve(reread())),
    logger: options.logger ?? createLogger('silent'),
    resolver,
    clock,
    store,
    ...(options.tlsTrust ? { tlsTrust: options.tlsTrust } : {}),
  });
}
