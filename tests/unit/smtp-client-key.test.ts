import { describe, expect, it } from 'vitest';
import { clientKeyOf } from '../../src/smtp/client-key.ts';

describe('clientKeyOf', () => {
  it('an IPv4 client is its address, also when a dual-stack listener reports it IPv4-mapped', () => {
    expect(clientKeyOf('192.0.2.1')).toBe('192.0.2.1');
    expect(clientKeyOf('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(clientKeyOf('::FFFF:192.0.2.1')).toBe('192.0.2.1');
  });

  it('an IPv6 client is its /64, however the address is written', () => {
    const key = '2001:db8:1:2::/64';
    for (const ip of ['2001:db8:1:2::7', '2001:db8:1:2:3:4:5:6', '2001:0DB8:0001:0002:ffff::', '2001:db8:1:2:3:4:1.2.3.4', '2001:db8:1:2::1%eth0']) {
      expect(clientKeyOf(ip), ip).toBe(key);
    }
    expect(clientKeyOf('2001:db8:1:3::7')).not.toBe(key);
    expect(clientKeyOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKeyOf('::1')).toBe('0:0:0:0::/64');
  });
});
