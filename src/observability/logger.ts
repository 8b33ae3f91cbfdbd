import { pino, type Logger, type DestinationStream } from 'pino';

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
  'auth.password',
  'credentials',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'rookery' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Asynchronous stdout: lines written while a write is in flight go out together in one
    // syscall instead of one each; pino flushes what is pending when the process exits.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Strips the password from a connection URL so it can be logged. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '[unparseable url]';
  }
}
