import { unknownBlocklistProviders } from './config/blocklist-schema.ts';
import { join } from 'node:path';
import { ConfigError } from './config/config-error.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from './config/data-files.ts';
import { deepFreeze } from './config/deep-freeze.ts';
import { parseConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { readYamlFile } from './config/yaml-config.ts';
import { tenantReferenceProblems } from './config/tenant-schema.ts';
import { loadBounceRules, type BounceRule } from './engine/bounce-rules.ts';
import { loadSuppressionRules, type SuppressionRule } from './engine/suppression-rules.ts';
import { loadPoolData, unknownPlans, type PoolData } from './ippool/pool-data.ts';
import { loadReactionRules, type ReactionRule } from './ippool/reaction-rules.ts';
import { readDkimKeys, type ConfiguredDkimKey } from './sender-domains/key-store.ts';
import { resolveSmtpUsers, type SmtpUser } from './smtp/user-directory.ts';
import { readTlsFiles, selfSignedTlsProblems, type TlsMaterial } from './smtp/tls-material.ts';

/**
 * The configuration as the daemon uses it: the validated config with everything it refers to
 * read, parsed and checked. `rookery check-config` and `rookery run` go through this one
 * resolution, so whatever the daemon would refuse at start, check-config refuses, naming the
 * config path. Building one has no side effects (it reads files, starts and writes nothing),
 * the result is frozen all the way down (see deepFreeze), and two built from the same input are
 * deeply equal (util.isDeepStrictEqual), so a reload can build a new one, compare and swap it.
 */
export interface ResolvedConfig {
  /** Where it came from: the file path, or a name such as "built-in defaults". */
  readonly source: string;
  readonly config: Config;
  /** Warm-up plans, providers and shaping: config/ with the config's overrides. */
  readonly pool: PoolData;
  /** Operator rules first, then config/reaction-rules.yaml. */
  readonly reactionRules: readonly ReactionRule[];
  /** Operator rules first, then config/bounce-rules.yaml. */
  readonly bounceRules: readonly BounceRule[];
  /** Operator rules (suppression.rules) first, then config/suppression-rules.yaml. */
  readonly suppressionRules: readonly SuppressionRule[];
  readonly smtpUsers: readonly SmtpUser[];
  /**
   * smtp.tls read and checked, when a listener uses TLS. Null when no listener does, or when
   * smtp.tls is not set: the daemon then makes (or reuses) a self-signed pair in dataDir at
   * start, a step that writes files and so is no part of the resolution.
   */
  readonly tls: TlsMaterial | null;
  readonly dkimKeys: readonly ConfiguredDkimKey[];
}

export interface ResolveOptions {
  /** Names the config in problems (default "config"). */
  source?: string;
  /** DATABASE_URL, REDIS_URL, ROOKERY_VERP_SECRET and ROOKERY_UNSUBSCRIBE_SECRET override the config (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The folder of the shipped data files (default the repository's config/). */
  configDir?: string;
}

/**
 * Resolves a raw config object (a parsed YAML document). Throws ConfigError listing every
 * problem with its path; a bad shipped data file is reported with that file's name.
 */
export function resolveConfig(raw: unknown, options: ResolveOptions = {}): ResolvedConfig {
  const source = options.source ?? 'config';
  const dir = options.configDir ?? DEFAULT_CONFIG_DIR;
  const config = parseConfig(raw, source, options.env);

  // Each step's problems with this config are collected, so one run reports them all; a problem
  // in a shipped data file is thrown at once, under that file's name.
  const problems: string[] = [];
  const step = <T>(run: () => T): T | null => {
    try {
      return run();
    } catch (err) {
      if (!(err instanceof ConfigError) || err.source !== source) throw err;
      problems.push(...err.problems);
      return null;
    }
  };
  const pool = step(() => loadPoolData({ configDir: dir, overrides: { warmup: config.warmup, providers: config.providers, shaping: config.shaping }, source }));
  const reactionRules = step(() => loadReactionRules(join(dir, DATA_FILES.reactionRules), config.reactionRules));
  const bounceRules = step(() => loadBounceRules(join(dir, DATA_FILES.bounceRules), config.bounceRules));
  const suppressionRules = step(() => loadSuppressionRules(join(dir, DATA_FILES.suppressionRules), config.suppression.rules));
  const users = resolveSmtpUsers(config.smtp.users);
  const needsTls = config.smtp.listeners.some((l) => l.tls !== 'none');
  const tls = !needsTls
    ? { tls: null, problems: [] }
    : config.smtp.tls
      ? readTlsFiles(config.smtp.tls)
      : { tls: null, problems: selfSignedTlsProblems(config.dataDir) };
  const dkim = readDkimKeys(config.dkim);

  if (pool) {
    const providers = new Set(pool.providers.groups.map((g) => g.name));
    problems.push(
      ...unknownPlans(config.ips, pool),
      ...config.reactionRules.flatMap((rule, i) =>
        rule.provider && !providers.has(rule.provider) ? [`reactionRules[${i}].provider: unknown provider ${JSON.stringify(rule.provider)}`] : [],
      ),
      ...unknownBlocklistProviders(config.blocklists, providers),
    );
  }
  problems.push(...users.problems, ...tls.problems, ...dkim.problems, ...tenantReferenceProblems(config));
  if (problems.length || !pool || !reactionRules || !bounceRules || !suppressionRules) throw new ConfigError(source, problems);

  return deepFreeze({ source, config, pool, reactionRules, bounceRules, suppressionRules, smtpUsers: users.users, tls: tls.tls, dkimKeys: dkim.keys });
}

/** Reads a YAML config file and resolves it; the file's path names it in problems. */
export function resolveConfigFile(path: string, options: Omit<ResolveOptions, 'source'> = {}): ResolvedConfig {
  return resolveConfig(readYamlFile(path), { ...options, source: path });
}
