import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

it('fails a test file that leaves a server or a timer behind, naming both', () => {
  const run = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'tests/fixtures/vitest.config.ts', '--reporter', 'default'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
    timeout: 60_000,
  });
  const output = run.stdout + run.stderr;
  expect(run.status, output).toBe(1);
  expect(output).toContain('left these behind');
  expect(output).toContain('open handle: 1 × TCPServerWrap');
  expect(output).toMatch(/interval still running, created at\n\s+at .*leaky\.fixture\.ts:8/);
});
