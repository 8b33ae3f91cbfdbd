import { isDeepStrictEqual } from 'node:util';
import { ConfigError } from './config/config-error.ts';
import { DATA_FILES } from './config/data-files.ts';
import { deepFreeze } from './config/deep-freeze.ts';
import { planReload, type ReloadOutcome, type ReloadPlan } from './config/reload-scope.ts';
import { reloadWarnings } from './config/reload-warnings.ts';
import type { Logger } from './observability/logger.ts';
import type { ResolvedConfig } from './resolved-config.ts';

/**
 * Readies the daemon's components for a new configuration without changing any of them (building
 * what takes time or may fail: user directories, DNS lookups of new DKIM keys) and returns the
 * commit that swaps them all. The commit is synchronous, so no delivery, session or request sees
 * some components on the old configuration and others on the new one.
 */
export type PrepareReload = (next: ResolvedConfig, plan: ReloadPlan) => Promise<() => void>;

export interface LiveConfigDeps {
  initial: ResolvedConfig;
  /** Reads and resolves the configuration again, as `run` did at start; throws ConfigError listing every problem. */
  reread: () => ResolvedConfig;
  prepare: PrepareReload;
  logger: Logger;
}

/**
 * The configuration the daemon runs with, and the one way to change it: reload() reads the file
 * again through the same resolution as `run` and `check-config`, and either applies it whole or
 * changes nothing and returns every problem. Settings that need a restart keep their running
 * value (config/reload-scope.ts) and are reported. Reloads run one after the other, and each
 * logs one line saying what changed.
 *
 * Reloads are taken only while every component the commit swaps into exists and runs: from
 * open() (start-up complete) until close() (stop began). Before and after, a reload is refused
 * as unavailable, and one that was being prepared when close() came is not committed.
 */
export class LiveConfig {
  #current: ResolvedConfig;
  #last: Promise<unknown> = Promise.resolve();
  #phase: 'starting' | 'running' | 'stopping' = 'starting';
  readonly #log: Logger;

  constructor(private readonly deps: LiveConfigDeps) {
    this.#current = deps.initial;
    this.#log = deps.logger.child({ component: 'config' });
  }

  /** The configuration in effect: replaced whole by a reload, never changed in place. */
  get current(): ResolvedConfig {
    return this.#current;
  }

  /** Start-up is complete: every component a reload swaps into is built and started. */
  open(): void {
    if (this.#phase === 'starting') this.#phase = 'running';
  }

  /** Stop began: no reload is taken or committed from now on. */
  close(): void {
    this.#phase = 'stopping';
  }

  /** Reloads after any reload under way; `trigger` (signal, api) is logged. */
  reload(trigger: string): Promise<ReloadOutcome> {
    const refused = this.#unavailable(trigger);
    if (refused) return Promise.resolve(refused);
    const run = this.#last.then(() => this.#reload(trigger));
    this.#last = run.catch(() => undefined);
    return run;
  }

  async #reload(trigger: string): Promise<ReloadOutcome> {
    const queued = this.#unavailable(trigger);
    if (queued) return queued;
    const running = this.#current;
    let next: ResolvedConfig;
    try {
      next = this.deps.reread();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return this.#refused(trigger, err.source, err.problems);
    }
    const plan = planReload(running.config, next.config);
    if (!plan.changed.includes('dkim.domains') && keyFilesChanged(running, next)) plan.changed.push('dkim key files');
    plan.changed.push(...dataFilesChanged(running, next, plan.changed));
    const tls = renewedTls(running, next, plan);
    if (tls !== running.tls) plan.changed.push('smtp.tls files');
    const applied = deepFreeze({ ...next, config: plan.config, tls });
    let commit: () => void;
    try {
      commit = await this.deps.prepare(applied, plan);
    } catch (err) {
      return this.#refused(trigger, next.source, [`(root): the new configuration could not be applied: ${(err as Error).message}`]);
    }
    // Stop may have begun while the new configuration was being prepared.
    const late = this.#unavailable(trigger);
    if (late) return late;
    commit();
    this.#current = applied;
    const { changed, restartRequired } = plan;
    const warnings = reloadWarnings(running.config, applied.config);
    const fields = { event: 'daemon.reloaded', trigger, source: next.source, changed, restartRequired, warnings };
    const message = [
      `configuration reloaded: ${changed.length ? changed.join(', ') : 'no change'}`,
      ...(restartRequired.length ? [`waiting for a restart: ${restartRequired.join(', ')}`] : []),
      ...warnings,
    ].join('; ');
    if (restartRequired.length || warnings.length) this.#log.warn(fields, message);
    else this.#log.info(fields, message);
    return { ok: true, source: next.source, changed, restartRequired, warnings };
  }

  /** The refusal while the daemon is starting or stopping; null while it runs. */
  #unavailable(trigger: string): ReloadOutcome | null {
    if (this.#phase === 'running') return null;
    const unavailable = this.#phase === 'starting' ? 'the daemon is still starting' : 'the daemon is stopping';
    const { source } = this.#current;
    this.#log.warn({ event: 'daemon.reload.unavailable', trigger, source, reason: unavailable }, `configuration not reloaded: ${unavailable}`);
    return { ok: false, source, unavailable };
  }

  #refused(trigger: string, source: string, problems: string[]): ReloadOutcome {
    this.#log.error({ event: 'daemon.reload.refused', trigger, source, problems }, 'configuration not reloaded: the running one stays in effect');
    return { ok: false, source, problems };
  }
}

/** Whether a DKIM key file was replaced since the running configuration read it. */
function keyFilesChanged(running: ResolvedConfig, next: ResolvedConfig): boolean {
  const stamps = (resolved: ResolvedConfig) => resolved.dkimKeys.map((key) => `${key.where}\n${key.stamp}`).join('\n');
  return stamps(running) !== stamps(next);
}

/**
 * The TLS key and certificate to run with: the running ones, or the files of smtp.tls read
 * again when they were renewed at the same paths (a certificate renewal). Other paths, or
 * listeners that change whether TLS is used, wait for the restart with smtp.tls itself.
 */
function renewedTls(running: ResolvedConfig, next: ResolvedConfig, plan: ReloadPlan): ResolvedConfig['tls'] {
  if (!running.tls || !next.tls || plan.restartRequired.includes('smtp.tls')) return running.tls;
  return isDeepStrictEqual(running.tls, next.tls) ? running.tls : next.tls;
}

/** Each shipped data file, what the resolution made of it, and the config section laid over it. */
const DATA_PARTS: ReadonlyArray<{ file: string; section: string; data: (resolved: ResolvedConfig) => unknown }> = [
  { file: DATA_FILES.plans, section: 'warmup', data: (r) => r.pool.plans },
  { file: DATA_FILES.providers, section: 'providers', data: (r) => r.pool.providers },
  { file: DATA_FILES.shaping, section: 'shaping', data: (r) => r.pool.shaping },
  { file: DATA_FILES.reactionRules, section: 'reactionRules', data: (r) => r.reactionRules },
  { file: DATA_FILES.bounceRules, section: 'bounceRules', data: (r) => r.bounceRules },
  { file: DATA_FILES.suppressionRules, section: 'suppression', data: (r) => r.suppressionRules },
];

/**
 * The shipped data files (config/*.yaml) whose resolved content differs from the running one,
 * named as `config/<file>`. Where the config section laid over a file changed too, the
 * section's path says it already: the two cannot be told apart from what they resolve to.
 */
function dataFilesChanged(running: ResolvedConfig, next: ResolvedConfig, changed: readonly string[]): string[] {
  return DATA_PARTS.filter(({ section, data }) => !changed.includes(section) && !isDeepStrictEqual(data(running), data(next))).map(({ file }) => `config/${file}`);
}
