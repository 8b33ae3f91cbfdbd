import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken, TokenDirectory } from '../../src/access/api-token.ts';
import { parseConfig } from '../../src/config/load.ts';
import { bearerToken } from '../../src/control-api/v1/auth.ts';
import { validationErrors } from '../../src/control-api/error-handler.ts';

const problemsOf = (raw: unknown): string[] => {
  try {
    parseConfig(raw, 'test', {});
  } catch (err) {
    return (err as { problems: string[] }).problems;
  }
  return [];
};

describe('API tokens', () => {
  it('are 32 random bytes behind a prefix, stored as their SHA-256', () => {
    const token = generateApiToken();
    expect(token).toMatch(/^rk_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token.slice(3), 'base64url')).toHaveLength(32);
    expect(generateApiToken()).not.toBe(token);
    expect(hashApiToken(token)).toBe(`sha256:${createHash('sha256').update(token).digest('hex')}`);
  });

  it('authenticate to the entry whose hash they have, and to nothing else', () => {
    const [a, b] = [generateApiToken(), generateApiToken()];
    const directory = new TokenDirectory([
      { name: 'a', role: 'admin', hash: hashApiToken(a) },
      { name: 'b', role: 'sender', tenant: 'acme', hash: hashApiToken(b), allowedSenders: ['*@acme.example'] },
    ]);
    expect(directory.authenticate(a)).toEqual({ name: 'a', role: 'admin', tenant: null, allowedSenders: null });
    expect(directory.authenticate(b)).toEqual({ name: 'b', role: 'sender', tenant: 'acme', allowedSenders: ['*@acme.example'] });
    expect(directory.authenticate(`${a}x`)).toBeNull();
    expect(directory.authenticate(hashApiToken(a))).toBeNull();
    expect(new TokenDirectory([]).authenticate(a)).toBeNull();
  });

  it('are read from a Bearer authorization header only', () => {
    expect(bearerToken('Bearer rk_abc-_.~+/=')).toBe('rk_abc-_.~+/=');
    expect(bearerToken('bearer rk_abc')).toBe('rk_abc');
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic YTpi', 'Bearer a b', 'Bearer a,b']) expect(bearerToken(header), String(header)).toBeNull();
  });
});

describe('api.tokens in the config', () => {
  const hash = (c: string) => `sha256:${c.repeat(64)}`;

  it('defaults to no tokens and a lockout after 10 failures in 15 minutes', () => {
    expect(parseConfig({}, 'test', {}).api).toMatchObject({ tokens: [], authFailures: { max: 10, window: 900_000 } });
  });

  it('accepts tokens with a role and an optional tenant', () => {
    const config = parseConfig({ api: { tokens: [{ name: 'ops', role: 'operator', hash: hash('a') }, { name: 'app', role: 'sender', tenant: 'acme', hash: hash('b') }] } }, 'test', {});
    expect(config.api.tokens.map((t) => [t.name, t.role, t.tenant])).toEqual([
      ['ops', 'operator', undefined],
      ['app', 'sender', 'acme'],
    ]);
  });

  it('names the path of every problem, duplicates included', () => {
    expect(
      problemsOf({
        api: {
          tokens: [
            { name: 'ops', role: 'operator', hash: hash('a') },
            { name: 'ops', role: 'viewer', hash: hash('a') },
            { name: 'bad name', role: 'viewer', hash: hash('c'), tenant: '' },
            { name: 'x', role: 'viewer', hash: hash('A') },
            { name: 'y', role: 'viewer' },
          ],
          authFailures: { max: 0 },
        },
      }),
    ).toEqual([
      'api.tokens[2].name: not a name (up to 64 letters, digits, ".", "-" and "_", starting with a letter or digit)',
      'api.tokens[2].tenant: not a name (up to 64 letters, digits, ".", "-" and "_", starting with a letter or digit)',
      'api.tokens[3].hash: not a token hash: "sha256:" and 64 hex digits (make one with `rookery token create`)',
      'api.tokens[4].hash: Invalid input: expected string, received undefined',
      'api.tokens[1].name: duplicate token name "ops" (also api.tokens[0])',
      'api.tokens[1].hash: the same token as api.tokens[0]; give each token its own',
      'api.authFailures.max: Too small: expected number to be >0',
    ]);
  });
});

describe('validation errors of a request', () => {
  it('name the place in the request, with unknown and missing properties spelled out', () => {
    expect(
      validationErrors({
        validationContext: 'body',
        validation: [
          { keyword: 'type', instancePath: '/to/2', schemaPath: '', params: {}, message: 'must be string' },
          { keyword: 'additionalProperties', instancePath: '', schemaPath: '', params: { additionalProperty: 'bogus' }, message: 'must NOT have additional properties' },
          { keyword: 'required', instancePath: '/headers', schemaPath: '', params: { missingProperty: 'name' }, message: "must have required property 'name'" },
          { keyword: 'minimum', instancePath: '/a~1b', schemaPath: '', params: {}, message: 'must be >= 1' },
        ],
      }),
    ).toEqual([
      { path: 'body.to[2]', message: 'must be string' },
      { path: 'body.bogus', message: 'unknown property' },
      { path: 'body.headers.name', message: 'required' },
      { path: 'body.a/b', message: 'must be >= 1' },
    ]);
  });
});
