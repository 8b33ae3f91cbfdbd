import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load.ts';
import { planReload } from '../../src/config/reload-scope.ts';

/** The problems a config raises; fails the test when it is accepted. */
function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw, 'test', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

describe('inbound: the listener for bounces and complaints', () => {
  it('is off by default, with limits sized for reports', () => {
    expect(parseConfig({}, 'test', {}).inbound).toEqual({
      listeners: [],
      maxMessageBytes: 2 * 1024 * 1024,
      maxRecipients: 10,
      fblAddresses: [],
      fblReporters: [],
      maxConnections: 200,
      maxConnectionsPerClient: 10,
      processingTimeout: 30_000,
    });
  });

  it('takes listeners and feedback-loop addresses, the addresses in lower case', () => {
    const { inbound } = parseConfig(
      { inbound: { listeners: [{ host: '0.0.0.0', port: 25 }], fblAddresses: ['FBL@Example.com'], fblReporters: ['Yahoo.COM', 'hotmail.com.', 'bücher.example'], processingTimeout: '10s' } },
      'test',
      {},
    );
    expect(inbound.listeners).toEqual([{ host: '0.0.0.0', port: 25, greetingDelay: 0 }]);
    expect(inbound.fblAddresses).toEqual(['fbl@example.com']);
    // In the form signing domains are compared in: lower case, A-labels.
    expect(inbound.fblReporters).toEqual(['yahoo.com', 'hotmail.com', 'xn--bcher-kva.example']);
    expect(inbound.processingTimeout).toBe(10_000);
  });

  it('takes a reporter address for a domain that also hosts mailboxes: its local part as written, its domain as a domain entry', () => {
    const { inbound } = parseConfig({ inbound: { fblReporters: ['Staff@FBL.Hotmail.com', 'reports@bücher.example', 'yahoo.com'] } }, 'test', {});
    expect(inbound.fblReporters).toEqual(['Staff@fbl.hotmail.com', 'reports@xn--bcher-kva.example', 'yahoo.com']);
    expect(problemsOf({ inbound: { fblReporters: ['yahoo.com', '@hotmail.com', 'staff@', 'st aff@hotmail.com', 'staff@not a domain'] } })).toEqual([
      'inbound.fblReporters[1]: not an address (local@domain): "@hotmail.com"',
      'inbound.fblReporters[2]: not an address (local@domain): "staff@"',
      'inbound.fblReporters[3]: not an address (local@domain): "st aff@hotmail.com"',
      'inbound.fblReporters[4]: not an address (local@domain): "staff@not a domain"',
    ]);
  });

  it('names each problem by its path', () => {
    expect(problemsOf({ inbound: { listeners: [{ host: '0.0.0.0' }], fblAddresses: ['not an address'], fblReporters: ['yahoo.com', 'not a domain'], processingTimeout: '0s', maxRecipients: 0, tls: 'starttls' } })).toEqual([
      'inbound.listeners[0].port: Invalid input: expected number, received undefined',
      'inbound.maxRecipients: Too small: expected number to be >0',
      'inbound.fblAddresses[0]: not an email address (local@domain)',
      'inbound.fblReporters[1]: not a domain name: "not a domain"',
      'inbound.processingTimeout: not a duration above zero (use e.g. 500ms, 25s, 10m, 1h, 5d): "0s"',
      'inbound.tls: unknown key',
    ]);
  });

  it('refuses feedback-loop addresses without reporters to trust, so no complaint is taken unchecked', () => {
    expect(problemsOf({ inbound: { fblAddresses: ['fbl@example.com'] } })).toEqual([
      'inbound.fblReporters: required when inbound.fblAddresses lists an address: list the domains, or the addresses, whose DKIM-signed feedback reports are trusted (e.g. [fbl.example.net, reports@example.org])',
    ]);
    // Reporters alone are fine: they are asked about the reports to postmaster@ the bounce domains.
    expect(parseConfig({ inbound: { fblReporters: ['yahoo.com'] } }, 'test', {}).inbound.fblReporters).toEqual(['yahoo.com']);
  });

  it('refuses an inbound listener on the socket of a submission listener or the API', () => {
    expect(problemsOf({ smtp: { listeners: [{ host: '0.0.0.0', port: 25 }] }, inbound: { listeners: [{ host: '203.0.113.10', port: 25 }] } })).toEqual([
      'inbound.listeners[0]: 203.0.113.10:25 overlaps smtp.listeners[0] (0.0.0.0:25); two sockets cannot listen on one address and port',
    ]);
    expect(problemsOf({ api: { listen: { port: 2526 } }, inbound: { listeners: [{ port: 2526 }] } })[0]).toMatch(/^api\.listen: .* overlaps inbound\.listeners\[0\]/);
  });

  it('reloads the addresses taken, the reporters trusted and the time limit; the sockets and their limits wait for a restart', () => {
    const running = parseConfig({ inbound: { listeners: [{ port: 25 }] } }, 'test', {});
    const next = parseConfig({ inbound: { listeners: [{ port: 26 }], fblAddresses: ['fbl@example.com'], fblReporters: ['yahoo.com'], maxConnections: 5 } }, 'test', {});
    const plan = planReload(running, next);
    expect(plan.changed).toEqual(['inbound.fblAddresses', 'inbound.fblReporters']);
    expect(plan.restartRequired).toEqual(['inbound.listeners', 'inbound.maxConnections']);
    expect(plan.config.inbound).toMatchObject({ listeners: [{ port: 25 }], fblAddresses: ['fbl@example.com'], fblReporters: ['yahoo.com'], maxConnections: 200 });
  });
});
