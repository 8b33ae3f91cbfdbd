import type { Config } from '../config/schema.ts';
import { OPERATOR_WARNINGS, type OperatorWarningCode } from '../errors.ts';
import { isLoopbackHost } from '../smtp/listener-policy.ts';

/** A risk in the configuration that does not stop the daemon, named by its config path. */
export interface ConfigWarning {
  code: OperatorWarningCode;
  path: string;
  message: string;
}

/**
 * The warning for a control API that listens beyond this machine with no API token configured:
 * then nothing on it asks who is calling. Null on a loopback address, and null once tokens are
 * configured: every /v1 route then needs one, and /healthz, /readyz and /metrics are meant to be
 * reached by probes and scrapers.
 */
export function apiExposureWarning(api: Pick<Config['api'], 'listen' | 'tokens'>): ConfigWarning | null {
  const { host, port } = api.listen;
  if (isLoopbackHost(host) || api.tokens.length > 0) return null;
  return {
    code: 'API_EXPOSED',
    path: 'api.listen.host',
    message:
      `${OPERATOR_WARNINGS.API_EXPOSED.message} (${host || 'every address'}, port ${port}): whoever reaches it reads its ` +
      'health and metrics; bind it to 127.0.0.1, or keep the port behind a firewall',
  };
}
