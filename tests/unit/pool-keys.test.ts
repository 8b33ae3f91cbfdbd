import { describe, expect, it } from 'vitest';
import { bucketKeys, counterKeys, parseStateKey, stateKeys } from '../../src/ippool/pool-keys.ts';
import { ALL_PROVIDERS, providerScope, siteScope } from '../../src/ippool/restriction-scope.ts';
import {
  decodeRecovery,
  decodeRestriction,
  decodeTime,
  decodeWarmupOverride,
  decodeWeightOverride,
  encodeRestriction,
  encodeWarmupOverride,
  encodeWeightOverride,
  OPERATOR_RULE,
} from '../../src/ippool/restrictions.ts';

const gmail = providerScope('gmail');

describe('pool state keys', () => {
  it('reads the keys earlier versions wrote', () => {
    expect(parseStateKey('restrict:127.0.0.2:gmail')).toEqual({ kind: 'restriction', ip: '127.0.0.2', scope: gmail });
    expect(parseStateKey('restrict:192.0.2.10:*')).toEqual({ kind: 'restriction', ip: '192.0.2.10', scope: ALL_PROVIDERS });
    expect(parseStateKey('recover:127.0.0.2:outlook')).toEqual({ kind: 'recovery', ip: '127.0.0.2', scope: providerScope('outlook') });
    // Written for all of `other` before reactions to it were scoped per site: still a provider scope.
    expect(parseStateKey('restrict:127.0.0.2:other')).toEqual({ kind: 'restriction', ip: '127.0.0.2', scope: providerScope('other') });
    expect(parseStateKey('last-sent:127.0.0.2')).toEqual({ kind: 'last-sent', ip: '127.0.0.2' });
    expect(parseStateKey('warmup-restart:127.0.0.2')).toEqual({ kind: 'warmup-restart', ip: '127.0.0.2' });
  });

  it('keeps an IPv6 address whole: a scope segment never contains ":"', () => {
    expect(parseStateKey('restrict:2001:db8::5:*')).toEqual({ kind: 'restriction', ip: '2001:db8::5', scope: ALL_PROVIDERS });
    expect(parseStateKey('recover:::1:gmail')).toEqual({ kind: 'recovery', ip: '::1', scope: gmail });
    expect(parseStateKey('last-sent:2001:db8::5')).toEqual({ kind: 'last-sent', ip: '2001:db8::5' });
  });

  it('makes the keys it parses, byte for byte as before', () => {
    expect(stateKeys.restriction('127.0.0.2', gmail)).toBe('restrict:127.0.0.2:gmail');
    expect(stateKeys.restriction('127.0.0.2', providerScope('other'))).toBe('restrict:127.0.0.2:other');
    expect(stateKeys.recovery('192.0.2.10', ALL_PROVIDERS)).toBe('recover:192.0.2.10:*');
    expect(stateKeys.restriction('2001:db8::5', ALL_PROVIDERS)).toBe('restrict:2001:db8::5:*');
    expect(stateKeys.lastSent('127.0.0.2')).toBe('last-sent:127.0.0.2');
    expect(stateKeys.warmupRestart('127.0.0.2')).toBe('warmup-restart:127.0.0.2');
    for (const key of ['restrict:127.0.0.2:gmail', 'restrict:192.0.2.10:*', 'recover:127.0.0.2:outlook', 'recover:::1:gmail', 'restrict:2001:db8::5:*', 'restrict:127.0.0.2:other']) {
      const parsed = parseStateKey(key)!;
      expect(parsed.kind === 'restriction' || parsed.kind === 'recovery').toBe(true);
      if (parsed.kind !== 'restriction' && parsed.kind !== 'recovery') continue;
      expect(stateKeys[parsed.kind](parsed.ip, parsed.scope), key).toBe(key);
    }
    for (const ip of ['127.0.0.2', '2001:db8::5', '::1']) {
      expect(parseStateKey(stateKeys.restriction(ip, providerScope('yahoo')))).toEqual({ kind: 'restriction', ip, scope: providerScope('yahoo') });
      expect(parseStateKey(stateKeys.recovery(ip, ALL_PROVIDERS))).toEqual({ kind: 'recovery', ip, scope: ALL_PROVIDERS });
      expect(parseStateKey(stateKeys.lastSent(ip))).toEqual({ kind: 'last-sent', ip });
      expect(parseStateKey(stateKeys.warmupRestart(ip))).toEqual({ kind: 'warmup-restart', ip });
    }
  });

  it('keeps a blocklist reaction under a key per (IP, list), an IPv6 address whole', () => {
    expect(stateKeys.blocklist('192.0.2.10', 'spamhaus-zen')).toBe('blocklist:192.0.2.10:spamhaus-zen');
    for (const ip of ['127.0.0.2', '2001:db8::5', '::1']) expect(parseStateKey(stateKeys.blocklist(ip, 'zen'))).toEqual({ kind: 'blocklist', ip, list: 'zen' });
    expect(parseStateKey('blocklist:127.0.0.2:')).toBeNull();
    expect(parseStateKey('blocklist:not-an-ip:zen')).toBeNull();
  });

  it('writes a site of the fallback provider as <provider>@<site>, with ":" and "%" escaped', () => {
    expect(stateKeys.restriction('127.0.0.2', siteScope('other', 'mx.tiny-isp.example'))).toBe('restrict:127.0.0.2:other@mx.tiny-isp.example');
    expect(stateKeys.recovery('2001:db8::5', siteScope('other', 'mx1.a.example,mx2.a.example'))).toBe('recover:2001:db8::5:other@mx1.a.example,mx2.a.example');
    expect(stateKeys.restriction('127.0.0.2', siteScope('other', 'route:[2001:db8::1]:25'))).toBe('restrict:127.0.0.2:other@route%3A[2001%3Adb8%3A%3A1]%3A25');
    expect(stateKeys.restriction('127.0.0.2', siteScope('other', '100%:x'))).toBe('restrict:127.0.0.2:other@100%25%3Ax');
    expect(bucketKeys.throttle('::1', siteScope('other', '2001:db8::25'))).toBe('throttle:::1:other@2001%3Adb8%3A%3A25');
  });

  it('reads back every site it writes, however awkward, for every kind of IP', () => {
    const sites = [
      'mx.tiny-isp.example',
      'mx1.a.example,mx2.a.example,mx3.a.example',
      '2001:db8::25',
      '[IPv6:2001:db8::25]',
      'route:[2001:db8::1]:2525',
      'route:relay.example:587',
      'user@host.example',
      'a@b@c',
      '%3A',
      '%',
      '%%41:',
      ':',
      '::',
      'mx.example.:',
      'tab\there',
      'nul\u0000byte',
      'ünïcödé.example',
      '*',
      'other',
    ];
    for (const ip of ['127.0.0.2', '2001:db8::5', '::1', '::']) {
      for (const site of sites) {
        const scope = siteScope('other', site);
        for (const kind of ['restriction', 'recovery'] as const) {
          const key = stateKeys[kind](ip, scope);
          // Nothing PostgreSQL text cannot hold, and no ':' once the scope starts.
          expect(key).not.toContain('\u0000');
          expect(key.slice(key.indexOf('@')), key).not.toContain(':');
          expect(parseStateKey(key), key).toEqual({ kind, ip, scope });
        }
      }
    }
  });

  it('refuses keys that are not pool state or name no IP', () => {
    for (const key of ['', 'restrict', 'restrict:127.0.0.2', 'restrict:127.0.0.2:', 'restrict:mta.example:gmail', 'last-sent:', 'last-sent:nonsense', 'gcra:127.0.0.2:gmail']) {
      expect(parseStateKey(key), key).toBeNull();
    }
  });

  it('refuses site segments it would not have written', () => {
    // No site, no provider, an escape it writes differently (lower case, or of a character it leaves alone), a bare '%'.
    for (const segment of ['other@', '@mx.example', 'other@route%3a25', 'other@%41', 'other@100%', 'other@%2']) {
      expect(parseStateKey(`restrict:127.0.0.2:${segment}`), segment).toBeNull();
    }
  });

  it('names rate buckets and counters as before', () => {
    const path = { ip: '127.0.0.2', site: 'mx.dest.test', provider: 'other' };
    expect(bucketKeys.messages(path)).toBe('rate:127.0.0.2:mx.dest.test');
    expect(bucketKeys.connections(path)).toBe('connect:127.0.0.2:mx.dest.test');
    expect(bucketKeys.connections({ ...path, ip: null })).toBe('connect:default:mx.dest.test');
    expect(bucketKeys.throttle('127.0.0.2', ALL_PROVIDERS)).toBe('throttle:127.0.0.2:*');
    expect(bucketKeys.throttle('127.0.0.2', gmail)).toBe('throttle:127.0.0.2:gmail');
    expect(bucketKeys.recovery('127.0.0.2', gmail)).toBe('recover:127.0.0.2:gmail');
    expect(bucketKeys.recovery('127.0.0.2', providerScope('other'))).toBe('recover:127.0.0.2:other');
    expect(counterKeys.warmup('127.0.0.2', 'gmail', 'hour')).toBe('warmup:127.0.0.2:gmail:hour');
  });

  it('names the buckets of a site apart from those of its provider and of other sites', () => {
    expect(bucketKeys.throttle('127.0.0.2', siteScope('other', 'mx.tiny-isp.example'))).toBe('throttle:127.0.0.2:other@mx.tiny-isp.example');
    expect(bucketKeys.recovery('127.0.0.2', siteScope('other', 'mx.tiny-isp.example'))).toBe('recover:127.0.0.2:other@mx.tiny-isp.example');
    // An IPv6 egress address and a site with ':' never run into each other.
    expect(bucketKeys.throttle('2001:db8::5', siteScope('other', '6:x'))).not.toBe(bucketKeys.throttle('2001:db8::5:6', siteScope('other', 'x')));
  });
});

describe('pool state values', () => {
  // As the previous version wrote them.
  const throttle = '{"rule":"gmail-unusual-rate","reason":"421 4.7.28 unusual rate","until":1793527200000,"action":"throttle","ratePerHour":60}';
  const unavailable = '{"action":"suspend","rule":"egress-unavailable","reason":"egress address 192.0.2.10 is not configured on this host (EADDRNOTAVAIL)","until":1793524200000}';
  const recovery = '{"action":{"kind":"throttle","ratePerHour":60},"endedAt":1793527200000}';

  it('reads the values earlier versions wrote', () => {
    expect(decodeRestriction(throttle)).toEqual({ rule: 'gmail-unusual-rate', reason: '421 4.7.28 unusual rate', until: 1793527200000, action: 'throttle', ratePerHour: 60 });
    expect(decodeRestriction(unavailable)).toMatchObject({ action: 'suspend', rule: 'egress-unavailable', until: 1793524200000 });
    expect(decodeRecovery(recovery)).toEqual({ action: { kind: 'throttle', ratePerHour: 60 }, endedAt: 1793527200000 });
    expect(decodeRecovery('{"action":{"kind":"suspend-provider"},"endedAt":1}')).toEqual({ action: { kind: 'suspend-provider' }, endedAt: 1 });
    expect(decodeTime('1793527200000')).toBe(1793527200000);
  });

  it('refuses values of the wrong shape instead of trusting them', () => {
    expect(decodeRestriction('not json')).toBeNull();
    expect(decodeRestriction('{"action":"pause","rule":"r","reason":"x","until":1}')).toBeNull();
    expect(decodeRestriction('{"action":"suspend","rule":"r","reason":"x"}')).toBeNull();
    expect(decodeRecovery('{"action":{"kind":"throttle"},"endedAt":1}')).toBeNull();
    expect(decodeRecovery('{"action":"throttle","endedAt":1}')).toBeNull();
    expect(decodeTime('')).toBeNull();
    expect(decodeTime('soon')).toBeNull();
  });
});

describe("the operator's keys and values", () => {
  it('keeps operator suspensions and weight overrides under keys of their own, read back for every kind of IP', () => {
    expect(stateKeys.operatorSuspension('127.0.0.2', gmail)).toBe('operator-suspend:127.0.0.2:gmail');
    expect(stateKeys.operatorSuspension('2001:db8::5', ALL_PROVIDERS)).toBe('operator-suspend:2001:db8::5:*');
    expect(stateKeys.weightOverride('127.0.0.2')).toBe('weight:127.0.0.2');
    for (const ip of ['127.0.0.2', '2001:db8::5', '::1']) {
      for (const scope of [gmail, ALL_PROVIDERS]) {
        expect(parseStateKey(stateKeys.operatorSuspension(ip, scope))).toEqual({ kind: 'operator-suspension', ip, scope });
      }
      expect(parseStateKey(stateKeys.weightOverride(ip))).toEqual({ kind: 'weight-override', ip });
    }
    // Not an IP after the prefix: no key of ours.
    expect(parseStateKey('weight:pool-a')).toBeNull();
    expect(parseStateKey('operator-suspend:nope:gmail')).toBeNull();
  });

  it("round-trips an operator's suspension (with who set it) and a weight override, and refuses bad shapes", () => {
    const suspension = { action: 'suspend' as const, rule: OPERATOR_RULE, by: 'ops-token', reason: 'blocklisted at spamhaus', until: 1793527200000 };
    expect(decodeRestriction(encodeRestriction(suspension))).toEqual(suspension);
    const override = { weight: 0, by: 'ops-token', reason: 'draining before moving the IP', setAt: 1793520000000 };
    expect(decodeWeightOverride(encodeWeightOverride(override))).toEqual(override);
    expect(decodeWeightOverride('{"weight":-1,"by":"a","reason":"r","setAt":1}')).toBeNull();
    expect(decodeWeightOverride('{"weight":1.5,"by":"a","reason":"r","setAt":1}')).toBeNull();
    expect(decodeWeightOverride('{"weight":10,"reason":"r","setAt":1}')).toBeNull();
    expect(decodeWeightOverride('10')).toBeNull();
  });

  it("keeps an operator's warm-up plan under a key of its own, apart from the idle restart's bare time", () => {
    expect(stateKeys.warmupOverride('127.0.0.2')).toBe('warmup-plan:127.0.0.2');
    for (const ip of ['127.0.0.2', '2001:db8::5']) expect(parseStateKey(stateKeys.warmupOverride(ip))).toEqual({ kind: 'warmup-override', ip });
    expect(parseStateKey(stateKeys.warmupRestart('127.0.0.2'))).toEqual({ kind: 'warmup-restart', ip: '127.0.0.2' });
    expect(parseStateKey('warmup-plan:pool-a')).toBeNull();
    const override = { plan: 'conservative', start: 1793491200000, by: 'ops-token', reason: 'new range', setAt: 1793520000000 };
    expect(decodeWarmupOverride(encodeWarmupOverride(override))).toEqual(override);
    expect(decodeWarmupOverride('{"plan":"","start":1,"by":"a","reason":"r","setAt":1}')).toBeNull();
    expect(decodeWarmupOverride('{"plan":"p","start":1.5,"by":"a","reason":"r","setAt":1}')).toBeNull();
    expect(decodeWarmupOverride('1793491200000')).toBeNull();
  });
});
