import { describe, expect, it } from 'vitest';
import { hashPassword, type ScryptParams } from '../../src/smtp/password-hash.ts';
import { resolveSmtpUsers, UserDirectory } from '../../src/smtp/user-directory.ts';

describe('UserDirectory', () => {
  it('authenticates users with a plain password or a hash, and nobody else', async () => {
    const { users, problems } = resolveSmtpUsers([
      { username: 'app', password: 'app-secret', allowedSenders: ['*@app.example'] },
      { username: 'shop', passwordHash: await hashPassword('shop-secret'), allowedSenders: ['*'] },
    ]);
    expect(problems).toEqual([]);
    const directory = await UserDirectory.create(users);
    expect(await directory.authenticate('app', 'app-secret')).toEqual({ username: 'app', allowedSenders: ['*@app.example'], tenant: null });
    expect(await directory.authenticate('shop', 'shop-secret')).toEqual({ username: 'shop', allowedSenders: ['*'], tenant: null });
    expect(await directory.authenticate('app', 'shop-secret')).toBeNull();
    expect(await directory.authenticate('App', 'app-secret')).toBeNull();
    expect(await directory.authenticate('nobody', 'app-secret')).toBeNull();
    expect(directory.get('shop')?.allowedSenders).toEqual(['*']);
    expect(directory.get('nobody')).toBeUndefined();
  });

  it('checks an unknown username, and a clear password, at the cost of the costliest user, so neither can be told from a wrong password', async () => {
    /** A directory of users whose hashes have these costs (null: a plain password). */
    const users = async (costs: Array<ScryptParams | null>) => {
      const entries = [];
      for (const [i, cost] of costs.entries()) {
        const secret = cost ? { passwordHash: await hashPassword('pw', cost) } : { password: 'pw' };
        entries.push({ username: `u${i}`, ...secret, allowedSenders: ['*'] });
      }
      return UserDirectory.create(resolveSmtpUsers(entries).users);
    };
    // One user's hash costs twice the default: the plain password is hashed at that cost too.
    const mixed = await users([null, { N: 32_768, r: 8, p: 1 }]);
    expect(['u0', 'u1', 'unknown'].map((name) => mixed.checkParams(name))).toEqual(Array.from({ length: 3 }, () => ({ N: 32_768, r: 8, p: 1 })));
    // Work grows with N * r * p, whichever parameter raises it.
    expect((await users([{ N: 8_192, r: 8, p: 4 }, { N: 16_384, r: 8, p: 1 }])).checkParams('unknown')).toEqual({ N: 8_192, r: 8, p: 4 });
    // Cheaper than the default: unknown names are not checked at a cost no user has.
    const cheap = await users([{ N: 1_024, r: 8, p: 1 }, null]);
    expect([cheap.checkParams('unknown'), cheap.checkParams('u1')]).toEqual([{ N: 1_024, r: 8, p: 1 }, { N: 1_024, r: 8, p: 1 }]);
    // Plain passwords only: the default cost.
    expect((await users([null])).checkParams('u0')).toEqual({ N: 16_384, r: 8, p: 1 });
    expect((await users([])).checkParams('unknown')).toEqual({ N: 16_384, r: 8, p: 1 });
  });
});

describe('UserDirectory across reloads', () => {
  it("keeps a session its user's while the user's password or hash stays the same, and ends it when it changes or the user goes", async () => {
    const hash = await hashPassword('hashed-secret');
    const directory = (entries: Array<{ username: string; password?: string; passwordHash?: string }>, previous?: UserDirectory) =>
      UserDirectory.create(resolveSmtpUsers(entries.map((entry) => ({ ...entry, allowedSenders: ['*'] }))).users, previous);
    const first = await directory([
      { username: 'clear', password: 'one' },
      { username: 'hashed', passwordHash: hash },
      { username: 'changing', password: 'old' },
      { username: 'leaving', password: 'bye' },
    ]);
    // smtp-server's session objects, one per connection.
    const [clear, hashed, changing, leaving, never] = [{}, {}, {}, {}, {}];
    first.recordLogin(clear, 'clear');
    first.recordLogin(hashed, 'hashed');
    first.recordLogin(changing, 'changing');
    first.recordLogin(leaving, 'leaving');
    expect(first.sessionUser(changing, 'changing')?.username).toBe('changing');
    expect(first.sessionUser(never, 'clear')).toBeUndefined();

    const second = await directory(
      [
        { username: 'clear', password: 'one' },
        { username: 'hashed', passwordHash: hash },
        { username: 'changing', password: 'new' },
      ],
      first,
    );
    expect(second.sessionUser(clear, 'clear')?.username).toBe('clear');
    expect(second.sessionUser(hashed, 'hashed')?.username).toBe('hashed');
    expect(second.sessionUser(changing, 'changing')).toBeUndefined();
    expect(second.sessionUser(leaving, 'leaving')).toBeUndefined();
    // A new login with the new password is the user's again, in this directory and the next.
    second.recordLogin(changing, 'changing');
    expect(second.sessionUser(changing, 'changing')?.username).toBe('changing');
    const third = await directory([{ username: 'changing', password: 'new' }], second);
    expect(third.sessionUser(changing, 'changing')?.username).toBe('changing');
  });
});

describe('resolveSmtpUsers', () => {
  it('parses each hash once, and keeps a clear password for the directory to hash', async () => {
    const hash = await hashPassword('shop-secret');
    const { users } = resolveSmtpUsers([
      { username: 'app', password: 'app-secret', allowedSenders: ['*'] },
      { username: 'shop', passwordHash: hash, allowedSenders: ['*'] },
    ]);
    expect(users[0]!.secret).toEqual({ password: 'app-secret' });
    expect(users[1]!.secret).toMatchObject({ hash: { N: 16_384, r: 8, p: 1 } });
  });

  it('names the user entry whose hash is malformed', () => {
    const { problems } = resolveSmtpUsers([
      { username: 'ok', password: 'x', allowedSenders: ['*'] },
      { username: 'bad', passwordHash: 'scrypt$nope', allowedSenders: ['*'] },
    ]);
    expect(problems).toEqual(['smtp.users[1].passwordHash: password hash must have the form scrypt$N$r$p$salt$hash']);
  });

  it('refuses duplicate usernames', () => {
    const { problems } = resolveSmtpUsers([
      { username: 'a', password: 'x', allowedSenders: ['*'] },
      { username: 'a', password: 'y', allowedSenders: ['*'] },
    ]);
    expect(problems).toEqual(['smtp.users[1].username: duplicate user "a"']);
  });
});
