/**
 * Compares this tree with another revision under the same benchmark, in interleaved rounds, so a
 * change of a few percent can be told from the machine's drift (a shared VM's speed moves by 10 %
 * or more between runs minutes apart). The other revision is checked out in a temporary git
 * worktree beside this tree's node_modules; each round runs `bench/run.ts` with the given
 * arguments once in each tree, the order alternating from round to round (ABBA), and the table
 * gives each side's median and range and the median of the per-round ratios (this / other).
 *
 *   npm run bench:compare -- --against HEAD~3 --rounds 5 -- --client smtp-source --sink smtp-sink --sessions 20
 *
 * The runs' own JSON is read and removed (they are not results to keep); the comparison is
 * written to bench/results/ as `*-compare-<rev>.json`. An interrupted run removes the worktree.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, round } from './stats.ts';

const split = process.argv.indexOf('--', 2);
const own = split === -1 ? process.argv.slice(2) : process.argv.slice(2, split);
const benchArgs = split === -1 ? [] : process.argv.slice(split + 1);
const { values: args } = parseArgs({
  args: own,
  options: {
    /** The revision to compare with (anything git rev-parse takes). */
    against: { type: 'string' },
    rounds: { type: 'string', default: '5' },
  },
});
if (!args.against) throw new Error('--against <revision> is required');
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds is a whole number of at least 1');

const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...argv: string[]) => execFileSync('git', argv, { cwd: root, encoding: 'utf8' }).trim();
const revision = git('rev-parse', '--short', `${args.against}^{commit}`);
const here = `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' + uncommitted changes' : ''}`;

const parent = mkdtempSync(join(tmpdir(), 'rookery-compare-'));
const other = join(parent, 'tree');
let removed = false;
/** The benchmark running now: its process group (it and its daemon) is interrupted with this one; it stops its daemon and removes its folder. */
let running: ChildProcess | null = null;
function removeWorktree(): void {
  if (running?.pid) process.kill(-running.pid, 'SIGINT');
  if (removed) return;
  removed = true;
  try {
    execFileSync('git', ['worktree', 'remove', '--force', other], { cwd: root, stdio: 'ignore' });
  } catch {
    rmSync(other, { recursive: true, force: true });
    execFileSync('git', ['worktree', 'prune'], { cwd: root, stdio: 'ignore' });
  }
  rmSync(parent, { recursive: true, force: true });
}
process.once('exit', removeWorktree);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: removing the worktree of ${revision}`);
    process.exit(130);
  });
}
git('worktree', 'add', '--detach', other, revision);
symlinkSync(join(root, 'node_modules'), join(other, 'node_modules'), 'dir');

interface Run {
  deliveredPerSecond: number;
  cpuPerMessageMs: number;
  mainThreadCpuPerMessageMs: number | null;
  acceptP99Ms: number | null;
  peakRssMb: number;
}

/** One benchmark run in `tree`; its JSON is read and removed. */
function runBench(tree: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...benchArgs], { cwd: tree, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    running = child;
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      running = null;
      const file = /^written (.+\.json)$/m.exec(out)?.[1];
      if (code !== 0 || !file || !existsSync(file)) return reject(new Error(`bench/run.ts in ${tree} exited with ${code}\n${out}`));
      const result = JSON.parse(readFileSync(file, 'utf8'));
      rmSync(file);
      resolve({
        deliveredPerSecond: result.deliveredPerSecondEndToEnd,
        cpuPerMessageMs: result.daemon.cpuPerMessageMs,
        mainThreadCpuPerMessageMs: result.daemon.mainThreadCpuPerMessageMs ?? null,
        acceptP99Ms: result.acceptLatencyMs?.p99 ?? null,
        peakRssMb: result.daemon.peakRssMb,
      });
    });
  });
}

const runs: { here: Run[]; other: Run[] } = { here: [], other: [] };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? (['other', 'here'] as const) : (['here', 'other'] as const);
  for (const side of order) {
    const run = await runBench(side === 'here' ? root : other);
    runs[side].push(run);
    console.error(`round ${r + 1}/${rounds} ${side === 'here' ? here : revision}: ${run.deliveredPerSecond} msg/s, ${run.cpuPerMessageMs} ms CPU a message (event loop ${run.mainThreadCpuPerMessageMs})`);
  }
}
removeWorktree();

const metrics = ['deliveredPerSecond', 'cpuPerMessageMs', 'mainThreadCpuPerMessageMs', 'acceptP99Ms', 'peakRssMb'] as const;
const values = (side: Run[], metric: (typeof metrics)[number]) => side.map((run) => run[metric]).filter((v): v is number => v !== null);
const summary = (list: number[]) => (list.length ? { median: round(median(list), 3), min: round(Math.min(...list), 3), max: round(Math.max(...list), 3) } : null);
const ratios = (metric: (typeof metrics)[number]) => {
  const list = runs.here.flatMap((run, i) => {
    const [a, b] = [run[metric], runs.other[i]![metric]];
    return a !== null && b !== null && b !== 0 ? [a / b] : [];
  });
  return list.length ? round(median(list), 3) : null;
};

const result = {
  name: `compare-${revision}`,
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  parameters: { here, against: revision, rounds, benchArgs, order: 'ABBA: the other revision first in odd rounds' },
  here: Object.fromEntries(metrics.map((m) => [m, summary(values(runs.here, m))])),
  against: Object.fromEntries(metrics.map((m) => [m, summary(values(runs.other, m))])),
  medianRatioHereToAgainst: Object.fromEntries(metrics.map((m) => [m, ratios(m)])),
  runs,
};
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
const file = new URL(`results/${result.date.replace(/[:.]/g, '-')}-${result.name}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(result, null, 2) + '\n');

const cell = (s: { median: number; min: number; max: number } | null) => (s ? `${s.median} (${s.min}-${s.max})` : '');
console.table(
  Object.fromEntries(
    // Labels that cannot read as integers: an all-digit short hash would be listed first.
    metrics.map((m) => [m, { [`this (${here})`]: cell(result.here[m] ?? null), [`against (${revision})`]: cell(result.against[m] ?? null), 'median ratio': result.medianRatioHereToAgainst[m] }]),
  ),
);
console.log(`written ${file.pathname}`);
