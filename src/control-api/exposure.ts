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
 * The warning for a control API that listens beyond this machine. It has no authentication yet,
 * so whoever reaches the port reads /readyz and /metrics (egress addresses, queue sizes,
 * reputations per provider). Null on a loopback address.
 */
export function apiExposureWarning(api: Pick<Config['api'], 'listen'>): ConfigWarning | null {
  const { host, port } = api.listen;
  if (isLoopbackHost(host)) return null;
  return {
    code: 'API_EXPOSED',
    path: 'api.listen.host',
    message:
      `${OPERATOR_WARNINGS.API_EXPOSED.message} (${host || 'every address'}, port ${port}): whoever reaches it reads its ` +
      'health and metrics; bind it to 127.0.0.1, or keep the port behind a firewall',
  };
}
