import { spawnSync } from 'node:child_process';

/** Prometheus's promtool (Debian's `prometheus` package), which checks and unit-tests alerting rules. */
export const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

/** Why promtool cannot run here (for requireCapability), or null when it can. */
export function promtoolProblem(): string | null {
  const probe = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error) return `${PROMTOOL} not runnable (apt-get install prometheus): ${probe.error.message}`;
  if (probe.status !== 0) return `${PROMTOOL} --version exited ${probe.status}: ${probe.stderr.trim()}`;
  return null;
}

/** Runs promtool with `args` from `cwd`; its exit status and everything it printed. */
export function runPromtool(args: string[], cwd: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
