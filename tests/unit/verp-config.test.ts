import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseWith, parseYaml } from '../../src/config/yaml-config.ts';
import { MAX_BOUNCE_DOMAIN_LENGTH, verpConfigSchema } from '../../src/config/return-path-schema.ts';
import { parseVerpAddress, returnPathFor, bounceDomains } from '../../src/sender-domains/verp.ts';

/** The key as the config file holds it, so problems carry their full path. */
const schema = z.strictObject({ returnPath: verpConfigSchema });
const SECRET = 'x'.repeat(32);

function parse(raw: unknown) {
  return parseWith(schema, raw, 'test').returnPath;
}

function problemsOf(raw: unknown): string[] {
  try {
    parse(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

describe('returnPath config', () => {
  it('is off when absent or empty', () => {
    expect(parse({})).toEqual({ secret: null, domains: {} });
    expect(parse({ returnPath: {} })).toEqual({ secret: null, domains: {} });
    expect(parse({ returnPath: { domains: {} } })).toEqual({ secret: null, domains: {} });
  });

  it('defaults a listed domain to bounces.<domain> and lower-cases domains', () => {
    const config = parse(
      parseYaml(
        [
          'returnPath:',
          `  secret: "${SECRET}"`,
          '  domains:',
          '    example.com: {}',
          '    Example.ORG:',
          '    example.net: { domain: RP.Example.NET }',
        ].join('\n'),
        'test.yaml',
      ),
    );
    expect(config).toEqual({
      secret: SECRET,
      domains: {
        'example.com': { domain: 'bounces.example.com' },
        'example.org': { domain: 'bounces.example.org' },
        'example.net': { domain: 'rp.example.net' },
      },
    });
    const ids = { messageId: 'abc', recipientId: 5 };
    const sender = returnPathFor({ ...ids, sender: 'me@EXAMPLE.org', config });
    expect(sender).toMatch(/@bounces\.example\.org$/);
    expect(parseVerpAddress(sender, SECRET, { domains: bounceDomains(config) })).toEqual(ids);
  });

  it('names returnPath.secret when the secret is short, without echoing it', () => {
    const short = 's3cr3t-but-too-short';
    const problems = problemsOf({ returnPath: { secret: short, domains: { 'example.com': {} } } });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^returnPath\.secret: too short: use at least 32/);
    expect(problems.join('\n')).not.toContain(short);
  });

  it('requires a secret once a domain is listed', () => {
    expect(problemsOf({ returnPath: { domains: { 'example.com': {} } } })).toEqual([
      'returnPath.secret: required when returnPath.domains lists a domain (or set ROOKERY_VERP_SECRET)',
    ]);
  });

  it('names the entry of a bad sender or bounce domain', () => {
    const problems = problemsOf({
      returnPath: {
        secret: SECRET,
        domains: {
          'exa mple.com': {},
          'example.com': { domain: 'bounces..example.com' },
          'example.org': { domain: '-bounces.example.org' },
        },
      },
    });
    expect(problems).toContain('returnPath.domains.exa mple.com: not a domain name: "exa mple.com"');
    expect(problems).toContain('returnPath.domains.example.com.domain: not a domain name: "bounces..example.com"');
    expect(problems).toContain('returnPath.domains.example.org.domain: not a domain name: "-bounces.example.org"');
    expect(problems).toHaveLength(3);
    expect(problemsOf({ returnPath: { secret: SECRET, domains: { 'example.net': { domain: 5 } } } })).toEqual([
      'returnPath.domains.example.net.domain: Invalid input: expected string, received number',
    ]);
  });

  it('refuses a bounce domain too long for a 256-octet path, given or by default', () => {
    const label = 'a'.repeat(63);
    const long = [label, label, label, 'example.com'].join('.'); // 203 characters
    expect(long.length).toBeGreaterThan(MAX_BOUNCE_DOMAIN_LENGTH);
    const problems = problemsOf({ returnPath: { secret: SECRET, domains: { 'example.com': { domain: long }, [long]: {} } } });
    expect(problems).toEqual([
      `returnPath.domains.example.com.domain: longer than ${MAX_BOUNCE_DOMAIN_LENGTH} characters: ${long}`,
      `returnPath.domains.${long}: default bounce domain longer than ${MAX_BOUNCE_DOMAIN_LENGTH} characters: bounces.${long}`,
    ]);
    // "bounces." (8) + three labels of 61 + three dots + "co" = 196, the longest that fits.
    const fits = ['a'.repeat(61), 'b'.repeat(61), 'c'.repeat(61), 'co'].join('.');
    expect(`bounces.${fits}`).toHaveLength(MAX_BOUNCE_DOMAIN_LENGTH);
    expect(parse({ returnPath: { secret: SECRET, domains: { [fits]: {} } } }).domains[fits]).toEqual({ domain: `bounces.${fits}` });
    expect(problemsOf({ returnPath: { secret: SECRET, domains: { [`${fits}m`]: {} } } })).toHaveLength(1);
  });

  it('refuses a sender domain listed twice in different case', () => {
    expect(problemsOf({ returnPath: { secret: SECRET, domains: { 'example.com': {}, 'EXAMPLE.com': {} } } })).toEqual([
      'returnPath.domains.EXAMPLE.com: example.com is listed twice (domains are not case-sensitive)',
    ]);
  });

  it('refuses unknown keys', () => {
    expect(problemsOf({ returnPath: { secret: SECRET, prefix: 'bounce' } })).toEqual(['returnPath.prefix: unknown key']);
    expect(problemsOf({ returnPath: { secret: SECRET, domains: { 'example.com': { domian: 'x.example.com' } } } })).toEqual([
      'returnPath.domains.example.com.domian: unknown key',
    ]);
  });
});
