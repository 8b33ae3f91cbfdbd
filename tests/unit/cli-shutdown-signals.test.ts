import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { handleShutdownSignals } from '../../src/cli/shutdown-signals.ts';
import { createLogger } from '../../src/observability/logger.ts';

/** A daemon whose stop() finishes when the test says so. */
function controllableDaemon() {
  const stops: string[] = [];
  let finish!: (err?: Error) => void;
  const stopped = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
  return {
    stops,
    finish: (err?: Error) => finish(err),
    daemon: { stop: (reason?: string) => (stops.push(reason ?? ''), stopped) },
  };
}

function setup(daemonPromise: Promise<{ stop(reason?: string): Promise<void> }>) {
  const emitter = new EventEmitter();
  const exits: number[] = [];
  const lines: string[] = [];
  const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
  const remove = handleShutdownSignals({ daemon: daemonPromise, logger, exit: (code) => exits.push(code), emitter });
  return { emitter, exits, lines, remove };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('handleShutdownSignals', () => {
  it('stops the daemon on the first SIGTERM and exits 0 only once it has stopped', async () => {
    const d = controllableDaemon();
    const { emitter, exits, lines } = setup(Promise.resolve(d.daemon));
    emitter.emit('SIGTERM', 'SIGTERM');
    await tick();
    expect(d.stops).toEqual(['signal SIGTERM']);
    expect(exits).toEqual([]);
    d.finish();
    await tick();
    expect(exits).toEqual([0]);
    expect(lines.some((l) => l.includes('"event":"shutdown.signal"') && l.includes('"signal":"SIGTERM"'))).toBe(true);
  });

  it('exits 1 at once on a second signal, without a second stop', async () => {
    const d = controllableDaemon();
    const { emitter, exits } = setup(Promise.resolve(d.daemon));
    emitter.emit('SIGINT', 'SIGINT');
    await tick();
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(exits).toEqual([1]);
    expect(d.stops).toEqual(['signal SIGINT']);
  });

  it('exits 1 when the graceful stop fails', async () => {
    const d = controllableDaemon();
    const { emitter, exits, lines } = setup(Promise.resolve(d.daemon));
    emitter.emit('SIGTERM', 'SIGTERM');
    await tick();
    d.finish(new Error('storage would not close'));
    await tick();
    expect(exits).toEqual([1]);
    expect(lines.some((l) => l.includes('"event":"shutdown.failed"') && l.includes('storage would not close'))).toBe(true);
  });

  it('stops a daemon that was still starting when the signal came, as soon as it is up', async () => {
    const d = controllableDaemon();
    let started!: (daemon: typeof d.daemon) => void;
    const { emitter, exits } = setup(new Promise((resolve) => (started = resolve)));
    emitter.emit('SIGTERM', 'SIGTERM');
    await tick();
    expect(d.stops).toEqual([]);
    started(d.daemon);
    await tick();
    expect(d.stops).toEqual(['signal SIGTERM']);
    d.finish();
    await tick();
    expect(exits).toEqual([0]);
  });

  it('removes its handlers when asked', async () => {
    const d = controllableDaemon();
    const { emitter, exits, remove } = setup(Promise.resolve(d.daemon));
    remove();
    expect(emitter.listenerCount('SIGTERM') + emitter.listenerCount('SIGINT')).toBe(0);
    emitter.emit('SIGTERM', 'SIGTERM');
    await tick();
    expect(d.stops).toEqual([]);
    expect(exits).toEqual([]);
  });
});
