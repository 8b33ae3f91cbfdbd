/**
 * The connection slots of one egress path: at most `limit()` connections open at once, idle ones
 * kept for reuse for `idleTimeoutMs`, and callers beyond the limit queued in arrival order until
 * a slot or an idle connection frees up. The limit is asked each time a slot could be given, so
 * a lower one (a reload) takes effect as connections are released: above it, a released
 * connection is closed rather than kept or handed on.
 */

export interface Poolable {
  /** False once the connection closed or failed; an idle connection that is not usable is dropped. */
  readonly usable: boolean;
  /** Ends the connection politely (QUIT); must not throw or reject (it is not awaited). */
  close(): void | Promise<void>;
}

/**
 * The right to hold one connection slot. `connection` is an idle connection handed over for
 * reuse, or null: the holder may open one. Every lease is released exactly once.
 */
export interface Lease<C> {
  readonly connection: C | null;
  /** Gives the slot back: pass a reusable connection to keep it idle, or null once it is closed. */
  release(keep: C | null): void;
}

export interface SlotStats {
  /** Connections counted against the limit (idle, busy, or being opened). */
  open: number;
  idle: number;
  /** Callers waiting for a slot. */
  waiting: number;
}

interface IdleEntry<C> {
  connection: C;
  timer: NodeJS.Timeout;
}

export interface ConnectionSlotsOptions {
  /** The most connections open at once, as it is now. */
  limit: () => number;
  idleTimeoutMs: number;
  /** Called each time the last connection is gone and nobody waits (the owner may forget these slots). */
  onEmpty?: () => void;
}

export class ConnectionSlots<C extends Poolable> {
  private open = 0;
  private readonly idle: IdleEntry<C>[] = [];
  private readonly waiters: Array<(lease: Lease<C>) => void> = [];
  private draining = false;

  constructor(private readonly options: ConnectionSlotsOptions) {}

  /**
   * Waits for a slot. An idle connection for which `prefer` holds is handed over first, then any
   * other idle one (the holder may close it and open its own in the slot).
   */
  acquire(prefer: (connection: C) => boolean = () => true): Promise<Lease<C>> {
    while (this.idle.length > 0) {
      const entry = this.takeIdle(prefer);
      clearTimeout(entry.timer);
      if (entry.connection.usable) return Promise.resolve(this.lease(entry.connection));
      void entry.connection.close();
      this.open--;
    }
    if (this.open < this.options.limit()) {
      this.open++;
      return Promise.resolve(this.lease(null));
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Forgets a connection that closed while idle, so its slot is free at once. */
  discard(connection: C): void {
    const index = this.idle.findIndex((e) => e.connection === connection);
    if (index < 0) return;
    const [entry] = this.idle.splice(index, 1);
    clearTimeout(entry!.timer);
    this.freeSlot();
  }

  /** Closes idle connections; from now on released connections are closed rather than kept. */
  drain(): void {
    this.draining = true;
    for (const entry of this.idle.splice(0)) {
      clearTimeout(entry.timer);
      void entry.connection.close();
      this.freeSlot();
    }
  }

  stats(): SlotStats {
    return { open: this.open, idle: this.idle.length, waiting: this.waiters.length };
  }

  private lease(connection: C | null): Lease<C> {
    let released = false;
    return {
      connection,
      release: (keep) => {
        if (released) throw new Error('connection lease released twice');
        released = true;
        if (keep && keep.usable && !this.draining && this.open <= this.options.limit()) this.keep(keep);
        else {
          if (keep) void keep.close();
          this.freeSlot();
        }
      },
    };
  }

  /** A reusable connection goes to the first waiter, or idles until its timeout. */
  private keep(connection: C): void {
    const waiter = this.waiters.shift();
    if (waiter) return waiter(this.lease(connection));
    const timer = setTimeout(() => {
      const index = this.idle.findIndex((e) => e.connection === connection);
      if (index >= 0) this.idle.splice(index, 1);
      void connection.close();
      this.freeSlot();
    }, this.options.idleTimeoutMs);
    // An idle connection is an optimisation; it must not keep the process alive.
    timer.unref();
    this.idle.push({ connection, timer });
  }

  /** A connection is gone: hand the slots under the limit to waiters, or tell the owner nothing is left. */
  private freeSlot(): void {
    this.open--;
    while (this.waiters.length > 0 && this.open < this.options.limit()) {
      this.open++;
      this.waiters.shift()!(this.lease(null));
    }
    if (this.open === 0 && this.idle.length === 0 && this.waiters.length === 0) this.options.onEmpty?.();
  }

  /** The most recently used idle connection that `prefer` accepts, else the most recent one. */
  private takeIdle(prefer: (connection: C) => boolean): IdleEntry<C> {
    let index = this.idle.length - 1;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (prefer(this.idle[i]!.connection)) {
        index = i;
        break;
      }
    }
    return this.idle.splice(index, 1)[0]!;
  }
}
