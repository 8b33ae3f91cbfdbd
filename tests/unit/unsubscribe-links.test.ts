import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { isOneClick } from '../../src/feedback/unsubscribe-form.ts';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import { createUnsubscribeLinks } from '../../src/sender-domains/unsubscribe-links.ts';

const SECRET = 'an-unsubscribe-secret-of-at-least-32-characters';
const NOW = Date.UTC(2026, 10, 22, 10, 0, 0);
const ID = '019aab2c3d4e5f60718293';

function problemsOf(raw: ConfigInput, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, 'test', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

function message(from: string, extra = ''): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <user@dest.example>\r\nSubject: hi\r\n${extra}\r\nbody\r\n`);
}

const TENANTS: ConfigInput['tenants'] = {
  acme: { senderDomains: ['acme.example', 'news.acme.example'], unsubscribe: { enabled: true, baseUrl: 'https://u.acme.example/' } },
  quiet: { senderDomains: ['quiet.example'], unsubscribe: { enabled: false } },
  plain: { senderDomains: ['plain.example'] },
};

function links(unsubscribe: ConfigInput['unsubscribe'], tenants: ConfigInput['tenants'] = TENANTS) {
  return createUnsubscribeLinks(parseConfig({ unsubscribe: { secret: SECRET, ...unsubscribe }, tenants }, 'test', {}));
}

/** The fields a message of `tenant` from `from` gets for one recipient, as the queue asks. */
function fields(l: ReturnType<typeof links>, tenant: string | null, from: string, extra = ''): string[] | null {
  const make = l.fieldsFor(tenant, message(from, extra));
  return make && make('jane@dest.example', ID, NOW);
}

describe('unsubscribe configuration', () => {
  it('is off by default and validates a full section', () => {
    const config = parseConfig({}, 'test', {});
    expect(config.unsubscribe).toEqual({
      listen: null,
      secret: null,
      previousSecrets: [],
      enabled: false,
      publicBaseUrl: null,
      mailto: null,
      domains: {},
      rateLimit: { max: 30, window: 60_000 },
      trustedProxies: [],
    });
    const full = parseConfig(
      {
        unsubscribe: {
          listen: { port: 0 },
          secret: SECRET,
          publicBaseUrl: 'https://unsub.example.com/mail/',
          mailto: 'Unsub.Example.COM',
          domains: { 'News.Example.com': { mailto: 'u.example.com' } },
          trustedProxies: ['127.0.0.1', '10.0.0.0/8', '::1'],
        },
      },
      'test',
      {},
    );
    expect(full.unsubscribe).toMatchObject({
      listen: { host: '127.0.0.1', port: 0 },
      publicBaseUrl: 'https://unsub.example.com/mail',
      mailto: 'unsub.example.com',
      domains: { 'news.example.com': { enabled: true, baseUrl: null, mailto: 'u.example.com' } },
    });
  });

  it('names every problem by its path', () => {
    const problems = problemsOf({
      unsubscribe: {
        secret: 'short',
        publicBaseUrl: 'http://unsub.example.com',
        mailto: 'unsub@example.com',
        domains: { 'a.example': { baseUrl: 'https://u.example/?x=1' } },
        trustedProxies: ['10.0.0.0/33'],
        rateLimit: { max: 0 },
        colour: 'blue',
      } as never,
    });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'unsubscribe.colour',
      'unsubscribe.domains.a.example.baseUrl',
      'unsubscribe.mailto',
      'unsubscribe.publicBaseUrl',
      'unsubscribe.rateLimit.max',
      'unsubscribe.secret',
      'unsubscribe.trustedProxies[0]',
    ]);
    expect(problems).toContain('unsubscribe.publicBaseUrl: not an https:// URL without query or fragment (RFC 8058 asks for HTTPS): "http://unsub.example.com"');
    expect(problems).toContain('unsubscribe.mailto: not a domain name of up to 200 characters (give the domain only: the address is unsub+TOKEN@domain): "unsub@example.com"');
    expect(problemsOf({ unsubscribe: { domains: { 'not a domain': {} }, secret: SECRET } })).toEqual([expect.stringMatching(/^unsubscribe\.domains\.not a domain: not a domain name/)]);
    expect(problemsOf({ tenants: { acme: { senderDomains: ['acme.example'], unsubscribe: { enabled: true, colour: 1 } as never } } })).toEqual([
      'tenants.acme.unsubscribe.colour: unknown key',
    ]);
  });

  it('wants a link for every enabled entry and a secret once anything needs one', () => {
    expect(problemsOf({ tenants: { acme: { senderDomains: ['acme.example'], unsubscribe: {} } } })).toEqual([
      'tenants.acme.unsubscribe: enabled, but no link to put in List-Unsubscribe: set baseUrl or mailto here, or unsubscribe.publicBaseUrl or unsubscribe.mailto',
      'unsubscribe.secret: required when tenants.acme.unsubscribe is enabled (or set ROOKERY_UNSUBSCRIBE_SECRET)',
    ]);
    expect(problemsOf({ unsubscribe: { enabled: true, domains: { 'a.example': { enabled: false }, 'b.example': {} } } })).toEqual([
      'unsubscribe: enabled, but no link to put in List-Unsubscribe: set baseUrl or mailto here, or unsubscribe.publicBaseUrl or unsubscribe.mailto',
      'unsubscribe.domains.b.example: enabled, but no link to put in List-Unsubscribe: set baseUrl or mailto here, or unsubscribe.publicBaseUrl or unsubscribe.mailto',
      'unsubscribe.secret: required when unsubscribe is enabled (or set ROOKERY_UNSUBSCRIBE_SECRET)',
    ]);
    expect(problemsOf({ unsubscribe: { listen: { port: 8026 } } })).toEqual(['unsubscribe.secret: required when unsubscribe.listen is set (or set ROOKERY_UNSUBSCRIBE_SECRET)']);
    // The section's defaults fill an entry's missing link; the environment gives the secret.
    const config = parseConfig({ unsubscribe: { mailto: 'unsub.example.com' }, tenants: { acme: { senderDomains: ['acme.example'], unsubscribe: {} } } }, 'test', { ROOKERY_UNSUBSCRIBE_SECRET: SECRET });
    expect(config.unsubscribe.secret).toBe(SECRET);
  });

  it('refuses a listener on the port of another', () => {
    expect(problemsOf({ api: { listen: { port: 8026 } }, unsubscribe: { secret: SECRET, listen: { port: 8026 } } })).toEqual([
      'unsubscribe.listen: 127.0.0.1:8026 overlaps api.listen (127.0.0.1:8026); two sockets cannot listen on one address and port',
    ]);
  });
});

describe('List-Unsubscribe fields', () => {
  it('gives an https link with One-Click and a mailto address, folded between them', () => {
    const l = links({ mailto: 'unsub.example.com' });
    const made = fields(l, 'acme', 'shop@acme.example')!;
    expect(made).toHaveLength(2);
    expect(made[0]).toMatch(/^List-Unsubscribe: <https:\/\/u\.acme\.example\/u\/[A-Za-z0-9_-]+>,\r\n <mailto:unsub\+019aab2c3d4e5f60718293\.[a-z2-7]{16}@unsub\.example\.com\?subject=unsubscribe>$/);
    expect(made[1]).toBe('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    for (const line of made.join('\r\n').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);

    const token = /\/u\/([^>]+)>/.exec(made[0]!)![1]!;
    expect(l.openLink(token)).toEqual({ ok: true, claims: { tenant: 'acme', address: 'jane@dest.example', messageId: ID, issued: NOW } });
    const mailto = /mailto:([^?]+)\?/.exec(made[0]!)![1]!;
    expect(l.mailtoMessage(mailto)).toBe(ID);
    expect(l.mailtoMessage(mailto.replace('unsub.example.com', 'elsewhere.example'))).toBeNull();
  });

  it('takes the From domain entry first, then the tenant, then the section', () => {
    const l = links({
      enabled: true,
      publicBaseUrl: 'https://unsub.example.com',
      domains: { 'news.acme.example': { baseUrl: 'https://news.example.net' }, 'plain.example': { enabled: false } },
    });
    const base = (tenant: string | null, from: string) => /<(https:\/\/[^/]+)\//.exec(fields(l, tenant, from)?.[0] ?? '')?.[1] ?? null;
    expect(base('acme', 'a@news.acme.example')).toBe('https://news.example.net');
    expect(base('acme', 'a@acme.example')).toBe('https://u.acme.example');
    expect(fields(l, 'quiet', 'a@quiet.example')).toBeNull();
    expect(fields(l, 'plain', 'a@plain.example')).toBeNull();
    // A tenant without an entry, and mail of no tenant: the section decides.
    expect(base(null, 'a@other.example')).toBe('https://unsub.example.com');
    expect(base('plain', 'a@sub.plain.example')).toBe('https://unsub.example.com');
    expect(fields(links({}), null, 'a@other.example')).toBeNull();
  });

  it("keeps the application's own List-Unsubscribe (or List-Unsubscribe-Post)", () => {
    const l = links({});
    expect(fields(l, 'acme', 'a@acme.example', 'List-Unsubscribe: <https://app.example/u/1>\r\n')).toBeNull();
    expect(fields(l, 'acme', 'a@acme.example', 'list-unsubscribe-post: List-Unsubscribe=One-Click\r\n')).toBeNull();
    expect(fields(l, 'acme', 'a@acme.example', 'X-List-Unsubscribe: no\r\n')).not.toBeNull();
  });

  it('gives the mailto form alone, without One-Click, where there is no https base', () => {
    const made = fields(links({}, { acme: { senderDomains: ['acme.example'], unsubscribe: { mailto: 'unsub.acme.example' } } }), 'acme', 'a@acme.example')!;
    expect(made).toEqual([expect.stringMatching(/^List-Unsubscribe: <mailto:unsub\+[^>]+@unsub\.acme\.example\?subject=unsubscribe>$/)]);
  });

  it('drops an https link that would make the line longer than 998 octets (an address far beyond RFC 5321)', () => {
    const l = links({ mailto: 'unsub.example.com' });
    const make = l.fieldsFor('acme', message('a@acme.example'))!;
    const made = make(`${'x'.repeat(700)}@dest.example`, ID, NOW);
    expect(made).toEqual([expect.stringMatching(/^List-Unsubscribe: <mailto:/)]);
    expect(make('jane@dest.example', ID, NOW)).toHaveLength(2);
  });

  it('reads back nothing without a secret', () => {
    const l = createUnsubscribeLinks(parseConfig({}, 'test', {}));
    expect(l.fieldsFor('acme', message('a@acme.example'))).toBeNull();
    expect(l.openLink('AAAA')).toEqual({ ok: false, reason: 'forged' });
    expect(l.mailtoMessage(`unsub+${ID}.aaaaaaaaaaaaaaaa@unsub.example.com`)).toBeNull();
  });

  it('adds fields a message parser reads back whole', () => {
    const made = fields(links({ mailto: 'unsub.example.com' }), 'acme', 'a@acme.example')!;
    const { header } = splitHeader(Buffer.from(`${made.join('\r\n')}\r\n\r\n`));
    expect(headerValue(header, 'List-Unsubscribe')).toMatch(/^<https:\/\/[^>]+>,\s*<mailto:[^>]+>$/);
  });
});

describe('one-click POST bodies', () => {
  it('reads List-Unsubscribe=One-Click form-encoded and as multipart/form-data', () => {
    expect(isOneClick('application/x-www-form-urlencoded', 'List-Unsubscribe=One-Click')).toBe(true);
    expect(isOneClick('application/x-www-form-urlencoded; charset=utf-8', 'a=b&List-Unsubscribe=One-Click')).toBe(true);
    const multipart = (boundary: string, name: string, value: string) =>
      `preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n--${boundary}--\r\n`;
    expect(isOneClick('multipart/form-data; boundary=XyZ', multipart('XyZ', 'List-Unsubscribe', 'One-Click'))).toBe(true);
    expect(isOneClick('multipart/form-data; boundary="a b"', multipart('a b', 'List-Unsubscribe', 'One-Click'))).toBe(true);
  });

  it('refuses anything else', () => {
    expect(isOneClick('application/x-www-form-urlencoded', '')).toBe(false);
    expect(isOneClick('application/x-www-form-urlencoded', 'List-Unsubscribe=one-click')).toBe(false);
    expect(isOneClick('application/x-www-form-urlencoded', 'List-Unsubscribe-Post=One-Click')).toBe(false);
    expect(isOneClick('text/plain', 'List-Unsubscribe=One-Click')).toBe(false);
    expect(isOneClick(undefined, 'List-Unsubscribe=One-Click')).toBe(false);
    const part = (disposition: string) => `--B\r\nContent-Disposition: ${disposition}\r\n\r\nOne-Click\r\n--B--\r\n`;
    expect(isOneClick('multipart/form-data; boundary=B', part('form-data; name="List-Unsubscribe"'))).toBe(true);
    expect(isOneClick('multipart/form-data; boundary=B', part('form-data; filename="List-Unsubscribe"'))).toBe(false);
    expect(isOneClick('multipart/form-data; boundary=B', part('form-data; name="Other"'))).toBe(false);
    expect(isOneClick('multipart/form-data', part('form-data; name="List-Unsubscribe"'))).toBe(false);
  });
});
