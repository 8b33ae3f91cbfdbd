import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { Rejections } from '../../src/smtp/rejections.ts';
import { SessionRegistry } from '../../src/smtp/session-registry.ts';
import type { Admission } from '../../src/vendor/smtp-server.ts';

/** Admission as connections are accepted, for client addresses loopback sockets cannot have. */
function registry(smtp: Record<string, unknown>) {
  const config = parseConfig({ smtp }, 'test', {});
  const log = createLogger('silent');
  const metrics = new Metrics({ processMetrics: false });
  const sessions = new SessionRegistry({ smtp: config.smtp, log, metrics, rejections: new Rejections(metrics, log), isStopping: () => false });
  const admitted: Admission[] = [];
  /** null when admitted, else the refusal's text. */
  const admit = (ip: string): string | null => {
    const result = sessions.admit(ip);
    if ('code' in result) return result.text;
    admitted.push(result);
    return null;
  };
  return { admit, admitted };
}

describe('SessionRegistry', () => {
  it('counts an IPv6 client by its /64 against maxConnectionsPerClient', () => {
    const { admit, admitted } = registry({ maxConnectionsPerClient: 2 });
    expect(admit('2001:db8:1:2::1')).toBeNull();
    expect(admit('2001:db8:1:2:ffff::9')).toBeNull();
    expect(admit('2001:db8:1:2::3')).toBe('4.7.0 Too many connections from your address');
    expect(admit('2001:db8:1:3::1')).toBeNull();
    expect(admit('192.0.2.1')).toBeNull();
    // A closed connection frees its client's slot, once however often it is reported.
    admitted[0]!.release();
    admitted[0]!.release();
    expect(admit('2001:db8:1:2::3')).toBeNull();
    expect(admit('2001:db8:1:2::4')).toBe('4.7.0 Too many connections from your address');
  });

  it('holds trusted networks to the per-client limit only, never to the total or the unreserved share', () => {
    const { admit } = registry({ maxConnections: 2, reservedConnectionShare: 0.5, trustedNetworks: ['10.0.0.0/8'], maxConnectionsPerClient: 3 });
    expect(admit('192.0.2.1')).toBeNull();
    expect(admit('192.0.2.2')).toBe('4.7.0 Too many connections, try again later');
    expect(['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.2'].map(admit)).toEqual([null, null, null, null]);
    expect(admit('10.0.0.1')).toBe('4.7.0 Too many connections from your address');
    expect(admit('192.0.2.3')).toBe('4.7.0 Too many connections, try again later');
  });
});
