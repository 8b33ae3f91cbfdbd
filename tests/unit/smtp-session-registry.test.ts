import type { SMTPServerSession } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { Rejections } from '../../src/smtp/rejections.ts';
import { SessionRegistry } from '../../src/smtp/session-registry.ts';
import { GatedSmtpServer } from '../../src/vendor/smtp-server.ts';

/** Admission as smtp-server's onConnect sees it, for client addresses loopback sockets cannot have. */
function registry(smtp: Record<string, unknown>) {
  const config = parseConfig({ smtp }, 'test', {});
  const log = createLogger('silent');
  const metrics = new Metrics({ processMetrics: false });
  const sessions = new SessionRegistry({ smtp: config.smtp, log, metrics, rejections: new Rejections(metrics, log), isStopping: () => false });
  const server = new GatedSmtpServer({ logger: false }, { command: () => null, earlyTalker: () => ({ code: 421, text: '' }), commandTimeout: () => ({ code: 421, text: '' }) }, { greetingDelayMs: 0, commandTimeoutMs: 1000 });
  let next = 0;
  const open = (ip: string): string | null => {
    const session = { id: `s${++next}`, remoteAddress: ip, localPort: 25, clientHostname: `[${ip}]` } as SMTPServerSession;
    let refusal: string | null = 'pending';
    sessions.open(server, config.smtp.listeners[0]!, session, (err) => (refusal = err ? err.message : null));
    return refusal;
  };
  return { sessions, open };
}

describe('SessionRegistry', () => {
  it('counts an IPv6 client by its /64 against maxConnectionsPerClient', () => {
    const { sessions, open } = registry({ maxConnectionsPerClient: 2 });
    expect(open('2001:db8:1:2::1')).toBeNull();
    expect(open('2001:db8:1:2:ffff::9')).toBeNull();
    expect(open('2001:db8:1:2::3')).toBe('4.7.0 Too many connections from your address');
    expect(open('2001:db8:1:3::1')).toBeNull();
    expect(open('192.0.2.1')).toBeNull();
    expect(sessions.size).toBe(4);
    sessions.closeAll();
  });
});
