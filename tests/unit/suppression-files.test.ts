import { describe, expect, it } from 'vitest';
import { decodeSuppressionCursor, encodeSuppressionCursor, MalformedCursorError } from '../../src/control-api/v1/cursor.ts';
import { csvHeader, exportLine, parseImport, splitCsvLine } from '../../src/control-api/v1/suppression-files.ts';
import { readEntry, tenantOf } from '../../src/control-api/v1/suppression-input.ts';
import type { SuppressionRecord } from '../../src/storage/suppressions.ts';

/** The import and export files of the suppression list, the entry a request gives, and the page cursor. */

const NOW = Date.parse('2026-12-01T10:00:00Z');
const ctx = { tenant: 'acme', now: NOW, source: { kind: 'api' as const, actor: 'ops' }, defaultReason: 'manual' as const, at: 'body' };

describe('CSV lines', () => {
  it('splits RFC 4180 fields: quotes hold commas, "" is a quote, an unclosed quote is no line', () => {
    expect(splitCsvLine('a@x.example,manual,')).toEqual(['a@x.example', 'manual', '']);
    expect(splitCsvLine('"""odd,one""@x.example",complaint')).toEqual(['"odd,one"@x.example', 'complaint']);
    expect(splitCsvLine('"a@x.example"')).toEqual(['a@x.example']);
    expect(splitCsvLine('"a@x.example')).toBeNull();
    expect(splitCsvLine('"a"b@x.example,')).toBeNull();
  });

  it('writes what it reads back: an exported entry imports as the same fields', () => {
    const entry: SuppressionRecord = { tenant: 'acme', address: '"odd,one"@x.example', addressHash: 'ab'.repeat(32), reason: 'complaint', source: null, createdAt: NOW - 5000, expiresAt: NOW + 86_400_000 };
    const csv = csvHeader() + exportLine('csv', entry) + exportLine('csv', { ...entry, address: null });
    expect(csv).toBe(`address,reason,expires_at,created_at,tenant\n"""odd,one""@x.example",complaint,2026-12-02T10:00:00.000Z,2026-12-01T09:59:55.000Z,acme\n`);
    const read = parseImport('csv', csv);
    expect(read).toEqual({ lines: [{ line: 2, fields: { address: '"odd,one"@x.example', reason: 'complaint', expiresAt: '2026-12-02T10:00:00.000Z', createdAt: '2026-12-01T09:59:55.000Z' }, tenant: 'acme' }], problems: [] });
    const ndjson = parseImport('ndjson', exportLine('ndjson', { ...entry, tenant: '' }));
    expect(ndjson).toMatchObject({ lines: [{ line: 1, fields: { address: '"odd,one"@x.example', createdAt: '2026-12-01T09:59:55.000Z' }, tenant: null }], problems: [] });
  });

  it('writes an address a spreadsheet would take for a formula behind a quote mark, and reads it back as it was', () => {
    const entry: SuppressionRecord = { tenant: 'acme', address: '=1+2*cmd|x!A0@x.test', addressHash: 'ab'.repeat(32), reason: 'manual', source: null, createdAt: NOW, expiresAt: null };
    const line = exportLine('csv', entry);
    expect(line.startsWith("'=1+2*cmd|x!A0@x.test,")).toBe(true);
    expect(exportLine('csv', { ...entry, address: '@home@x.test' }).startsWith("'@home@x.test,")).toBe(true);
    const read = parseImport('csv', csvHeader() + line);
    expect(read).toMatchObject({ lines: [{ fields: { address: '=1+2*cmd|x!A0@x.test' } }], problems: [] });
    // A quote mark before anything else is part of the address.
    expect(parseImport('csv', "address\n'bob@x.test\n")).toMatchObject({ lines: [{ fields: { address: "'bob@x.test" } }] });
  });

  it('refuses a file whose header cannot be read, and counts lines from 1 with CRLF or LF', () => {
    expect(parseImport('csv', 'reason\r\nmanual\r\n')).toEqual({ problem: { line: 1, message: 'the header line needs an address column (address,reason,expires_at)' } });
    expect(parseImport('csv', 'address,address\nx@y.example,x@y.example\n')).toEqual({ problem: { line: 1, message: 'a column is named twice' } });
    expect(parseImport('csv', 'Address\r\n\r\nx@y.example\r\ny@y.example,extra\r\n')).toEqual({
      lines: [{ line: 3, fields: { address: 'x@y.example', reason: undefined, expiresAt: undefined, createdAt: undefined }, tenant: undefined }],
      problems: [{ line: 4, message: 'not 1 CSV fields' }],
    });
    expect(parseImport('ndjson', '{"address":"x@y.example","bogus":1}\n[1]\n')).toEqual({
      lines: [],
      problems: [
        { line: 1, message: 'unknown key "bogus"' },
        { line: 2, message: 'not a JSON object' },
      ],
    });
  });
});

describe('an entry as a request gives it', () => {
  it('defaults the reason, takes one expiry, and keeps a createdAt given from the past', () => {
    expect(readEntry({ address: 'a@x.example' }, ctx)).toEqual({ entry: { tenant: 'acme', address: 'a@x.example', reason: 'manual', source: ctx.source, createdAt: NOW, expiresAt: null } });
    expect(readEntry({ address: 'a@x.example', reason: 'unsubscribe', expiresIn: '90d' }, { ...ctx, tenant: '' })).toMatchObject({ entry: { tenant: null, reason: 'unsubscribe', expiresAt: NOW + 90 * 86_400_000 } });
    expect(readEntry({ address: 'a@x.example', createdAt: '2026-11-01T00:00:00Z' }, ctx)).toMatchObject({ entry: { createdAt: Date.parse('2026-11-01T00:00:00Z') } });
    const problem = (fields: Record<string, unknown>) => {
      const read = readEntry(fields, ctx);
      return 'problem' in read ? `${read.problem.path}: ${read.problem.message}` : null;
    };
    expect(problem({ address: 'no at sign' })).toBe('body.address: not an address (local@domain)');
    expect(problem({ address: 'a@x.example', reason: 'bored' })).toBe('body.reason: not a reason: use hard-bounce, complaint, unsubscribe, manual');
    expect(problem({ address: 'a@x.example', expiresAt: '2020-01-01T00:00:00Z' })).toBe('body.expiresAt: not a time (RFC 3339) in the future: "2020-01-01T00:00:00Z"');
    expect(problem({ address: 'a@x.example', expiresIn: '0s' })).toBe('body.expiresIn: not a duration above zero (30m, 12h, 90d): "0s"');
    expect(problem({ address: 'a@x.example', createdAt: '2999-01-01T00:00:00Z' })).toBe('body.createdAt: not a time (RFC 3339) in the past: "2999-01-01T00:00:00Z"');
  });

  it("confines a tenant's token to its tenant; others name one, '' for mail of no tenant", () => {
    const tenants = { get: (name: string) => (name === 'acme' ? ({ name } as never) : undefined), names: () => ['acme'] };
    const staff = { name: 'ops', role: 'operator' as const, tenant: null, allowedSenders: null } as never;
    const acme = { name: 'acme-app', role: 'sender' as const, tenant: 'acme', allowedSenders: null } as never;
    expect(tenantOf(staff, undefined, { path: 'q', otherwise: null })).toEqual({ tenant: null });
    expect(tenantOf(staff, '', { path: 'q', otherwise: null, tenants })).toEqual({ tenant: '' });
    expect(tenantOf(staff, null, { path: 'q', otherwise: null, tenants })).toEqual({ tenant: '' });
    expect(tenantOf(staff, 'beta', { path: 'q', otherwise: null, tenants })).toEqual({ problem: { path: 'q', message: 'unknown tenant "beta"' } });
    expect(tenantOf(staff, 'beta', { path: 'q', otherwise: null })).toEqual({ tenant: 'beta' });
    expect(tenantOf(acme, undefined, { path: 'q', otherwise: null })).toEqual({ tenant: 'acme' });
    expect(tenantOf(acme, 'beta', { path: 'q', otherwise: null })).toMatchObject({ problem: { forbidden: true } });
  });
});

describe('the suppression page cursor', () => {
  it('round-trips, and refuses a cursor of another listing', () => {
    const key = { tenant: 'acme', createdAt: NOW, addressHash: 'cd'.repeat(32) };
    expect(decodeSuppressionCursor(encodeSuppressionCursor(key))).toEqual(key);
    expect(decodeSuppressionCursor(encodeSuppressionCursor({ ...key, tenant: '' }))).toEqual({ ...key, tenant: '' });
    expect(() => decodeSuppressionCursor(Buffer.from(JSON.stringify([NOW, 'id'])).toString('base64url'))).toThrow(MalformedCursorError);
    expect(() => decodeSuppressionCursor(Buffer.from(JSON.stringify(['s', 'bad tenant', NOW, key.addressHash])).toString('base64url'))).toThrow(MalformedCursorError);
  });
});
