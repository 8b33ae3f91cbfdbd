import type { Gauge } from 'prom-client';
import type { Config } from '../config/schema.ts';
import { certificateExpiry } from './tls-material.ts';

type Address = { host: string; port: number };

export interface TlsExpiryDeps {
  gauge: Gauge<'listener' | 'address'>;
  config: Pick<Config, 'smtp' | 'inbound'>;
  /** Bound addresses, in config order, of smtp.listeners and inbound.listeners. */
  smtp: readonly Address[];
  inbound: readonly Address[];
}

/**
 * Shows when the certificate each TLS listener presents expires: the submission listeners with
 * `tls` starttls or implicit, and the inbound listeners, which offer STARTTLS whenever the daemon
 * has a certificate. Called at start and after a reload renews smtp.tls, so the gauge is the
 * certificate in use, not the file on disk: a renewal the daemon has not loaded still alerts.
 */
export function showTlsExpiry(deps: TlsExpiryDeps, cert: Buffer | string | null): void {
  deps.gauge.reset();
  if (!cert) return;
  const notAfter = certificateExpiry(cert);
  deps.config.smtp.listeners.forEach((listener, i) => {
    const bound = deps.smtp[i];
    if (listener.tls !== 'none' && bound) deps.gauge.set({ listener: `smtp.listeners[${i}]`, address: label(bound) }, notAfter);
  });
  deps.config.inbound.listeners.forEach((_, i) => {
    const bound = deps.inbound[i];
    if (bound) deps.gauge.set({ listener: `inbound.listeners[${i}]`, address: label(bound) }, notAfter);
  });
}

function label({ host, port }: Address): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
