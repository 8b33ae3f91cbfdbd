import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { SmtpSink } from './smtp-sink.ts';
import type { TempDir } from './temp-dir.ts';

/**
 * A daemon in this process for integration tests: its files in `dir`, SMTP and API on free
 * loopback ports, open to 127.0.0.1, delivering every MX hop to the sink's port, DNS from
 * `resolver`. `config` is laid over that (delivery settings are merged).
 */
export async function startTestDaemon(options: {
  dir: TempDir;
  sink: SmtpSink;
  resolver: NonNullable<DaemonOptions['resolver']>;
  config?: ConfigInput;
}): Promise<Daemon> {
  const { dir, sink, resolver, config = {} } = options;
  const hostname = config.hostname ?? 'mta.rookery.test';
  const input: ConfigInput = {
    hostname,
    dataDir: dir.file('data'),
    storage: { path: dir.file(`${hostname}.db`) },
    smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], trustedNetworks: ['127.0.0.1/32'] },
    api: { listen: { host: '127.0.0.1', port: 0 } },
    ...config,
    delivery: { mxPort: sink.port, ...config.delivery },
  };
  return startDaemon({ config: parseConfig(input, 'test', {}), logger: createLogger('silent'), resolver });
}
