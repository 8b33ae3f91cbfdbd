import { pino, type Logger, type DestinationStream } from 'pino';
import { maskCredentials } from './mask-credentials.ts';
import { redactSecrets } from './redact-secrets.ts';

export type { Logger };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const logger = pino(
    {
      level,
      // No fields repeated in every line (pid, host name, service): the journal has them once.
      base: null,
      // Secret fields (redact-secrets.ts) wherever a line's object holds them.
      // Not pino's `redact`: its wildcard paths ran a redactor over every field of every line.
      formatters: { log: redactSecrets },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Fields cannot reach a connection string inside a driver's error message or stack, or one a
      // library echoes under a key of its own (`input`, `url`): the finished line is masked too.
      hooks: { streamWrite: maskCredentials },
    },
    // Asynchronous stdout: lines written while a write is in flight go out together in one
    // syscall instead of one each; pino flushes what is pending when the process exits.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
  // pino formats a child's bindings without the formatters: they are censored as they are given.
  // Children are made from their parent's prototype, so theirs are too.
  const { child, setBindings } = logger;
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as Logger['child'];
  logger.setBindings = function (this: Logger, bindings) {
    setBindings.call(this, redactSecrets(bindings));
  };
  return logger;
}
