import { describe, expect, it } from 'vitest';
import { bucketKeys, counterKeys, parseStateKey, stateKeys } from '../../src/ippool/pool-keys.ts';
import { decodeRecovery, decodeRestriction, decodeTime } from '../../src/ippool/restrictions.ts';

describe('pool state keys', () => {
  it('reads the keys earlier versions wrote', () => {
    expect(parseStateKey('restrict:127.0.0.2:gmail')).toEqual({ kind: 'restriction', ip: '127.0.0.2', scope: 'gmail' });
    expect(parseStateKey('restrict:192.0.2.10:*')).toEqual({ kind: 'restriction', ip: '192.0.2.10', scope: '*' });
    expect(parseStateKey('recover:127.0.0.2:outlook')).toEqual({ kind: 'recovery', ip: '127.0.0.2', scope: 'outlook' });
    expect(parseStateKey('last-sent:127.0.0.2')).toEqual({ kind: 'last-sent', ip: '127.0.0.2' });
    expect(parseStateKey('warmup-restart:127.0.0.2')).toEqual({ kind: 'warmup-restart', ip: '127.0.0.2' });
  });

  it('keeps an IPv6 address whole: a scope never contains ":"', () => {
    expect(parseStateKey('restrict:2001:db8::5:*')).toEqual({ kind: 'restriction', ip: '2001:db8::5', scope: '*' });
    expect(parseStateKey('recover:::1:gmail')).toEqual({ kind: 'recovery', ip: '::1', scope: 'gmail' });
    expect(parseStateKey('last-sent:2001:db8::5')).toEqual({ kind: 'last-sent', ip: '2001:db8::5' });
  });

  it('makes the keys it parses, byte for byte as before', () => {
    expect(stateKeys.restriction('127.0.0.2', 'gmail')).toBe('restrict:127.0.0.2:gmail');
    expect(stateKeys.recovery('192.0.2.10', '*')).toBe('recover:192.0.2.10:*');
    expect(stateKeys.lastSent('127.0.0.2')).toBe('last-sent:127.0.0.2');
    expect(stateKeys.warmupRestart('127.0.0.2')).toBe('warmup-restart:127.0.0.2');
    for (const ip of ['127.0.0.2', '2001:db8::5', '::1']) {
      expect(parseStateKey(stateKeys.restriction(ip, 'yahoo'))).toEqual({ kind: 'restriction', ip, scope: 'yahoo' });
      expect(parseStateKey(stateKeys.recovery(ip, '*'))).toEqual({ kind: 'recovery', ip, scope: '*' });
      expect(parseStateKey(stateKeys.lastSent(ip))).toEqual({ kind: 'last-sent', ip });
      expect(parseStateKey(stateKeys.warmupRestart(ip))).toEqual({ kind: 'warmup-restart', ip });
    }
  });

  it('refuses keys that are not pool state or name no IP', () => {
    for (const key of ['', 'restrict', 'restrict:127.0.0.2', 'restrict:127.0.0.2:', 'restrict:mta.example:gmail', 'last-sent:', 'last-sent:nonsense', 'gcra:127.0.0.2:gmail']) {
      expect(parseStateKey(key), key).toBeNull();
    }
  });

  it('names rate buckets and counters as before', () => {
    const path = { ip: '127.0.0.2', site: 'mx.dest.test', provider: 'other' };
    expect(bucketKeys.messages(path)).toBe('rate:127.0.0.2:mx.dest.test');
    expect(bucketKeys.connections(path)).toBe('connect:127.0.0.2:mx.dest.test');
    expect(bucketKeys.connections({ ...path, ip: null })).toBe('connect:default:mx.dest.test');
    expect(bucketKeys.throttle('127.0.0.2', '*')).toBe('throttle:127.0.0.2:*');
    expect(bucketKeys.recovery('127.0.0.2', 'gmail')).toBe('recover:127.0.0.2:gmail');
    expect(counterKeys.warmup('127.0.0.2', 'gmail', 'hour')).toBe('warmup:127.0.0.2:gmail:hour');
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
