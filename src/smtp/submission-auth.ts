import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { RookeryError } from '../errors.ts';
import type { AuthLockout } from './auth-lockout.ts';
import { clientKeyOf } from './client-key.ts';
import type { CredentialChecks } from './credential-checks.ts';
import { logSafe, type Rejections } from './rejections.ts';
import type { SessionRegistry } from './session-registry.ts';
import type { SubmissionUser, UserDirectory } from './user-directory.ts';

/**
 * SMTP AUTH (PLAIN and LOGIN): the credentials against the user directory, each attempt counted
 * towards the client's lockout from the moment it starts (and taken back if it succeeds), and
 * checked in its turn among all clients' (credential-checks.ts). The authenticated username
 * becomes session.user, which the relay policy and the header sender check read back with
 * userOf().
 */

export interface SubmissionAuthDeps {
  /** The user directory in effect, asked at each command: a reload replaces it (SubmissionServer.replaceUsers). */
  users: () => UserDirectory;
  lockout: AuthLockout;
  checks: CredentialChecks;
  sessions: SessionRegistry;
  rejections: Rejections;
}

/** smtp-server's onAuth. */
export function authHandler(deps: SubmissionAuthDeps): NonNullable<SMTPServerOptions['onAuth']> {
  const { users, lockout, checks, sessions, rejections } = deps;
  return (auth, session, callback) => {
    const state = sessions.get(session.id);
    const username = auth.username ?? '';
    // Checked again here: the lock may have been reached while this exchange was under way.
    const client = clientKeyOf(session.remoteAddress);
    const attempt = lockout.begin(client);
    if (!attempt) {
      rejections.reject(state, 'AUTH_LOCKED', { username: logSafe(username) });
      return callback(new RookeryError('AUTH_LOCKED'));
    }
    // PLAIN may ask to act as someone else (authzid); Rookery has no such delegation.
    const delegated = auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid;
    const directory = users();
    const checked = checks.run(() => directory.authenticate(username, auth.password ?? ''));
    if (!checked) {
      // Not checked, so not a failure.
      attempt.undo();
      rejections.reject(state, 'AUTH_BUSY', { username: logSafe(username) });
      return callback(new RookeryError('AUTH_BUSY'));
    }
    checked.then(
      (user) => {
        if (!user || delegated) {
          rejections.reject(state, 'AUTH_FAILED', { username: logSafe(username), method: auth.method, locked: lockout.isLocked(client) });
          return callback(new RookeryError('AUTH_FAILED'));
        }
        attempt.undo();
        // With the directory the password was checked against: a reload meanwhile that changed it ends the session.
        directory.recordLogin(session, user.username);
        sessions.authenticated(state);
        state?.log.info({ event: 'smtp.auth.succeeded', username: user.username, method: auth.method }, 'SMTP client authenticated');
        callback(null, { user: user.username });
      },
      (err: Error) => {
        attempt.undo();
        state?.log.error({ event: 'smtp.auth.error', err: err.message }, 'SMTP authentication could not be checked');
        callback(new RookeryError('AUTH_LOCKED', 'Authentication temporarily unavailable'));
      },
    );
  };
}

/**
 * The user the session authenticated as; undefined when it has not, or when a reload removed
 * that user or changed its credentials since (the session is then nobody's).
 */
export function userOf(users: UserDirectory, session: SMTPServerSession): SubmissionUser | undefined {
  return typeof session.user === 'string' ? users.sessionUser(session, session.user) : undefined;
}
