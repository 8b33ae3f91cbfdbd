import { afterAll, beforeAll } from 'vitest';

/**
 * Run by vitest before every test file (setupFiles): fails the file when its tests leave a
 * server, socket, child process, file watcher or timer behind. Such a leftover is a component
 * whose stop() does not stop it, or a test that forgot to call it; in the daemon it would be a
 * leak or a shutdown that hangs.
 *
 * Node reports open handles and referenced timers (process.getActiveResourcesInfo), but not
 * timers that were unref()ed, which the daemon uses for its background work. So timers created
 * by the file are tracked here as well: a timeout still pending or an interval never cleared
 * when the file ends is reported with the stack that created it.
 */

/** How long closing sockets and servers get to finish closing after the last test. */
const SETTLE_MS = 2_000;
/** A timeout due this much later than the file's end is left over, not about to fire. */
const PENDING_GRACE_MS = 50;

interface TrackedTimer {
  kind: 'timeout' | 'interval';
  dueAt: number;
  stack: string;
}

const live = new Map<unknown, TrackedTimer>();
const original = { setTimeout, setInterval, clearTimeout, clearInterval };

function track<A extends unknown[]>(kind: TrackedTimer['kind'], create: (fn: (...args: A) => void, ms?: number, ...args: A) => NodeJS.Timeout) {
  return (fn: (...args: A) => void, ms?: number, ...args: A): NodeJS.Timeout => {
    let handle: NodeJS.Timeout;
    const run = (...runArgs: A) => {
      if (kind === 'timeout') live.delete(handle);
      fn(...runArgs);
    };
    handle = create(run, ms, ...args);
    live.set(handle, { kind, dueAt: Date.now() + (ms ?? 0), stack: callerStack() });
    return handle;
  };
}

function untrack(clear: (handle: NodeJS.Timeout | string | number | undefined) => void) {
  return (handle: NodeJS.Timeout | string | number | undefined): void => {
    live.delete(handle);
    clear(handle);
  };
}

/** The stack of the code that created a timer, without this file's own frame. */
function callerStack(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(3);
  return lines.filter((line) => !line.includes('node_modules')).slice(0, 4).join('\n');
}

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** Open handles beyond those the test runner itself had when the file started. */
function extraResources(baseline: Map<string, number>): string[] {
  const extra: string[] = [];
  for (const [name, count] of resourceCounts()) {
    // Timers are judged by the tracking above, which also sees unref()ed ones and where they came from.
    if (name === 'Timeout' || name === 'Immediate') continue;
    const more = count - (baseline.get(name) ?? 0);
    if (more > 0) extra.push(`${more} × ${name}`);
  }
  return extra;
}

function leftoverTimers(): TrackedTimer[] {
  const now = Date.now();
  return [...live.values()].filter((t) => t.kind === 'interval' || t.dueAt > now + PENDING_GRACE_MS);
}

let baseline = new Map<string, number>();

beforeAll(() => {
  baseline = resourceCounts();
  globalThis.setTimeout = Object.assign(track('timeout', original.setTimeout as never), original.setTimeout);
  globalThis.setInterval = Object.assign(track('interval', original.setInterval as never), original.setInterval);
  globalThis.clearTimeout = untrack(original.clearTimeout as never) as typeof clearTimeout;
  globalThis.clearInterval = untrack(original.clearInterval as never) as typeof clearInterval;
});

afterAll(async () => {
  const deadline = Date.now() + SETTLE_MS;
  let resources = extraResources(baseline);
  let timers = leftoverTimers();
  while ((resources.length || timers.length) && Date.now() < deadline) {
    await new Promise((resolve) => original.setTimeout(resolve, 20));
    resources = extraResources(baseline);
    timers = leftoverTimers();
  }
  Object.assign(globalThis, original);
  if (!resources.length && !timers.length) return;
  const lines = [
    ...resources.map((r) => `  open handle: ${r}`),
    ...timers.map((t) => `  ${t.kind} still ${t.kind === 'interval' ? 'running' : `due in ${t.dueAt - Date.now()} ms`}, created at\n${t.stack}`),
  ];
  throw new Error(`the tests of this file left these behind (stop the components they started):\n${lines.join('\n')}`);
});
