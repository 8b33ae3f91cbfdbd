import { describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/smtp/password-hash.ts';
import { UserDirectory } from '../../src/smtp/user-directory.ts';

describe('UserDirectory', () => {
  it('authenticates users with a plain password or a hash, and nobody else', async () => {
    const directory = await UserDirectory.create([
      { username: 'app', password: 'app-secret', allowedSenders: ['*@app.example'] },
      { username: 'shop', passwordHash: await hashPassword('shop-secret'), allowedSenders: ['*'] },
    ]);
    expect(await directory.authenticate('app', 'app-secret')).toEqual({ username: 'app', allowedSenders: ['*@app.example'] });
    expect(await directory.authenticate('shop', 'shop-secret')).toEqual({ username: 'shop', allowedSenders: ['*'] });
    expect(await directory.authenticate('app', 'shop-secret')).toBeNull();
    expect(await directory.authenticate('App', 'app-secret')).toBeNull();
    expect(await directory.authenticate('nobody', 'app-secret')).toBeNull();
    expect(directory.get('shop')?.allowedSenders).toEqual(['*']);
    expect(directory.get('nobody')).toBeUndefined();
  });

  it('names the user entry whose hash is malformed', async () => {
    await expect(
      UserDirectory.create([
        { username: 'ok', password: 'x', allowedSenders: ['*'] },
        { username: 'bad', passwordHash: 'scrypt$nope', allowedSenders: ['*'] },
      ]),
    ).rejects.toThrow(/^smtp\.users\[1\]\.passwordHash: /);
  });

  it('refuses duplicate usernames', async () => {
    await expect(
      UserDirectory.create([
        { username: 'a', password: 'x', allowedSenders: ['*'] },
        { username: 'a', password: 'y', allowedSenders: ['*'] },
      ]),
    ).rejects.toThrow(/smtp\.users\[1\]\.username: duplicate/);
  });
});
