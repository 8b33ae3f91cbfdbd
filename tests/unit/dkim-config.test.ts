import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseWith } from '../../src/config/yaml-config.ts';
import { dkimConfigSchema } from '../../src/config/dkim-schema.ts';

// Wired under `dkim:` as the main schema will have it, so the paths in errors are the real ones.
const schema = z.strictObject({ dkim: dkimConfigSchema });
const parse = (dkim: unknown) => parseWith(schema, dkim === undefined ? {} : { dkim }, 'rookery.yaml').dkim;

function problems(dkim: unknown): string[] {
  try {
    parse(dkim);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const key = (selector: string) => ({ selector, privateKey: `/etc/rookery/dkim/${selector}.pem` });

describe('dkim config', () => {
  it('signs nothing when absent or empty', () => {
    expect(parse(undefined)).toEqual({ domains: {}, fallback: null, expiry: null, workers: null });
    expect(parse({})).toEqual({ domains: {}, fallback: null, expiry: null, workers: null });
  });

  it('reads domains, keys in order, subdomains, fallback, expiry and signing threads', () => {
    const config = parse({
      domains: {
        'Example.COM': { keys: [key('s2026a'), key('ed2026')], subdomains: true },
        'mail.example.net': { keys: [key('s1')] },
      },
      fallback: 'MAIL.example.net',
      expiry: '7d',
      workers: 3,
    });
    expect(config).toEqual({
      domains: {
        'example.com': { keys: [key('s2026a'), key('ed2026')], subdomains: true },
        'mail.example.net': { keys: [key('s1')], subdomains: false },
      },
      fallback: 'mail.example.net',
      expiry: 7 * 86_400_000,
      workers: 3,
    });
  });

  it('keeps internationalised domains as A-labels', () => {
    expect(Object.keys(parse({ domains: { 'bücher.example': { keys: [key('s1')] } } }).domains)).toEqual(['xn--bcher-kva.example']);
  });

  it('names the path of each problem', () => {
    expect(problems({ domains: { 'example.com': { keys: [key('s1')] } }, fallback: 'other.example' })).toEqual([
      'dkim.fallback: not a configured dkim domain: "other.example"',
    ]);
    expect(problems({ domains: { 'example.com': { keys: [] } } })).toEqual(['dkim.domains.example.com.keys: list at least one key']);
    expect(problems({ domains: { 'example.com': { keys: [{ selector: 'bad selector', privateKey: '/k.pem' }] } } })).toEqual([
      'dkim.domains.example.com.keys[0].selector: not a selector (DNS labels: letters, digits, hyphens)',
    ]);
    expect(problems({ domains: { 'example.com': { keys: [key('s1'), key('S1')] } } })).toEqual([
      'dkim.domains.example.com.keys[1].selector: selector S1 is listed twice',
    ]);
    expect(problems({ domains: { 'example.com': { keys: [key('s1')] }, 'EXAMPLE.com': { keys: [key('s2')] } } })).toEqual([
      'dkim.domains.EXAMPLE.com: example.com is listed twice (domains are not case-sensitive)',
    ]);
    expect(problems({ domains: { localhost: { keys: [key('s1')] } } })).toEqual(['dkim.domains.localhost: not a domain name: "localhost"']);
    expect(problems({ domains: { 'example.com': { keys: [{ ...key('s1'), algorithm: 'rsa-sha256' }] } } })).toEqual([
      'dkim.domains.example.com.keys[0].algorithm: unknown key',
    ]);
    expect(problems({ expiry: '0s' })[0]).toMatch(/^dkim\.expiry: not a duration above zero/);
    expect(problems({ workers: -1 })[0]).toMatch(/^dkim\.workers: /);
    expect(problems({ workers: 1.5 })[0]).toMatch(/^dkim\.workers: /);
    expect(problems({ selector: 'x' })).toEqual(['dkim.selector: unknown key']);
  });
});
