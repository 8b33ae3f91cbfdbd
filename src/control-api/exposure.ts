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
 * The warning for a control API that listens beyond this machine; null on a loopback address.
 * Without API tokens nothing on it asks who is calling; with tokens, /healthz, /readyz and
 * /metrics (egress IPs, providers, queue depth) still answer anyone, and the API speaks plain
 * HTTP, so tokens cross the network readable. Either way it belongs on loopback or behind a
 * TLS proxy and a firewall.
 */
export function apiExposureWarning(api: Pick<Config['api'], 'listen' | 'tokens'>): ConfigWarning | null {
  const { host, port } = api.listen;
  if (isLoopbackHost(host)) return null;
  const where = `(${host || 'every address'}, port ${port})`;
  return {
    code: 'API_EXPOSED',
    path: 'api.listen.host',
    message:
      api.tokens.length === 0
        ? `${OPERATOR_WARNINGS.API_EXPOSED.message} ${where}: whoever reaches it reads its health and metrics; bind it to 127.0.0.1, or keep the port behind a firewall`
        : `the control API listens beyond loopback ${where} over plain HTTP: API tokens cross the network readable and /metrics and /readyz answer anyone; bind it to 127.0.0.1, or put it behind a TLS proxy and a firewall`,
  };
}
