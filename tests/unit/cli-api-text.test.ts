import { describe, expect, it } from 'vitest';
import { route, UsageError, wholeNumber } from '../../src/cli/api/api-command.ts';
import { explanationText, type ExplanationJson } from '../../src/cli/api/explain-text.ts';
import { describeProblem, problemLines, readProblem } from '../../src/cli/api/problem-line.ts';
import { scopeOf, scopeText } from '../../src/cli/api/queue-scope.ts';
import { reloadText } from '../../src/cli/api/reload-text.ts';
import { age, clean, fields, table, utc } from '../../src/cli/api/text-table.ts';

/** The pure pieces of the API commands' output: tables, times, problem lines, route paths, queue scopes, and the answers a test API does not give. */

describe('text tables', () => {
  it('aligns columns, numbers to the right, without trailing spaces', () => {
    const rows = [
      { name: 'dest.test', n: 1650 },
      { name: 'a', n: 3 },
    ];
    expect(table([{ title: 'DOMAIN', value: (r: (typeof rows)[number]) => r.name }, { title: 'COUNT', value: (r) => String(r.n), right: true }], rows)).toBe(
      'DOMAIN     COUNT\ndest.test   1650\na              3\n',
    );
    expect(fields([['ID', 'm-1'], ['Message-ID', null], ['Created', 'now']])).toBe('ID       m-1\nCreated  now\n');
  });

  it('shows times as RFC 3339 UTC to the second, whatever offset they came with', () => {
    expect(utc('2026-11-30T10:02:11.400Z')).toBe('2026-11-30T10:02:11Z');
    expect(utc('2026-11-30T12:02:11+02:00')).toBe('2026-11-30T10:02:11Z');
    expect(utc(null)).toBe('-');
  });

  it('shows ages in their two largest units', () => {
    expect([0, 45, 60, 3_600, 14_380, 86_400, 187_200].map(age)).toEqual(['0s', '45s', '1m', '1h', '3h59m', '1d', '2d4h']);
    expect(age(null)).toBe('-');
  });

  it('never passes a control character to the terminal', () => {
    expect(clean('550 \u001b[31mno\u001b[0m\r\nX-Injected: 1\u009b')).toBe('550 ?[31mno?[0m??X-Injected: 1?');
    expect(table([{ title: 'REPLY', value: (r: string) => r }], ['a\nb'])).toBe('REPLY\na?b\n');
  });
});

describe('problem lines', () => {
  it('print status, code and detail, and each errors[] entry the detail does not already hold', () => {
    const schema = readProblem({ type: 'urn:x', title: 'T', status: 400, code: 'INVALID_REQUEST', detail: 'body.for: bad; body.until: bad', errors: [{ path: 'body.for', message: 'bad' }, { path: 'body.until', message: 'bad' }] });
    expect(describeProblem(schema!)).toBe('400 INVALID_REQUEST: body.for: bad; body.until: bad');
    const extra = readProblem({ status: 422, code: 'X', detail: 'Not taken', errors: [{ path: 'body.to[2]', message: 'not an address' }] });
    expect(describeProblem(extra!)).toBe('422 X: Not taken; body.to[2]: not an address');
    expect(describeProblem(readProblem({ status: 503, code: 'UNAVAILABLE', title: 'Shutting down' })!)).toBe('503 UNAVAILABLE: Shutting down');
    expect(problemLines(extra!)).toEqual(['422 X: Not taken', 'body.to[2]: not an address']);
    expect(problemLines(readProblem({ status: 422, code: 'CONFIG_INVALID', detail: 'a\u001bb', errors: [{ path: 'ips[0]', message: 'x\ny' }] })!)).toEqual(['422 CONFIG_INVALID: a?b', 'ips[0]: x?y']);
    expect(readProblem('<html>Bad gateway</html>')).toBeNull();
    expect(readProblem({ error: 'not a problem document' })).toBeNull();
  });
});

describe('route paths and arguments', () => {
  it('percent-encodes each parameter, leaving : and @ as typed', () => {
    expect(route('v1/ips', '2001:db8::7', 'weight')).toBe('v1/ips/2001:db8::7/weight');
    expect(route('v1/messages', 'a/b?c#d e')).toBe('v1/messages/a%2Fb%3Fc%23d%20e');
    for (const part of ['', '.', '..']) expect(() => route('v1/messages', part)).toThrow(UsageError);
  });

  it('takes whole numbers only', () => {
    expect(wholeNumber('0', 'WEIGHT')).toBe(0);
    expect(wholeNumber('-5', '--top')).toBe(-5);
    for (const text of ['', '1.5', '1e3', 'ten', ' 7']) expect(() => wholeNumber(text, '--limit')).toThrow(UsageError);
  });
});

describe('queue scopes', () => {
  it('take exactly one of --domain, --pool and --ip, and read as the audit log names them', () => {
    expect(scopeOf({ domain: 'gmail.com', json: true })).toEqual({ domain: 'gmail.com' });
    expect(scopeOf({ ip: '203.0.113.7' })).toEqual({ egressIp: '203.0.113.7' });
    expect(() => scopeOf({ reason: 'x' })).toThrow(new UsageError('give one of --domain, --pool, --ip'));
    expect(() => scopeOf({ pool: 'bulk', ip: '203.0.113.7' })).toThrow(new UsageError('give one of --domain, --pool, --ip, not 2'));
    expect([{ domain: 'gmail.com' }, { pool: 'bulk' }, { egressIp: '203.0.113.7' }].map(scopeText)).toEqual(['domain gmail.com', 'pool bulk', 'egress IP 203.0.113.7']);
  });
});

describe('answers the test API does not give', () => {
  it('prints the warnings of a reload, each on its line', () => {
    expect(reloadText({ source: '/etc/rookery/rookery.yaml', changed: ['smtp.users'], restartRequired: [], warnings: ['dkim.domains.example.com: key s2 is not in DNS yet'] })).toBe(
      'Reloaded /etc/rookery/rookery.yaml\nChanged: smtp.users\nWarning: dkim.domains.example.com: key s2 is not in DNS yet\n',
    );
  });

  it('explains a held site, a route of delivery.routes, and an egress of no configured IPs', () => {
    const explanation: ExplanationJson = {
      at: '2026-11-30T10:02:11.400Z',
      sender: 'app@example.test',
      recipient: 'postmaster@routed.test',
      tenant: null,
      pool: { name: 'default', rule: 'default', detail: 'pool default: no pool of its user' },
      route: {
        via: 'route',
        site: 'route:127.0.0.1:2525',
        provider: 'other',
        nextHops: [],
        error: null,
        held: { since: '2026-11-30T09:00:00.000Z', until: '2026-11-30T10:30:00.000Z', reason: 'connection refused' },
        tls: { detail: 'required (delivery.tlsPolicies); MTA-STS does not apply to a configured route' },
      },
      egress: { pool: 'default', site: 'route:127.0.0.1:2525', provider: 'other', defaultEgress: true, ips: [] },
      dkim: { detail: 'unsigned' },
      returnPath: { address: 'app@example.test', detail: 'the sender as given: no returnPath.domains entry' },
    };
    const text = explanationText(explanation);
    expect(text).toContain('Route        a configured route (delivery.routes) to site route:127.0.0.1:2525, provider other\n');
    expect(text).toContain('TLS          required (delivery.tlsPolicies); MTA-STS does not apply to a configured route\n');
    expect(text).toContain('Held         since 2026-11-30T09:00:00Z until 2026-11-30T10:30:00Z: connection refused (its mail waits for a probe to get through)\n');
    expect(text).toMatch(/\n\nEgress IPs of pool default toward route:127\.0\.0\.1:2525 \(provider other\):\nnone configured: the system's default source address sends, unchecked\.\n$/);
  });
});
