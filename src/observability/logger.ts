import { pino, type Logger, type DestinationStream } from 'pino';
import { maskCredentials } from './mask-credentials.ts';

export type { Logger };

/** Paths redacted from every log line, wherever a secret could end up. */
const REDACT = [
  'password',
  'pass',
  '*.password',
  '*.pass',
  '*.passwordHash',
  'config.smtp.users[*].password',
  'config.smtp.users[*].passwordHash',
  'config.storage.url',
  'config.redis.url',
  'config.returnPath.secret',
  'config.unsubscribe.secret',
  'config.unsubscribe.previousSecrets',
  'config.api.tokens[*].hash',
  // API bearer tokens, should a request's headers ever be logged.
  'req.headers.authorization',
  '*.headers.authorization',
  'auth.password',
  'credentials',
  // ioredis attaches the failed command to its errors, and AUTH and HELLO carry the password.
  '*.command.args',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      // No fields repeated in every line (pid, host name, service): the journal has them once.
      base: null,
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Paths cannot reach a connection string inside a driver's error message or stack, or one
      // a library echoes under a key of its own (`input`, `url`): the finished line is masked.
      hooks: { streamWrite: maskCredentials },
    },
    // Asynchronous stdout: lines written while a write is in flight go out together in one
    // syscall instead of one each; pino flushes what is pending when the process exits.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
