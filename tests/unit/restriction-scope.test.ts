import { describe, expect, it } from 'vitest';
import { FALLBACK_PROVIDER } from '../../src/ippool/providers.ts';
import { ALL_PROVIDERS, describeScope, providerScope, rampScope, reactionScope, scopeLabel, scopeProvider, scopesOf, siteScope } from '../../src/ippool/restriction-scope.ts';

const GMAIL = { provider: 'gmail', site: 'alt1.aspmx.l.google.com,aspmx.l.google.com' };
const TINY = { provider: FALLBACK_PROVIDER, site: 'mx.tiny-isp.example' };

describe('the scope of a reaction', () => {
  it('is the provider for a named provider, whichever of its sites replied', () => {
    expect(reactionScope(GMAIL)).toEqual({ kind: 'provider', provider: 'gmail' });
    expect(reactionScope({ ...GMAIL, site: 'gmail-smtp-in.l.google.com' })).toEqual(reactionScope(GMAIL));
  });

  it('is the site that replied for the fallback provider', () => {
    expect(FALLBACK_PROVIDER).toBe('other');
    expect(reactionScope(TINY)).toEqual({ kind: 'site', provider: 'other', site: 'mx.tiny-isp.example' });
    expect(reactionScope({ ...TINY, site: 'mx.other-isp.example' })).not.toEqual(reactionScope(TINY));
  });
});

describe('the scopes that bind a delivery', () => {
  it('for a named provider: every provider, then the provider', () => {
    expect(scopesOf(GMAIL)).toEqual([ALL_PROVIDERS, providerScope('gmail')]);
  });

  it('for the fallback provider: every provider, all of it (as written before per-site scopes), then the site', () => {
    expect(scopesOf(TINY)).toEqual([ALL_PROVIDERS, providerScope('other'), siteScope('other', 'mx.tiny-isp.example')]);
  });
});

describe('the ramp back after a restriction', () => {
  it("paces a site's own traffic after a site's restriction, else the provider's", () => {
    expect(rampScope(siteScope('other', 'mx.tiny-isp.example'), 'other')).toEqual(siteScope('other', 'mx.tiny-isp.example'));
    expect(rampScope(providerScope('gmail'), 'gmail')).toEqual(providerScope('gmail'));
    expect(rampScope(ALL_PROVIDERS, 'gmail')).toEqual(providerScope('gmail'));
    expect(rampScope(ALL_PROVIDERS, 'other')).toEqual(providerScope('other'));
  });

  it("is measured against the scope's provider ('*' = the default shaping)", () => {
    expect(scopeProvider(ALL_PROVIDERS)).toBe('*');
    expect(scopeProvider(providerScope('gmail'))).toBe('gmail');
    expect(scopeProvider(siteScope('other', 'mx.tiny-isp.example'))).toBe('other');
  });
});

describe('scope names', () => {
  it('label metrics and logs: "*", the provider, or <provider>:<site>', () => {
    expect(scopeLabel(ALL_PROVIDERS)).toBe('*');
    expect(scopeLabel(providerScope('gmail'))).toBe('gmail');
    expect(scopeLabel(siteScope('other', 'mx.tiny-isp.example'))).toBe('other:mx.tiny-isp.example');
    expect(scopeLabel(siteScope('other', 'route:[2001:db8::1]:25'))).toBe('other:route:[2001:db8::1]:25');
  });

  it('never give two scopes one label (provider names contain no ":")', () => {
    const scopes = [ALL_PROVIDERS, providerScope('other'), providerScope('gmail'), siteScope('other', 'gmail'), siteScope('other', '*'), siteScope('other', 'other'), siteScope('other', 'a:b')];
    expect(new Set(scopes.map(scopeLabel)).size).toBe(scopes.length);
  });

  it('read well in a log message', () => {
    expect(describeScope(ALL_PROVIDERS)).toBe('every provider');
    expect(describeScope(providerScope('gmail'))).toBe('gmail');
    expect(describeScope(siteScope('other', 'mx.tiny-isp.example'))).toBe('site mx.tiny-isp.example (other)');
  });
});
