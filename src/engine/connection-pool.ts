/**
 * Connection slots per key (egress IP -> destination site): at most `maxPerKey` connections
 * open at once, idle ones kept for reuse for `idleTimeoutMs`, and callers beyond the limit
 * queued in arrival order until a slot or an idle connection frees up.
 */

export interface Poolable {
  /** False once the connection closed or failed; an idle connection that is not usable is dropped. */
  readonly usable: boolean;
  /** Ends the connection politely (QUIT); must not throw. */
  close(): void;
}

/**
 * The right to hold one connection under a key. `connection` is an idle connection handed over
 * for reuse, or null: the holder may open one. Every lease is released exactly once.
 */
export interface Lease<C> {
  readonly connection: C | null;
  /** Gives the slot back: pass a reusable connection to keep it idle, or null once it is closed. */
  release(keep: C | null): void;
}

export interface PoolStats {
  /** Connections counted against the limits (idle, busy, or being opened). */
  open: number;
  idle: number;
  /** Callers waiting for a slot. */
  waiting: number;
}

interface IdleEntry<C> {
  connection: C;
  timer: NodeJS.Timeout;
}

interface Group<C> {
  open: number;
  /** Most connections under the key: the limit given by the latest acquire. */
  limit: number;
  idle: IdleEntry<C>[];
  waiters: Array<(lease: Lease<C>) => void>;
}

export class ConnectionPool<C extends Poolable> {
  private readonly groups = new Map<string, Group<C>>();
  private draining = false;

  constructor(private readonly options: { maxPerKey: number; idleTimeoutMs: number }) {}

  /**
   * Waits for a slot under `key`. An idle connection for which `prefer` holds is handed over
   * first, then any other idle one (the holder may close it and open its own in the slot).
   * `limit` (default maxPerKey) caps the connections under the key from now on.
   */
  acquire(key: string, prefer: (connection: C) => boolean = () => true, limit = this.options.maxPerKey): Promise<Lease<C>> {
    const group = this.group(key);
    group.limit = limit;
    while (group.idle.length > 0) {
      const entry = takeIdle(group, prefer);
      clearTimeout(entry.timer);
      if (entry.connection.usable) return Promise.resolve(this.lease(key, group, entry.connection));
      entry.connection.close();
      group.open--;
    }
    if (group.open < group.limit) {
      group.open++;
      return Promise.resolve(this.lease(key, group, null));
    }
    return new Promise((resolve) => group.waiters.push(resolve));
  }

  /** Forgets a connection that closed while idle, so its slot is free at once. */
  discard(key: string, connection: C): void {
    const group = this.groups.get(key);
    const index = group?.idle.findIndex((e) => e.connection === connection) ?? -1;
    if (!group || index < 0) return;
    const [entry] = group.idle.splice(index, 1);
    clearTimeout(entry!.timer);
    this.freeSlot(key, group);
  }

  /** Closes idle connections; from now on released connections are closed rather than kept. */
  drain(): void {
    this.draining = true;
    for (const [key, group] of this.groups) {
      for (const entry of group.idle.splice(0)) {
        clearTimeout(entry.timer);
        entry.connection.close();
        this.freeSlot(key, group);
      }
    }
  }

  stats(): PoolStats {
    let open = 0;
    let idle = 0;
    let waiting = 0;
    for (const group of this.groups.values()) {
      open += group.open;
      idle += group.idle.length;
      waiting += group.waiters.length;
    }
    return { open, idle, waiting };
  }

  private group(key: string): Group<C> {
    let group = this.groups.get(key);
    if (!group) {
      group = { open: 0, limit: this.options.maxPerKey, idle: [], waiters: [] };
      this.groups.set(key, group);
    }
    return group;
  }

  private lease(key: string, group: Group<C>, connection: C | null): Lease<C> {
    let released = false;
    return {
      connection,
      release: (keep) => {
        if (released) throw new Error('connection lease released twice');
        released = true;
        if (keep && keep.usable && !this.draining) this.keep(key, group, keep);
        else {
          keep?.close();
          this.freeSlot(key, group);
        }
      },
    };
  }

  /** A reusable connection goes to the first waiter, or idles until its timeout. */
  private keep(key: string, group: Group<C>, connection: C): void {
    const waiter = group.waiters.shift();
    if (waiter) return waiter(this.lease(key, group, connection));
    const timer = setTimeout(() => {
      const index = group.idle.findIndex((e) => e.connection === connection);
      if (index >= 0) group.idle.splice(index, 1);
      connection.close();
      this.freeSlot(key, group);
    }, this.options.idleTimeoutMs);
    // An idle connection is an optimisation; it must not keep the process alive.
    timer.unref();
    group.idle.push({ connection, timer });
  }

  /** A connection under the key is gone: hand its slot to a waiter, or forget an empty group. */
  private freeSlot(key: string, group: Group<C>): void {
    group.open--;
    // A lowered limit holds waiters back until enough connections have gone.
    const waiter = group.open < group.limit ? group.waiters.shift() : undefined;
    if (waiter) {
      group.open++;
      waiter(this.lease(key, group, null));
      return;
    }
    if (group.open === 0 && group.idle.length === 0 && this.groups.get(key) === group) this.groups.delete(key);
  }
}

/** The most recently used idle connection that `prefer` accepts, else the most recent one. */
function takeIdle<C>(group: Group<C>, prefer: (connection: C) => boolean): IdleEntry<C> {
  let index = group.idle.length - 1;
  for (let i = group.idle.length - 1; i >= 0; i--) {
    if (prefer(group.idle[i]!.connection)) {
      index = i;
      break;
    }
  }
  return group.idle.splice(index, 1)[0]!;
}
