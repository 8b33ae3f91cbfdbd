import { setMaxListeners } from 'node:events';
import type { Logger } from '../observability/logger.ts';
import { ipLabel, type Metrics } from '../observability/metrics.ts';
import type { PathHealth } from './path-health.ts';
import type { Deliverer } from './smtp-deliverer.ts';

export interface PathProbesDeps {
  paths: PathHealth;
  prober: Pick<Deliverer, 'probe'>;
  metrics: Metrics;
  log: Logger;
  /** Whether a down path to `site` is still wanted though no delivery asked for it (its site is held). */
  held: (site: string) => boolean;
  /** A probe ended (its path is up, or its next probe is set). */
  onSettled: () => void;
}

/**
 * The probes of down paths (PathHealth): one connection per path whose probe time has come,
 * made by the deliverer, which brings the path up when it gets through. A probe that throws
 * counts as a failed one, so the next waits longer rather than coming at once. A path nobody
 * asked for since its last probe (no delivery wants it and its site is not held) is forgotten
 * instead of probed.
 */
export class PathProbes {
  private readonly running = new Set<Promise<unknown>>();
  private stopping = new AbortController();

  constructor(private readonly deps: PathProbesDeps) {}

  start(): void {
    this.stopping = new AbortController();
    // One listener per probe under way: possibly many down paths at once.
    setMaxListeners(0, this.stopping.signal);
  }

  /** Cuts the probes under way short and waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort();
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  /** Starts the probes due at `now`. */
  run(now: number): void {
    const { paths, prober, metrics, log } = this.deps;
    for (const entry of paths.dueProbes(now)) {
      if (!entry.wanted && !this.deps.held(entry.path.site)) {
        paths.forget(entry.path);
        metrics.pathsDown.dec({ egress_ip: ipLabel(entry.path.ip) });
        continue;
      }
      entry.wanted = false;
      entry.probing = true;
      const probe = prober.probe(entry, this.stopping.signal).then(
        (up) => metrics.siteProbes.inc({ result: up ? 'up' : 'down' }),
        (err: unknown) => {
          log.error({ event: 'delivery.probe.failed', ip: entry.path.ip, site: entry.path.site, err }, 'probing a down path failed');
          paths.probeFailed(entry, entry);
        },
      );
      const settled = probe.finally(() => {
        entry.probing = false;
        this.running.delete(settled);
        this.deps.onSettled();
      });
      this.running.add(settled);
    }
  }
}
