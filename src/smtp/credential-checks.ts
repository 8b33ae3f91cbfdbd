/**
 * A cap on the credential checks in flight. Each check is one scrypt run on libuv's thread pool,
 * which DNS lookups and file access share (four threads unless UV_THREADPOOL_SIZE says otherwise):
 * a flood of AUTH attempts from many addresses (the lockout counts per client, and IPv6 /64s are
 * cheap) could keep every thread busy. So at most `running` checks run at once, leaving the rest
 * of the pool free; up to `waiting` more wait their turn (a burst of logins from applications
 * that start together), and an attempt beyond that is refused for now without being checked.
 */

export interface CredentialCheckLimits {
  running: number;
  waiting: number;
}

/** Half of libuv's default pool runs checks; a few dozen logins may queue behind them. */
const DEFAULT_CREDENTIAL_CHECK_LIMITS: CredentialCheckLimits = { running: 2, waiting: 30 };

export class CredentialChecks {
  private running = 0;
  /** Attempts waiting for a turn, first come first served; each is handed a running turn. */
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limits: CredentialCheckLimits = DEFAULT_CREDENTIAL_CHECK_LIMITS) {}

  /** Runs `check` in its turn; null, without running it, when too many attempts are waiting already. */
  run<T>(check: () => Promise<T>): Promise<T> | null {
    if (this.running < this.limits.running) {
      this.running++;
      return this.execute(check);
    }
    if (this.waiting.length >= this.limits.waiting) return null;
    return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() => this.execute(check));
  }

  private async execute<T>(check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } finally {
      // The turn passes straight to the next waiting attempt, so no newcomer can slip in between.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
