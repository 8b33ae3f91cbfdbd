import { describe, expect, it } from 'vitest';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../src/smtp/password-hash.ts';

describe('password hashes', () => {
  it('hashes to scrypt$N$r$p$salt$hash and verifies only the right password', async () => {
    const encoded = await hashPassword('correct horse');
    expect(encoded).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(await verifyPassword('correct horse', encoded)).toBe(true);
    expect(await verifyPassword('correct horse ', encoded)).toBe(false);
    expect(await verifyPassword('', encoded)).toBe(false);
  });

  it('uses a fresh salt each time', async () => {
    const a = await hashPassword('same');
    const b = await hashPassword('same');
    expect(a).not.toBe(b);
    expect(await verifyPassword('same', b)).toBe(true);
  });

  it('verifies hashes made with other parameters (the cost travels with the hash)', async () => {
    const encoded = await hashPassword('pw', { N: 1024, r: 4, p: 2 });
    expect(encoded.startsWith('scrypt$1024$4$2$')).toBe(true);
    expect(await verifyPassword('pw', encoded)).toBe(true);
    expect(await verifyPassword('pW', encoded)).toBe(false);
  });

  it('treats canonically equal Unicode spellings as the same password', async () => {
    const encoded = await hashPassword('caf\u00e9');
    expect(await verifyPassword('cafe\u0301', encoded)).toBe(true);
  });

  it('refuses malformed hashes with a message that says what is wrong', async () => {
    const good = await hashPassword('x');
    const [, , , , salt, hash] = good.split('$');
    expect(() => parsePasswordHash('bcrypt$2b$10$abc')).toThrow(/scrypt\$N\$r\$p\$salt\$hash/);
    expect(() => parsePasswordHash(`scrypt$1000$8$1$${salt}$${hash}`)).toThrow(/power of two/);
    expect(() => parsePasswordHash(`scrypt$1048576$8$1$${salt}$${hash}`)).toThrow(/256 MiB/);
    expect(() => parsePasswordHash(`scrypt$16384$8$0$${salt}$${hash}`)).toThrow(/p between/);
    expect(() => parsePasswordHash(`scrypt$16384$8$1$!!$${hash}`)).toThrow(/base64/);
    expect(() => parsePasswordHash(`scrypt$16384$8$1$${salt}$AAAA`)).toThrow(/at least 16 bytes/);
    await expect(verifyPassword('x', 'scrypt$x')).rejects.toThrow();
  });
});
