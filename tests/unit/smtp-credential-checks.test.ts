import { describe, expect, it, vi } from 'vitest';
import { CredentialChecks } from '../../src/smtp/credential-checks.ts';

/** A check that runs until the test finishes it. */
class Check {
  started = false;
  private finishWith!: (ok: boolean) => void;
  readonly run = (): Promise<boolean> => {
    this.started = true;
    return new Promise((resolve) => (this.finishWith = resolve));
  };
  finish(ok: boolean): void {
    this.finishWith(ok);
  }
}

describe('CredentialChecks', () => {
  it('runs at most `running` checks, queues up to `waiting`, refuses the rest unchecked, and hands each freed turn to the first waiting', async () => {
    const checks = new CredentialChecks({ running: 2, waiting: 2 });
    const [a, b, c, d, e] = Array.from({ length: 5 }, () => new Check());
    const results = [a!, b!, c!, d!].map((x) => checks.run(x.run));
    expect(checks.run(e!.run)).toBeNull();
    expect([a, b, c, d, e].map((x) => x!.started)).toEqual([true, true, false, false, false]);

    a!.finish(false);
    await expect(results[0]).resolves.toBe(false);
    await vi.waitFor(() => expect(c!.started).toBe(true));
    // c has a's turn; a newcomer waits behind d instead of taking it, and the queue is full again.
    const late = new Check();
    const lateResult = checks.run(late.run);
    expect([d!.started, late.started]).toEqual([false, false]);
    expect(checks.run(new Check().run)).toBeNull();

    for (const [x, result] of [[b!, results[1]], [c!, results[2]], [d!, results[3]], [late, lateResult]] as const) {
      await vi.waitFor(() => expect(x.started).toBe(true));
      x.finish(true);
      await expect(result).resolves.toBe(true);
    }
    // Every turn is back: two run at once again.
    const [f, g] = [new Check(), new Check()];
    const last = [checks.run(f.run), checks.run(g.run)];
    expect([f.started, g.started]).toEqual([true, true]);
    f.finish(true);
    g.finish(true);
    await Promise.all(last);
  });
});
