import type { Clock } from '../clock.ts';
import type { ClientKey } from './client-key.ts';

/** Above this many tracked clients, stale entries are swept so a wide attack cannot grow the map forever. */
const SWEEP_THRESHOLD = 10_000;

/** An AUTH attempt under way, counted as a failure until it is known to have succeeded. */
export interface AuthAttempt {
  /** The credentials were right (or could not be checked): the attempt stops counting. */
  undo(): void;
}

/**
 * Failed AUTH attempts per client (see client-key.ts) over a sliding window. Once a client has
 * `max` failures within `windowMs`, it is locked until the oldest of them leaves the window.
 * An attempt counts as a failure from the moment it starts, so parallel attempts on many
 * connections cannot all be checked before the first failure is known; a success undoes only
 * its own attempt, so one valid account does not reset an attacker's budget. Attempts refused
 * while locked are not failures (the credentials were never checked).
 */
export class AuthLockout {
  private readonly failures = new Map<ClientKey, number[]>();

  constructor(private readonly options: { max: number; windowMs: number; clock: Clock }) {}

  isLocked(client: ClientKey): boolean {
    return this.recent(client).length >= this.options.max;
  }

  /** Starts an attempt, counted as a failure now; null when the client is locked. */
  begin(client: ClientKey): AuthAttempt | null {
    const times = this.recent(client);
    if (times.length >= this.options.max) return null;
    const at = this.options.clock.now();
    times.push(at);
    this.failures.set(client, times);
    if (this.failures.size > SWEEP_THRESHOLD) this.sweep();
    let undone = false;
    return {
      undo: () => {
        if (undone) return;
        undone = true;
        const current = this.failures.get(client);
        const index = current?.indexOf(at) ?? -1;
        if (index >= 0) current!.splice(index, 1);
      },
    };
  }

  /** Number of clients tracked (for tests and diagnostics). */
  get size(): number {
    return this.failures.size;
  }

  private recent(client: ClientKey): number[] {
    const cutoff = this.options.clock.now() - this.options.windowMs;
    const times = (this.failures.get(client) ?? []).filter((t) => t > cutoff);
    if (times.length === 0) this.failures.delete(client);
    return times;
  }

  private sweep(): void {
    const cutoff = this.options.clock.now() - this.options.windowMs;
    for (const [client, times] of this.failures) {
      if (times.every((t) => t <= cutoff)) this.failures.delete(client);
    }
  }
}
