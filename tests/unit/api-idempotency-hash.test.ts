import { describe, expect, it } from 'vitest';
import { canonicalJson, requestHash } from '../../src/control-api/v1/idempotency.ts';

describe('the request hash of an Idempotency-Key', () => {
  const route = 'POST /v1/messages';
  const body = { from: 'a@x.example', to: ['b@y.example'], headers: { 'X-A': '1', 'X-B': '2' } };

  it('reads JSON in canonical form: key order and spacing do not matter, values and array order do', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    const reordered = JSON.parse(JSON.stringify({ headers: { 'X-B': '2', 'X-A': '1' }, to: ['b@y.example'], from: 'a@x.example' }));
    expect(requestHash(route, 'application/json', { query: {}, body: reordered })).toBe(requestHash(route, 'application/json; charset=utf-8', { query: {}, body }));
    expect(requestHash(route, 'application/json', { query: {}, body: { ...body, to: ['b@y.example', 'c@y.example'] } })).not.toBe(requestHash(route, 'application/json', { query: {}, body }));
  });

  it('tells apart the route, the media type, the query and the bytes of a raw message', () => {
    const raw = Buffer.from('Subject: x\r\n\r\nx\r\n');
    const base = requestHash(route, 'message/rfc822', { query: { from: 'a@x.example', to: ['b@y.example'] }, body: raw });
    expect(requestHash('POST /v1/messages/batch', 'message/rfc822', { query: { from: 'a@x.example', to: ['b@y.example'] }, body: raw })).not.toBe(base);
    expect(requestHash(route, 'message/rfc822', { query: { from: 'a@x.example', to: ['c@y.example'] }, body: raw })).not.toBe(base);
    expect(requestHash(route, 'message/rfc822', { query: { from: 'a@x.example', to: ['b@y.example'] }, body: Buffer.from('Subject: y\r\n\r\nx\r\n') })).not.toBe(base);
    expect(requestHash(route, 'message/rfc822', { query: { to: ['b@y.example'], from: 'a@x.example' }, body: raw })).toBe(base);
  });
});
