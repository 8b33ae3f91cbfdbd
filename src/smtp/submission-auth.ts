import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { RookeryError } from '../errors.ts';
import type { AuthLockout } from './auth-lockout.ts';
import { logSafe, type Rejections } from './rejections.ts';
import type { SessionRegistry } from './session-registry.ts';
import type { SubmissionUser, UserDirectory } from './user-directory.ts';

/**
 * SMTP AUTH (PLAIN and LOGIN): the credentials against the user directory, failed attempts
 * counted towards the client address's lockout. The authenticated username becomes
 * session.user, which the relay policy and the header sender check read back with userOf().
 */

export interface SubmissionAuthDeps {
  users: UserDirectory;
  lockout: AuthLockout;
  sessions: SessionRegistry;
  rejections: Rejections;
}

/** smtp-server's onAuth. */
export function authHandler(deps: SubmissionAuthDeps): NonNullable<SMTPServerOptions['onAuth']> {
  const { users, lockout, sessions, rejections } = deps;
  return (auth, session, callback) => {
    const state = sessions.get(session.id);
    const ip = session.remoteAddress;
    const username = auth.username ?? '';
    // Checked again here: the lock may have been reached while this exchange was under way.
    if (lockout.isLocked(ip)) {
      rejections.reject(state, 'AUTH_LOCKED', { username: logSafe(username) });
      return callback(new RookeryError('AUTH_LOCKED'));
    }
    // PLAIN may ask to act as someone else (authzid); Rookery has no such delegation.
    const delegated = auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid;
    users.authenticate(username, auth.password ?? '').then(
      (user) => {
        if (!user || delegated) {
          lockout.recordFailure(ip);
          rejections.reject(state, 'AUTH_FAILED', { username: logSafe(username), method: auth.method, locked: lockout.isLocked(ip) });
          return callback(new RookeryError('AUTH_FAILED'));
        }
        state?.log.info({ event: 'smtp.auth.succeeded', username: user.username, method: auth.method }, 'SMTP client authenticated');
        callback(null, { user: user.username });
      },
      (err: Error) => {
        state?.log.error({ event: 'smtp.auth.error', err: err.message }, 'SMTP authentication could not be checked');
        callback(new RookeryError('AUTH_LOCKED', 'Authentication temporarily unavailable'));
      },
    );
  };
}

/** The user the session authenticated as; undefined when it has not. */
export function userOf(users: UserDirectory, session: SMTPServerSession): SubmissionUser | undefined {
  return typeof session.user === 'string' ? users.get(session.user) : undefined;
}
