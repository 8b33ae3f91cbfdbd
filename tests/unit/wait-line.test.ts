import { describe, expect, it } from 'vitest';
import { WaitLine } from '../../src/engine/wait-line.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('wait line', () => {
  it('runs the callers of one key one after another, in order, and other keys alongside', async () => {
    const line = new WaitLine();
    const events: string[] = [];
    const job = (name: string) => async () => {
      events.push(`${name} start`);
      await tick();
      events.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([line.run('a', job('a1')), line.run('a', job('a2')), line.run('b', job('b1'))]);
    expect(results).toEqual(['a1', 'a2', 'b1']);
    expect(events.indexOf('a2 start')).toBeGreaterThan(events.indexOf('a1 end'));
    expect(events.indexOf('b1 start')).toBeLessThan(events.indexOf('a1 end'));
    expect(line.size).toBe(0);
  });

  it('lets the next caller run when one fails, and passes the failure to its own caller', async () => {
    const line = new WaitLine();
    const failing = line.run('a', async () => {
      throw new Error('boom');
    });
    const next = line.run('a', async () => 'ok');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ok');
    expect(line.size).toBe(0);
  });
});
