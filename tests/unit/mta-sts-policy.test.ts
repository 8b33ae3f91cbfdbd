import { describe, expect, it } from 'vitest';
import { mxMatches, parseStsPolicy, parseStsRecord } from '../../src/engine/tls/mta-sts-policy.ts';

describe('MTA-STS TXT record (RFC 8461 3.1)', () => {
  it('reads the id of the one STSv1 record, split strings joined, other records ignored', () => {
    expect(parseStsRecord([['v=STSv1; id=20260101T000000;']])).toEqual({ id: '20260101T000000' });
    expect(parseStsRecord([['v=STSv1; ', 'id=abc123']])).toEqual({ id: 'abc123' });
    expect(parseStsRecord([['some other record'], ['v=STSv1;id=x1;ext=ignored']])).toEqual({ id: 'x1' });
  });

  it('has no policy without exactly one valid STSv1 record', () => {
    expect(parseStsRecord([])).toBeNull();
    expect(parseStsRecord([['v=STSv1; id=a'], ['v=STSv1; id=b']])).toBeNull();
    expect(parseStsRecord([['v=STSv1;']])).toBeNull();
    expect(parseStsRecord([['v=STSv1; id=not-alnum!']])).toBeNull();
    expect(parseStsRecord([[`v=STSv1; id=${'a'.repeat(33)}`]])).toBeNull();
    expect(parseStsRecord([['v=STSv2; id=abc']])).toBeNull();
  });
});

describe('MTA-STS policy body (RFC 8461 3.2)', () => {
  it('parses version, mode, every mx and max_age, LF or CRLF, unknown keys ignored', () => {
    const text = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.Backup.Example.com.\r\nmax_age: 604800\r\nfuture_key: x\r\n';
    expect(parseStsPolicy(text)).toEqual({
      ok: true,
      policy: {
        mode: 'enforce',
        mx: ['mx1.example.com', '*.backup.example.com'],
        maxAge: 604800,
        lines: ['version: STSv1', 'mode: enforce', 'mx: mx1.example.com', 'mx: *.Backup.Example.com.', 'max_age: 604800', 'future_key: x'],
      },
    });
    expect(parseStsPolicy('version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n')).toMatchObject({ ok: true, policy: { mode: 'testing' } });
    // mode none needs no mx.
    expect(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\n')).toMatchObject({ ok: true, policy: { mode: 'none', mx: [] } });
  });

  it('refuses a body that is not a valid policy, saying why', () => {
    const refused = (text: string) => {
      const parsed = parseStsPolicy(text);
      return parsed.ok ? 'accepted' : parsed.reason;
    };
    expect(refused('mode: enforce\nmx: mx.example.com\nmax_age: 1\n')).toMatch(/version is missing/);
    expect(refused('version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n')).toMatch(/not STSv1/);
    expect(refused('version: STSv1\nmode: strict\nmx: mx.example.com\nmax_age: 1\n')).toMatch(/mode is "strict"/);
    expect(refused('version: STSv1\nmode: enforce\nmax_age: 1\n')).toMatch(/no mx line/);
    expect(refused('version: STSv1\nmode: enforce\nmx: mx.example.com\n')).toMatch(/max_age is missing/);
    expect(refused('version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n')).toMatch(/not 0 to 31557600/);
    expect(refused('version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n')).toMatch(/max_age/);
    expect(refused('version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1\n')).toMatch(/not a host name/);
    expect(refused('<html>not found</html>')).toMatch(/not a "key: value" line/);
  });
});

describe('MX patterns (RFC 8461 4.1)', () => {
  const patterns = ['mx1.example.com', '*.backup.example.com'];

  it('matches a name exactly, case and a trailing dot aside', () => {
    expect(mxMatches(patterns, 'mx1.example.com')).toBe(true);
    expect(mxMatches(patterns, 'MX1.Example.COM.')).toBe(true);
    expect(mxMatches(patterns, 'mx2.example.com')).toBe(false);
    expect(mxMatches(patterns, 'example.com')).toBe(false);
  });

  it('matches a wildcard with exactly one more leftmost label', () => {
    expect(mxMatches(patterns, 'a.backup.example.com')).toBe(true);
    expect(mxMatches(patterns, 'a.b.backup.example.com')).toBe(false);
    expect(mxMatches(patterns, 'backup.example.com')).toBe(false);
    expect(mxMatches(patterns, 'abackup.example.com')).toBe(false);
  });
});
