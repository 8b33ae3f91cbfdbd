import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { round } from './stats.ts';

/** What the benchmarks read from the daemon process they run. */

/** Peak resident set size (VmHWM) and CPU seconds used so far by a process, from /proc. */
export function processUsage(pid: number): { peakRssMb: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime
  return { peakRssMb: round(hwm / 1024), cpuSeconds: round(ticks / 100, 2) };
}

/**
 * CPU seconds used so far by a process's main thread (its event loop), from /proc: where the
 * daemon's own work runs, apart from its worker threads (DKIM signing, webhook POSTs).
 */
export function mainThreadCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return round((Number(stat[11]) + Number(stat[12])) / 100, 2);
}

/** The daemon's metrics text. */
export async function daemonMetrics(api: { host: string; port: number }): Promise<string> {
  return (await fetch(`http://${api.host}:${api.port}/metrics`)).text();
}

/** Mean of a prom-client histogram in the metrics text, in microseconds. */
export function histogramMean(text: string, name: string): { mean: number; count: number } {
  const sum = Number(new RegExp(`^${name}_sum (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const count = Number(new RegExp(`^${name}_count (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { mean: count ? round((sum / count) * 1e6, 1) : 0, count };
}

/** Sum of every sample of a metric whose labels contain `labels` (e.g. 'disposition="transient"'). */
export function metricSum(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    if ((match[1] ?? '').includes(labels)) total += Number(match[2]);
  }
  return total;
}

/** Counts the bytes and lines the daemon writes to stdout (its log) from now on. */
export function countLog(stdout: Readable): { bytes: number; lines: number; levels: Record<string, number> } {
  const counted = { bytes: 0, lines: 0, levels: {} as Record<string, number> };
  stdout.on('data', (chunk: Buffer) => {
    counted.bytes += chunk.length;
    for (const match of chunk.toString('latin1').matchAll(/"level":(\d+)/g)) {
      counted.lines++;
      counted.levels[match[1]!] = (counted.levels[match[1]!] ?? 0) + 1;
    }
  });
  return counted;
}

/**
 * CPU seconds of this process's children that have ended and been waited for (cutime + cstime of
 * /proc/self/stat): a load generator run as a child process, once it has exited.
 */
export function endedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return round((Number(stat[13]) + Number(stat[14])) / 100, 2);
}
