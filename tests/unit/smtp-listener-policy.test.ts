import { describe, expect, it } from 'vitest';
import { authAvailable, authOfferFor, disabledCommandsFor, isLoopbackHost } from '../../src/smtp/listener-policy.ts';

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.0.0.9', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST'])(
    '%s is loopback',
    (host) => expect(isLoopbackHost(host)).toBe(true),
  );
  it.each(['0.0.0.0', '::', '128.0.0.1', '10.0.0.1', '::2', '::ffff:10.0.0.1', 'mail.example', 'localhost.example'])(
    '%s is not loopback',
    (host) => expect(isLoopbackHost(host)).toBe(false),
  );
});

describe('AUTH and STARTTLS per listener', () => {
  it('implicit TLS: AUTH always, never STARTTLS', () => {
    const l = { host: '0.0.0.0', tls: 'implicit' as const };
    expect(authOfferFor(l)).toBe('always');
    expect(disabledCommandsFor(l, true)).toEqual(['STARTTLS']);
  });

  it('starttls: STARTTLS first, AUTH only after it', () => {
    const l = { host: '0.0.0.0', tls: 'starttls' as const };
    expect(authOfferFor(l)).toBe('after-starttls');
    expect(authAvailable('after-starttls', false)).toBe(false);
    expect(authAvailable('after-starttls', true)).toBe(true);
    expect(disabledCommandsFor(l, false)).toEqual(['AUTH']);
    expect(disabledCommandsFor(l, true)).toEqual(['STARTTLS']);
  });

  it('no TLS on loopback: plaintext AUTH allowed', () => {
    const l = { host: '127.0.0.1', tls: 'none' as const };
    expect(authOfferFor(l)).toBe('always');
    expect(disabledCommandsFor(l, false)).toEqual(['STARTTLS']);
  });

  it('no TLS on a public address: AUTH not offered at all', () => {
    const l = { host: '0.0.0.0', tls: 'none' as const };
    expect(authOfferFor(l)).toBe('never');
    expect(authAvailable('never', false)).toBe(false);
    expect(disabledCommandsFor(l, false)).toEqual(['STARTTLS', 'AUTH']);
  });
});
