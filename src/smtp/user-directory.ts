import { randomBytes } from 'node:crypto';
import type { UserConfig } from '../config/schema.ts';
import { hashPassword, parsePasswordHash, verifyPassword, type ScryptHash } from './password-hash.ts';

/** A user that may submit mail, as the relay policy sees it. */
export interface SubmissionUser {
  username: string;
  /** "*", "*@domain" or exact addresses; see relay-policy.ts. */
  allowedSenders: readonly string[];
}

/**
 * The submission users from config.smtp.users. Plain `password` entries are hashed once here so
 * that no clear password is kept in memory past start-up and every check costs one scrypt.
 */
export class UserDirectory {
  private constructor(
    private readonly users: ReadonlyMap<string, SubmissionUser & { hash: ScryptHash }>,
    /** Checked for unknown users, so they cost the same as a known user with a wrong password. */
    private readonly dummy: ScryptHash,
  ) {}

  static async create(users: readonly UserConfig[]): Promise<UserDirectory> {
    const entries = new Map<string, SubmissionUser & { hash: ScryptHash }>();
    for (const [i, user] of users.entries()) {
      if (entries.has(user.username)) throw new Error(`smtp.users[${i}].username: duplicate user ${JSON.stringify(user.username)}`);
      let hash: ScryptHash;
      try {
        hash = parsePasswordHash(user.passwordHash ?? (await hashPassword(user.password ?? '')));
      } catch (err) {
        throw new Error(`smtp.users[${i}].passwordHash: ${(err as Error).message}`);
      }
      entries.set(user.username, { username: user.username, allowedSenders: [...user.allowedSenders], hash });
    }
    const dummy = parsePasswordHash(await hashPassword(randomBytes(16).toString('hex')));
    return new UserDirectory(entries, dummy);
  }

  /** The user when the credentials are right, otherwise null (unknown user or wrong password alike). */
  async authenticate(username: string, password: string): Promise<SubmissionUser | null> {
    const user = this.users.get(username);
    const ok = await verifyPassword(password, user ? user.hash : this.dummy);
    return ok && user ? { username: user.username, allowedSenders: user.allowedSenders } : null;
  }

  get(username: string): SubmissionUser | undefined {
    const user = this.users.get(username);
    return user && { username: user.username, allowedSenders: user.allowedSenders };
  }
}
