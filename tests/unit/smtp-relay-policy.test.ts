import { describe, expect, it } from 'vitest';
import { senderAllowed } from '../../src/access/allowed-senders.ts';
import { checkMailFrom, checkRcptTo, NetworkMatcher } from '../../src/smtp/relay-policy.ts';

describe('senderAllowed', () => {
  it('"*" allows any sender, including the null sender', () => {
    expect(senderAllowed(['*'], 'anyone@anywhere.example')).toBe(true);
    expect(senderAllowed(['*'], '')).toBe(true);
  });

  it('"*@domain" allows any local part at exactly that domain, domain case-insensitive', () => {
    const patterns = ['*@Shop.Example'];
    expect(senderAllowed(patterns, 'orders@shop.example')).toBe(true);
    expect(senderAllowed(patterns, 'Orders@SHOP.EXAMPLE')).toBe(true);
    expect(senderAllowed(patterns, 'orders@mail.shop.example')).toBe(false);
    expect(senderAllowed(patterns, 'orders@shop.example.evil')).toBe(false);
    expect(senderAllowed(patterns, 'orders@othershop.example')).toBe(false);
  });

  it('an exact address matches its local part exactly and its domain in any case', () => {
    const patterns = ['noreply@app.example'];
    expect(senderAllowed(patterns, 'noreply@APP.example')).toBe(true);
    expect(senderAllowed(patterns, 'NoReply@app.example')).toBe(false);
    expect(senderAllowed(patterns, 'other@app.example')).toBe(false);
  });

  it('the null sender needs "*"', () => {
    expect(senderAllowed(['*@app.example', 'a@app.example'], '')).toBe(false);
  });

  it('nothing matches an empty list or a malformed sender', () => {
    expect(senderAllowed([], 'a@app.example')).toBe(false);
    expect(senderAllowed(['*@app.example'], 'app.example')).toBe(false);
    expect(senderAllowed(['*@app.example'], '@app.example')).toBe(false);
  });
});

describe('relay decisions', () => {
  const user = { allowedSenders: ['*@app.example'], trusted: false };
  const anonymous = { allowedSenders: null, trusted: false };
  const trusted = { allowedSenders: null, trusted: true };

  it('authenticated: the sender must be allowed (553 at MAIL), recipients are then open', () => {
    expect(checkMailFrom(user, 'a@app.example')).toBeNull();
    expect(checkMailFrom(user, 'a@other.example')).toBe('SENDER_NOT_ALLOWED');
    expect(checkMailFrom(user, '')).toBe('SENDER_NOT_ALLOWED');
    expect(checkRcptTo(user)).toBeNull();
  });

  it('an authenticated user may send with the null sender only with "*"', () => {
    expect(checkMailFrom({ allowedSenders: ['*'], trusted: false }, '')).toBeNull();
  });

  it('trusted network without AUTH: any sender, any recipient', () => {
    expect(checkMailFrom(trusted, 'x@anything.example')).toBeNull();
    expect(checkMailFrom(trusted, '')).toBeNull();
    expect(checkRcptTo(trusted)).toBeNull();
  });

  it('an authenticated session on a trusted network is still held to its allowed senders', () => {
    expect(checkMailFrom({ ...user, trusted: true }, 'x@other.example')).toBe('SENDER_NOT_ALLOWED');
  });

  it('neither authenticated nor trusted: every recipient is refused (no open relay)', () => {
    expect(checkMailFrom(anonymous, 'a@app.example')).toBeNull();
    expect(checkRcptTo(anonymous)).toBe('RELAY_DENIED');
  });
});

describe('NetworkMatcher', () => {
  it('matches IPv4 and IPv6 networks and single addresses', () => {
    const m = new NetworkMatcher(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1/128']);
    expect(m.contains('10.200.3.4')).toBe(true);
    expect(m.contains('11.0.0.1')).toBe(false);
    expect(m.contains('192.168.1.7')).toBe(true);
    expect(m.contains('192.168.1.8')).toBe(false);
    expect(m.contains('2001:db8:ffff::1')).toBe(true);
    expect(m.contains('2001:db9::1')).toBe(false);
    expect(m.contains('::1')).toBe(true);
  });

  it('matches IPv4-mapped IPv6 clients against IPv4 networks, and the reverse', () => {
    expect(new NetworkMatcher(['10.0.0.0/8']).contains('::ffff:10.1.2.3')).toBe(true);
    expect(new NetworkMatcher(['10.0.0.0/8']).contains('::ffff:11.1.2.3')).toBe(false);
    expect(new NetworkMatcher(['::ffff:192.168.0.0/112']).contains('192.168.44.1')).toBe(true);
    expect(new NetworkMatcher(['::ffff:192.168.0.0/112']).contains('192.169.0.1')).toBe(false);
  });

  it('handles /0 and /32 edges and non-addresses', () => {
    expect(new NetworkMatcher(['0.0.0.0/0']).contains('203.0.113.9')).toBe(true);
    expect(new NetworkMatcher(['0.0.0.0/0']).contains('2001:db8::1')).toBe(false);
    expect(new NetworkMatcher(['127.0.0.1/32']).contains('127.0.0.2')).toBe(false);
    expect(new NetworkMatcher(['127.0.0.0/8']).contains('not-an-ip')).toBe(false);
    expect(new NetworkMatcher([]).contains('127.0.0.1')).toBe(false);
  });

  it('refuses malformed networks', () => {
    expect(() => new NetworkMatcher(['10.0.0.0/33'])).toThrow(/CIDR/);
    expect(() => new NetworkMatcher(['example.com/8'])).toThrow(/CIDR/);
  });
});
