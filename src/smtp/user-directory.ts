import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { UserConfig } from '../config/schema.ts';
import { DEFAULT_SCRYPT, hashPassword, parsePasswordHash, verifyPassword, type ScryptHash, type ScryptParams } from './password-hash.ts';

/** A user that may submit mail, as the relay policy sees it. */
export interface SubmissionUser {
  username: string;
  /** "*", "*@domain" or exact addresses; see src/access/allowed-senders.ts. */
  allowedSenders: readonly string[];
  /** The tenant it sends for (tenants:), or null. */
  tenant: string | null;
}

/** A user of config.smtp.users, checked: its passwordHash parsed, or its clear password. */
export interface SmtpUser extends SubmissionUser {
  /** A clear password is hashed when the directory is built, not here: hashing is slow and salted. */
  secret: { hash: ScryptHash } | { password: string };
}

/**
 * Checks config.smtp.users: unique usernames, well-formed password hashes. Each problem names
 * its config path.
 */
export function resolveSmtpUsers(users: readonly UserConfig[]): { users: SmtpUser[]; problems: string[] } {
  const resolved: SmtpUser[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  users.forEach((user, i) => {
    if (seen.has(user.username)) problems.push(`smtp.users[${i}].username: duplicate user ${JSON.stringify(user.username)}`);
    seen.add(user.username);
    let secret: SmtpUser['secret'];
    try {
      secret = user.passwordHash === undefined ? { password: user.password ?? '' } : { hash: parsePasswordHash(user.passwordHash) };
    } catch (err) {
      problems.push(`smtp.users[${i}].passwordHash: ${(err as Error).message}`);
      return;
    }
    resolved.push({ username: user.username, allowedSenders: [...user.allowedSenders], tenant: user.tenant ?? null, secret });
  });
  return { users: resolved, problems };
}

/**
 * The credentials a user logs in with, as one value: the same object while the user's configured
 * password or hash stays the same (across reloads too), a new one when it changes.
 */
interface Credential {
  readonly secret: SmtpUser['secret'];
}

interface Entry extends SubmissionUser {
  hash: ScryptHash;
  credential: Credential;
}

/**
 * The submission users. Plain `password` entries are hashed once here, at the cost of the
 * costliest configured hash, so that every check costs one scrypt at the cost an unknown name is
 * checked with: a clear-password user cannot be told from an unknown name by timing.
 *
 * It also remembers which credentials each SMTP session logged in with (recordLogin), over every
 * directory a reload makes from this one: a session is its user's only while that user's
 * credentials are the ones it logged in with, so a password change ends what an old password
 * opened, as removing the user does.
 */
export class UserDirectory {
  private constructor(
    private readonly users: ReadonlyMap<string, Entry>,
    /** Checked for unknown users, so they cost the same as a known user with a wrong password. */
    private readonly dummy: ScryptHash,
    /** Session (smtp-server's object, one per connection) -> the credentials it logged in with. */
    private readonly logins: WeakMap<object, Credential>,
  ) {}

  /** The directory of `users`; after a reload, made from the one in effect (`previous`), whose sessions it takes over. */
  static async create(users: readonly SmtpUser[], previous?: UserDirectory): Promise<UserDirectory> {
    const params = costliest(users.flatMap(({ secret }) => ('hash' in secret ? [secret.hash] : [])));
    const entries = new Map<string, Entry>();
    for (const { username, allowedSenders, tenant, secret } of users) {
      const hash = 'hash' in secret ? secret.hash : parsePasswordHash(await hashPassword(secret.password, params));
      const before = previous?.users.get(username)?.credential;
      const credential = before && isDeepStrictEqual(before.secret, secret) ? before : { secret };
      entries.set(username, { username, allowedSenders, tenant, hash, credential });
    }
    const dummy = parsePasswordHash(await hashPassword(randomBytes(16).toString('hex'), params));
    return new UserDirectory(entries, dummy, previous?.logins ?? new WeakMap());
  }

  /** The user when the credentials are right, otherwise null (unknown user or wrong password alike). */
  async authenticate(username: string, password: string): Promise<SubmissionUser | null> {
    const user = this.users.get(username);
    const ok = await verifyPassword(password, user ? user.hash : this.dummy);
    return ok && user ? publicPart(user) : null;
  }

  get(username: string): SubmissionUser | undefined {
    const user = this.users.get(username);
    return user && publicPart(user);
  }

  /** `session` has just logged in as `username`, with the credentials this directory holds. */
  recordLogin(session: object, username: string): void {
    const user = this.users.get(username);
    if (user) this.logins.set(session, user.credential);
  }

  /** The user `session` logged in as, while that user exists with the credentials it logged in with. */
  sessionUser(session: object, username: string): SubmissionUser | undefined {
    const user = this.users.get(username);
    return user && this.logins.get(session) === user.credential ? publicPart(user) : undefined;
  }

  /** The scrypt parameters a login as `username` is checked with (an unknown name: the dummy's). */
  checkParams(username: string): ScryptParams {
    const { N, r, p } = this.users.get(username)?.hash ?? this.dummy;
    return { N, r, p };
  }
}

/** A user without its hash. */
function publicPart(user: SubmissionUser): SubmissionUser {
  return { username: user.username, allowedSenders: user.allowedSenders, tenant: user.tenant };
}

/**
 * The parameters of the hash that costs most to check (time grows with N * r * p), or the default
 * with no hashes. An unknown username is checked with them, and clear passwords are hashed with them. When users' costs differ, no single
 * choice makes every user look like an unknown name; the costliest is the one that holds up: a
 * cost is raised for new hashes and old ones are replaced, so the costliest is where every user
 * ends up, and a probe of unknown names is never answered faster than a real user's wrong password.
 */
function costliest(hashes: readonly ScryptParams[]): ScryptParams {
  if (hashes.length === 0) return DEFAULT_SCRYPT;
  const work = ({ N, r, p }: ScryptParams) => N * r * p;
  const { N, r, p } = hashes.reduce((best, hash) => (work(hash) > work(best) ? hash : best));
  return { N, r, p };
}
